"""Payload-pattern DPI: drops, or marks with a DSCP, the packets whose payload holds a
pattern.

params: ``pattern`` (text) or ``hex`` (bytes as hex digits), one of them required;
``action``: ``drop`` (default) or ``mark``; ``dscp`` (0..63, default 8: CS1) for mark.
The first match of each flow is logged.
"""

from typing import Any

from scapy.layers.inet import IP
from scapy.packet import Raw

from vnf.scapy_service import Context

PATTERN = b""
ACTION = "drop"
DSCP = 8
matched = 0


def setup(params: dict[str, Any]) -> None:
    global PATTERN, ACTION, DSCP
    if ("pattern" in params) == ("hex" in params):
        raise ValueError("give exactly one of pattern (text) or hex")
    PATTERN = (str(params["pattern"]).encode() if "pattern" in params
               else bytes.fromhex(str(params["hex"])))
    ACTION = params.get("action", "drop")
    if ACTION not in ("drop", "mark") or not PATTERN:
        raise ValueError(f"action must be drop or mark and the pattern not empty, got "
                         f"{ACTION!r}, {PATTERN!r}")
    DSCP = int(params.get("dscp", 8))


def process(pkt: IP, ctx: Context) -> IP | None:
    global matched
    raw = pkt.getlayer(Raw)
    if raw is None or PATTERN not in raw.load:
        return pkt
    matched += 1
    ctx.flow["matched"] = ctx.flow.get("matched", 0) + 1
    if ctx.flow["matched"] == 1:
        ctx.log.info("flow %08x (%s -> %s): pattern found, %s", ctx.flow_hash, pkt.src,
                     pkt.dst, ACTION)
    if ACTION == "drop":
        return None
    pkt.tos = DSCP << 2 | pkt.tos & 0x03
    return pkt


def stats() -> dict[str, Any]:
    return {"pattern": PATTERN.hex(), "action": ACTION, "matched": matched}
