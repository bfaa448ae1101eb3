"""A builder killed with SIGKILL leaves things behind; `clean` removes all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector_p4 import bmv2_build
from tests.integration.conftest import ROOT, TOPO_DIR, our_namespaces, root_veths
from topologies import runstate
from topologies.network import Network
from topologies.spec import load_topology


def pids_alive(pids: dict[str, int]) -> list[str]:
    return sorted(name for name, pid in pids.items() if runstate.alive(pid, None))


def wait_up(proc: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Read `up`'s output until it says it is up (or exits); return the lines."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if " up in " in line or (not line and proc.poll() is not None):
            break
    return lines


@pytest.mark.parametrize("connector", ["ebpf", "bmv2"])
def test_clean_after_sigkill_then_bring_up_again(connector, tmp_path):
    """`up` starts the whole system (routers, connectors, VNFs, D-MANOs); SIGKILL it and,
    at once, before anyone reaped it (a zombie), `clean` removes everything it made."""
    topo_file = TOPO_DIR / "paper_fig3.yaml"
    if connector == "bmv2":
        reason = bmv2_build.missing_reason()
        if reason:
            pytest.skip(f"BMv2 connector: {reason}")
        topo_file = tmp_path / "fig3_bmv2.yaml"
        topo_file.write_text((TOPO_DIR / "paper_fig3.yaml").read_text() + "\nconnector: bmv2\n")
    topo = load_topology(topo_file)
    before_veth = root_veths()
    t_start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "topologies", "up", str(topo_file), "--no-cli"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = wait_up(proc)
        assert " up in " in lines[-1] and "D-MANOs" in lines[-1], "".join(lines)
        runs = [r for r in runstate.list_runs() if r.owner_pid == proc.pid]
        assert len(runs) == 1
        reg = runstate.Registry.load(runs[0].folder)
        ours = [ns for ns in our_namespaces() if ns.startswith(f"dsfc-{reg.run_id}-")]
        assert len(ours) == 2 * len(topo.nodes) + len(topo.instances) + len(topo.hosts)
        frr = {p["name"]: p["pid"] for p in reg.processes
               if p["name"].endswith((":zebra", ":ospfd"))}
        assert len(frr) == 2 * len(topo.nodes)
        # the crash-log folder each daemon holds open (named after its PID before -d)
        crashlogs = [Path(p["crashlog"]) for p in reg.processes
                     if p["name"].endswith((":zebra", ":ospfd"))]
        assert len(crashlogs) == len(frr) and all(c.is_dir() for c in crashlogs)
        for name, pid in frr.items():  # each daemon runs in its router's namespace
            node = name.split(":")[0]
            assert pid in runstate.namespace_pids(reg.namespace_name(node))
        assert (runstate.BPF_ROOT / reg.run_id).is_dir()  # the pin folder of this run
        # connectors (eBPF server or simple_switch_grpc), VNFs and D-MANOs, by name
        ours_procs = {p["name"]: p["pid"] for p in reg.processes
                      if p["name"].startswith(("connector-", "vnf-", "dmano-"))}
        started_vnfs = [i for i in topo.instances if i.start]
        assert len(ours_procs) == 2 * len(topo.nodes) + len(started_vnfs), sorted(ours_procs)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    # the builder is gone (a zombie: nobody has reaped it yet), its daemons are not
    deadline = time.monotonic() + 10
    while runstate.alive(proc.pid, None) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(f"/proc/{proc.pid}").exists()  # still listed, as state Z
    assert not runstate.alive(proc.pid, None)
    assert pids_alive(frr) == sorted(frr) and pids_alive(ours_procs) == sorted(ours_procs)
    assert reg.folder.exists()

    try:
        out = subprocess.run([sys.executable, "-m", "topologies", "clean"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    finally:
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert reg.run_id in out.stdout  # on the first try
    assert not [ns for ns in our_namespaces() if reg.run_id in ns]
    assert pids_alive(frr) == [] and pids_alive(ours_procs) == []
    assert root_veths() - before_veth == set()
    assert not reg.folder.exists()
    assert not (runstate.BPF_ROOT / reg.run_id).exists()
    assert not [c for c in crashlogs if c.exists()]
    # nor any folder with a log buffer of one of its daemons written during this test
    # (not by folder name: that is the PID before -d forked, and PIDs wrap around, so a
    # folder left by an older daemon may carry the name of one of ours)
    assert not [b for pid in frr.values() for b in Path("/var/tmp/frr").glob(f"*/logbuf.{pid}")
                if b.stat().st_mtime >= t_start]

    # a second bring-up works
    with Network(load_topology(TOPO_DIR / "paper_fig3.yaml")) as net:
        assert net.nodes["src"].cmd("ping -c 1 -W 2 10.5.100.10").count("1 received") == 1


def test_clean_leaves_live_runs_alone():
    with Network(load_topology(TOPO_DIR / "paper_fig3.yaml")) as net:
        assert net.registry is not None
        run_id = net.registry.run_id
        out = subprocess.run([sys.executable, "-m", "topologies", "clean"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0
        assert f"run {run_id} is still in use by PID {os.getpid()}" in out.stderr
        assert run_id not in out.stdout
        assert net.registry.folder.exists()
        assert net.nodes["src"].cmd("ping -c 1 -W 2 10.5.100.10").count("1 received") == 1
