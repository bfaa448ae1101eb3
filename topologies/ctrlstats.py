"""Control traffic on the wire: the OSPF packets each router sends, counted by nftables.

Every router namespace's ``inet dsfc`` table (written by the builder) has two named
counters on its output hook: ``ospf_tx`` (every OSPF packet, IP protocol 89: hellos,
database exchange, LS updates, LS acks) and ``ospf_lsu_tx`` (LS Update packets only, OSPF
type 4: what flooding an LSA costs). Summed over the routers they are the OSPF traffic
of the whole network, each packet counted once per link it is sent on. Bytes are IP
bytes (the IPv4 header included, no Ethernet).
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
from dataclasses import dataclass

from topologies import servers
from topologies.servers import ServerSpec

log = logging.getLogger(__name__)

NFT_OUTPUT = """  counter ospf_tx {
  }
  counter ospf_lsu_tx {
  }
  chain output {
    type filter hook output priority 0; policy accept;
    ip protocol 89 counter name "ospf_tx"
    ip protocol 89 @th,8,8 4 counter name "ospf_lsu_tx"
  }
"""
COUNTERS = ("ospf_tx", "ospf_lsu_tx")


@dataclass(frozen=True)
class OspfTx:
    packets: int = 0
    bytes: int = 0
    lsu_packets: int = 0
    lsu_bytes: int = 0

    def __add__(self, other: OspfTx) -> OspfTx:
        return OspfTx(self.packets + other.packets, self.bytes + other.bytes,
                      self.lsu_packets + other.lsu_packets, self.lsu_bytes + other.lsu_bytes)


def parse_counters(text: str) -> OspfTx:
    """``nft -j list counters table inet dsfc`` output -> the two counters (0 for one
    that is not there). Anything but nft's JSON (``{"nftables": [...]}`` with numeric
    counters) raises ValueError."""
    data = json.loads(text)
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError('not the output of nft -j: expected {"nftables": [...]}')
    found: dict[str, tuple[int, int]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"not the output of nft -j: item {item!r}")
        c = item.get("counter")
        if isinstance(c, dict) and c.get("name") in COUNTERS:
            try:
                found[c["name"]] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
            except (TypeError, ValueError):
                raise ValueError(f"counter {c['name']}: packets and bytes must be numbers, "
                                 f"got {c.get('packets')!r} and {c.get('bytes')!r}") from None
    p, b = found.get("ospf_tx", (0, 0))
    lp, lb = found.get("ospf_lsu_tx", (0, 0))
    return OspfTx(p, b, lp, lb)


def read_router(netns: str, timeout: float = 5.0,
                server: ServerSpec | None = None) -> OspfTx | None:
    """The counters of one router namespace (None if they cannot be read: the router's
    namespace is gone or its table was not written by this version); ``server``: the
    router is on that server (spread networks)."""
    argv = ["nsenter", f"--net=/run/netns/{netns}", "nft", "-j", "list", "counters",
            "table", "inet", "dsfc"]
    try:
        if server is not None:
            out = servers.run(server, shlex.join(argv), timeout=timeout).stdout
        else:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                 check=True).stdout
        return parse_counters(out)
    except (OSError, subprocess.SubprocessError, ValueError, servers.ServerError) as exc:
        log.debug("reading the OSPF counters of %s: %s", netns, exc)
        return None
