"""Addresses of the simulated network: the emulation's plan where it exists, else ours.

Node N (1-based, file order), link k (0-based) and each host get the emulation's
addresses (``topologies.addressing``: router id 10.255.0.N, NSH endpoint 10.N.0.2, link
/30s from 10.0.0.0/16, hosts 10.N.100.10+) wherever that plan has them: for nodes up to
:data:`topologies.spec.MAX_NODES`, links below ``topologies.addressing.MAX_LINKS``. So
on a topology an emulation could run, the simulation's router LSAs, announcements,
tie-breaks (by router id) and flow hashes (by host address) are the emulated run's, and
a scenario network extended with thousands of generated routers (``--nodes-from``)
keeps its own addresses and classifier rules.

Beyond, the simulation numbers things in the shared address space 100.64.0.0/10 (RFC
6598), which no emulated network uses:

============================  ===================================================
router id / loopback of N     100.64.0.0 + N        (100.64.0.0/12, N < 2**20)
NSH endpoint of N             100.80.0.0 + N        (100.80.0.0/12)
host k (file order)           100.96.0.0 + k + 1    (100.96.0.0/12)
router link k (file order)    100.112.0.0 + 4 k /30, side a .1, side b .2
============================  ===================================================

Router ids increase with N in both plans (10.255.0.250 < 100.64.0.251), so the order of
nodes (the D-MANO's tie-break by router id) is the file's order either way.
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
    """True if every address of ``topo`` comes from the emulation's plan."""
    return len(topo.nodes) <= MAX_NODES and len(topo.links) < emu.MAX_LINKS


def router_id(index: int) -> IPv4Address:
    return emu.router_id(index) if index <= MAX_NODES else IPv4Address(SIM_ROUTER_BASE + index)


def endpoint(index: int) -> IPv4Address:
    return (emu.nsh_endpoint(index).ip if index <= MAX_NODES
            else IPv4Address(SIM_ENDPOINT_BASE + index))


def host_addresses(topo: Topology) -> dict[str, IPv4Address]:
    """Host name -> address (see the module docstring)."""
    if uses_emulation_plan(topo):
        return {h: a.ip for h, a in emu.host_addresses(topo).items()}
    index = {x.name: x.index for x in topo.nodes}
    per_node: dict[str, int] = {}
    out = {}
    for k, h in enumerate(topo.hosts):
        n = per_node.get(h.node, 0)
        per_node[h.node] = n + 1
        if index[h.node] <= MAX_NODES and n < 240:
            out[h.name] = IPv4Address(f"10.{index[h.node]}.100.{10 + n}")
        else:
            out[h.name] = IPv4Address(SIM_HOST_BASE + k + 1)
    return out


def plan(topo: Topology) -> Addressing:
    """The addresses of ``topo`` (see the module docstring)."""
    n, m = len(topo.nodes), len(topo.links)
    if n >= SIM_MAX or 4 * m >= SIM_MAX or len(topo.hosts) >= SIM_MAX:
        raise ValueError(f"{n} nodes / {m} links / {len(topo.hosts)} hosts do not fit the "
                         "simulation's address plan (100.64.0.0/10)")
    host32 = IPv4Address("255.255.255.255")
    stubs = []
    for node in topo.nodes:
        i = node.index
        if i <= MAX_NODES:
            stubs.append(((emu.router_id(i), host32),
                          (emu.connector_subnet(i).network_address,
                           emu.connector_subnet(i).netmask),
                          (emu.host_subnet(i).network_address, emu.host_subnet(i).netmask)))
        else:
            stubs.append(((router_id(i), host32), (endpoint(i), host32)))
    ends, nets = [], []
    for lk in topo.links:
        if lk.index < emu.MAX_LINKS:
            la = emu.link_addressing(lk)
            ends.append((la.a_addr.ip, la.b_addr.ip))
            nets.append(la.subnet)
        else:
            net = IPv4Network(f"{IPv4Address(SIM_LINK_BASE + 4 * lk.index)}/30")
            ends.append((net.network_address + 1, net.network_address + 2))
            nets.append(net)
    return Addressing(
        emulation_plan=uses_emulation_plan(topo),
        router_ids=tuple(router_id(x.index) for x in topo.nodes),
        endpoints=tuple(endpoint(x.index) for x in topo.nodes),
        stubs=tuple(stubs), link_ends=tuple(ends), link_nets=tuple(nets),
        hosts=host_addresses(topo),
    )
