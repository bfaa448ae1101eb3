"""MAC addresses: the one parser and formatter of the project.

Every package (D-MANO, connector, VNF, builder, benchmarks) converts between the text
form ``02:dc:01:00:00:01`` used in configs and command lines, the 6 raw bytes used on
the wire and in eBPF maps, and the 48-bit integer used in P4Runtime values.
"""

from __future__ import annotations

import re

_TEXT = re.compile(r"^[0-9a-fA-F]{1,2}([:-][0-9a-fA-F]{1,2}){5}$")


def parse_mac(value: str | bytes | bytearray | int) -> bytes:
    """6 raw bytes from ``aa:bb:cc:dd:ee:ff`` (or ``-``, one-digit groups allowed), raw
    bytes or an integer. Raises ValueError naming the bad value."""
    if isinstance(value, int):
        if not 0 <= value < 1 << 48:
            raise ValueError(f"not a MAC address: {value!r} (expected 0..2^48-1)")
        return value.to_bytes(6, "big")
    if isinstance(value, bytes | bytearray):
        if len(value) != 6:
            raise ValueError(f"not a MAC address: {bytes(value)!r} (expected 6 bytes)")
        return bytes(value)
    if not isinstance(value, str) or not _TEXT.match(value):
        raise ValueError(f"not a MAC address: {value!r} (expected aa:bb:cc:dd:ee:ff)")
    return bytes(int(p, 16) for p in re.split("[:-]", value))


def format_mac(value: bytes | bytearray | int | str) -> str:
    """Canonical text form, lower case: ``02:dc:01:00:00:01``."""
    return ":".join(f"{b:02x}" for b in parse_mac(value))


def mac_to_int(value: str | bytes | bytearray | int) -> int:
    return int.from_bytes(parse_mac(value), "big")
