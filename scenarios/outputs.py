"""The files a scenario run writes: names, columns, row types, writing and reading.

Output files
============

One folder per run (``<output>/<scenario>/<stamp>/run-01``, see
:func:`scenarios.spec.run_dir`). Every ``t_s`` is in **scenario time** (wall-clock
seconds since the scenario's t = 0 divided by ``time_scale``), so runs at any time
scale plot on the paper's axes. CSV files have a header row, comma separators, ``.``
decimals, one row per line, and are written row by row (flushed) so that a crashed run
still leaves what it measured. Columns in this order:

``shares.csv`` -- traffic per instance, one row per sample and instance
    ``t_s``            end of the sample interval ``(t_s - sample_period_s, t_s]``
    ``service``        service name (shares are per service)
    ``instance``       instance name; every instance of the topology, every sample
                       (0 when it is not running)
    ``packets_per_s``  packets the instance processed in the interval divided by the
                       interval's wall-clock length (= processing units per second;
                       per-flow rates are not scaled, so this is in the file's units)
    ``share``          ``packets_per_s`` / the sum over the service's instances at this
                       ``t_s``, a fraction 0..1; empty when that sum is 0
``weights.csv`` -- WCMP weights the connectors use, one row per sample (or per change)
    ``t_s``, ``node`` (NFV node of the connector), ``service``, ``instance``,
    ``weight`` (the integer member weight, 0 = not a live member)
``events.csv`` -- what happened, when it was actually done
    ``t_s``, ``kind`` (a scenario action such as ``start_instance``, or ``run_start``,
    ``run_end``, ``note``, ``error``), ``detail`` (the action's target as
    :attr:`scenarios.spec.Event.target` writes it: ``svc_d``, ``A-B``, ``period_s=1``,
    or free text)
``flows.csv`` -- one row per flow, written when it ends
    ``flow_id`` (the generator's flow id, e.g. :attr:`scenarios.spec.PlannedFlow.flow_id`),
    ``traffic`` (class name),
    ``src_port``, ``dst_port``, ``start_s``, ``end_s``, ``sent`` (packets the generator
    sent), ``received`` (packets the sink got), ``instance`` (the instance that carried
    it, e.g. from the VNFs' per-flow-hash counters; empty if unknown)
``traffic.csv`` -- packets per sample and traffic class
    ``t_s`` (end of the interval, as in ``shares.csv``), ``traffic``, ``sent``,
    ``received`` (packets in the interval); used for the loss around events
``weight_changes.csv`` -- every change of a WCMP weight, when the D-MANO made it
    same columns as ``weights.csv``; the runner polls every node's D-MANO status file
    (``dmano.json``, every ~25 ms of wall time, a ``stat`` first) and writes a row for
    each (node, service, instance) whose weight differs from the last one seen, with the
    ``t_s`` of the status file's own ``updated`` time (the D-MANO writes it right after
    writing the connector), so the time is exact to a few ms whatever the poll period.
    ``weight`` 0 also when the instance is no longer a candidate (absent). The first
    rows (the weights in effect when polling started) may have a negative ``t_s``.
``losses.csv`` -- packets lost, by when they were sent
    ``t_s`` (estimated send time of the first packet of a run of lost packets),
    ``flow_id``, ``lost`` (packets), ``until_s`` (estimated send time of the last one):
    one row per sequence gap the sink saw (send times interpolated between the send
    timestamps of the packets on either side), plus one row per flow whose last packets
    never arrived (from the generator's flow log: after the last packet received up to
    the flow's last send); a packet that arrives late and fills a gap is taken off the
    gap's row. The sum of ``lost`` is the run's sent - received.
``control.csv`` -- control traffic, cumulative since the run began, one row per sample
    ``t_s``, ``ospf_packets``, ``ospf_bytes`` (every OSPF packet the routers sent),
    ``lsu_packets``, ``lsu_bytes`` (the LS Updates among them), ``p4rt_write_ops``,
    ``p4rt_write_bytes`` (P4Runtime Updates to the connectors, D-MANOs' or the
    orchestrator's), ``poll_messages``, ``poll_bytes`` (orchestrator polls, requests and
    replies), ``lsdb_feed_messages``, ``lsdb_feed_bytes`` (LSAs reported to the
    orchestrator by its router), ``counter_reads`` (its P4Runtime counter reads); see
    :mod:`scenarios.control_traffic`
``meta.json`` -- ``{"scenario", "scenario_file", "topology", "policy", "time_scale",
    "seed", "repetition", "started_utc", "wall_duration_s"}`` (more keys allowed)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

SHARES_FILE = "shares.csv"
WEIGHTS_FILE = "weights.csv"
EVENTS_FILE = "events.csv"
FLOWS_FILE = "flows.csv"
TRAFFIC_FILE = "traffic.csv"
META_FILE = "meta.json"
WEIGHT_CHANGES_FILE = "weight_changes.csv"
LOSSES_FILE = "losses.csv"
CONTROL_FILE = "control.csv"

SHARES_COLUMNS = ("t_s", "service", "instance", "packets_per_s", "share")
WEIGHTS_COLUMNS = ("t_s", "node", "service", "instance", "weight")
EVENTS_COLUMNS = ("t_s", "kind", "detail")
FLOWS_COLUMNS = ("flow_id", "traffic", "src_port", "dst_port", "start_s", "end_s", "sent",
                 "received", "instance")
TRAFFIC_COLUMNS = ("t_s", "traffic", "sent", "received")
WEIGHT_CHANGES_COLUMNS = WEIGHTS_COLUMNS
LOSSES_COLUMNS = ("t_s", "flow_id", "lost", "until_s")
CONTROL_COLUMNS = ("t_s", "ospf_packets", "ospf_bytes", "lsu_packets", "lsu_bytes",
                   "p4rt_write_ops", "p4rt_write_bytes", "poll_messages", "poll_bytes",
                   "lsdb_feed_messages", "lsdb_feed_bytes", "counter_reads")
COLUMNS = {SHARES_FILE: SHARES_COLUMNS, WEIGHTS_FILE: WEIGHTS_COLUMNS,
           EVENTS_FILE: EVENTS_COLUMNS, FLOWS_FILE: FLOWS_COLUMNS,
           TRAFFIC_FILE: TRAFFIC_COLUMNS, WEIGHT_CHANGES_FILE: WEIGHT_CHANGES_COLUMNS,
           LOSSES_FILE: LOSSES_COLUMNS, CONTROL_FILE: CONTROL_COLUMNS}
_OPTIONAL = {"service", "instance", "detail"}  # columns a reader tolerates missing


# -- rows ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShareRow:
    t_s: float
    service: str
    instance: str
    packets_per_s: float
    share: float | None  # fraction 0..1; None when the service carried nothing


@dataclass(frozen=True)
class WeightRow:
    t_s: float
    node: str
    service: str
    instance: str
    weight: int


@dataclass(frozen=True)
class EventRow:
    t_s: float
    kind: str
    detail: str


@dataclass(frozen=True)
class FlowRow:
    flow_id: int
    traffic: str
    src_port: int
    dst_port: int
    start_s: float
    end_s: float
    sent: int
    received: int
    instance: str  # "" if unknown


@dataclass(frozen=True)
class LossRow:
    t_s: float
    flow_id: int
    lost: int
    until_s: float


@dataclass(frozen=True)
class TrafficRow:
    t_s: float
    traffic: str
    sent: int
    received: int


# -- writing ---------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.9g}"
    return str(value)


class CsvWriter:
    """Appends rows to one output file, header first, flushing each row.

    ``CsvWriter(run / SHARES_FILE).row(t_s=2.0, service="SVC", instance="svc_b",
    packets_per_s=99.5, share=0.497)``; the columns come from the file name (or
    ``columns``) and every row must give exactly those.
    """

    def __init__(self, path: str | Path, columns: Sequence[str] | None = None):
        self.path = Path(path)
        cols = columns if columns is not None else COLUMNS.get(self.path.name)
        if cols is None:
            raise ValueError(f"{self.path.name}: unknown output file; pass columns")
        self.columns = tuple(cols)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = self.path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow(self.columns)
        self._fh.flush()

    def row(self, **values: Any) -> None:
        if set(values) != set(self.columns):
            missing = sorted(set(self.columns) - set(values))
            extra = sorted(set(values) - set(self.columns))
            raise ValueError(f"{self.path.name}: row needs {', '.join(self.columns)} "
                             f"(missing: {missing}, unexpected: {extra})")
        self._csv.writerow([_fmt(values[c]) for c in self.columns])
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_rows(path: str | Path, rows: Iterable[Any], columns: Sequence[str] | None = None
               ) -> Path:
    """Write row dataclasses (or mappings) to ``path`` in one go."""
    with CsvWriter(path, columns) as out:
        for r in rows:
            data = r if isinstance(r, Mapping) else r.__dict__
            out.row(**{c: data[c] for c in out.columns})
    return Path(path)


# -- reading ---------------------------------------------------------------------------------

def _read(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header and c not in _OPTIONAL]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} "
                             f"(expected {', '.join(columns)})")
        return list(reader)


def _float(path: Path, row: dict[str, str], key: str) -> float:
    try:
        return float(row[key])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: column {key}: expected a number, got {row.get(key)!r}"
                         ) from None


def _opt_float(path: Path, row: dict[str, str], key: str) -> float | None:
    raw = (row.get(key) or "").strip()
    if not raw:
        return None
    value = _float(path, row, key)
    return value if math.isfinite(value) else None


def read_shares(path: str | Path) -> list[ShareRow]:
    path = Path(path)
    return [ShareRow(_float(path, r, "t_s"), r.get("service") or "", r["instance"],
                     _float(path, r, "packets_per_s"), _opt_float(path, r, "share"))
            for r in _read(path, SHARES_COLUMNS)]


def read_weights(path: str | Path) -> list[WeightRow]:
    path = Path(path)
    return [WeightRow(_float(path, r, "t_s"), r["node"], r.get("service") or "",
                      r["instance"], int(_float(path, r, "weight")))
            for r in _read(path, WEIGHTS_COLUMNS)]


def read_events(path: str | Path) -> list[EventRow]:
    path = Path(path)
    return [EventRow(_float(path, r, "t_s"), r["kind"], r.get("detail") or "")
            for r in _read(path, EVENTS_COLUMNS)]


def read_flows(path: str | Path) -> list[FlowRow]:
    path = Path(path)
    return [FlowRow(int(_float(path, r, "flow_id")), r["traffic"],
                    int(_float(path, r, "src_port")), int(_float(path, r, "dst_port")),
                    _float(path, r, "start_s"), _float(path, r, "end_s"),
                    int(_float(path, r, "sent")), int(_float(path, r, "received")),
                    r.get("instance") or "")
            for r in _read(path, FLOWS_COLUMNS)]


def read_traffic(path: str | Path) -> list[TrafficRow]:
    path = Path(path)
    return [TrafficRow(_float(path, r, "t_s"), r["traffic"], int(_float(path, r, "sent")),
                       int(_float(path, r, "received")))
            for r in _read(path, TRAFFIC_COLUMNS)]




def read_control(path: str | Path) -> list[dict[str, float]]:
    """``control.csv``: one dict per row, every column a number."""
    path = Path(path)
    return [{c: _float(path, r, c) for c in CONTROL_COLUMNS}
            for r in _read(path, CONTROL_COLUMNS)]


def read_weight_changes(path: str | Path) -> list[WeightRow]:
    return read_weights(path)


def read_losses(path: str | Path) -> list[LossRow]:
    path = Path(path)
    out = []
    for r in _read(path, LOSSES_COLUMNS):
        t = _float(path, r, "t_s")
        until = _opt_float(path, r, "until_s")
        out.append(LossRow(t, int(_float(path, r, "flow_id")), int(_float(path, r, "lost")),
                           t if until is None else until))
    return out


__all__ = [
    "COLUMNS", "EVENTS_COLUMNS", "EVENTS_FILE", "FLOWS_COLUMNS", "FLOWS_FILE",
    "LOSSES_COLUMNS", "LOSSES_FILE", "META_FILE", "SHARES_COLUMNS", "SHARES_FILE",
    "TRAFFIC_COLUMNS", "TRAFFIC_FILE", "WEIGHTS_COLUMNS", "WEIGHTS_FILE",
    "WEIGHT_CHANGES_COLUMNS", "WEIGHT_CHANGES_FILE", "CsvWriter", "EventRow", "FlowRow",
    "LossRow", "ShareRow", "TrafficRow", "WeightRow", "read_events", "read_flows",
    "read_losses", "read_shares", "read_traffic", "read_weight_changes", "read_weights",
    "write_rows",
]
