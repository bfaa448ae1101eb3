"""Faults and maintenance on a live network with real VNFs, connectors and traffic
(issue #11): a killed VNF leaves every table through the D-MANO's pidfd, a drained
instance gets no new flow while its flows go on, daemon faults keep the data plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from connector_p4.flowhash import flow_hash
from dmano.policy import shipped_policy
from tests.integration.conftest import ROOT, TOPO_DIR, wait_for
from tests.integration.dataplane_helpers import (
    send_flows,
    sent_of,
    start_flows,
    udp_sink_start,
    udp_sink_stop,
    vnf_stats,
    wait_sink_total,
)
from topologies import addressing as addr
from topologies.network import Network
from topologies.readiness import bfd_peers, expected_bfd_peers
from topologies.spec import load_topology

FIG3 = TOPO_DIR / "paper_fig3.yaml"
DST = "10.5.100.10"


def table(net: Network, node: str) -> dict[str, tuple[int, str]]:
    """instance -> (weight, state) in ``node``'s D-MANO status."""
    st = net.dmano_status(node) or {}
    return {c["name"]: (c["weight"], c["state"]) for svc in st.get("services", [])
            for c in svc["candidates"]}


@pytest.fixture(scope="module")
def fig3_full():
    with Network(load_topology(FIG3), policy=shipped_policy("static"), dmano=True,
                 vnfs=True, connectors=True) as net:
        for n in net.topo.nodes:
            wait_for(f"both FW instances at {n.name}",
                     lambda n=n: set(table(net, n.name)) == {"fw_b", "fw_d"}, 20)
        yield net


def ctx1s(sport0: int, flows: int) -> set[str]:
    """The flow hashes (ctx1, as the VNF counts them) of the sender's flows."""
    src = str(addr.host_addresses(load_topology(FIG3))["src"].ip)
    return {f"{flow_hash(src, DST, 17, sport0 + i, 5000):08x}" for i in range(flows)}


def test_killed_vnf_leaves_every_table_through_its_pidfd(fig3_full):
    net = fig3_full
    before = (net.dmano_status("D") or {}).get("fast_withdrawals", 0)
    t0 = time.monotonic()
    os.kill(net.processes["vnf-fw_d"].pid, signal.SIGKILL)
    for n in net.topo.nodes:
        wait_for(f"fw_d gone at {n.name}", lambda n=n: "fw_d" not in table(net, n.name), 10)
    took = time.monotonic() - t0
    st = net.dmano_status("D")
    assert st is not None
    # the D-MANO saw it at once (pidfd), not at its next 2 s poll
    assert st["fast_withdrawals"] == before + 1
    assert not st["local_instances"]["fw_d"]["up"]
    print(f"fw_d left every table {took * 1000:.0f} ms after the kill (polled)")
    net.processes.pop("vnf-fw_d").wait()
    net.start_vnf("fw_d")
    for n in net.topo.nodes:
        wait_for(f"fw_d back at {n.name}", lambda n=n: "fw_d" in table(net, n.name), 20)


def test_drained_instance_keeps_its_flows_and_gets_no_new_one(fig3_full):
    net = fig3_full
    sink = udp_sink_start(net, "dst")
    # within the VNFs' capacity (150 packets/s each, a quarter second of queue): 50/s
    old = start_flows(net, "src", DST, sport0=21000, flows=20, packets=15, gap_s=0.02)  # 6 s
    try:
        old_on_d = set()

        def pinned_to_d() -> set[str]:
            old_on_d.update(set(vnf_stats(net, "fw_d")["flows"]) & ctx1s(21000, 20))
            return old_on_d

        wait_for("some old flows on fw_d", pinned_to_d, 10)
        net.drain_instance("fw_d")
        for n in net.topo.nodes:  # every node knows; fw_d stays a candidate, weight 0
            wait_for(f"fw_d draining at {n.name}",
                     lambda n=n: table(net, n.name).get("fw_d", (1, ""))[1] == "draining", 5)
            assert table(net, n.name)["fw_d"][0] == 0
        packets_d = {k: v for k, v in vnf_stats(net, "fw_d")["flows"].items()
                     if k in old_on_d}
        new = start_flows(net, "src", DST, sport0=31000, flows=20, packets=2, gap_s=0.02)
        sent = sent_of(new) + sent_of(old)
        assert wait_sink_total(sink, sent) == sent  # nothing lost
    finally:
        got = udp_sink_stop(sink)
    assert sum(got.values()) == sent
    seen_d = vnf_stats(net, "fw_d")["flows"]
    # no new flow reached the draining instance ...
    assert not set(seen_d) & ctx1s(31000, 20)
    # ... and the old flows it had kept going there after the drain
    assert any(seen_d[k] > packets_d.get(k, 0) for k in old_on_d), (seen_d, packets_d)
    # draining the last one serving new flows is refused, unless forced
    with pytest.raises(RuntimeError, match="last one of service FW"):
        net.drain_instance("fw_b")
    out = subprocess.run([sys.executable, "-m", "dmano", "undrain", "fw_d"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "DSFC_RUN_ROOT": str(net.run_folder.parent)})
    assert out.returncode == 0, out.stdout + out.stderr
    for n in net.topo.nodes:
        wait_for(f"fw_d up at {n.name}",
                 lambda n=n: table(net, n.name).get("fw_d", (0, ""))[1] == "up", 5)


@pytest.mark.parametrize("daemon", ["dmano", "connector", "ospfd", "bfdd"])
def test_daemon_fault_and_restore(fig3_full, daemon):
    """While B's daemon is down, traffic through B keeps flowing where it can; after the
    restore the node is back in every table."""
    net = fig3_full
    net.fail_daemon("B", daemon)
    try:
        if daemon in ("dmano", "connector"):  # the data plane keeps its last weights
            sink = udp_sink_start(net, "dst", port=5001)
            try:
                sent = send_flows(net, "src", DST, port=5001, sport0=41000, flows=20,
                                  packets=5, gap_s=0.01)
                assert wait_sink_total(sink, sent) == sent
            finally:
                udp_sink_stop(sink)
    finally:
        net.restore_daemon("B", daemon)
    for n in net.topo.nodes:
        wait_for(f"both instances at {n.name} after restoring B's {daemon}",
                 lambda n=n: {k: v[1] for k, v in table(net, n.name).items()}
                 == {"fw_b": "up", "fw_d": "up"}, 30)
    if daemon == "bfdd":
        want = expected_bfd_peers(net.topo, "B")
        wait_for("B's BFD sessions up again",
                 lambda: {p: s for p, s in bfd_peers(net.routers["B"]).items() if p in want}
                 == dict.fromkeys(want, "up"), 15)
    st = net.dmano_status("B")
    assert st is not None and st["ospf_api"]["connected"]
    if daemon == "dmano":
        assert json.loads((net.run_folder / "rB" / "dmano.json").read_text())["pid"] == \
            net.processes["dmano-B"].pid
