"""Address plan and generated FRR configuration (no daemons started)."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from topologies import addressing as addr
from topologies.frr import ospfd_conf
from topologies.spec import load_topology

ROOT = Path(__file__).resolve().parents[2]


def fig3():
    return load_topology(ROOT / "topologies" / "paper_fig3.yaml")


def test_address_plan_is_disjoint_and_follows_design():
    topo = fig3()
    subnets = [addr.link_addressing(lk).subnet for lk in topo.links]
    for n in topo.nodes:
        subnets += [addr.connector_subnet(n.index), addr.host_subnet(n.index),
                    addr.loopback(n.index).network]
    for i, a in enumerate(subnets):
        for b in subnets[i + 1:]:
            assert not a.overlaps(b), (a, b)
    assert addr.nsh_endpoint(2) == IPv4Interface("10.2.0.2/24")
    assert addr.host_addresses(topo)["dst"] == IPv4Interface("10.5.100.10/24")
    la = addr.link_addressing(topo.links[3])
    assert la.subnet == IPv4Network("10.0.0.12/30")
    assert (la.a_addr.ip, la.b_addr.ip) == (la.subnet[1], la.subnet[2])


def test_ospfd_config_has_costs_timers_and_opaque():
    topo = fig3()
    conf = ospfd_conf(topo, "C")
    assert " ospf router-id 10.255.0.3" in conf
    assert " capability opaque" in conf
    # C's links: A-C cost 10 and C-D cost 5
    assert "interface to-A\n" in conf and "interface to-D\n" in conf
    blocks = {b.split("\n")[0]: b for b in conf.split("!\n")}
    assert " ip ospf cost 5" in blocks["interface to-D"]
    assert " ip ospf cost 10" in blocks["interface to-A"]
    assert " ip ospf passive" in blocks["interface conn"]
    assert "interface to-B" not in conf
    assert f" timers throttle lsa all {topo.ospf.lsa_throttle_ms}" in conf
