"""``python -m scenarios compare FILE``: the scenario once per control mode, compared.

Both modes run the same scenario file with the same seed, so the same flow schedule
(ports, start times, rates) and the same events at the same times; only ``control``
differs (``distributed``: a D-MANO per node; ``centralized``: the orchestrator with the
file's ``central:`` section, or its defaults). Results:

    <output>/<scenario>/<stamp>-compare/
        distributed/   report.txt, summary.json, run-01/ ... (as `scenarios run`)
        centralized/   the same
        comparison.txt, comparison.json, compare_*.png (scenarios.report.compare)
"""

from __future__ import annotations

import time
from pathlib import Path

from scenarios.report import RunSummary, report_run, report_set
from scenarios.report.compare import MODES, ModeResult, write_comparison
from scenarios.spec import load_scenario, run_dir, run_set_dir


def compare_scenario(path: Path, repetitions: int | None = None, output: Path | None = None,
                     figures_too: bool = True) -> Path:
    """Run both modes; return the folder with the comparison."""
    from scenarios.runner import Run

    base = load_scenario(path)
    by_mode = {m: base.with_control(m) for m in MODES}  # refuses events of one mode only
    n = repetitions or base.repetitions
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = run_set_dir(base, f"{stamp}-compare", base=output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"scenario {base.name}: {n} run(s) per mode of {base.duration_s:g} s scenario time "
          f"({base.wall_duration_s:g} s each), modes {', '.join(MODES)}; results in {out}",
          flush=True)
    results = []
    for mode in MODES:
        s = by_mode[mode]
        folder = out / mode
        summaries: list[RunSummary] = []
        for rep in range(1, n + 1):
            print(f"{mode}: run {rep}/{n} ...", flush=True)
            Run(s, rep, run_dir(folder, rep)).execute()
            summaries.append(report_run(s, run_dir(folder, rep), rep, figures_too))
        report_set(s, summaries, folder, figures_too)
        results.append(ModeResult(mode, s, summaries))
    write_comparison(results, out, figures_too)
    return out
