"""The eBPF datapath's tables as Python sees them: the struct layouts of ``connector.c``'s
maps, the port table (P4 port -> interface), and the packing of WCMP groups.

See :mod:`connector_p4.ebpf_target` (which loads the program and writes these maps) for
the select-slot and WCMP-slot conventions.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from connector_p4.target import (
    GROUP_SLOTS,
    MAX_CLASSIFIER_RULES,
    MAX_MEMBERS,
    MAX_PORTS,
    PORT_ROLES,
    SELECT_SLOTS,
    ClassifierRule,
    ConnectorConfig,
    Member,
    SffAction,
    TargetError,
    Ternary,
    role_of_port,
)
from dmano.macaddr import parse_mac

PROG_NAME = "connector"
PROG_PIN = "prog"
N_DROP_SLOTS = 16
DEFAULT_CACHE_TIMEOUT_S = 30.0
TC_PREF = 1  # tc filter preference/handle of our program on each port

ROLES = {name: i for i, name in enumerate(PORT_ROLES, 1)}  # router 1 .. host 4
ROLE_NAMES = {v: k for k, v in ROLES.items()}
SFF_KINDS = {"to_service": 1, "end_of_chain": 2, "drop": 3}
SFF_NAMES = {v: k for k, v in SFF_KINDS.items()}
MEMBER_KINDS = {"local": 1, "remote": 2}
MEMBER_NAMES = {v: k for k, v in MEMBER_KINDS.items()}
MISC_COUNTERS = ("classified", "end_of_chain")
NO_MEMBER = 0xFFFFFFFF

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7

# struct layouts of connector.c (native byte order, explicit padding)
PORT = struct.Struct("=IIII6s2x")  # ifindex, p4port, role, mtu, mac
CONFIG = struct.Struct("=IIII6s6sI")  # local_ip, router_if, router_mtu, timeout_ms, macs, valid
RULE = struct.Struct("=IIIIHHHHBB2xII")  # src/m, dst/m, sport/m, dport/m, proto/m, prio, spi
BANK_HEAD = struct.Struct("=II")  # count, pad
BANK_SIZE = BANK_HEAD.size + MAX_CLASSIFIER_RULES * RULE.size
SFF = struct.Struct("=II")  # kind, service_id
MEMBER = struct.Struct("=III6s2x")  # kind, port, endpoint, dmac
GROUP = struct.Struct(f"=IHH{GROUP_SLOTS}H{GROUP_SLOTS}H{GROUP_SLOTS}B{MAX_MEMBERS // 64}Q")
FC_KEY = struct.Struct("=II")  # ctx1, select slot
COUNTER = struct.Struct("=QQ")
DBG = struct.Struct("=6I")
U32 = struct.Struct("=I")

MAP_LAYOUT: dict[str, tuple[int, int]] = {  # name: (key size, value size)
    "ports": (4, PORT.size), "p4ports": (4, PORT.size), "config": (4, CONFIG.size),
    "cls_banks": (4, BANK_SIZE), "cls_active": (4, 4), "sff": (4, SFF.size),
    "members": (4, MEMBER.size), "groups": (4, GROUP.size), "flow_cache": (FC_KEY.size, 16),
    "member_pkts": (4, COUNTER.size), "drops": (4, COUNTER.size), "misc": (4, COUNTER.size),
    "dbg": (4, DBG.size), "scratch": (4, 256),
}
# maps whose number of entries this code depends on
MAP_ENTRIES = {"groups": SELECT_SLOTS, "members": MAX_MEMBERS}



@dataclass(frozen=True)
class Port:
    p4port: int
    ifname: str
    ifindex: int
    mac: bytes
    role: int  # ROLES value
    mtu: int = 0  # L3 MTU, 0 = not checked by the datapath


# (ifname, ifindex, mac, role[, mtu]) with mac bytes or "aa:bb:..", role a ROLES name or
# value; or just the interface name (ifindex, MAC and MTU are then looked up in the current
# network namespace and the role follows from the P4 port number, see role_of_port)
PortSpec = tuple | str


@dataclass(frozen=True)
class Decision:
    """One CPU's last decision (from the ``dbg`` map)."""

    ingress_ifindex: int
    verdict: int  # TC_ACT_*
    egress_ifindex: int  # bpf_redirect() target, 0 if none
    member: int | None
    drop_reason: str | None
    seq: int


@dataclass
class PipelineState:
    """What the maps hold, in Target terms (for a restarted P4Runtime server)."""

    config: ConnectorConfig | None = None
    cache_timeout_s: float = DEFAULT_CACHE_TIMEOUT_S
    rules: list[ClassifierRule] = field(default_factory=list)
    sff: dict[tuple[int, int], SffAction] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    # select slot (service id + 256 * from_remote) -> (member id, weight) pairs
    groups: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def interface_mtu(ifname: str) -> int:
    """MTU of a device in the current network namespace, 0 if it is not there."""
    siocgifmtu = 0x8921
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16si", ifname.encode()[:15], 0)
            return struct.unpack("16si", fcntl.ioctl(s.fileno(), siocgifmtu, req))[1]
    except OSError:
        return 0


def interface_mac(ifname: str) -> bytes:
    """MAC address of a device in the current network namespace."""
    siocgifhwaddr = 0x8927
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16s16s", ifname.encode()[:15], bytes(16))
        return fcntl.ioctl(s.fileno(), siocgifhwaddr, req)[18:24]


def make_port(p4port: int, spec: PortSpec | Port) -> Port:
    if isinstance(spec, Port):
        return spec
    if isinstance(spec, str):
        try:
            ifindex = socket.if_nametoindex(spec)
            mac = interface_mac(spec)
        except OSError as e:
            raise ValueError(f"port {p4port}: interface {spec!r}: {e}") from None
        spec = (spec, ifindex, mac, role_of_port(p4port))
    ifname, ifindex, mac, role, *rest = spec
    role_id = ROLES.get(role, 0) if isinstance(role, str) else int(role)
    if role_id not in ROLE_NAMES:
        raise ValueError(f"port {p4port}: unknown role {role!r}")
    if not 0 <= p4port < MAX_PORTS or ifindex <= 0:
        raise ValueError(f"port {p4port}: bad P4 port or ifindex {ifindex}")
    mtu = int(rest[0]) if rest else interface_mtu(ifname)
    return Port(p4port, ifname, int(ifindex), parse_mac(mac), role_id, mtu)


def pack_group(members: Sequence[tuple[int, int]]) -> bytes:
    """The `groups` map value for (member id, weight) pairs (see the module doc)."""
    expansion = [mid for mid, w in members for _ in range(w)]
    n = len(expansion)
    slots = [expansion[j % n] for j in range(GROUP_SLOTS)] if n else [0] * GROUP_SLOTS
    ids = [mid for mid, _ in members] + [0] * (GROUP_SLOTS - len(members))
    weights = [w for _, w in members] + [0] * (GROUP_SLOTS - len(members))
    bits = [0] * (MAX_MEMBERS // 64)
    for mid, _ in members:
        bits[mid >> 6] |= 1 << (mid & 63)
    return GROUP.pack(n, len(members), 1, *slots, *ids, *weights, *bits)


def unpack_group(value: bytes) -> list[tuple[int, int]] | None:
    """(member id, weight) pairs of a ``groups`` map value; None for an empty slot."""
    fields = GROUP.unpack(value)
    n_members, present = fields[1], fields[2]
    if not present:
        return None
    ids = fields[3 + GROUP_SLOTS: 3 + 2 * GROUP_SLOTS]
    weights = fields[3 + 2 * GROUP_SLOTS: 3 + 3 * GROUP_SLOTS]
    return [(ids[i], weights[i]) for i in range(min(n_members, GROUP_SLOTS))]


def unpack_member(value: bytes) -> Member | None:
    """The member of a ``members`` map value; None for a free id."""
    kind, port, endpoint, dmac = MEMBER.unpack(value)
    if kind == MEMBER_KINDS["local"]:
        return Member("local", port=port, dmac=dmac)
    if kind == MEMBER_KINDS["remote"]:
        return Member("remote", endpoint=IPv4Address(endpoint))
    return None


def _check_ternary(name: str, t: Ternary, bits: int) -> None:
    top = (1 << bits) - 1
    if not (0 <= t.value <= top and 0 <= t.mask <= top):
        raise TargetError("INVALID_ARGUMENT", f"classifier {name} does not fit {bits} bits")


def pack_rules(ordered: Sequence[ClassifierRule]) -> bytes:
    """A ``cls_banks`` map value: the rules in lookup order (highest priority first)."""
    packed = []
    for r in ordered:
        for name, t, bits in (("src", r.src, 32), ("dst", r.dst, 32),
                              ("proto", r.proto, 8), ("l4_src", r.l4_src, 16),
                              ("l4_dst", r.l4_dst, 16)):
            _check_ternary(name, t, bits)
        if not 0 <= r.spi < 1 << 24:
            raise TargetError("INVALID_ARGUMENT", f"spi {r.spi} does not fit 24 bits")
        packed.append(RULE.pack(
            r.src.value & r.src.mask, r.src.mask, r.dst.value & r.dst.mask, r.dst.mask,
            r.l4_src.value & r.l4_src.mask, r.l4_src.mask,
            r.l4_dst.value & r.l4_dst.mask, r.l4_dst.mask,
            r.proto.value & r.proto.mask, r.proto.mask, r.priority & 0xFFFFFFFF, r.spi))
    return (BANK_HEAD.pack(len(packed), 0) + b"".join(packed)).ljust(BANK_SIZE, b"\0")


def unpack_rules(bank: bytes) -> list[ClassifierRule]:
    """The rules of a ``cls_banks`` map value, in lookup order."""
    rules = []
    count = BANK_HEAD.unpack_from(bank)[0]
    for i in range(min(count, MAX_CLASSIFIER_RULES)):
        (src, srcm, dst, dstm, sp, spm, dp, dpm, pr, prm, prio,
         spi) = RULE.unpack_from(bank, BANK_HEAD.size + i * RULE.size)
        rules.append(ClassifierRule(prio, Ternary(src, srcm), Ternary(dst, dstm),
                                    Ternary(pr, prm), Ternary(sp, spm), Ternary(dp, dpm), spi))
    return rules
