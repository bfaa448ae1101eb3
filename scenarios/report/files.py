"""What the runner calls: the report's files in a run folder and in a set folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dmano.atomicfile import write_json_atomic, write_text_atomic
from scenarios import figures
from scenarios.report.controlplane import plot_controlplane
from scenarios.report.predict import predict, predicted_shares
from scenarios.report.summary import RunSummary, summarize_run
from scenarios.report.text import build_report
from scenarios.spec import Scenario

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.txt"


def report_run(scenario: Scenario, run: str | Path, repetition: int | None = None,
               figures_too: bool = True) -> RunSummary:
    """After one run: ``summary.json`` and Fig. 4 / weights PNGs in the run folder (and,
    for a simulated run, ``controlplane.png``)."""
    run = Path(run)
    summary = summarize_run(run, scenario, repetition)
    summary.save(run / SUMMARY_FILE)
    if figures_too:
        figures.plot_run(run, scenario, expected=predicted_shares(predict(scenario)))
        if summary.meta.get("simulated"):
            plot_controlplane(run)
    return summary


def report_set(scenario: Scenario, summaries: Sequence[RunSummary], out_dir: str | Path,
               figures_too: bool = True) -> dict[str, Path]:
    """After the last run: ``report.txt``, ``summary.json`` and Fig. 5 in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text, summary = build_report(scenario, summaries)
    paths = {"report": out_dir / REPORT_FILE, "summary": out_dir / SUMMARY_FILE}
    write_text_atomic(paths["report"], text)
    write_json_atomic(paths["summary"], summary, indent=1)
    if figures_too and summaries:
        ref = {w.name: w.reference_map for w in scenario.measure.windows if w.reference}
        paths["fig5"] = figures.plot_share_boxplot(
            summaries, out_dir / figures.FIG5_FILE, reference=ref,
            expected=predicted_shares(predict(scenario)), scenario=scenario)
    return paths


__all__ = ["REPORT_FILE", "SUMMARY_FILE", "report_run", "report_set"]
