"""Restart takeover: rebuild the P4Runtime view from what a running target holds (a
restarted server over pinned eBPF maps), inventing group ids as the package doc says."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.state import ForwardingState, StoredEntry, StoredGroup, StoredMember
from connector_p4.target import (
    ClassifierRule,
    ConnectorConfig,
    Member,
    SffAction,
    slot_key,
)
from dmano.macaddr import mac_to_int
from dmano.p4info import encode_value

log = logging.getLogger("connector_p4.p4rt_server")


class TargetState(Protocol):
    """What a running target holds (``ebpf_target.PipelineState``); groups by select slot."""

    @property
    def config(self) -> ConnectorConfig | None: ...

    @property
    def rules(self) -> Sequence[ClassifierRule]: ...

    @property
    def sff(self) -> Mapping[tuple[int, int], SffAction]: ...

    @property
    def members(self) -> Mapping[int, Member]: ...

    @property
    def groups(self) -> Mapping[int, Sequence[tuple[int, int]]]: ...


def restore_view(fs: ForwardingState, st: TargetState) -> None:
    """Fill ``fs`` from ``st``: slot S -> group S (512 for S = 0), slot 256 + S -> that
    group if it holds the same members as slot S, else group 256 + S; each slot gets its
    instance_select entry (S, from_remote). Nothing is written to the target."""
    ids = fs.ids
    if st.config is not None:
        fs.config = st.config
        fs.config_entry = fs.make_config_entry(st.config)
    tc = ids.t_classifier
    for rule in st.rules:
        key = tuple((t.value, t.mask) for t in (rule.src, rule.dst, rule.proto,
                                                rule.l4_src, rule.l4_dst))
        te = p4runtime_pb2.TableEntry(table_id=tc.id, priority=rule.priority)
        for f, (value, mask) in zip(tc.fields, key, strict=True):
            if mask:
                te.match.add(field_id=f.id, ternary=p4runtime_pb2.FieldMatch.Ternary(
                    value=encode_value(value), mask=encode_value(mask)))
        fs.set_direct_action(te, ids.a_set_chain, rule.spi)
        fs.classifier[(rule.priority, key)] = StoredEntry(te, rule, fs.next_seq())
    for (spi, si), act in sorted(st.sff.items()):
        te = fs.exact_entry(ids.t_sff, spi, si)
        if act.kind == "to_service":
            fs.set_direct_action(te, ids.a_to_service, act.service_id)
        else:
            fs.set_direct_action(te, ids.a_eoc if act.kind == "end_of_chain" else ids.a_drop)
        fs.sff[(spi, si)] = StoredEntry(te, act, fs.next_seq())
    for mid, m in sorted(st.members.items()):
        if mid == 0:
            log.warning("restore: member id 0 cannot be shown in P4Runtime, skipped")
            continue
        msg = p4runtime_pb2.ActionProfileMember(action_profile_id=ids.profile_id,
                                                member_id=mid)
        if m.kind == "local":
            msg.action.CopyFrom(fs.make_action(ids.a_local, m.port, mac_to_int(m.dmac)))
        else:
            msg.action.CopyFrom(fs.make_action(ids.a_remote, int(m.endpoint or 0)))
        fs.members[mid] = StoredMember(msg, m)
    for slot, slot_members in sorted(st.groups.items()):  # slots S before 256 + S
        sid, from_remote = slot_key(slot)
        members = list(slot_members)
        shared = sid or 512  # P4Runtime group ids start at 1
        if from_remote and shared in fs.groups and list(st.groups.get(sid, ())) == members:
            gid = shared  # one group for both entries of the service
        else:
            gid = slot or 512
            gmsg = p4runtime_pb2.ActionProfileGroup(action_profile_id=ids.profile_id,
                                                    group_id=gid)
            for m_id, w in members:
                gmsg.members.add(member_id=m_id, weight=w)
            fs.groups[gid] = StoredGroup(gmsg, members, 0)
        te = fs.exact_entry(ids.t_select, sid, from_remote)
        te.action.action_profile_group_id = gid
        fs.select[(sid, from_remote)] = StoredEntry(te, ("group", gid), fs.next_seq())
        fs.installed[slot] = list(members)
    log.info("restored %d rules, %d sff entries, %d members, %d groups from the target",
             len(fs.classifier), len(fs.sff), len(fs.members), len(fs.groups))
