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
from typing import Literal, assert_never

from dmano.config import NodeConfig
from dmano.model import InstanceState
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
    service ``sid``; group ``256 + sid`` only its local instances. A *draining* member
    (every instance behind it is DRAINING) has weight 0: it stays defined and listed in
    its groups, so flows the connector's flow cache pinned to it keep going, but it
    takes no new flows; it is deleted once its instances are withdrawn. ``selects``:
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


Action = Literal["set", "delete"]
SffValue = tuple[str, int]  # ("to_service", service id) | ("end_of_chain", 0) | ("drop", 0)
GroupValue = tuple[tuple[MemberKey, int], ...]  # (member, weight), sorted


def _op_text(action: str, kind: str, key: object, value: object) -> str:
    return f"{action} {kind} {key}" + ("" if value is None else f" = {value}")


class _ValueOp:
    """An op that sets its key to ``value``, or deletes it when ``value`` is None."""

    kind: str
    key: object
    value: object

    @property
    def action(self) -> Action:
        return "delete" if self.value is None else "set"

    def __str__(self) -> str:
        return _op_text(self.action, self.kind, self.key, self.value)


class _KeyOp:
    """An op that inserts (``set``) or deletes its key."""

    kind: str
    key: object
    action: Action

    def __str__(self) -> str:
        return _op_text(self.action, self.kind, self.key, None)


@dataclass(frozen=True)
class ConfigOp(_ValueOp):
    """Set the default entry of sff_config: (local_ip, router_mac, local_mac)."""

    value: tuple[str, str, str]
    kind: Literal["config"] = field(default="config", init=False)
    key: Literal["sff_config"] = field(default="sff_config", init=False)


@dataclass(frozen=True)
class RuleOp(_KeyOp):
    """Insert or delete one classifier entry."""

    action: Action
    key: TernaryRule
    kind: Literal["rule"] = field(default="rule", init=False)


@dataclass(frozen=True)
class MemberOp(_KeyOp):
    """Insert or delete one selector member (its id is the writer's business)."""

    action: Action
    key: MemberKey
    kind: Literal["member"] = field(default="member", init=False)


@dataclass(frozen=True)
class SffOp(_ValueOp):
    """Set the sff_next entry (spi, si) to ``value``; None deletes it."""

    key: tuple[int, int]
    value: SffValue | None
    kind: Literal["sff"] = field(default="sff", init=False)


@dataclass(frozen=True)
class GroupOp(_ValueOp):
    """Set group ``key`` to ``value`` (members and weights); None deletes it."""

    key: int
    value: GroupValue | None
    kind: Literal["group"] = field(default="group", init=False)


@dataclass(frozen=True)
class SelectOp(_ValueOp):
    """Point the instance_select entry (service id, from_remote) at group ``value``; None
    deletes the entry."""

    key: tuple[int, int]
    value: int | None
    kind: Literal["select"] = field(default="select", init=False)


# One write. ``kind`` tells them apart (config | rule | sff | member | group | select),
# ``action`` is set | delete; ``match op: case SffOp(): ...`` narrows it.
Op = ConfigOp | RuleOp | MemberOp | SffOp | GroupOp | SelectOp


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
    remote connector picks among its own instances). DRAINING candidates count with
    weight 0 (a member all of whose instances drain keeps weight 0); a group holding only
    draining members is kept for their pinned flows. Remote arrivals (``from_remote``
    1) use the local-only group when a local instance takes new flows, else the group
    of all candidates (which still lists the local draining members)."""
    local = {inst.id: inst for inst in cfg.instances}
    groups: dict[int, dict[MemberKey, int]] = {}
    selects: dict[tuple[int, int], int] = {}
    for sid, rows in tables.items():
        members: dict[MemberKey, int] = {}
        for c in rows:
            if c.weight <= 0 and c.state != InstanceState.DRAINING:
                continue
            if c.local:
                inst = local.get(c.instance_id)
                if inst is None or not inst.port:
                    continue  # announced by us but not configured here: nothing to reach
                key = MemberKey("local", port=inst.port, mac=inst.mac.lower())
            else:
                key = MemberKey("remote", endpoint=str(c.endpoint))
            members[key] = members.get(key, 0) + max(c.weight, 0)
        if not members:
            continue
        groups[sid] = _fit(members)
        selects[(sid, 0)] = sid
        local_members = {k: w for k, w in members.items() if k.kind == "local"}
        if any(w > 0 for w in local_members.values()):
            groups[LOCAL_GROUP_BASE + sid] = _fit(local_members)
            selects[(sid, 1)] = LOCAL_GROUP_BASE + sid
        else:
            selects[(sid, 1)] = sid
    return groups, selects


def _fit(members: dict[MemberKey, int], budget: int = 64) -> dict[MemberKey, int]:
    """Merged members may exceed the group budget: scale down, keeping every one >= 1.
    Draining members (weight 0) stay, with weight 0."""
    draining = {k: 0 for k, w in members.items() if w <= 0}
    live = {k: w for k, w in members.items() if w > 0}
    if sum(live.values()) <= budget:
        return {**live, **draining}
    from dmano import wcmp

    keys = sorted(live)
    ints = wcmp.integer_weights([live[k] for k in keys], budget)
    return {**{k: w for k, w in zip(keys, ints, strict=True) if w > 0}, **draining}


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
        ops.append(ConfigOp(want.config))
    for rule in sorted(have.classifier - want.classifier):
        ops.append(RuleOp("delete", rule))
    for rule in sorted(want.classifier - have.classifier):
        ops.append(RuleOp("set", rule))
    for key in sorted(have.sff.keys() - want.sff.keys()):
        ops.append(SffOp(key, None))
    for key, value in sorted(want.sff.items()):
        if have.sff.get(key) != value:
            ops.append(SffOp(key, value))
    # members, then groups, then the entries pointing at groups; deletions in reverse
    for m in sorted(want.members() - have.members()):
        ops.append(MemberOp("set", m))
    for gid, weights in sorted(want.groups.items()):
        if have.groups.get(gid) != weights:
            ops.append(GroupOp(gid, tuple(sorted(weights.items()))))
    for key, gid in sorted(want.selects.items()):
        if have.selects.get(key) != gid:
            ops.append(SelectOp(key, gid))
    for key in sorted(have.selects.keys() - want.selects.keys()):
        ops.append(SelectOp(key, None))
    for gid in sorted(have.groups.keys() - want.groups.keys()):
        ops.append(GroupOp(gid, None))
    for m in sorted(have.members() - want.members()):
        ops.append(MemberOp("delete", m))
    return ops


def apply_ops(state: DesiredState, ops: Iterable[Op]) -> DesiredState:
    """The state after ``ops`` (used by writers to track what the connector holds)."""
    out = DesiredState(state.config, set(state.classifier), dict(state.sff),
                       {k: dict(v) for k, v in state.groups.items()}, dict(state.selects))
    for op in ops:
        match op:
            case ConfigOp():
                out.config = op.value
            case RuleOp():
                if op.action == "set":
                    out.classifier.add(op.key)
                else:
                    out.classifier.discard(op.key)
            case SffOp():
                if op.value is None:
                    out.sff.pop(op.key, None)
                else:
                    out.sff[op.key] = op.value
            case GroupOp():
                if op.value is None:
                    out.groups.pop(op.key, None)
                else:
                    out.groups[op.key] = dict(op.value)
            case SelectOp():
                if op.value is None:
                    out.selects.pop(op.key, None)
                else:
                    out.selects[op.key] = op.value
            case MemberOp():
                pass  # members live in the groups
            case _:
                assert_never(op)
    return out


def endpoint_of(key: MemberKey) -> IPv4Address | None:
    return IPv4Address(key.endpoint) if key.kind == "remote" else None
