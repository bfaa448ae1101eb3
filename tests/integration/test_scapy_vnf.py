"""Your own VNF in Python with scapy (issue #14): a module that is not shipped, placed in
a topology, runs from the builder; its effect is on the wire (tshark) and in its
counters; an exception on every tenth packet drops just those packets (vnf_error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import TOPO_DIR, wait_for
from tests.integration.dataplane_helpers import (
    capture,
    read_capture,
    send_flows,
    udp_sink_start,
    udp_sink_stop,
    vnf_stats,
    wait_capture_ready,
    wait_sink_total,
)
from topologies import health
from topologies.network import Network
from topologies.spec import load_topology

DST = "10.3.100.10"
MODULE = '''
def setup(params):
    global TTL
    TTL = params["ttl"]

def process(pkt, ctx):
    pkt.ttl = TTL
    ctx.flow["n"] = ctx.flow.get("n", 0) + 1
    if ctx.flow["n"] % 10 == 0:
        raise RuntimeError("every tenth packet")
    return pkt
'''


def topology(tmp_path: Path, module: Path) -> Path:
    text = (TOPO_DIR / "scapy_chain.yaml").read_text()
    text = text.replace("../vnfs/dscp_marker.py", str(module)).replace("{dscp: 46}",
                                                                         "{ttl: 33}")
    text = text.replace("../vnfs/", f"{TOPO_DIR.parent}/vnfs/")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_own_scapy_module_on_the_wire_and_in_its_counters(tmp_path: Path):
    module = tmp_path / "ttl33.py"
    module.write_text(MODULE)
    topo = load_topology(topology(tmp_path, module))
    with Network(topo, dmano=True, vnfs=True, connectors=True) as net:
        for n in topo.nodes:
            wait_for(f"every instance at {n.name}", lambda n=n: {
                c["name"] for s in (net.dmano_status(n.name) or {}).get("services", [])
                for c in s["candidates"]} == {"fw1", "mark1", "meter1"}, 30)
        # frames in and out of the user's VNF, on its connector port (the VNF's own sends
        # bypass the qdisc layer, so a capture inside its namespace misses them)
        tap = capture(net, "cB", "v-mark1", "ether proto 0x894f", ["nsh.si", "ip.ttl"],
                      380, 20)
        wait_capture_ready(tap)
        sink = udp_sink_start(net, "dst")
        try:
            sent = send_flows(net, "src", DST, sport0=30000, flows=10, packets=20,
                              gap_s=0.005)
            assert sent == 200
            assert wait_sink_total(sink, 180) == 180  # every tenth packet dropped
        finally:
            got = udp_sink_stop(sink)
        rows = read_capture(tap)
        wait_for("the VNF's counters", lambda: vnf_stats(net, "mark1")["packets_in"] == sent,
                 10)
        st = vnf_stats(net, "mark1")
    assert got == {30000 + i: 18 for i in range(10)}
    into = [ttl for si, ttl in rows if si == "254"]  # from the connector, after the FW
    back = [ttl for si, ttl in rows if si == "253"]  # from the user's VNF
    assert len(into) == 200 and len(back) == 180
    assert set(back) == {"33"} and "33" not in set(into)
    assert st["dropped"]["vnf_error"] == 20 and st["packets_out"] == 180
    errors = st["service_stats"]["errors"]
    assert len(errors) == 1 and errors[0]["count"] == 20 and "every tenth" in errors[0]["error"]


def test_module_without_process_fails_bring_up_with_its_error(tmp_path: Path):
    module = tmp_path / "broken.py"
    module.write_text("def setup(params):\n    raise ValueError('no ttl given')\n"
                      "def process(pkt, ctx):\n    return pkt\n")
    topo = load_topology(topology(tmp_path, module))
    with pytest.raises(health.BringUpError) as err:
        Network(topo, dmano=True, vnfs=True, connectors=True).start()
    assert "vnf-mark1 exited (3)" in str(err.value)
    assert "no ttl given" in str(err.value)
