"""An instance's cpu_limit (issue #14 item 4): its VNF process runs in a cgroup with that
CPU quota from its first instruction, the D-MANO knows the limit (cost = CPU use over
the cores it may use), and the cgroup is gone with the run."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import TOPO_DIR, wait_for
from topologies import cgroups
from topologies.network import Network
from topologies.spec import load_topology


def test_vnf_runs_in_its_cpu_cgroup_and_the_cgroup_is_cleaned():
    topo = load_topology(TOPO_DIR / "scapy_cpu.yaml")
    limits = {i.name: i.cpu_limit for i in topo.instances}
    assert limits == {"m1": 0.1, "m2": 0.3}
    with Network(topo, vnfs=True, dmano=True) as net:
        assert net.registry is not None
        run_dirs = list(net.registry.cgroup_dirs)
        assert len(run_dirs) == 2
        for name, cores in limits.items():
            pid = net.processes[f"vnf-{name}"].pid
            folder = Path(next(d for d in run_dirs if d.endswith(f"vnf-{name}")))
            assert str(pid) in (folder / "cgroup.procs").read_text().split()
            _, version = cgroups.cpu_controller_root()
            if version == "v1":
                quota = int((folder / "cpu.cfs_quota_us").read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
            else:
                q, p = (folder / "cpu.max").read_text().split()
                quota, period = int(q), int(p)
            assert abs(quota / period - cores) < 1e-6
        # the D-MANO got the limit through its node configuration
        cfg = (net.run_folder / "rB" / "dmano.yaml").read_text()
        assert "cpu_cores: 0.1" in cfg
        wait_for("m1 up at B", lambda: (net.dmano_status("B") or {}).get(
            "local_instances", {}).get("m1", {}).get("up"), 20)
    for d in run_dirs:
        assert not Path(d).exists()
    assert not (Path(run_dirs[0]).parent).exists()  # the run's cgroup folder too
