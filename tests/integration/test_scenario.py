"""A short, time-scaled run of the paper's Section VI scenario, end to end."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector_p4 import bmv2_build
from tests.integration.conftest import ROOT, our_namespaces
from tests.integration.fig4_checks import check_fig4_short
from topologies import runstate
from topologies.spec import load_topology

SHORT = ROOT / "scenarios" / "paper_fig4_short.yaml"


@pytest.mark.parametrize("connector", ["ebpf", "bmv2"])
def test_short_paper_scenario(tmp_path: Path, connector: str):
    if connector == "bmv2" and (reason := bmv2_build.missing_reason()):
        pytest.skip(f"BMv2 connector: {reason}")
    out = subprocess.run([sys.executable, "-m", "scenarios", "run", str(SHORT),
                          "--output", str(tmp_path), "--connector", connector], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = Path(out.stdout.strip().splitlines()[-1].removeprefix("results: "))
    summary = json.loads((folder / "summary.json").read_text())
    run = folder / "run-01"
    for name in ("shares.csv", "weights.csv", "events.csv", "flows.csv", "traffic.csv",
                 "fig4_traffic_distribution.png", "weights.png", "meta.json"):
        assert (run / name).stat().st_size > 0, name
    assert (folder / "fig5_boxplot.png").stat().st_size > 0
    assert (folder / "report.txt").read_text().count("phase2") >= 3
    assert list((run / "logs").glob("r*_dmano.log")) and list((run / "logs").glob("cA_*"))

    check_fig4_short(folder)
    flows = (run / "flows.csv").read_text().splitlines()[1:]
    # summary.json says the same as the text report and the CSVs
    assert summary["scenario"] == "paper_fig4_short" and summary["runs"] == 1
    assert summary["loss"]["lost"] == 0 and summary["loss"]["sent"] > 0
    assert summary["loss"]["sent"] == sum(int(ln.split(",")[6]) for ln in flows)
    assert set(summary["windows"]) == {"phase1", "phase2"}


def test_ctrl_c_stops_cleanly(tmp_path: Path):
    before = set(our_namespaces())
    runs_before = {r.run_id for r in runstate.list_runs()}
    proc = subprocess.Popen([sys.executable, "-m", "scenarios", "run", str(SHORT),
                             "--output", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            seen.append(line)
            if "flows active" in line:
                break
    sel.close()
    assert seen and "flows active" in seen[-1], "".join(seen)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert set(our_namespaces()) - before == set()
    assert {r.run_id for r in runstate.list_runs()} - runs_before == set()


def _run_short(name: str, tmp_path: Path) -> tuple[Path, dict]:
    out = subprocess.run([sys.executable, "-m", "scenarios", "run",
                          str(ROOT / "scenarios" / f"{name}.yaml"), "--output", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = Path(out.stdout.strip().splitlines()[-1].removeprefix("results: "))
    run = folder / "run-01"
    for f in ("losses.csv", "weight_changes.csv", "loss_timeline.png", "events.csv"):
        assert (run / f).stat().st_size > 0, f
    return folder, json.loads((run / "summary.json").read_text())


def test_maintenance_short_loses_nothing(tmp_path: Path):
    """Drain, stop after the flows ended, start again, undrain: 0 packets lost, and
    every node stops giving the drained instance new flows, then takes it back."""
    folder, run = _run_short("maintenance_short", tmp_path)
    assert run["sent"] > 0 and run["lost"] == 0, (run["sent"], run["lost"])
    kinds = [e["kind"] for e in run["events"]]
    assert kinds == ["drain_instance", "stop_instance", "start_instance", "undrain_instance"]
    drain, undrain = run["events"][0], run["events"][3]
    nodes = {n.name for n in load_topology(ROOT / "topologies" / "faults8.yaml").nodes}
    assert set(drain["avoidance_s"]["fw1"]) == nodes
    assert all(v is not None for v in drain["avoidance_s"]["fw1"].values())
    assert all(v is not None for v in undrain["readmission_s"]["fw1"].values())
    assert "no packet lost" in (folder / "report.txt").read_text()


def test_faults_short_measures_every_event(tmp_path: Path):
    """A VNF crash, a link failure and a node failure, each restored: every event is in
    the report with its loss and recovery; the crashed VNF is avoided by every node."""
    folder, run = _run_short("faults_short", tmp_path)
    kinds = [e["kind"] for e in run["events"]]
    assert kinds == ["fail_instance", "restore_instance", "fail_link", "restore_link",
                     "fail_node", "restore_node"]
    crash = run["events"][0]
    avoid = crash["avoidance_s"]["fw1"]
    assert len(avoid) == 8 and all(v is not None for v in avoid.values()), avoid
    for e in run["events"]:
        assert e["lost"] >= 0 and (e["lost"] == 0 or e["recovery_s"] is not None), e
    assert run["lost"] == sum(e["lost"] for e in run["events"]) + run["lost_before_events"]
    text = (folder / "report.txt").read_text()
    assert text.count(" avoided by ") >= 2  # the crashed VNF and the failed node's
