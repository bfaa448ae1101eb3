"""Writes of the action profile instance_selector: members (a local VNF or a remote
connector) and WCMP groups; a group change is re-sent to every select slot using it."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address
from typing import Any

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.schema import P_SELECTOR, T_SELECT
from connector_p4.p4rt_server.state import ForwardingState, StoredGroup, StoredMember
from connector_p4.p4rt_server.validate import parse_action
from connector_p4.target import Member, select_slot
from dmano.macaddr import parse_mac

log = logging.getLogger("connector_p4.p4rt_server")
UPDATE = p4runtime_pb2.Update


def write_member(fs: ForwardingState, utype: int, m: Any) -> None:
    fs.check_profile(m.action_profile_id)
    if m.member_id == 0:
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "member id 0 is not valid")
    old = fs.members.get(m.member_id)
    if utype == UPDATE.DELETE:
        if old is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"no member {m.member_id}")
        users = sorted(g for g, grp in fs.groups.items()
                       if any(mid == m.member_id for mid, _ in grp.members))
        if users:
            raise P4RTError(code_pb2.FAILED_PRECONDITION,
                            f"member {m.member_id} is in group(s) {users}")
        if any(e.data == ("member", m.member_id) for e in fs.select.values()):
            raise P4RTError(code_pb2.FAILED_PRECONDITION,
                            f"member {m.member_id} is used by a {T_SELECT} entry")
        fs.call(fs.target.delete_member, m.member_id)
        del fs.members[m.member_id]
        return
    size = fs.ids.profile.size
    if utype == UPDATE.INSERT:
        if old is not None:
            raise P4RTError(code_pb2.ALREADY_EXISTS, f"member {m.member_id} exists")
        if len(fs.members) >= size:
            raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                            f"{P_SELECTOR} is full ({size} members)")
    elif old is None:
        raise P4RTError(code_pb2.NOT_FOUND, f"no member {m.member_id}")
    if not m.HasField("action"):
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "a member needs an action")
    allowed = (fs.ids.a_local, fs.ids.a_remote)
    aid, params, canon = parse_action(fs.schema, m.action, allowed, P_SELECTOR)
    if aid == fs.ids.a_local:
        member = Member("local", port=params["port"], dmac=parse_mac(params["dmac"]))
    else:
        member = Member("remote", endpoint=IPv4Address(params["endpoint"]))
    fs.call(fs.target.set_member, m.member_id, member)
    msg = p4runtime_pb2.ActionProfileMember(action_profile_id=m.action_profile_id,
                                            member_id=m.member_id)
    msg.action.CopyFrom(canon)
    fs.members[m.member_id] = StoredMember(msg, member)


def _group_members(fs: ForwardingState, g: Any, limit: int) -> list[tuple[int, int]]:
    """The (member id, weight) pairs of a group write, checked."""
    members: list[tuple[int, int]] = []
    seen: set[int] = set()
    for gm in g.members:
        if gm.member_id in seen:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"member {gm.member_id} is listed twice (use its weight)")
        seen.add(gm.member_id)
        if gm.member_id not in fs.members:
            raise P4RTError(code_pb2.NOT_FOUND, f"no member {gm.member_id}")
        if gm.weight < 0:  # 0: a draining member (PIPELINE.md "Draining members")
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"member {gm.member_id}: weight {gm.weight} (must be >= 0)")
        if gm.WhichOneof("watch_kind") is not None:
            raise P4RTError(code_pb2.UNIMPLEMENTED, "watch ports are not supported")
        members.append((gm.member_id, gm.weight))
    total = sum(w for _, w in members)
    max_group_size = fs.ids.max_group_size
    if total > max_group_size:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"group {g.group_id}: sum of weights {total} > max_group_size "
                        f"{max_group_size}")
    if total > limit:
        raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                        f"group {g.group_id}: sum of weights {total} > max_size {limit}")
    return members


def write_group(fs: ForwardingState, utype: int, g: Any) -> None:
    fs.check_profile(g.action_profile_id)
    if g.group_id == 0:
        raise P4RTError(code_pb2.INVALID_ARGUMENT, "group id 0 is not valid")
    old = fs.groups.get(g.group_id)
    users = fs.group_users(g.group_id)
    if utype == UPDATE.DELETE:
        if old is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"no group {g.group_id}")
        if users:
            raise P4RTError(code_pb2.FAILED_PRECONDITION,
                            f"group {g.group_id} is used by {T_SELECT} entries {users}")
        del fs.groups[g.group_id]
        return
    if utype == UPDATE.INSERT:
        if old is not None:
            raise P4RTError(code_pb2.ALREADY_EXISTS, f"group {g.group_id} exists")
        if len(fs.groups) >= fs.ids.profile.size:
            raise P4RTError(code_pb2.RESOURCE_EXHAUSTED, "too many groups")
    elif old is None:
        raise P4RTError(code_pb2.NOT_FOUND, f"no group {g.group_id}")
    max_group_size = fs.ids.max_group_size
    if g.max_size < 0 or g.max_size > max_group_size:
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"max_size {g.max_size} is not in 0..{max_group_size}")
    # 0 means the largest size; a group restored from the target after a server restart
    # has 0 (the target keeps no max_size), so compare the sizes they stand for
    if old is not None and (g.max_size or max_group_size) != (old.max_size
                                                              or max_group_size):
        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                        f"max_size cannot change ({old.max_size} -> {g.max_size})")
    members = _group_members(fs, g, g.max_size or max_group_size)
    msg = p4runtime_pb2.ActionProfileGroup(action_profile_id=g.action_profile_id,
                                           group_id=g.group_id, max_size=g.max_size)
    for mid, w in members:
        msg.members.add(member_id=mid, weight=w)
    # Re-send every select slot that uses this group; undo on a target error.
    done: list[tuple[int, list[tuple[int, int]] | None]] = []
    try:
        for key in users:
            slot = select_slot(*key)
            done.append((slot, fs.installed.get(slot)))
            fs.install_slot(slot, members)
    except P4RTError:
        for slot, before in reversed(done):
            try:
                fs.install_slot(slot, before or [])
            except P4RTError:
                log.error("could not restore the group of select slot %d", slot)
        raise
    fs.groups[g.group_id] = StoredGroup(msg, members, g.max_size)
