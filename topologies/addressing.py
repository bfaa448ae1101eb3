"""The address plan (DESIGN.md §3), computed from a topology.

- router id / loopback of node N (1-based): 10.255.0.N/32
- router link k (0-based, file order): 10.0.(k // 64).(4 * (k % 64)) /30, side a .1, side b .2
- node N's connector link: 10.N.0.0/24 (router .1, connector NSH endpoint .2), an OSPF stub
- node N's host subnet: 10.N.100.0/24 (router .1 is the gateway; hosts .10, .11, ...)
- service S anycast: from the topology file (suggested 10.254.S.1/32)
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dmano.macaddr import format_mac
from topologies.spec import HostSpec, LinkSpec, Topology

MAX_LINKS = 64 * 256


@dataclass(frozen=True)
class LinkAddressing:
    link: LinkSpec
    subnet: IPv4Network
    a_addr: IPv4Interface
    b_addr: IPv4Interface


def router_id(index: int) -> IPv4Address:
    return IPv4Address(f"10.255.0.{index}")


def loopback(index: int) -> IPv4Interface:
    return IPv4Interface(f"10.255.0.{index}/32")


def connector_subnet(index: int) -> IPv4Network:
    return IPv4Network(f"10.{index}.0.0/24")


def router_connector_addr(index: int) -> IPv4Interface:
    return IPv4Interface(f"10.{index}.0.1/24")


def nsh_endpoint(index: int) -> IPv4Interface:
    return IPv4Interface(f"10.{index}.0.2/24")


def host_subnet(index: int) -> IPv4Network:
    return IPv4Network(f"10.{index}.100.0/24")


def host_gateway(index: int) -> IPv4Interface:
    return IPv4Interface(f"10.{index}.100.1/24")


def link_addressing(link: LinkSpec) -> LinkAddressing:
    k = link.index
    if k >= MAX_LINKS:
        raise ValueError(f"at most {MAX_LINKS} links are supported")
    base = IPv4Address(f"10.0.{k // 64}.{4 * (k % 64)}")
    subnet = IPv4Network(f"{base}/30")
    return LinkAddressing(link, subnet, IPv4Interface(f"{base + 1}/30"),
                          IPv4Interface(f"{base + 2}/30"))


def host_addresses(topo: Topology) -> dict[str, IPv4Interface]:
    """Host name -> address in its node's host subnet (.10 upwards, file order)."""
    out: dict[str, IPv4Interface] = {}
    per_node: dict[str, int] = {}
    for h in topo.hosts:
        n = per_node.get(h.node, 0)
        per_node[h.node] = n + 1
        if n >= 240:
            raise ValueError(f"node {h.node}: at most 240 hosts")
        idx = topo.node(h.node).index
        out[h.name] = IPv4Interface(f"10.{idx}.100.{10 + n}/24")
    return out


def host_address(topo: Topology, host: HostSpec) -> IPv4Interface:
    return host_addresses(topo)[host.name]


def mac(node_index: int, kind: int, sub: int = 0, side: int = 1) -> str:
    """Deterministic locally administered MACs: 02:dc:<node>:<kind>:<sub>:<side>.

    kind 0: router<->connector link (side 1 router ``conn``, side 2 connector ``rtr``);
    kind 1: VNF link ``sub`` = instance id (side 1 VNF ``eth0``, side 2 connector port);
    kind 2: host links: ``sub`` 0 is the router's ``hosts`` interface (side 1) and the
    connector's ``rtrh`` (side 2); ``sub`` k >= 1 is the node's k-th host (side 1 its
    ``eth0``, side 2 the connector's ``h-<host>``). Each part must fit one byte
    (ValueError otherwise).
    """
    try:
        raw = bytes((0x02, 0xDC, node_index, kind, sub, side))
    except ValueError:
        raise ValueError(f"MAC parts must be 0..255, got node {node_index}, kind {kind}, "
                         f"sub {sub}, side {side}") from None
    return format_mac(raw)


VNF_PORT_BASE = 16  # P4 port of a node's first VNF (see connector_p4/PIPELINE.md)
HOST_PORT_BASE = 64


def vnf_port(instance_id: int) -> int:
    return VNF_PORT_BASE + instance_id - 1


def node_hosts(topo: Topology, node: str) -> list[HostSpec]:
    """The hosts of a node, in file order (their connector ports count up from 64)."""
    return [h for h in topo.hosts if h.node == node]


def host_port(topo: Topology, host: HostSpec) -> int:
    """P4 port of a host's link on its connector (PIPELINE.md "Ports")."""
    return HOST_PORT_BASE + node_hosts(topo, host.node).index(host)


def host_mac(topo: Topology, host: HostSpec, side: int = 1) -> str:
    idx = topo.node(host.node).index
    return mac(idx, 2, node_hosts(topo, host.node).index(host) + 1, side)
