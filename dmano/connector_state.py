"""What the connector's tables should hold, and the writes that get it there.

The D-MANO computes a :class:`DesiredState` from its configuration (classifier rules,
chains) and its service tables (WCMP weights), then :func:`diff` turns the difference
between what the connector holds and what it should hold into an ordered list of
:class:`Op` writes (members before the groups that use them, groups before their
deletion of members). Only differences are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dmano.config import NodeConfig
from dmano.service_plane import ServiceTable

MAX_RULES = 64


@dataclass(frozen=True, order=True)
class TernaryRule:
    """One classifier table entry (value/mask per field) -> set_chain(spi)."""

    priority: int
    src: tuple[int, int]
    dst: tuple[int, int]
    proto: tuple[int, int]
    sport: tuple[int, int]
    dport: tuple[int, int]
    spi: int


@dataclass(frozen=True, order=True)
class MemberKey:
    """A selector member: a local VNF (port, MAC) or a remote connector (endpoint)."""

    kind: str  # "local" | "remote"
    port: int = 0
    mac: str = ""
    endpoint: str = ""


LOCAL_GROUP_BASE = 256  # group id of a service's local-only group: 256 + service id


@dataclass
class DesiredState:
    """What the connector should hold.

    ``groups``: group id -> {member: weight}. Group ``sid`` holds every candidate of
    service ``sid``; group ``256 + sid`` only its local instances. ``selects``:
    (service id, from_remote) -> group id, the ``instance_select`` entries: a packet that
    arrived from a remote connector (``from_remote`` 1) goes to a local instance when
    this node has one, so the ingress node's choice of instance node is kept and
    connectors never bounce a flow between each other.
    """

    config: tuple[str, str, str] | None = None  # local_ip, router_mac, local_mac
    classifier: set[TernaryRule] = field(default_factory=set)
    sff: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)
    groups: dict[int, dict[MemberKey, int]] = field(default_factory=dict)
    selects: dict[tuple[int, int], int] = field(default_factory=dict)

    def members(self) -> set[MemberKey]:
        return {m for g in self.groups.values() for m in g}


@dataclass(frozen=True)
class Op:
    """One write. kind: config | rule | sff | member | group | select; action: set |
    delete."""

    kind: str
    action: str
    key: object
    value: object = None

    def __str__(self) -> str:
        val = "" if self.value is None else f" = {self.value}"
        return f"{self.action} {self.kind} {self.key}{val}"


def port_range_to_ternary(lo: int, hi: int, bits: int = 16) -> list[tuple[int, int]]:
    """Cover [lo, hi] exactly with (value, mask) prefixes, fewest first."""
    out: list[tuple[int, int]] = []
    full = (1 << bits) - 1
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return out


def _prefix(net: IPv4Network) -> tuple[int, int]:
    return (int(net.network_address), int(net.netmask))


def classifier_rules(cfg: NodeConfig) -> set[TernaryRule]:
    rules: set[TernaryRule] = set()
    for r in cfg.classifier:
        sports = port_range_to_ternary(*r.sport) if r.sport else [(0, 0)]
        dports = port_range_to_ternary(*r.dport) if r.dport else [(0, 0)]
        proto = (r.proto, 0xFF) if r.proto is not None else (0, 0)
        for sp in sports:
            for dp in dports:
                rules.add(TernaryRule(r.priority, _prefix(r.src), _prefix(r.dst), proto,
                                      sp, dp, r.chain))
    if len(rules) > MAX_RULES:
        raise ValueError(f"{cfg.path}: the classifier rules expand to {len(rules)} ternary "
                         f"entries (port ranges), more than the connector's {MAX_RULES}")
    return rules


def sff_entries(cfg: NodeConfig) -> dict[tuple[int, int], tuple[str, int]]:
    """(spi, si) -> ("to_service", id) for each hop, then ("end_of_chain", 0)."""
    out: dict[tuple[int, int], tuple[str, int]] = {}
    for chain in cfg.chains:
        si = 255
        for sid in chain.services:
            out[(chain.spi, si)] = ("to_service", sid)
            si -= 1
        out[(chain.spi, si)] = ("end_of_chain", 0)
    return out


def groups_from_tables(
    cfg: NodeConfig, tables: dict[int, ServiceTable],
) -> tuple[dict[int, dict[MemberKey, int]], dict[tuple[int, int], int]]:
    """WCMP groups and instance_select entries (see :class:`DesiredState`).

    Local instances are members by port/MAC; remote ones are merged per endpoint (the
    remote connector picks among its own instances)."""
    local = {inst.id: inst for inst in cfg.instances}
    groups: dict[int, dict[MemberKey, int]] = {}
    selects: dict[tuple[int, int], int] = {}
    for sid, rows in tables.items():
        members: dict[MemberKey, int] = {}
        for c in rows:
            if c.weight <= 0:
                continue
            if c.local:
                inst = local.get(c.instance_id)
                if inst is None or not inst.port:
                    continue  # announced by us but not configured here: nothing to reach
                key = MemberKey("local", port=inst.port, mac=inst.mac.lower())
            else:
                key = MemberKey("remote", endpoint=str(c.endpoint))
            members[key] = members.get(key, 0) + c.weight
        if not members:
            continue
        groups[sid] = _fit(members)
        selects[(sid, 0)] = sid
        local_members = {k: w for k, w in members.items() if k.kind == "local"}
        if local_members:
            groups[LOCAL_GROUP_BASE + sid] = _fit(local_members)
            selects[(sid, 1)] = LOCAL_GROUP_BASE + sid
        else:
            selects[(sid, 1)] = sid
    return groups, selects


def _fit(members: dict[MemberKey, int], budget: int = 64) -> dict[MemberKey, int]:
    """Merged members may exceed the group budget: scale down, keeping every one >= 1."""
    total = sum(members.values())
    if total <= budget:
        return members
    from dmano import wcmp

    keys = sorted(members)
    ints = wcmp.integer_weights([members[k] for k in keys], budget)
    return {k: w for k, w in zip(keys, ints, strict=True) if w > 0}


def desired_state(cfg: NodeConfig, tables: dict[int, ServiceTable]) -> DesiredState:
    groups, selects = groups_from_tables(cfg, tables)
    return DesiredState(
        config=(str(cfg.nsh_endpoint), cfg.connector.router_mac.lower(),
                cfg.connector.local_mac.lower()),
        classifier=classifier_rules(cfg),
        sff=sff_entries(cfg),
        groups=groups,
        selects=selects,
    )


def diff(have: DesiredState, want: DesiredState) -> list[Op]:
    """Ordered writes that turn ``have`` into ``want``."""
    ops: list[Op] = []
    if want.config is not None and want.config != have.config:
        ops.append(Op("config", "set", "sff_config", want.config))
    for rule in sorted(have.classifier - want.classifier):
        ops.append(Op("rule", "delete", rule))
    for rule in sorted(want.classifier - have.classifier):
        ops.append(Op("rule", "set", rule))
    for key in sorted(have.sff.keys() - want.sff.keys()):
        ops.append(Op("sff", "delete", key))
    for key, value in sorted(want.sff.items()):
        if have.sff.get(key) != value:
            ops.append(Op("sff", "set", key, value))
    # members, then groups, then the entries pointing at groups; deletions in reverse
    for m in sorted(want.members() - have.members()):
        ops.append(Op("member", "set", m))
    for gid, weights in sorted(want.groups.items()):
        if have.groups.get(gid) != weights:
            ops.append(Op("group", "set", gid, tuple(sorted(weights.items()))))
    for key, gid in sorted(want.selects.items()):
        if have.selects.get(key) != gid:
            ops.append(Op("select", "set", key, gid))
    for key in sorted(have.selects.keys() - want.selects.keys()):
        ops.append(Op("select", "delete", key))
    for gid in sorted(have.groups.keys() - want.groups.keys()):
        ops.append(Op("group", "delete", gid))
    for m in sorted(have.members() - want.members()):
        ops.append(Op("member", "delete", m))
    return ops


def apply_ops(state: DesiredState, ops: Iterable[Op]) -> DesiredState:
    """The state after ``ops`` (used by writers to track what the connector holds)."""
    out = DesiredState(state.config, set(state.classifier), dict(state.sff),
                       {k: dict(v) for k, v in state.groups.items()}, dict(state.selects))
    for op in ops:
        if op.kind == "config":
            out.config = op.value  # type: ignore[assignment]
        elif op.kind == "rule":
            (out.classifier.add if op.action == "set" else out.classifier.discard)(op.key)
        elif op.kind == "sff":
            if op.action == "set":
                out.sff[op.key] = op.value  # type: ignore[index]
            else:
                out.sff.pop(op.key, None)  # type: ignore[arg-type]
        elif op.kind == "group":
            if op.action == "set":
                out.groups[op.key] = dict(op.value)  # type: ignore[index, arg-type]
            else:
                out.groups.pop(op.key, None)  # type: ignore[arg-type]
        elif op.kind == "select":
            if op.action == "set":
                out.selects[op.key] = op.value  # type: ignore[index, assignment]
            else:
                out.selects.pop(op.key, None)  # type: ignore[arg-type]
    return out


def endpoint_of(key: MemberKey) -> IPv4Address | None:
    return IPv4Address(key.endpoint) if key.kind == "remote" else None
