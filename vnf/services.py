"""The services a VNF can run: ``passthrough``, ``firewall``, ``ids`` and ``dpi``.

Every service forwards (SI-1) what it accepts; the :class:`~vnf.fastpath.Processor`
does the NSH checks, the capacity limit and the rewrite around it.

``passthrough``
    Accepts everything.
``firewall``
    Ordered rules, first match wins, on the inner IPv4 packet: source prefix,
    destination prefix, protocol, destination port (or port range). A rule's action is
    ``drop`` (counted as ``policy_drop``) or ``allow``; no match -> ``default_action``
    (``allow`` unless configured). Non-first fragments carry no ports, so a rule with
    ``dport`` never matches them. A frame whose NSH next protocol is not IPv4 (1) or whose
    inner header is not a valid IPv4 header is dropped as ``bad_inner`` (fail closed).
    Rule text (``--rule``, see :mod:`vnf.rules`)::

        [drop|allow] [src=PREFIX] [dst=PREFIX] [proto=tcp|udp|icmp|sctp|N] [dport=P|P-Q]

    e.g. ``drop proto=udp dst=10.5.100.0/24 dport=5000-5099``. A rule with no match
    fields matches everything.
``ids``
    Accepts everything; each stats period it computes every tracked flow's packet rate
    (by ctx1, from the processor's flow table) and flags flows above ``threshold_pps``.
    A flow is logged once when it becomes flagged; ``alerts`` counts those events.

    With ``reclassify_to`` (an SPI) it also reclassifies (RFC 7665): it measures every
    flow's rate per packet (by ctx1, a sliding window of ``window_s`` = 1 s: the packets
    of the current window plus the previous window's share of the last second); the
    packet that takes a flow above ``threshold_pps`` marks it, and from then on every
    packet of that flow leaves with SPI ``reclassify_to`` and SI 255 (the first hop of
    that chain: the connector's ``sff_next`` sends it there) instead of SI-1. A flow
    stays marked until it has been idle ``idle_s`` (default 5 s); then it starts afresh.
    A packet already on chain ``reclassify_to`` is never reclassified nor measured (no
    loop; counted as ``on_target``). The rate table is bounded by ``flows_max`` (least
    recently seen evicted); at most 10 reclassified flows are logged one by one per
    stats period, the rest as a count.
``dpi``
    Payload patterns on the inner packet (:mod:`vnf.dpi`): ``drop``, ``allow`` or
    ``count`` rules, e.g. ``drop hex=deadbeef``, ``count payload=/etc/passwd``.
``scapy``
    The user's own Python module (``module``, with ``params``): its ``process(pkt,
    ctx)`` gets every inner packet as a scapy ``IP`` object and returns the packet to
    send on or None (:mod:`vnf.scapy_service`, which alone imports scapy, and only when
    this service is made).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from struct import Struct
from typing import TYPE_CHECKING, Any

from vnf.dpi import Dpi, DpiRule
from vnf.fastpath import (
    BAD_INNER,
    FORWARD,
    INNER_OFFSET,
    NSH_NEXT_IPV4,
    POLICY_DROP,
    RECLASSIFIED,
    Inspector,
)
from vnf.rules import (
    IPV4_FIELDS,
    MIN_INNER,
    PORTED,
    PROTOCOLS,
    Rule,
    RuleError,
    parse_rule,
    rule_from_fields,
)

if TYPE_CHECKING:
    from vnf.scapy_service import ScapyService

__all__ = ["PROTOCOLS", "SERVICES", "Dpi", "DpiRule", "Firewall", "Ids", "Passthrough",
           "Rule", "RuleError", "make_service", "parse_rule", "rule_from_fields"]

log = logging.getLogger(__name__)

SERVICES = ("passthrough", "firewall", "ids", "dpi", "scapy")
MAX_SPI = (1 << 24) - 1
RECLASSIFY_IDLE_S = 5.0  # a marked flow idle this long is forgotten
RATE_WINDOW_S = 1.0
LOG_PER_TICK = 10  # reclassified flows logged one by one per stats period
SPI_SI = Struct("!I")
_PATH_CTX1 = Struct("!II")  # service path header (spi:24 si:8), ctx1; at Ethernet + 4


# -- services ------------------------------------------------------------------------

class Passthrough:
    name = "passthrough"
    inspect = None

    def tick(self, now: float, flows: dict[int, int]) -> None:
        pass

    def stats(self) -> dict[str, object]:
        return {}


class Firewall:
    """First-match rules on the inner IPv4 5-tuple (no per-flow state)."""

    name = "firewall"

    def __init__(self, rules: list[Rule] | tuple[Rule, ...] = (),
                 default_action: str = "allow"):
        if default_action not in ("drop", "allow"):
            raise RuleError(f"default action must be drop or allow, got {default_action!r}")
        self.rules = tuple(rules)
        self.default_action = default_action
        self._compiled = [r.compiled() for r in self.rules]
        self._default = POLICY_DROP if default_action == "drop" else FORWARD
        self.hits = [0] * len(self.rules)
        self.default_hits = 0

    def inspect(self, buf: bytearray, off: int, n: int) -> int:
        if n < MIN_INNER or buf[off + 17] != NSH_NEXT_IPV4:
            return BAD_INNER
        vihl, frag, proto, src, dst = IPV4_FIELDS.unpack_from(buf, off + INNER_OFFSET)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20 or INNER_OFFSET + ihl > n:
            return BAD_INNER
        dport = -1
        if proto in PORTED and not frag & 0x1FFF:
            p = off + INNER_OFFSET + ihl
            if p + 4 <= off + n:
                dport = buf[p + 2] << 8 | buf[p + 3]
        for i, (snet, smask, dnet, dmask, rproto, lo, hi, drop) in enumerate(self._compiled):
            if (src & smask == snet and dst & dmask == dnet
                    and (rproto < 0 or rproto == proto)
                    and (lo < 0 or lo <= dport <= hi)):
                self.hits[i] += 1
                return POLICY_DROP if drop else FORWARD
        self.default_hits += 1
        return self._default

    def tick(self, now: float, flows: dict[int, int]) -> None:
        pass

    def stats(self) -> dict[str, object]:
        return {
            "default_action": self.default_action,
            "default_hits": self.default_hits,
            "rules": [{"rule": str(r), "hits": h}
                      for r, h in zip(self.rules, self.hits, strict=True)],
        }


class Ids:
    """Flags flows (by ctx1) whose packet rate over a stats period exceeds a threshold;
    with ``reclassify_to``, also moves them to that chain (see the module docstring)."""

    name = "ids"

    def __init__(self, threshold_pps: float = 1000.0, *, reclassify_to: int | None = None,
                 idle_s: float = RECLASSIFY_IDLE_S, window_s: float = RATE_WINDOW_S,
                 flows_max: int = 4096, clock: Callable[[], float] = time.monotonic):
        if threshold_pps <= 0:
            raise ValueError(f"IDS threshold must be > 0 packets/s, got {threshold_pps}")
        if reclassify_to is not None and not 1 <= reclassify_to <= MAX_SPI:
            raise ValueError(f"reclassify_to must be an SPI in 1..{MAX_SPI}, "
                             f"got {reclassify_to}")
        if idle_s <= 0 or window_s <= 0 or flows_max < 1:
            raise ValueError(f"idle_s and window_s must be > 0 and flows_max >= 1, got "
                             f"{idle_s}, {window_s}, {flows_max}")
        self.threshold_pps = threshold_pps
        self.flagged: dict[int, float] = {}  # ctx1 -> rate when last measured
        self.alerts = 0
        self._prev: dict[int, int] = {}
        self._prev_t: float | None = None
        # reclassification (per packet)
        self.reclassify_to = reclassify_to
        self.idle_s = idle_s
        self.window_s = window_s
        self.flows_max = flows_max
        self.clock = clock
        self._limit = threshold_pps * window_s  # packets per window
        self._path = SPI_SI.pack((reclassify_to or 0) << 8 | 255)
        #: ctx1 -> [window start, packets in it, packets in the previous window,
        #: last seen, marked], least recently seen first; at most ``flows_max``
        self.rates: dict[int, list[Any]] = {}
        self.marked = 0  # flows marked now
        self.reclassified_flows = 0  # times a flow became marked
        self.reclassified_packets = 0
        self.on_target = 0  # packets already on the reclassify_to chain: left alone
        self.rates_evicted = 0
        self._unlogged = 0  # flows marked since the last tick
        self.inspect: Inspector | None = (self._reclassify if reclassify_to is not None
                                          else None)

    def _reclassify(self, buf: bytearray, off: int, n: int) -> int:
        """Per packet: measure the flow's rate; a marked flow goes to SPI reclassify_to,
        SI 255 (RECLASSIFIED); anything else is forwarded as usual (SI-1)."""
        spi_si, ctx1 = _PATH_CTX1.unpack_from(buf, off + 18)
        if spi_si >> 8 == self.reclassify_to:
            self.on_target += 1  # never reclassify a packet already on the target chain
            return FORWARD
        now = self.clock()
        rates = self.rates
        st = rates.pop(ctx1, None)
        if st is None:
            if len(rates) >= self.flows_max:
                old = rates.pop(next(iter(rates)))
                self.rates_evicted += 1
                self.marked -= old[4]
            st = [now, 0, 0, now, False]
        elif now - st[3] > self.idle_s:  # idle for a while: a fresh start
            self.marked -= st[4]
            st[0], st[1], st[2], st[4] = now, 0, 0, False
        rates[ctx1] = st  # most recent last
        st[3] = now
        if not st[4]:
            w = self.window_s
            elapsed = now - st[0]
            if elapsed >= w:  # roll the window (two windows on: nothing in the previous)
                st[2] = st[1] if elapsed < 2 * w else 0
                st[0] = st[0] + w if elapsed < 2 * w else now
                st[1] = 0
                elapsed = now - st[0]
            st[1] += 1
            # sliding-window estimate of the packets over the last `w` seconds
            if st[2] * (w - elapsed) / w + st[1] <= self._limit:
                return FORWARD
            st[4] = True
            self.marked += 1
            self.reclassified_flows += 1
            self._unlogged += 1
            if self._unlogged <= LOG_PER_TICK:  # the rest is summed up at the next tick
                log.warning("ids: flow ctx1=%08x above %g packets/s: reclassified to spi %d",
                            ctx1, self.threshold_pps, self.reclassify_to)
        buf[off + 18:off + 22] = self._path
        self.reclassified_packets += 1
        return RECLASSIFIED

    def tick(self, now: float, flows: dict[int, int]) -> None:
        if self.reclassify_to is not None:
            if self._unlogged > LOG_PER_TICK:
                log.warning("ids: %d more flows reclassified to spi %d",
                            self._unlogged - LOG_PER_TICK, self.reclassify_to)
            self._unlogged = 0
            self._expire(self.clock())
        prev, prev_t = self._prev, self._prev_t
        self._prev, self._prev_t = dict(flows), now
        if prev_t is None or now <= prev_t:
            return
        dt = now - prev_t
        flagged: dict[int, float] = {}
        for ctx1, count in flows.items():
            rate = (count - prev.get(ctx1, 0)) / dt
            if rate > self.threshold_pps:
                flagged[ctx1] = rate
                if ctx1 not in self.flagged:
                    self.alerts += 1
                    log.warning("ids: flow ctx1=%08x at %.0f packets/s (threshold %.0f)",
                                ctx1, rate, self.threshold_pps)
        self.flagged = flagged

    def _expire(self, now: float) -> None:
        """Forget the flows idle for more than ``idle_s`` (they are the oldest)."""
        rates = self.rates
        while rates:
            ctx1 = next(iter(rates))
            st = rates[ctx1]
            if now - st[3] <= self.idle_s:
                break
            del rates[ctx1]
            if st[4]:
                self.marked -= 1
                log.info("ids: flow ctx1=%08x idle for %g s: no longer reclassified",
                         ctx1, self.idle_s)

    def stats(self) -> dict[str, object]:
        out: dict[str, object] = {
            "threshold_pps": self.threshold_pps,
            "alerts": self.alerts,
            "flagged": {f"{k:08x}": round(v, 1) for k, v in self.flagged.items()},
        }
        if self.reclassify_to is not None:
            out["reclassified"] = {
                "to_spi": self.reclassify_to,
                "flows": self.reclassified_flows,
                "packets": self.reclassified_packets,
                "marked": self.marked,
                "on_target": self.on_target,
                "tracked": len(self.rates),
                "evicted": self.rates_evicted,
                "idle_s": self.idle_s,
            }
        return out


AnyService = Passthrough | Firewall | Ids | Dpi


def make_service(name: str, *, rules: list[Rule] | tuple[Rule, ...] = (),
                 default_action: str = "allow", ids_threshold_pps: float = 1000.0,
                 reclassify_to: int | None = None, reclassify_idle_s: float = RECLASSIFY_IDLE_S,
                 dpi_rules: list[DpiRule] | tuple[DpiRule, ...] = (),
                 flows_max: int = 4096, module: str | Path | None = None,
                 params: Mapping[str, Any] | None = None,
                 room: int | None = None) -> AnyService | ScapyService:
    """The service ``name`` with its settings. ``scapy`` imports scapy and the user's
    ``module`` (``room``: the receive slot) and may raise
    :class:`vnf.usermodule.ModuleError`."""
    if name == "passthrough":
        return Passthrough()
    if name == "firewall":
        return Firewall(rules, default_action)
    if name == "ids":
        return Ids(ids_threshold_pps, reclassify_to=reclassify_to, idle_s=reclassify_idle_s,
                   flows_max=flows_max)
    if name == "dpi":
        return Dpi(dpi_rules)
    if name == "scapy":
        if module is None:
            raise ValueError("service scapy needs a module (the path of a Python file)")
        from vnf.scapy_service import ScapyService  # scapy is slow to import: only here

        extra = {"room": room} if room is not None else {}
        return ScapyService.from_file(module, params, flows_max=flows_max, **extra)
    raise ValueError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")

