"""DSCP marker: sets the DSCP of every packet, or of the packets to some ports.

params: ``dscp`` (0..63, default 46: EF), ``dports`` (optional list of UDP/TCP
destination ports; when given, only packets to them are marked). The ECN bits are kept.
"""

from typing import Any

from scapy.layers.inet import IP, TCP, UDP

from vnf.scapy_service import Context

DSCP = 46
DPORTS: frozenset[int] | None = None
marked = 0


def setup(params: dict[str, Any]) -> None:
    global DSCP, DPORTS
    DSCP = int(params.get("dscp", 46))
    if not 0 <= DSCP <= 63:
        raise ValueError(f"dscp must be 0..63, got {DSCP}")
    ports = params.get("dports")
    DPORTS = frozenset(int(p) for p in ports) if ports is not None else None


def process(pkt: IP, ctx: Context) -> IP:
    global marked
    l4 = pkt.getlayer(UDP) or pkt.getlayer(TCP)
    if DPORTS is None or (l4 is not None and l4.dport in DPORTS):
        pkt.tos = DSCP << 2 | pkt.tos & 0x03
        marked += 1
    return pkt


def stats() -> dict[str, int]:
    return {"dscp": DSCP, "marked": marked}
