"""Bring-up tells the truth (issue #10): `up` says "up" only when every process it
started is alive and ready; `--policy` takes a shipped name or a path; a bad policy or a
process that dies fails the bring-up with a clear message and leaves nothing behind;
`down` stops one run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dmano.policy import shipped_policy_names
from tests.integration.conftest import ROOT, TOPO_DIR, our_namespaces, wait_for
from topologies import health, runstate
from topologies.network import Network
from topologies.spec import load_topology

FIG3 = TOPO_DIR / "paper_fig3.yaml"


def up(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "topologies", "up", str(FIG3), "--no-cli",
                             *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def read_until_up(proc: subprocess.Popen) -> str:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if " up in " in line:
            break
    return "".join(lines)


def statuses(run: runstate.Registry, nodes: list[str]) -> dict[str, dict]:
    return {n: json.loads((run.folder / f"r{n}" / "dmano.json").read_text()) for n in nodes}


@pytest.mark.parametrize("policy", ["static", "dmano/policies/static.yaml"])
def test_up_with_policy_name_or_relative_path(policy: str) -> None:
    topo = load_topology(FIG3)
    nodes = [n.name for n in topo.nodes]
    proc = up("--policy", policy)
    try:
        out = read_until_up(proc)
        assert " up in " in out, out
        [run] = [r for r in runstate.list_runs() if r.owner_pid == proc.pid]
        # "up" was printed only after every D-MANO was running and connected
        st = statuses(run, nodes)
        for n in nodes:
            assert st[n]["running"] and st[n]["ospf_api"]["connected"], (n, st[n])
            assert st[n]["policy"] == "static"
        # every process it started is still alive
        reg = runstate.Registry.load(run.folder)
        assert all(runstate.alive(p["pid"], p["start"]) for p in reg.processes)
        # down RUN_ID stops exactly this run
        down = subprocess.run([sys.executable, "-m", "topologies", "down", run.run_id],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"stopped run {run.run_id}" in down.stdout
        assert proc.wait(60) == 0
        assert not run.folder.exists()
        assert not [ns for ns in our_namespaces() if run.run_id in ns]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        assert proc.stdout is not None
        proc.stdout.close()


def test_bad_policy_fails_before_anything_is_created(tmp_path: Path) -> None:
    runs_before = {r.run_id for r in runstate.list_runs()}
    ns_before = set(our_namespaces())
    out = subprocess.run([sys.executable, "-m", "topologies", "up", str(FIG3), "--no-cli",
                          "--policy", "nosuch"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    shipped = ", ".join(shipped_policy_names())
    assert f"--policy: unknown policy 'nosuch' (shipped: {shipped}; or give a .yaml file)" \
        in out.stderr
    bad = tmp_path / "bad.yaml"
    static = (ROOT / "dmano" / "policies" / "static.yaml").read_text()
    assert "  function: inverse-cost\n" in static
    bad.write_text(static.replace("  function: inverse-cost\n", "  function: nonsense\n"))
    line = bad.read_text().splitlines().index("  function: nonsense") + 1
    out = subprocess.run([sys.executable, "-m", "topologies", "up", str(FIG3), "--no-cli",
                          "--policy", str(bad)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert f"{bad}:{line}: weight.function: expected one of" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "topologies", "up", str(FIG3), "--no-cli",
                          "--policy", "no/such/file.yaml"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert f"--policy: no policy file {ROOT}/no/such/file.yaml" in out.stderr
    assert {r.run_id for r in runstate.list_runs()} == runs_before
    assert set(our_namespaces()) == ns_before


class BrokenVnfNetwork(Network):
    """fw_d's VNF cannot start: its interface does not exist in its namespace."""

    def start_vnf(self, name: str) -> None:
        if name != "fw_d":
            super().start_vnf(name)
            return
        inst = next(i for i in self.topo.instances if i.name == name)
        self.start_process(f"vnf-{name}", name,
                           [sys.executable, "-m", "vnf", "--name", name, "--iface",
                            "nosuch0", "--service", "passthrough", "--capacity",
                            str(inst.capacity), "--stats",
                            str(self.run_folder / "vnf" / f"{name}.json")],
                           self.run_folder / "vnf" / f"{name}.log")


def test_process_dying_at_bring_up_fails_it_with_its_log() -> None:
    ns_before = set(our_namespaces())
    runs_before = {r.run_id for r in runstate.list_runs()}
    net = BrokenVnfNetwork(load_topology(FIG3), dmano=True, vnfs=True, connectors=True)
    with pytest.raises(health.BringUpError) as err:
        net.start()
    msg = str(err.value)
    assert msg.startswith("vnf-fw_d exited (1) during bring-up; the last lines of its log")
    assert "nosuch0" in msg  # the VNF's own words
    assert {r.run_id for r in runstate.list_runs()} == runs_before  # cleaned
    assert set(our_namespaces()) == ns_before


def test_bring_up_checks_a_dmano_that_dies_after_starting(tmp_path: Path) -> None:
    """A D-MANO that stops at start (here: its configuration file is missing) fails the
    bring-up with its exit code and log."""
    class CrashingDmano(Network):
        def start_dmano(self, node: str) -> None:
            if node != "C":
                super().start_dmano(node)
                return
            self.start_process(f"dmano-{node}", f"r{node}",
                               [sys.executable, "-m", "dmano", "--config",
                                str(tmp_path / "missing.yaml")],
                               self.run_folder / f"r{node}" / "dmano.log")

    net = CrashingDmano(load_topology(FIG3), dmano=True)
    with pytest.raises(health.BringUpError, match=r"dmano-C exited \(2\) during bring-up"):
        net.start()
    assert net.registry is None  # stopped and cleaned


def test_ready_waits_for_every_probe() -> None:
    with Network(load_topology(FIG3), dmano=True, vnfs=True, connectors=True) as net:
        names = sorted(p.name for p in net.probes())
        topo = net.topo
        assert names == sorted([f"connector-{n.name}" for n in topo.nodes]
                               + [f"dmano-{n.name}" for n in topo.nodes]
                               + [f"vnf-{i.name}" for i in topo.instances if i.start])
        assert all(p.ready() is None for p in net.probes())
        # a VNF killed now: its probe sees it, and wait_ready says so with its log
        os.kill(net.processes["vnf-fw_b"].pid, signal.SIGKILL)
        wait_for("vnf-fw_b gone", lambda: net.processes["vnf-fw_b"].poll() is not None, 10)
        with pytest.raises(health.BringUpError, match="vnf-fw_b was killed by signal 9"):
            net.wait_ready(5)
