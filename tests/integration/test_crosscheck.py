"""The control-plane simulation against the emulation (issue #13): on every shipped
topology (but the 143-node tata_nld, see the README), every node's steady-state tables
in ``python -m scenarios simulate`` equal its D-MANO's ``dmano show --json`` in a real
emulation (real FRR flooding, real D-MANOs, real VNF announcements)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmano.policy import shipped_policy
from scenarios.crosscheck import differences, emulated, simulated
from tests.integration.conftest import TOPO_DIR
from topologies.network import Network
from topologies.spec import load_topology

SHIPPED = sorted(p for p in TOPO_DIR.glob("*.yaml") if p.stem != "tata_nld")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_simulated_tables_equal_the_emulated_ones(path: Path) -> None:
    topo = load_topology(path)
    paper = shipped_policy("paper")
    with Network(topo, policy=paper, dmano=True, vnfs=True, connectors=True) as net:
        emu = emulated(net)
    assert all(v["services"] for v in emu.values()), "a node without tables"
    assert differences(emu, simulated(topo, paper)) == []
    if path.stem == "paper_eval":
        # the comparison sees a difference: another policy's weights are not these
        other = differences(emu, simulated(topo, shipped_policy("inverse-cost")))
        assert other and all("emulation" in d and "simulation" in d for d in other)
