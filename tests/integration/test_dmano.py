"""D-MANOs on real FRR: VNF announcements, service tables, failures (issue: D-MANO).

The VNFs' counters are written by ``tests.loadsim.SyntheticLoad`` so that each test
controls the load a VNF reports; everything else is real: FRR, the OSPF API, the LSAs,
the D-MANO processes in the router namespaces.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import networkx as nx
import pytest

from dmano import lsa
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


SYNTHETIC: dict[Path, SyntheticLoad] = {}  # run folder -> the fixture's counters writer


@pytest.fixture(scope="module")
def fig3_static():
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=shipped_policy("static"), dmano=True) as net:
        counters = SyntheticLoad(net)
        SYNTHETIC[net.run_folder] = counters
        try:
            yield net
        finally:
            counters.close()
            SYNTHETIC.pop(net.run_folder, None)


def test_tables_equal_independent_computation(fig3_static):
    net, topo = fig3_static, fig3_static.topo
    want = expected_tables(topo, {"fw_b": 20, "fw_d": 10}, "static")
    # the paper's Fig. 3: from A, the FW costs 30 via B and 25 via D; D is preferred
    assert want["A"]["fw_b"][2] == 30 and want["A"]["fw_d"][2] == 25
    assert want["A"]["fw_d"][3] > want["A"]["fw_b"][3]
    for n in topo.nodes:
        wait_for(f"table at {n.name}", lambda n=n: table(net, n.name) == want[n.name], 20)


def test_lsas_visible_on_remote_router(fig3_static):
    def live_announcers() -> set[str]:
        """Advertising routers of our opaque type's LSAs at E (not at MaxAge)."""
        data = json.loads(fig3_static.routers["E"].vtysh(
            "show ip ospf database opaque-area json"))
        out = set()
        for area in data["areaLocalOpaqueLsa"]["areas"].values():
            for entry in area:  # link state id = opaque type . opaque id (24 bits)
                if (entry["linkStateId"].startswith(f"{lsa.OPAQUE_TYPE}.")
                        and entry["lsaAge"] < 3600):
                    out.add(entry["advertisingRouter"])
        return out

    wait_for("both announcements at E",
             lambda: live_announcers() == {"10.255.0.2", "10.255.0.4"}, 15)


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
    counters.rates["fw_d"] = 100.0  # fw_d now has 50 units left
    want = expected_tables(net.topo, {"fw_b": 150, "fw_d": 50}, "paper")
    # the paper's policy: weight grows with path cost, so fw_d's share drops at every
    # node whose path costs differ (speed is measured by make bench, not here)
    for n in nodes:
        wait_for(f"new table at {n}", lambda n=n: table(net, n) == want[n], 10)
    for n in nodes:
        share_d = want[n]["fw_d"][3] / (want[n]["fw_d"][3] + want[n]["fw_b"][3])
        assert share_d < 0.5, (n, want[n])


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
        weights = table(net, "A")
        policy.write_text("weight: {function: nonsense}\n")
        net.processes["dmano-A"].send_signal(signal.SIGUSR1)
        log = net.run_folder / "rA" / "dmano.log"
        wait_for("reload refused in the log", lambda: "policy not reloaded" in log.read_text(),
                 10)
        assert net.processes["dmano-A"].poll() is None
        assert table(net, "A") == weights


def test_vnf_process_gone_is_withdrawn_everywhere():
    """Real VNF processes: SIGKILL one and its instance disappears from every table."""
    topo = load_topology(TOPO_DIR / "paper_fig3.yaml")
    with Network(topo, policy=shipped_policy("static"), dmano=True, vnfs=True) as net:
        for n in topo.nodes:
            wait_for(f"both instances at {n.name}",
                     lambda n=n: len(table(net, n.name) or {}) == 2, 20)
        net.stop_vnf("fw_d", signal.SIGKILL)
        for n in topo.nodes:
            wait_for(f"fw_d withdrawn at {n.name}",
                     lambda n=n: set(table(net, n.name) or {"x"}) == {"fw_b"}, 10)
        st = net.dmano_status("D")
        # seen through its pidfd at once, not at the next poll
        assert "exited" in st["local_instances"]["fw_d"]["reason"]
        assert st["fast_withdrawals"] >= 1
        # and it comes back when the VNF is started again
        net.start_vnf("fw_d")
        for n in topo.nodes:
            wait_for(f"fw_d back at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2,
                     15)


BAD_COUNTERS = [  # (file content, the reason the D-MANO gives: each one distinct)
    ('{{"pid": {pid}, "capacity": NaN, "rate_pps": 1, "updated": {now}}}',
     "capacity: expected a finite number in 1..1e+07, got nan"),
    ('{{"pid": {pid}, "rate_pps": Infinity, "updated": {now}}}',
     "rate_pps: expected a finite number in 0..4.29497e+09, got inf"),
    ('{{"pid": {pid}, "rate_pps": -1, "updated": {now}}}',
     "rate_pps: expected a finite number in 0..4.29497e+09, got -1"),
    ('{{"pid": {pid}, "rate_pps": 1099511627776, "updated": {now}}}',
     "rate_pps: expected a finite number in 0..4.29497e+09, got 1099511627776"),
    ('{{"rate_pps": 1, "updated": {now}}}', "pid: expected a process id, got None"),
]


def test_bad_counters_files_keep_the_dmano_up(fig3_static):
    """NaN, Infinity, -1, 2^40, no pid: the instance is down with the reason, the
    D-MANO keeps running, `show` says so, and the instance comes back with a good file."""
    import os
    import subprocess

    from topologies.nodeconf import vnf_stats_path

    net = fig3_static
    counters_path = vnf_stats_path(net.run_folder, "fw_d")
    writer = SYNTHETIC[net.run_folder]
    writer.stopped.add("fw_d")
    try:
        for i, (template, words) in enumerate(BAD_COUNTERS, start=1):
            counters_path.write_text(template.format(pid=os.getpid(), now=time.time()))

            def down_with_reason(words: str = words) -> bool:
                st = (net.dmano_status("D") or {}).get("local_instances", {}).get("fw_d", {})
                return not st.get("up", True) and words in st.get("reason", "")

            wait_for(f"fw_d down for {words!r}", down_with_reason, 10)
            assert net.processes["dmano-D"].poll() is None
            st = net.dmano_status("D")
            assert st is not None and st["running"]
            assert st["local_instances"]["fw_d"]["bad_counters"] >= i
            for n in net.topo.nodes:  # withdrawn everywhere
                wait_for(f"fw_d gone at {n.name}",
                         lambda n=n: set(table(net, n.name) or {"x"}) == {"fw_b"}, 15)
        out = subprocess.run([sys.executable, "-m", "dmano", "show", "--config",
                              str(net.dmano_config("D"))], capture_output=True, text=True,
                             check=True).stdout
        assert "fw_d DOWN (bad counters file" in out and "bad counters reads" in out
    finally:
        writer.stopped.discard("fw_d")
    for n in net.topo.nodes:
        wait_for(f"fw_d back at {n.name}", lambda n=n: len(table(net, n.name) or {}) == 2, 20)


def test_frr_ospfclient_alongside_the_dmano(fig3_static):
    """Operators inspect the LSDB with FRR's own ospfclient.py while the D-MANO is
    connected. It works with Debian's python3 (3.11.2); Pythons >= 3.11.5 close its
    notify socket (CPython gh-107650, fixed in FRR's client after 8.4: README)."""
    import subprocess

    net = fig3_static
    wait_for("D-MANO of A connected",
             lambda: (net.dmano_status("A") or {}).get("ospf_api", {}).get("connected"), 10)
    proc = subprocess.run(
        ["nsenter", f"--net=/run/netns/{net.nodes['rA'].netns}", "/usr/bin/python3",
         "/usr/lib/frr/ospfclient.py", "--server", "127.0.0.1", "-v", "--exit", "WAIT,2"],
        capture_output=True, text=True, timeout=30, cwd="/tmp")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Got EOF" not in out
    assert f"LSA update msg for LSA {lsa.OPAQUE_TYPE}." in out  # it sees our announcements
    st = net.dmano_status("A")
    assert st is not None and st["ospf_api"]["connected"]  # and the D-MANO stays connected
    assert st["ospf_api"]["connections"] == 1
