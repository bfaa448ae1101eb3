"""D-MANOs on real FRR: VNF announcements, service tables, failures (issue: D-MANO).

The VNFs' counters are written by ``tests.loadsim.SyntheticLoad`` so that each test
controls the load a VNF reports; everything else is real: FRR, the OSPF API, the LSAs,
the D-MANO processes in the router namespaces.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import networkx as nx
import pytest

from dmano.policy import load_policy, shipped_policy
from tests.integration.conftest import TOPO_DIR, wait_for
from tests.loadsim import SyntheticLoad
from topologies import addressing as addr
from topologies.network import Network
from topologies.spec import Topology, load_topology


def table(net: Network, node: str) -> dict[str, tuple[int, int, int, int]] | None:
    """instance name -> (network cost, vnf cost, path cost, weight) at node."""
    st = net.dmano_status(node)
    if not st or not st.get("running"):
        return None
    return {c["name"]: (c["network_cost"], c["vnf_cost"], c["path_cost"], c["weight"])
            for svc in st["services"] for c in svc["candidates"]}


def expected_tables(topo: Topology, costs: dict[str, int], policy_name: str):
    """Computed from the YAML alone with networkx (plus the policy's weight rule)."""
    g = nx.Graph()
    for lk in topo.links:
        g.add_edge(lk.a, lk.b, weight=lk.cost)
    dist = dict(nx.all_pairs_dijkstra_path_length(g))
    policy = load_policy(shipped_policy(policy_name))
    out = {}
    for n in topo.nodes:
        rows = {i.name: (dist[n.name][i.node], costs[i.name]) for i in topo.instances}
        names = sorted(rows)
        weights = policy.wcmp_weights([rows[x][0] + rows[x][1] for x in names])
        out[n.name] = {x: (rows[x][0], rows[x][1], rows[x][0] + rows[x][1], w)
                       for x, w in zip(names, weights, strict=True)}
    return out


@pytest.fixture(scope="module")
def fig3_static():
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=shipped_policy("static"), dmano=True) as net:
        counters = SyntheticLoad(net)
        try:
            yield net
        finally:
            counters.close()


def test_tables_equal_independent_computation(fig3_static):
    net, topo = fig3_static, fig3_static.topo
    want = expected_tables(topo, {"fw_b": 20, "fw_d": 10}, "static")
    # the paper's Fig. 3: from A, the FW costs 30 via B and 25 via D; D is preferred
    assert want["A"]["fw_b"][2] == 30 and want["A"]["fw_d"][2] == 25
    assert want["A"]["fw_d"][3] > want["A"]["fw_b"][3]
    for n in topo.nodes:
        wait_for(f"table at {n.name}", lambda n=n: table(net, n.name) == want[n.name], 20)


def test_lsas_visible_on_remote_router(fig3_static):
    out = fig3_static.routers["E"].vtysh("show ip ospf database opaque-area")
    assert out.count("Opaque-Type 230") == 2
    assert "Advertising Router: 10.255.0.2" in out and "Advertising Router: 10.255.0.4" in out


def test_show_command(fig3_static):
    import subprocess

    cfg = fig3_static.dmano_config("A")
    out = subprocess.run([sys.executable, "-m", "dmano", "show", "--config", str(cfg)],
                         capture_output=True, text=True, check=True).stdout
    assert "service 1 (FW) anycast 10.254.1.1: 2 candidate(s)" in out
    assert "fw_d" in out and "fw_b" in out


def test_malformed_lsa_is_counted_and_ignored(fig3_static):
    """A router originates a garbage opaque LSA of our type with FRR's own client."""
    net = fig3_static
    script = ("import asyncio, sys; sys.path.insert(0, '/usr/lib/frr'); "
              "from dmano.ospf_api import load_ospfclient, client_class\n"
              "async def main():\n"
              "    oc = load_ospfclient(); c = client_class(oc)('127.0.0.1')\n"
              "    await c.connect(); await c.register_opaque_data(10, 230)\n"
              "    await c.add_opaque_data(0, 10, 230, 77, bytes.fromhex('00010004ff000000'))\n"
              "    await asyncio.sleep(30)\n"
              "asyncio.run(main())\n")
    path = net.run_folder / "bad_lsa.py"
    path.write_text(script)
    net.start_process("bad-lsa", "rC", [sys.executable, str(path)],
                      net.run_folder / "bad_lsa.log")
    try:
        for n in net.topo.nodes:
            wait_for(f"malformed LSA counted at {n.name}",
                     lambda n=n: (net.dmano_status(n.name) or {}).get("lsdb", {})
                     .get("malformed", {}).get("unknown_version"), 15)
        for n in net.topo.nodes:
            assert net.processes[f"dmano-{n.name}"].poll() is None  # still running
            assert len(table(net, n.name) or {}) == 2  # and still computing
    finally:
        net.stop_process("bad-lsa")


@pytest.fixture()
def fig3_paper():
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=shipped_policy("paper"), dmano=True) as net:
        counters = SyntheticLoad(net)
        try:
            yield net, counters
        finally:
            counters.close()


def test_load_change_reaches_every_node(fig3_paper):
    net, counters = fig3_paper
    nodes = [n.name for n in net.topo.nodes]
    # idle: remaining capacity 150 on both
    for n in nodes:
        wait_for(f"idle costs at {n}",
                 lambda n=n: {k: v[1] for k, v in (table(net, n) or {}).items()}
                 == {"fw_b": 150, "fw_d": 150}, 20)
    before = {n: table(net, n) for n in nodes}
    counters.rates["fw_d"] = 100.0  # fw_d now has 50 units left
    period = 2.0
    t0 = time.monotonic()
    for n in nodes:
        wait_for(f"new cost at {n}", lambda n=n: (table(net, n) or {}).get("fw_d", (0, 0))[1]
                 == 50, 4 * period)
    took = time.monotonic() - t0
    assert took < 3 * period
    for n in nodes:
        after = table(net, n)
        assert after["fw_d"][3] < before[n]["fw_d"][3] or after["fw_b"][3] > before[n]["fw_b"][3]


def test_killed_dmano_withdraws_its_instances(fig3_paper):
    net, _ = fig3_paper
    for n in net.topo.nodes:
        wait_for(f"both instances at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2,
                 20)
    net.stop_process("dmano-B", sig=signal.SIGKILL)
    for n in net.topo.nodes:
        if n.name != "B":
            wait_for(f"fw_b withdrawn at {n.name}",
                     lambda n=n: set(table(net, n.name) or {"x"}) == {"fw_d"}, 15)
    # flushed: a remote router holds B's LSA only at MaxAge (FRR removes it ~60 s later)
    def b_lsas_max_age() -> bool:
        out = net.routers["E"].vtysh("show ip ospf database opaque-area")
        blocks = [b for b in out.split("LS age:") if "Advertising Router: 10.255.0.2" in b]
        return all(b.split()[0] == "3600" for b in blocks)
    wait_for("B's LSA flushed at E", b_lsas_max_age, 15)


def test_ospfd_restart_recovers_without_restarting_dmano(fig3_paper):
    net, _ = fig3_paper
    for n in net.topo.nodes:
        wait_for(f"both instances at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2,
                 20)
    dmano_d = net.processes["dmano-D"]
    net.stop_daemon("D", "ospfd")
    for n in net.topo.nodes:  # D's announcement is gone with its ospfd ...
        if n.name != "D":
            wait_for(f"fw_d gone at {n.name}",
                     lambda n=n: "fw_d" not in (table(net, n.name) or {"fw_d": 1}), 20)
    net.start_daemon("D", "ospfd")
    for n in net.topo.nodes:  # ... and back once ospfd runs again, same D-MANO process
        wait_for(f"fw_d back at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2, 30)
    assert dmano_d.poll() is None and net.processes["dmano-D"] is dmano_d
    assert net.dmano_status("D")["ospf_api"]["connections"] >= 2
    # routing converged again too
    net.wait_converged(30)
    assert addr.loopback(4).network in __import__(
        "topologies.readiness", fromlist=["x"]).ospf_route_costs(net.routers["A"])


def test_dmano_config_errors_name_file_and_field(tmp_path: Path):
    import subprocess

    bad = tmp_path / "node.yaml"
    bad.write_text("node: A\nrouter_id: 10.255.0.300\n")
    out = subprocess.run([sys.executable, "-m", "dmano", "check", "--config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert f"{bad}:2: router_id: expected an IPv4 address" in out.stderr


def both(t: dict | None) -> bool:
    """A's table lists both FW instances (their announcements arrive one by one)."""
    return bool(t) and {"fw_b", "fw_d"} <= set(t)


def test_policy_reload_on_sigusr1(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(shipped_policy("static").read_text())
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=policy, dmano=True) as net, SyntheticLoad(net):
        wait_for("inverse-cost weights at A",
                 lambda: both(t := table(net, "A")) and t["fw_d"][3] > t["fw_b"][3], 20)
        policy.write_text(policy.read_text().replace("function: inverse-cost",
                                                     "function: proportional-cost"))
        for n in topo.nodes:
            net.processes[f"dmano-{n.name}"].send_signal(signal.SIGUSR1)
        wait_for("proportional weights at A",
                 lambda: both(t := table(net, "A")) and t["fw_b"][3] > t["fw_d"][3], 10)
        # a broken file is refused and the daemon keeps its policy
        policy.write_text("weight: {function: nonsense}\n")
        net.processes["dmano-A"].send_signal(signal.SIGUSR1)
        time.sleep(1)
        assert net.processes["dmano-A"].poll() is None
        assert "policy not reloaded" in (net.run_folder / "rA" / "dmano.log").read_text()


def test_vnf_process_gone_is_withdrawn_everywhere():
    """Real VNF processes: SIGKILL one and its instance disappears from every table."""
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=shipped_policy("static"), dmano=True, vnfs=True) as net:
        for n in topo.nodes:
            wait_for(f"both instances at {n.name}",
                     lambda n=n: len(table(net, n.name) or {}) == 2, 20)
        net.stop_vnf("fw_d", signal.SIGKILL)
        t0 = time.monotonic()
        for n in topo.nodes:
            wait_for(f"fw_d withdrawn at {n.name}",
                     lambda n=n: set(table(net, n.name) or {"x"}) == {"fw_b"}, 10)
        assert time.monotonic() - t0 < 3 * 2.0  # within a few periods
        st = net.dmano_status("D")
        assert "gone" in st["local_instances"]["fw_d"]["reason"]
        # and it comes back when the VNF is started again
        net.start_vnf("fw_d")
        for n in topo.nodes:
            wait_for(f"fw_d back at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2,
                     15)
