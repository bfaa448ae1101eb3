"""Distributed vs centralized on the same scenario: the comparison report and figures.

``python -m scenarios compare FILE`` runs a scenario once per control mode (same seed,
flow schedule and events; :mod:`scenarios.compare`); this module reads the two sets of
run folders and compares, per mode (means over the repetitions):

* **reaction** -- per event: packets lost (flows), recovery (event to the send time of
  the last packet lost), and the time until *every* node avoids an instance taken away
  (the largest avoidance time over the nodes that sent it new flows; "never" when one
  did not before the next event) or gives new flows again to one given back
  (readmission); for a load step, the time until the first weight change anywhere and
  until every ingress node (where the traffic is classified) has changed its weights
  ("never" likewise); a time is "never" when it was in any run (with the number of
  such runs), else the mean over the runs that measured it;
* **balance** -- per steady window: each instance's utilisation (mean processing rate
  over the window / capacity) for the instances taking new flows during the whole
  window (an event at its end comes after it), the highest, the LP optimum's highest
  for the same demand (:mod:`dmano.central.optimum`: the instances of a service
  reachable from everywhere, the demand = the service's measured total) and the ratio,
  and the share error: the mean distance, in points, between each instance's share of
  its service and the optimum's;
* **control traffic** -- messages and bytes per second of scenario time after the
  warm-up, from ``control.csv`` (:mod:`scenarios.control_traffic`): OSPF packets (all,
  and LS Updates), P4Runtime writes, the orchestrator's polls, its LSDB feed and its
  counter reads; "decision traffic" sums what carries the control loop (LS Updates +
  writes in distributed mode; polls + feed + reads + writes + LS Updates centrally);
* **single point of failure** -- every event that takes an instance away while the
  orchestrator is down (``fail_orchestrator`` .. ``restore_orchestrator``): packets
  lost, and when every node avoided it (up to the end of the run).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios import figures
from scenarios.arrivals import EPS as _EPS  # as scenarios.spec compares times
from scenarios.outputs import CONTROL_FILE, ShareRow, WeightRow, read_control
from scenarios.report.events import affected, avoidance
from scenarios.report.summary import RunSummary
from scenarios.spec import Scenario, TimelineState, Window

log = logging.getLogger(__name__)

MODES = ("distributed", "centralized")
DOWN_KINDS = ("stop_instance", "fail_instance", "drain_instance", "fail_node", "fail_daemon",
              "fail_link")
UP_KINDS = ("start_instance", "restore_instance", "undrain_instance", "restore_node",
            "restore_daemon", "restore_link")
CONTROL_CATEGORIES = (  # (label, messages column, bytes column)
    ("OSPF packets (all, hellos included)", "ospf_packets", "ospf_bytes"),
    ("OSPF LS updates", "lsu_packets", "lsu_bytes"),
    ("P4Runtime writes", "p4rt_write_ops", "p4rt_write_bytes"),
    ("orchestrator polls", "poll_messages", "poll_bytes"),
    ("orchestrator LSDB feed", "lsdb_feed_messages", "lsdb_feed_bytes"),
    ("orchestrator counter reads", "counter_reads", None),
)
DECISION = ("lsu_packets", "p4rt_write_ops", "poll_messages", "lsdb_feed_messages",
            "counter_reads")
DECISION_BYTES = ("lsu_bytes", "p4rt_write_bytes", "poll_bytes", "lsdb_feed_bytes")
NEVER_KEYS = ("avoid_s", "readmit_s", "ingress_s")  # None in a run: "never" (+ _never_runs)
COMPARISON_TEXT = "comparison.txt"
COMPARISON_JSON = "comparison.json"
FIG_REACTION = "compare_reaction.png"
FIG_BALANCE = "compare_balance.png"
FIG_CONTROL = "compare_control.png"
FIG_UTIL = "compare_utilisation.png"


@dataclass
class ModeResult:
    """One mode's scenario and runs."""

    mode: str
    scenario: Scenario
    summaries: list[RunSummary]

    @property
    def runs(self) -> list[Path]:
        return [Path(s.run) for s in self.summaries]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(vals) if vals else None


def _all_or_none(values: Sequence[float | None]) -> float | None:
    """The largest, or None when any is None ("not every node did")."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


# -- reaction -------------------------------------------------------------------------------

def _changes(run: Path) -> list[WeightRow]:
    path = run / figures.WEIGHT_CHANGES_FILE
    return figures.read_weight_changes(path) if path.is_file() else []


def _ingress_nodes(s: Scenario) -> list[str]:
    """The nodes whose classifier puts the scenario's traffic on a chain."""
    hosts = {h.name: h.node for h in s.topology.hosts}
    return sorted({hosts[c.source] for c in s.traffic if c.chain is not None})


def _first_changes(changes: Sequence[WeightRow], t: float, until: float) -> dict[str, float]:
    """Per node, seconds from ``t`` to its first weight change before ``until``."""
    out: dict[str, float] = {}
    for r in sorted(changes, key=lambda r: r.t_s):
        if t < r.t_s < until and r.node not in out:
            out[r.node] = r.t_s - t
    return out


def reaction(result: ModeResult) -> list[dict[str, Any]]:
    """Per event of the timeline, this mode's reaction (module docstring)."""
    s = result.scenario
    ingress = _ingress_nodes(s)
    out = []
    for k, ev in enumerate(s.events):
        per_run: dict[str, list[float | None]] = {
            "lost": [], "flows": [], "recovery_s": [], "avoid_s": [], "readmit_s": [],
            "first_change_s": [], "ingress_s": []}
        for summary in result.summaries:
            m = next((e for e in summary.events if e.index == k and e.kind == ev.action),
                     None)
            if m is None:
                continue
            per_run["lost"].append(m.lost)
            per_run["flows"].append(m.flows)
            per_run["recovery_s"].append(m.recovery_s)
            # no node measured (no instance, or none gave it flows): no value, not "never"
            avoid = [t for per in m.avoidance_s.values() for t in per.values()]
            if avoid:
                per_run["avoid_s"].append(_all_or_none(avoid))
            readmit = [t for per in m.readmission_s.values() for t in per.values()]
            if readmit:
                per_run["readmit_s"].append(_all_or_none(readmit))
            if ev.action == "set_load":
                first = _first_changes(_changes(Path(summary.run)), m.t_s, m.until_s)
                per_run["first_change_s"].append(min(first.values(), default=None))
                if ingress:
                    per_run["ingress_s"].append(_all_or_none([first.get(n) for n in ingress]))
        row: dict[str, Any] = {"index": k, "action": ev.action, "target": ev.target,
                               "label": ev.describe(), "at_s": ev.at_s}
        for key, vals in per_run.items():
            if not vals:
                row[key] = None
            elif key in NEVER_KEYS and any(v is None for v in vals):
                row[key] = None  # "never" in some run (not the mean of the others)
                row[key + "_never_runs"] = sum(1 for v in vals if v is None)
            else:
                row[key] = _mean(vals)
        out.append(row)
    return out


# -- balance --------------------------------------------------------------------------------

def _window_rates(shares: Sequence[ShareRow], w: Window) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for r in shares:
        if w.contains(r.t_s):
            samples.setdefault(r.instance, []).append(r.packets_per_s)
    return {i: statistics.fmean(v) for i, v in samples.items() if v}


def _taking_throughout(s: Scenario, w: Window) -> set[str]:
    """The instances taking new flows during the whole window ``(start_s, end_s]``: at its
    start and after every event inside it. An event at ``end_s`` comes after the window
    (its last sample ends then), one at ``start_s`` before it (as in the summary)."""
    def taking(st: TimelineState) -> set[str]:
        return set(st.live_instances(s.topology)) - set(st.drained)

    live = taking(s.state_at(w.start_s))
    for at, st in s.states[1:]:
        if w.start_s + _EPS < at < w.end_s - _EPS:
            live &= taking(st)
    return live


def window_balance(s: Scenario, shares: Sequence[ShareRow], w: Window) -> dict[str, Any]:
    """One run's balance in one window against the LP optimum for its demand."""
    from dmano.central import optimum

    rates = _window_rates(shares, w)
    live = _taking_throughout(s, w)
    cap = {i.name: float(i.capacity) for i in s.topology.instances}
    service = {i.name: i.service for i in s.topology.instances}
    util = {i: rates.get(i, 0.0) / cap[i] for i in sorted(live)}
    demand: dict[str, float] = {}
    for inst in sorted(live):
        demand[service[inst]] = demand.get(service[inst], 0.0) + rates.get(inst, 0.0)
    errors = []
    best: float | None = None
    status = []
    for svc, total in sorted(demand.items()):  # one LP per service (independent)
        insts = sorted(i for i in live if service[i] == svc)
        solution = optimum.solve({svc: total}, {svc: dict.fromkeys(insts, 0.0)},
                                 {i: cap[i] for i in insts})
        status.append(solution.status)
        best = max(best or 0.0, solution.max_utilisation)
        if total <= 0:
            continue
        opt = solution.split.get(svc, {})
        for inst in insts:
            errors.append(abs(rates.get(inst, 0.0) / total - opt.get(inst, 0.0)) * 100)
    highest = max(util.values()) if util else None
    return {
        "window": w.name, "utilisation": util,
        "demand": demand,
        "highest": highest, "optimum": best,
        "ratio": (highest / best) if highest is not None and best and best > 0 else None,
        "share_error_pts": statistics.fmean(errors) if errors else None,
        "optimum_status": ",".join(sorted(set(status))),
    }


def balance(result: ModeResult) -> list[dict[str, Any]]:
    """Per steady window, the balance averaged over the runs."""
    s = result.scenario
    per_window: dict[str, list[dict[str, Any]]] = {}
    for run in result.runs:
        path = run / figures.SHARES_FILE
        if not path.is_file():
            continue
        shares = figures.read_shares(path)
        for w in s.measure.windows:
            per_window.setdefault(w.name, []).append(window_balance(s, shares, w))
    out = []
    for w in s.measure.windows:
        rows = per_window.get(w.name, [])
        if not rows:
            continue
        insts = sorted({i for r in rows for i in r["utilisation"]})
        out.append({
            "window": w.name, "start_s": w.start_s, "end_s": w.end_s,
            "utilisation": {i: _mean([r["utilisation"].get(i) for r in rows]) for i in insts},
            "highest": _mean([r["highest"] for r in rows]),
            "optimum": _mean([r["optimum"] for r in rows]),
            "ratio": _mean([r["ratio"] for r in rows]),
            "share_error_pts": _mean([r["share_error_pts"] for r in rows]),
        })
    return out


# -- control traffic ------------------------------------------------------------------------

def control_rates(result: ModeResult) -> dict[str, float | None]:
    """Per column of control.csv, the mean rate per second of scenario time after the
    warm-up (averaged over the runs)."""
    s = result.scenario
    per_run: dict[str, list[float | None]] = {}
    for run in result.runs:
        path = run / CONTROL_FILE
        if not path.is_file():
            continue
        rows = [r for r in read_control(path) if r["t_s"] >= s.measure.warmup_s]
        if len(rows) < 2 or rows[-1]["t_s"] <= rows[0]["t_s"]:
            continue
        span = rows[-1]["t_s"] - rows[0]["t_s"]
        for col in rows[0]:
            if col != "t_s":
                per_run.setdefault(col, []).append((rows[-1][col] - rows[0][col]) / span)
    out = {col: _mean(vals) for col, vals in per_run.items()}
    if out:
        out["decision_messages"] = sum(out.get(c) or 0.0 for c in DECISION)
        out["decision_bytes"] = sum(out.get(c) or 0.0 for c in DECISION_BYTES)
    return out


# -- single point of failure ----------------------------------------------------------------

def orchestrator_outages(s: Scenario) -> list[tuple[int, int | None]]:
    """(index of fail_orchestrator, index of the matching restore or None)."""
    out: list[tuple[int, int | None]] = []
    for k, ev in enumerate(s.events):
        if ev.action == "fail_orchestrator":
            restore = next((j for j in range(k + 1, len(s.events))
                            if s.events[j].action == "restore_orchestrator"), None)
            out.append((k, restore))
    return out


def spof(result: ModeResult) -> list[dict[str, Any]]:
    """Every event taking an instance away during an orchestrator outage (docstring)."""
    s = result.scenario
    out = []
    for fail, restore in orchestrator_outages(s):
        last = restore if restore is not None else len(s.events)
        for k in range(fail + 1, last):
            ev = s.events[k]
            if ev.action not in DOWN_KINDS or not affected(s, k)[0]:
                continue  # takes no instance away (a link): nothing to avoid
            lost, flows = [], []
            avoid: list[float | None] = []
            for summary in result.summaries:
                m = next((e for e in summary.events if e.index == k and e.kind == ev.action),
                         None)
                if m is None:
                    continue
                end = next((e.until_s for e in summary.events
                            if e.index == len(s.events) - 1), s.duration_s)
                lost.append(sum(e.lost for e in summary.events if k <= e.index <= last))
                flows.append(sum(e.flows for e in summary.events if k <= e.index <= last))
                changes = _changes(Path(summary.run))
                times = [t for inst in m.instances
                         for t in avoidance(changes, inst, m.t_s, max(end, m.t_s)).values()]
                if times:  # no node gave it flows: no value, not "never"
                    avoid.append(_all_or_none(times))
            never = sum(1 for a in avoid if a is None)
            out.append({
                "index": k, "label": ev.describe(), "at_s": ev.at_s,
                "orchestrator_down_s": s.events[fail].at_s,
                "orchestrator_back_s": s.events[restore].at_s if restore is not None else None,
                "lost": _mean(lost), "flows": _mean(flows),
                "avoid_s": None if never else _mean(avoid),
                **({"avoid_s_never_runs": never} if never else {}),
            })
    return out


# -- the report -----------------------------------------------------------------------------

def compare(results: Sequence[ModeResult]) -> dict[str, Any]:
    """Everything the comparison reports, as JSON-able data."""
    first = results[0].scenario
    central = next((r.scenario.effective_central for r in results
                    if r.scenario.centralized), None)
    return {
        "scenario": first.name, "scenario_file": str(first.path),
        "topology": first.topology.name, "policy": first.policy.name,
        "seed": first.seed, "time_scale": first.time_scale,
        "central": None if central is None else {
            "objective": central.objective, "poll_period_s": central.poll_period_s,
            "mgmt_rtt_ms": central.mgmt_rtt_ms, "router": central.router},
        "dmano_period_s": first.policy.period_s,
        "modes": {r.mode: {
            "runs": [str(p) for p in r.runs],
            "sent": sum(s.sent or 0 for s in r.summaries),
            "lost": sum(s.lost or 0 for s in r.summaries),
            "reaction": reaction(r), "balance": balance(r), "control": control_rates(r),
            "spof": spof(r)} for r in results},
    }


def _f(value: float | None, fmt: str = ".2f", never: str = "-") -> str:
    return never if value is None else format(value, fmt)


def _react(row: dict[str, Any], key: str, fmt: str) -> str:
    """A reaction time: "never" when some run had a node that did not react, "-" when
    there was nothing to measure (no instance, no node giving it flows)."""
    if row.get(key + "_never_runs"):
        return "never"
    return _f(row.get(key), fmt)


def render(data: dict[str, Any]) -> str:
    modes = list(data["modes"])
    c = data.get("central") or {}
    lines = [
        f"dsfc comparison: {data['scenario']} ({data['scenario_file']})",
        f"topology {data['topology']}, policy {data['policy']}, seed {data['seed']}, "
        f"time_scale {data['time_scale']:g}; D-MANO period {data['dmano_period_s']:g} s; "
        f"orchestrator: objective {c.get('objective')}, poll period "
        f"{c.get('poll_period_s')} s, management RTT {c.get('mgmt_rtt_ms')} ms",
        "All times in scenario seconds; means over the repetitions.",
        "",
        "Totals: " + "; ".join(
            f"{m}: {data['modes'][m]['sent']} packets sent, {data['modes'][m]['lost']} lost"
            for m in modes),
        "",
        "1. Reaction per event: lost packets (flows), recovery = event to last loss,",
        "   every-node avoidance (instance taken away) / readmission (given back); for a",
        "   load step: first weight change anywhere / at every ingress node.",
        "   'never' = some node had not reacted before the next event.",
    ]
    header = f"   {'t':>6} {'event':<34}" + "".join(
        f" | {m[:5]:>5} lost  flows  recov  react" for m in modes)
    lines.append(header)
    reactions = {m: data["modes"][m]["reaction"] for m in modes}
    for k, row in enumerate(reactions[modes[0]]):
        cells = []
        for m in modes:
            r = reactions[m][k]
            if r["action"] in DOWN_KINDS:
                react = _react(r, "avoid_s", ".3f")
            elif r["action"] in UP_KINDS:
                react = _react(r, "readmit_s", ".3f")
            elif r["action"] == "set_load":
                react = (f"{_f(r.get('first_change_s'), '.1f')}/"
                         f"{_react(r, 'ingress_s', '.1f')}")
            else:
                react = ""
            cells.append(f" | {_f(r.get('lost'), '.0f'):>10} {_f(r.get('flows'), '.0f'):>6}"
                         f" {_f(r.get('recovery_s'), '.2f'):>6} {react:>6}")
        lines.append(f"   {row['at_s']:6.1f} {row['label'][:34]:<34}" + "".join(cells))
    lines += ["", "2. Balance per steady window: highest instance utilisation (%) vs the LP",
              "   optimum for the same demand, ratio (1.00 = optimal), and the mean share",
              "   error against the optimum (points).",
              f"   {'window':<12}" + "".join(f" | {m[:11]:>11} highest ratio  err"
                                              for m in modes) + " | optimum"]
    bal = {m: {b["window"]: b for b in data["modes"][m]["balance"]} for m in modes}
    for w in bal[modes[0]]:
        cells = []
        opt = None
        for m in modes:
            b = bal[m].get(w, {})
            opt = b.get("optimum", opt)
            cells.append(f" | {_f(_pct(b.get('highest')), '.1f'):>19} "
                         f"{_f(b.get('ratio'), '.2f'):>5} {_f(b.get('share_error_pts'), '.1f'):>4}")
        lines.append(f"   {w:<12}" + "".join(cells) + f" | {_f(_pct(opt), '.1f')}")
    for w in bal[modes[0]]:
        for m in modes:
            util = bal[m].get(w, {}).get("utilisation", {})
            lines.append(f"   {w} {m}: " + ", ".join(
                f"{i} {_f(_pct(u), '.0f')}%" for i, u in sorted(util.items())))
    lines += ["", "3. Control traffic after the warm-up, per second of scenario time",
              "   (messages/s, bytes/s).",
              f"   {'':<38}" + "".join(f" | {m:>23}" for m in modes)]
    ctl = {m: data["modes"][m]["control"] for m in modes}
    for label, msgs, byts in CONTROL_CATEGORIES:
        cells = "".join(f" | {_f(ctl[m].get(msgs), '.1f'):>10} msg "
                        f"{_f(ctl[m].get(byts) if byts else None, '.0f'):>8} B"
                        for m in modes)
        lines.append(f"   {label:<38}{cells}")
    cells = "".join(f" | {_f(ctl[m].get('decision_messages'), '.1f'):>10} msg "
                    f"{_f(ctl[m].get('decision_bytes'), '.0f'):>8} B" for m in modes)
    lines.append(f"   {'decision traffic (see the legend)':<38}{cells}")
    lines += ["", "4. Single point of failure: an instance lost while the orchestrator is",
              "   down; packets lost from then until the orchestrator's return (and its",
              "   reaction), and when every node avoided the instance."]
    any_spof = False
    for m in modes:
        for r in data["modes"][m]["spof"]:
            any_spof = True
            back = r["orchestrator_back_s"]
            lines.append(
                f"   {m:<12} {r['label']} at {r['at_s']:g} s (orchestrator down "
                f"{r['orchestrator_down_s']:g}..{_f(back, 'g', 'end')} s): lost "
                f"{_f(r['lost'], '.0f')} in {_f(r['flows'], '.0f')} flows, every node avoids "
                f"it after {_react(r, 'avoid_s', '.2f')} s")
    if not any_spof:
        lines.append("   (the scenario loses no instance while the orchestrator is down)")
    return "\n".join(lines) + "\n"


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


# -- figures --------------------------------------------------------------------------------

def plot(data: dict[str, Any], results: Sequence[ModeResult], out_dir: Path) -> list[Path]:
    import numpy as np

    modes = list(data["modes"])
    colours = {"distributed": "tab:blue", "centralized": "tab:orange"}
    paths = []
    # reaction
    rows = data["modes"][modes[0]]["reaction"]
    labels = [f"{r['at_s']:g}s {r['label'][:22]}" for r in rows]
    fig, (ax1, ax2) = figures._new_figure(2, 3.8)
    x = np.arange(len(rows))
    width = 0.8 / max(len(modes), 1)
    for j, m in enumerate(modes):
        rs = data["modes"][m]["reaction"]
        keys = ["avoid_s" if r["action"] in DOWN_KINDS else "readmit_s"
                if r["action"] in UP_KINDS else "first_change_s" for r in rs]
        react = [r.get(key) for r, key in zip(rs, keys, strict=True)]
        ax1.bar(x + j * width, [v if v is not None else 0 for v in react], width,
                label=m, color=colours.get(m))
        for xi, r, key in zip(x, rs, keys, strict=True):
            if r.get(key + "_never_runs"):
                ax1.text(xi + j * width, 0, "never", ha="center", va="bottom", fontsize=7,
                         rotation=90, color=colours.get(m))
        ax2.bar(x + j * width, [r.get("lost") or 0 for r in rs], width, label=m,
                color=colours.get(m))
    for ax, ylabel in ((ax1, "reaction (s, every node)"), (ax2, "packets lost")):
        ax.set_xticks(x + width * (len(modes) - 1) / 2, labels, rotation=30, ha="right",
                      fontsize=7)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_title(f"{data['scenario']}: reaction per event")
    paths.append(figures._save(fig, out_dir / FIG_REACTION))
    # balance
    windows = [b["window"] for b in data["modes"][modes[0]]["balance"]]
    if windows:
        fig, (ax,) = figures._new_figure(1, 3.8)
        x = np.arange(len(windows))
        width = 0.8 / (len(modes) + 1)
        for j, m in enumerate(modes):
            bal = {b["window"]: b for b in data["modes"][m]["balance"]}
            ax.bar(x + j * width, [_pct(bal.get(w, {}).get("highest")) or 0 for w in windows],
                   width, label=f"{m}: highest", color=colours.get(m))
        opt = {b["window"]: b for b in data["modes"][modes[0]]["balance"]}
        ax.bar(x + len(modes) * width, [_pct(opt[w].get("optimum")) or 0 for w in windows],
               width, label="LP optimum", color="0.5")
        ax.set_xticks(x + width * len(modes) / 2, windows)
        ax.set_ylabel("highest instance utilisation (%)")
        ax.set_title("balance per steady window")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(figures._save(fig, out_dir / FIG_BALANCE))
    # control traffic
    fig, (ax,) = figures._new_figure(1, 3.8)
    cats = [(label, b) for label, _, b in CONTROL_CATEGORIES if b]
    x = np.arange(len(cats))
    width = 0.8 / max(len(modes), 1)
    for j, m in enumerate(modes):
        ctl = data["modes"][m]["control"]
        ax.bar(x + j * width, [max(ctl.get(b) or 0.0, 0.0) for _, b in cats], width,
               label=m, color=colours.get(m))
    ax.set_xticks(x + width * (len(modes) - 1) / 2, [lbl for lbl, _ in cats], rotation=15,
                  ha="right", fontsize=7)
    ax.set_ylabel("bytes per second")
    ax.set_yscale("symlog")
    ax.set_title("control traffic after the warm-up")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(figures._save(fig, out_dir / FIG_CONTROL))
    # utilisation over time, one panel per mode (first run of each)
    fig, axes = figures._new_figure(len(results), 3.4)
    for ax, r in zip(axes, results, strict=True):
        if not r.runs:
            continue
        run = r.runs[0]
        shares = (figures.read_shares(run / figures.SHARES_FILE)
                  if (run / figures.SHARES_FILE).is_file() else [])
        events = (figures.read_events(run / figures.EVENTS_FILE)
                  if (run / figures.EVENTS_FILE).is_file() else [])
        cap = {i.name: i.capacity for i in r.scenario.topology.instances}
        names = sorted(cap)
        col = figures._colours(names)
        for name in names:
            pts = sorted((s.t_s, 100.0 * s.packets_per_s / cap[name]) for s in shares
                         if s.instance == name)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=col[name], lw=1.2,
                        label=figures._instance_label(name, r.scenario))
        figures._mark_context(ax, events, r.scenario)
        ax.set_ylabel("utilisation (%)")
        ax.set_xlabel("Time (s)")
        ax.set_xlim(0, r.scenario.duration_s)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{r.mode}", fontsize=9)
        ax.legend(fontsize=6, ncol=3, loc="lower left")
    paths.append(figures._save(fig, out_dir / FIG_UTIL))
    return paths


def write_comparison(results: Sequence[ModeResult], out_dir: str | Path,
                     figures_too: bool = True) -> dict[str, Path]:
    """``comparison.txt``, ``comparison.json`` and the figures in ``out_dir``."""
    from dmano.atomicfile import write_json_atomic, write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = compare(results)
    paths = {"text": out_dir / COMPARISON_TEXT, "json": out_dir / COMPARISON_JSON}
    write_text_atomic(paths["text"], render(data))
    write_json_atomic(paths["json"], data, indent=1)
    if figures_too:
        for p in plot(data, results, out_dir):
            paths[p.stem] = p
    return paths
