"""Run outputs (the CSV files a scenario run writes) and the figures drawn from them.

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
``meta.json`` -- ``{"scenario", "scenario_file", "topology", "policy", "time_scale",
    "seed", "repetition", "started_utc", "wall_duration_s"}`` (more keys allowed)

Figures (PNG, Agg backend, no display needed)
=============================================

* :func:`plot_traffic_distribution` -- Fig. 4: share per instance over time, events,
  warm-up and steady-state windows marked;
* :func:`plot_share_boxplot` -- Fig. 5: steady-state shares per instance and window over
  the runs of a set;
* :func:`plot_weights` -- WCMP weights (as % of the group) over time per node;
* :func:`plot_run` draws the per-run figures from a run folder.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from scenarios.report import RunSummary
    from scenarios.spec import Scenario

log = logging.getLogger(__name__)

SHARES_FILE = "shares.csv"
WEIGHTS_FILE = "weights.csv"
EVENTS_FILE = "events.csv"
FLOWS_FILE = "flows.csv"
TRAFFIC_FILE = "traffic.csv"
META_FILE = "meta.json"
FIG4_FILE = "fig4_traffic_distribution.png"
FIG5_FILE = "fig5_boxplot.png"
WEIGHTS_FIG_FILE = "weights.png"

SHARES_COLUMNS = ("t_s", "service", "instance", "packets_per_s", "share")
WEIGHTS_COLUMNS = ("t_s", "node", "service", "instance", "weight")
EVENTS_COLUMNS = ("t_s", "kind", "detail")
FLOWS_COLUMNS = ("flow_id", "traffic", "src_port", "dst_port", "start_s", "end_s", "sent",
                 "received", "instance")
TRAFFIC_COLUMNS = ("t_s", "traffic", "sent", "received")
COLUMNS = {SHARES_FILE: SHARES_COLUMNS, WEIGHTS_FILE: WEIGHTS_COLUMNS,
           EVENTS_FILE: EVENTS_COLUMNS, FLOWS_FILE: FLOWS_COLUMNS,
           TRAFFIC_FILE: TRAFFIC_COLUMNS}
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


# -- drawing helpers -------------------------------------------------------------------------

def _new_figure(rows: int = 1, height: float = 4.2) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(8.0, height * rows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    return fig, axes


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    log.info("wrote %s", out)
    return out


def _colours(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


_SKIP_EVENT_KINDS = {"run_start", "run_end", "note"}
_LINESTYLES = ("-", "--", "-.", ":")


def _mark_context(ax: Any, events: Sequence[EventRow], scenario: Scenario | None) -> None:
    """Warm-up (grey), steady-state windows (light blue, named), events (dashed lines,
    with the scenario's ``label`` where one matches)."""
    windows = scenario.measure.windows if scenario else ()
    warmup_s = scenario.measure.warmup_s if scenario else 0.0
    labels = {(e.action, e.target): e.label for e in scenario.events
              if e.label} if scenario else {}
    if warmup_s > 0:
        ax.axvspan(0, warmup_s, color="0.88", zorder=0, lw=0)
        ax.text(warmup_s / 2, 0.99, "warm-up", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8, color="0.35")
    for w in windows:
        ax.axvspan(w.start_s, w.end_s, color="tab:blue", alpha=0.08, zorder=0, lw=0)
        ax.text((w.start_s + w.end_s) / 2, 0.99, w.name, transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8, color="tab:blue")
    for e in events:
        if e.kind in _SKIP_EVENT_KINDS:
            continue
        colour = "tab:red" if e.kind in ("error", "fail_instance", "fail_link",
                                         "fail_node") else "0.2"
        ax.axvline(e.t_s, color=colour, ls="--", lw=1.0, zorder=1)
        text = labels.get((e.kind, e.detail)) or f"{e.kind} {e.detail}".strip()
        ax.text(e.t_s, 0.90, " " + text, transform=ax.get_xaxis_transform(), rotation=90,
                ha="right", va="top", fontsize=7, color=colour)


def _percent_over_time(ax: Any, ylabel: str, scenario: Scenario | None) -> None:
    """Axes of a time series in percent: 0..100 over the scenario's duration, grid."""
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("Time (s)")
    if scenario is not None:
        ax.set_xlim(0, scenario.duration_s)
    ax.grid(True, alpha=0.3)


def _instance_label(name: str, scenario: Scenario | None) -> str:
    if scenario is None:
        return name
    node = next((i.node for i in scenario.topology.instances if i.name == name), None)
    return f"{name} (node {node})" if node else name


# -- Fig. 4 -----------------------------------------------------------------------------------

def plot_traffic_distribution(shares: Sequence[ShareRow], out: str | Path, *,
                              events: Sequence[EventRow] = (),
                              scenario: Scenario | None = None,
                              expected: Mapping[str, Mapping[str, float]] | None = None,
                              title: str = "Traffic distribution over time on the VNF "
                                           "instances") -> Path:
    """Fig. 4: each instance's share of its service's traffic (%) against time (s).

    ``scenario`` (optional) adds the warm-up, the steady-state windows, the duration as
    the x range and node names in the legend; ``expected`` (window -> instance -> %,
    e.g. the WCMP prediction) is drawn as dotted segments over each window. One panel
    per service. Instances that never carried traffic are left out.
    """
    by_service: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list))
    carried: set[str] = set()
    for r in shares:
        if r.share is not None:
            by_service[r.service][r.instance].append((r.t_s, 100.0 * r.share))
            if r.share > 0:
                carried.add(r.instance)
    services = sorted(by_service) or [""]
    fig, axes = _new_figure(len(services))
    windows = scenario.measure.windows if scenario else ()
    for ax, service in zip(axes, services, strict=True):
        series = {i: sorted(pts) for i, pts in by_service.get(service, {}).items()
                  if i in carried}
        colours = _colours(sorted(series))
        _mark_context(ax, events, scenario)
        for inst in sorted(series):
            ts, ys = zip(*series[inst], strict=True)
            ax.plot(ts, ys, color=colours[inst], lw=1.4, marker=".", ms=3,
                    label=_instance_label(inst, scenario))
        if expected and windows:
            for w in windows:
                for inst, pct in expected.get(w.name, {}).items():
                    if inst in colours:
                        ax.hlines(pct, w.start_s, w.end_s, colors=[colours[inst]], lw=1.2,
                                  linestyles=":")
        _percent_over_time(ax, "Traffic share (%)", scenario)
        if series:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no traffic measured", transform=ax.transAxes, ha="center")
        ax.set_title(title if len(services) == 1 or not service
                     else f"{title} - service {service}", fontsize=10)
    if expected:
        fig.text(0.01, 0.005, "dotted: predicted steady state", fontsize=7, color="0.3")
    return _save(fig, out)


# -- Fig. 5 -----------------------------------------------------------------------------------

def plot_share_boxplot(summaries: Sequence[RunSummary], out: str | Path, *,
                       reference: Mapping[str, Mapping[str, float]] | None = None,
                       expected: Mapping[str, Mapping[str, float]] | None = None,
                       scenario: Scenario | None = None,
                       title: str = "Traffic distribution on the VNF instances during "
                                    "the steady-state windows") -> Path:
    """Fig. 5: box plot of the steady-state shares (%) per window and instance.

    Each box pools the per-sample shares of every run of the set (the paper's 20 runs;
    its spread statement, "50 % of the loads are less than 3 points from the median",
    describes such a pool); a dot marks each run's mean. ``reference`` (the paper's
    numbers) is drawn as a red x, ``expected`` (the WCMP prediction) as a blue diamond;
    both map window -> instance -> %.
    """
    labels: list[str] = []
    data: list[list[float]] = []
    means: list[list[float]] = []
    positions: list[float] = []
    refs: list[tuple[float, float]] = []
    preds: list[tuple[float, float]] = []
    group_edges: list[tuple[float, float, str]] = []
    windows: list[str] = []
    for s in summaries:
        for w in s.windows:
            if w not in windows:
                windows.append(w)
    pos = 0.0
    for w in windows:
        instances = sorted({i for s in summaries for i in s.windows.get(w, {})})
        first = pos + 1
        for inst in instances:
            pos += 1
            stats = [s.windows[w][inst] for s in summaries if inst in s.windows.get(w, {})]
            pooled = [x for st in stats for x in st.samples]
            data.append(pooled or [math.nan])
            means.append([st.mean for st in stats if st.mean is not None])
            positions.append(pos)
            labels.append(_instance_label(inst, scenario).replace(" (", "\n("))
            if reference and inst in reference.get(w, {}):
                refs.append((pos, reference[w][inst]))
            if expected and inst in expected.get(w, {}):
                preds.append((pos, expected[w][inst]))
        if instances:
            group_edges.append((first, pos, w))
        pos += 0.7
    fig, (ax,) = _new_figure(1, height=4.6)
    if data:
        ax.boxplot(data, positions=positions, widths=0.55, showfliers=True,
                   medianprops={"color": "tab:orange", "lw": 1.6},
                   flierprops={"marker": ".", "ms": 3, "alpha": 0.5})
        for p, ms in zip(positions, means, strict=True):
            ax.plot([p] * len(ms), ms, ls="none", marker="o", ms=3.5, color="0.25",
                    alpha=0.7, zorder=3)
        if refs:
            ax.plot(*zip(*refs, strict=True), ls="none", marker="x", ms=9, mew=2,
                    color="tab:red", label="paper", zorder=4)
        if preds:
            ax.plot(*zip(*preds, strict=True), ls="none", marker="D", ms=5,
                    color="tab:blue", label="WCMP prediction", zorder=4)
        ax.set_xticks(positions, labels, fontsize=8)
        for lo, hi, name in group_edges:
            ax.text((lo + hi) / 2, 0.99, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=9, weight="bold")
        for lo, _, _ in group_edges[1:]:
            ax.axvline(lo - 0.85, color="0.7", lw=0.8)
        if refs or preds:
            ax.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1.0, 0.92))
    else:
        ax.text(0.5, 0.5, "no steady-state samples", transform=ax.transAxes, ha="center")
    ax.set_ylim(0, 100)
    ax.set_ylabel("Traffic share (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"{title} ({len(summaries)} run{'s' if len(summaries) != 1 else ''})",
                 fontsize=10)
    return _save(fig, out)


# -- weights ----------------------------------------------------------------------------------

def plot_weights(weights: Sequence[WeightRow], out: str | Path, *,
                 events: Sequence[EventRow] = (), nodes: Sequence[str] | None = None,
                 scenario: Scenario | None = None, max_panels: int = 6) -> Path:
    """WCMP weights over time: one panel per (node, service), each member's weight as a
    % of the group (steps; raw integer weights are in ``weights.csv``)."""
    groups: dict[tuple[str, str], dict[float, dict[str, int]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in weights:
        if nodes is None or r.node in nodes:
            groups[(r.node, r.service)][r.t_s][r.instance] = r.weight
    keys = sorted(groups)
    if len(keys) > max_panels:
        log.info("weights: drawing %d of %d (node, service) groups", max_panels, len(keys))
        keys = keys[:max_panels]
    fig, axes = _new_figure(max(len(keys), 1), height=3.2)
    if not keys:
        axes[0].text(0.5, 0.5, "no weights recorded", transform=axes[0].transAxes,
                     ha="center")
    for ax, key in zip(axes, keys, strict=False):
        samples = groups[key]
        members = sorted({i for row in samples.values() for i in row})
        colours = _colours(members)
        times = sorted(samples)
        _mark_context(ax, events, scenario)
        for k, inst in enumerate(members):
            ys = []
            for t in times:
                row = samples[t]
                total = sum(row.values())
                ys.append(100.0 * row.get(inst, 0) / total if total > 0 else math.nan)
            ax.step(times, ys, where="post", color=colours[inst], lw=1.6,
                    ls=_LINESTYLES[k % len(_LINESTYLES)],
                    label=_instance_label(inst, scenario))  # styles: equal weights overlap
        _percent_over_time(ax, "WCMP weight (%)", scenario)
        ax.legend(loc="center right", fontsize=8)
        node, service = key
        ax.set_title(f"WCMP weights at node {node}" + (f", service {service}" if service
                                                       else ""), fontsize=10)
    return _save(fig, out)


# -- per run ----------------------------------------------------------------------------------

def plot_run(run: str | Path, scenario: Scenario | None = None,
             expected: Mapping[str, Mapping[str, float]] | None = None) -> list[Path]:
    """Draw Fig. 4 and the weights figure of one run folder (files that are missing are
    skipped with a log message). Returns the PNGs written."""
    run = Path(run)
    events = read_events(run / EVENTS_FILE) if (run / EVENTS_FILE).is_file() else []
    written: list[Path] = []
    if (run / SHARES_FILE).is_file():
        written.append(plot_traffic_distribution(
            read_shares(run / SHARES_FILE), run / FIG4_FILE, events=events,
            scenario=scenario, expected=expected))
    else:
        log.warning("%s: no %s, no traffic distribution figure", run, SHARES_FILE)
    if (run / WEIGHTS_FILE).is_file():
        nodes = None
        if scenario is not None:
            hosts = {h.name: h.node for h in scenario.topology.hosts}
            nodes = sorted({hosts[c.source] for c in scenario.traffic if c.chain is not None})
        written.append(plot_weights(read_weights(run / WEIGHTS_FILE), run / WEIGHTS_FIG_FILE,
                                    events=events, nodes=nodes or None, scenario=scenario))
    else:
        log.warning("%s: no %s, no weights figure", run, WEIGHTS_FILE)
    return written


__all__ = [
    "COLUMNS", "EVENTS_COLUMNS", "EVENTS_FILE", "FIG4_FILE", "FIG5_FILE", "FLOWS_COLUMNS",
    "FLOWS_FILE", "META_FILE", "SHARES_COLUMNS", "SHARES_FILE", "TRAFFIC_COLUMNS",
    "TRAFFIC_FILE", "WEIGHTS_COLUMNS", "WEIGHTS_FIG_FILE", "WEIGHTS_FILE", "CsvWriter",
    "EventRow", "FlowRow", "ShareRow", "TrafficRow", "WeightRow", "plot_run",
    "plot_share_boxplot", "plot_traffic_distribution", "plot_weights", "read_events",
    "read_flows", "read_shares", "read_traffic", "read_weights", "write_rows",
]
