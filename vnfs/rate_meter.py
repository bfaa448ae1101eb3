"""Per-flow rate meter: measures each flow's packets/s and bits/s and logs them.

Every packet of a flow that comes ``period_s`` or more after the flow's last report
closes the period: the flow's rate over it is logged (at info level, in the VNF's log)
if it is at least ``log_above_pps``. params: ``period_s`` (default 5),
``log_above_pps`` (default 0: every flow). Packets are not changed.
"""

from typing import Any

from scapy.layers.inet import IP

from vnf.scapy_service import Context

PERIOD_S = 5.0
ABOVE_PPS = 0.0
reports = 0


def setup(params: dict[str, Any]) -> None:
    global PERIOD_S, ABOVE_PPS
    PERIOD_S = float(params.get("period_s", 5.0))
    ABOVE_PPS = float(params.get("log_above_pps", 0.0))
    if PERIOD_S <= 0:
        raise ValueError(f"period_s must be > 0, got {PERIOD_S}")


def process(pkt: IP, ctx: Context) -> IP:
    global reports
    flow = ctx.flow
    if not flow:
        flow.update(start=ctx.now, packets=0, bytes=0)
    flow["packets"] += 1
    flow["bytes"] += pkt.len  # the IPv4 total length
    elapsed = ctx.now - flow["start"]
    if elapsed >= PERIOD_S:
        pps = flow["packets"] / elapsed
        if pps >= ABOVE_PPS:
            reports += 1
            ctx.log.info("flow %08x %s -> %s (spi %d): %.1f packets/s, %.0f bit/s over "
                         "%.1f s", ctx.flow_hash, pkt.src, pkt.dst, ctx.spi, pps,
                         flow["bytes"] * 8 / elapsed, elapsed)
        flow.update(start=ctx.now, packets=0, bytes=0)
    return pkt


def stats() -> dict[str, Any]:
    return {"period_s": PERIOD_S, "reports": reports}
