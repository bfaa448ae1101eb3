"""Addresses of the simulated network: the emulation's plan where it exists, else ours.

Up to :data:`topologies.spec.MAX_NODES` nodes (and ``topologies.addressing.MAX_LINKS``
links) the simulation uses the emulation's address plan (``topologies.addressing``:
router id 10.255.0.N, NSH endpoint 10.N.0.2, link /30s from 10.0.0.0/16, hosts
10.N.100.10+), so its router LSAs, announcements, tie-breaks (by router id) and flow
hashes (by host address) are those of an emulated run of the same files.

Beyond that the emulation's plan runs out (one /24 per node in 10.N.0.0), and the
simulation numbers the network in the shared address space 100.64.0.0/10 (RFC 6598),
which no emulated network uses:

============================  ===================================================
router id / loopback of N     100.64.0.0 + N        (100.64.0.0/12, N < 2**20)
NSH endpoint of N             100.80.0.0 + N        (100.80.0.0/12)
host k (file order)           100.96.0.0 + k + 1    (100.96.0.0/12)
router link k (file order)    100.112.0.0 + 4 k /30, side a .1, side b .2
============================  ===================================================

Router ids increase with N in both plans, so the order of nodes (and the D-MANO's
tie-break by router id) is the file's order either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from topologies import addressing as emu
from topologies.spec import MAX_NODES, Topology

SIM_ROUTER_BASE = int(IPv4Address("100.64.0.0"))
SIM_ENDPOINT_BASE = int(IPv4Address("100.80.0.0"))
SIM_HOST_BASE = int(IPv4Address("100.96.0.0"))
SIM_LINK_BASE = int(IPv4Address("100.112.0.0"))
SIM_MAX = 1 << 20


@dataclass(frozen=True)
class Addressing:
    """Every address the simulation needs, index-aligned with the topology's lists."""

    emulation_plan: bool  # True: topologies.addressing's plan
    router_ids: tuple[IPv4Address, ...]  # per node (file order)
    endpoints: tuple[IPv4Address, ...]  # NSH endpoint per node
    stubs: tuple[tuple[tuple[IPv4Address, IPv4Address], ...], ...]  # per node (net, mask)
    link_ends: tuple[tuple[IPv4Address, IPv4Address], ...]  # per link: (a side, b side)
    link_nets: tuple[IPv4Network, ...]
    hosts: dict[str, IPv4Address]  # host name -> address


def uses_emulation_plan(topo: Topology) -> bool:
    return len(topo.nodes) <= MAX_NODES and len(topo.links) < emu.MAX_LINKS


def host_addresses(topo: Topology) -> dict[str, IPv4Address]:
    """Host name -> address, in whichever plan ``topo`` gets (see the module doc)."""
    if uses_emulation_plan(topo):
        return {h: a.ip for h, a in emu.host_addresses(topo).items()}
    return {h.name: IPv4Address(SIM_HOST_BASE + k + 1) for k, h in enumerate(topo.hosts)}


def plan(topo: Topology) -> Addressing:
    """The addresses of ``topo`` (see the module docstring)."""
    n, m = len(topo.nodes), len(topo.links)
    if uses_emulation_plan(topo):
        links = [emu.link_addressing(lk) for lk in topo.links]
        stubs = []
        for node in topo.nodes:
            i = node.index
            stubs.append(((emu.router_id(i), IPv4Address("255.255.255.255")),
                          (emu.connector_subnet(i).network_address,
                           emu.connector_subnet(i).netmask),
                          (emu.host_subnet(i).network_address, emu.host_subnet(i).netmask)))
        return Addressing(
            emulation_plan=True,
            router_ids=tuple(emu.router_id(x.index) for x in topo.nodes),
            endpoints=tuple(emu.nsh_endpoint(x.index).ip for x in topo.nodes),
            stubs=tuple(stubs),
            link_ends=tuple((la.a_addr.ip, la.b_addr.ip) for la in links),
            link_nets=tuple(la.subnet for la in links),
            hosts=host_addresses(topo),
        )
    if n >= SIM_MAX or 4 * m >= SIM_MAX or len(topo.hosts) >= SIM_MAX:
        raise ValueError(f"{n} nodes / {m} links / {len(topo.hosts)} hosts do not fit the "
                         "simulation's address plan (100.64.0.0/10)")
    rids = tuple(IPv4Address(SIM_ROUTER_BASE + x.index) for x in topo.nodes)
    eps = tuple(IPv4Address(SIM_ENDPOINT_BASE + x.index) for x in topo.nodes)
    host32 = IPv4Address("255.255.255.255")
    nets = tuple(IPv4Network(f"{IPv4Address(SIM_LINK_BASE + 4 * k)}/30") for k in range(m))
    return Addressing(
        emulation_plan=False, router_ids=rids, endpoints=eps,
        stubs=tuple(((r, host32), (e, host32)) for r, e in zip(rids, eps, strict=True)),
        link_ends=tuple((net.network_address + 1, net.network_address + 2) for net in nets),
        link_nets=nets,
        hosts=host_addresses(topo),
    )
