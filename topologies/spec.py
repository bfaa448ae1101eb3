"""The topology file format: parsing and validation into plain dataclasses.

See the README ("Topology files") for the format with a full example. Every mistake
raises :class:`dmano.yamlconf.ConfigError` naming the file, the line, the field and
what was expected; unknown keys are errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from dmano.yamlconf import ConfigError, Fields, load_yaml
from topologies import placement as placing
from topologies.servers import ServerSpec
from vnf.dpi import parse_dpi_rule
from vnf.services import parse_rule
from vnf.usermodule import check_source

NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_]{0,9}"
NAME_HINT = "a name of 1-10 letters, digits or '_' starting with a letter"
INSTANCE_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,10}"
INSTANCE_HINT = "a name of 1-11 letters, digits, '_' or '-' starting with a letter"
PROTOCOLS = {"any": None, "icmp": 1, "tcp": 6, "udp": 17}
VNF_KINDS = ("passthrough", "firewall", "ids", "dpi", "scapy")
RULE_KINDS = {"firewall": parse_rule, "dpi": parse_dpi_rule}  # kinds with rules: syntax
MAX_NODES = 250  # the address plan's 10.N.0.0/24 per node (topologies/addressing.py)
# The control-plane simulation (scenarios.simulate) needs no addresses of the emulation's
# plan beyond MAX_NODES (it numbers larger networks in 100.64.0.0/10 itself): it alone
# reads topologies with up to this many nodes (load_topology(..., max_nodes=SIM_MAX_NODES)).
SIM_MAX_NODES = 1 << 20
TUNNELS = ("vxlan", "ssh")  # kinds of router links between two servers
# servers: a host name or IPv4 address (ssh's destination) and a login name
ADDRESS_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
ADDRESS_HINT = "a host name or IPv4 address like 10.99.0.2 (the user goes in 'user')"
USER_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"
USER_HINT = "a login name of 1-32 letters, digits, '_', '.' or '-'"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int  # 1-based position in the file; drives the address plan


@dataclass(frozen=True)
class LinkSpec:
    a: str
    b: str
    cost: int
    bandwidth_mbit: float | None = None
    index: int = 0


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    id: int
    anycast: IPv4Address
    kind: str = "passthrough"  # what its VNF processes do: passthrough|firewall|ids|dpi|scapy
    rules: tuple[str, ...] = ()  # firewall or dpi rules (vnf rule syntax), in order
    threshold_pps: float | None = None  # ids: flag flows above this rate (VNF default)
    reclassify_to: int | None = None  # ids: SPI of the chain flows above it are moved to
    module: Path | None = None  # scapy: the user's module file (absolute)
    params: dict[str, Any] = field(default_factory=dict, hash=False)  # scapy: for setup()


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    service: str
    node: str
    capacity: int  # processing units per second
    cost: int | None = None  # fixed VNF cost (overrides the cost policy) if set
    start: bool = True  # False: created but not started until a scenario starts it
    id: int = 0  # opaque id, unique per node (position among the node's instances + 1)
    cpu_limit: float | None = None  # CPU cores its VNF process may use (a cgroup quota)


@dataclass(frozen=True)
class HostSpec:
    name: str
    node: str
    role: str  # source | sink | both


@dataclass(frozen=True)
class ChainSpec:
    spi: int
    services: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class ClassifierRule:
    node: str
    chain: int  # spi
    priority: int
    src: IPv4Network
    dst: IPv4Network
    proto: str
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None


@dataclass(frozen=True)
class OspfTimers:
    hello_s: int = 1
    dead_s: int = 4
    spf_delay_ms: int = 50
    spf_hold_ms: int = 100
    spf_max_hold_ms: int = 1000
    lsa_throttle_ms: int = 50
    lsa_min_arrival_ms: int = 10
    bfd: Bfd | None = field(default_factory=lambda: Bfd())  # None: BFD off


@dataclass(frozen=True)
class Bfd:
    """BFD (FRR bfdd) on every router link, OSPF tied to it (``ip ospf bfd``): a silent
    neighbour is declared down after ``interval_ms * multiplier`` instead of the dead
    interval."""

    interval_ms: int = 100  # transmit and receive interval
    multiplier: int = 3

    @property
    def detect_ms(self) -> int:
        return self.interval_ms * self.multiplier


@dataclass(frozen=True)
class Topology:
    name: str
    path: Path
    nodes: tuple[NodeSpec, ...]
    links: tuple[LinkSpec, ...]
    services: tuple[ServiceSpec, ...] = ()
    instances: tuple[InstanceSpec, ...] = ()
    hosts: tuple[HostSpec, ...] = ()
    chains: tuple[ChainSpec, ...] = ()
    classifier: tuple[ClassifierRule, ...] = ()
    description: str = ""
    connector: str = "ebpf"
    link_mtu: int = 1600
    ospf: OspfTimers = field(default_factory=OspfTimers)
    servers: tuple[ServerSpec, ...] = ()  # the machines it is spread over; () = this one
    # node name -> server name, every node when servers are given, else empty
    placement: dict[str, str] = field(default_factory=dict, hash=False)
    tunnel: str = "vxlan"  # router links between servers: vxlan | ssh (Cluster Edition's)

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def server_of(self, node: str) -> ServerSpec | None:
        """The server holding ``node`` (None when the topology names no servers)."""
        if not self.servers:
            return None
        name = self.placement[node]
        return next(s for s in self.servers if s.name == name)

    @property
    def spread(self) -> bool:
        """True when the nodes are on more than one server."""
        return len(set(self.placement.values())) > 1

    def cut_links(self) -> list[LinkSpec]:
        """The links between nodes on different servers (tunnels between servers)."""
        return placing.cut_links(self.links, self.placement) if self.servers else []

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)


def load_topology(path: str | Path, max_nodes: int = MAX_NODES) -> Topology:
    """Read and validate a topology file.

    ``max_nodes``: the emulation's limit (:data:`MAX_NODES`, its address plan) unless the
    caller is the control-plane simulation (:data:`SIM_MAX_NODES`), which numbers larger
    networks itself and never builds them."""
    path = Path(path)
    return parse_topology(load_yaml(path), path, max_nodes)


def parse_topology(data: object, path: Path, max_nodes: int = MAX_NODES) -> Topology:
    with Fields(data, path, "") as top:
        name = top.str("name", default=path.stem)
        description = top.str("description", default="")
        connector = top.choice("connector", ["ebpf", "bmv2"], default="ebpf")
        link_mtu = top.int("link_mtu", default=1600, lo=1600, hi=9000)
        ospf = _ospf(top)
        nodes = top.items("nodes", _node, min_len=1)
        nodes = [NodeSpec(n.name, i + 1) for i, n in enumerate(nodes)]
        if len(nodes) > max_nodes:
            hint = (" (the emulation's address plan; python -m scenarios simulate reads "
                    f"up to {SIM_MAX_NODES})" if max_nodes == MAX_NODES else "")
            raise top.error("nodes", f"at most {max_nodes} NFV nodes are supported, got "
                                     f"{len(nodes)}{hint}")
        top.unique("nodes", [n.name for n in nodes])
        node_names = {n.name for n in nodes}
        links = top.items("links", lambda f: _link(f, node_names), default=[])
        links = [LinkSpec(lk.a, lk.b, lk.cost, lk.bandwidth_mbit, i) for i, lk in enumerate(links)]
        top.unique("links", [tuple(sorted((lk.a, lk.b))) for lk in links],
                what="link between the same two nodes")
        services = top.items("services", _service, default=[])
        top.unique("services", [s.name for s in services])
        top.unique("services", [s.id for s in services], what="service id")
        top.unique("services", [s.anycast for s in services], what="anycast address")
        service_names = {s.name for s in services}
        instances = top.items(
            "instances", lambda f: _instance(f, node_names, service_names), default=[])
        top.unique("instances", [i.name for i in instances])
        try:
            instances = _number_instances(instances)
        except ValueError as exc:
            raise top.error("instances", str(exc)) from None
        hosts = top.items("hosts", lambda f: _host(f, node_names), default=[])
        top.unique("hosts", [h.name for h in hosts])
        chains = top.items("chains", lambda f: _chain(f, service_names), default=[])
        top.unique("chains", [c.spi for c in chains], what="chain spi")
        spis = {c.spi for c in chains}
        _check_reclassify(top, services, chains)
        classifier = top.items(
            "classifier", lambda f: _rule(f, node_names, spis), default=[])
        servers = _servers(top)
        placement = _placement(top, servers, nodes, links)
        tunnel = top.choice("tunnel", list(TUNNELS), default="vxlan")
        if "tunnel" in top.data and not servers:
            raise top.error("tunnel", "a tunnel kind is for router links between servers: "
                                      "give servers: too, or remove tunnel")
    topo = Topology(
        name=name, path=path, nodes=tuple(nodes), links=tuple(links),
        services=tuple(services), instances=tuple(instances), hosts=tuple(hosts),
        chains=tuple(chains), classifier=tuple(classifier), description=description,
        connector=connector, link_mtu=link_mtu, ospf=ospf, servers=tuple(servers),
        placement=placement, tunnel=tunnel,
    )
    _check_global_names(topo)
    _check_connected(topo)
    return topo


# -- readers for each section ---------------------------------------------------------
def _ospf(top: Fields) -> OspfTimers:
    data = top.mapping("ospf", default=None)
    if data is None:
        return OspfTimers()
    with Fields(data, top.path, "ospf", top.line_of("ospf")) as f:
        t = OspfTimers(
            hello_s=f.int("hello_s", default=1, lo=1, hi=65535),
            dead_s=f.int("dead_s", default=4, lo=2, hi=65535),
            spf_delay_ms=f.int("spf_delay_ms", default=50, lo=0, hi=600000),
            spf_hold_ms=f.int("spf_hold_ms", default=100, lo=0, hi=600000),
            spf_max_hold_ms=f.int("spf_max_hold_ms", default=1000, lo=0, hi=600000),
            lsa_throttle_ms=f.int("lsa_throttle_ms", default=50, lo=0, hi=5000),
            lsa_min_arrival_ms=f.int("lsa_min_arrival_ms", default=10, lo=0, hi=600000),
            bfd=_bfd(f),
        )
        if t.dead_s <= t.hello_s:
            raise f.error("dead_s", f"expected more than hello_s ({t.hello_s}), got {t.dead_s}")
    return t


def _bfd(ospf: Fields) -> Bfd | None:
    """``bfd: off`` (or false), or ``bfd: {interval_ms: 100, multiplier: 3}``."""
    data = ospf.raw("bfd", default=None)
    if data is None or data is True or data == "on":
        return Bfd()
    if data is False or data == "off":
        return None
    if not isinstance(data, dict):
        raise ospf.error("bfd", "expected off or a mapping {interval_ms, multiplier}, got "
                                f"{data!r}")
    with Fields(data, ospf.path, ospf.field("bfd"), ospf.line_of("bfd")) as f:
        # FRR's bfdd accepts intervals of 10..60000 ms and a multiplier of 2..255
        return Bfd(interval_ms=f.int("interval_ms", default=100, lo=10, hi=60000),
                   multiplier=f.int("multiplier", default=3, lo=2, hi=255))


def _server(f: Fields) -> ServerSpec:
    return ServerSpec(
        name=f.str("name", pattern=NAME_PATTERN, hint=NAME_HINT),
        address=f.str("address", pattern=ADDRESS_PATTERN, hint=ADDRESS_HINT),
        user=f.str("user", default="root", pattern=USER_PATTERN, hint=USER_HINT),
    )


def _servers(top: Fields) -> list[ServerSpec]:
    """``servers``: unique names and addresses, at most one of them this machine."""
    servers = top.items("servers", _server, default=[], min_len=1)
    top.unique("servers", [s.name for s in servers], item_field="name")
    top.unique("servers", [s.address.lower() for s in servers], what="address",
               item_field="address")
    local = [i for i, s in enumerate(servers) if s.local]
    if len(local) > 1:
        i = local[1]
        raise ConfigError(top.path, top.item_line("servers", i), f"servers[{i}].address",
                          f"servers[{local[0]}] is already this machine "
                          f"({servers[local[0]].address}); at most one server may be "
                          "localhost or 127.0.0.1")
    return servers


def _placement(top: Fields, servers: list[ServerSpec], nodes: list[NodeSpec],
               links: list[LinkSpec]) -> dict[str, str]:
    """``placement``: ``{rule: min-cut|round-robin, seed: N}`` (default min-cut, seed 1)
    or ``{nodes: {NODE: SERVER}}`` (the nodes not listed go to the first server)."""
    data = top.mapping("placement", default=None)
    if not servers:
        if data is not None:
            raise top.error("placement", "placement needs a 'servers' list (without one "
                                         "every node runs on this machine)")
        return {}
    names = [n.name for n in nodes]
    server_names = [s.name for s in servers]
    if data is None:
        return placing.place(names, links, server_names)
    with Fields(data, top.path, "placement", top.line_of("placement")) as f:
        explicit = f.mapping("nodes", default=None)
        rule = f.raw("rule", default=None)
        seed = f.int("seed", default=None, lo=0, hi=2**32 - 1)
        if explicit is not None:
            for key, value in (("rule", rule), ("seed", seed)):
                if value is not None:
                    raise f.error(key, f"give either nodes (explicit placement) or a "
                                       f"rule, not both ({key} with nodes)")
            return _explicit(f, explicit, names, server_names)
        rule = f.choice("rule", placing.RULES, default=placing.DEFAULT_RULE)
    return placing.place(names, links, server_names, rule,
                         placing.DEFAULT_SEED if seed is None else seed)


def _explicit(placement: Fields, data: dict[Any, Any], nodes: list[str],
              servers: list[str]) -> dict[str, str]:
    where = {n: servers[0] for n in nodes}
    with Fields(data, placement.path, placement.field("nodes"),
                placement.line_of("nodes")) as f:
        for key in data:
            if key not in where:
                raise f.error(str(key), f"unknown node {key!r} (known: "
                                        f"{', '.join(sorted(nodes))})")
            where[key] = f.ref(key, servers, "server")
    return where


def _node(f: Fields) -> NodeSpec:
    return NodeSpec(f.str("name", pattern=NAME_PATTERN, hint=NAME_HINT), 0)


def _link(f: Fields, nodes: set[str]) -> LinkSpec:
    a = f.ref("a", nodes, "node")
    b = f.ref("b", nodes, "node")
    if a == b:
        raise f.error("b", f"a link needs two different nodes, got {a!r} twice")
    cost = f.int("cost", lo=1, hi=65535)
    bw = f.number("bandwidth_mbit", default=None, lo=0, lo_open=True, hi=100000)
    return LinkSpec(a, b, cost, bw)


def _service(f: Fields) -> ServiceSpec:
    name = f.str("name", pattern=NAME_PATTERN, hint=NAME_HINT)
    sid = f.int("id", lo=1, hi=255)
    anycast = f.ipv4("anycast")
    if not anycast.is_private or anycast.is_loopback or anycast.is_multicast:
        raise f.error("anycast", f"expected a private unicast address, got {anycast}")
    kind = f.choice("kind", VNF_KINDS, default="passthrough")
    rules = f.list("rules", default=[])
    if rules and kind not in RULE_KINDS:
        raise f.error("rules", f"rules only apply to kind firewall or dpi, not {kind}")
    parse = RULE_KINDS.get(kind, parse_rule)
    example = "'count payload=/etc/passwd'" if kind == "dpi" else "'drop proto=udp dport=53'"
    for i, rule in enumerate(rules):
        if not isinstance(rule, str):
            raise f.error("rules", f"item {i}: expected a rule string like {example}, "
                                   f"got {rule!r}")
        try:
            parse(rule)
        except ValueError as exc:
            raise f.error("rules", f"item {i}: {exc}") from None
    threshold = f.number("threshold_pps", default=None, lo=0, lo_open=True, hi=1e9)
    reclassify_to = f.int("reclassify_to", default=None, lo=1, hi=(1 << 24) - 1)
    for key, value in (("threshold_pps", threshold), ("reclassify_to", reclassify_to)):
        if value is not None and kind != "ids":
            raise f.error(key, f"only kind ids has {key}, not {kind}")
    module, params = _scapy_module(f, kind)
    return ServiceSpec(name, sid, anycast, kind, tuple(rules), threshold, reclassify_to,
                       module, params)


def _scapy_module(f: Fields, kind: str) -> tuple[Path | None, dict[str, Any]]:
    """``kind: scapy``: ``module`` (a Python file, relative to the topology file) that
    exists, parses and defines ``process``, and ``params`` (a mapping of JSON values,
    handed to the module's ``setup``). The module is not run here: the VNF imports it
    at start and fails ``up`` with the error if it does not import."""
    text = f.str("module", default=None)
    params = f.raw("params", default=None)
    if kind != "scapy":
        for key, value in (("module", text), ("params", params)):
            if value is not None:
                raise f.error(key, f"only kind scapy has {key}, not {kind}")
        return None, {}
    if text is None:
        raise f.error("module", "kind scapy needs a module: the path of a Python file "
                                "defining process(pkt, ctx), relative to the topology file")
    path = Path(os.path.normpath(Path(f.path).absolute().parent / Path(text).expanduser()))
    problem = check_source(path)
    if problem is not None:
        raise f.error("module", problem + (" (module paths are relative to the topology "
                                           "file)" if not path.exists() else ""))
    if params is None:
        return path, {}
    if not isinstance(params, dict) or any(not isinstance(k, str) for k in params):
        raise f.error("params", f"expected a mapping with text keys, got {params!r}")
    try:
        plain = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise f.error("params", "expected strings, numbers, booleans, lists and mappings "
                                f"only ({exc})") from None
    return path, plain


def _instance(f: Fields, nodes: set[str], services: set[str]) -> InstanceSpec:
    return InstanceSpec(
        name=f.str("name", pattern=INSTANCE_PATTERN, hint=INSTANCE_HINT),
        service=f.ref("service", services, "service"),
        node=f.ref("node", nodes, "node"),
        capacity=f.int("capacity", lo=1, hi=10_000_000),
        cost=f.int("cost", default=None, lo=1, hi=65535),
        start=f.bool("start", default=True),
        cpu_limit=f.number("cpu_limit", default=None, lo=0.05, hi=64),
    )


def _host(f: Fields, nodes: set[str]) -> HostSpec:
    return HostSpec(
        name=f.str("name", pattern=NAME_PATTERN, hint=NAME_HINT),
        node=f.ref("node", nodes, "node"),
        role=f.choice("role", ["source", "sink", "both"], default="both"),
    )


def _chain(f: Fields, services: set[str]) -> ChainSpec:
    spi = f.int("spi", lo=1, hi=(1 << 24) - 1)
    names = f.list("services", min_len=1)
    for i, s in enumerate(names):
        if s not in services:
            known = ", ".join(sorted(services)) or "none defined"
            raise f.error("services", f"item {i}: unknown service {s!r} (known: {known})")
    if len(names) > 254:
        raise f.error("services", "a chain has at most 254 services (NSH SI 255..1)")
    return ChainSpec(spi, tuple(names), f.str("name", default=""))


def _check_reclassify(top: Fields, services: list[ServiceSpec],
                      chains: list[ChainSpec]) -> None:
    """An ids's ``reclassify_to`` names a chain, the ids is on some other chain, and the
    reclassifications never lead a packet back to a chain it left (a loop would only end
    when the NSH TTL runs out)."""
    by_spi = {c.spi: c for c in chains}

    def error(i: int, message: str) -> ConfigError:
        item = top.data["services"][i]
        line = getattr(item, "key_lines", {}).get("reclassify_to") or top.item_line(
            "services", i)
        return ConfigError(top.path, line, f"{top.field('services')}[{i}].reclassify_to",
                           message)

    # chain spi -> [(target spi, index of the service that reclassifies)]
    moves: dict[int, list[tuple[int, int]]] = {}
    for i, svc in enumerate(services):
        to = svc.reclassify_to
        if to is None:
            continue
        if to not in by_spi:
            known = ", ".join(str(s) for s in sorted(by_spi)) or "none defined"
            raise error(i, f"unknown chain spi {to} (known: {known})")
        sources = [c.spi for c in chains if svc.name in c.services and c.spi != to]
        if not sources:
            raise error(i, f"{svc.name} is on no chain other than {_chain_label(by_spi[to])}, "
                           "so it would never reclassify (a packet already on the target "
                           "chain is left alone)")
        for spi in sources:
            moves.setdefault(spi, []).append((to, i))
    # depth-first search for a cycle of chain -> chain moves
    state: dict[int, int] = {}  # spi -> 1 on the current path, 2 done
    path: list[tuple[int, int]] = []  # (chain spi, service index moving on from it)

    def visit(spi: int) -> None:
        state[spi] = 1
        for to, i in moves.get(spi, []):
            path.append((spi, i))
            if state.get(to) == 1:
                loop = path[[p for p, _ in path].index(to):]
                steps = "".join(f"{_chain_label(by_spi[p])} -{services[j].name}-> "
                                for p, j in loop)
                raise error(loop[0][1], f"reclassification loop: {steps}"
                                        f"{_chain_label(by_spi[to])}; a packet would go "
                                        "round until its NSH TTL expires")
            if state.get(to) is None:
                visit(to)
            path.pop()
        state[spi] = 2

    for spi in sorted(moves):
        if spi not in state:
            visit(spi)


def _chain_label(chain: ChainSpec) -> str:
    return f"chain {chain.spi}" + (f" ({chain.name})" if chain.name else "")


def _rule(f: Fields, nodes: set[str], spis: set[int]) -> ClassifierRule:
    node = f.ref("node", nodes, "node")
    chain = f.int("chain", lo=1, hi=(1 << 24) - 1)
    if chain not in spis:
        known = ", ".join(str(s) for s in sorted(spis)) or "none defined"
        raise f.error("chain", f"unknown chain spi {chain} (known: {known})")
    return ClassifierRule(
        node=node, chain=chain,
        priority=f.int("priority", default=100, lo=1, hi=65535),
        src=f.ipv4_net("src", default=IPv4Network("0.0.0.0/0")),
        dst=f.ipv4_net("dst", default=IPv4Network("0.0.0.0/0")),
        proto=f.choice("proto", list(PROTOCOLS), default="any"),
        sport=f.port_range("sport"),
        dport=f.port_range("dport"),
    )


MAX_INSTANCES_PER_NODE = 48  # VNF ports 16..63 of the connector (PIPELINE.md)


def _number_instances(instances: list[InstanceSpec]) -> list[InstanceSpec]:
    per_node: dict[str, int] = {}
    out = []
    for inst in instances:
        per_node[inst.node] = per_node.get(inst.node, 0) + 1
        if per_node[inst.node] > MAX_INSTANCES_PER_NODE:
            raise ValueError(f"node {inst.node}: at most {MAX_INSTANCES_PER_NODE} VNF "
                             "instances per node (connector VNF ports 16..63)")
        out.append(replace(inst, id=per_node[inst.node]))
    return out


def _check_global_names(topo: Topology) -> None:
    """Mininet names: routers r<node>, connectors c<node>, VNFs and hosts by name."""
    taken: dict[str, str] = {}
    for n in topo.nodes:
        taken[f"r{n.name}"] = f"router of node {n.name}"
        taken[f"c{n.name}"] = f"connector of node {n.name}"
    named: tuple[tuple[str, list[str]], ...] = (
        ("instances", [i.name for i in topo.instances]), ("hosts", [h.name for h in topo.hosts]))
    for kind, names in named:
        for i, name in enumerate(names):
            if name in taken:
                raise ConfigError(topo.path, None, f"{kind}[{i}].name",
                                  f"{name!r} clashes with the {taken[name]}; "
                                  "pick another name")
            taken[name] = f"{kind[:-1]} {name}"


def _check_connected(topo: Topology) -> None:
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(n.name for n in topo.nodes)
    g.add_edges_from((lk.a, lk.b) for lk in topo.links)
    parts = list(nx.connected_components(g))
    if len(parts) > 1:
        desc = "; ".join(", ".join(sorted(p)) for p in parts)
        raise ConfigError(topo.path, None, "links",
                          f"the NFV nodes must form one connected network, got {len(parts)} "
                          f"islands: {desc}")
