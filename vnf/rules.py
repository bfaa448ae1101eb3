"""Firewall-style rules on the inner IPv4 packet: the syntax and the parsed form.

Used by the ``firewall`` (:class:`vnf.services.Firewall`) and, with payload patterns on
top, by the ``dpi`` service (:mod:`vnf.dpi`). Rule text::

    [ACTION] [src=PREFIX] [dst=PREFIX] [proto=tcp|udp|icmp|sctp|N] [dport=P|P-Q]

ACTION is ``drop`` (the default) or ``allow`` for the firewall; a rule with no match
fields matches everything. The same fields may be given as a mapping (config files).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from struct import Struct
from typing import Any

from vnf.fastpath import INNER_OFFSET

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
_PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}
PORTED = (6, 17, 132)  # protocols whose first 4 bytes are source and destination port

# IPv4: version/IHL, (tos, total length, id skipped), flags/fragment offset, (ttl),
# protocol, (checksum), source, destination
IPV4_FIELDS = Struct("!B5xHxBxxII")
MIN_INNER = INNER_OFFSET + IPV4_FIELDS.size


class RuleError(ValueError):
    """A rule is malformed; the message says which rule, which part and why."""


@dataclass(frozen=True)
class Rule:
    action: str = "drop"  # drop | allow
    src: IPv4Network | None = None
    dst: IPv4Network | None = None
    proto: int | None = None
    dport: tuple[int, int] | None = None  # inclusive range

    def __str__(self) -> str:
        return " ".join([self.action, *format_match(self.src, self.dst, self.proto,
                                                    self.dport)])

    def compiled(self) -> tuple[int, int, int, int, int, int, int, bool]:
        """(src net, src mask, dst net, dst mask, proto|-1, port lo|-1, port hi, drop)."""
        snet, smask = net_mask(self.src)
        dnet, dmask = net_mask(self.dst)
        lo, hi = self.dport if self.dport is not None else (-1, -1)
        proto = self.proto if self.proto is not None else -1
        return snet, smask, dnet, dmask, proto, lo, hi, self.action == "drop"


def net_mask(net: IPv4Network | None) -> tuple[int, int]:
    """(network, netmask) as ints; (0, 0) matches every address."""
    if net is None:
        return 0, 0
    return int(net.network_address), int(net.netmask)


def parse_rule(text: str) -> Rule:
    """Parse ``[drop|allow] key=value ...`` (see the module docstring)."""
    action, fields = split_rule(text, ("drop", "allow"))
    return rule_from_fields(fields, action, where=f"rule {text!r}")


def split_rule(text: str, actions: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``[ACTION] key=value ...`` -> (action, {key: value}); the action defaults to the
    first of ``actions``. Shared by the firewall and :mod:`vnf.dpi` rule syntaxes."""
    words = text.split()
    action = actions[0]
    if words and words[0] in actions:
        action = words.pop(0)
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise RuleError(f"rule {text!r}: expected key=value, got {word!r}")
        if key in fields:
            raise RuleError(f"rule {text!r}: {key} given twice")
        fields[key] = value
    return action, fields


def rule_from_fields(fields: dict[str, Any], action: str = "drop", where: str = "rule") -> Rule:
    """Build a rule from ``{src, dst, proto, dport}`` (strings or ints)."""
    if action not in ("drop", "allow"):
        raise RuleError(f"{where}: action must be drop or allow, got {action!r}")
    unknown = set(fields) - set(MATCH_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                        "(allowed: src, dst, proto, dport)")
    return Rule(action, *match_fields(fields, where))


MATCH_KEYS = ("src", "dst", "proto", "dport")


def match_fields(fields: dict[str, Any], where: str) -> tuple[
        IPv4Network | None, IPv4Network | None, int | None, tuple[int, int] | None]:
    """The 5-tuple part of a rule (``src``, ``dst``, ``proto``, ``dport``; other keys of
    ``fields`` are ignored): (src, dst, proto, dport range), each None when absent."""
    src = _prefix(fields.get("src"), "src", where)
    dst = _prefix(fields.get("dst"), "dst", where)
    proto = _proto(fields.get("proto"), where)
    dport = _ports(fields.get("dport"), where)
    if dport is not None and proto is not None and proto not in PORTED:
        raise RuleError(f"{where}: dport needs proto tcp, udp or sctp (or no proto)")
    return src, dst, proto, dport


def format_match(src: IPv4Network | None, dst: IPv4Network | None, proto: int | None,
                 dport: tuple[int, int] | None) -> list[str]:
    """The rule-text words of a 5-tuple match (the inverse of :func:`match_fields`)."""
    parts = []
    if src is not None:
        parts.append(f"src={src}")
    if dst is not None:
        parts.append(f"dst={dst}")
    if proto is not None:
        parts.append(f"proto={_PROTO_NAMES.get(proto, proto)}")
    if dport is not None:
        lo, hi = dport
        parts.append(f"dport={lo}" if lo == hi else f"dport={lo}-{hi}")
    return parts


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
