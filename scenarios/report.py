"""Reports of scenario runs: measured steady-state shares beside the paper and WCMP.

For each steady-state window of the scenario (``measure.windows``) and each instance:
the measured share of its service's traffic (mean of the per-sample ``share`` of
``shares.csv`` inside the window, see :mod:`scenarios.figures`), the paper's number
(the window's ``reference``), the WCMP prediction (the fixed point of the cost ->
weight -> load loop for the policy in effect, :func:`dmano.policy.fixed_point_shares`,
with real and with integer weights) and the differences in percentage points; packet
loss in total and just before and after each event; and, for scenarios that carry the
paper's numbers, a note on the two readings of the paper.

The runner calls :func:`report_run` after each run (``summary.json`` and the per-run
figures in the run folder) and :func:`report_set` after the last one (``report.txt``,
``summary.json`` and Fig. 5 in the set folder). ``python -m scenarios.report SCENARIO
RUN_DIR...`` does the same again from the files of finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from dmano.policy import (
    PAPER_POLICY,
    SECTION_VI,
    InverseCost,
    Policy,
    StaticCost,
    fixed_point_shares,
    load_policy,
    section_vi_prediction,
    shipped_policy,
)
from scenarios import figures
from scenarios.spec import ACTIONS, Scenario, load_scenario

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.txt"


# -- per-run summary ------------------------------------------------------------------------

@dataclass
class ShareStats:
    """One instance's share (%) over the samples of one window of one run."""

    samples: list[float]  # per-sample shares, %
    pooled: float | None = None  # sum of its packets / sum of all packets, %

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "median": self.median, "pooled": self.pooled,
                "n": self.n, "samples": self.samples}


@dataclass
class EventLoss:
    """Packets sent/received in ``loss_window_s`` before and after one event."""

    t_s: float
    kind: str
    detail: str
    before_sent: int
    before_received: int
    after_sent: int
    after_received: int

    @property
    def before_lost(self) -> int:
        return max(self.before_sent - self.before_received, 0)

    @property
    def after_lost(self) -> int:
        return max(self.after_sent - self.after_received, 0)


@dataclass
class RunSummary:
    run: str  # the run folder
    repetition: int | None = None
    windows: dict[str, dict[str, ShareStats]] = field(default_factory=dict)
    flow_shares: dict[str, dict[str, float]] = field(default_factory=dict)  # %, new flows
    sent: int | None = None
    received: int | None = None
    event_losses: list[EventLoss] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int | None:
        if self.sent is None or self.received is None:
            return None
        return max(self.sent - self.received, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "repetition": self.repetition,
            "windows": {w: {i: s.to_dict() for i, s in per.items()}
                        for w, per in self.windows.items()},
            "flow_shares": self.flow_shares, "sent": self.sent, "received": self.received,
            "lost": self.lost, "event_losses": [asdict(e) for e in self.event_losses],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        return cls(
            run=data["run"], repetition=data.get("repetition"),
            windows={w: {i: ShareStats(list(s["samples"]), s.get("pooled"))
                         for i, s in per.items()} for w, per in data["windows"].items()},
            flow_shares=data.get("flow_shares", {}), sent=data.get("sent"),
            received=data.get("received"),
            event_losses=[EventLoss(**e) for e in data.get("event_losses", [])],
            meta=data.get("meta", {}),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunSummary:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _instances_of(scenario: Scenario) -> dict[str, str]:
    """instance -> service."""
    return {i.name: i.service for i in scenario.topology.instances}


def window_shares(scenario: Scenario, rows: Sequence[figures.ShareRow]
                  ) -> dict[str, dict[str, ShareStats]]:
    """Per window and instance, the shares of the samples whose interval ends inside it.

    An instance is listed if it is live at the window's start (per the timeline) or
    carried traffic in the window.
    """
    out: dict[str, dict[str, ShareStats]] = {}
    for w in scenario.measure.windows:
        live = scenario.state_at(w.start_s).live_instances(scenario.topology)
        inside = [r for r in rows if w.contains(r.t_s)]
        carried = {r.instance for r in inside if r.packets_per_s > 0}
        per_service_total: dict[str, float] = {}
        for r in inside:
            per_service_total[r.service] = per_service_total.get(r.service, 0.0) \
                + r.packets_per_s
        stats: dict[str, ShareStats] = {}
        for inst in sorted({r.instance for r in inside} & (live | carried)):
            mine = [r for r in inside if r.instance == inst]
            samples = [100.0 * r.share for r in mine if r.share is not None]
            total = per_service_total.get(mine[0].service, 0.0)
            pooled = 100.0 * sum(r.packets_per_s for r in mine) / total if total > 0 else None
            stats[inst] = ShareStats(samples, pooled)
        out[w.name] = stats
    return out


def _flow_shares(scenario: Scenario, flows: Sequence[figures.FlowRow]
                 ) -> dict[str, dict[str, float]]:
    """% of the flows starting in each window per instance (flows with a known one)."""
    out: dict[str, dict[str, float]] = {}
    for w in scenario.measure.windows:
        starting = [f for f in flows if f.instance and w.contains(f.start_s)]
        if not starting:
            continue
        counts: dict[str, int] = {}
        for f in starting:
            counts[f.instance] = counts.get(f.instance, 0) + 1
        out[w.name] = {i: 100.0 * c / len(starting) for i, c in sorted(counts.items())}
    return out


def _event_times(scenario: Scenario, events: Sequence[figures.EventRow] | None
                 ) -> list[tuple[float, str, str]]:
    if events:
        done = [(e.t_s, e.kind, e.detail) for e in events if e.kind in ACTIONS]
        if done or not scenario.events:
            return done
    return [(e.at_s, e.action, e.target) for e in scenario.events]


def event_losses(scenario: Scenario, traffic: Sequence[figures.TrafficRow],
                 events: Sequence[figures.EventRow] | None = None) -> list[EventLoss]:
    """Sent/received in ``(t - w, t]`` and ``(t, t + w]`` around each event (samples by
    the end of their interval), ``w`` = ``measure.loss_window_s``."""
    w = scenario.measure.loss_window_s
    out = []
    for t, kind, detail in _event_times(scenario, events):
        before = [r for r in traffic if t - w < r.t_s <= t]
        after = [r for r in traffic if t < r.t_s <= t + w]
        out.append(EventLoss(t, kind, detail,
                             sum(r.sent for r in before), sum(r.received for r in before),
                             sum(r.sent for r in after), sum(r.received for r in after)))
    return out


def summarize_run(run: str | Path, scenario: Scenario, repetition: int | None = None
                  ) -> RunSummary:
    """Read one run folder's outputs (missing files give empty parts)."""
    run = Path(run)
    meta: dict[str, Any] = {}
    if (run / figures.META_FILE).is_file():
        meta = json.loads((run / figures.META_FILE).read_text(encoding="utf-8"))
    if repetition is None:
        repetition = meta.get("repetition")
    summary = RunSummary(run=str(run), repetition=repetition, meta=meta)
    if (run / figures.SHARES_FILE).is_file():
        summary.windows = window_shares(scenario, figures.read_shares(run / figures.SHARES_FILE))
    events = (figures.read_events(run / figures.EVENTS_FILE)
              if (run / figures.EVENTS_FILE).is_file() else None)
    traffic = (figures.read_traffic(run / figures.TRAFFIC_FILE)
               if (run / figures.TRAFFIC_FILE).is_file() else None)
    if (run / figures.FLOWS_FILE).is_file():
        flows = figures.read_flows(run / figures.FLOWS_FILE)
        summary.sent = sum(f.sent for f in flows)
        summary.received = sum(f.received for f in flows)
        summary.flow_shares = _flow_shares(scenario, flows)
    elif traffic is not None:
        summary.sent = sum(r.sent for r in traffic)
        summary.received = sum(r.received for r in traffic)
    if traffic is not None:
        summary.event_losses = event_losses(scenario, traffic, events)
    return summary


# -- prediction -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    """WCMP steady state for one service in one window (shares in %)."""

    window: str
    service: str
    ingress: str
    policy: str
    total_load: float  # units/s
    concurrent_flows: float
    shares: dict[str, float]
    integer_shares: dict[str, float]
    converged: bool
    integer_converged: bool
    placement_sd: dict[str, float]  # pts: binomial spread of placing the concurrent flows
    notes: tuple[str, ...] = ()


def predict(scenario: Scenario) -> dict[str, list[Prediction]]:
    """Per window, the WCMP fixed point of each service that chained traffic enters first.

    Uses the timeline state at the window's start (live instances, failed links and
    nodes, the policy with any ``set_policy_param`` applied, the ``set_load`` rates),
    network costs = shortest paths over the topology's links from the ingress node (the
    source host's node; 0 for an instance on it), capacities and configured costs from
    the topology, and the steady-state load ``sum(flows_per_s * flow_duration_s *
    packets_per_s)``. Services reached only later in a chain, or from several ingress
    nodes, are not predicted (a note says so).
    """
    topo = scenario.topology
    hosts = {h.name: h.node for h in topo.hosts}
    chains = {c.spi: c.services for c in topo.chains}
    out: dict[str, list[Prediction]] = {}
    for w in scenario.measure.windows:
        state = scenario.state_at(w.start_s)
        live = state.live_instances(topo)
        graph = nx.Graph()
        graph.add_nodes_from(n.name for n in topo.nodes if n.name not in state.failed_nodes)
        for lk in topo.links:
            if (tuple(sorted((lk.a, lk.b))) not in state.failed_links
                    and lk.a in graph and lk.b in graph):
                graph.add_edge(lk.a, lk.b, weight=lk.cost)
        by_service: dict[str, list[Any]] = {}
        for c in scenario.traffic:
            if c.chain is not None:
                by_service.setdefault(chains[c.chain][0], []).append(c)
        preds = []
        for service, classes in sorted(by_service.items()):
            notes: list[str] = []
            ingresses = sorted({hosts[c.source] for c in classes})
            if len(ingresses) > 1:
                log.info("window %s: service %s enters at %s: no prediction", w.name,
                         service, ", ".join(ingresses))
                continue
            ingress = ingresses[0]
            if ingress not in graph:
                continue
            dist = nx.single_source_dijkstra_path_length(graph, ingress)
            cands = [i for i in topo.instances
                     if i.service == service and i.name in live and i.node in dist]
            if not cands:
                continue
            load = 0.0
            flows = 0.0
            for c in classes:
                fps, pps = state.rate(c.name)
                if c.start_s > w.start_s - c.flow_duration_s or c.end_s < w.end_s:
                    notes.append(f"traffic {c.name} is not in steady state over the window")
                load += fps * c.flow_duration_s * pps
                flows += fps * c.flow_duration_s
            longest = max(c.flow_duration_s for c in classes)
            for e in scenario.events:
                if w.start_s <= e.at_s < w.end_s:
                    notes.append(f"{e.describe()} at {e.at_s:g} s falls inside the window")
                elif w.start_s - longest < e.at_s < w.start_s:
                    notes.append(f"{e.describe()} at {e.at_s:g} s is less than one flow "
                                 f"duration ({longest:g} s) before the window's start")
            nets = [float(dist[i.node]) for i in cands]
            caps = [float(i.capacity) for i in cands]
            conf = [i.cost for i in cands]
            real = fixed_point_shares(state.policy, nets, caps, load, configured_costs=conf)
            ints = fixed_point_shares(state.policy, nets, caps, load, configured_costs=conf,
                                      integer=True)
            names = [i.name for i in cands]
            shares = {n: 100.0 * s for n, s in zip(names, real.shares, strict=True)}
            sd = {n: (100.0 * math.sqrt(s * (1 - s) / flows) if flows > 0 else 0.0)
                  for n, s in zip(names, real.shares, strict=True)}
            if not real.converged:
                notes.append("the real-valued iteration did not converge")
            if not ints.converged:
                notes.append("with integer weights the loop cycles between neighbouring "
                             "points (shown: where the iteration stopped)")
            over = [n for n, ld, cap in zip(names, real.loads, caps, strict=True) if ld > cap]
            if over:
                notes.append(f"predicted overload on {', '.join(over)}")
            preds.append(Prediction(
                window=w.name, service=service, ingress=ingress, policy=state.policy.name,
                total_load=load, concurrent_flows=flows, shares=shares,
                integer_shares={n: 100.0 * s for n, s in zip(names, ints.shares,
                                                               strict=True)},
                converged=real.converged, integer_converged=ints.converged,
                placement_sd=sd, notes=tuple(dict.fromkeys(notes)),
            ))
        out[w.name] = preds
    return out


def predicted_shares(preds: dict[str, list[Prediction]], integer: bool = False
                     ) -> dict[str, dict[str, float]]:
    """window -> instance -> predicted share (%)."""
    return {w: {i: v for p in ps for i, v in (p.integer_shares if integer
                                              else p.shares).items()}
            for w, ps in preds.items()}


# -- the two readings -----------------------------------------------------------------------

READING_FIGURE = "paper figure"
READING_PROPORTIONAL = "proportional-cost + remaining-capacity (paper.yaml)"
READING_PROPORTIONAL_INT = "same, integer weights (64)"
READING_INVERSE_STATIC = "inverse-cost, static VNF costs 150 (Section V text)"
READING_INVERSE_UTIL = "inverse-cost + utilisation (inverse-cost.yaml)"


def readings() -> dict[str, dict[str, float]]:
    """Phase-2 shares (%) per node of the Section VI setup under each reading."""
    inverse_static = Policy(name="inverse-cost-static", cost=StaticCost(),
                            weight=InverseCost())

    def pct(shares: dict[str, float]) -> dict[str, float]:
        return {n: 100.0 * v for n, v in shares.items()}

    out = {
        READING_FIGURE: pct(SECTION_VI["paper_shares"]["phase2"]),
        READING_PROPORTIONAL: pct(section_vi_prediction(PAPER_POLICY)["phase2"]),
        READING_PROPORTIONAL_INT: pct(
            section_vi_prediction(PAPER_POLICY, integer=True)["phase2"]),
        READING_INVERSE_STATIC: pct(section_vi_prediction(inverse_static)["phase2"]),
    }
    try:
        inv = load_policy(shipped_policy("inverse-cost"))
        out[READING_INVERSE_UTIL] = pct(section_vi_prediction(inv)["phase2"])
    except (OSError, ValueError) as exc:  # pragma: no cover - shipped file broken
        log.warning("inverse-cost policy: %s", exc)
    return out


def reproduction_note(policy: Policy | None = None) -> str:
    """Why the paper's Fig. 4/5 numbers fit one reading of the paper and not the other."""
    r = readings()
    d = {k: f"{v['D']:.1f}%" for k, v in r.items()}
    prop = r[READING_PROPORTIONAL]
    text = (
        'Section V says WCMP favours the instances with "lower cost and thus higher WCMP '
        'weight", i.e. weights inversely proportional to the path cost (network cost + '
        "VNF cost). Read that way, with Section VI's costs (links A-B and A-C 160, A-D 30, "
        "every VNF cost 150) the phase-2 path costs are 310/310/180 and the nearby "
        f"instance on D takes {d[READING_INVERSE_STATIC]} of the new flows"
        + (f"; with load-dependent costs (inverse-cost.yaml, utilisation) it settles at "
           f"{d[READING_INVERSE_UTIL]}" if READING_INVERSE_UTIL in d else "")
        + f". The paper's figures instead show D at about {d[READING_FIGURE]} and B and C "
        "at about 40% each. That is what weights *proportional* to the path cost give "
        "when the VNF cost is the remaining capacity (paper.yaml): the fixed point is "
        "s_i = b_i / sum(b) with b_i = network cost + capacity = 310, 310, 180, whatever "
        f"the load (while no instance saturates): {prop['B']:.2f}/{prop['C']:.2f}/"
        f"{prop['D']:.1f}% ({d[READING_PROPORTIONAL_INT]} for D with the connector's "
        "64-unit integer weights). The figure's 20% is within the paper's stated spread "
        f"(half the samples within 3 points of the median) of {d[READING_PROPORTIONAL]}, "
        f"and far from {d[READING_INVERSE_STATIC]}. So the evaluation behaves as if the "
        "VNF cost were a goodness (remaining capacity) - with the odd consequence that a "
        "longer network path also attracts more flows - which contradicts the Section V "
        "sentence."
    )
    lines = ["Reproduction note: two readings of the paper", "",
             *textwrap.wrap(text, width=88), "",
             "Phase-2 shares (%) on the instances of nodes B, C, D under each reading:"]
    width = max(len(k) for k in r)
    for key, shares in r.items():
        lines.append(f"  {key:<{width}}  B {shares['B']:6.2f}  C {shares['C']:6.2f}  "
                     f"D {shares['D']:6.2f}")
    if policy is not None:
        lines += ["", f"This scenario uses policy {policy.name!r}: cost {policy.cost.name}, "
                      f"weight {policy.weight.name}."]
    return "\n".join(lines)


# -- the report -----------------------------------------------------------------------------

def _fmt(value: float | None, width: int = 6, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    value = round(round(value, 6), 1) + 0.0  # 38.7499999 -> 38.8; no "-0.0"
    return f"{value:+{width}.1f}" if signed else f"{value:{width}.1f}"


def _pct(lost: int, sent: int) -> str:
    return f"{100.0 * lost / sent:.2f} %" if sent > 0 else "n/a"


def _spread(samples: list[float]) -> tuple[float | None, float | None]:
    """Points from the median within which half / all of the samples lie."""
    if not samples:
        return None, None
    med = statistics.median(samples)
    dev = sorted(abs(x - med) for x in samples)
    return statistics.median(dev), dev[-1]


def build_report(scenario: Scenario, summaries: Sequence[RunSummary]
                 ) -> tuple[str, dict[str, Any]]:
    """The text report and the JSON summary of a set of runs (one run is a set of one)."""
    preds = predict(scenario)
    real = predicted_shares(preds)
    ints = predicted_shares(preds, integer=True)
    inst_node = {i.name: i.node for i in scenario.topology.instances}
    n_runs = len(summaries)
    lines = [
        f"dsfc scenario report: {scenario.name} ({scenario.path})",
        f"topology {scenario.topology.name}, policy {scenario.policy.name} (cost "
        f"{scenario.policy.cost.name}, weight {scenario.policy.weight.name}), "
        f"{n_runs} run{'s' if n_runs != 1 else ''}, seed {scenario.seed}",
        *scenario.scaling_summary().splitlines(),
        "",
        "Steady-state share of each service's traffic per instance (%). measured = mean",
        "of the samples in the window, averaged over the runs (sd across runs); paper =",
        "the scenario's reference; WCMP = fixed point of the policy (integer weights);",
        "diff = measured - that, in points; spread = points from the median within which",
        "half / all of the pooled samples lie (paper: 3 / 10).",
        "",
        f"{'window':<8} {'instance':<16} {'measured':>8} {'sd':>5} {'paper':>6} "
        f"{'diff':>6} {'WCMP':>6} {'[int]':>7} {'diff':>6} {'spread':>11}",
    ]
    windows_json: dict[str, Any] = {}
    for w in scenario.measure.windows:
        ref = w.reference_map
        instances = sorted({i for s in summaries for i in s.windows.get(w.name, {})}
                           | set(real.get(w.name, {})) | {i for i, v in ref.items() if v})
        wj: dict[str, Any] = {}
        for inst in instances:
            stats = [s.windows[w.name][inst] for s in summaries
                     if inst in s.windows.get(w.name, {})]
            run_means = [st.mean for st in stats if st.mean is not None]
            measured = statistics.fmean(run_means) if run_means else None
            sd = statistics.stdev(run_means) if len(run_means) > 1 else None
            pooled = [x for st in stats for x in st.samples]
            half, full = _spread(pooled)
            paper = ref.get(inst)
            pred = real.get(w.name, {}).get(inst)
            pred_int = ints.get(w.name, {}).get(inst)
            d_paper = measured - paper if measured is not None and paper is not None else None
            d_pred = measured - pred if measured is not None and pred is not None else None
            label = f"{inst} ({inst_node.get(inst, '?')})"
            spread = (f"{half:4.1f} /{full:5.1f}" if half is not None and full is not None
                      else "-")
            lines.append(
                f"{w.name:<8} {label:<16} {_fmt(measured, 8)} {_fmt(sd, 5)} "
                f"{_fmt(paper)} {_fmt(d_paper, signed=True)} {_fmt(pred)} "
                f"[{_fmt(pred_int, 5)}] {_fmt(d_pred, signed=True)} {spread:>11}")
            wj[inst] = {
                "node": inst_node.get(inst), "measured_mean": measured, "measured_sd": sd,
                "run_means": run_means, "samples": len(pooled),
                "median": statistics.median(pooled) if pooled else None,
                "half_within_pts": half, "all_within_pts": full,
                "paper": paper, "diff_paper_pts": d_paper,
                "prediction": pred, "prediction_integer": pred_int,
                "diff_prediction_pts": d_pred,
            }
        windows_json[w.name] = {"start_s": w.start_s, "end_s": w.end_s, "instances": wj}
    if not scenario.measure.windows:
        lines.append("(the scenario defines no steady-state windows)")
    pred_notes = [(w, p) for w, ps in preds.items() for p in ps]
    if pred_notes:
        lines.append("")
        for w, p in pred_notes:
            sd_txt = ", ".join(f"{i} {v:.1f}" for i, v in p.placement_sd.items())
            lines.append(f"WCMP {w}: service {p.service} from node {p.ingress}, policy "
                         f"{p.policy}, {p.total_load:g} units/s in {p.concurrent_flows:g} "
                         f"flows; hash placement alone spreads shares by ~{sd_txt} pts (1 sd)")
            lines += [f"  note: {n}" for n in p.notes]
    flow_lines = []
    for w in scenario.measure.windows:
        per = [s.flow_shares[w.name] for s in summaries if w.name in s.flow_shares]
        if per:
            insts = sorted({i for d in per for i in d})
            vals = ", ".join(f"{i} {statistics.fmean(d.get(i, 0.0) for d in per):.1f}"
                             for i in insts)
            flow_lines.append(f"  {w.name}: {vals}")
    if flow_lines:
        lines += ["", "Share of the flows that started in each window, per instance (%):",
                  *flow_lines]

    # loss
    lines += ["", "Packet loss"]
    with_loss = [s for s in summaries if s.sent is not None]
    sent = sum(s.sent or 0 for s in with_loss)
    received = sum(s.received or 0 for s in with_loss)
    lost = sum(s.lost or 0 for s in with_loss)
    if with_loss:
        lines.append(f"  total: {sent} sent, {received} received, {lost} lost "
                     f"({_pct(lost, sent)}) over {len(with_loss)} run(s)")
    else:
        lines.append("  total: n/a (no flows.csv or traffic.csv)")
    events_json = []
    # runs execute an event at slightly different times: group by position in the run
    by_event: dict[tuple[int, str, str], list[EventLoss]] = {}
    for s in summaries:
        for pos, e in enumerate(s.event_losses):
            by_event.setdefault((pos, e.kind, e.detail), []).append(e)
    if scenario.events:
        lines.append(f"  around events ({scenario.measure.loss_window_s:g} s before / after,"
                     " scenario time):")
        if not by_event:
            lines.append("    n/a (no traffic.csv)")
    for (_, kind, detail), evs in sorted(by_event.items()):
        t = statistics.fmean(e.t_s for e in evs)
        bs, bl = sum(e.before_sent for e in evs), sum(e.before_lost for e in evs)
        as_, al = sum(e.after_sent for e in evs), sum(e.after_lost for e in evs)
        lines.append(f"    t={t:g} s {kind} {detail}: before {bs} sent, {bl} lost "
                     f"({_pct(bl, bs)}); after {as_} sent, {al} lost ({_pct(al, as_)})")
        events_json.append({"t_s": t, "kind": kind, "detail": detail,
                            "before_sent": bs, "before_lost": bl, "after_sent": as_,
                            "after_lost": al, "runs": len(evs)})
    if any(w.reference for w in scenario.measure.windows):
        lines += ["", reproduction_note(scenario.policy)]
    summary = {
        "scenario": scenario.name, "scenario_file": str(scenario.path),
        "topology": scenario.topology.name, "policy": scenario.policy.to_dict(),
        "time_scale": scenario.time_scale, "duration_s": scenario.duration_s,
        "seed": scenario.seed, "runs": n_runs, "windows": windows_json,
        "predictions": {w: [asdict(p) for p in ps] for w, ps in preds.items()},
        "loss": {"sent": sent, "received": received, "lost": lost,
                 "loss_pct": 100.0 * lost / sent if sent else None,
                 "events": events_json} if with_loss else None,
        "run_summaries": [s.to_dict() for s in summaries],
    }
    return "\n".join(lines) + "\n", summary


# -- what the runner calls ------------------------------------------------------------------

def report_run(scenario: Scenario, run: str | Path, repetition: int | None = None,
               figures_too: bool = True) -> RunSummary:
    """After one run: ``summary.json`` and Fig. 4 / weights PNGs in the run folder."""
    run = Path(run)
    summary = summarize_run(run, scenario, repetition)
    summary.save(run / SUMMARY_FILE)
    if figures_too:
        figures.plot_run(run, scenario, expected=predicted_shares(predict(scenario)))
    return summary


def report_set(scenario: Scenario, summaries: Sequence[RunSummary], out_dir: str | Path,
               figures_too: bool = True) -> dict[str, Path]:
    """After the last run: ``report.txt``, ``summary.json`` and Fig. 5 in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text, summary = build_report(scenario, summaries)
    paths = {"report": out_dir / REPORT_FILE, "summary": out_dir / SUMMARY_FILE}
    paths["report"].write_text(text, encoding="utf-8")
    paths["summary"].write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if figures_too and summaries:
        ref = {w.name: w.reference_map for w in scenario.measure.windows if w.reference}
        paths["fig5"] = figures.plot_share_boxplot(
            summaries, out_dir / figures.FIG5_FILE, reference=ref,
            expected=predicted_shares(predict(scenario)), scenario=scenario)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.report",
        description="Summarise finished scenario runs: report.txt, summary.json, figures.")
    parser.add_argument("scenario", type=Path, help="the scenario file the runs used")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (run-01, ...)")
    parser.add_argument("--out", type=Path, help="where to write the set's report "
                                                 "(default: the first run's parent)")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        scenario = load_scenario(args.scenario)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summaries = []
    for run in args.runs:
        if not run.is_dir():
            print(f"error: {run}: not a folder", file=sys.stderr)
            return 2
        summaries.append(report_run(scenario, run, None, not args.no_figures))
    paths = report_set(scenario, summaries, args.out or args.runs[0].parent,
                       not args.no_figures)
    print(paths["report"].read_text(encoding="utf-8"), end="")
    return 0


__all__ = [
    "REPORT_FILE", "SUMMARY_FILE", "EventLoss", "Prediction", "RunSummary", "ShareStats",
    "build_report", "event_losses", "predict", "predicted_shares", "readings",
    "report_run", "report_set", "reproduction_note", "summarize_run", "window_shares",
]

if __name__ == "__main__":
    sys.exit(main())
