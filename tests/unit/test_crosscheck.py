"""scenarios.crosscheck without an emulation: the differences between two sets of tables,
the simulated tables of paper_eval, and ``emulated`` waiting on a fake network whose
D-MANO statuses are scripted over time (short timeouts)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dmano.policy import shipped_policy
from dmano.yamlconf import loads_yaml
from scenarios import crosscheck
from scenarios.crosscheck import Tables, differences, emulated, simulated
from topologies.spec import Topology, load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
PAPER_EVAL = ROOT / "topologies" / "paper_eval.yaml"


@pytest.fixture(scope="module")
def eval_topo() -> Topology:
    return load_topology(PAPER_EVAL)


@pytest.fixture(scope="module")
def sim(eval_topo: Topology) -> Tables:
    return simulated(eval_topo, shipped_policy("paper"))


def candidates(tables: Tables, node: str, service: int = 1) -> dict[str, dict[str, Any]]:
    [svc] = [s for s in tables[node]["services"] if s["service_id"] == service]
    return {c["name"]: c for c in svc["candidates"]}


# -- differences ---------------------------------------------------------------------------
def test_equal_tables_have_no_difference(sim: Tables) -> None:
    assert differences(sim, copy.deepcopy(sim)) == []
    assert differences({}, {}) == []


def test_a_changed_weight_is_one_line_with_both_services(sim: Tables) -> None:
    emu = copy.deepcopy(sim)
    candidates(emu, "B")["svc_c"]["weight"] += 1
    [line] = differences(emu, sim)
    head, emu_line, sim_line = line.split("\n")
    assert head == "node B service 1:"
    assert emu_line.startswith("  emulation  ") and sim_line.startswith("  simulation ")
    assert json.loads(emu_line.removeprefix("  emulation  ")) == emu["B"]["services"][0]
    assert json.loads(sim_line.removeprefix("  simulation ")) == sim["B"]["services"][0]


def test_a_service_missing_on_one_side() -> None:
    s1 = {"service_id": 1, "candidates": [{"name": "x", "weight": 1}]}
    s2 = {"service_id": 2, "candidates": []}
    emu = {"A": {"services": [s1]}, "B": {"services": [s1, s2]}}
    sim = {"A": {"services": [s2, s1]}, "B": {"services": [s1, s2]}, "C": {"services": [s1]}}
    assert differences(emu, sim) == [
        "node A service 2:\n  emulation  null\n  simulation "
        + json.dumps(s2, sort_keys=True),
        "node C service 1:\n  emulation  null\n  simulation "
        + json.dumps(s1, sort_keys=True)]
    assert differences(sim, emu)[0].startswith("node A service 2:\n  emulation  {")


# -- simulated -----------------------------------------------------------------------------
def test_simulated_tables_of_paper_eval(sim: Tables) -> None:
    assert sorted(sim) == ["A", "B", "C", "D"]
    for node in sim:  # svc_d is not started: only svc_b and svc_c are candidates
        assert sorted(candidates(sim, node)) == ["svc_b", "svc_c"]
    a = candidates(sim, "A")
    assert [(c["path_cost"], c["share"]) for c in a.values()] == [(310, 0.5), (310, 0.5)]
    b = candidates(sim, "B")
    assert b["svc_b"]["local"] and b["svc_b"]["path_cost"] == 150
    assert b["svc_c"]["network_cost"] == 320 and b["svc_c"]["path_cost"] == 470
    assert b["svc_c"]["weight"] > b["svc_b"]["weight"]  # the paper policy: farther, more
    assert sum(c["share"] for c in b.values()) == pytest.approx(1)
    assert candidates(sim, "D")["svc_b"]["path_cost"] == 30 + 160 + 150


def test_another_policy_gives_other_tables(eval_topo: Topology, sim: Tables) -> None:
    other = simulated(eval_topo, shipped_policy("inverse-cost"))
    diffs = differences(other, sim)
    assert diffs and all(d.startswith("node ") for d in diffs)


@pytest.mark.parametrize("hosts", [
    "hosts: [{name: src, node: A, role: source}]",
    "hosts: [{name: both, node: A, role: both}]",  # one host cannot be both ends
    "hosts: []",
])
def test_simulated_needs_a_source_and_a_sink(hosts: str) -> None:
    text = PAPER_EVAL.read_text()
    text = text[:text.index("hosts:")] + hosts + "\n" + text[text.index("chains:"):]
    topo = parse_topology(loads_yaml(text, "nosink.yaml"), Path("/x/nosink.yaml"))
    with pytest.raises(ValueError, match=r"^/x/nosink.yaml: crosscheck needs a source and "
                                         "a sink host"):
        simulated(topo, shipped_policy("paper"))


# -- emulated ------------------------------------------------------------------------------
class FakeClock:
    """Stands in for the ``time`` module of scenarios.crosscheck: sleeping advances the
    clock at once, so the default settle time (3 s) and timeout (120 s) cost nothing and
    the rounds are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(crosscheck, "time", c)
    return c


class FakeNet:
    """``net.topo`` and ``net.dmano_status``; round ``i`` (the i-th time every node is
    asked) answers ``rounds[i]`` (the last one from then on); a node missing from a
    round has no status yet (None)."""

    def __init__(self, topo: Topology, rounds: list[Tables]):
        self.topo = topo
        self.rounds = rounds
        self.asked = 0

    @property
    def round(self) -> int:
        return self.asked // len(self.topo.nodes)

    def dmano_status(self, node: str) -> dict[str, Any] | None:
        tables = self.rounds[min(self.round, len(self.rounds) - 1)]
        self.asked += 1
        if node not in tables:
            return None
        return {"node": node, "started": 12.5, "connector": {"writes": self.asked},
                **copy.deepcopy(tables[node])}


def with_weight(tables: Tables, weight: int) -> Tables:
    out = copy.deepcopy(tables)
    candidates(out, "A")["svc_b"]["weight"] = weight
    return out


def test_complete_and_stable_tables_are_returned(eval_topo: Topology, sim: Tables,
                                                 clock: FakeClock) -> None:
    net = FakeNet(eval_topo, [sim])
    assert emulated(net) == sim  # the services part of each status only
    assert clock.now == 3.0  # settle_s after the first (already complete) tables
    assert net.round == 1 + 12  # every 0.25 s


def test_a_missing_status_or_instance_is_waited_for(eval_topo: Topology, sim: Tables,
                                                    clock: FakeClock) -> None:
    no_b = {k: v for k, v in sim.items() if k != "B"}
    one_candidate = copy.deepcopy(sim)
    one_candidate["C"]["services"][0]["candidates"].pop()
    net = FakeNet(eval_topo, [no_b, no_b, one_candidate, one_candidate, one_candidate, sim])
    assert emulated(net, settle_s=1.0) == sim
    assert clock.now == 5 * 0.25 + 1.0  # stable for 1 s from round 5 on


def test_incomplete_tables_time_out(eval_topo: Topology, sim: Tables,
                                    clock: FakeClock) -> None:
    incomplete = copy.deepcopy(sim)
    incomplete["D"]["services"][0]["candidates"].pop()
    with pytest.raises(TimeoutError, match=rf"^the D-MANO tables of {PAPER_EVAL} did not "
                                           r"settle within 120 s$"):
        emulated(FakeNet(eval_topo, [incomplete]))
    assert clock.now == 120.0
    with pytest.raises(TimeoutError, match=r"within 2 s"):  # no D-MANO answers
        emulated(FakeNet(eval_topo, [{}]), timeout=2)


def test_flapping_tables_are_returned_once_stable(eval_topo: Topology, sim: Tables,
                                                  clock: FakeClock) -> None:
    flapping = [with_weight(sim, w) for w in (3, 4, 3, 4, 3, 4)]  # complete, changing
    net = FakeNet(eval_topo, [*flapping, sim])
    assert emulated(net) == sim
    assert clock.now == len(flapping) * 0.25 + 3.0


def test_tables_that_keep_changing_time_out(eval_topo: Topology, sim: Tables,
                                            clock: FakeClock) -> None:
    flapping = [with_weight(sim, w) for w in (3, 4) * 20]  # 10 s of changes
    with pytest.raises(TimeoutError):
        emulated(FakeNet(eval_topo, flapping), settle_s=3.0, timeout=12)
    assert clock.now == 12.0


def test_emulated_with_real_time(eval_topo: Topology, sim: Tables) -> None:
    t0 = time.monotonic()
    assert emulated(FakeNet(eval_topo, [with_weight(sim, 3), sim]), settle_s=0.3,
                    timeout=5) == sim
    assert 0.5 <= time.monotonic() - t0 < 3
