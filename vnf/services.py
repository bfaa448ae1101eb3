"""The services a VNF can run: ``passthrough``, ``firewall`` and ``ids``.

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
    Rule text (``--rule``)::

        [drop|allow] [src=PREFIX] [dst=PREFIX] [proto=tcp|udp|icmp|sctp|N] [dport=P|P-Q]

    e.g. ``drop proto=udp dst=10.5.100.0/24 dport=5000-5099``. A rule with no match
    fields matches everything.
``ids``
    Accepts everything; each stats period it computes every tracked flow's packet rate
    (by ctx1, from the processor's flow table) and flags flows above ``threshold_pps``.
    A flow is logged once when it becomes flagged; ``alerts`` counts those events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Network
from struct import Struct
from typing import Any

from vnf.fastpath import BAD_INNER, FORWARD, INNER_OFFSET, NSH_NEXT_IPV4, POLICY_DROP

log = logging.getLogger(__name__)

SERVICES = ("passthrough", "firewall", "ids")
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
_PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}
_PORTED = (6, 17, 132)  # protocols whose first 4 bytes are source and destination port

# IPv4: version/IHL, (tos, total length, id skipped), flags/fragment offset, (ttl),
# protocol, (checksum), source, destination
_IPV4 = Struct("!B5xHxBxxII")
_MIN_INNER = INNER_OFFSET + _IPV4.size


class RuleError(ValueError):
    """A firewall rule is malformed; the message says which part and why."""


@dataclass(frozen=True)
class Rule:
    action: str = "drop"  # drop | allow
    src: IPv4Network | None = None
    dst: IPv4Network | None = None
    proto: int | None = None
    dport: tuple[int, int] | None = None  # inclusive range

    def __str__(self) -> str:
        parts = [self.action]
        if self.src is not None:
            parts.append(f"src={self.src}")
        if self.dst is not None:
            parts.append(f"dst={self.dst}")
        if self.proto is not None:
            parts.append(f"proto={_PROTO_NAMES.get(self.proto, self.proto)}")
        if self.dport is not None:
            lo, hi = self.dport
            parts.append(f"dport={lo}" if lo == hi else f"dport={lo}-{hi}")
        return " ".join(parts)

    def compiled(self) -> tuple[int, int, int, int, int, int, int, bool]:
        """(src net, src mask, dst net, dst mask, proto|-1, port lo|-1, port hi, drop)."""
        snet, smask = _net(self.src)
        dnet, dmask = _net(self.dst)
        lo, hi = self.dport if self.dport is not None else (-1, -1)
        proto = self.proto if self.proto is not None else -1
        return snet, smask, dnet, dmask, proto, lo, hi, self.action == "drop"


def _net(net: IPv4Network | None) -> tuple[int, int]:
    if net is None:
        return 0, 0
    return int(net.network_address), int(net.netmask)


def parse_rule(text: str) -> Rule:
    """Parse ``[drop|allow] key=value ...`` (see the module docstring)."""
    words = text.split()
    action = "drop"
    if words and words[0] in ("drop", "allow"):
        action = words.pop(0)
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise RuleError(f"rule {text!r}: expected key=value, got {word!r}")
        if key in fields:
            raise RuleError(f"rule {text!r}: {key} given twice")
        fields[key] = value
    return rule_from_fields(fields, action, where=f"rule {text!r}")


def rule_from_fields(fields: dict[str, Any], action: str = "drop", where: str = "rule") -> Rule:
    """Build a rule from ``{src, dst, proto, dport}`` (strings or ints)."""
    if action not in ("drop", "allow"):
        raise RuleError(f"{where}: action must be drop or allow, got {action!r}")
    unknown = set(fields) - {"src", "dst", "proto", "dport"}
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                        "(allowed: src, dst, proto, dport)")
    src = _prefix(fields.get("src"), "src", where)
    dst = _prefix(fields.get("dst"), "dst", where)
    proto = _proto(fields.get("proto"), where)
    dport = _ports(fields.get("dport"), where)
    if dport is not None and proto is not None and proto not in _PORTED:
        raise RuleError(f"{where}: dport needs proto tcp, udp or sctp (or no proto)")
    return Rule(action, src, dst, proto, dport)


def _prefix(value: Any, key: str, where: str) -> IPv4Network | None:
    if value is None:
        return None
    try:
        return IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise RuleError(f"{where}: {key}: expected an IPv4 prefix like 10.1.100.0/24 "
                        f"or an address, got {value!r} ({exc})") from None


def _proto(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return PROTOCOLS[value.lower()]
    try:
        number = int(str(value), 10)
    except ValueError:
        number = -1
    if not 0 <= number <= 255:
        raise RuleError(f"{where}: proto: expected {', '.join(PROTOCOLS)} or 0..255, "
                        f"got {value!r}")
    return number


def _ports(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    lo_s, sep, hi_s = str(value).partition("-")
    try:
        lo = int(lo_s, 10)
        hi = int(hi_s, 10) if sep else lo
    except ValueError:
        lo = hi = -1
    if not (0 <= lo <= hi <= 65535):
        raise RuleError(f"{where}: dport: expected a port or range like 80 or 5000-5099 "
                        f"(0..65535), got {value!r}")
    return lo, hi


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
        if n < _MIN_INNER or buf[off + 17] != NSH_NEXT_IPV4:
            return BAD_INNER
        vihl, frag, proto, src, dst = _IPV4.unpack_from(buf, off + INNER_OFFSET)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20 or INNER_OFFSET + ihl > n:
            return BAD_INNER
        dport = -1
        if proto in _PORTED and not frag & 0x1FFF:
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
    """Flags flows (by ctx1) whose packet rate over a stats period exceeds a threshold."""

    name = "ids"
    inspect = None

    def __init__(self, threshold_pps: float = 1000.0):
        if threshold_pps <= 0:
            raise ValueError(f"IDS threshold must be > 0 packets/s, got {threshold_pps}")
        self.threshold_pps = threshold_pps
        self.flagged: dict[int, float] = {}  # ctx1 -> rate when last measured
        self.alerts = 0
        self._prev: dict[int, int] = {}
        self._prev_t: float | None = None

    def tick(self, now: float, flows: dict[int, int]) -> None:
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

    def stats(self) -> dict[str, object]:
        return {
            "threshold_pps": self.threshold_pps,
            "alerts": self.alerts,
            "flagged": {f"{k:08x}": round(v, 1) for k, v in self.flagged.items()},
        }


def make_service(name: str, *, rules: list[Rule] | tuple[Rule, ...] = (),
                 default_action: str = "allow",
                 ids_threshold_pps: float = 1000.0) -> Passthrough | Firewall | Ids:
    if name == "passthrough":
        return Passthrough()
    if name == "firewall":
        return Firewall(rules, default_action)
    if name == "ids":
        return Ids(ids_threshold_pps)
    raise ValueError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")
