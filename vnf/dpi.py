"""The ``dpi`` service: payload pattern matching on the inner IPv4 packet.

Rules are firewall rules (:mod:`vnf.rules`) with a payload pattern on top::

    [drop|allow|count] [src=PREFIX] [dst=PREFIX] [proto=tcp|udp|icmp|sctp|N]
                       [dport=P|P-Q] (payload=TEXT | hex=HEX)

``payload=TEXT`` matches the bytes of TEXT (UTF-8, case-sensitive; no spaces in rule
text: use ``hex=`` or the mapping form ``{action: count, payload: "GET /x"}`` of config
files); ``hex=HEX`` matches raw bytes (``hex=deadbeef``, ``hex=0x0d0a``). Every rule
needs exactly one pattern, at most 1024 bytes. The action defaults to ``drop``.

The pattern is searched in the inner packet's payload: after the TCP header (its data
offset) or the UDP header, after the IPv4 header for other protocols and for non-first
fragments, up to the IPv4 total length. Rules are tried in order; a matching ``count``
rule counts and the next rules are tried; the first matching ``drop`` rule drops the
packet (``policy_drop``) and the first matching ``allow`` rule forwards it at once.
No ``drop``/``allow`` match: forwarded. Each packet is searched on its own (no TCP
stream reassembly: a pattern split across packets or fragments is not seen). Like the
firewall, a frame whose inner packet is not IPv4 is dropped as ``bad_inner``.

Counters (``service_stats``): ``rules`` [{``rule``, ``hits``}], ``packets_scanned``,
``bytes_scanned`` (payload bytes searched), ``packets_matched`` (packets with at least
one hit).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from vnf.fastpath import BAD_INNER, FORWARD, INNER_OFFSET, NSH_NEXT_IPV4, POLICY_DROP
from vnf.rules import (
    IPV4_FIELDS,
    MATCH_KEYS,
    MIN_INNER,
    PORTED,
    RuleError,
    format_match,
    match_fields,
    net_mask,
    split_rule,
)

DPI_ACTIONS = ("drop", "allow", "count")
PATTERN_KEYS = ("payload", "hex")
MAX_PATTERN = 1024
_DROP, _COUNT = DPI_ACTIONS.index("drop"), DPI_ACTIONS.index("count")
_TCP, _UDP = 6, 17


@dataclass(frozen=True)
class DpiRule:
    pattern: bytes
    action: str = "drop"  # drop | allow | count
    src: IPv4Network | None = None
    dst: IPv4Network | None = None
    proto: int | None = None
    dport: tuple[int, int] | None = None  # inclusive range

    def __str__(self) -> str:
        return " ".join([self.action, *format_match(self.src, self.dst, self.proto,
                                                    self.dport), _pattern_word(self.pattern)])

    def compiled(self) -> tuple[int, int, int, int, int, int, int, bytes, int]:
        """(src net, src mask, dst net, dst mask, proto|-1, port lo|-1, port hi, pattern,
        action code)."""
        snet, smask = net_mask(self.src)
        dnet, dmask = net_mask(self.dst)
        lo, hi = self.dport if self.dport is not None else (-1, -1)
        proto = self.proto if self.proto is not None else -1
        return (snet, smask, dnet, dmask, proto, lo, hi, self.pattern,
                DPI_ACTIONS.index(self.action))


def _pattern_word(pattern: bytes) -> str:
    """``payload=TEXT`` when the pattern is printable ASCII without spaces, else hex."""
    if all(0x21 <= b <= 0x7E for b in pattern):
        return f"payload={pattern.decode('ascii')}"
    return f"hex={pattern.hex()}"


def parse_dpi_rule(text: str) -> DpiRule:
    """Parse ``[drop|allow|count] key=value ...`` (see the module docstring)."""
    action, fields = split_rule(text, DPI_ACTIONS)
    return dpi_rule_from_fields(fields, action, where=f"rule {text!r}")


def dpi_rule_from_fields(fields: dict[str, Any], action: str = "drop",
                         where: str = "rule") -> DpiRule:
    """Build a rule from ``{src, dst, proto, dport, payload | hex}``."""
    if action not in DPI_ACTIONS:
        raise RuleError(f"{where}: action must be drop, allow or count, got {action!r}")
    unknown = set(fields) - set(MATCH_KEYS) - set(PATTERN_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                        "(allowed: src, dst, proto, dport, payload, hex)")
    given = [k for k in PATTERN_KEYS if fields.get(k) is not None]
    if len(given) != 1:
        raise RuleError(f"{where}: a dpi rule needs exactly one pattern, payload=TEXT or "
                        f"hex=HEX, got {' and '.join(given) or 'none'}")
    key = given[0]
    value = fields[key]
    if not isinstance(value, str) or not value:
        raise RuleError(f"{where}: {key}: expected a non-empty string (quote it in YAML), "
                        f"got {value!r}")
    pattern = _hex(value, where) if key == "hex" else value.encode("utf-8")
    if len(pattern) > MAX_PATTERN:
        raise RuleError(f"{where}: {key}: a pattern has at most {MAX_PATTERN} bytes, got "
                        f"{len(pattern)}")
    return DpiRule(pattern, action, *match_fields(fields, where))


def _hex(value: str, where: str) -> bytes:
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        pattern = bytes.fromhex(digits)
    except ValueError:
        pattern = b""
    if not pattern:
        raise RuleError(f"{where}: hex: expected an even number of hex digits like deadbeef, "
                        f"got {value!r}")
    return pattern


class Dpi:
    """Ordered payload rules (see the module docstring); no per-flow state."""

    name = "dpi"

    def __init__(self, rules: list[DpiRule] | tuple[DpiRule, ...] = ()):
        self.rules = tuple(rules)
        self._compiled = [r.compiled() for r in self.rules]
        self.hits = [0] * len(self.rules)
        self.packets_scanned = 0
        self.bytes_scanned = 0
        self.packets_matched = 0

    def inspect(self, buf: bytearray, off: int, n: int) -> int:
        if n < MIN_INNER or buf[off + 17] != NSH_NEXT_IPV4:
            return BAD_INNER
        ip = off + INNER_OFFSET
        vihl, frag, proto, src, dst = IPV4_FIELDS.unpack_from(buf, ip)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20 or INNER_OFFSET + ihl > n:
            return BAD_INNER
        end = off + n
        total = buf[ip + 2] << 8 | buf[ip + 3]
        if ihl <= total and ip + total < end:  # Ethernet padding is not payload
            end = ip + total
        start = ip + ihl
        dport = -1
        if not frag & 0x1FFF and proto in PORTED:
            if start + 4 <= end:
                dport = buf[start + 2] << 8 | buf[start + 3]
            if proto == _TCP:
                doff = (buf[start + 12] >> 4) << 2 if start + 13 <= end else 20
                start += doff if doff >= 20 else 20
            else:
                start += 8 if proto == _UDP else 12
            if start > end:
                start = end
        self.packets_scanned += 1
        self.bytes_scanned += end - start
        matched = False
        for i, (snet, smask, dnet, dmask, rproto, lo, hi, pattern,
                action) in enumerate(self._compiled):
            if (src & smask == snet and dst & dmask == dnet
                    and (rproto < 0 or rproto == proto)
                    and (lo < 0 or lo <= dport <= hi)
                    and buf.find(pattern, start, end) >= 0):
                self.hits[i] += 1
                matched = True
                if action != _COUNT:
                    self.packets_matched += 1
                    return POLICY_DROP if action == _DROP else FORWARD
        if matched:
            self.packets_matched += 1
        return FORWARD

    def tick(self, now: float, flows: dict[int, int]) -> None:
        pass

    def stats(self) -> dict[str, object]:
        return {
            "packets_scanned": self.packets_scanned,
            "bytes_scanned": self.bytes_scanned,
            "packets_matched": self.packets_matched,
            "rules": [{"rule": str(r), "hits": h}
                      for r, h in zip(self.rules, self.hits, strict=True)],
        }
