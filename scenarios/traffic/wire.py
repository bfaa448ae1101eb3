"""The probe payload every generated UDP datagram starts with.

Layout (network byte order, 20 bytes), then zero padding up to the flow's payload size::

    0       4        8        12                20
    | magic | flow id | seq   | send time (ns)  | zeros ...
      "DSF1"   u32      u32     u64

* ``magic``: ``b"DSF1"`` (the last byte is the format version).
* ``flow id``: unique per generator run (``first_flow_id`` upwards, in start order).
* ``seq``: 0, 1, 2, ... per flow, one per scheduled packet (a packet the generator fails to
  send or is told to skip still uses its number, so the sink sees it as lost).
* ``send time``: :func:`time.monotonic_ns` just before ``sendto``. CLOCK_MONOTONIC is one
  clock for every network namespace of a machine, so ``receive - send`` is the one-way
  latency when generator and sink run on the same machine (as in the emulation). Across
  machines the difference is meaningless (the sink counts negative values).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAGIC = b"DSF1"
HEADER = struct.Struct("!4sIIQ")
HEADER_SIZE = HEADER.size  # 20
MAX_PAYLOAD = 65507  # largest UDP payload over IPv4
U32 = 0xFFFFFFFF


class Probe(NamedTuple):
    flow_id: int
    seq: int
    sent_ns: int


def encode(flow_id: int, seq: int, sent_ns: int, size: int = HEADER_SIZE) -> bytes:
    """A payload of ``size`` bytes (at least :data:`HEADER_SIZE`)."""
    if size < HEADER_SIZE:
        raise ValueError(f"payload size {size} < {HEADER_SIZE} bytes of probe header")
    buf = bytearray(size)
    HEADER.pack_into(buf, 0, MAGIC, flow_id & U32, seq & U32, sent_ns)
    return bytes(buf)


def decode(data: bytes | bytearray | memoryview) -> Probe | None:
    """The probe header of ``data``; None if it is too short or has the wrong magic."""
    if len(data) < HEADER_SIZE:
        return None
    magic, flow_id, seq, sent_ns = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        return None
    return Probe(flow_id, seq, sent_ns)
