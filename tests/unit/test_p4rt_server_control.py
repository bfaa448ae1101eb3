"""The P4Runtime server's Read of counters, arbitration, pipeline config, p4runtime-shell
(config push and interactive), the command line, and restart takeover. Helpers:
``p4rt_helpers``; fixtures: ``conftest``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from ipaddress import IPv4Address
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeClient

from connector_p4.p4rt_server import P4RuntimeServer
from connector_p4.target import (
    DROP_REASONS,
    ClassifierRule,
    ConnectorConfig,
    Counter,
    Member,
    SffAction,
    Ternary,
)
from dmano.procutil import popen_alive, terminate, wait_for_path
from tests.unit.p4rt_helpers import (
    OK,
    P4INFO,
    ROOT,
    RawStream,
    S,
    action,
    cls_entry,
    dele,
    details,
    group,
    ins,
    mod,
    read,
    select_entry,
    select_key,
    sff_entry,
    tid,
    write,
)


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
        wait_for_path(sock, 15, alive=popen_alive(proc), what="p4rt_server")
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
        terminate(proc)


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
        # a writer that resyncs modifies them with its own max_size (64 = 0 here)
        assert write(c, mod(group(2, [(3, 2)], max_size=64))) == [OK]
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
