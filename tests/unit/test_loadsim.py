"""tests.loadsim.SyntheticLoad (the integration tests' VNF stand-in) without a network."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.loadsim import SyntheticLoad
from topologies.nodeconf import vnf_stats_path


def test_synthetic_load_writes_counters_files(tmp_path: Path) -> None:
    instances = [SimpleNamespace(name="fw_a", capacity=150), SimpleNamespace(name="fw_b",
                                                                              capacity=None)]
    net: Any = SimpleNamespace(run_folder=tmp_path, topo=SimpleNamespace(instances=instances))
    with SyntheticLoad(net, interval=60) as load:
        a = json.loads(vnf_stats_path(tmp_path, "fw_a").read_text())
        assert (a["name"], a["capacity"], a["rate_pps"]) == ("fw_a", 150, 0.0)
        load.rates["fw_a"] = 75.5
        load.stopped.add("fw_b")
        before = vnf_stats_path(tmp_path, "fw_b").read_text()
        load.write()
    assert json.loads(vnf_stats_path(tmp_path, "fw_a").read_text())["rate_pps"] == 75.5
    assert vnf_stats_path(tmp_path, "fw_b").read_text() == before  # not refreshed
    assert sorted(p.name for p in (tmp_path / "vnf").iterdir()) == ["fw_a.json", "fw_b.json"]
