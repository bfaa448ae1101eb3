"""Service plane topology and WCMP tables from hand-built LSDB views."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address

import pytest

from dmano.model import (
    InstanceState,
    LsdbView,
    NetworkLsa,
    RouterLink,
    RouterLsa,
    VnfAnnouncement,
)
from dmano.policy import (
    PAPER_POLICY,
    InverseCost,
    Measurement,
    Policy,
    StaticCost,
    fixed_point_shares,
    load_policy,
    shipped_policy,
)
from dmano.service_plane import (
    Candidate,
    build_graph,
    compute_tables,
    dumps_tables,
    network_costs,
    render_tables,
    router_node,
    tables_to_json,
    vnf_node,
)

RID = {name: IPv4Address(f"10.255.0.{i}") for i, name in enumerate("ABCDE", start=1)}
FW = 1
FW_ANYCAST = IPv4Address("10.254.1.1")
INVERSE = Policy(name="inverse", cost=StaticCost(), weight=InverseCost())


def endpoint(node: str) -> IPv4Address:
    return IPv4Address(f"10.{list(RID).index(node) + 1}.0.2")


def make_view(links: list[tuple[str, str, int]], one_way: tuple[tuple[str, str, int], ...] = (),
              routers: str = "ABCDE") -> LsdbView:
    """Router LSAs with point-to-point links (both directions) plus stub links."""
    per: dict[str, list[RouterLink]] = {n: [] for n in routers}
    for k, (a, b, cost) in enumerate(links):
        net = IPv4Address(f"10.0.{k}.0")
        per[a].append(RouterLink(1, RID[b], net + 1, cost))
        per[b].append(RouterLink(1, RID[a], net + 2, cost))
        for n in (a, b):
            per[n].append(RouterLink(3, net, IPv4Address("255.255.255.252"), cost))
    for a, b, cost in one_way:
        per[a].append(RouterLink(1, RID[b], IPv4Address("10.0.99.1"), cost))
    for n, ls in per.items():
        ls.append(RouterLink(3, RID[n], IPv4Address("255.255.255.255"), 0))  # loopback
        ls.append(RouterLink(3, IPv4Address(f"10.{list(RID).index(n) + 1}.0.0"),
                             IPv4Address("255.255.255.0"), 10))  # connector stub
    return LsdbView(routers={RID[n]: RouterLsa(RID[n], tuple(ls)) for n, ls in per.items()})


def announce(view: LsdbView, node: str, cost: int, instance_id: int = 1,
             service_id: int = FW, state: InstanceState = InstanceState.UP,
             capacity: int = 150, load: int = 0) -> None:
    view.instances[(RID[node], instance_id)] = VnfAnnouncement(
        instance_id=instance_id, service_id=service_id, anycast=FW_ANYCAST, cost=cost,
        endpoint=endpoint(node), capacity=capacity, load=load, state=state,
        name=f"fw-{node.lower()}{instance_id}")


FIG3 = [("A", "B", 10), ("A", "C", 10), ("C", "D", 5), ("B", "E", 10), ("D", "E", 10)]


def fig3() -> LsdbView:
    view = make_view(FIG3)
    announce(view, "B", 20)
    announce(view, "D", 10)
    return view


def by_node(table: list[Candidate]) -> dict[str, Candidate]:
    names = {v: k for k, v in RID.items()}
    return {names[c.adv_router]: c for c in table}


# -- Fig. 3 -----------------------------------------------------------------------------


def test_fig3_path_costs_from_a() -> None:
    tables = compute_tables(fig3(), RID["A"], INVERSE)
    assert list(tables) == [FW]
    rows = tables[FW]
    assert [(c.adv_router, c.network_cost, c.vnf_cost, c.path_cost) for c in rows] == [
        (RID["D"], 15, 10, 25),  # cheapest first
        (RID["B"], 10, 20, 30),
    ]
    fw = by_node(rows)
    assert fw["D"].weight > fw["B"].weight  # inverse cost favours D
    assert fw["D"].share == pytest.approx((1 / 25) / (1 / 25 + 1 / 30))
    assert (fw["D"].weight, fw["B"].weight) == (35, 29)
    assert not any(c.local for c in rows)
    assert fw["D"].endpoint == IPv4Address("10.4.0.2")
    assert fw["D"].name == "fw-d1"


def test_fig3_graph_and_network_costs() -> None:
    view = fig3()
    graph = build_graph(view, RID["A"])
    assert graph[router_node(RID["A"])][router_node(RID["B"])]["weight"] == 10
    assert graph[router_node(RID["B"])][vnf_node(RID["B"], 1)]["weight"] == 20
    # stub links are not edges: only routers and VNF nodes
    assert {n[0] for n in graph.nodes} == {"router", "vnf"}
    assert network_costs(view, RID["A"]) == {
        RID["A"]: 0, RID["B"]: 10, RID["C"]: 10, RID["D"]: 15, RID["E"]: 20}
    assert network_costs(view, RID["E"])[RID["C"]] == 15


def test_fig3_from_other_nodes_and_local_instance() -> None:
    view = fig3()
    fw_e = by_node(compute_tables(view, RID["E"], INVERSE)[FW])
    assert (fw_e["B"].path_cost, fw_e["D"].path_cost) == (30, 20)
    fw_b = by_node(compute_tables(view, RID["B"], INVERSE)[FW])
    assert fw_b["B"].local and fw_b["B"].network_cost == 0 and fw_b["B"].path_cost == 20
    assert not fw_b["D"].local and fw_b["D"].path_cost == 20 + 10  # B-E-D


def test_proportional_policy_on_fig3_favours_b() -> None:
    fw = by_node(compute_tables(fig3(), RID["A"], PAPER_POLICY)[FW])
    assert fw["B"].weight > fw["D"].weight
    assert fw["B"].share == pytest.approx(30 / 55)


# -- Section VI through compute_tables --------------------------------------------------

SEC6 = [("A", "B", 160), ("A", "C", 160), ("A", "D", 30)]


def sec6_view(costs: dict[str, int]) -> LsdbView:
    view = make_view(SEC6, routers="ABCD")
    for node, cost in costs.items():
        announce(view, node, cost)
    return view


def shares_of(table: list[Candidate]) -> dict[str, float]:
    total = sum(c.weight for c in table)
    return {k: c.weight / total for k, c in by_node(table).items()}


def test_section_vi_phase1_is_even() -> None:
    # both before and after the load arrives (costs 150, then 150 - 100 = 50)
    for cost in (150, 50):
        table = compute_tables(sec6_view({"B": cost, "C": cost}), RID["A"], PAPER_POLICY)[FW]
        assert [c.weight for c in table] == [1, 1]
        assert shares_of(table) == {"B": 0.5, "C": 0.5}


def test_section_vi_phase2_at_the_equilibrium() -> None:
    eq = fixed_point_shares(PAPER_POLICY, [160, 160, 30], [150] * 3, 200)
    assert eq.loads == pytest.approx((77.5, 77.5, 45.0))
    costs = {n: PAPER_POLICY.vnf_cost(Measurement(capacity=150, load=load))
             for n, load in zip("BCD", (77.5, 77.5, 45.0), strict=True)}
    assert costs == {"B": 73, "C": 73, "D": 105}  # 72.5 rounds half up
    table = compute_tables(sec6_view(costs), RID["A"], PAPER_POLICY)[FW]
    assert [c.path_cost for c in table] == [135, 233, 233]
    real = {k: c.share for k, c in by_node(table).items()}
    assert real == pytest.approx({"B": 0.3877, "C": 0.3877, "D": 0.2246}, abs=1e-4)
    assert {k: c.weight for k, c in by_node(table).items()} == {"B": 25, "C": 25, "D": 14}
    # the inverse-cost reading of Section V gives D the biggest share instead
    inv = by_node(compute_tables(sec6_view({"B": 150, "C": 150, "D": 150}), RID["A"],
                                 INVERSE)[FW])
    assert inv["D"].share == pytest.approx(0.4627, abs=1e-4)


def test_section_vi_closed_loop() -> None:
    """Replay the scenario period by period: each 2 s period replaces 2/50 of the load.

    Flows last 50 s, so at every D-MANO period 4 % of the load is new flows, split by the
    current integer WCMP weights; costs are then re-announced from the loads.
    """
    turnover = 2.0 / 50.0
    loads = {"B": 100.0, "C": 100.0, "D": 0.0}  # phase 1 steady state, D just started
    history = []
    for _ in range(400):
        costs = {n: PAPER_POLICY.vnf_cost(Measurement(capacity=150, load=x))
                 for n, x in loads.items()}
        s = shares_of(compute_tables(sec6_view(costs), RID["A"], PAPER_POLICY)[FW])
        loads = {n: (1 - turnover) * x + turnover * 200 * s[n] for n, x in loads.items()}
        history.append(s)
    final = {n: x / 200 for n, x in loads.items()}
    assert final == pytest.approx({"B": 0.3875, "C": 0.3875, "D": 0.225}, abs=0.01)
    assert history[0]["D"] == pytest.approx(180 / 600, abs=0.01)  # D's first share: 30 %


# -- reachability -----------------------------------------------------------------------


def test_unidirectional_link_is_not_used() -> None:
    # A -> D announced only by A; the real path to D is A-C-D (cost 15)
    view = make_view(FIG3, one_way=(("A", "D", 1),))
    announce(view, "D", 10)
    assert by_node(compute_tables(view, RID["A"], INVERSE)[FW])["D"].network_cost == 15
    # D only reachable over a one-way link: not a candidate
    view = make_view([("A", "B", 10)], one_way=(("A", "D", 1),), routers="ABD")
    announce(view, "B", 20)
    announce(view, "D", 10)
    assert [c.adv_router for c in compute_tables(view, RID["A"], INVERSE)[FW]] == [RID["B"]]
    assert RID["D"] not in network_costs(view, RID["A"])


def test_unreachable_routers_instances_are_not_candidates() -> None:
    view = make_view([("A", "B", 10)], routers="ABE")  # E has no links
    announce(view, "B", 20)
    announce(view, "E", 1)
    announce(view, "E", 1, instance_id=2, service_id=7)
    tables = compute_tables(view, RID["A"], INVERSE)
    assert [c.adv_router for c in tables[FW]] == [RID["B"]]
    assert tables[FW][0].weight == 1
    assert tables[7] == []  # known service, no reachable instance
    assert "(no reachable instance)" in render_tables(tables)


def test_instance_of_unknown_router_is_not_a_candidate() -> None:
    view = make_view([("A", "B", 10)], routers="AB")
    announce(view, "C", 1)  # opaque LSA without a router LSA
    assert compute_tables(view, RID["A"], INVERSE) == {FW: []}


def test_self_without_router_lsa_sees_only_its_own_instances() -> None:
    view = make_view([("B", "C", 10)], routers="BC")
    announce(view, "A", 5)
    announce(view, "B", 5)
    table = compute_tables(view, RID["A"], INVERSE)[FW]
    assert [(c.adv_router, c.local, c.path_cost) for c in table] == [(RID["A"], True, 5)]


def test_transit_network() -> None:
    """A, B, C on one LAN (DR = B's address); D hangs off C over a point-to-point link."""
    dr = IPv4Address("10.0.50.2")
    lan = {n: IPv4Address(f"10.0.50.{i}") for i, n in enumerate("ABC", start=1)}
    routers = {
        "A": [RouterLink(2, dr, lan["A"], 10)],
        "B": [RouterLink(2, dr, lan["B"], 20)],
        "C": [RouterLink(2, dr, lan["C"], 5), RouterLink(1, RID["D"], lan["C"], 7)],
        "D": [RouterLink(1, RID["C"], IPv4Address("10.0.60.2"), 7)],
    }
    view = LsdbView(
        routers={RID[n]: RouterLsa(RID[n], tuple(ls)) for n, ls in routers.items()},
        networks={dr: NetworkLsa(dr, RID["B"], IPv4Address("255.255.255.0"),
                                 (RID["A"], RID["B"], RID["C"]))},
    )
    announce(view, "B", 1)
    announce(view, "D", 1)
    assert network_costs(view, RID["A"]) == {
        RID["A"]: 0, RID["B"]: 10, RID["C"]: 10, RID["D"]: 17}
    assert network_costs(view, RID["B"])[RID["A"]] == 20  # metric of the outgoing link
    fw = by_node(compute_tables(view, RID["A"], INVERSE)[FW])
    assert (fw["B"].path_cost, fw["D"].path_cost) == (11, 18)
    # a router the network LSA does not list cannot use the network
    view.networks[dr] = NetworkLsa(dr, RID["B"], IPv4Address("255.255.255.0"),
                                   (RID["B"], RID["C"]))
    assert network_costs(view, RID["A"]) == {RID["A"]: 0}
    # and the network does not lead to a router that does not link to it
    view.networks[dr] = NetworkLsa(dr, RID["B"], IPv4Address("255.255.255.0"),
                                   (RID["A"], RID["B"], RID["C"], RID["E"]))
    assert RID["E"] not in network_costs(view, RID["A"])


def test_parallel_links_use_the_cheapest() -> None:
    view = make_view([("A", "B", 50), ("A", "B", 10)], routers="AB")
    assert network_costs(view, RID["A"])[RID["B"]] == 10


# -- states, ordering, output -----------------------------------------------------------


def test_draining_instance_is_listed_with_weight_zero() -> None:
    view = fig3()
    announce(view, "D", 10, state=InstanceState.DRAINING)
    fw = by_node(compute_tables(view, RID["A"], INVERSE)[FW])
    assert fw["D"].weight == 0 and fw["D"].share == 0.0
    assert fw["D"].state is InstanceState.DRAINING
    assert fw["B"].weight == 1 and fw["B"].share == 1.0
    # all draining: listed, nobody takes new flows
    announce(view, "B", 20, state=InstanceState.DRAINING)
    assert [c.weight for c in compute_tables(view, RID["A"], INVERSE)[FW]] == [0, 0]


def test_tie_breaking_is_deterministic() -> None:
    """Three equal candidates and a budget of 64: the left-over seat goes to the lowest
    router id, whatever the order of the LSDB."""
    view = make_view([("A", "B", 10), ("A", "C", 10), ("A", "D", 10)], routers="ABCD")
    for n in "DBC":
        announce(view, n, 10)
    expected = [(RID["B"], 22), (RID["C"], 21), (RID["D"], 21)]
    items = list(view.instances.items())
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(items)
        view.instances = dict(items)
        table = compute_tables(view, RID["A"], INVERSE)[FW]
        assert [(c.adv_router, c.weight) for c in table] == expected
    # same router: lower instance id first
    view = make_view([("A", "B", 10)], routers="AB")
    announce(view, "B", 10, instance_id=9)
    announce(view, "B", 10, instance_id=3)
    table = compute_tables(view, RID["A"], INVERSE)[FW]
    assert [c.instance_id for c in table] == [3, 9]


def test_several_services_sorted_by_id() -> None:
    view = fig3()
    announce(view, "C", 3, instance_id=5, service_id=2)
    tables = compute_tables(view, RID["A"], load_policy(shipped_policy("inverse-cost")))
    assert list(tables) == [FW, 2]
    assert [(c.instance_id, c.path_cost, c.weight) for c in tables[2]] == [(5, 13, 1)]


def test_json_and_text_output() -> None:
    tables = compute_tables(fig3(), RID["A"], INVERSE)
    data = tables_to_json(tables)
    assert json.loads(dumps_tables(tables)) == data
    svc = data["services"][0]
    assert svc["service_id"] == FW and svc["anycast"] == "10.254.1.1"
    assert svc["candidates"][0] == {
        "adv_router": "10.255.0.4", "instance_id": 1, "name": "fw-d1",
        "endpoint": "10.4.0.2", "anycast": "10.254.1.1", "state": "up", "local": False,
        "network_cost": 15, "vnf_cost": 10, "path_cost": 25, "weight": 35,
        "share": pytest.approx(0.5454545),
    }
    text = render_tables(tables, service_names={FW: "firewall"})
    lines = text.splitlines()
    assert lines[0] == ("service 1 (firewall) anycast 10.254.1.1: 2 candidate(s), "
                        "2 taking new flows")
    assert lines[1].split() == ["instance", "router", "id", "endpoint", "state", "net",
                                "vnf", "path", "weight", "share"]
    assert lines[2].split() == ["fw-d1", "10.255.0.4", "1", "10.4.0.2", "up", "15", "10",
                                "25", "35", "54.5%"]
    local = render_tables(compute_tables(fig3(), RID["B"], INVERSE))
    assert any(line.lstrip().startswith("* fw-b1") for line in local.splitlines())
    assert render_tables({}) == "(no services)\n"
