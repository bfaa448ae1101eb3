"""topologies.cluster without a second server or a node shell: the remote registry
(written through servers.write_file, or through the fake ssh of ssh_helpers), the
remote node class over Cluster Edition's RemoteMixin and its text-mode pipes, the
underlay MTU and the commands of a VXLAN tunnel (servers.run monkeypatched)."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mininet.examples.cluster import RemoteMixin
from mininet.node import Node

from tests.unit.ssh_helpers import FakeSsh
from topologies import cluster, servers
from topologies.cluster import (
    RemoteRegistry,
    VxlanTunnelLink,
    make_remote_node_class,
    remote_registry,
    underlay_mtu,
)
from topologies.network import NsNode, RemoteNsNode
from topologies.runstate import Registry
from topologies.servers import ServerSpec

S2 = ServerSpec("s2", "10.99.0.2")
LOCAL = ServerSpec("local", "localhost")


def proc(stdout: str = "", rc: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], rc, stdout, "")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ServerSpec, Path, dict]]:
    """What servers.write_file was asked to write (the JSON decoded)."""
    out: list[tuple[ServerSpec, Path, dict]] = []

    def write_file(server: ServerSpec, path: Path, text: str, mode: int | None = None):
        out.append((server, path, json.loads(text)))

    monkeypatch.setattr(servers, "write_file", write_file)
    return out


# -- the remote registry -------------------------------------------------------------------
def test_remote_registry_save_writes_there(writes, tmp_path: Path) -> None:
    reg = RemoteRegistry(run_id="r1", folder=tmp_path / "r1", owner_pid=1234,
                         owner_start=99, topology="/t/spread.yaml", server=S2)
    reg.save()
    [(server, path, data)] = writes
    assert server == S2 and path == tmp_path / "r1" / "registry.json"
    assert data == {"run_id": "r1", "owner_pid": 0, "owner_start": None,  # no owner there
                    "owner": "/t/spread.yaml", "topology": "/t/spread.yaml",
                    "namespaces": [], "bpf_dirs": [], "processes": [], "cgroup_dirs": []}
    assert not (tmp_path / "r1").exists()  # nothing written here
    # a registry file written so is one that runstate there can load
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "registry.json").write_text(json.dumps(data))
    loaded = Registry.load(tmp_path / "r1")
    assert (loaded.run_id, loaded.owner_pid, loaded.topology) == ("r1", 0, "/t/spread.yaml")
    assert not loaded.owner_alive()


def test_remote_registry_records_before_each_resource(writes, tmp_path: Path) -> None:
    reg = RemoteRegistry(run_id="r1", folder=tmp_path, topology="t", server=S2)
    reg.add_namespace("dsfc-r1-B")
    reg.add_process(4321, "B:zebra", start=777)
    reg.add_process(4322, "B:dmano")  # start unknown
    reg.add_bpf_dir(Path("/sys/fs/bpf/dsfc/r1/B"))
    assert len(writes) == 4  # one write per record
    assert writes[1][2]["namespaces"] == ["dsfc-r1-B"]
    assert writes[1][2]["processes"] == [{"pid": 4321, "start": 777, "name": "B:zebra"}]
    assert writes[-1][2]["processes"][1] == {"pid": 4322, "start": None, "name": "B:dmano"}
    assert writes[-1][2]["bpf_dirs"] == ["/sys/fs/bpf/dsfc/r1/B"]


def test_remote_registry_save_needs_a_server(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        RemoteRegistry(run_id="r1", folder=tmp_path).save()


def test_remote_registry_creates_the_run_folder_there(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh(tmp_path / "fake", monkeypatch)
    folder = tmp_path / "run" / "0101000000beef"
    local = Registry(run_id="0101000000beef", folder=folder, owner_pid=5,
                     topology="/t/spread.yaml")
    reg = remote_registry(S2, local)
    assert (reg.run_id, reg.folder, reg.topology, reg.server) == (
        local.run_id, folder, "/t/spread.yaml", S2)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    data = json.loads((folder / "registry.json").read_text())
    assert data["run_id"] == "0101000000beef" and data["owner_pid"] == 0
    assert [c[-2] for c in ssh.calls] == ["root@10.99.0.2"] * 2  # mkdir, then the file
    assert ssh.calls[0][-1] == f"mkdir -p -m 755 {folder}"


# -- remote nodes ------------------------------------------------------------------------------
def test_remote_node_class_is_remote_mixin_over_base() -> None:
    mro = RemoteNsNode.__mro__
    assert mro.index(RemoteMixin) < mro.index(NsNode) < mro.index(Node)
    assert issubclass(RemoteNsNode, NsNode)
    other = make_remote_node_class(Node)
    assert other is not RemoteNsNode and other.__mro__[1:] == (RemoteMixin, Node, object)
    assert other.__name__ == "RemoteNsNode"


class FakePipe:
    def __init__(self, text: str):
        self.text = text
        self.stdout = self

    def poll(self) -> int:
        return 0

    def read(self) -> str:
        out, self.text = self.text, ""
        return out


def test_rpopen_opens_text_pipes() -> None:
    """Cluster Edition's rpopen is binary; ours asks _popen for UTF-8 text, so that its
    rcmd (which adds str) works. No node shell: an object without __init__."""
    node = RemoteNsNode.__new__(RemoteNsNode)
    calls: list[tuple[tuple, dict]] = []

    def _popen(*cmd: Any, **params: Any) -> FakePipe:
        calls.append((cmd, params))
        return FakePipe("été\n")

    node._popen = _popen  # type: ignore[method-assign]
    assert node.rcmd("ip", "link") == "été\n"
    [(cmd, params)] = calls
    assert cmd == ("ip", "link")
    assert params["encoding"] == "utf-8"
    assert params["stdin"] == subprocess.PIPE and params["stdout"] == subprocess.PIPE
    assert params["stderr"] == subprocess.STDOUT and params["sudo"] is True
    node.rpopen("x", encoding="latin-1", sudo=False)  # the caller's choice wins
    assert calls[1][1]["encoding"] == "latin-1" and calls[1][1]["sudo"] is False


def test_rcmd_reads_a_real_pipe_as_text() -> None:
    """The same with a real process behind _popen (what Cluster Edition does, without
    ssh): Popen with the given params, so bytes would fail in rcmd's ``result +=``."""
    node = RemoteNsNode.__new__(RemoteNsNode)

    def _popen(cmd: Any, sudo: bool = True, tt: bool = True, **params: Any):
        return subprocess.Popen(["sh", "-c", cmd], **params)

    node._popen = _popen  # type: ignore[method-assign]
    assert node.rcmd("printf 'a\\nb'") == "a\nb"


# -- underlay and tunnels ----------------------------------------------------------------------
def test_underlay_mtu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[ServerSpec, str, bool]] = []
    answers = iter([proc("9000\n"), proc("1500"), proc(""), proc("cat: x: No such file", 1)])

    def run(spec: ServerSpec, cmd: str, timeout: float = 30, check: bool = True):
        calls.append((spec, cmd, check))
        return next(answers)

    monkeypatch.setattr(servers, "run", run)
    assert underlay_mtu(S2, "10.99.0.1") == 9000
    assert underlay_mtu(None, "10.99.0.2") == 1500
    assert underlay_mtu(S2, "10.99.0.1") is None
    assert underlay_mtu(S2, "10.99.0.1") is None
    assert calls[0][0] == S2 and calls[1][0].local  # None: this machine
    assert not any(check for _, _, check in calls)  # a failure is None, not an error
    assert calls[0][1].startswith("dev=$(ip route get 10.99.0.1 |")
    assert calls[0][1].endswith("; cat /sys/class/net/$dev/mtu")


def test_underlay_mtu_here_for_real() -> None:
    lo = int(Path("/sys/class/net/lo/mtu").read_text())
    assert underlay_mtu(None, "127.0.0.1") == lo


class FakeNode:
    def __init__(self, name: str, pid: int, server: str = "localhost",
                 server_ip: str = "", out: str = ""):
        self.name, self.pid, self.server, self.serverIP = name, pid, server, server_ip
        self.out = out
        self.cmds: list[str] = []

    def cmd(self, c: str) -> str:
        self.cmds.append(c)
        return self.out


def test_tunnel_endpoints_of_a_remote_and_this_machine() -> None:
    here, there = FakeNode("A", 1), FakeNode("B", 2, "10.99.0.2", "127.0.0.1")
    # this machine's end: its source address toward the other server
    assert cluster.tunnel_endpoints(here, there) == ("127.0.0.1", "127.0.0.1")
    assert cluster.tunnel_endpoints(there, FakeNode("C", 3, "10.99.0.3", "10.99.0.3"))[0] \
        == "127.0.0.1"


def test_vxlan_tunnel_commands(monkeypatch: pytest.MonkeyPatch,
                               caplog: pytest.LogCaptureFixture) -> None:
    runs: list[tuple[ServerSpec, str]] = []
    monkeypatch.setattr(servers, "run", lambda spec, cmd, **kw: runs.append((spec, cmd)))
    monkeypatch.setattr(cluster, "tunnel_endpoints", lambda a, b: ("10.99.0.1", "10.99.0.2"))
    mtus = {None: 9000, S2: 1500}
    monkeypatch.setattr(cluster, "underlay_mtu", lambda spec, peer: mtus[spec])
    a, b = FakeNode("A", 100), FakeNode("B", 200, "10.99.0.2", "10.99.0.2")
    link = VxlanTunnelLink.__new__(VxlanTunnelLink)  # no RemoteLink.__init__: no nodes
    link.vni, link.mtu, link.specs = 0x1a, 1600, (None, S2)
    with caplog.at_level(logging.WARNING, logger="topologies.cluster"):
        assert link.makeTunnel(a, b, "A-eth1", "B-eth1")
    assert [spec for spec, _ in runs] == [ServerSpec("local", "localhost"), S2]
    assert runs[0][1] == ("ip link add dsfcvx00001a mtu 1600 type vxlan id 26 local "
                          "10.99.0.1 remote 10.99.0.2 dstport 4789 df unset && "
                          "ip link set dsfcvx00001a netns 100")
    assert "local 10.99.0.2 remote 10.99.0.1" in runs[1][1] and runs[1][1].endswith(" 200")
    assert a.cmds == ["ip link set dsfcvx00001a name A-eth1"]
    assert b.cmds == ["ip link set dsfcvx00001a name B-eth1"]
    # only s2's underlay (1500) is too small for 1600-byte inner frames
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("server s2 (root@10.99.0.2): MTU 1500 toward 10.99.0.1 "
                              "carries at most 1450-byte tunnel frames; link B-eth1")
    assert link.tunnel


def test_vxlan_tunnel_rename_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "run", lambda spec, cmd, **kw: None)
    monkeypatch.setattr(cluster, "tunnel_endpoints", lambda a, b: ("10.99.0.1", "10.99.0.2"))
    monkeypatch.setattr(cluster, "underlay_mtu", lambda spec, peer: None)
    link = VxlanTunnelLink.__new__(VxlanTunnelLink)
    link.vni, link.mtu, link.specs = 1, 1600, (None, S2)
    a = FakeNode("A", 100, out="RTNETLINK answers: File exists\n")
    with pytest.raises(RuntimeError, match=r"^A: renaming dsfcvx000001 to A-eth1: RTNETLINK"):
        link.makeTunnel(a, FakeNode("B", 200), "A-eth1", "B-eth1")
