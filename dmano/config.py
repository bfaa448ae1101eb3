"""The D-MANO node configuration (``python -m dmano --config node.yaml``).

One file per NFV node. The topology builder writes it for emulated nodes; on a real NFV
node an operator writes it. Example::

    node: A                          # a name for logs and the status file
    router_id: 10.255.0.1            # this router's OSPF router id
    area: 0.0.0.0                    # OSPF area of the VNF announcements
    ospf_api: 127.0.0.1              # where ospfd -a listens (TCP 2607)
    nsh_endpoint: 10.1.0.2           # this node's connector address (announced)
    policy: /path/to/paper.yaml      # shared policy file (dmano/policies/)
    status_file: /run/dsfc/x/rA/dmano.json
    control_socket: /run/dsfc/x/rA/dmano.sock   # optional (default: dmano.sock beside
                                     # status_file): drain / undrain / status requests
    heartbeat_s: 1.0                 # optional: a VNF whose counters file is older than
                                     # this is down if hung, not if only starved of CPU
                                     # (dmano/starvation.py); 0.05..3600
    connector:                       # where the weights go
      kind: p4runtime                # p4runtime | dry-run (log the writes only)
      address: unix:/run/dsfc/x/cA/p4rt.sock
      device_id: 1
      election_id: 10
      router_mac: "02:00:00:00:01:01"   # the router's MAC on the connector link
      local_mac: "02:00:00:00:01:02"    # the connector's MAC on that link
    services:                        # names and anycast addresses (shown, announced)
      - {name: FW, id: 1, anycast: 10.254.1.1}
    chains:                          # NSH SPI -> service ids, for the sff_next table
      - {spi: 1, services: [1]}
    classifier:                      # this node's classifier rules (host ports)
      - {chain: 1, priority: 100, src: 10.1.100.0/24, dst: 0.0.0.0/0, proto: udp,
         sport: null, dport: 5000-5999}
    instances:                       # local VNF instances
      - name: fw_a
        id: 1                        # unique on this node, 1..255 (low byte of the
                                     # opaque ID; dmano/lsa.py)
        service: 1
        capacity: 150                # processing units per second
        cost: 20                     # optional fixed cost (policy "static" uses it)
        stats: /run/dsfc/x/vnf/fw_a.json   # the VNF's counters (see vnf/)
        port: 16                     # connector P4 port of the VNF
        mac: "02:00:00:01:10:01"     # the VNF's MAC
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from dmano.yamlconf import ConfigError, Fields, load_yaml

MAC_PATTERN = r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"
HEARTBEAT_DEFAULT_S = 1.0
HEARTBEAT_MIN_S = 0.05
HEARTBEAT_MAX_S = 3600.0
CONTROL_SOCKET_NAME = "dmano.sock"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL


@dataclass(frozen=True)
class ServiceConf:
    name: str
    id: int
    anycast: IPv4Address


@dataclass(frozen=True)
class ChainConf:
    spi: int
    services: tuple[int, ...]


@dataclass(frozen=True)
class RuleConf:
    chain: int
    priority: int
    src: IPv4Network
    dst: IPv4Network
    proto: int | None  # IP protocol number, None = any
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None


@dataclass(frozen=True)
class InstanceConf:
    name: str
    id: int
    service: int
    capacity: int
    stats: Path
    port: int = 0
    mac: str = ""
    cost: int | None = None
    cpu_cores: float = 1.0  # the CPU its VNF may use: 100 % cpu_percent per core


@dataclass(frozen=True)
class ConnectorConf:
    kind: str = "dry-run"
    address: str = ""
    device_id: int = 1
    election_id: int = 10
    router_mac: str = "00:00:00:00:00:00"
    local_mac: str = "00:00:00:00:00:00"


@dataclass(frozen=True)
class NodeConfig:
    node: str
    router_id: IPv4Address
    nsh_endpoint: IPv4Address
    policy: Path
    status_file: Path
    area: IPv4Address = field(default_factory=lambda: IPv4Address("0.0.0.0"))
    ospf_api: str = "127.0.0.1"
    connector: ConnectorConf = field(default_factory=ConnectorConf)
    services: tuple[ServiceConf, ...] = ()
    chains: tuple[ChainConf, ...] = ()
    classifier: tuple[RuleConf, ...] = ()
    instances: tuple[InstanceConf, ...] = ()
    path: Path = Path("<config>")
    heartbeat_s: float = HEARTBEAT_DEFAULT_S
    control_socket: Path | None = None  # None: dmano.sock beside the status file

    @property
    def control_path(self) -> Path:
        """The control socket: ``control_socket``, or ``dmano.sock`` beside the status
        file."""
        if self.control_socket is not None:
            return self.control_socket
        return self.status_file.parent / CONTROL_SOCKET_NAME

    def service_names(self) -> dict[int, str]:
        return {s.id: s.name for s in self.services}


PROTOCOLS = {"any": None, "icmp": 1, "tcp": 6, "udp": 17}


def load_node_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    return parse_node_config(load_yaml(path), path)


def parse_node_config(data: Any, path: Path) -> NodeConfig:
    with Fields(data, path, "") as f:
        node = f.str("node")
        router_id = f.ipv4("router_id")
        area = f.ipv4("area", default=IPv4Address("0.0.0.0"))
        ospf_api = f.str("ospf_api", default="127.0.0.1")
        nsh_endpoint = f.ipv4("nsh_endpoint")
        policy = Path(f.str("policy"))
        if not policy.is_absolute():
            policy = path.parent / policy
        status_file = Path(f.str("status_file"))
        control_socket = _control_socket(f, status_file)
        heartbeat_s = f.number("heartbeat_s", default=HEARTBEAT_DEFAULT_S,
                               lo=HEARTBEAT_MIN_S, hi=HEARTBEAT_MAX_S)
        if not math.isfinite(heartbeat_s):
            raise f.error("heartbeat_s", f"expected a finite number, got {heartbeat_s}")
        connector = _connector(f)
        services = f.items("services", _service, default=[])
        ids = {s.id for s in services}
        chains = f.items("chains", lambda g: _chain(g, ids), default=[])
        spis = {c.spi for c in chains}
        classifier = f.items("classifier", lambda g: _rule(g, spis), default=[])
        instances = f.items("instances", lambda g: _instance(g, ids), default=[])
        seen: dict[int, str] = {}
        for i, inst in enumerate(instances):
            if inst.id in seen:
                raise ConfigError(path, None, f"instances[{i}].id",
                                  f"duplicate instance id {inst.id} (also {seen[inst.id]})")
            seen[inst.id] = inst.name
    return NodeConfig(
        node=node, router_id=router_id, nsh_endpoint=nsh_endpoint, policy=policy,
        status_file=status_file, area=area, ospf_api=ospf_api, connector=connector,
        services=tuple(services), chains=tuple(chains), classifier=tuple(classifier),
        instances=tuple(instances), path=path, heartbeat_s=heartbeat_s,
        control_socket=control_socket,
    )


def _control_socket(f: Fields, status_file: Path) -> Path | None:
    raw = f.str("control_socket", default=None)
    sock = Path(raw) if raw is not None else None
    if sock is not None and not sock.is_absolute():
        sock = Path(f.path).parent / sock
    effective = sock if sock is not None else status_file.parent / CONTROL_SOCKET_NAME
    if len(str(effective).encode()) > UNIX_PATH_MAX:
        raise f.error("control_socket" if sock is not None else "status_file",
                      f"the control socket path {effective} is longer than a unix socket "
                      f"path may be ({UNIX_PATH_MAX} bytes)")
    return sock


def _connector(f: Fields) -> ConnectorConf:
    data = f.mapping("connector", default=None)
    if data is None:
        return ConnectorConf()
    with Fields(data, f.path, "connector", f.line_of("connector")) as c:
        kind = c.choice("kind", ["p4runtime", "dry-run"], default="dry-run")
        conf = ConnectorConf(
            kind=kind,
            address=c.str("address", default=""),
            device_id=c.int("device_id", default=1, lo=0, hi=2**32 - 1),
            election_id=c.int("election_id", default=10, lo=1, hi=2**63 - 1),
            router_mac=c.str("router_mac", default="00:00:00:00:00:00",
                             pattern=MAC_PATTERN, hint="a MAC like 02:00:00:00:01:01"),
            local_mac=c.str("local_mac", default="00:00:00:00:00:00",
                            pattern=MAC_PATTERN, hint="a MAC like 02:00:00:00:01:02"),
        )
        if kind == "p4runtime" and not conf.address:
            raise c.error("address", "required with kind p4runtime "
                                     "(unix:/path/p4rt.sock or host:port)")
    return conf


def _service(f: Fields) -> ServiceConf:
    return ServiceConf(f.str("name"), f.int("id", lo=1, hi=255), f.ipv4("anycast"))


def _chain(f: Fields, ids: set[int]) -> ChainConf:
    spi = f.int("spi", lo=1, hi=(1 << 24) - 1)
    services = f.list("services", min_len=1)
    for i, s in enumerate(services):
        if s not in ids:
            raise f.error("services", f"item {i}: unknown service id {s!r} "
                                      f"(known: {', '.join(map(str, sorted(ids))) or 'none'})")
    return ChainConf(spi, tuple(services))


def _rule(f: Fields, spis: set[int]) -> RuleConf:
    chain = f.int("chain", lo=1, hi=(1 << 24) - 1)
    if chain not in spis:
        raise f.error("chain", f"unknown chain spi {chain}")
    proto = f.choice("proto", list(PROTOCOLS), default="any")
    return RuleConf(
        chain=chain, priority=f.int("priority", default=100, lo=1, hi=65535),
        src=f.ipv4_net("src", default=IPv4Network("0.0.0.0/0")),
        dst=f.ipv4_net("dst", default=IPv4Network("0.0.0.0/0")),
        proto=PROTOCOLS[proto], sport=f.port_range("sport"), dport=f.port_range("dport"),
    )


def _instance(f: Fields, ids: set[int]) -> InstanceConf:
    name = f.str("name")
    service = f.int("service", lo=1, hi=255)
    if ids and service not in ids:
        raise f.error("service", f"unknown service id {service}")
    return InstanceConf(
        name=name, id=f.int("id", lo=1, hi=255), service=service,
        capacity=f.int("capacity", lo=1, hi=10_000_000), stats=Path(f.str("stats")),
        port=f.int("port", default=0, lo=0, hi=511),
        mac=f.str("mac", default="", pattern=MAC_PATTERN, hint="a MAC like 02:00:00:01:10:01"),
        cost=f.int("cost", default=None, lo=1, hi=65535),
        cpu_cores=f.number("cpu_cores", default=1.0, lo=0.01, hi=1024),
    )
