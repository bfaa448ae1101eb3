"""The D-MANO's P4Runtime writer: desired connector state -> P4Runtime writes.

Uses p4runtime-shell's :class:`P4RuntimeClient` (arbitration, Write, Read) and the
P4Info the connector serves (names are resolved to ids at connect time, so the writer
follows the pipeline's P4Info rather than hard-coding ids). One update per Write request:
p4runtime-shell's error parser cannot handle partially failed batches.

At connect time the connector's tables are read back (:meth:`read_state`), so a restarted
D-MANO writes only what differs from what the connector holds.

Draining members (weight 0 in the desired state, see :mod:`dmano.connector_state`) are
written into their groups with weight 0 when the connector accepts that (so its flow
cache keeps their pinned flows); a connector that refuses weight 0 (P4Runtime servers
commonly require >= 1) gets the group without them, once learnt, and the member stays
defined.
"""

from __future__ import annotations

import logging
import threading
from ipaddress import IPv4Address
from typing import Any, assert_never

from dmano.config import ConnectorConf
from dmano.connector_state import (
    ConfigOp,
    DesiredState,
    GroupOp,
    MemberKey,
    MemberOp,
    Op,
    RuleOp,
    SelectOp,
    SffOp,
    TernaryRule,
    apply_ops,
)
from dmano.macaddr import format_mac, mac_to_int
from dmano.p4info import P4InfoIndex, decode_int, encode_value
from dmano.pipeline_names import CLASSIFIER_FIELDS, T_CLASSIFIER, T_CONFIG, T_SELECT, T_SFF
from dmano.pipeline_names import P_SELECTOR as PROFILE

log = logging.getLogger(__name__)

MAX_MEMBER_ID = 1023


class ConnectorUnavailableError(ConnectionError):
    pass


def make_action(info: P4InfoIndex, name: str, **params: int) -> Any:
    """A ``p4.v1.Action`` of action ``name`` with its parameters (values checked against
    their bitwidths)."""
    from p4.v1 import p4runtime_pb2

    a = info.action(name)
    action = p4runtime_pb2.Action(action_id=a.id)
    for pname, value in params.items():
        p = a.param(pname)
        action.params.add(param_id=p.id, value=encode_value(value, p.bitwidth))
    return action


def action_params(info: P4InfoIndex, action: Any) -> tuple[str, dict[str, int]]:
    """(action name, {parameter name: value}) of a ``p4.v1.Action``."""
    a = info.action_by_id(action.action_id)
    return a.name, {a.param_name(p.param_id): decode_int(p.value) for p in action.params}


class P4RuntimeConnector:
    """ConnectorWriter over P4Runtime (see :mod:`dmano.connector_client`)."""

    kind = "p4runtime"

    def __init__(self, conf: ConnectorConf):
        self.conf = conf
        self.client: Any = None
        self.info: P4InfoIndex | None = None
        self.state = DesiredState()
        self.member_ids: dict[MemberKey, int] = {}
        # ids the connector holds that no key maps to: a second member with the same
        # action as another (left by a D-MANO killed between two writes), never reused
        self.reserved_ids: set[int] = set()
        self.writes = 0
        self.write_bytes = 0  # serialized P4Runtime Updates written (control traffic)
        self.reads = 0  # counter reads (read_counter)
        self.zero_weights: bool | None = None  # does the connector take weight-0 members?
        self._lock = threading.Lock()

    # -- connection --------------------------------------------------------------------
    def connect(self) -> None:
        if self.client is not None:
            return
        from p4runtime_sh.p4runtime import P4RuntimeClient

        try:
            client = P4RuntimeClient(self.conf.device_id, self.conf.address,
                                     (0, self.conf.election_id))
        except SystemExit:  # p4runtime-shell exits when arbitration gets no answer
            raise ConnectorUnavailableError(
                f"no P4Runtime server answering at {self.conf.address}") from None
        try:
            self.info = P4InfoIndex(client.get_p4info())
        except Exception as exc:
            client.tear_down()
            raise ConnectorUnavailableError(f"{self.conf.address}: {exc}") from exc
        self.client = client
        log.info("connected to the connector's P4Runtime server at %s", self.conf.address)

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.tear_down()
            finally:
                self.client = None

    def _drop_connection(self) -> None:
        try:
            self.close()
        except Exception:  # the channel is already broken
            self.client = None

    # -- reading -----------------------------------------------------------------------
    def read_state(self) -> DesiredState:
        """What the connector holds now; also learns the member ids in use."""
        with self._lock:
            try:
                self.connect()
                self.state, self.member_ids, self.reserved_ids = self._read()
            except ConnectorUnavailableError:
                raise
            except Exception as exc:
                self._drop_connection()
                raise ConnectorUnavailableError(str(exc)) from exc
            return self.state

    def _read_entities(self, entity: Any) -> list[Any]:
        out = []
        for response in self.client.read_one(entity):
            out.extend(response.entities)
        return out

    def _read(self) -> tuple[DesiredState, dict[MemberKey, int], set[int]]:
        from p4.v1 import p4runtime_pb2

        info = self.info
        assert info is not None
        state = DesiredState()
        members: dict[int, MemberKey] = {}
        ent = p4runtime_pb2.Entity()
        ent.action_profile_member.action_profile_id = info.id("profile", PROFILE)
        for e in self._read_entities(ent):
            m = e.action_profile_member
            name, p = action_params(info, m.action)
            if name == "Ingress.to_local_vnf":
                members[m.member_id] = MemberKey("local", port=p["port"],
                                                 mac=format_mac(p["dmac"]))
            else:
                members[m.member_id] = MemberKey("remote",
                                                 endpoint=str(IPv4Address(p["endpoint"])))
        ent = p4runtime_pb2.Entity()
        ent.action_profile_group.action_profile_id = info.id("profile", PROFILE)
        for e in self._read_entities(ent):
            g = e.action_profile_group
            state.groups[g.group_id] = {members[m.member_id]: m.weight
                                        for m in g.members if m.member_id in members}
        for table in (T_CLASSIFIER, T_SFF, T_SELECT):
            ent = p4runtime_pb2.Entity()
            ent.table_entry.table_id = info.id("table", table)
            for e in self._read_entities(ent):
                self._learn_entry(state, table, e.table_entry)
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = info.id("table", T_CONFIG)
        ent.table_entry.is_default_action = True
        for e in self._read_entities(ent):
            name, p = action_params(info, e.table_entry.action.action)
            if name == "Ingress.set_config":
                state.config = (str(IPv4Address(p["local_ip"])), format_mac(p["router_mac"]),
                                format_mac(p["local_mac"]))
        ids: dict[MemberKey, int] = {}
        for mid in sorted(members):  # the same action twice: the lowest id stands for it
            ids.setdefault(members[mid], mid)
        reserved = set(members) - set(ids.values())
        if reserved:
            log.warning("the connector holds member(s) %s with the same action as others: "
                        "left alone, their ids not reused", sorted(reserved))
        return state, ids, reserved

    def _learn_entry(self, state: DesiredState, table: str, te: Any) -> None:
        info = self.info
        assert info is not None
        tinfo = info.table(table)
        match: dict[str, tuple[int, int]] = {}
        for m in te.match:
            name = tinfo.field_name(m.field_id)
            if m.HasField("exact"):
                match[name] = (decode_int(m.exact.value), -1)
            else:
                match[name] = (decode_int(m.ternary.value), decode_int(m.ternary.mask))
        if table == T_SELECT:
            key = (match["meta.service_id"][0], match.get("meta.from_remote", (0, 0))[0])
            state.selects[key] = te.action.action_profile_group_id
            return
        name, p = action_params(info, te.action.action)
        if table == T_SFF:
            key = (match["meta.spi"][0], match["meta.si"][0])
            if name == "Ingress.to_service":
                state.sff[key] = ("to_service", p["service_id"])
            elif name == "Ingress.end_of_chain":
                state.sff[key] = ("end_of_chain", 0)
            else:
                state.sff[key] = ("drop", 0)
            return
        src, dst, proto, sport, dport = (match.get(n, (0, 0)) for n in CLASSIFIER_FIELDS)
        state.classifier.add(TernaryRule(te.priority, src, dst, proto, sport, dport, p["spi"]))

    # -- writing -----------------------------------------------------------------------
    def write(self, ops: list[Op]) -> None:
        with self._lock:
            try:
                self.connect()
                for op in ops:
                    self._write_one(op)
                    self.state = apply_ops(self.state, [op])
                    self.writes += 1
            except ConnectorUnavailableError:
                raise
            except Exception as exc:
                log.warning("P4Runtime write failed: %s", exc)
                self._drop_connection()
                raise

    def _write_one(self, op: Op) -> None:
        if (isinstance(op, GroupOp) and op.value is not None
                and any(w <= 0 for _, w in op.value) and self.zero_weights is not False):
            try:
                self._send(self._update(op, zero_weights=True))
                self.zero_weights = True
                return
            except Exception as exc:
                refused = " ".join(str(exc).split())
            # the same group without its weight-0 members: if that works, the connector
            # does not take weight 0 (if it fails too, that error is the real one)
            self._send(self._update(op))
            self.zero_weights = False
            log.warning("the connector refuses weight-0 group members (%s); draining "
                        "members are kept defined but left out of their groups", refused)
            return
        update = self._update(op)
        if update is not None:
            self._send(update)

    def _send(self, update: Any) -> None:
        self.write_bytes += update.ByteSize()
        self.client.write_update(update)

    # -- counters ----------------------------------------------------------------------
    def read_counter(self, name: str) -> dict[int, int]:
        """Packet count of every cell of the indirect counter ``name`` (e.g.
        ``Ingress.classified``, ``Ingress.member_pkts``; PIPELINE.md) by index."""
        from p4.v1 import p4runtime_pb2

        with self._lock:
            try:
                self.connect()
                info = self.info
                assert info is not None
                ent = p4runtime_pb2.Entity()
                ent.counter_entry.counter_id = info.id("counter", name)
                self.reads += 1
                return {e.counter_entry.index.index: e.counter_entry.data.packet_count
                        for e in self._read_entities(ent)}
            except ConnectorUnavailableError:
                raise
            except Exception as exc:
                self._drop_connection()
                raise ConnectorUnavailableError(str(exc)) from exc

    def _update(self, op: Op, zero_weights: bool = False) -> Any:
        """The P4Runtime Update that does ``op`` (None: nothing to write on this
        pipeline); group members of weight 0 only with ``zero_weights``."""
        from p4.v1 import p4runtime_pb2

        info = self.info
        assert info is not None
        update = p4runtime_pb2.Update()
        U = p4runtime_pb2.Update  # noqa: N806 (protobuf enum holder)
        ent = update.entity
        match op:
            case ConfigOp():
                local_ip, router_mac, local_mac = op.value
                update.type = U.MODIFY
                te = ent.table_entry
                te.table_id = info.id("table", T_CONFIG)
                te.is_default_action = True
                te.action.action.CopyFrom(make_action(
                    info, "Ingress.set_config", local_ip=int(IPv4Address(local_ip)),
                    router_mac=mac_to_int(router_mac), local_mac=mac_to_int(local_mac)))
            case RuleOp():
                update.type = U.INSERT if op.action == "set" else U.DELETE
                self._classifier_entry(ent.table_entry, op.key, with_action=op.action == "set")
            case SffOp():
                spi, si = op.key
                update.type = self._entry_update_type(op.value is None,
                                                      op.key in self.state.sff)
                te = ent.table_entry
                te.table_id = info.id("table", T_SFF)
                self._exact(te, T_SFF, {"meta.spi": spi, "meta.si": si})
                if op.value is not None:
                    kind, sid = op.value
                    action = (make_action(info, "Ingress.to_service", service_id=sid)
                              if kind == "to_service" else
                              make_action(info, "Ingress.end_of_chain")
                              if kind == "end_of_chain"
                              else make_action(info, "Ingress.drop_packet"))
                    te.action.action.CopyFrom(action)
            case MemberOp():
                key = op.key
                m = ent.action_profile_member
                m.action_profile_id = info.id("profile", PROFILE)
                if op.action == "set":
                    update.type = U.INSERT
                    m.member_id = self._new_member_id(key)
                    m.action.CopyFrom(
                        make_action(info, "Ingress.to_local_vnf", port=key.port,
                                    dmac=mac_to_int(key.mac))
                        if key.kind == "local" else
                        make_action(info, "Ingress.to_remote",
                                    endpoint=int(IPv4Address(key.endpoint))))
                else:
                    update.type = U.DELETE
                    m.member_id = self.member_ids.pop(key)
            case GroupOp():
                g = ent.action_profile_group
                g.action_profile_id = info.id("profile", PROFILE)
                g.group_id = op.key
                if op.value is None:
                    update.type = U.DELETE
                else:
                    update.type = U.MODIFY if op.key in self.state.groups else U.INSERT
                    g.max_size = 64
                    for member, weight in op.value:
                        if weight > 0 or zero_weights:
                            g.members.add(member_id=self.member_ids[member], weight=weight)
            case SelectOp():
                sid, from_remote = op.key
                if not info.table(T_SELECT).has_field("meta.from_remote"):
                    if from_remote:
                        return None  # a pipeline without the key: one entry per service
                    key_fields = {"meta.service_id": sid}
                else:
                    key_fields = {"meta.service_id": sid, "meta.from_remote": from_remote}
                update.type = self._entry_update_type(op.value is None,
                                                      op.key in self.state.selects)
                te = ent.table_entry
                te.table_id = info.id("table", T_SELECT)
                self._exact(te, T_SELECT, key_fields)
                if op.value is not None:
                    te.action.action_profile_group_id = op.value
            case _:
                assert_never(op)
        return update

    @staticmethod
    def _entry_update_type(delete: bool, exists: bool) -> int:
        from p4.v1 import p4runtime_pb2

        U = p4runtime_pb2.Update  # noqa: N806 (protobuf enum holder)
        return U.DELETE if delete else U.MODIFY if exists else U.INSERT

    def _classifier_entry(self, te: Any, rule: TernaryRule, with_action: bool) -> None:
        info = self.info
        assert info is not None
        table = info.table(T_CLASSIFIER)
        te.table_id = table.id
        te.priority = rule.priority
        values = (rule.src, rule.dst, rule.proto, rule.sport, rule.dport)
        for name, (value, mask) in zip(CLASSIFIER_FIELDS, values, strict=True):
            if mask == 0:
                continue  # don't-care fields are omitted (P4Runtime spec 9.1.1)
            f = table.field(name)
            m = te.match.add(field_id=f.id)
            m.ternary.value = encode_value(value & mask, f.bitwidth)
            m.ternary.mask = encode_value(mask, f.bitwidth)
        if with_action:
            te.action.action.CopyFrom(make_action(info, "Ingress.set_chain", spi=rule.spi))

    def _exact(self, te: Any, table: str, values: dict[str, int]) -> None:
        assert self.info is not None
        tinfo = self.info.table(table)
        for name, value in values.items():
            f = tinfo.field(name)
            te.match.add(field_id=f.id).exact.value = encode_value(value, f.bitwidth)

    def _new_member_id(self, key: MemberKey) -> int:
        if key in self.member_ids:
            return self.member_ids[key]
        used = set(self.member_ids.values()) | self.reserved_ids
        for mid in range(1, MAX_MEMBER_ID + 1):
            if mid not in used:
                self.member_ids[key] = mid
                return mid
        raise RuntimeError("no free selector member id")
