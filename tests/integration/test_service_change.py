"""Service change in the chain (issue #11 item 4): the IDS sends a flow that crosses its
threshold to the quarantine chain by rewriting its NSH SPI; tshark sees the SPI change
after the IDS for that flow only; connectors follow the new SPI to the DPI, then the FW."""

from __future__ import annotations

from tests.integration.conftest import TOPO_DIR, wait_for
from tests.integration.dataplane_helpers import (
    capture,
    read_capture,
    sent_of,
    start_flows,
    udp_sink_start,
    udp_sink_stop,
    vnf_stats,
    wait_capture_ready,
    wait_sink_total,
)
from topologies import addressing as addr
from topologies.network import Network
from topologies.spec import load_topology

DST = "10.3.100.10"
HEAVY_PORT = 50000  # one flow at 200 packets/s: above the IDS's threshold_pps (50)
LIGHT_PORT0 = 40000  # ten flows at 2 packets/s each


def test_heavy_flow_is_redirected_to_the_quarantine_chain():
    topo = load_topology(TOPO_DIR / "quarantine.yaml")
    ids = next(i for i in topo.instances if i.name == "ids1")
    ids_mac = addr.mac(topo.node(ids.node).index, 1, ids.id, 1)
    with Network(topo, dmano=True, vnfs=True, connectors=True) as net:
        for n in topo.nodes:
            wait_for(f"every instance at {n.name}", lambda n=n: {
                c["name"] for s in (net.dmano_status(n.name) or {}).get("services", [])
                for c in s["candidates"]} == {"ids1", "fw1", "fw2", "dpi1"}, 30)
        # every packet the IDS sends back to its connector: SPI, SI, inner source port
        tap = capture(net, "cB", "v-ids1", f"ether proto 0x894f and ether src {ids_mac}",
                      ["nsh.spi", "nsh.si", "udp.srcport"], 350, 20)
        wait_capture_ready(tap)
        sink = udp_sink_start(net, "dst")
        try:
            heavy = start_flows(net, "src", DST, sport0=HEAVY_PORT, packets=300, gap_s=0.005)
            light = start_flows(net, "src", DST, sport0=LIGHT_PORT0, flows=10, packets=5,
                                gap_s=0.05)
            sent = sent_of(heavy) + sent_of(light)
            assert wait_sink_total(sink, sent) == sent  # nothing lost on either chain
        finally:
            got = udp_sink_stop(sink)
        rows = read_capture(tap)
        # VNF counters are rewritten every 0.2 s: wait until the DPI has counted it all
        wait_for("the IDS's counters", lambda: vnf_stats(net, "ids1")["packets_in"] == sent,
                 10)
        ids_st = vnf_stats(net, "ids1")["service_stats"]["reclassified"]
        wait_for("the DPI's counters", lambda: vnf_stats(net, "dpi1")["packets_in"]
                 == ids_st["packets"], 10)
    by_port: dict[int, list[tuple[str, str]]] = {}
    for spi, si, sport in rows:
        by_port.setdefault(int(sport), []).append((spi, si))
    heavy_rows = by_port.pop(HEAVY_PORT)
    # the heavy flow: first on its own chain (SPI 10, SI 254 after the IDS), then, once
    # above the threshold, on the quarantine chain from its start (SPI 20, SI 255)
    assert heavy_rows[0] == ("10", "254")
    assert ("20", "255") in heavy_rows
    switched = heavy_rows.index(("20", "255"))
    assert set(heavy_rows[switched:]) == {("20", "255")}  # and it stays there
    assert 10 <= switched <= 120, switched  # after ~50 packets/s of it were seen
    # the light flows are untouched
    assert set(by_port) == set(range(LIGHT_PORT0, LIGHT_PORT0 + 10))
    assert {x for rs in by_port.values() for x in rs} == {("10", "254")}
    assert got[HEAVY_PORT] == 300 and sum(got.values()) == sent
    # the quarantined part (and only it) went through the DPI
    assert ids_st["flows"] == 1 and ids_st["packets"] == 300 - switched
