"""Bring-up of paper_fig3.yaml with real FRR: adjacencies, route costs, a ping."""

from __future__ import annotations

import networkx as nx
import pytest

from tests.integration.conftest import TOPO_DIR
from topologies import addressing as addr
from topologies.network import Network
from topologies.readiness import (
    bfd_peers,
    expected_bfd_peers,
    neighbor_states,
    ospf_route_costs,
    problems,
)
from topologies.spec import load_topology

STUB_COST = 10  # FRR's default cost of the passive connector / host interfaces


@pytest.fixture(scope="module")
def fig3():
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo) as net:  # start() waits for convergence with a deadline
        yield net


def independent_distances(topo) -> dict[str, dict[str, int]]:
    """Shortest-path costs straight from the YAML (no dsfc code)."""
    g = nx.Graph()
    for lk in topo.links:
        g.add_edge(lk.a, lk.b, weight=lk.cost)
    return dict(nx.all_pairs_dijkstra_path_length(g))


def test_all_adjacencies_full(fig3):
    topo = fig3.topo
    for n in topo.nodes:
        states = neighbor_states(fig3.routers[n.name])
        degree = sum(1 for lk in topo.links if n.name in (lk.a, lk.b))
        assert len(states) == degree
        assert all(s.startswith("Full") for s in states.values()), states
    assert problems(topo, fig3.routers) == []


def test_route_costs_equal_shortest_paths(fig3):
    topo = fig3.topo
    dist = independent_distances(topo)
    assert dist["A"]["E"] == 20 and dist["A"]["D"] == 15  # sanity of the oracle
    for src in topo.nodes:
        costs = ospf_route_costs(fig3.routers[src.name])
        for dst in topo.nodes:
            if dst is src:
                continue
            d = dist[src.name][dst.name]
            assert costs[addr.loopback(dst.index).network] == d, (src.name, dst.name)
            assert costs[addr.connector_subnet(dst.index)] == d + STUB_COST
            assert costs[addr.host_subnet(dst.index)] == d + STUB_COST


def test_ping_crosses_the_network(fig3):
    hosts = addr.host_addresses(fig3.topo)
    out = fig3.nodes["src"].cmd(f"ping -c 3 -i 0.2 -W 2 {hosts['dst'].ip}")
    assert "3 received" in out, out
    # and a router loopback across the network (A -> E)
    out = fig3.nodes["rA"].cmd("ping -c 1 -W 2 10.255.0.5")
    assert "1 received" in out, out


def test_nsh_links_have_large_mtu(fig3):
    out = fig3.nodes["rA"].cmd("ip -o link show to-B")
    assert f"mtu {fig3.topo.link_mtu} " in out
    assert fig3.topo.link_mtu >= 1600
    assert f"mtu {fig3.topo.link_mtu} " in fig3.nodes["cB"].cmd("ip -o link show v-fw_b")


def test_ospf_api_is_loopback_only(fig3):
    # ospfd -a listens on every address: the nftables rule must drop remote API access
    out = fig3.nodes["rA"].cmd("nft list chain inet dsfc input")
    assert "tcp dport { 2607, 2608 }" in out and "drop" in out
    probe = fig3.nodes["src"].cmd(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/10.1.100.1/2607' && echo OPEN || echo CLOSED")
    assert "CLOSED" in probe
    local = fig3.nodes["rA"].cmd(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2607' && echo OPEN || echo CLOSED")
    assert "OPEN" in local


def test_bfd_session_up_to_every_neighbour(fig3):
    """Readiness waited for them: one BFD session per router link, Up, both ways."""
    topo = fig3.topo
    assert topo.ospf.bfd is not None  # on by default
    for n in topo.nodes:
        peers = bfd_peers(fig3.routers[n.name])
        assert set(peers) == expected_bfd_peers(topo, n.name), n.name
        assert set(peers.values()) == {"up"}, (n.name, peers)


def test_silent_node_is_dropped_by_bfd_before_the_dead_interval():
    """A node whose daemons die while its links stay up (no carrier loss to notice):
    its neighbours learn it from BFD (100 ms x 3), not from OSPF's 4 s dead interval."""
    import os
    import signal

    from tests.integration.conftest import wait_for

    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    assert topo.ospf.dead_s == 4 and topo.ospf.bfd is not None
    with Network(topo) as net:
        d_rid = str(addr.router_id(topo.node("D").index))
        for peer in ("C", "E"):
            assert neighbor_states(net.routers[peer])[d_rid].startswith("Full")
        for daemon in ("bfdd", "ospfd", "zebra"):
            os.kill(int(net.routers["D"].paths.pidfile(daemon).read_text()), signal.SIGKILL)
        assert "UP" in net.nodes["rC"].cmd("ip -o link show to-D")  # the link is still up
        # well within the 4 s dead interval: only BFD can have told them (it takes ~0.3 s)
        for peer in ("C", "E"):
            wait_for(f"r{peer} drops D", lambda p=peer: d_rid not in
                     neighbor_states(net.routers[p]), topo.ospf.dead_s / 2)
        wait_for("rA's route to D's loopback gone",
                 lambda: addr.loopback(topo.node("D").index).network
                 not in ospf_route_costs(net.routers["A"]), 5)
