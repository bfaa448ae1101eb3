"""Spread networks (issue #15): one topology over two servers with Mininet Cluster
Edition, the second server emulated on this machine (topologies.emuserver: a network
namespace with its own sshd and its own /run, reached only over ssh).

* paper_fig4_short with nodes B and D on the second server: the shares of a single-box
  run, 0 packets lost, VXLAN-GPE/NSH inside the cross-server VXLAN tunnel (tshark), and
  nothing of dsfc left on either server afterwards;
* a topology split by the min-cut rule: every D-MANO's tables equal those of the same
  topology on one server;
* a server without sudo: ``servers check`` names it and ``up`` creates nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dmano.policy import shipped_policy
from scenarios.crosscheck import differences, emulated, simulated
from tests.integration.conftest import ROOT, TOPO_DIR, our_namespaces
from tests.integration.fig4_checks import check_fig4_short
from topologies import emuserver, servers
from topologies.network import Network
from topologies.servers import SSH_CONFIG_ENV, ServerSpec
from topologies.spec import load_topology

INDEX = 7  # 10.99.7.2


@pytest.fixture(scope="module")
def server() -> Iterator[emuserver.EmuServer]:
    emuserver.stop("t2")  # a previous run killed before its teardown
    srv = emuserver.start("t2", INDEX)
    old = os.environ.get(SSH_CONFIG_ENV)
    os.environ[SSH_CONFIG_ENV] = str(srv.ssh_config)
    try:
        yield srv
    finally:
        if old is None:
            os.environ.pop(SSH_CONFIG_ENV, None)
        else:
            os.environ[SSH_CONFIG_ENV] = old
        sshd = json.loads(srv.state_file.read_text())["pid"]
        emuserver.stop("t2")
        # nothing of the emulated server either: its sshd, namespace, veth, files
        assert not Path(f"/proc/{sshd}").exists() or \
            "Z" in Path(f"/proc/{sshd}/stat").read_text().split(")")[1][:3]
        assert srv.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                               text=True).stdout
        assert not srv.folder.exists()


def spread(base: Path, out: Path, srv: emuserver.EmuServer, placement: str) -> Path:
    """``base`` with a servers: section (this machine and ``srv``) and ``placement``."""
    text = base.read_text() + (
        "\nservers:\n  - {name: main, address: localhost}\n"
        f"  - {{name: {srv.name}, address: {srv.address}}}\nplacement:\n{placement}")
    out.write_text(text)
    return out


def remote_leftovers(srv: emuserver.EmuServer) -> str:
    """What dsfc left on the emulated server (empty: nothing): namespaces, run folders,
    pins, tunnel devices there, and dsfc processes on this machine, which the emulated
    server shares (but the test's own: its spawn fork server)."""
    spec = ServerSpec(srv.name, srv.address)
    script = ("ls -A /run/netns /run/dsfc /sys/fs/bpf/dsfc 2>/dev/null | grep -v ':$' ; "
              "ip -o link show | grep -o 'dsfcvx[0-9a-f]*' ; true")
    left = servers.run(spec, script).stdout.strip().splitlines()
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True,
                        text=True).stdout.splitlines()
    parent = {int(ln.split()[0]): int(ln.split()[1]) for ln in ps}
    mine = {os.getpid()}
    for pid in sorted(parent):  # descendants of this test process
        p, seen = pid, set()
        while p in parent and p not in seen and p > 1:
            seen.add(p)
            if parent[p] in mine:
                mine.add(pid)
                break
            p = parent[p]
    words = ("dmano", "p4rt_server", "topologies.rexec", "topologies.mirror", "zebra -u frr",
             "ospfd -u frr", "bfdd -u frr", "mnexec", "-m vnf")
    left += [ln for ln in ps if int(ln.split()[0]) not in mine
             and any(w in ln for w in words)]
    return "\n".join(left)


def test_paper_fig4_short_over_two_servers(server: emuserver.EmuServer, tmp_path: Path):
    topo = spread(TOPO_DIR / "paper_eval.yaml", tmp_path / "paper_eval_2.yaml", server,
                  "  nodes: {B: t2, D: t2}\n")
    scen = tmp_path / "fig4_2.yaml"
    scen.write_text((ROOT / "scenarios" / "paper_fig4_short.yaml").read_text().replace(
        "topology: ../topologies/paper_eval.yaml", f"topology: {topo}"))
    cap = tmp_path / "tunnel.pcap"
    # the cross-server links A-B and A-D: VXLAN (UDP 4789) on the servers' veth
    tshark = subprocess.Popen(["tshark", "-q", "-i", server.host_iface, "-a", "duration:60",
                               "-f", "udp port 4789", "-w", str(cap)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([sys.executable, "-m", "scenarios", "run", str(scen),
                              "--output", str(tmp_path)], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    finally:
        tshark.terminate()
        tshark.wait(30)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = Path(out.stdout.strip().splitlines()[-1].removeprefix("results: "))
    check_fig4_short(folder)  # the bounds of the single-box run
    run = folder / "run-01"
    # the files of the second server's processes came back: D-MANO logs of B and D,
    # VNF counters of svc_b and svc_d, and their OSPF counters in control.csv
    logs = run / "logs"
    for name in ("rB_dmano.log", "rD_dmano.log", "vnf_svc_b.json", "vnf_svc_d.json"):
        assert (logs / name).stat().st_size > 0, name
    # real NSH inside the tunnels: VXLAN (UDP 4789, one VNI per cross-server link) >
    # Ethernet > IPv4 > UDP 4790 VXLAN-GPE (next protocol 4: NSH) > NSH > the packet
    fields = subprocess.run(
        ["tshark", "-r", str(cap), "-Y", "nsh", "-T", "fields", "-e", "udp.dstport",
         "-e", "vxlan.vni", "-e", "vxlan.next_proto", "-e", "nsh.spi", "-e", "nsh.si"],
        capture_output=True, text=True, timeout=120).stdout.split("\n")
    rows = [ln.split("\t") for ln in fields if ln.strip()]
    assert len(rows) > 100, f"{len(rows)} NSH packets in the tunnels"
    assert all(r[0].startswith("4789,4790") and r[2] == "4" and r[3] == "1" for r in rows)
    assert len({r[1].split(",")[0] for r in rows}) == 2, "NSH through both tunnels (A-B, A-D)"
    # nothing left: here and on the second server
    assert not [ns for ns in our_namespaces()], our_namespaces()
    assert remote_leftovers(server) == ""


def test_min_cut_placement_gives_the_single_server_tables(server: emuserver.EmuServer,
                                                          tmp_path: Path):
    base = TOPO_DIR / "central10.yaml"
    topo2 = load_topology(spread(base, tmp_path / "central10_2.yaml", server,
                                 "  rule: min-cut\n  seed: 3\n"))
    on = {s.name: [n for n, v in topo2.placement.items() if v == s.name]
          for s in topo2.servers}
    assert on["main"] and on["t2"], on
    assert topo2.cut_links(), "the rule splits the network: some links cross"
    policy = shipped_policy("paper")
    with Network(load_topology(base), policy=policy, dmano=True, vnfs=True,
                 connectors=True) as net:
        one = emulated(net)
    with Network(topo2, policy=policy, dmano=True, vnfs=True, connectors=True) as net:
        assert net.remote_servers() == [ServerSpec("t2", server.address)]
        two = emulated(net)
        # the second server's routers answer vtysh there (through ssh)
        node = on["t2"][0]
        assert "Full" in net.routers[node].vtysh("show ip ospf neighbor")
    assert two == one
    assert remote_leftovers(server) == ""


def test_ssh_tunnel_links(server: emuserver.EmuServer, tmp_path: Path):
    """tunnel: ssh (Cluster Edition's ssh -w link): the same tables as the simulation of
    the topology (equal to one machine's, test_crosscheck), and its ssh ends with it."""
    path = spread(TOPO_DIR / "paper_eval.yaml", tmp_path / "ssh.yaml", server,
                  "  nodes: {B: t2, D: t2}\ntunnel: ssh\n")
    topo = load_topology(path)
    policy = shipped_policy("paper")
    with Network(topo, policy=policy, dmano=True, vnfs=True, connectors=True) as net:
        emu = emulated(net)
        tunnels = [p for p in net.registry.processes if p["name"].startswith("tunnel-")]
        assert sorted(p["name"] for p in tunnels) == ["tunnel-A-B", "tunnel-A-D"]
        out = net.nodes["rA"].cmd("ip -d link show to-B; ping -c 3 -i 0.2 10.0.0.2")
        assert "tun type tap" in out and " 0% packet loss" in out, out
        assert "mtu 1600" in out
    assert differences(emu, simulated(topo, policy)) == []
    assert all(not Path(f"/proc/{p['pid']}").exists() for p in tunnels)
    assert remote_leftovers(server) == ""


def test_a_server_without_sudo_is_named_and_nothing_is_built(tmp_path: Path):
    emuserver.stop("t3")
    srv = emuserver.start("t3", INDEX + 1, hide=("sudo",))
    env = {**os.environ, SSH_CONFIG_ENV: str(srv.ssh_config)}
    try:
        spread(TOPO_DIR / "paper_eval.yaml", tmp_path / "t3.yaml", srv, "  nodes: {B: t3}\n")
        check = subprocess.run([sys.executable, "-m", "topologies", "servers", "check",
                                str(tmp_path / "t3.yaml")], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert check.returncode == 1, check.stdout + check.stderr
        assert "sudo" in check.stdout and "MISSING" in check.stdout, check.stdout
        before = set(our_namespaces())
        t0 = time.monotonic()
        up = subprocess.run([sys.executable, "-m", "topologies", "up",
                             str(tmp_path / "t3.yaml"), "--no-cli"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
        assert up.returncode != 0
        assert "server t3" in up.stderr and "sudo" in up.stderr, up.stderr
        assert time.monotonic() - t0 < 60
        assert set(our_namespaces()) == before
    finally:
        emuserver.stop("t3")
