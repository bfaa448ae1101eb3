"""Writes of table entries: classifier, sff_next, instance_select and the default entry of
sff_config, each validated, applied to the target, then stored."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, TypeVar

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.schema import P_SELECTOR
from connector_p4.p4rt_server.state import ForwardingState, SelectRef, StoredEntry
from connector_p4.p4rt_server.validate import (
    MatchKey,
    check_entry_common,
    check_priority,
    exact_values,
    lookup_table,
    parse_action,
    parse_match,
)
from connector_p4.target import (
    ClassifierRule,
    ConnectorConfig,
    SffAction,
    Ternary,
    select_slot,
)
from dmano.macaddr import parse_mac
from dmano.p4info import TableInfo

K = TypeVar("K")
D = TypeVar("D")
UPDATE = p4runtime_pb2.Update


def write_table_entry(fs: ForwardingState, utype: int, entry: Any) -> None:
    table = lookup_table(fs.schema, entry.table_id)
    check_entry_common(entry, table)
    ids = fs.ids
    if table.id == ids.t_l2.id:
        raise P4RTError(code_pb2.UNIMPLEMENTED,
                        f"{table.name} is BMv2-only; the kernel forwards non-chain traffic "
                        "on this target")
    if entry.is_default_action:
        _write_default(fs, utype, table, entry)
        return
    if not table.fields:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{table.name} is keyless: only its default entry can be modified")
    check_priority(table, entry.priority)
    key, canon_match = parse_match(table, entry)
    if table.id == ids.t_classifier.id:
        _write_classifier(fs, utype, table, entry, key, canon_match)
    elif table.id == ids.t_sff.id:
        _write_sff(fs, utype, table, entry, key, canon_match)
    elif table.id == ids.t_select.id:
        _write_select(fs, utype, table, entry, key, canon_match)
    else:  # pragma: no cover - every table of the P4Info is handled above
        raise P4RTError(code_pb2.UNIMPLEMENTED, f"{table.name} cannot be written")


def _canon_entry(table: TableInfo, entry: Any, canon_match: list[Any], action: Any) -> Any:
    te = p4runtime_pb2.TableEntry(table_id=table.id, priority=entry.priority,
                                  metadata=entry.metadata,
                                  controller_metadata=entry.controller_metadata)
    te.match.extend(canon_match)
    te.action.CopyFrom(action)
    return te


def _direct_action(fs: ForwardingState, table: TableInfo,
                   entry: Any) -> tuple[int, dict[str, int], Any]:
    kind = entry.action.WhichOneof("type")
    if kind != "action":
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"{table.name} is a direct table: the entry needs an action, "
                        f"not {kind}")
    aid, params, canon = parse_action(fs.schema, entry.action.action, table.scopes,
                                      table.name, table.scopes)
    ta = p4runtime_pb2.TableAction()
    ta.action.CopyFrom(canon)
    return aid, params, ta


def _lookup_for_write(utype: int, store: dict[K, StoredEntry[D]], key: K, table: TableInfo,
                      entry: Any) -> StoredEntry[D] | None:
    """The stored entry a write replaces (None for an INSERT, which must not have one)."""
    old = store.get(key)
    if utype == UPDATE.INSERT:
        if old is not None:
            raise P4RTError(code_pb2.ALREADY_EXISTS, f"{table.name}: entry already exists")
        if len(store) >= table.size:
            raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                            f"{table.name} is full ({table.size} entries)")
        if not entry.HasField("action"):
            raise P4RTError(code_pb2.INVALID_ARGUMENT, f"{table.name}: INSERT needs an action")
    elif old is None:
        raise P4RTError(code_pb2.NOT_FOUND, f"{table.name}: no such entry")
    return old


def _keep_action(old: StoredEntry[D] | None, entry: Any) -> bool:
    """A MODIFY without an action changes the metadata only."""
    if entry.HasField("action") or old is None:
        return False
    old.msg.metadata = entry.metadata
    old.msg.controller_metadata = entry.controller_metadata
    return True


def _sorted_rules(entries: dict[Any, StoredEntry[ClassifierRule]]) -> list[ClassifierRule]:
    ordered = sorted(entries.values(), key=lambda e: (-e.msg.priority, e.seq))
    return [e.data for e in ordered]


def _write_classifier(fs: ForwardingState, utype: int, table: TableInfo, entry: Any,
                      key: MatchKey, canon_match: list[Any]) -> None:
    store_key = (int(entry.priority), key)
    old = _lookup_for_write(utype, fs.classifier, store_key, table, entry)
    new = dict(fs.classifier)
    if utype == UPDATE.DELETE:
        del new[store_key]
    else:
        if entry.HasField("action") or old is None:
            _, params, ta = _direct_action(fs, table, entry)
            spi = params["spi"]
        else:  # MODIFY without an action keeps the action
            ta = old.msg.action
            spi = old.data.spi
        src, dst, proto, l4s, l4d = (Ternary(*v) for v in key)
        rule = ClassifierRule(priority=entry.priority, src=src, dst=dst, proto=proto,
                              l4_src=l4s, l4_dst=l4d, spi=spi)
        seq = old.seq if old is not None else fs.next_seq()
        new[store_key] = StoredEntry(_canon_entry(table, entry, canon_match, ta), rule, seq)
    fs.call(fs.target.set_classifier, _sorted_rules(new))
    fs.classifier = new


def _write_sff(fs: ForwardingState, utype: int, table: TableInfo, entry: Any,
               key: MatchKey, canon_match: list[Any]) -> None:
    spi, si = exact_values(key)
    old = _lookup_for_write(utype, fs.sff, (spi, si), table, entry)
    if utype == UPDATE.DELETE:
        fs.call(fs.target.delete_sff, spi, si)
        del fs.sff[(spi, si)]
        return
    if _keep_action(old, entry):
        return
    aid, params, ta = _direct_action(fs, table, entry)
    if aid == fs.ids.a_to_service:
        action = SffAction("to_service", params["service_id"])
    elif aid == fs.ids.a_eoc:
        action = SffAction("end_of_chain")
    else:
        action = SffAction("drop")
    fs.call(fs.target.set_sff, spi, si, action)
    seq = old.seq if old is not None else fs.next_seq()
    fs.sff[(spi, si)] = StoredEntry(_canon_entry(table, entry, canon_match, ta), action, seq)


def _select_ref(fs: ForwardingState, table: TableInfo, entry: Any) -> tuple[SelectRef, Any]:
    """What an instance_select entry points at, and its canonical TableAction."""
    kind = entry.action.WhichOneof("type")
    ta = p4runtime_pb2.TableAction()
    if kind == "action_profile_group_id":
        gid = entry.action.action_profile_group_id
        if gid == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "group id 0 is not valid")
        if gid not in fs.groups:
            raise P4RTError(code_pb2.NOT_FOUND, f"{P_SELECTOR}: no group {gid}")
        ta.action_profile_group_id = gid
        return ("group", gid), ta
    if kind == "action_profile_member_id":
        mid = entry.action.action_profile_member_id
        if mid == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "member id 0 is not valid")
        if mid not in fs.members:
            raise P4RTError(code_pb2.NOT_FOUND, f"{P_SELECTOR}: no member {mid}")
        ta.action_profile_member_id = mid
        return ("member", mid), ta
    if kind == "action_profile_action_set":
        raise P4RTError(code_pb2.UNIMPLEMENTED,
                        "one-shot action selector programming is not supported")
    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                    f"{table.name} is indirect: use a group or member id, not {kind}")


def _write_select(fs: ForwardingState, utype: int, table: TableInfo, entry: Any,
                  key: MatchKey, canon_match: list[Any]) -> None:
    sid, from_remote = exact_values(key)
    slot = select_slot(sid, from_remote)  # both fit their bitwidths
    old = _lookup_for_write(utype, fs.select, (sid, from_remote), table, entry)
    if utype == UPDATE.DELETE:
        if slot in fs.installed:
            fs.call(fs.target.delete_group, slot)
            del fs.installed[slot]
        del fs.select[(sid, from_remote)]
        return
    if _keep_action(old, entry):
        return
    ref, ta = _select_ref(fs, table, entry)
    fs.install_slot(slot, fs.service_members(ref))
    seq = old.seq if old is not None else fs.next_seq()
    fs.select[(sid, from_remote)] = StoredEntry(_canon_entry(table, entry, canon_match, ta),
                                                ref, seq)


def _write_default(fs: ForwardingState, utype: int, table: TableInfo, entry: Any) -> None:
    if utype != UPDATE.MODIFY:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        "the default entry can only be modified (not inserted or deleted)")
    if len(entry.match) or entry.priority:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        "a default entry has no match and priority 0")
    if table.const_default_action_id:
        raise P4RTError(code_pb2.PERMISSION_DENIED,
                        f"{table.name} has a constant default action")
    if table.id != fs.ids.t_config.id:  # pragma: no cover - only sff_config has one
        raise P4RTError(code_pb2.UNIMPLEMENTED, f"{table.name}: default entry not supported")
    if not entry.HasField("action"):
        cfg = fs.initial_config
    else:
        kind = entry.action.WhichOneof("type")
        if kind != "action":
            raise P4RTError(code_pb2.INVALID_ARGUMENT, f"{table.name} needs an action")
        _, params, _ = parse_action(fs.schema, entry.action.action, table.scopes, table.name,
                                    table.scopes, default=True)
        cfg = ConnectorConfig(IPv4Address(params["local_ip"]), parse_mac(params["router_mac"]),
                              parse_mac(params["local_mac"]))
    fs.call(fs.target.set_config, cfg)
    fs.config = cfg
    te = fs.make_config_entry(cfg)
    te.metadata = entry.metadata
    te.controller_metadata = entry.controller_metadata
    fs.config_entry = te
