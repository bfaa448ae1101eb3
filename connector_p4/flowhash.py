"""The connector's flow hash (NSH context header 1), bit-exact with ``ebpf/connector.c``.

``ctx1 = crc32c(src_ip . dst_ip . proto . src_port . dst_port)``: CRC-32C (Castagnoli,
iSCSI; reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF; check value
``crc32c(b"123456789") == 0xE3069283``) over 13 bytes in network order. The ports are the
TCP/UDP ports only when the IPv4 header has no options (IHL 5) and the fragment offset is 0
(an unfragmented packet or a first fragment); otherwise, and for other protocols, 0.
"""

from __future__ import annotations

from ipaddress import IPv4Address

_POLY = 0x82F63B78


def _table() -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        out.append(c)
    return tuple(out)


CRC32C_TABLE = _table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` (``crc``: a previous result, to continue a running CRC)."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def flow_key(src: IPv4Address | str | int, dst: IPv4Address | str | int, proto: int,
             sport: int = 0, dport: int = 0) -> bytes:
    """The 13 hashed bytes."""
    return (IPv4Address(src).packed + IPv4Address(dst).packed + bytes([proto & 0xFF])
            + (sport & 0xFFFF).to_bytes(2, "big") + (dport & 0xFFFF).to_bytes(2, "big"))


def flow_hash(src: IPv4Address | str | int, dst: IPv4Address | str | int, proto: int,
              sport: int = 0, dport: int = 0) -> int:
    """ctx1 for a 5-tuple (ports 0 where the module doc says so)."""
    return crc32c(flow_key(src, dst, proto, sport, dport))


def gpe_source_port(ctx1: int) -> int:
    """Outer UDP source port of VXLAN-GPE: 49152 | (ctx1 & 0x3fff)."""
    return 0xC000 | (ctx1 & 0x3FFF)
