"""The P4Runtime server's Write path against p4runtime-shell's client, with a recording
fake target: connection, classifier, sff_next, sff_config, members, groups,
instance_select, and per-update errors. Helpers: ``p4rt_helpers``; fixtures: ``conftest``.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeClient, P4RuntimeWriteException

from connector_p4.p4rt_server import P4RuntimeServer
from connector_p4.target import (
    ClassifierRule,
    ConnectorConfig,
    Member,
    SffAction,
    TargetError,
    Ternary,
)
from tests.unit.p4rt_helpers import (
    OK,
    P4INFO,
    PROFILE,
    UPD,
    S,
    action,
    aid,
    cls_entry,
    dele,
    enc,
    fid,
    group,
    ins,
    member,
    mod,
    read,
    select_entry,
    select_key,
    sff_entry,
    tid,
    upd,
    write,
)

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
                  ins(group(1, [(1, -1)])),            # negative weight
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
    # weight 0: a draining member, kept in the group for its cached flows (PIPELINE.md)
    assert write(client, ins(group(4, [(1, 0), (2, 3)]))) == [OK]
    assert write(client, ins(group(5, [(1, 0)]))) == [OK]  # all draining
    # max_size 0 stands for 64: no change; any other size is one
    assert write(client, mod(group(1, [(1, 1)], max_size=0))) == [OK]
    assert write(client, mod(group(1, [(1, 1)], max_size=32))) == [code_pb2.INVALID_ARGUMENT]
    assert write(client, ins(group(6, [(1, 1)], max_size=32))) == [OK]
    assert write(client, mod(group(6, [(1, 2)], max_size=0))) == [code_pb2.INVALID_ARGUMENT]
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
                  mod(group(1, [(1, -2)])), mod(group(1, [(1, 65)])))
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
