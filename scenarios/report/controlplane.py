"""The control plane of simulated runs: LSAs flooded per second, convergence per event.

A simulated run (``python -m scenarios simulate``, ``meta.json`` ``"simulated": true``)
also holds ``controlplane.csv`` (per second of scenario time: LSAs originated, LSA
transmissions, SPF runs) and ``convergence.csv`` (per event: the time until every live
node's D-MANO tables, and every router's routes, were final). This module reads them
for the report (:func:`controlplane_report`) and draws ``controlplane.png``
(:func:`plot_controlplane`). Emulated runs have neither file and get neither part.
"""

from __future__ import annotations

import csv
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scenarios.outputs import read_events
from scenarios.report.summary import RunSummary

log = logging.getLogger(__name__)

CONTROLPLANE_FILE = "controlplane.csv"
CONVERGENCE_FILE = "convergence.csv"
CONTROLPLANE_FIG_FILE = "controlplane.png"


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(v: str | None) -> float | None:
    return float(v) if v not in (None, "") else None


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g} s"


def controlplane_report(summaries: Sequence[RunSummary], warmup_s: float = 0.0
                        ) -> tuple[list[str], dict[str, Any] | None]:
    """Text lines and JSON for the simulated runs among ``summaries`` (none: empty)."""
    runs = [Path(s.run) for s in summaries
            if s.meta.get("simulated") and (Path(s.run) / CONTROLPLANE_FILE).is_file()]
    if not runs:
        return [], None
    per_second: dict[str, list[float]] = {}
    events: dict[tuple[int, str, str], list[dict[str, str]]] = {}
    for run in runs:
        rows = [r for r in _read(run / CONTROLPLANE_FILE) if float(r["t_s"]) > warmup_s]
        for col in ("lsas_originated", "lsa_transmissions", "lsa_bytes", "spf_runs"):
            vals = [float(r[col]) for r in rows]
            if vals:
                per_second.setdefault(col, []).append(statistics.fmean(vals))
                per_second.setdefault(col + "_max", []).append(max(vals))
        if (run / CONVERGENCE_FILE).is_file():
            for r in _read(run / CONVERGENCE_FILE):
                events.setdefault((int(r["index"]), r["kind"], r["detail"]), []).append(r)
    mean = {k: statistics.fmean(v) for k, v in per_second.items()}
    meta = summaries[0].meta.get("simulation", {})
    lines = ["", f"Control plane (simulated: {meta.get('nodes', '?')} nodes, "
                 f"{meta.get('links', '?')} links; per second of scenario time after the "
                 f"warm-up, mean over {len(runs)} run(s))",
             f"  LSAs originated {mean.get('lsas_originated', 0):.1f}/s (max "
             f"{mean.get('lsas_originated_max', 0):.0f}), LSA transmissions "
             f"{mean.get('lsa_transmissions', 0):.0f}/s (max "
             f"{mean.get('lsa_transmissions_max', 0):.0f}), "
             f"{mean.get('lsa_bytes', 0) / 1000:.1f} kB/s, SPF runs "
             f"{mean.get('spf_runs', 0):.1f}/s"]
    ev_json = []
    if events:
        lines.append("  convergence per event (scenario seconds until every live node's "
                     "tables / routes were final; median node):")
    for (index, kind, detail), rows in sorted(events.items()):
        def avg(col: str, rows: list[dict[str, str]] = rows) -> float | None:
            got = [x for x in (_num(r.get(col)) for r in rows) if x is not None]
            return statistics.fmean(got) if got else None

        tables, median, routes = (avg("tables_converged_s"), avg("tables_median_s"),
                                  avg("routes_converged_s"))
        lsas = statistics.fmean(int(r["lsas"]) for r in rows)
        never = max(int(r["never"]) for r in rows)
        t = statistics.fmean(float(r["t_s"]) for r in rows)
        text = (f"    t={t:g} s {kind} {detail}: {lsas:g} LSA(s); tables {_secs(tables)} "
                f"(median {_secs(median)})")
        if routes is not None:
            text += f", routes {_secs(routes)}"
        if never:
            text += f"; {never} node(s) never converged"
        if tables is None and lsas == 0:
            text = f"    t={t:g} s {kind} {detail}: no LSA (nothing to converge)"
        lines.append(text)
        ev_json.append({"index": index, "t_s": t, "kind": kind, "detail": detail,
                        "lsas": lsas, "tables_converged_s": tables,
                        "tables_median_s": median, "routes_converged_s": routes,
                        "never": never})
    return lines, {"per_second": mean, "events": ev_json, "runs": [str(r) for r in runs]}


def plot_controlplane(run: str | Path) -> Path | None:
    """``controlplane.png``: LSAs and transmissions per second over time (events
    marked), and per event the time until every node's tables (and routes) converged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run = Path(run)
    if not (run / CONTROLPLANE_FILE).is_file():
        return None
    rows = _read(run / CONTROLPLANE_FILE)
    conv = _read(run / CONVERGENCE_FILE) if (run / CONVERGENCE_FILE).is_file() else []
    events = read_events(run / "events.csv") if (run / "events.csv").is_file() else []
    fig = Figure(figsize=(8.0, 7.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1 = fig.add_subplot(2, 1, 1)
    t = [float(r["t_s"]) for r in rows]
    ax1.step(t, [float(r["lsa_transmissions"]) for r in rows], where="post",
             label="LSA transmissions (per link)", color="tab:blue")
    ax1.step(t, [float(r["lsas_originated"]) for r in rows], where="post",
             label="LSAs originated", color="tab:orange")
    ax1.step(t, [float(r["spf_runs"]) for r in rows], where="post", label="SPF runs",
             color="tab:green", alpha=0.7)
    ax1.set_yscale("symlog", linthresh=1.0)
    ax1.set_xlabel("time (scenario s)")
    ax1.set_ylabel("per second")
    ax1.set_title("LSAs flooded per second")
    for e in events:
        if e.kind not in ("run_start", "run_end", "note"):
            ax1.axvline(e.t_s, color="0.5", ls="--", lw=0.8)
    ax1.legend(fontsize=8, loc="upper right")
    ax2 = fig.add_subplot(2, 1, 2)
    labels = [f"{r['kind']}\n{r['detail']}\nt={float(r['t_s']):g}" for r in conv]
    x = list(range(len(conv)))
    tab = [_num(r["tables_converged_s"]) or 0.0 for r in conv]
    med = [_num(r["tables_median_s"]) or 0.0 for r in conv]
    rts = [_num(r["routes_converged_s"]) or 0.0 for r in conv]
    w = 0.27
    ax2.bar([i - w for i in x], tab, w, label="tables, every node", color="tab:blue")
    ax2.bar(x, med, w, label="tables, median node", color="tab:cyan")
    ax2.bar([i + w for i in x], rts, w, label="routes, every router", color="tab:green")
    ax2.set_xticks(x, labels, fontsize=7)
    ax2.set_ylabel("convergence (scenario s)")
    ax2.set_title("Time until every node's tables were final, per event")
    if conv:
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax2.transAxes)
    out = run / CONTROLPLANE_FIG_FILE
    fig.savefig(out)
    log.info("wrote %s", out)
    return out


__all__ = ["CONTROLPLANE_FIG_FILE", "CONTROLPLANE_FILE", "CONVERGENCE_FILE",
           "controlplane_report", "plot_controlplane"]
