"""``python -m scenarios compare`` end to end (issue #12): the short comparison scenario in
both control modes, same seed and timeline, real traffic; the comparison has its four
parts with numbers for both modes, and the single point of failure shows: with the
orchestrator down, a VNF crash is avoided by the D-MANOs and not centrally."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.conftest import ROOT

SCENARIO = ROOT / "scenarios" / "central_vs_distributed_short.yaml"


def test_compare_runs_both_modes_and_reports_the_four_comparisons(tmp_path):
    out = subprocess.run([sys.executable, "-m", "scenarios", "compare", str(SCENARIO),
                          "--output", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    folders = list(tmp_path.rglob("comparison.json"))
    assert len(folders) == 1, folders
    top = folders[0].parent
    data = json.loads(folders[0].read_text())
    text = (top / "comparison.txt").read_text()
    for title in ("1. Reaction per event", "2. Balance per steady window",
                  "3. Control traffic", "4. Single point of failure"):
        assert title in text
    for name in ("compare_reaction.png", "compare_balance.png", "compare_control.png",
                 "compare_utilisation.png"):
        assert (top / name).stat().st_size > 10_000, name
    modes = data["modes"]
    assert set(modes) == {"distributed", "centralized"}
    for mode, m in modes.items():
        assert m["sent"] > 30_000, mode
        # same timeline in both modes: every event has a reaction row
        assert [r["action"] for r in m["reaction"]] == [
            "fail_instance", "restore_instance", "set_load", "fail_orchestrator",
            "fail_instance", "restore_orchestrator", "restore_instance"]
        for b in m["balance"]:  # balance measured in every window, never above optimal
            assert b["highest"] is not None and b["optimum"] is not None, (mode, b)
            assert b["ratio"] >= 0.99, (mode, b)
        ctl = m["control"]
        assert ctl["ospf_packets"] > 0 and ctl["p4rt_write_ops"] > 0, (mode, ctl)
    d, c = modes["distributed"]["control"], modes["centralized"]["control"]
    assert c["poll_messages"] > 0 and d["poll_messages"] == 0
    assert d["lsu_packets"] > c["lsu_packets"]  # the D-MANOs' announcements are flooded
    # the fw2 crash (orchestrator up): both modes avoid it
    for mode in modes:
        assert modes[mode]["reaction"][0]["avoid_s"] is not None, mode
    # ids1 crashes while the orchestrator is down
    ds, cs = modes["distributed"]["spof"], modes["centralized"]["spof"]
    assert len(ds) == len(cs) == 1
    assert ds[0]["avoid_s"] is not None and ds[0]["avoid_s"] < 4.0, ds  # scenario s
    # centrally, nobody avoids it before the orchestrator is back (10 s later)
    assert cs[0]["avoid_s"] is None or cs[0]["avoid_s"] > 10.0, cs
    assert modes["centralized"]["reaction"][4]["avoid_s"] is None  # not before the next
    assert cs[0]["lost"] > 5 * max(ds[0]["lost"], 10), (cs, ds)
