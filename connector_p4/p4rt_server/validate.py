"""Checks of what a client writes against the P4Info, and the canonical form the server
stores and reads back (byte strings without leading zeros, fields in P4Info order)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError, decode_value
from connector_p4.p4rt_server.schema import needs_priority
from dmano.p4info import P4InfoIndex, TableInfo, encode_value

# (value, mask) per match field in P4Info order: an exact field has the all-ones mask,
# an omitted ternary field is (0, 0)
MatchKey = tuple[tuple[int, int], ...]


def lookup_table(schema: P4InfoIndex, table_id: int) -> TableInfo:
    if table_id == 0:
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "table_id 0 is not a table")
    t = schema.tables.get(table_id)
    if t is None:
        raise P4RTError(code_pb2.NOT_FOUND, f"unknown table id {table_id:#x}")
    return t


def exact_values(key: MatchKey) -> tuple[int, ...]:
    """The values of a key of exact fields."""
    return tuple(v for v, _ in key)


def _parse_field(table: TableInfo, f: Any, fm: Any) -> tuple[int, int]:
    kind = fm.WhichOneof("field_match_type")
    what = f"{table.name} {f.name}"
    if f.match_type == p4info_pb2.MatchField.EXACT:
        if kind != "exact":
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{what}: expected an exact match, got {kind}")
        return decode_value(fm.exact.value, f.bitwidth, what), (1 << f.bitwidth) - 1
    if f.match_type == p4info_pb2.MatchField.TERNARY:
        if kind != "ternary":
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{what}: expected a ternary match, got {kind}")
        value = decode_value(fm.ternary.value, f.bitwidth, what + " value")
        mask = decode_value(fm.ternary.mask, f.bitwidth, what + " mask")
        if mask == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{what}: a don't-care (mask 0) match must be omitted")
        if value & ~mask:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{what}: value 0x{value:x} has bits outside mask 0x{mask:x}")
        return value, mask
    raise P4RTError(code_pb2.UNIMPLEMENTED, f"{what}: match type not supported")


def parse_match(table: TableInfo, entry: Any) -> tuple[MatchKey, list[Any]]:
    """-> (key in P4Info field order, canonical FieldMatch list)."""
    by_id = {f.id: f for f in table.fields}
    got: dict[int, tuple[int, int]] = {}
    for fm in entry.match:
        f = by_id.get(fm.field_id)
        if f is None:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name}: unknown match field id {fm.field_id}")
        if fm.field_id in got:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name}: match field {f.name} given twice")
        got[f.id] = _parse_field(table, f, fm)
    key: list[tuple[int, int]] = []
    canon = []
    for f in table.fields:
        v = got.get(f.id)
        fm = p4runtime_pb2.FieldMatch(field_id=f.id)
        if f.match_type == p4info_pb2.MatchField.EXACT:
            if v is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{table.name}: exact match field {f.name} is missing")
            fm.exact.value = encode_value(v[0])
        elif v is None:
            key.append((0, 0))
            continue
        else:
            fm.ternary.value = encode_value(v[0])
            fm.ternary.mask = encode_value(v[1])
        key.append(v)
        canon.append(fm)
    return tuple(key), canon


def parse_action(schema: P4InfoIndex, action: Any, allowed: Iterable[int], where: str,
                 scopes: dict[int, int] | None = None,
                 default: bool = False) -> tuple[int, dict[str, int], Any]:
    """-> (action id, {param name: value}, canonical Action)."""
    info = schema.actions.get(action.action_id)
    if info is None or action.action_id not in allowed:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{where}: action id {action.action_id:#x} is not an action of "
                        "this table")
    if scopes is not None:
        scope = scopes.get(action.action_id, p4info_pb2.ActionRef.TABLE_AND_DEFAULT)
        if not default and scope == p4info_pb2.ActionRef.DEFAULT_ONLY:
            raise P4RTError(code_pb2.PERMISSION_DENIED,
                            f"{where}: {info.name} is a default-only action")
        if default and scope == p4info_pb2.ActionRef.TABLE_ONLY:
            raise P4RTError(code_pb2.PERMISSION_DENIED,
                            f"{where}: {info.name} cannot be the default action")
    by_id = {p.id: p for p in info.params}
    values: dict[int, int] = {}
    for prm in action.params:
        p = by_id.get(prm.param_id)
        if p is None:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{where}: {info.name} has no parameter id {prm.param_id}")
        if prm.param_id in values:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{where}: {info.name} parameter {p.name} given twice")
        values[p.id] = decode_value(prm.value, p.bitwidth, f"{info.name} {p.name}")
    missing = [p.name for p in info.params if p.id not in values]
    if missing:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{where}: {info.name} is missing parameter(s) {', '.join(missing)}")
    canon = p4runtime_pb2.Action(action_id=info.id)
    for p in info.params:
        canon.params.add(param_id=p.id, value=encode_value(values[p.id]))
    return info.id, {p.name: values[p.id] for p in info.params}, canon


def check_entry_common(entry: Any, table: TableInfo) -> None:
    """What no table of this pipeline has: const entries, direct resources, idle timeouts."""
    if entry.is_const:
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "is_const must be false in a write")
    for f in ("counter_data", "meter_config", "meter_counter_data"):
        if entry.HasField(f):
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name} has no direct resources ({f})")
    if entry.idle_timeout_ns:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{table.name} does not support idle timeouts")


def check_priority(table: TableInfo, priority: int) -> None:
    if needs_priority(table) and priority <= 0:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{table.name}: priority must be > 0 (higher wins)")
    if not needs_priority(table) and priority != 0:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{table.name}: priority must be 0 (no ternary field)")
