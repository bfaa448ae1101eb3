"""scenarios.report as a package: its import surface and the files it writes (atomically)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import scenarios.report as rp
from dmano import atomicfile
from scenarios.spec import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "scenarios" / "paper_fig4.yaml"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(PAPER)


def summary_of(run: str) -> rp.RunSummary:
    return rp.RunSummary(
        run, 1, windows={"phase1": {"svc_b": rp.ShareStats([49.0, 51.0], 50.0),
                                    "svc_c": rp.ShareStats([51.0, 49.0], 50.0)}},
        sent=1000, received=990,
        event_losses=[rp.EventLoss(150.0, "start_instance", "svc_d", 100, 100, 100, 95)])


def test_every_public_name_is_importable_from_the_package() -> None:
    assert len(rp.__all__) == len(set(rp.__all__))
    missing = [n for n in rp.__all__ if not hasattr(rp, n)]
    assert missing == []
    # what the runner, scenarios.figures and the tests import
    from scenarios.report import (  # noqa: F401
        READING_FIGURE,
        REPORT_FILE,
        SUMMARY_FILE,
        RunSummary,
        build_report,
        main,
        report_run,
        report_set,
    )
    assert (SUMMARY_FILE, REPORT_FILE) == ("summary.json", "report.txt")


def test_run_summary_saved_as_indented_json_with_newline(tmp_path: Path) -> None:
    s = summary_of("run-01")
    path = s.save(tmp_path / rp.SUMMARY_FILE)
    assert path.read_text(encoding="utf-8") == json.dumps(s.to_dict(), indent=1) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [rp.SUMMARY_FILE]  # no temp file
    assert rp.RunSummary.load(path).to_dict() == s.to_dict()


def test_report_set_files_and_format(tmp_path: Path, scenario: Scenario) -> None:
    summaries = [summary_of("run-01"), summary_of("run-02")]
    paths = rp.report_set(scenario, summaries, tmp_path / "set", figures_too=False)
    text, summary = rp.build_report(scenario, summaries)
    assert set(paths) == {"report", "summary"}
    assert paths["report"].read_text(encoding="utf-8") == text
    assert paths["summary"].read_text(encoding="utf-8") == json.dumps(summary, indent=1) + "\n"
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [rp.REPORT_FILE,
                                                                     rp.SUMMARY_FILE]


def test_report_files_are_written_by_rename(tmp_path: Path, scenario: Scenario,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """summary.json (run and set) and report.txt go through dmano.atomicfile: a temporary
    file renamed over the target, so a reader never sees half a file."""
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renamed.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(atomicfile.os, "replace", replace)
    summary_of("run-01").save(tmp_path / "run-01.json")
    rp.report_set(scenario, [summary_of("run-01")], tmp_path / "set", figures_too=False)
    assert [dst for _, dst in renamed] == ["run-01.json", rp.REPORT_FILE, rp.SUMMARY_FILE]
    assert all(src.startswith(f".{dst}.") and src.endswith(".tmp") for src, dst in renamed)


def test_python_m_scenarios_report_runs() -> None:
    res = subprocess.run([sys.executable, "-m", "scenarios.report", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m scenarios.report")
