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


def frr_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "zebra|ospfd"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


@pytest.mark.parametrize("connector", ["ebpf", "bmv2"])
def test_clean_after_sigkill_then_bring_up_again(connector, tmp_path):
    """`up` starts the whole system (routers, connectors, VNFs, D-MANOs); SIGKILL it."""
    topo_file = TOPO_DIR / "paper_fig3.yaml"
    if connector == "bmv2":
        reason = bmv2_build.missing_reason()
        if reason:
            pytest.skip(f"BMv2 connector: {reason}")
        topo_file = tmp_path / "fig3_bmv2.yaml"
        topo_file.write_text((TOPO_DIR / "paper_fig3.yaml").read_text() + "\nconnector: bmv2\n")
    before_frr, before_veth = frr_pids(), root_veths()
    proc = subprocess.Popen(
        [sys.executable, "-m", "topologies", "up", str(topo_file), "--no-cli"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if " up in " in line or proc.poll() is not None:
                break
        assert " up in " in lines[-1] and "D-MANOs" in lines[-1], "".join(lines)
        runs = [r for r in runstate.list_runs() if r.owner_pid == proc.pid]
        assert len(runs) == 1
        reg = runs[0]
        ours = [ns for ns in our_namespaces() if ns.startswith(f"dsfc-{reg.run_id}-")]
        assert len(ours) == 5 * 2 + 2 + 2  # routers, connectors, VNFs, hosts
        new_frr = frr_pids() - before_frr
        assert len(new_frr) == 10
        assert (runstate.BPF_ROOT / reg.run_id).is_dir()  # the pin folder of this run
        # connectors (eBPF server or simple_switch_grpc), VNFs and D-MANOs, by name
        reg = runstate.Registry.load(reg.folder)
        ours_procs = {p["name"]: p["pid"] for p in reg.processes
                      if p["name"].startswith(("connector-", "vnf-", "dmano-"))}
        assert len(ours_procs) == 5 + 2 + 5, sorted(ours_procs)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the builder is gone, its daemons, processes and namespaces are not
    assert all(Path(f"/proc/{p}").exists() for p in new_frr)
    assert all(Path(f"/proc/{p}").exists() for p in ours_procs.values())
    assert reg.folder.exists()

    out = subprocess.run([sys.executable, "-m", "topologies", "clean"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert reg.run_id in out.stdout
    assert not [ns for ns in our_namespaces() if reg.run_id in ns]
    assert frr_pids() - before_frr == set()
    assert not [n for n, p in ours_procs.items() if Path(f"/proc/{p}").exists()]
    assert root_veths() - before_veth == set()
    assert not reg.folder.exists()
    assert not (runstate.BPF_ROOT / reg.run_id).exists()
    assert not [p for p in Path("/var/tmp/frr").glob("*")
                if p.name.split(".")[-1].isdigit() and int(p.name.split(".")[-1]) in new_frr]

    # a second bring-up works
    with Network(load_topology(TOPO_DIR / "paper_fig3.yaml")) as net:
        assert net.nodes["src"].cmd("ping -c 1 -W 2 10.5.100.10").count("1 received") == 1


def test_clean_leaves_live_runs_alone(tmp_path):
    with Network(load_topology(TOPO_DIR / "paper_fig3.yaml")) as net:
        # a run owned by a live process (this one) is not touched without --force
        fake = runstate.Registry(run_id="x", folder=tmp_path, owner_pid=os.getpid(),
                                 owner_start=runstate.proc_start_time(os.getpid()))
        assert fake.owner_alive()
        out = subprocess.run([sys.executable, "-m", "topologies", "clean"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert "still in use" in out.stderr
        assert net.registry is not None and net.registry.folder.exists()
        assert net.nodes["src"].cmd("ping -c 1 -W 2 10.5.100.10").count("1 received") == 1
