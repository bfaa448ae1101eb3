"""P4Info lookups: the one name <-> id index of the project, and P4Runtime byte strings.

Every P4Runtime user builds a :class:`P4InfoIndex` over the P4Info it talks about: the
D-MANO's writer (``dmano.p4rt_client``) over the P4Info the connector serves, the
connector's P4Runtime server (``connector_p4.p4rt_server``) over ``connector.p4info.txtpb``,
and the BMv2 set-up client (``connector_p4.bmv2_target``) over p4c's P4Info.

p4runtime-shell has an index of its own (``p4runtime_sh.context.Context``). It is not used
here: it is untyped, answers an unknown name with None instead of an error, resolves
any unique name *suffix* (convenient in an interactive shell, but a server must not
accept ``classifier`` for ``Ingress.classifier``), scans lists for match fields and
parameters, and does not keep the table attributes the server validates against (action
scopes, sizes, implementation, const default action).

This module imports no protobuf code: it reads the P4Info message's attributes only, so
the D-MANO can use it without loading the P4Runtime stack until it connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["table", "action", "counter", "profile"]


class P4InfoNameError(LookupError):
    """A name (or id) that the P4Info does not have."""


def encode_value(value: int, bitwidth: int | None = None) -> bytes:
    """int -> canonical P4Runtime byte string (shortest, at least one byte). With a
    ``bitwidth``, a negative value or one wider than it is a ValueError."""
    if value < 0 or (bitwidth is not None and value >> bitwidth):
        raise ValueError(f"{value} does not fit in {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode_int(data: bytes) -> int:
    """P4Runtime byte string -> int (no width check; the server validates its input)."""
    return int.from_bytes(data, "big")


@dataclass(frozen=True)
class FieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: int  # p4.config.v1.MatchField.MatchType


@dataclass(frozen=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    params: tuple[ParamInfo, ...]  # by id

    def param(self, name: str) -> ParamInfo:
        for p in self.params:
            if p.name == name:
                return p
        raise P4InfoNameError(f"action {self.name} has no parameter {name!r}")

    def param_name(self, param_id: int) -> str:
        for p in self.params:
            if p.id == param_id:
                return p.name
        raise P4InfoNameError(f"action {self.name} has no parameter id {param_id}")


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    fields: tuple[FieldInfo, ...]  # by id
    scopes: dict[int, int]  # action id -> ActionRef scope
    const_default_action_id: int
    implementation_id: int
    size: int

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise P4InfoNameError(f"table {self.name} has no match field {name!r}")

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def field_name(self, field_id: int) -> str:
        for f in self.fields:
            if f.id == field_id:
                return f.name
        raise P4InfoNameError(f"table {self.name} has no match field id {field_id}")


class P4InfoIndex:
    """Tables, actions, counters and action profiles of a P4Info (a ``p4info_pb2.P4Info``),
    by id and by full name."""

    def __init__(self, p4info: Any):
        self.p4info = p4info
        self.tables: dict[int, TableInfo] = {}
        self.actions: dict[int, ActionInfo] = {}
        self.counters: dict[int, Any] = {}  # p4info_pb2.Counter
        self.profiles: dict[int, Any] = {}  # p4info_pb2.ActionProfile
        self._ids: dict[tuple[Kind, str], int] = {}
        for t in p4info.tables:
            self.tables[t.preamble.id] = TableInfo(
                id=t.preamble.id,
                name=t.preamble.name,
                fields=tuple(FieldInfo(f.id, f.name, f.bitwidth, f.match_type)
                             for f in sorted(t.match_fields, key=lambda f: f.id)),
                scopes={a.id: a.scope for a in t.action_refs},
                const_default_action_id=t.const_default_action_id,
                implementation_id=t.implementation_id,
                size=t.size,
            )
            self._ids[("table", t.preamble.name)] = t.preamble.id
        for a in p4info.actions:
            self.actions[a.preamble.id] = ActionInfo(
                a.preamble.id, a.preamble.name,
                tuple(ParamInfo(p.id, p.name, p.bitwidth)
                      for p in sorted(a.params, key=lambda p: p.id)))
            self._ids[("action", a.preamble.name)] = a.preamble.id
        for c in p4info.counters:
            self.counters[c.preamble.id] = c
            self._ids[("counter", c.preamble.name)] = c.preamble.id
        for p in p4info.action_profiles:
            self.profiles[p.preamble.id] = p
            self._ids[("profile", p.preamble.name)] = p.preamble.id

    def id(self, kind: Kind, name: str) -> int:
        try:
            return self._ids[(kind, name)]
        except KeyError:
            raise P4InfoNameError(f"P4Info has no {kind} {name!r}") from None

    def table(self, name: str) -> TableInfo:
        return self.tables[self.id("table", name)]

    def action(self, name: str) -> ActionInfo:
        return self.actions[self.id("action", name)]

    def action_by_id(self, action_id: int) -> ActionInfo:
        try:
            return self.actions[action_id]
        except KeyError:
            raise P4InfoNameError(f"P4Info has no action id {action_id:#x}") from None
