"""Shared by the P4Runtime server tests: a recording fake target, builders of entities and
updates, write/read through p4runtime-shell's client, and the server/client fixtures
(``tests/unit/conftest.py`` has the fixtures).

Every server here listens on a unix socket in the test's tmp_path and is stopped by its
fixture.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4runtime_sh.p4runtime import P4RuntimeClient

from connector_p4.p4rt_server import load_p4info
from connector_p4.target import (
    ClassifierRule,
    Counter,
    Member,
    SffAction,
    TargetError,
)
from dmano.p4info import P4InfoIndex

ROOT = Path(__file__).resolve().parents[2]
P4INFO = load_p4info()
S = P4InfoIndex(P4INFO)
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


def select_key(entry) -> tuple[int, int]:
    """(service id, from_remote) of an instance_select entry read back."""
    by_id = {m.field_id: int.from_bytes(m.exact.value, "big") for m in entry.match}
    assert set(by_id) == {fid("instance_select", "meta.service_id"),
                          fid("instance_select", "meta.from_remote")}
    return (by_id[fid("instance_select", "meta.service_id")],
            by_id[fid("instance_select", "meta.from_remote")])
