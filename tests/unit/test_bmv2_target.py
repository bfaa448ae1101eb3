"""The BMv2 connector's start-up plan (no BMv2 needed): switch command line, the
l2_forward entries and flood group that replace the kernel bridge, the P4Runtime updates
built against the hand-written P4Info, and the tool lookup's error message."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from connector_p4 import bmv2_build, bmv2_target
from connector_p4.bmv2_target import Bmv2Connector
from dmano.p4info import P4InfoIndex, P4InfoNameError

P4INFO = Path(bmv2_build.HERE) / "connector.p4info.txtpb"
H1, H2, GW = "02:dc:01:02:01:01", "02:dc:01:02:02:01", "02:dc:01:02:00:01"


@pytest.fixture
def conn() -> Bmv2Connector:
    return Bmv2Connector(ports={1: "rtr", 2: "rtrh", 16: "v-fw1", 64: "h-a", 65: "h-b"},
                         local_ip=IPv4Address("10.1.0.2"), router_mac="02:dc:01:00:00:01",
                         local_mac="02:dc:01:00:00:02", hostbridge_mac=GW,
                         host_macs={64: H1, 65: H2})


@pytest.fixture
def ids() -> P4InfoIndex:
    info = text_format.Parse(P4INFO.read_text(), p4info_pb2.P4Info())
    return P4InfoIndex(info)


def test_switch_command_maps_every_port_and_listens_on_the_socket():
    cmd = bmv2_target.switch_command("/x/simple_switch_grpc", {16: "v-a", 1: "rtr"},
                                     "unix:/run/s.sock")
    # BMv2 reads /sys/class/net/<port>: a sysfs of the connector's namespace
    assert cmd[:3] == ["unshare", "--mount", "--propagation"]
    assert "mount -t sysfs sysfs /sys" in cmd[cmd.index("-c") + 1]
    assert "/x/simple_switch_grpc" in cmd and "--no-p4" in cmd
    assert cmd[cmd.index("--device-id") + 1] == "1"
    i = [cmd[k + 1] for k, a in enumerate(cmd) if a == "-i"]
    assert i == ["1@rtr", "16@v-a"]
    # target options follow "--"
    assert cmd[cmd.index("--"):] == ["--", "--grpc-server-addr", "unix:/run/s.sock"]


def test_l2_entries_replace_the_bridge(conn):
    entries = {(i, mac): (action, param) for i, mac, action, param, _ in
               bmv2_target.l2_entries(conn)}
    flood = ("Ingress.l2_multicast", bmv2_target.FLOOD_GROUP)
    # broadcasts from the router's host side and from each host flood
    for port in (2, 64, 65):
        assert entries[(port, bmv2_target.BROADCAST)] == flood
    # unicast to the owner of the MAC, never back where it came from
    assert entries[(64, GW)] == ("Ingress.l2_out", 2)
    assert entries[(64, H2)] == ("Ingress.l2_out", 65)
    assert entries[(2, H1)] == ("Ingress.l2_out", 64)
    assert (64, H1) not in entries and (2, GW) not in entries
    # the router port and the VNF ports are not bridged (their non-NSH traffic is the
    # kernel's); a miss in l2_forward drops BMv2's copy
    assert not [k for k in entries if k[0] in (1, 16)]
    assert bmv2_target.flood_ports(conn) == [2, 64, 65]
    prio = {p for *_, p in bmv2_target.l2_entries(conn)}
    assert all(p > 0 for p in prio)  # ternary entries need a priority


def test_updates_use_the_p4info_ids_and_canonical_values(conn, ids):
    up = bmv2_target._config_update(ids, conn)
    te = up.entity.table_entry
    assert te.is_default_action and te.table_id == ids.table("Ingress.sff_config").id
    params = [p.value for p in te.action.action.params]
    assert params == [bytes([10, 1, 0, 2]), bytes.fromhex("02dc01000001"),
                      bytes.fromhex("02dc01000002")]
    up = bmv2_target._l2_update(ids, (64, GW, "Ingress.l2_out", 2, 10))
    te = up.entity.table_entry
    assert te.priority == 10
    values = {m.field_id: (m.ternary.value, m.ternary.mask) for m in te.match}
    assert sorted(values.values()) == sorted([(b"\x40", b"\x01\xff"),
                                              (bytes.fromhex(GW.replace(":", "")),
                                               b"\xff" * 6)])
    assert [p.value for p in te.action.action.params] == [b"\x02"]
    group = bmv2_target._flood_update([2, 64]).entity.packet_replication_engine_entry
    assert [r.egress_port for r in group.multicast_group_entry.replicas] == [2, 64]


def test_unknown_names_are_a_clear_error(ids):
    with pytest.raises(P4InfoNameError, match=r"no table 'Ingress\.nope'"):
        ids.table("Ingress.nope")
    with pytest.raises(P4InfoNameError, match=r"Ingress\.l2_out has no parameter 'nope'"):
        ids.action("Ingress.l2_out").param("nope")


def test_crc32_calculations_found_in_the_json(tmp_path):
    doc = {"calculations": [{"name": "calc", "algo": "crc32_custom"},
                            {"name": "calc_0", "algo": "crc16"},
                            {"name": "calc_1", "algo": "crc32_custom"}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert bmv2_target.crc32_calculations(path) == ["calc", "calc_1"]


def test_missing_tools_name_what_is_missing_and_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(bmv2_build.Bmv2UnavailableError) as err:
        bmv2_build.find_tools()
    msg = str(err.value)
    assert "p4c" in msg and "simple_switch_grpc" in msg and "simple_switch_CLI" in msg
    assert "DESIGN.md" in msg
    assert bmv2_build.missing_reason() == msg


def test_compile_command_for_the_driver_and_the_backend():
    src, j, i = Path("c.p4"), Path("o.json"), Path("o.txtpb")
    assert bmv2_build.compile_command("/u/p4c", src, j, i)[:5] == [
        "/u/p4c", "--target", "bmv2", "--arch", "v1model"]
    assert bmv2_build.compile_command("/u/p4c-bm2-ss", src, j, i) == [
        "/u/p4c-bm2-ss", "--p4runtime-files", "o.txtpb", "-o", "o.json", "c.p4"]


def test_member_counter_index_matches_bmv2_crc16():
    assert bmv2_target.crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    assert bmv2_target.member_counter_index(port=17) == 17
    ep = IPv4Address("10.2.0.2")
    idx = bmv2_target.member_counter_index(endpoint=ep)
    assert idx == 512 + bmv2_target.crc16(bytes([10, 2, 0, 2])) % 512 and 512 <= idx < 1024
    with pytest.raises(ValueError):
        bmv2_target.member_counter_index()


def _fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reply: str) -> Path:
    """A simple_switch_CLI that records its stdin and prints ``reply``."""
    got = tmp_path / "stdin.txt"
    cli = tmp_path / "bin" / "simple_switch_CLI"
    cli.parent.mkdir()
    cli.write_text(f"#!/bin/sh\ncat > {got}\necho '{reply}'\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{cli.parent}:/usr/bin:/bin")
    return got


def test_thrift_setup_sets_crc32c_on_every_custom_crc_and_the_queue_depth(tmp_path,
                                                                          monkeypatch):
    got = _fake_cli(tmp_path, monkeypatch, "RuntimeCmd: ok")
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps({"calculations": [{"name": "calc", "algo": "crc32_custom"},
                                                {"name": "calc_0", "algo": "crc16"}]}))
    sent = bmv2_target.thrift_setup([], doc)
    assert got.read_text().splitlines() == sent == [
        "set_crc32_parameters calc 0x1edc6f41 0xffffffff 0xffffffff true true",
        f"set_queue_depth {bmv2_target.QUEUE_DEPTH}"]


def test_thrift_setup_reports_what_the_cli_refused(tmp_path, monkeypatch):
    _fake_cli(tmp_path, monkeypatch, "Error: Invalid crc name")
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps({"calculations": [{"name": "x", "algo": "crc32_custom"}]}))
    with pytest.raises(bmv2_target.Bmv2SetupError, match="Invalid crc name"):
        bmv2_target.thrift_setup([], doc)


def test_topology_check_says_whether_bmv2_can_run_here(tmp_path, monkeypatch, capsys):
    from topologies import cli

    topo = tmp_path / "t.yaml"
    topo.write_text((Path(bmv2_build.HERE).parent / "topologies" / "fig1.yaml").read_text()
                    + "\nconnector: bmv2\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no p4c, no BMv2
    assert cli.main(["check", str(topo)]) == 1
    out = capsys.readouterr().out
    assert "connector: bmv2 cannot run on this machine: not on PATH: p4c" in out
    for tool in ("p4c", "simple_switch_grpc", "simple_switch_CLI"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    assert cli.main(["check", str(topo)]) == 0
    assert "connector: bmv2 (p4c, simple_switch_grpc" in capsys.readouterr().out
