"""The D-MANO's P4Runtime writer: desired connector state -> P4Runtime writes.

Uses p4runtime-shell's :class:`P4RuntimeClient` (arbitration, Write, Read) and the
P4Info the connector serves (names are resolved to ids at connect time, so the writer
follows the pipeline's P4Info rather than hard-coding ids). One update per Write request:
p4runtime-shell's error parser cannot handle partially failed batches.

At connect time the connector's tables are read back (:meth:`read_state`), so a restarted
D-MANO writes only what differs from what the connector holds.
"""

from __future__ import annotations

import logging
import threading
from ipaddress import IPv4Address
from typing import Any

from dmano.config import ConnectorConf
from dmano.connector_state import DesiredState, MemberKey, Op, TernaryRule, apply_ops

log = logging.getLogger(__name__)

MAX_MEMBER_ID = 1023
T_CLASSIFIER = "Ingress.classifier"
T_SFF = "Ingress.sff_next"
T_SELECT = "Ingress.instance_select"
T_CONFIG = "Ingress.sff_config"
PROFILE = "Ingress.instance_selector"


class ConnectorUnavailableError(ConnectionError):
    pass


def _bytes(value: int, bitwidth: int) -> bytes:
    if value < 0 or value >= 1 << bitwidth:
        raise ValueError(f"{value} does not fit in {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def _mac_text(value: int) -> str:
    raw = value.to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


class P4Info:
    """Name -> id and bitwidth lookups over a P4Info message."""

    def __init__(self, p4info: Any):
        self.tables: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}
        self.table_names: dict[int, str] = {}
        for t in p4info.tables:
            fields = {m.name: (m.id, m.bitwidth) for m in t.match_fields}
            self.tables[t.preamble.name] = (t.preamble.id, fields)
            self.table_names[t.preamble.id] = t.preamble.name
        self.actions: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}
        self.action_names: dict[int, str] = {}
        for a in p4info.actions:
            params = {p.name: (p.id, p.bitwidth) for p in a.params}
            self.actions[a.preamble.name] = (a.preamble.id, params)
            self.action_names[a.preamble.id] = a.preamble.name
        self.profiles = {p.preamble.name: p.preamble.id for p in p4info.action_profiles}

    def table_id(self, name: str) -> int:
        return self.tables[name][0]

    def field(self, table: str, name: str) -> tuple[int, int]:
        return self.tables[table][1][name]

    def has_field(self, table: str, name: str) -> bool:
        return name in self.tables[table][1]

    def action(self, name: str, **params: int) -> Any:
        from p4.v1 import p4runtime_pb2

        aid, pinfo = self.actions[name]
        action = p4runtime_pb2.Action(action_id=aid)
        for pname, value in params.items():
            pid, width = pinfo[pname]
            action.params.add(param_id=pid, value=_bytes(value, width))
        return action

    def params(self, action: Any) -> tuple[str, dict[str, int]]:
        name = self.action_names[action.action_id]
        ids = {pid: pname for pname, (pid, _) in self.actions[name][1].items()}
        return name, {ids[p.param_id]: _int(p.value) for p in action.params}


class P4RuntimeConnector:
    """ConnectorWriter over P4Runtime (see :mod:`dmano.connector_client`)."""

    kind = "p4runtime"

    def __init__(self, conf: ConnectorConf):
        self.conf = conf
        self.client: Any = None
        self.info: P4Info | None = None
        self.state = DesiredState()
        self.member_ids: dict[MemberKey, int] = {}
        self.writes = 0
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
            self.info = P4Info(client.get_p4info())
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
                self.state, self.member_ids = self._read()
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

    def _read(self) -> tuple[DesiredState, dict[MemberKey, int]]:
        from p4.v1 import p4runtime_pb2

        info = self.info
        assert info is not None
        state = DesiredState()
        members: dict[int, MemberKey] = {}
        ent = p4runtime_pb2.Entity()
        ent.action_profile_member.action_profile_id = info.profiles[PROFILE]
        for e in self._read_entities(ent):
            m = e.action_profile_member
            name, p = info.params(m.action)
            if name == "Ingress.to_local_vnf":
                members[m.member_id] = MemberKey("local", port=p["port"],
                                                 mac=_mac_text(p["dmac"]))
            else:
                members[m.member_id] = MemberKey("remote",
                                                 endpoint=str(IPv4Address(p["endpoint"])))
        ent = p4runtime_pb2.Entity()
        ent.action_profile_group.action_profile_id = info.profiles[PROFILE]
        for e in self._read_entities(ent):
            g = e.action_profile_group
            state.groups[g.group_id] = {members[m.member_id]: m.weight
                                        for m in g.members if m.member_id in members}
        for table in (T_CLASSIFIER, T_SFF, T_SELECT):
            ent = p4runtime_pb2.Entity()
            ent.table_entry.table_id = info.table_id(table)
            for e in self._read_entities(ent):
                self._learn_entry(state, table, e.table_entry)
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = info.table_id(T_CONFIG)
        ent.table_entry.is_default_action = True
        for e in self._read_entities(ent):
            name, p = info.params(e.table_entry.action.action)
            if name == "Ingress.set_config":
                state.config = (str(IPv4Address(p["local_ip"])), _mac_text(p["router_mac"]),
                                _mac_text(p["local_mac"]))
        return state, {k: i for i, k in members.items()}

    def _learn_entry(self, state: DesiredState, table: str, te: Any) -> None:
        info = self.info
        assert info is not None
        fields = {fid: name for name, (fid, _) in info.tables[table][1].items()}
        match: dict[str, tuple[int, int]] = {}
        for m in te.match:
            name = fields[m.field_id]
            if m.HasField("exact"):
                match[name] = (_int(m.exact.value), -1)
            else:
                match[name] = (_int(m.ternary.value), _int(m.ternary.mask))
        if table == T_SELECT:
            key = (match["meta.service_id"][0], match.get("meta.from_remote", (0, 0))[0])
            state.selects[key] = te.action.action_profile_group_id
            return
        name, p = info.params(te.action.action)
        if table == T_SFF:
            key = (match["meta.spi"][0], match["meta.si"][0])
            if name == "Ingress.to_service":
                state.sff[key] = ("to_service", p["service_id"])
            elif name == "Ingress.end_of_chain":
                state.sff[key] = ("end_of_chain", 0)
            else:
                state.sff[key] = ("drop", 0)
            return
        absent = (0, 0)
        state.classifier.add(TernaryRule(
            te.priority, match.get("hdr.ipv4.srcAddr", absent),
            match.get("hdr.ipv4.dstAddr", absent), match.get("hdr.ipv4.protocol", absent),
            match.get("meta.l4_src", absent), match.get("meta.l4_dst", absent), p["spi"]))

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
        from p4.v1 import p4runtime_pb2

        info = self.info
        assert info is not None
        update = p4runtime_pb2.Update()
        U = p4runtime_pb2.Update  # noqa: N806 (protobuf enum holder)
        ent = update.entity
        if op.kind == "config":
            local_ip, router_mac, local_mac = op.value  # type: ignore[misc]
            update.type = U.MODIFY
            te = ent.table_entry
            te.table_id = info.table_id(T_CONFIG)
            te.is_default_action = True
            te.action.action.CopyFrom(info.action(
                "Ingress.set_config", local_ip=int(IPv4Address(local_ip)),
                router_mac=_mac(router_mac), local_mac=_mac(local_mac)))
        elif op.kind == "rule":
            rule: TernaryRule = op.key  # type: ignore[assignment]
            update.type = U.INSERT if op.action == "set" else U.DELETE
            te = ent.table_entry
            te.table_id = info.table_id(T_CLASSIFIER)
            te.priority = rule.priority
            for name, (value, mask) in (("hdr.ipv4.srcAddr", rule.src),
                                        ("hdr.ipv4.dstAddr", rule.dst),
                                        ("hdr.ipv4.protocol", rule.proto),
                                        ("meta.l4_src", rule.sport),
                                        ("meta.l4_dst", rule.dport)):
                if mask == 0:
                    continue  # don't-care fields are omitted (P4Runtime spec 9.1.1)
                fid, width = info.field(T_CLASSIFIER, name)
                m = te.match.add(field_id=fid)
                m.ternary.value = _bytes(value & mask, width)
                m.ternary.mask = _bytes(mask, width)
            if op.action == "set":
                te.action.action.CopyFrom(info.action("Ingress.set_chain", spi=rule.spi))
        elif op.kind == "sff":
            spi, si = op.key  # type: ignore[misc]
            exists = (spi, si) in self.state.sff
            update.type = (U.DELETE if op.action == "delete" else
                           U.MODIFY if exists else U.INSERT)
            te = ent.table_entry
            te.table_id = info.table_id(T_SFF)
            self._exact(te, T_SFF, {"meta.spi": spi, "meta.si": si})
            if op.action == "set":
                kind, sid = op.value  # type: ignore[misc]
                action = (info.action("Ingress.to_service", service_id=sid)
                          if kind == "to_service" else
                          info.action("Ingress.end_of_chain") if kind == "end_of_chain"
                          else info.action("Ingress.drop_packet"))
                te.action.action.CopyFrom(action)
        elif op.kind == "member":
            key: MemberKey = op.key  # type: ignore[assignment]
            m = ent.action_profile_member
            m.action_profile_id = info.profiles[PROFILE]
            if op.action == "set":
                update.type = U.INSERT
                m.member_id = self._new_member_id(key)
                m.action.CopyFrom(
                    info.action("Ingress.to_local_vnf", port=key.port, dmac=_mac(key.mac))
                    if key.kind == "local" else
                    info.action("Ingress.to_remote", endpoint=int(IPv4Address(key.endpoint))))
            else:
                update.type = U.DELETE
                m.member_id = self.member_ids.pop(key)
        elif op.kind == "group":
            gid: int = op.key  # type: ignore[assignment]
            g = ent.action_profile_group
            g.action_profile_id = info.profiles[PROFILE]
            g.group_id = gid
            if op.action == "set":
                update.type = U.MODIFY if gid in self.state.groups else U.INSERT
                g.max_size = 64
                for member, weight in op.value:  # type: ignore[union-attr]
                    g.members.add(member_id=self.member_ids[member], weight=weight)
            else:
                update.type = U.DELETE
        elif op.kind == "select":
            sid, from_remote = op.key  # type: ignore[misc]
            if not info.has_field(T_SELECT, "meta.from_remote"):
                if from_remote:
                    return  # a pipeline without the key: one entry per service
                key_fields = {"meta.service_id": sid}
            else:
                key_fields = {"meta.service_id": sid, "meta.from_remote": from_remote}
            exists = (sid, from_remote) in self.state.selects
            update.type = (U.DELETE if op.action == "delete" else
                           U.MODIFY if exists else U.INSERT)
            te = ent.table_entry
            te.table_id = info.table_id(T_SELECT)
            self._exact(te, T_SELECT, key_fields)
            if op.action == "set":
                te.action.action_profile_group_id = op.value  # type: ignore[assignment]
        else:
            raise ValueError(f"unknown op {op}")
        self.client.write_update(update)

    def _exact(self, te: Any, table: str, values: dict[str, int]) -> None:
        for name, value in values.items():
            fid, width = self.info.field(table, name)  # type: ignore[union-attr]
            te.match.add(field_id=fid).exact.value = _bytes(value, width)

    def _new_member_id(self, key: MemberKey) -> int:
        if key in self.member_ids:
            return self.member_ids[key]
        used = set(self.member_ids.values())
        for mid in range(1, MAX_MEMBER_ID + 1):
            if mid not in used:
                self.member_ids[key] = mid
                return mid
        raise RuntimeError("no free selector member id")
