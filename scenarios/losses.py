"""A run's lost packets by send time: the sinks' gap rows + the generators' flow logs.

Every sink of a run writes its sequence gaps (``--losses``, wall-clock seconds after the
run's epoch, see :mod:`scenarios.traffic.sink`); the generators write one JSON line per
flow (start, rate, packets sent). :func:`run_losses` turns them into the rows of the
run's ``losses.csv`` (:class:`scenarios.outputs.LossRow`, scenario time):

1. a late packet that filled a gap (a sink row with ``lost`` -1) is taken off the gap's
   row (matched by sequence number);
2. send times are taken from the generator's schedule where the flow's log is there
   (packet ``k`` of a flow is due at ``start + k / rate``, and the generator never sends
   early and is at most ~0.1 ms late), else the sink's interpolation is kept;
3. packets lost after the last one a sink received (tail loss, invisible to the sink:
   e.g. a flow that ended while its instance was dead) are added from the flow logs:
   ``sent - received - lost in gaps`` packets, from the one after the last received to
   the flow's last send.

So the sum of ``lost`` is the run's sent - received.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.outputs import LossRow

log = logging.getLogger(__name__)

FlowKey = tuple[int, int]  # (flow_id, src_port)


@dataclass
class SinkLoss:
    """One row of a sink's ``--losses`` file (wall-clock seconds after the epoch)."""

    t_s: float
    flow_id: int
    src_port: int
    first_seq: int
    lost: int
    until_s: float


def read_sink_losses(path: str | Path) -> list[SinkLoss]:
    """A sink's loss file (rows that do not parse, e.g. a last line cut short, skipped)."""
    out = []
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                try:
                    out.append(SinkLoss(float(r["t_s"]), int(r["flow_id"]), int(r["src_port"]),
                                        int(r["first_seq"]), int(r["lost"]),
                                        float(r["until_s"])))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
    return out


def read_flow_logs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def read_sink_flows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in paths:
        try:
            out.extend(json.loads(path.read_text()).get("flows", []))
        except (OSError, ValueError):
            continue
    return out


def net_gaps(rows: Iterable[SinkLoss]) -> list[SinkLoss]:
    """Gap rows with the late packets that filled them taken off (split where a packet
    inside a gap arrived, so first_seq and times stay right); rows of 0 dropped."""
    gaps: dict[FlowKey, list[SinkLoss]] = {}
    fills: list[SinkLoss] = []
    for r in rows:
        if r.lost > 0:
            gaps.setdefault((r.flow_id, r.src_port), []).append(
                SinkLoss(r.t_s, r.flow_id, r.src_port, r.first_seq, r.lost, r.until_s))
        elif r.lost < 0:
            fills.append(r)
    for f in fills:
        rows_of = gaps.get((f.flow_id, f.src_port), [])
        for idx, g in enumerate(rows_of):
            if g.first_seq <= f.first_seq < g.first_seq + g.lost:
                step = (g.until_s - g.t_s) / (g.lost - 1) if g.lost > 1 else 0.0
                k = f.first_seq - g.first_seq
                before = SinkLoss(g.t_s, g.flow_id, g.src_port, g.first_seq, k,
                                  g.t_s + (k - 1) * step)
                after = SinkLoss(g.t_s + (k + 1) * step, g.flow_id, g.src_port,
                                 f.first_seq + 1, g.lost - k - 1, g.until_s)
                rows_of[idx:idx + 1] = [x for x in (before, after) if x.lost > 0]
                break
    return sorted((g for rs in gaps.values() for g in rs), key=lambda g: (g.t_s, g.flow_id))


def _schedule(rec: Mapping[str, Any], epoch_ns: int) -> tuple[float, float] | None:
    """(start in wall seconds after the epoch, packets per second) of a flow log record."""
    start_ns, rate = rec.get("start_ns"), rec.get("rate_pps")
    if not isinstance(start_ns, int) or not isinstance(rate, int | float) or rate <= 0:
        return None
    return (start_ns - epoch_ns) / 1e9, float(rate)


def run_losses(sink_rows: Iterable[SinkLoss], flow_logs: Iterable[Mapping[str, Any]],
               sink_flows: Iterable[Mapping[str, Any]], epoch_ns: int, time_scale: float
               ) -> list[LossRow]:
    """The rows of ``losses.csv`` (scenario time), see the module doc."""
    logs: dict[FlowKey, Mapping[str, Any]] = {}
    for rec in flow_logs:
        try:
            logs[(int(rec["flow_id"]), int(rec["src_port"]))] = rec
        except (KeyError, TypeError, ValueError):
            continue
    received: dict[FlowKey, Mapping[str, Any]] = {}
    for f in sink_flows:
        try:
            received[(int(f["flow_id"]), int(f["src_port"]))] = f
        except (KeyError, TypeError, ValueError):
            continue
    out: list[LossRow] = []
    gap_lost: dict[FlowKey, int] = {}
    for g in net_gaps(sink_rows):
        key = (g.flow_id, g.src_port)
        gap_lost[key] = gap_lost.get(key, 0) + g.lost
        t0, t1 = g.t_s, g.until_s
        sched = _schedule(logs[key], epoch_ns) if key in logs else None
        if sched is not None:
            start, rate = sched
            t0, t1 = start + g.first_seq / rate, start + (g.first_seq + g.lost - 1) / rate
        out.append(LossRow(t0 / time_scale, g.flow_id, g.lost, t1 / time_scale))
    for key, rec in logs.items():
        sent = int(rec.get("packets_sent") or 0)
        got = received.get(key, {})
        unique = int(got.get("unique", got.get("packets", 0)) or 0)
        tail = sent - unique - gap_lost.get(key, 0)
        sched = _schedule(rec, epoch_ns)
        if tail <= 0 or sched is None:
            continue
        start, rate = sched
        first = int(got.get("max_seq", -1)) + 1
        t0 = start + first / rate
        last_ns = rec.get("last_send_ns")
        t1 = (last_ns - epoch_ns) / 1e9 if isinstance(last_ns, int) \
            else start + (first + tail - 1) / rate
        out.append(LossRow(t0 / time_scale, key[0], tail, max(t0, t1) / time_scale))
    return sorted(out, key=lambda r: (r.t_s, r.flow_id))


__all__ = ["SinkLoss", "net_gaps", "read_flow_logs", "read_sink_flows", "read_sink_losses",
           "run_losses"]
