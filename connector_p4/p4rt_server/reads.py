"""Read: table entries (with the P4Runtime wildcards and filters), action-profile members
and groups, and counter entries from the target's counters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.state import (
    ForwardingState,
    StoredEntry,
    StoredGroup,
    StoredMember,
)
from connector_p4.p4rt_server.validate import lookup_table, parse_match
from connector_p4.target import DROP_REASONS, Counter
from dmano.p4info import TableInfo


def read_entity(fs: ForwardingState, entity: Any) -> list[Any]:
    """The entities a read request asks for (one request entity, wildcards expanded)."""
    which = entity.WhichOneof("entity")
    if which == "table_entry":
        return [p4runtime_pb2.Entity(table_entry=t)
                for t in _table_entries(fs, entity.table_entry)]
    if which == "action_profile_member":
        return [p4runtime_pb2.Entity(action_profile_member=m)
                for m in _profile_entries(fs, entity.action_profile_member.action_profile_id,
                                          entity.action_profile_member.member_id, fs.members)]
    if which == "action_profile_group":
        return [p4runtime_pb2.Entity(action_profile_group=g)
                for g in _profile_entries(fs, entity.action_profile_group.action_profile_id,
                                          entity.action_profile_group.group_id, fs.groups)]
    if which == "counter_entry":
        return [p4runtime_pb2.Entity(counter_entry=c)
                for c in _counters(fs, entity.counter_entry)]
    if which is None:
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "read request has no entity")
    raise P4RTError(code_pb2.UNIMPLEMENTED, f"reading {which} is not supported")


def _default_entry(fs: ForwardingState, table: TableInfo) -> Any:
    if table.id == fs.ids.t_config.id:
        return fs.config_entry
    te = p4runtime_pb2.TableEntry(table_id=table.id, is_default_action=True)
    te.action.action.action_id = table.const_default_action_id or fs.ids.a_noaction
    return te


def _entries_of(fs: ForwardingState, table: TableInfo) -> list[StoredEntry[Any]]:
    ids = fs.ids
    store: Mapping[Any, StoredEntry[Any]] = {}
    if table.id == ids.t_classifier.id:
        store = fs.classifier
    elif table.id == ids.t_sff.id:
        store = fs.sff
    elif table.id == ids.t_select.id:
        store = fs.select
    return sorted(store.values(), key=lambda e: e.seq)


def _table_entries(fs: ForwardingState, q: Any) -> list[Any]:
    if q.table_id == 0:
        if len(q.match) or q.is_default_action:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            "a read of all tables (table_id 0) takes no other filter")
        return [e.msg for t in fs.schema.tables.values() for e in _entries_of(fs, t)]
    table = lookup_table(fs.schema, q.table_id)
    if q.is_default_action:
        return [_default_entry(fs, table)]
    entries = [e.msg for e in _entries_of(fs, table)]
    if len(q.match):
        _, canon = parse_match(table, q)
        entries = [e for e in entries if list(e.match) == canon]
    if q.priority:
        entries = [e for e in entries if e.priority == q.priority]
    if q.HasField("action") and q.action.WhichOneof("type") == "action":
        aid = q.action.action.action_id
        entries = [e for e in entries if e.action.action.action_id == aid]
    if q.metadata:
        entries = [e for e in entries if e.metadata == q.metadata]
    if q.controller_metadata:
        entries = [e for e in entries if e.controller_metadata == q.controller_metadata]
    return entries


def _profile_entries(fs: ForwardingState, profile_id: int, ident: int,
                     store: Mapping[int, StoredMember | StoredGroup]) -> list[Any]:
    """Members or groups: one by id (none if absent), or all in id order."""
    if profile_id:
        fs.check_profile(profile_id)
    if ident:
        item = store.get(ident)
        return [item.msg] if item else []
    return [store[k].msg for k in sorted(store)]


def _counter_cells(fs: ForwardingState, counter_id: int) -> list[Counter]:
    size = fs.schema.counters[counter_id].size
    ids = fs.ids
    zero = Counter()
    if counter_id == ids.c_members:
        by_member = fs.call(fs.target.member_counters)
        return [by_member.get(i, zero) for i in range(size)]
    if counter_id == ids.c_drops:
        by_reason = fs.call(fs.target.drop_counters)
        return [by_reason.get(DROP_REASONS[i], zero) if i < len(DROP_REASONS) else zero
                for i in range(size)]
    misc = fs.call(fs.target.misc_counters)
    if counter_id == ids.c_classified:
        return [misc.get("classified", zero)] + [zero] * (size - 1)
    if counter_id == ids.c_eoc:
        return [misc.get("end_of_chain", zero)] + [zero] * (size - 1)
    return [zero] * size  # pragma: no cover - a counter of another P4Info


def _counters(fs: ForwardingState, q: Any) -> list[Any]:
    if q.counter_id == 0:
        ids = list(fs.schema.counters)
    elif q.counter_id in fs.schema.counters:
        ids = [q.counter_id]
    else:
        raise P4RTError(code_pb2.NOT_FOUND, f"unknown counter id {q.counter_id:#x}")
    res = []
    for cid in ids:
        cells = _counter_cells(fs, cid)
        if q.counter_id and q.HasField("index"):
            i = q.index.index
            if i < 0:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, f"negative index {i}")
            if i >= len(cells):
                raise P4RTError(code_pb2.OUT_OF_RANGE,
                                f"index {i} >= size {len(cells)} of the counter")
            indices = [i]
        else:
            indices = list(range(len(cells)))
        for i in indices:
            ce = p4runtime_pb2.CounterEntry(counter_id=cid)
            ce.index.index = i
            ce.data.packet_count = cells[i].packets
            ce.data.byte_count = cells[i].bytes
            res.append(ce)
    return res
