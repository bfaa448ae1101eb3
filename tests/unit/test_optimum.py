"""The min-max-utilisation optimum (dmano.central.optimum) and ``scenarios optimum``.

Hand-checked small cases, an independent water-filling oracle, the zero-demand,
unreachable, fallback and bad-input paths, property tests against random feasible
splits, and every shipped topology: the LP's highest utilisation is never above a
shipped policy's steady state on the same demand.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmano.central import optimum as opt
from dmano.policy import fixed_point_shares, load_policy, shipped_policy, shipped_policy_names
from dmano.service_plane import network_costs
from scenarios import optimum as tool
from scenarios.__main__ import main as scenarios_main
from topologies import addressing as addr
from topologies.spec import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
TOL = 1e-6  # relative slack when comparing utilisations (the LP's own is 1e-9)


def close(a: float, b: float, tol: float = TOL) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def assert_is_split(split: dict[Any, dict[Any, float]],
                    candidates: dict[Any, dict[Any, float]]) -> None:
    for p, row in split.items():
        assert set(row) <= set(candidates.get(p, {})), (p, row)
        assert all(v >= 0 for v in row.values()), (p, row)
        if row:
            assert close(sum(row.values()), 1.0, 1e-9), (p, row)


# -- hand-checked cases -----------------------------------------------------------------

def test_one_ingress_two_instances_split_by_capacity() -> None:
    sol = opt.solve({("A", "S"): 200}, {("A", "S"): {"i1": 5, "i2": 50}},
                    {"i1": 100, "i2": 300})
    assert sol.status == opt.OPTIMAL
    assert close(sol.max_utilisation, 0.5)
    assert close(sol.split[("A", "S")]["i1"], 0.25)
    assert close(sol.split[("A", "S")]["i2"], 0.75)
    assert close(sol.utilisation["i1"], 0.5) and close(sol.utilisation["i2"], 0.5)
    assert opt.weights(sol, 64) == {("A", "S"): {"i1": 1, "i2": 3}}


def test_stage_two_sends_each_ingress_to_its_near_instance() -> None:
    # U* = 1 forces loads 100/100; of the optimal splits only one is cheapest: A fills
    # its own instance a and sends the rest to b, B stays on b. Candidates are listed
    # far-first so that a solver ignoring the costs is unlikely to find it by accident.
    demands = {("A", "S"): 150.0, ("B", "S"): 50.0}
    candidates = {("A", "S"): {"b": 10.0, "a": 0.0}, ("B", "S"): {"a": 10.0, "b": 0.0}}
    sol = opt.solve(demands, candidates, {"a": 100, "b": 100})
    assert close(sol.max_utilisation, 1.0)
    assert close(sol.split[("A", "S")]["a"], 2 / 3)
    assert close(sol.split[("A", "S")]["b"], 1 / 3)
    assert close(sol.split[("B", "S")]["b"], 1.0) and sol.split[("B", "S")]["a"] == 0.0
    # rows come nearest first, and an unused instance gets WCMP weight 0
    assert list(sol.split[("B", "S")]) == ["b", "a"]
    assert opt.weights(sol)[("B", "S")] == {"b": 1, "a": 0}


def test_stage_two_on_a_ring_keeps_every_ingress_local() -> None:
    # three ingresses, each next to its own instance (0), 5 and 9 from the others: any
    # permutation is min-max optimal (U* = 0.6), only the identity is cheapest (HiGHS's
    # stage 1 alone returns a rotation here)
    demands = {(n, "S"): 60.0 for n in "ABC"}
    cands = {("A", "S"): {"a": 0.0, "b": 5.0, "c": 9.0},
             ("B", "S"): {"a": 9.0, "b": 0.0, "c": 5.0},
             ("C", "S"): {"a": 5.0, "b": 9.0, "c": 0.0}}
    sol = opt.solve(demands, cands, {"a": 100, "b": 100, "c": 100})
    assert close(sol.max_utilisation, 0.6)
    for n in "ABC":
        assert close(sol.split[(n, "S")][n.lower()], 1.0), sol.split


def test_stage_two_never_trades_utilisation_for_distance() -> None:
    # the near instance is small: sending more there would raise U above U* = 0.5
    sol = opt.solve({("A", "S"): 50}, {("A", "S"): {"near": 1, "far": 100}},
                    {"near": 10, "far": 90})
    assert close(sol.max_utilisation, 0.5)
    assert close(sol.split[("A", "S")]["near"], 0.1)
    assert close(sol.split[("A", "S")]["far"], 0.9)


def test_base_load_is_not_moved_and_counts() -> None:
    # a carries 80 of 100 already: the 60 new units go 20/40 to reach U* = 1.0 on both
    sol = opt.solve({("A", "S"): 60}, {("A", "S"): {"a": 0, "b": 0}},
                    {"a": 100, "b": 40}, base_load={"a": 80})
    assert close(sol.max_utilisation, 1.0)
    assert close(sol.split[("A", "S")]["a"], 1 / 3)
    # an unreachable instance's base load still bounds U from below
    sol = opt.solve({("A", "S"): 10}, {("A", "S"): {"a": 0}}, {"a": 100, "z": 10},
                    base_load={"z": 9})
    assert close(sol.max_utilisation, 0.9) and close(sol.utilisation["a"], 0.1)


def water_level(demand: float, caps: list[float], base: list[float]) -> float:
    """Independent oracle for one pair reaching every instance: the U with
    sum(max(0, cap * U - base)) = demand, floored at max(base / cap) (bisection)."""
    lo = max(b / c for b, c in zip(base, caps, strict=True))
    hi = lo + demand / sum(caps) + 1 + sum(base) / min(caps)
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(max(0.0, c * mid - b) for c, b in zip(caps, base, strict=True)) < demand:
            lo = mid
        else:
            hi = mid
    return hi


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 1e4),
       st.lists(st.tuples(st.floats(1, 1e4), st.floats(0, 1e4), st.floats(0, 100)),
                min_size=1, max_size=6))
def test_single_pair_matches_water_filling(demand: float,
                                           inst: list[tuple[float, float, float]]) -> None:
    caps = {f"i{j}": c for j, (c, _, _) in enumerate(inst)}
    base = {f"i{j}": b for j, (_, b, _) in enumerate(inst)}
    cands = {("A", "S"): {f"i{j}": p for j, (_, _, p) in enumerate(inst)}}
    sol = opt.solve({("A", "S"): demand}, cands, caps, base)
    assert sol.status == opt.OPTIMAL
    expected = water_level(demand, list(caps.values()), list(base.values()))
    assert close(sol.max_utilisation, expected), (sol.max_utilisation, expected)


def test_full_reachability_at_scale_gives_the_fluid_bound() -> None:
    # 60 ingresses x 2 services, 20 instances per service, every one reachable: U* is
    # the busier service's total demand over its total capacity, and every instance of
    # that service is at U*; the other service only has to stay below it
    caps = {(s, j): 100.0 + 37 * j for s in range(2) for j in range(20)}
    demands = {(n, s): 10.0 + (7 * n + s) % 50 + 20 * s for n in range(60) for s in range(2)}
    cands = {(n, s): {(s, j): float((n + j) % 13) for j in range(20)}
             for n in range(60) for s in range(2)}
    sol = opt.solve(demands, cands, caps)
    fluid = [sum(d for (_, t), d in demands.items() if t == s)
             / sum(c for (t, _), c in caps.items() if t == s) for s in range(2)]
    assert fluid[1] > fluid[0] * 1.1
    assert close(sol.max_utilisation, fluid[1])
    assert all(close(u, fluid[1]) for (t, _), u in sol.utilisation.items() if t == 1)
    assert_is_split(sol.split, cands)


# -- zero demand, unreachable ---------------------------------------------------------

def test_zero_demand_pair_gets_the_headroom_split() -> None:
    # P1 fills a (U* = 1); the idle pair P0 reaches a and b: all new flows go to b
    demands = {"P1": 100.0, "P0": 0.0}
    cands = {"P1": {"a": 0.0}, "P0": {"a": 0.0, "b": 5.0}}
    sol = opt.solve(demands, cands, {"a": 100, "b": 300})
    assert close(sol.max_utilisation, 1.0)
    assert sol.split["P0"] == {"a": 0.0, "b": 1.0}
    assert opt.weights(sol)["P0"] == {"a": 0, "b": 1}
    # b half full at U* = 1 and c empty: headroom 150 : 200
    sol = opt.solve({"P1": 100.0, "P2": 150.0, "P0": 0.0},
                    {"P1": {"a": 0}, "P2": {"b": 0}, "P0": {"b": 0, "c": 0}},
                    {"a": 100, "b": 300, "c": 200})
    assert close(sol.split["P0"]["b"], 150 / 350) and close(sol.split["P0"]["c"], 200 / 350)


def test_no_demand_at_all_splits_by_capacity() -> None:
    sol = opt.solve({}, {"P": {"a": 3, "b": 1}}, {"a": 100, "b": 300})
    assert sol.status == opt.OPTIMAL and sol.max_utilisation == 0.0
    assert close(sol.split["P"]["a"], 0.25) and close(sol.split["P"]["b"], 0.75)


def test_unreachable_pairs_get_an_empty_split() -> None:
    demands = {"served": 50.0, "lost": 30.0, "idle": 0.0}
    cands: dict[str, dict[str, float]] = {"served": {"a": 1}, "idle": {}}
    sol = opt.solve(demands, cands, {"a": 100})
    assert sol.status == opt.OPTIMAL
    assert sol.split["lost"] == {} and sol.split["idle"] == {}
    assert sol.unserved == ("lost",) and "'lost'" in sol.message
    assert close(sol.max_utilisation, 0.5)  # the lost demand goes nowhere
    assert opt.weights(sol)["lost"] == {}


def test_no_instances() -> None:
    sol = opt.solve({"P": 10.0}, {}, {})
    assert (sol.max_utilisation, sol.split, sol.unserved) == (0.0, {"P": {}}, ("P",))


# -- fallback -------------------------------------------------------------------------

DEMANDS = {"A": 100.0, "B": 0.0, "C": 20.0}
CANDS = {"A": {"a": 1.0, "b": 2.0, "c": 3.0}, "B": {"a": 1.0, "c": 1.0}, "C": {}}
CAPS = {"a": 100.0, "b": 100.0, "c": 50.0}


def _failing_linprog(*_args: Any, **_kwargs: Any) -> Any:
    return SimpleNamespace(status=2, x=None, message="The problem is infeasible.")


@pytest.mark.parametrize("failure", ["status", "raise"])
def test_solver_failure_falls_back_to_equal_weights(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture,
                                                    failure: str) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError("HiGHS exploded")

    monkeypatch.setattr(opt, "linprog", _failing_linprog if failure == "status" else boom)
    with caplog.at_level(logging.WARNING, logger="dmano.central.optimum"):
        sol = opt.solve(DEMANDS, CANDS, CAPS)
    assert sol.status == opt.FALLBACK
    assert "equal weights" in caplog.text
    assert ("infeasible" if failure == "status" else "exploded") in sol.message
    assert sol.split["A"] == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    assert sol.split["B"] == {"a": 0.5, "c": 0.5}
    assert sol.split["C"] == {}
    assert close(sol.utilisation["c"], (100 / 3) / 50)
    assert close(sol.max_utilisation, (100 / 3) / 50)


def test_stage_two_failure_keeps_the_optimal_stage_one_split(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = opt.linprog
    calls = []

    def second_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs) if len(calls) == 1 else _failing_linprog()

    monkeypatch.setattr(opt, "linprog", second_fails)
    sol = opt.solve(DEMANDS, CANDS, CAPS)
    assert sol.status == opt.OPTIMAL and "stage 1's split kept" in sol.message
    assert close(sol.max_utilisation, 100 / 250)
    assert_is_split(sol.split, CANDS)


# -- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize(("demands", "caps", "base", "cands", "match"), [
    ({"P": -1.0}, {"a": 1.0}, None, {}, r"demand of 'P'.*-1\.0"),
    ({"P": math.nan}, {"a": 1.0}, None, {}, r"demand of 'P'.*nan"),
    ({"P": math.inf}, {"a": 1.0}, None, {}, r"demand of 'P'.*inf"),
    ({"P": "ten"}, {"a": 1.0}, None, {}, r"demand of 'P'.*'ten'"),
    ({"P": True}, {"a": 1.0}, None, {}, r"demand of 'P'.*True"),
    ({"P": 1.0}, {"a": 0.0}, None, {}, r"capacity of instance 'a'.*> 0.*0\.0"),
    ({"P": 1.0}, {"a": -5}, None, {}, r"capacity of instance 'a'.*-5"),
    ({"P": 1.0}, {"a": math.nan}, None, {}, r"capacity of instance 'a'.*nan"),
    ({"P": 1.0}, {"a": 1.0}, {"a": -2.0}, {}, r"base load of instance 'a'.*-2\.0"),
    ({"P": 1.0}, {"a": 1.0}, {"z": 2.0}, {}, r"base load of instance 'z'.*no capacity"),
    ({"P": 1.0}, {"a": 1.0}, None, {"P": {"q": 1.0}}, r"candidate 'q' of 'P'.*no capacity"),
    ({"P": 1.0}, {"a": 1.0}, None, {"P": {"a": math.nan}}, r"path cost.*'a'.*'P'.*nan"),
])
def test_bad_input_names_key_and_value(demands: Any, caps: Any, base: Any, cands: Any,
                                       match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opt, "linprog", _failing_linprog)  # validation comes first
    with pytest.raises(ValueError, match=match):
        opt.solve(demands, cands, caps, base)


def test_evaluation_and_weights_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="instance 'x' has no capacity"):
        opt.split_utilisation({"P": {"x": 1.0}}, {"P": 1.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="max_group_size"):
        opt.weights(opt.solve({}, {}, {}), 0)


def test_split_utilisation_and_max() -> None:
    split = {"P": {"a": 0.5, "b": 0.5}, "Q": {"b": 1.0}, "R": {}}
    demands = {"P": 100.0, "Q": 20.0, "R": 50.0}
    util = opt.split_utilisation(split, demands, {"a": 100, "b": 70, "c": 10},
                                 base_load={"c": 5})
    assert util == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert opt.max_utilisation(split, demands, {"a": 100, "b": 70}) == 1.0
    assert opt.max_utilisation({}, {}, {}) == 0.0


# -- properties -------------------------------------------------------------------------

@st.composite
def problems(draw: Any) -> dict[str, Any]:
    n_inst = draw(st.integers(1, 6))
    insts = [f"i{j}" for j in range(n_inst)]
    caps = {k: draw(st.floats(1, 1000)) for k in insts}
    base = {k: draw(st.sampled_from([0.0, 0.0, draw(st.floats(0, 500))])) for k in insts}
    pairs = [(f"n{n}", s) for n in range(draw(st.integers(1, 4)))
             for s in range(draw(st.integers(1, 2)))]
    demands = {p: draw(st.sampled_from([0.0, draw(st.floats(0, 1000))])) for p in pairs}
    cands = {p: {k: draw(st.floats(0, 100)) for k in draw(st.lists(
        st.sampled_from(insts), unique=True, max_size=n_inst))} for p in pairs}
    weights = {p: {k: draw(st.floats(0.01, 1)) for k in cands[p]} for p in pairs}
    return {"demands": demands, "cands": cands, "caps": caps, "base": base,
            "weights": weights}


@settings(max_examples=60, deadline=None)
@given(problems())
def test_optimum_beats_any_feasible_split(pb: dict[str, Any]) -> None:
    demands, cands, caps, base = pb["demands"], pb["cands"], pb["caps"], pb["base"]
    sol = opt.solve(demands, cands, caps, base)
    assert sol.status == opt.OPTIMAL
    assert_is_split(sol.split, cands)
    for p, row in cands.items():
        assert bool(sol.split[p]) == bool(row)  # every reachable pair has a split
    assert sol.utilisation == pytest.approx(
        opt.split_utilisation(sol.split, demands, caps, base))
    assert sol.max_utilisation == max(sol.utilisation.values())

    def beats(split: dict[Any, dict[str, float]]) -> None:
        other = opt.max_utilisation(split, demands, caps, base)
        assert sol.max_utilisation <= other * (1 + TOL) + TOL, (sol.max_utilisation, other)

    beats({p: {k: w / sum(row.values()) for k, w in row.items()}
           for p, row in pb["weights"].items() if row})
    beats({p: {k: caps[k] / sum(caps[j] for j in row) for k in row}
           for p, row in cands.items() if row})
    beats(opt.equal_split(cands))
    # and it is not below what any split must give: each pair's demand lands on its
    # candidates, so their pooled utilisation is a lower bound
    for p, row in cands.items():
        if row and demands[p] > 0:
            pooled = (demands[p] + sum(base[k] for k in row)) / sum(caps[k] for k in row)
            assert sol.max_utilisation >= pooled * (1 - TOL) - TOL


# -- scenarios optimum ---------------------------------------------------------------

def shipped_topologies() -> list[Path]:
    return sorted(p for p in TOPOLOGIES.glob("*.yaml") if load_topology(p).instances)


POLICIES = [load_policy(shipped_policy(n)) for n in shipped_policy_names()]


@pytest.mark.parametrize("path", shipped_topologies(), ids=lambda p: p.stem)
def test_optimum_is_never_worse_than_a_shipped_policy(path: Path) -> None:
    topo = load_topology(path)
    for all_instances in (False, True):
        result = tool.compare(topo, POLICIES, tool.default_demand(topo), all_instances)
        assert result.optimum.status == opt.OPTIMAL
        for o in result.policies:
            assert result.optimum.max_utilisation <= o.max_utilisation * (1 + TOL) + TOL, (
                o.policy, result.optimum.max_utilisation, o.max_utilisation)


def test_the_comparison_is_not_trivial_on_paper_eval() -> None:
    # Section VI topology with D running: the policies differ from the optimum
    topo = load_topology(TOPOLOGIES / "paper_eval.yaml")
    result = tool.compare(topo, POLICIES, {("A", "SVC"): 200.0}, all_instances=True)
    assert close(result.optimum.max_utilisation, 200 / 450)
    ratios = {o.policy: result.ratio(o) for o in result.policies}
    assert all(r is not None and r > 1.05 for r in ratios.values()), ratios


def test_policy_steady_state_matches_fixed_point_shares() -> None:
    # one ingress: the iteration through compute_tables is dmano.policy's fixed point
    topo = load_topology(TOPOLOGIES / "paper_eval.yaml")
    plane = tool.make_plane(topo, all_instances=True)
    for policy in POLICIES:
        out = tool.policy_steady_state(plane, policy, {("A", "SVC"): 200.0})
        eq = fixed_point_shares(policy, [160, 160, 30], [150] * 3, 200.0, integer=True)
        assert out.converged == eq.converged
        shares = out.split[("A", "SVC")]
        got = [shares["svc_b"], shares["svc_c"], shares["svc_d"]]
        assert got == pytest.approx(list(eq.shares), abs=1e-6), policy.name
    paper = tool.policy_steady_state(plane, load_policy(shipped_policy("paper")),
                                     {("A", "SVC"): 200.0})
    assert paper.split[("A", "SVC")] == pytest.approx(
        {"svc_b": 25 / 64, "svc_c": 25 / 64, "svc_d": 14 / 64})


def test_steady_view_network_costs_are_the_topology_shortest_paths() -> None:
    import networkx as nx

    topo = load_topology(TOPOLOGIES / "faults8.yaml")
    plane = tool.make_plane(topo)
    view = plane.view(POLICIES[0], {})
    graph = nx.Graph()
    graph.add_weighted_edges_from((lk.a, lk.b, lk.cost) for lk in topo.links)
    for n in topo.nodes:
        expect = nx.single_source_dijkstra_path_length(graph, n.name)
        got = network_costs(view, addr.router_id(n.index))
        assert got == {addr.router_id(topo.node(m).index): d for m, d in expect.items()}
    assert len(view.instances) == len(topo.instances)


def test_two_ingresses_share_the_instances() -> None:
    # fig1 from N1 and N6: the loads of both ingresses add up at the instances
    topo = load_topology(TOPOLOGIES / "fig1.yaml")
    demand = {("N1", "FW"): 300.0, ("N6", "FW"): 100.0}
    result = tool.compare(topo, POLICIES, demand)
    assert close(result.optimum.max_utilisation, 400 / 2000)
    for o in result.policies:
        loads = sum(o.utilisation[i] * 1000 for i in ("fw1", "fw2"))
        assert loads == pytest.approx(400.0)
        assert o.utilisation["ids1"] == 0.0


def test_default_and_parsed_demand() -> None:
    fig1 = load_topology(TOPOLOGIES / "fig1.yaml")  # N1 source, N6 sink only
    assert tool.default_demand(fig1) == {("N1", "IDS"): 100.0, ("N1", "FW"): 100.0}
    parsed = tool.parse_demand(["N6:2=250", "N1:IDS=0", " N2 : FW = 1e2 "], fig1)
    assert parsed == {("N6", "FW"): 250.0, ("N1", "IDS"): 0.0, ("N2", "FW"): 100.0}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = scenarios_main(["optimum", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(("args", "needles"), [
    (["--demand", "X:SVC=3"], ["--demand", "unknown node 'X'", "A, B, C, D"]),
    (["--demand", "A:FW=3"], ["--demand", "unknown service 'FW'", "SVC (1)"]),
    (["--demand", "A:SVC=-3"], ["--demand", "rate", "'-3'"]),
    (["--demand", "A:SVC=nan"], ["--demand", "rate", "'nan'"]),
    (["--demand", "ASVC=3"], ["--demand", "NODE:SERVICE=RATE"]),
    (["--policy", "nope"], ["--policy", "unknown policy 'nope'", "paper"]),
])
def test_cli_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                           needles: list[str]) -> None:
    rc, out, err = run_cli(capsys, str(TOPOLOGIES / "paper_eval.yaml"), *args)
    assert rc == 2 and out == ""
    for needle in needles:
        assert needle in err


def test_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(TOPOLOGIES / "paper_eval.yaml")
    rc, out, _ = run_cli(capsys, path, "--all-instances")
    assert rc == 0
    assert "optimum" in out and "svc_d" in out
    assert all(name in out for name in shipped_policy_names())
    rc, out, _ = run_cli(capsys, path, "--json", "--policy", "paper", "--policy", "static",
                         "--demand", "A:SVC=200")
    data = json.loads(out)
    assert rc == 0 and data["left_out"] == ["svc_d"]
    assert [p["name"] for p in data["policies"]] == ["paper", "static"]
    assert data["demand"] == [{"node": "A", "service": "SVC", "rate": 200.0}]
    assert data["optimum"]["max_utilisation"] == pytest.approx(200 / 300)
    assert data["optimum"]["split"][0]["shares"] == pytest.approx(
        {"svc_b": 0.5, "svc_c": 0.5})
