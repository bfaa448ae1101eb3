"""Run outputs (the CSV files a scenario run writes) and the figures drawn from them.

The CSV files (names, columns, readers and :class:`CsvWriter`) are described and
implemented in :mod:`scenarios.outputs`; everything there is importable from here too.

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

import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scenarios.outputs import (
    COLUMNS,
    EVENTS_COLUMNS,
    EVENTS_FILE,
    FLOWS_COLUMNS,
    FLOWS_FILE,
    LOSSES_COLUMNS,
    LOSSES_FILE,
    META_FILE,
    SHARES_COLUMNS,
    SHARES_FILE,
    TRAFFIC_COLUMNS,
    TRAFFIC_FILE,
    WEIGHT_CHANGES_COLUMNS,
    WEIGHT_CHANGES_FILE,
    WEIGHTS_COLUMNS,
    WEIGHTS_FILE,
    CsvWriter,
    EventRow,
    FlowRow,
    LossRow,
    ShareRow,
    TrafficRow,
    WeightRow,
    read_events,
    read_flows,
    read_losses,
    read_shares,
    read_traffic,
    read_weight_changes,
    read_weights,
    write_rows,
)

if TYPE_CHECKING:
    from scenarios.report import RunSummary
    from scenarios.spec import Scenario

log = logging.getLogger(__name__)

FIG4_FILE = "fig4_traffic_distribution.png"
FIG5_FILE = "fig5_boxplot.png"
WEIGHTS_FIG_FILE = "weights.png"
LOSS_FIG_FILE = "loss_timeline.png"

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
                                         "fail_node", "fail_daemon") else "0.2"
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


# -- loss over time ---------------------------------------------------------------------------

def loss_per_period(losses: Sequence[LossRow], period_s: float, duration_s: float
                    ) -> list[tuple[float, int]]:
    """Packets lost per interval ``((k - 1) p, k p]`` of ``period_s`` (labelled by its end,
    like ``shares.csv``), by send time. A row's ``lost`` packets are spread evenly over
    its ``[t_s, until_s]``; losses outside ``[0, duration_s]`` go to the first / last
    interval."""
    n_bins = max(1, math.ceil(duration_s / period_s - 1e-9))
    counts = [0] * n_bins

    def add(t: float, n: int) -> None:
        k = math.ceil(t / period_s - 1e-9) - 1
        counts[min(max(k, 0), n_bins - 1)] += n

    for r in losses:
        if r.lost <= 0:
            continue
        if r.until_s <= r.t_s or r.lost == 1:
            add(r.t_s, r.lost)
            continue
        step = (r.until_s - r.t_s) / (r.lost - 1)
        for j in range(r.lost):
            add(r.t_s + j * step, 1)
    return [((k + 1) * period_s, c) for k, c in enumerate(counts)]


def plot_loss_timeline(losses: Sequence[LossRow], out: str | Path, *,
                       events: Sequence[EventRow] = (), scenario: Scenario | None = None,
                       period_s: float | None = None, duration_s: float | None = None,
                       title: str = "Packets lost per sample period (by send time)"
                       ) -> Path:
    """Bars of the packets lost in each sample period (scenario time), every event of
    the run marked (dashed line and label), warm-up and windows shaded as in Fig. 4."""
    if period_s is None:
        period_s = scenario.measure.sample_period_s if scenario else 1.0
    if duration_s is None:
        duration_s = scenario.duration_s if scenario else max(
            [r.until_s for r in losses] + [e.t_s for e in events] + [period_s])
    bins = loss_per_period(losses, period_s, duration_s)
    fig, (ax,) = _new_figure(1, height=3.6)
    _mark_context(ax, events, scenario)
    total = sum(c for _, c in bins)
    ax.bar([t - period_s for t, _ in bins], [c for _, c in bins], width=period_s,
           align="edge", color="tab:red", alpha=0.75, lw=0, zorder=2)
    peak = max((c for _, c in bins), default=0)
    ax.set_ylim(0, max(peak * 1.25, 1))
    ax.set_xlim(0, duration_s)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel(f"Packets lost per {period_s:g} s")
    ax.grid(True, alpha=0.3)
    flows = len({r.flow_id for r in losses if r.lost > 0})
    ax.set_title(f"{title}: {total} lost in {flows} flow{'s' if flows != 1 else ''}",
                 fontsize=10)
    if not total:
        ax.text(0.5, 0.5, "no packet lost", transform=ax.transAxes, ha="center")
    return _save(fig, out)


# -- per run ----------------------------------------------------------------------------------

def plot_run(run: str | Path, scenario: Scenario | None = None,
             expected: Mapping[str, Mapping[str, float]] | None = None) -> list[Path]:
    """Draw Fig. 4, the weights figure and the loss timeline of one run folder (files
    that are missing are skipped with a log message). Returns the PNGs written."""
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
    if (run / LOSSES_FILE).is_file():
        written.append(plot_loss_timeline(read_losses(run / LOSSES_FILE),
                                          run / LOSS_FIG_FILE, events=events,
                                          scenario=scenario))
    else:
        log.warning("%s: no %s, no loss timeline", run, LOSSES_FILE)
    return written


__all__ = [
    "COLUMNS", "EVENTS_COLUMNS", "EVENTS_FILE", "FIG4_FILE", "FIG5_FILE", "FLOWS_COLUMNS",
    "FLOWS_FILE", "LOSSES_COLUMNS", "LOSSES_FILE", "LOSS_FIG_FILE", "META_FILE",
    "SHARES_COLUMNS", "SHARES_FILE", "TRAFFIC_COLUMNS", "TRAFFIC_FILE", "WEIGHTS_COLUMNS",
    "WEIGHTS_FIG_FILE", "WEIGHTS_FILE", "WEIGHT_CHANGES_COLUMNS", "WEIGHT_CHANGES_FILE",
    "CsvWriter", "EventRow", "FlowRow", "LossRow", "ShareRow", "TrafficRow", "WeightRow",
    "loss_per_period", "plot_loss_timeline", "plot_run", "plot_share_boxplot",
    "plot_traffic_distribution", "plot_weights", "read_events", "read_flows", "read_losses",
    "read_shares", "read_traffic", "read_weight_changes", "read_weights", "write_rows",
]
