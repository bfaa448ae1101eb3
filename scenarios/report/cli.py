"""``python -m scenarios.report SCENARIO RUN_DIR...``: report finished runs again."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from scenarios.report.files import report_run, report_set
from scenarios.spec import load_scenario


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
