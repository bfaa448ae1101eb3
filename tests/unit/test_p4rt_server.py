"""The P4Runtime server against p4runtime-shell's client, with a recording fake target.

Every server here listens on a unix socket in the test's tmp_path (one test also on
127.0.0.1 with a kernel-chosen port) and is stopped by its fixture.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4runtime_sh.p4runtime import P4RuntimeClient, P4RuntimeWriteException

from connector_p4.p4rt_server import P4RuntimeServer, Schema, load_p4info
from connector_p4.target import (
    DROP_REASONS,
    ClassifierRule,
    ConnectorConfig,
    Counter,
    Member,
    SffAction,
    TargetError,
    Ternary,
)

ROOT = Path(__file__).resolve().parents[2]
P4INFO = load_p4info()
S = Schema(P4INFO)
OK = code_pb2.OK
UPD = p4runtime_pb2.Update


class FakeTarget:
    """Records every Target call; ``fail[name] = TargetError(...)`` fails the next one."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []
        self.fail: dict[str, TargetError] = {}
        self.config = None
        self.rules: list[ClassifierRule] = []
        self.sff: dict[tuple[int, int], SffAction] = {}
        self.members: dict[int, Member] = {}
        self.groups: dict[int, list[tuple[int, int]]] = {}  # select slot -> members
        self.member_ctr: dict[int, Counter] = {}
        self.drop_ctr: dict[str, Counter] = {}
        self.misc_ctr: dict[str, Counter] = {}
        self.closed = False

    def _rec(self, name, *args):
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail.pop(name)

    def of(self, name):
        return [args for n, args in self.calls if n == name]

    def set_config(self, cfg):
        self._rec("set_config", cfg)
        self.config = cfg

    def set_classifier(self, rules):
        self._rec("set_classifier", rules)
        self.rules = list(rules)

    def set_sff(self, spi, si, action):
        self._rec("set_sff", spi, si, action)
        self.sff[(spi, si)] = action

    def delete_sff(self, spi, si):
        self._rec("delete_sff", spi, si)
        del self.sff[(spi, si)]

    def set_member(self, member_id, member):
        self._rec("set_member", member_id, member)
        self.members[member_id] = member

    def delete_member(self, member_id):
        self._rec("delete_member", member_id)
        del self.members[member_id]

    def set_group(self, slot, members):
        self._rec("set_group", slot, members)
        self.groups[slot] = list(members)

    def delete_group(self, slot):
        self._rec("delete_group", slot)
        del self.groups[slot]

    def member_counters(self):
        return dict(self.member_ctr)

    def drop_counters(self):
        return dict(self.drop_ctr)

    def misc_counters(self):
        return dict(self.misc_ctr)

    def close(self):
        self.closed = True


# --------------------------------------------------------------------------- helpers


def tid(name):
    return S.id("table", f"Ingress.{name}")


def aid(name):
    return S.id("action", name if name == "NoAction" else f"Ingress.{name}")


PROFILE = S.id("profile", "Ingress.instance_selector")


def fid(table, field):
    return next(f.id for f in S.tables[tid(table)].fields if f.name == field)


def enc(v, width=None):
    if isinstance(v, bytes):
        return v
    n = (width + 7) // 8 if width else max(1, (v.bit_length() + 7) // 8)
    return v.to_bytes(n, "big")


def action(name, **params):
    a = p4runtime_pb2.Action(action_id=aid(name))
    info = S.actions[aid(name)]
    for p in info.params:
        if p.name in params:
            a.params.add(param_id=p.id, value=enc(params[p.name]))
    return a


def sff_entry(spi, si, act=None):
    te = p4runtime_pb2.TableEntry(table_id=tid("sff_next"))
    te.match.add(field_id=fid("sff_next", "meta.spi"),
                 exact=p4runtime_pb2.FieldMatch.Exact(value=enc(spi)))
    te.match.add(field_id=fid("sff_next", "meta.si"),
                 exact=p4runtime_pb2.FieldMatch.Exact(value=enc(si)))
    if act is not None:
        te.action.action.CopyFrom(act)
    return te


CLS_FIELDS = {"src": "hdr.ipv4.srcAddr", "dst": "hdr.ipv4.dstAddr", "proto": "hdr.ipv4.protocol",
              "sport": "meta.l4_src", "dport": "meta.l4_dst"}


def cls_entry(priority, spi=None, **fields):
    te = p4runtime_pb2.TableEntry(table_id=tid("classifier"), priority=priority)
    for key, (value, mask) in fields.items():
        te.match.add(field_id=fid("classifier", CLS_FIELDS[key]),
                     ternary=p4runtime_pb2.FieldMatch.Ternary(value=enc(value), mask=enc(mask)))
    if spi is not None:
        te.action.action.CopyFrom(action("set_chain", spi=spi))
    return te


def member(mid, act=None):
    m = p4runtime_pb2.ActionProfileMember(action_profile_id=PROFILE, member_id=mid)
    if act is not None:
        m.action.CopyFrom(act)
    return m


def group(gid, members=(), max_size=0):
    g = p4runtime_pb2.ActionProfileGroup(action_profile_id=PROFILE, group_id=gid,
                                         max_size=max_size)
    for mid, w in members:
        g.members.add(member_id=mid, weight=w)
    return g


def select_entry(sid, group_id=None, member_id=None, from_remote=0):
    te = p4runtime_pb2.TableEntry(table_id=tid("instance_select"))
    te.match.add(field_id=fid("instance_select", "meta.service_id"),
                 exact=p4runtime_pb2.FieldMatch.Exact(value=enc(sid)))
    te.match.add(field_id=fid("instance_select", "meta.from_remote"),
                 exact=p4runtime_pb2.FieldMatch.Exact(value=enc(from_remote)))
    if group_id is not None:
        te.action.action_profile_group_id = group_id
    if member_id is not None:
        te.action.action_profile_member_id = member_id
    return te


def upd(kind, msg):
    u = p4runtime_pb2.Update(type=kind)
    field = {p4runtime_pb2.TableEntry: "table_entry",
             p4runtime_pb2.ActionProfileMember: "action_profile_member",
             p4runtime_pb2.ActionProfileGroup: "action_profile_group",
             p4runtime_pb2.CounterEntry: "counter_entry"}[type(msg)]
    getattr(u.entity, field).CopyFrom(msg)
    return u


def ins(msg):
    return upd(UPD.INSERT, msg)


def mod(msg):
    return upd(UPD.MODIFY, msg)


def dele(msg):
    return upd(UPD.DELETE, msg)


def details(err: grpc.RpcError) -> list[int]:
    """Per-update canonical codes from grpc-status-details-bin."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(value)
            out = []
            for a in st.details:
                e = p4runtime_pb2.Error()
                assert a.Unpack(e)
                out.append(e.canonical_code)
            return out
    raise AssertionError("no grpc-status-details-bin")


def write(client: P4RuntimeClient, *updates, **req_fields):
    """-> list of per-update codes (all OK on success), or the RPC's grpc.StatusCode."""
    req = p4runtime_pb2.WriteRequest(**{"device_id": client.device_id, **req_fields})
    req.election_id.high, req.election_id.low = client.election_id
    req.updates.extend(updates)
    try:
        client.stub.Write(req, timeout=5)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNKNOWN:
            return e.code()
        codes = details(e)
        assert len(codes) == len(updates)
        return codes
    return [OK] * len(updates)


def read(client: P4RuntimeClient, **entity) -> list:
    ent = p4runtime_pb2.Entity(**entity)
    out = []
    for resp in client.read_one(ent):
        out.extend(getattr(e, e.WhichOneof("entity")) for e in resp.entities)
    return out


@pytest.fixture
def fake():
    return FakeTarget()


@pytest.fixture
def server(tmp_path, fake):
    srv = P4RuntimeServer(fake, socket_path=tmp_path / "p4rt.sock").start()
    yield srv
    srv.stop(grace=None)


@pytest.fixture
def connect(server):
    clients = []

    def make(election=(0, 1), addr=None):
        c = P4RuntimeClient(1, addr or f"unix:{server.socket_path}", election)
        clients.append(c)
        return c

    yield make
    for c in clients:
        if getattr(c, "channel", None) is not None:
            c.tear_down()


@pytest.fixture
def client(connect):
    return connect()


class RawStream:
    """A bare StreamChannel, to look at every arbitration message."""

    def __init__(self, addr):
        self.channel = grpc.insecure_channel(addr)
        self.out: queue.Queue = queue.Queue()
        self.inq: queue.Queue = queue.Queue()

        def requests():
            while (m := self.out.get()) is not None:
                yield m

        self.call = p4runtime_pb2_grpc.P4RuntimeStub(self.channel).StreamChannel(requests())
        threading.Thread(target=self._recv, daemon=True).start()

    def _recv(self):
        try:
            for r in self.call:
                self.inq.put(r)
        except grpc.RpcError as e:
            self.inq.put(e)

    def arbitrate(self, election=None, device_id=1, role=""):
        m = p4runtime_pb2.StreamMessageRequest()
        m.arbitration.device_id = device_id
        if election is not None:
            m.arbitration.election_id.low = election
        if role:
            m.arbitration.role.name = role
        self.out.put(m)
        return self.next()

    def next(self, timeout=2.0):
        return self.inq.get(timeout=timeout)  # a response, or the grpc.RpcError that ended it

    def close(self):
        self.out.put(None)
        self.channel.close()


# --------------------------------------------------------------------------- connect


def test_connect_get_pipeline_and_capabilities(server, client):
    assert client.get_p4info() == P4INFO
    assert client.api_version() == "1.4.1"
    req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
        device_id=1, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
    cfg = client.stub.GetForwardingPipelineConfig(req).config
    assert cfg.cookie.cookie != 0 and not cfg.HasField("p4info")
    with pytest.raises(grpc.RpcError) as e:
        client.stub.GetForwardingPipelineConfig(
            p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=7))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_tcp_loopback_listener(tmp_path, fake):
    srv = P4RuntimeServer(fake, socket_path=tmp_path / "s.sock",
                          grpc_addr="127.0.0.1:0").start()
    try:
        assert srv.port and f"127.0.0.1:{srv.port}" in srv.addresses
        c = P4RuntimeClient(1, f"127.0.0.1:{srv.port}", (0, 1))
        try:
            assert write(c, ins(sff_entry(1, 255, action("end_of_chain")))) == [OK]
        finally:
            c.tear_down()
    finally:
        srv.stop(grace=None)
    assert not (tmp_path / "s.sock").exists()


# --------------------------------------------------------------------------- tables


def test_classifier_insert_modify_delete_read(server, client, fake):
    low = cls_entry(10, spi=1, dst=(0x0A010000, 0xFFFF0000))
    # non-canonical (padded) bytes are accepted
    high = cls_entry(20, spi=2, proto=(b"\x00\x06", b"\x00\xff"), dport=(b"\x00\x00\x16", 0xFFFF))
    assert write(client, ins(low), ins(high)) == [OK, OK]
    rules = fake.rules
    assert [r.priority for r in rules] == [20, 10]
    assert rules[0] == ClassifierRule(20, Ternary(0, 0), Ternary(0, 0), Ternary(6, 0xFF),
                                      Ternary(0, 0), Ternary(22, 0xFFFF), 2)
    assert rules[1].dst == Ternary(0x0A010000, 0xFFFF0000) and rules[1].spi == 1

    got = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("classifier")))
    assert len(got) == 2
    back = next(e for e in got if e.priority == 20)
    assert {m.field_id: (m.ternary.value, m.ternary.mask) for m in back.match} == {
        fid("classifier", "hdr.ipv4.protocol"): (b"\x06", b"\xff"),
        fid("classifier", "meta.l4_dst"): (b"\x16", b"\xff\xff")}
    assert back.action.action.params[0].value == b"\x02"

    assert write(client, mod(cls_entry(20, spi=9, proto=(6, 0xFF), dport=(22, 0xFFFF)))) == [OK]
    assert fake.rules[0].spi == 9
    # a filter on priority, then on the match
    got = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("classifier"),
                                                            priority=10))
    assert [e.priority for e in got] == [10]
    q = cls_entry(20, proto=(6, 0xFF), dport=(22, 0xFFFF))
    assert [e.priority for e in read(client, table_entry=q)] == [20]

    assert write(client, dele(cls_entry(20, proto=(6, 0xFF), dport=(22, 0xFFFF)))) == [OK]
    assert [r.priority for r in fake.rules] == [10]
    assert len(fake.of("set_classifier")) == 4  # full rule set on every change


def test_classifier_validation(server, client, fake):
    codes = write(client,
                  ins(cls_entry(0, spi=1, dst=(1, 0xFF))),        # priority 0
                  ins(cls_entry(5, spi=1, dst=(0x100, 0xFF))),    # value outside mask
                  ins(cls_entry(5, spi=1, dst=(0, 0))),           # don't care not omitted
                  ins(cls_entry(5, spi=1 << 24, dst=(1, 0xFF))),  # spi too wide
                  ins(cls_entry(5, dst=(1, 0xFF))))               # no action
    assert codes == [code_pb2.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT,
                     code_pb2.INVALID_ARGUMENT, code_pb2.OUT_OF_RANGE,
                     code_pb2.INVALID_ARGUMENT]
    te = cls_entry(5, dst=(1, 0xFF))
    te.action.action.action_id = aid("NoAction")  # @defaultonly
    assert write(client, ins(te)) == [code_pb2.PERMISSION_DENIED]
    default = p4runtime_pb2.TableEntry(table_id=tid("classifier"), is_default_action=True)
    default.action.action.CopyFrom(action("set_chain", spi=1))
    assert write(client, mod(default)) == [code_pb2.PERMISSION_DENIED]  # const default
    assert fake.of("set_classifier") == []
    full = [ins(cls_entry(p, spi=1, sport=(p, 0xFFFF))) for p in range(1, 66)]
    codes = write(client, *full)
    assert codes[:64] == [OK] * 64 and codes[64] == code_pb2.RESOURCE_EXHAUSTED


def test_sff_entries_and_config(server, client, fake):
    codes = write(client,
                  ins(sff_entry(1, 255, action("to_service", service_id=3))),
                  ins(sff_entry(1, 254, action("end_of_chain"))),
                  ins(sff_entry(2, b"\x00\x00\xff", action("drop_packet"))))
    assert codes == [OK, OK, OK]
    assert fake.sff == {(1, 255): SffAction("to_service", 3),
                        (1, 254): SffAction("end_of_chain"),
                        (2, 255): SffAction("drop")}
    assert write(client, mod(sff_entry(1, 254, action("to_service", service_id=4)))) == [OK]
    assert fake.sff[(1, 254)] == SffAction("to_service", 4)
    assert write(client, dele(sff_entry(2, 255))) == [OK]
    assert fake.of("delete_sff") == [(2, 255)]

    cfg = p4runtime_pb2.TableEntry(table_id=tid("sff_config"), is_default_action=True)
    cfg.action.action.CopyFrom(action("set_config", local_ip=int(IPv4Address("10.1.0.2")),
                                      router_mac=bytes.fromhex("020000000001"),
                                      local_mac=bytes.fromhex("020000000102")))
    assert write(client, mod(cfg)) == [OK]
    assert fake.config == ConnectorConfig(IPv4Address("10.1.0.2"),
                                          bytes.fromhex("020000000001"),
                                          bytes.fromhex("020000000102"))
    got = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("sff_config"),
                                                            is_default_action=True))
    assert got[0].action.action.params[0].value == IPv4Address("10.1.0.2").packed
    # all tables at once (default entries are not part of a wildcard read)
    everything = read(client, table_entry=p4runtime_pb2.TableEntry())
    assert sorted(e.table_id for e in everything) == [tid("sff_next")] * 2
    got = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("sff_next"),
                                                            is_default_action=True))
    assert got[0].action.action.action_id == aid("drop_packet")
    # MODIFY of the default without an action resets it to the start-up value
    assert write(client, mod(p4runtime_pb2.TableEntry(table_id=tid("sff_config"),
                                                       is_default_action=True))) == [OK]
    assert fake.config.local_ip == IPv4Address(0)
    codes = write(client, ins(p4runtime_pb2.TableEntry(table_id=tid("sff_config"))),
                  ins(sff_entry(9, 255, action("set_config", local_ip=1, router_mac=1,
                                               local_mac=1))),
                  ins(sff_entry(3, 255, action("to_service"))))  # missing parameter
    assert codes == [code_pb2.INVALID_ARGUMENT] * 3
    l2 = p4runtime_pb2.TableEntry(table_id=tid("l2_forward"), priority=1)
    l2.action.action.CopyFrom(action("l2_out", port=2))
    assert write(client, ins(l2)) == [code_pb2.UNIMPLEMENTED]


def test_members_weighted_groups_and_instance_select(server, client, fake):
    local = action("to_local_vnf", port=16, dmac=bytes.fromhex("0200000000aa"))
    remote = action("to_remote", endpoint=int(IPv4Address("10.2.0.2")))
    assert write(client, ins(member(1, local)), ins(member(2, remote))) == [OK, OK]
    assert fake.members == {1: Member("local", port=16, dmac=bytes.fromhex("0200000000aa")),
                            2: Member("remote", endpoint=IPv4Address("10.2.0.2"))}
    assert write(client, ins(group(10, [(1, 3), (2, 1)]))) == [OK]
    assert fake.of("set_group") == []  # no service uses the group yet
    assert write(client, ins(select_entry(5, group_id=10))) == [OK]
    assert fake.groups == {5: [(1, 3), (2, 1)]}
    # new WCMP weights: the service's group is re-sent
    assert write(client, mod(group(10, [(1, 1), (2, 63)]))) == [OK]
    assert fake.groups[5] == [(1, 1), (2, 63)]
    # a service can point at a single member
    assert write(client, ins(select_entry(6, member_id=2))) == [OK]
    assert fake.groups[6] == [(2, 1)]

    members = read(client, action_profile_member=p4runtime_pb2.ActionProfileMember())
    assert [m.member_id for m in members] == [1, 2]
    assert members[0].action.params[1].value == bytes.fromhex("0200000000aa")
    groups = read(client, action_profile_group=p4runtime_pb2.ActionProfileGroup(
        action_profile_id=PROFILE))
    assert [(m.member_id, m.weight) for m in groups[0].members] == [(1, 1), (2, 63)]
    sel = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("instance_select")))
    assert sorted(e.action.WhichOneof("type") for e in sel) == [
        "action_profile_group_id", "action_profile_member_id"]

    codes = write(client, dele(group(10)), dele(member(1)), dele(member(2)))
    assert codes == [code_pb2.FAILED_PRECONDITION] * 3  # still referenced
    assert write(client, mod(group(10, []))) == [OK]  # empty group: the service has none
    assert fake.of("delete_group") == [(5,)]
    codes = write(client, dele(select_entry(5)), dele(select_entry(6)), dele(group(10)),
                  dele(member(1)), dele(member(2)))
    assert codes == [OK] * 5
    assert fake.groups == {} and fake.members == {}
    assert fake.of("delete_group") == [(5,), (6,)]


def select_key(entry) -> tuple[int, int]:
    """(service id, from_remote) of an instance_select entry read back."""
    by_id = {m.field_id: int.from_bytes(m.exact.value, "big") for m in entry.match}
    assert set(by_id) == {fid("instance_select", "meta.service_id"),
                          fid("instance_select", "meta.from_remote")}
    return (by_id[fid("instance_select", "meta.service_id")],
            by_id[fid("instance_select", "meta.from_remote")])


def test_instance_select_from_remote_uses_two_slots(server, client, fake):
    """(sid, 0) and (sid, 1) are two select slots in the target: sid and sid + 256."""
    local = action("to_local_vnf", port=16, dmac=bytes.fromhex("0200000000aa"))
    remote = action("to_remote", endpoint=int(IPv4Address("10.2.0.2")))
    assert write(client, ins(member(1, local)), ins(member(2, remote)),
                 ins(group(20, [(1, 1), (2, 3)])),   # service 5: every candidate
                 ins(group(21, [(1, 1)])),           # service 5: local instances only
                 ins(group(30, [(2, 1)]))) == [OK] * 5  # service 6: no local instance
    assert write(client, ins(select_entry(5, group_id=20, from_remote=0)),
                 ins(select_entry(5, group_id=21, from_remote=1)),
                 ins(select_entry(6, group_id=30, from_remote=0)),
                 ins(select_entry(6, group_id=30, from_remote=1))) == [OK] * 4
    assert fake.groups == {5: [(1, 1), (2, 3)], 5 + 256: [(1, 1)],
                           6: [(2, 1)], 6 + 256: [(2, 1)]}
    # read back: both key fields, and a match filter tells the two entries apart
    sel = read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("instance_select")))
    assert sorted((select_key(e), e.action.action_profile_group_id) for e in sel) == [
        ((5, 0), 20), ((5, 1), 21), ((6, 0), 30), ((6, 1), 30)]
    [one] = read(client, table_entry=select_entry(5, from_remote=1))
    assert select_key(one) == (5, 1) and one.action.action_profile_group_id == 21
    # a group modify reaches every slot that uses it, and only those
    fake.calls.clear()
    assert write(client, mod(group(30, [(1, 2), (2, 2)]))) == [OK]
    assert sorted(fake.of("set_group")) == [(6, [(1, 2), (2, 2)]), (6 + 256, [(1, 2), (2, 2)])]
    assert write(client, mod(group(21, [(1, 4)]))) == [OK]
    assert fake.groups[5 + 256] == [(1, 4)] and fake.groups[5] == [(1, 1), (2, 3)]
    # repointing one entry moves only its slot
    assert write(client, mod(select_entry(6, group_id=21, from_remote=1))) == [OK]
    assert fake.groups[6 + 256] == [(1, 4)] and fake.groups[6] == [(1, 2), (2, 2)]
    # group 30 is now used by (6, 0) only; emptying it removes that slot alone
    fake.calls.clear()
    assert write(client, mod(group(30, []))) == [OK]
    assert fake.of("delete_group") == [(6,)] and 6 + 256 in fake.groups
    # a still-referenced group cannot go; deleting an entry deletes its slot only
    assert write(client, dele(group(21))) == [code_pb2.FAILED_PRECONDITION]
    assert write(client, dele(select_entry(5, from_remote=1))) == [OK]
    assert 5 + 256 not in fake.groups and fake.groups[5] == [(1, 1), (2, 3)]
    # the key must be complete and fit its width
    only_sid = p4runtime_pb2.TableEntry(table_id=tid("instance_select"))
    only_sid.match.add(field_id=fid("instance_select", "meta.service_id"),
                       exact=p4runtime_pb2.FieldMatch.Exact(value=enc(7)))
    only_sid.action.action_profile_group_id = 20
    assert write(client, ins(only_sid), ins(select_entry(7, group_id=20, from_remote=2))) == [
        code_pb2.INVALID_ARGUMENT, code_pb2.OUT_OF_RANGE]
    # 256 services x 2 entries fit
    codes = write(client, *[ins(select_entry(s, group_id=20, from_remote=f))
                            for s in range(256) for f in (0, 1)
                            if (s, f) not in ((5, 0), (6, 0), (6, 1))])
    assert codes == [OK] * 509
    assert len(fake.groups) == 512 - 1  # (6, 0)'s group 30 is empty: no slot
    assert write(client, ins(select_entry(5, group_id=20, from_remote=0))) == [
        code_pb2.ALREADY_EXISTS]


def test_group_validation(server, client, fake):
    local = action("to_local_vnf", port=16, dmac=1)
    assert write(client, ins(member(1, local)), ins(member(2, local))) == [OK, OK]
    g = group(3, [(1, 1)])
    g.members[0].watch_port = b"\x01"
    codes = write(client,
                  ins(group(1, [(1, 0)])),             # weight 0
                  ins(group(1, [(1, 60), (2, 5)])),    # sum 65 > 64
                  ins(group(1, [(1, 1), (1, 2)])),     # duplicate member
                  ins(group(1, [(9, 1)])),             # unknown member
                  ins(group(1, [(1, 1)], max_size=65)),
                  ins(group(2, [(1, 5)], max_size=4)),
                  ins(g),
                  ins(group(0, [(1, 1)])))
    assert codes == [code_pb2.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT,
                     code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND, code_pb2.INVALID_ARGUMENT,
                     code_pb2.RESOURCE_EXHAUSTED, code_pb2.UNIMPLEMENTED,
                     code_pb2.INVALID_ARGUMENT]
    assert write(client, ins(group(1, [(1, 32), (2, 32)], max_size=64))) == [OK]
    assert write(client, mod(group(1, [(1, 1)], max_size=0))) == [code_pb2.INVALID_ARGUMENT]
    codes = write(client, ins(member(3, action("to_service", service_id=1))),
                  ins(member(3, action("NoAction"))),
                  ins(member(0, local)),
                  ins(member(3)),
                  ins(select_entry(7, group_id=99)),
                  ins(select_entry(7, member_id=99)))
    assert codes == [code_pb2.INVALID_ARGUMENT] * 4 + [code_pb2.NOT_FOUND] * 2
    bad_profile = member(4, local)
    bad_profile.action_profile_id = 0x11000099
    assert write(client, ins(bad_profile)) == [code_pb2.NOT_FOUND]


def test_target_error_becomes_the_update_error(server, client, fake):
    fake.fail["set_member"] = TargetError("RESOURCE_EXHAUSTED", "member map full")
    local = action("to_local_vnf", port=16, dmac=1)
    assert write(client, ins(member(1, local)), ins(member(2, local))) == [
        code_pb2.RESOURCE_EXHAUSTED, OK]
    ids = [m.member_id for m in read(client, action_profile_member=p4runtime_pb2.
                                     ActionProfileMember(action_profile_id=PROFILE))]
    assert ids == [2]  # the failed insert left no state behind
    fake.fail["set_classifier"] = TargetError("INVALID_ARGUMENT", "nope")
    assert write(client, ins(cls_entry(3, spi=1, dst=(1, 0xFF)))) == [
        code_pb2.INVALID_ARGUMENT]
    assert read(client, table_entry=p4runtime_pb2.TableEntry(table_id=tid("classifier"))) == []


def test_malformed_writes_report_one_error_per_update(server, client, fake):
    unknown_table = sff_entry(1, 1, action("end_of_chain"))
    unknown_table.table_id = 0x02000099
    batch = [
        ins(sff_entry(1, 255, action("to_service", service_id=1))),
        ins(unknown_table),
        ins(sff_entry(1 << 24, 255, action("end_of_chain"))),  # spi wider than 24 bits
        ins(sff_entry(1, 255, action("end_of_chain"))),        # duplicate insert
        dele(sff_entry(7, 7)),                                 # delete of a missing entry
        ins(group(1, [(1, 0)])),                               # (no member 1 either)
        mod(sff_entry(1, 255, action("to_service", service_id=2))),
    ]
    assert write(client, *batch) == [OK, code_pb2.NOT_FOUND, code_pb2.OUT_OF_RANGE,
                                     code_pb2.ALREADY_EXISTS, code_pb2.NOT_FOUND,
                                     code_pb2.NOT_FOUND, OK]
    # p4runtime-shell's own parser of the details. (It loops forever on a batch that mixes
    # OK and failed updates -- P4RuntimeErrorIterator skips OK without advancing -- so it
    # is only usable on single updates, which is all the interactive shell sends.)
    with pytest.raises(P4RuntimeWriteException) as exc:
        client.write_update(batch[2])
    assert [(i, code_pb2.Code.Name(e.canonical_code)) for i, e in exc.value.errors] == [
        (0, "OUT_OF_RANGE")]
    assert "At index 0: OUT_OF_RANGE" in str(exc.value)
    # the good updates went through, in order
    assert fake.of("set_sff") == [(1, 255, SffAction("to_service", 1)),
                                  (1, 255, SffAction("to_service", 2))]
    codes = write(client, ins(group(1, [])), ins(member(1, action("to_remote", endpoint=1))),
                  mod(group(1, [(1, 0)])), mod(group(1, [(1, 65)])))
    assert codes == [OK, OK, code_pb2.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT]
    empty = p4runtime_pb2.Action(action_id=aid("to_service"))
    empty.params.add(param_id=1, value=b"")
    assert write(client, ins(sff_entry(3, 3, empty))) == [code_pb2.OUT_OF_RANGE]
    assert write(client, upd(UPD.UNSPECIFIED, sff_entry(3, 3))) == [code_pb2.INVALID_ARGUMENT]
    assert write(client, ins(sff_entry(3, 3, action("end_of_chain"))),
                 atomicity=p4runtime_pb2.WriteRequest.ROLLBACK_ON_ERROR) == \
        grpc.StatusCode.UNIMPLEMENTED
    ctr = p4runtime_pb2.CounterEntry(counter_id=S.id("counter", "Ingress.drops"))
    assert write(client, mod(ctr), ins(ctr)) == [code_pb2.UNIMPLEMENTED,
                                                  code_pb2.INVALID_ARGUMENT]


# --------------------------------------------------------------------------- counters


def test_counter_reads(server, client, fake):
    fake.member_ctr = {7: Counter(5, 500)}
    fake.drop_ctr = {"unknown_path": Counter(2, 120), "si_zero": Counter(1, 60)}
    fake.misc_ctr = {"classified": Counter(9, 900), "end_of_chain": Counter(4, 400)}
    cid = {n: S.id("counter", f"Ingress.{n}") for n in
           ("member_pkts", "drops", "classified", "end_of_chain")}

    def one(counter, index):
        ce = p4runtime_pb2.CounterEntry(counter_id=cid[counter])
        ce.index.index = index
        return read(client, counter_entry=ce)

    [m7] = one("member_pkts", 7)
    assert (m7.data.packet_count, m7.data.byte_count) == (5, 500)
    [d] = one("drops", DROP_REASONS.index("unknown_path"))
    assert d.data.packet_count == 2
    drops = read(client, counter_entry=p4runtime_pb2.CounterEntry(counter_id=cid["drops"]))
    assert len(drops) == 16
    assert {c.index.index: c.data.packet_count for c in drops if c.data.packet_count} == {
        DROP_REASONS.index("unknown_path"): 2, DROP_REASONS.index("si_zero"): 1}
    [eoc] = read(client, counter_entry=p4runtime_pb2.CounterEntry(counter_id=cid["end_of_chain"]))
    assert eoc.data.byte_count == 400
    everything = read(client, counter_entry=p4runtime_pb2.CounterEntry())
    assert len(everything) == 1024 + 16 + 1 + 1
    with pytest.raises(grpc.RpcError) as e:
        one("drops", 16)
    assert details(e.value) == [code_pb2.OUT_OF_RANGE]
    with pytest.raises(grpc.RpcError) as e:
        read(client, counter_entry=p4runtime_pb2.CounterEntry(counter_id=0x12000099))
    assert details(e.value) == [code_pb2.NOT_FOUND]


def test_read_errors_are_per_request(server, client):
    req = p4runtime_pb2.ReadRequest(device_id=1)
    req.entities.add(table_entry=p4runtime_pb2.TableEntry(table_id=tid("sff_next")))
    req.entities.add(table_entry=p4runtime_pb2.TableEntry(table_id=0x02000099))
    req.entities.add(register_entry=p4runtime_pb2.RegisterEntry())
    with pytest.raises(grpc.RpcError) as e:
        list(client.stub.Read(req))
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert details(e.value) == [OK, code_pb2.NOT_FOUND, code_pb2.UNIMPLEMENTED]


# --------------------------------------------------------------------------- arbitration


def test_backup_cannot_write_and_takes_over(server, connect, fake, capsys):
    primary = connect((0, 10))
    backup = connect((0, 5))
    assert "not the primary" in capsys.readouterr().out  # p4runtime-shell's own message
    assert write(backup, ins(sff_entry(1, 1, action("end_of_chain")))) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert write(primary, ins(sff_entry(1, 1, action("end_of_chain")))) == [OK]
    # everyone may read
    assert len(read(backup, table_entry=p4runtime_pb2.TableEntry(table_id=tid("sff_next")))) == 1
    # a write claiming the primary's id is identified by device and election id
    assert write(backup, ins(sff_entry(1, 2, action("end_of_chain"))),
                 device_id=2) == grpc.StatusCode.NOT_FOUND
    primary.tear_down()
    note = backup.get_stream_packet("arbitration", timeout=2)
    assert note.arbitration.status.code == code_pb2.OK
    assert note.arbitration.election_id.low == 5
    assert write(backup, dele(sff_entry(1, 1))) == [OK]
    assert fake.sff == {}


def test_arbitration_messages(server):
    addr = f"unix:{server.socket_path}"
    a, b, c, d = (RawStream(addr) for _ in range(4))
    try:
        ra = a.arbitrate(10)
        assert ra.arbitration.status.code == code_pb2.OK
        rb = b.arbitrate(5)
        assert rb.arbitration.status.code == code_pb2.ALREADY_EXISTS
        assert rb.arbitration.election_id.low == 10
        err = c.arbitrate(10)  # election id in use
        assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT
        err = d.arbitrate(11, device_id=2)
        assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.NOT_FOUND
        # b outbids a: both hear about it
        rb = b.arbitrate(20)
        assert rb.arbitration.status.code == code_pb2.OK
        ra = a.next()
        assert ra.arbitration.status.code == code_pb2.ALREADY_EXISTS
        assert ra.arbitration.election_id.low == 20
        # a stream message other than arbitration gets a StreamError
        pkt = p4runtime_pb2.StreamMessageRequest()
        pkt.packet.payload = b"x"
        a.out.put(pkt)
        assert a.next().error.canonical_code == code_pb2.UNIMPLEMENTED
        b.close()
        ra = a.next()
        assert ra.arbitration.status.code == code_pb2.OK  # live mode: a takes over
    finally:
        for s in (a, b, c, d):
            s.close()


def test_spec_arbitration_keeps_highest_ever(tmp_path, fake):
    srv = P4RuntimeServer(fake, socket_path=tmp_path / "p4rt.sock", arbitration="spec").start()
    addr = f"unix:{srv.socket_path}"
    a, b = RawStream(addr), RawStream(addr)
    try:
        assert a.arbitrate(10).arbitration.status.code == code_pb2.OK
        assert b.arbitrate(5).arbitration.status.code == code_pb2.ALREADY_EXISTS
        a.close()
        note = b.next()
        assert note.arbitration.status.code == code_pb2.NOT_FOUND  # no primary now
        assert note.arbitration.election_id.low == 10
        assert b.arbitrate(10).arbitration.status.code == code_pb2.OK
        noelection = RawStream(addr)
        assert noelection.arbitrate(None).arbitration.status.code == code_pb2.ALREADY_EXISTS
        noelection.close()
    finally:
        b.close()
        srv.stop(grace=None)


# --------------------------------------------------------------------------- pipeline config


def test_set_forwarding_pipeline_config(server, connect, fake):
    client = connect((0, 2))
    act = p4runtime_pb2.SetForwardingPipelineConfigRequest

    def set_config(action, p4info=P4INFO, cookie=None, who=client, config=True):
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=1, action=action)
        req.election_id.high, req.election_id.low = who.election_id
        if config:
            req.config.p4info.CopyFrom(p4info)
            req.config.p4_device_config = b"opaque"
            if cookie is not None:
                req.config.cookie.cookie = cookie
        try:
            who.stub.SetForwardingPipelineConfig(req, timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    assert write(client, ins(sff_entry(1, 1, action("end_of_chain")))) == [OK]
    assert set_config(act.VERIFY) == grpc.StatusCode.OK
    assert set_config(act.RECONCILE_AND_COMMIT, cookie=42) == grpc.StatusCode.OK
    assert fake.sff  # state kept
    assert set_config(act.COMMIT, config=False) == grpc.StatusCode.NOT_FOUND
    assert set_config(act.VERIFY_AND_SAVE) == grpc.StatusCode.OK
    assert set_config(act.COMMIT) == grpc.StatusCode.INVALID_ARGUMENT
    assert set_config(act.COMMIT, config=False) == grpc.StatusCode.OK
    other = p4info_pb2.P4Info()
    other.CopyFrom(P4INFO)
    other.tables[1].match_fields[0].bitwidth = 16
    assert set_config(act.VERIFY_AND_COMMIT, p4info=other) == grpc.StatusCode.INVALID_ARGUMENT
    assert set_config(act.VERIFY_AND_COMMIT, cookie=7) == grpc.StatusCode.OK
    assert fake.sff == {}  # VERIFY_AND_COMMIT clears the forwarding state
    cfg = client.stub.GetForwardingPipelineConfig(
        p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=1)).config
    assert cfg.cookie.cookie == 7 and cfg.p4_device_config == b"opaque"
    # cosmetic differences (pkg_info, aliases, annotations) do not matter
    cosmetic = p4info_pb2.P4Info()
    cosmetic.CopyFrom(P4INFO)
    cosmetic.pkg_info.name = "other"
    cosmetic.tables[0].preamble.alias = "cls"
    assert set_config(act.VERIFY, p4info=cosmetic) == grpc.StatusCode.OK
    backup = connect((0, 1))
    assert set_config(act.VERIFY, who=backup) == grpc.StatusCode.PERMISSION_DENIED


def test_p4runtime_shell_config_push(server, tmp_path):
    """p4runtime-shell's --config path (VERIFY_AND_COMMIT with a text P4Info)."""
    from p4runtime_sh import shell

    p4info_file = tmp_path / "p4info.txt"
    p4info_file.write_text(text_format.MessageToString(P4INFO))
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"")
    shell.setup(device_id=1, grpc_addr=f"unix:{server.socket_path}", election_id=(0, 1),
                config=shell.FwdPipeConfig(str(p4info_file), str(blob)), verbose=False)
    try:
        te = shell.TableEntry("Ingress.sff_next")(action="Ingress.end_of_chain")
        te.match["meta.spi"] = "5"
        te.match["meta.si"] = "250"
        te.insert()
        assert [e.match["meta.spi"].exact.value for e in
                shell.TableEntry("Ingress.sff_next").read()] == [b"\x05"]
    finally:
        shell.teardown()


# --------------------------------------------------------------------------- shell + CLI


SHELL_SCRIPT = """\
te = table_entry["Ingress.sff_next"](action="Ingress.to_service")
te.match["meta.spi"] = "1"
te.match["meta.si"] = "255"
te.action["service_id"] = "7"
te.insert()
m = action_profile_member["Ingress.instance_selector"](member_id=1, action="Ingress.to_local_vnf")
m.action["port"] = "16"
m.action["dmac"] = "02:00:00:00:00:01"
m.insert()
g = action_profile_group["Ingress.instance_selector"](group_id=1).add(1, weight=3)
g.insert()
s = table_entry["Ingress.instance_select"]
s.match["meta.service_id"] = "7"
s.match["meta.from_remote"] = "1"
s.group_id = 1
s.insert()
print("ENTRIES", len(list(table_entry["Ingress.sff_next"].read())))
c = counter_entry["Ingress.drops"]
c.index = 5
print("DROPS", [x.packet_count for x in c.read()])
exit()
"""


def test_p4runtime_shell_interactive(server, tmp_path, fake):
    fake.drop_ctr = {"unknown_path": Counter(3, 300)}
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), HOME=str(tmp_path))
    res = subprocess.run(
        [sys.executable, "-m", "p4runtime_sh", "--grpc-addr", f"unix:{server.socket_path}",
         "--device-id", "1", "--election-id", "0,1"],
        input=SHELL_SCRIPT, capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert "ENTRIES 1" in res.stdout, res.stdout + res.stderr
    assert "DROPS [3]" in res.stdout, res.stdout + res.stderr
    assert "Error" not in res.stdout, res.stdout
    assert fake.sff == {(1, 255): SffAction("to_service", 7)}
    assert fake.members == {1: Member("local", port=16, dmac=bytes.fromhex("020000000001"))}
    assert fake.groups == {7 + 256: [(1, 3)]}  # select slot of (7, from_remote 1)


def test_cli_serves_on_a_unix_socket_and_stops_on_sigterm(tmp_path):
    sock = tmp_path / "cli.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector_p4.p4rt_server", "--socket", str(sock),
         "--target", "null", "--local-ip", "10.1.0.2", "--router-mac", "02:00:00:00:00:01",
         "--local-mac", "02:00:00:00:01:02", "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "server did not create its socket"
            time.sleep(0.05)
        c = P4RuntimeClient(1, f"unix:{sock}", (0, 1))
        try:
            got = read(c, table_entry=p4runtime_pb2.TableEntry(table_id=tid("sff_config"),
                                                               is_default_action=True))
            assert got[0].action.action.params[0].value == IPv4Address("10.1.0.2").packed
        finally:
            c.tear_down()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_restore_from_running_target(tmp_path, fake):
    """A restarted server over a pinned eBPF pipeline shows what the target holds."""
    state = SimpleNamespace(
        config=ConnectorConfig(IPv4Address("10.3.0.2"), bytes(range(6)), bytes(range(1, 7))),
        rules=[ClassifierRule(5, Ternary(0, 0), Ternary(0x0A030000, 0xFFFF0000),
                              Ternary(17, 0xFF), Ternary(0, 0), Ternary(0, 0), 4)],
        sff={(4, 255): SffAction("to_service", 2), (4, 254): SffAction("end_of_chain")},
        members={3: Member("remote", endpoint=IPv4Address("10.1.0.2")),
                 4: Member("local", port=16, dmac=bytes.fromhex("0200000000aa"))},
        # select slots: service 2 has one group for both keys, service 5 a local-only one
        # for remote arrivals, and service 7 only an entry for remote arrivals
        groups={2: [(3, 64)], 2 + 256: [(3, 64)], 5: [(3, 1), (4, 1)], 5 + 256: [(4, 1)],
                7 + 256: [(4, 2)]})
    fake.groups = {slot: list(ms) for slot, ms in state.groups.items()}  # what it holds
    srv = P4RuntimeServer(fake, socket_path=tmp_path / "p4rt.sock", restore=state,
                          initial_config=ConnectorConfig(IPv4Address(1), bytes(6), bytes(6)))
    srv.start()
    c = P4RuntimeClient(1, f"unix:{srv.socket_path}", (0, 1))
    try:
        assert fake.calls == []  # nothing re-written: the target already holds it
        assert len(read(c, table_entry=p4runtime_pb2.TableEntry())) == 1 + 2 + 5
        groups = read(c, action_profile_group=p4runtime_pb2.ActionProfileGroup())
        # group ids as the D-MANO numbers them: slot S -> S; slot 256 + S -> S if it holds
        # the same members, else 256 + S
        assert {g.group_id: [(m.member_id, m.weight) for m in g.members] for g in groups} == {
            2: [(3, 64)], 5: [(3, 1), (4, 1)], 261: [(4, 1)], 263: [(4, 2)]}
        assert all(g.max_size == 0 for g in groups)
        sel = read(c, table_entry=p4runtime_pb2.TableEntry(table_id=tid("instance_select")))
        assert sorted((select_key(e), e.action.action_profile_group_id) for e in sel) == [
            ((2, 0), 2), ((2, 1), 2), ((5, 0), 5), ((5, 1), 261), ((7, 1), 263)]
        # and it can be changed through P4Runtime as usual: the shared group reaches both
        assert write(c, mod(group(2, [(3, 2)]))) == [OK]
        assert fake.of("set_group") == [(2, [(3, 2)]), (2 + 256, [(3, 2)])]
        assert write(c, dele(select_entry(5, from_remote=1)), dele(group(261))) == [OK, OK]
        assert fake.of("delete_group") == [(5 + 256,)]
        assert fake.groups == {2: [(3, 2)], 2 + 256: [(3, 2)], 5: [(3, 1), (4, 1)],
                               7 + 256: [(4, 2)]}
        assert write(c, dele(cls_entry(5, dst=(0x0A030000, 0xFFFF0000), proto=(17, 0xFF)))) \
            == [OK]
        assert fake.rules == []
    finally:
        c.tear_down()
        srv.stop(grace=None)
