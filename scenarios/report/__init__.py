"""Reports of scenario runs: measured steady-state shares beside the paper and WCMP.

For each steady-state window of the scenario (``measure.windows``) and each instance:
the measured share of its service's traffic (mean of the per-sample ``share`` of
``shares.csv`` inside the window, see :mod:`scenarios.figures`), the paper's number
(the window's ``reference``), the WCMP prediction (the fixed point of the cost ->
weight -> load loop for the policy in effect, :func:`dmano.policy.fixed_point_shares`,
with real and with integer weights) and the differences in percentage points; packet
loss in total and just before and after each event; per event, the packets lost (and
in how many flows), the recovery time and, per node, the avoidance and readmission
times of the instances it took away or gave back (:mod:`~scenarios.report.events`);
and, for scenarios that carry the paper's numbers, a note on the two readings of the
paper.

The runner calls :func:`report_run` after each run (``summary.json`` and the per-run
figures in the run folder) and :func:`report_set` after the last one (``report.txt``,
``summary.json`` and Fig. 5 in the set folder). ``python -m scenarios.report SCENARIO
RUN_DIR...`` does the same again from the files of finished runs.

One job per module: :mod:`~scenarios.report.summary` (the numbers of one run),
:mod:`~scenarios.report.predict` (the WCMP prediction), :mod:`~scenarios.report.paper`
(the paper's two readings), :mod:`~scenarios.report.text` (the set's text and JSON),
:mod:`~scenarios.report.files` (the files the runner asks for, written atomically) and
:mod:`~scenarios.report.cli`; :mod:`~scenarios.report.controlplane` adds the control plane
of simulated runs (``python -m scenarios simulate``). Everything is importable from
``scenarios.report``.
"""

from __future__ import annotations

from scenarios.report.cli import main
from scenarios.report.events import EventMetrics, event_metrics, events_report
from scenarios.report.files import REPORT_FILE, SUMMARY_FILE, report_run, report_set
from scenarios.report.paper import (
    READING_FIGURE,
    READING_INVERSE_STATIC,
    READING_INVERSE_UTIL,
    READING_PROPORTIONAL,
    READING_PROPORTIONAL_INT,
    readings,
    reproduction_note,
)
from scenarios.report.predict import Prediction, predict, predicted_shares
from scenarios.report.summary import (
    EventLoss,
    RunSummary,
    ShareStats,
    event_losses,
    summarize_run,
    window_shares,
)
from scenarios.report.text import build_report

__all__ = [
    "READING_FIGURE", "READING_INVERSE_STATIC", "READING_INVERSE_UTIL",
    "READING_PROPORTIONAL", "READING_PROPORTIONAL_INT", "REPORT_FILE", "SUMMARY_FILE",
    "EventLoss", "EventMetrics", "Prediction", "RunSummary", "ShareStats", "build_report",
    "event_losses", "event_metrics", "events_report", "main", "predict", "predicted_shares",
    "readings", "report_run", "report_set", "reproduction_note", "summarize_run",
    "window_shares",
]
