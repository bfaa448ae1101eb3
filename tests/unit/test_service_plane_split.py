"""The two parts of compute_tables (network part, candidates part), the D-MANO's cache of
the network part per topology version, and the decision helpers the control-plane
simulation shares with the daemon (announcement_due, next_sequence, choose_opaque_id)."""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv4Address
from pathlib import Path

import networkx as nx
import pytest

import dmano.daemon as daemon_mod
from dmano import lsa
from dmano.config import NodeConfig
from dmano.connector_client import DryRunConnector
from dmano.daemon import announcement_due, next_sequence
from dmano.lsdb import LsdbMirror, build_opaque_lsa, build_router_lsa, newest_generation
from dmano.model import (
    InstanceState,
    LsdbView,
    NetworkLsa,
    RouterLink,
    RouterLsa,
    VnfAnnouncement,
)
from dmano.ospf_api import REFRESH_MIN_S, choose_opaque_id
from dmano.policy import PAPER_POLICY, Hysteresis, InverseCost, Policy, StaticCost
from dmano.service_plane import (
    build_graph,
    candidate_tables,
    compute_tables,
    network_costs,
    network_edges,
    router_node,
)
from tests.unit.dmano_helpers import FakeSession

INVERSE = Policy(name="inverse", cost=StaticCost(), weight=InverseCost())


def rid(i: int) -> IPv4Address:
    return IPv4Address(f"10.255.0.{i}")


def random_view(rng: random.Random, n: int, services: int = 3) -> LsdbView:
    """Random point-to-point topology (some one-way links, parallel links, a transit
    network) with random instances."""
    per: dict[int, list[RouterLink]] = {i: [] for i in range(1, n + 1)}
    for a in range(1, n + 1):
        for b in range(a + 1, n + 1):
            if rng.random() < 3.0 / n:
                cost = rng.randint(1, 50)
                per[a].append(RouterLink(1, rid(b), IPv4Address("10.0.0.1"), cost))
                if rng.random() < 0.9:  # sometimes one-way (fails the two-way check)
                    per[b].append(RouterLink(1, rid(a), IPv4Address("10.0.0.2"),
                                             rng.randint(1, 50)))
                if rng.random() < 0.1:  # a parallel link
                    per[a].append(RouterLink(1, rid(b), IPv4Address("10.0.0.5"),
                                             rng.randint(1, 50)))
    dr = IPv4Address("10.9.9.1")
    attached = tuple(rid(i) for i in rng.sample(range(1, n + 1), 3))
    for r in attached:
        per[int(str(r).rsplit(".", 1)[1])].append(RouterLink(2, dr, r, rng.randint(1, 20)))
    view = LsdbView(routers={rid(i): RouterLsa(rid(i), tuple(ls)) for i, ls in per.items()},
                    networks={dr: NetworkLsa(dr, attached[0],
                                             IPv4Address("255.255.255.0"), attached)})
    for i in range(1, n + 1):
        for iid in range(1, rng.randint(0, 3) + 1):
            view.instances[(rid(i), iid)] = VnfAnnouncement(
                instance_id=iid, service_id=rng.randint(1, services),
                anycast=IPv4Address("10.254.1.1"), cost=rng.randint(1, 200),
                endpoint=IPv4Address(f"10.{i}.0.2"), capacity=150,
                state=InstanceState.DRAINING if rng.random() < 0.1 else InstanceState.UP,
                name=f"i{i}_{iid}")
    return view


def reference_costs(view: LsdbView, self_id: IPv4Address) -> dict[IPv4Address, int]:
    """What compute_tables used before the split: Dijkstra over the whole graph,
    VNF nodes included."""
    dist = nx.single_source_dijkstra_path_length(build_graph(view, self_id),
                                                 router_node(self_id))
    return {node[1]: int(d) for node, d in dist.items() if node[0] == "router"}


@pytest.mark.parametrize("seed", range(8))
def test_network_part_equals_the_whole_graph_dijkstra(seed: int) -> None:
    rng = random.Random(seed)
    view = random_view(rng, 12)
    for i in range(1, 13):
        assert network_costs(view, rid(i)) == reference_costs(view, rid(i))


@pytest.mark.parametrize("seed", range(8))
def test_candidates_part_per_service_equals_the_whole(seed: int) -> None:
    """The simulation computes one service's table at a time from the instances of that
    service only: the same rows as the table of all services."""
    rng = random.Random(100 + seed)
    view = random_view(rng, 10)
    me = rid(rng.randint(1, 10))
    for policy in (PAPER_POLICY, INVERSE):
        whole = compute_tables(view, me, policy)
        costs = network_costs(view, me)
        assert candidate_tables(view.instances, costs, me, policy) == whole
        for sid, rows in whole.items():
            mine = {k: a for k, a in view.instances.items() if a.service_id == sid}
            assert candidate_tables(mine, costs, me, policy) == {sid: rows}


def test_network_edges_two_way_and_cheapest_parallel() -> None:
    view = LsdbView(routers={
        rid(1): RouterLsa(rid(1), (RouterLink(1, rid(2), IPv4Address("10.0.0.1"), 7),
                                   RouterLink(1, rid(2), IPv4Address("10.0.0.5"), 3),
                                   RouterLink(1, rid(3), IPv4Address("10.0.0.9"), 1))),
        rid(2): RouterLsa(rid(2), (RouterLink(1, rid(1), IPv4Address("10.0.0.2"), 4),)),
        rid(3): RouterLsa(rid(3), ()),
    })
    assert network_edges(view) == {(router_node(rid(1)), router_node(rid(2))): 3,
                                   (router_node(rid(2)), router_node(rid(1))): 4}


def _router(i: int, peers: list[int], seq: int = -0x7FFFFFFF) -> bytes:
    return build_router_lsa(rid(i), [RouterLink(1, rid(p), IPv4Address("10.0.0.1"), 10)
                                     for p in peers], seq=seq)


def _ann(cost: int, seq: int = 1) -> VnfAnnouncement:
    return VnfAnnouncement(instance_id=1, service_id=1, anycast=IPv4Address("10.254.1.1"),
                           cost=cost, endpoint=IPv4Address("10.2.0.2"), sequence=seq)


def test_topology_version_moves_with_router_lsas_only() -> None:
    m = LsdbMirror()
    v0 = m.topology_version
    assert m.apply_update(_router(1, [2]))
    v1 = m.topology_version
    assert v1 > v0
    assert m.apply_update(build_opaque_lsa(lsa.OPAQUE_TYPE, 1, rid(2), lsa.encode(_ann(5))))
    assert m.topology_version == v1  # an instance is not topology
    assert not m.apply_update(_router(1, [2]))  # same content: no change
    assert m.topology_version == v1
    assert m.apply_update(_router(1, [2, 3], seq=-0x7FFFFFFE))
    assert m.topology_version > v1
    v2 = m.topology_version
    m.clear()
    assert m.topology_version > v2


def test_membership_version_moves_with_instances_and_states_not_costs() -> None:
    m = LsdbMirror()
    v0 = m.membership_version
    assert m.apply_update(_router(1, [2]))
    assert m.membership_version == v0  # a router is not an instance
    opaque = lsa.make_opaque_id(1, 0)

    def ann(cost: int, seq: int, **kw: object) -> bytes:
        body = lsa.encode(dataclasses.replace(_ann(cost, seq), **kw))  # type: ignore[arg-type]
        return build_opaque_lsa(lsa.OPAQUE_TYPE, opaque, rid(2), body, seq=-0x7FFFFFFF + seq)

    assert m.apply_update(ann(5, 1))
    v1 = m.membership_version
    assert v1 > v0  # a new instance
    assert m.apply_update(ann(9, 2, load=7, capacity=3))
    assert m.membership_version == v1  # its cost, load, capacity only
    assert m.apply_update(ann(9, 3, state=InstanceState.DRAINING))
    v2 = m.membership_version
    assert v2 > v1  # drained
    assert m.apply_update(ann(9, 4, state=InstanceState.DRAINING,
                              endpoint=IPv4Address("10.9.0.2")))
    v3 = m.membership_version
    assert v3 > v2  # moved to another connector
    assert m.forget_instance(rid(2), 1)
    assert m.membership_version > v3  # gone
    v4 = m.membership_version
    m.clear()
    assert m.membership_version > v4


def test_daemon_caches_the_network_part_per_topology_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "OspfApiSession", FakeSession)
    cfg = NodeConfig(node="A", router_id=rid(1), nsh_endpoint=IPv4Address("10.1.0.2"),
                     policy=tmp_path / "p.yaml", status_file=tmp_path / "rA" / "dmano.json",
                     control_socket=tmp_path / "c.sock")
    d = daemon_mod.Dmano(cfg, PAPER_POLICY, DryRunConnector())
    d.mirror.apply_update(_router(1, [2]))
    d.mirror.apply_update(_router(2, [1]))
    calls = []
    real = daemon_mod.network_costs

    def counting(view: LsdbView, self_id: IPv4Address) -> dict[IPv4Address, int]:
        calls.append(1)
        return real(view, self_id)

    monkeypatch.setattr(daemon_mod, "network_costs", counting)
    assert d.network_costs() == {rid(1): 0, rid(2): 10}
    d.mirror.apply_update(build_opaque_lsa(lsa.OPAQUE_TYPE, 1, rid(2), lsa.encode(_ann(5))))
    assert d.network_costs() == {rid(1): 0, rid(2): 10}
    assert len(calls) == 1  # an opaque LSA does not change the network part
    d.mirror.apply_update(_router(2, [], seq=-0x7FFFFFFE))
    assert d.network_costs() == {rid(1): 0}
    assert len(calls) == 2
    d.mirror = LsdbMirror()  # a new mirror (version 0 again) is not mistaken for the old
    assert d.network_costs() == {rid(1): 0}
    assert len(calls) == 3


def test_announcement_due() -> None:
    p = Policy(name="h", cost=StaticCost(), weight=InverseCost(),
               hysteresis=Hysteresis(abs=5))
    up, dr = InstanceState.UP, InstanceState.DRAINING
    assert announcement_due(p, 10, None, up, None)  # first
    assert not announcement_due(p, 14, 10, up, up)  # inside the dead band
    assert announcement_due(p, 16, 10, up, up)
    assert announcement_due(p, 10, 10, dr, up)  # state changed


def test_next_sequence_is_increasing_tenths() -> None:
    from dmano.daemon import SEQUENCE_EPOCH

    assert next_sequence(0, SEQUENCE_EPOCH + 12.34) == 123
    assert next_sequence(123, SEQUENCE_EPOCH + 12.34) == 124
    assert next_sequence(0xFFFFFFFF, SEQUENCE_EPOCH) == 0xFFFFFFFF


def test_choose_opaque_id_generations() -> None:
    first = lsa.make_opaque_id(1, 0)
    assert choose_opaque_id(1, 0, None, None, 100.0) == (first, 0, None)
    # refresh soon after: next generation, the previous deleted
    second = lsa.make_opaque_id(1, 1)
    assert choose_opaque_id(1, 0, (first, 99.0), (first, 99.0), 100.0) == (second, 1, first)
    # refresh later: same LSA
    assert choose_opaque_id(1, 0, (first, 100.0 - REFRESH_MIN_S - 1), None, 100.0) == (
        first, 0, None)
    # announced again soon after a withdrawal: next generation, nothing to delete
    assert choose_opaque_id(1, 0, None, (first, 99.0), 100.0) == (second, 1, None)


def test_newest_generation() -> None:
    assert newest_generation({}) is None
    a, b = _ann(1, seq=5), _ann(2, seq=7)
    assert newest_generation({1: a, 257: b}) is b
    assert newest_generation({1: b, 257: _ann(3, seq=7)}).cost == 3  # tie: higher id
