"""The report of a set of runs: its text (``report.txt``) and its JSON (``summary.json``)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from scenarios.report.controlplane import controlplane_report
from scenarios.report.events import events_report
from scenarios.report.paper import reproduction_note
from scenarios.report.predict import predict, predicted_shares
from scenarios.report.summary import EventLoss, RunSummary
from scenarios.spec import Scenario


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
    pred_notes = [(wname, p) for wname, ps in preds.items() for p in ps]
    if pred_notes:
        lines.append("")
        for wname, p in pred_notes:
            sd_txt = ", ".join(f"{i} {v:.1f}" for i, v in p.placement_sd.items())
            lines.append(f"WCMP {wname}: service {p.service} from node {p.ingress}, policy "
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
    # the coarse view (traffic.csv samples: packets in flight at a window's edge count as
    # lost there) is printed only for runs without the per-packet losses.csv
    with_events = [s.events for s in summaries if s.events or s.lost_before_events is not None]
    coarse = []
    if scenario.events:
        coarse.append(f"  around events ({scenario.measure.loss_window_s:g} s before / after,"
                      " scenario time, from traffic.csv samples):")
        if not by_event:
            coarse.append("    n/a (no traffic.csv)")
    for (_, kind, detail), evs in sorted(by_event.items()):
        t = statistics.fmean(e.t_s for e in evs)
        bs, bl = sum(e.before_sent for e in evs), sum(e.before_lost for e in evs)
        as_, al = sum(e.after_sent for e in evs), sum(e.after_lost for e in evs)
        coarse.append(f"    t={t:g} s {kind} {detail}: before {bs} sent, {bl} lost "
                      f"({_pct(bl, bs)}); after {as_} sent, {al} lost ({_pct(al, as_)})")
        events_json.append({"t_s": t, "kind": kind, "detail": detail,
                            "before_sent": bs, "before_lost": bl, "after_sent": as_,
                            "after_lost": al, "runs": len(evs)})
    if not with_events:
        lines += coarse
    hosts = {h.name: h.node for h in scenario.topology.hosts}
    ingress = sorted({hosts[c.source] for c in scenario.traffic if c.chain is not None})
    ev_lines, ev_json = events_report(scenario, with_events, ingress)
    lines += ev_lines
    before = [s.lost_before_events for s in summaries if s.lost_before_events is not None]
    if before and scenario.events:
        lines.append(f"  before the first event: {sum(before) / len(before):g} packets lost "
                     "(mean over the runs)")
    cp_lines, cp_json = controlplane_report(summaries, scenario.measure.warmup_s)
    lines += cp_lines
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
        "events": ev_json,
        "lost_before_events": (sum(before) / len(before)) if before else None,
        "run_summaries": [s.to_dict() for s in summaries],
    }
    if cp_json is not None:
        summary["control_plane"] = cp_json
    return "\n".join(lines) + "\n", summary


__all__ = ["build_report"]
