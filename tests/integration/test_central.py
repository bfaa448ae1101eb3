"""The centralized baseline on a live network (issue #12): real FRR, connectors and VNFs.

* with the poll period equal to the D-MANO period and no management RTT, the
  orchestrator's ``objective: policy`` tables equal the D-MANOs' in steady state (same
  policy, same inputs: no traffic, so every VNF cost is the policy's cost at load 0);
* the orchestrator sees a dead VNF only by polling, and not at all while it is down;
* a connector that does not answer is retried while the others are written.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from dmano.policy import shipped_policy
from tests.integration.conftest import TOPO_DIR, wait_for
from topologies import central
from topologies.network import Network
from topologies.spec import load_topology

TOPO = TOPO_DIR / "central10.yaml"
PERIOD_S = 0.5


def tables(net: Network) -> dict[str, dict[tuple[int, str], tuple[int, int, str]]]:
    """node -> (service, instance) -> (weight, path cost, state) from its status file."""
    out = {}
    for n in net.topo.nodes:
        st = net.dmano_status(n.name) or {}
        out[n.name] = {(svc["service_id"], c["name"]): (c["weight"], c["path_cost"],
                                                        c["state"])
                       for svc in st.get("services", []) for c in svc["candidates"]}
    return out


def steady(net: Network, instances: int, settle_s: float = 2.0) -> dict:
    """Every node lists every instance, and the tables stay the same for ``settle_s``."""
    wait_for("every node lists every instance",
             lambda: all(len(t) == instances for t in tables(net).values()), 60)
    deadline = time.monotonic() + 60
    last, since = tables(net), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = tables(net)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return now
    raise AssertionError("the tables did not settle within 60 s")


def policy_file(tmp_path, period_s: float):
    """The paper policy with a short period (the D-MANO period = the poll period)."""
    text = shipped_policy("paper").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("period_s:")]
    path = tmp_path / "paper-fast.yaml"
    path.write_text("\n".join([*lines, f"period_s: {period_s}"]) + "\n")
    return path


def test_central_policy_tables_equal_the_dmanos_in_steady_state(tmp_path):
    topo = load_topology(TOPO)
    policy = policy_file(tmp_path, PERIOD_S)
    n_inst = len(topo.instances)
    with Network(topo, policy=policy, dmano=True, vnfs=True, connectors=True) as net:
        distributed = steady(net, n_inst)
    params = central.CentralParams(objective="policy", poll_period_s=PERIOD_S, mgmt_rtt_ms=0)
    with Network(topo, policy=policy, vnfs=True, connectors=True, central=params) as net:
        centralized = steady(net, n_inst)
        st = central.status_file(net.run_folder)
        assert st.is_file() and not any(n.startswith("dmano-") for n in net.processes)
    assert set(distributed) == {n.name for n in topo.nodes}
    # at least one node whose weights are not all equal (the comparison means something)
    assert any(len({w for w, _, _ in t.values()}) > 1 for t in distributed.values())
    for node in distributed:
        assert centralized[node] == distributed[node], node


@pytest.fixture(scope="module")
def central_net():
    topo = load_topology(TOPO)
    params = central.CentralParams(objective="policy", poll_period_s=1.0, mgmt_rtt_ms=5)
    with Network(topo, policy=shipped_policy("paper"), vnfs=True, connectors=True,
                 central=params) as net:
        steady(net, len(topo.instances), settle_s=0.5)
        yield net


def listed(net: Network, instance: str) -> set[str]:
    """The nodes whose tables list ``instance`` with a weight > 0."""
    return {node for node, t in tables(net).items()
            if any(name == instance and w > 0 for (_, name), (w, _, _) in t.items())}


def test_dead_vnf_is_seen_at_the_next_poll_and_not_while_the_orchestrator_is_down(
        central_net):
    net = central_net
    everyone = {n.name for n in net.topo.nodes}
    assert listed(net, "fw1") == everyone
    # orchestrator down: a VNF crash changes nothing anywhere (no one else decides)
    net.stop_process(central.PROCESS, signal.SIGKILL)
    proc = net.processes.pop("vnf-fw1")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3.0)  # three poll periods
    assert listed(net, "fw1") == everyone
    # back: the first poll sees it, every connector is rewritten without it
    t0 = time.monotonic()
    net.start_central()
    wait_for("fw1 gone from every table", lambda: not listed(net, "fw1"), 20)
    took = time.monotonic() - t0
    assert took < 10, took
    log = (central.folder(net.run_folder) / "central.log").read_text()
    assert "instance fw1 is down" in log
    net.start_vnf("fw1")
    wait_for("fw1 back everywhere", lambda: listed(net, "fw1") == everyone, 20)


def test_a_connector_that_does_not_answer_is_retried_and_the_others_written(central_net):
    net = central_net
    everyone = {n.name for n in net.topo.nodes}
    net.fail_daemon("N5", "connector")
    try:
        proc = net.processes.pop("vnf-ids2")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        others = everyone - {"N5"}
        wait_for("ids2 gone from the other nodes' tables",
                 lambda: not (listed(net, "ids2") & others), 20)
        status = central.status_file(net.run_folder)
        wait_for("N5's write error in the orchestrator's status",
                 lambda: _json(status)["nodes"]["N5"]["last_error"], 20)
    finally:
        net.restore_daemon("N5", "connector")
    wait_for("N5 written again", lambda: not _json(central.status_file(net.run_folder))
             ["nodes"]["N5"]["last_error"], 30)
    net.start_vnf("ids2")
    wait_for("ids2 back everywhere", lambda: listed(net, "ids2") == everyone, 20)


def _json(path):
    import json

    return json.loads(path.read_text())
