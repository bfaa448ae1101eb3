"""The VNF's per-packet work on bytes: validate NSH, apply the service, SI-1, swap MACs.

Frame layout (connector <-> VNF, see ``connector_p4/PIPELINE.md``), offsets from the
start of the Ethernet header::

     0  dst MAC (6)        6  src MAC (6)        12  ethertype 0x894F (2)
    14  NSH base: ver:2 O:1 U:1 ttl:6 | length:6 | U:4 md_type:4 | next_protocol:8
    18  service path: spi:24 si:8
    22  ctx1 (flow hash)  26 ctx2  30 ctx3  34 ctx4
    38  inner packet (IPv4 when next_protocol = 1)

:class:`Processor.process` works in place on a caller-owned buffer (the I/O layer
receives straight into it and sends straight out of it), so a forwarded frame costs no
copy and no per-packet object beyond a handful of ints. It returns :data:`FORWARD` or
the index of the drop reason in :data:`REASONS`, and counts what it saw. A service may
also answer :data:`RECLASSIFIED`: it rewrote the NSH service path header itself (RFC 7665
reclassification, e.g. the ``ids`` moving a suspicious flow to another chain at SI 255),
so the processor forwards the frame without decrementing the SI. A service that rebuilds
the inner packet (``scapy``) may change the frame's length: it writes the new frame in
place (within the receive slot) and answers ``resized(new_length)`` (a value at most
:data:`RESIZED`); the processor then returns that verdict instead of :data:`FORWARD`, and
the I/O layer sends ``forwarded_length(verdict, n)`` bytes. Sent packets
are counted by the caller (:meth:`Processor.count_out`), because only it knows whether
the send worked.

Checks, in order (the first that fails names the drop reason):

``truncated``      shorter than Ethernet + NSH MD type 1 (38 bytes)
``not_nsh``        ethertype is not 0x894F
``bad_version``    NSH version != 0
``bad_md_type``    MD type != 1
``bad_length``     NSH length != 6 words
``si_zero``        service index 0 (the chain already ended; must not be decremented)
``over_capacity``  the token bucket (``capacity`` packets/s) is empty
``bad_inner`` / ``policy_drop``  decided by the service (see :mod:`vnf.services`)
``vnf_error``      a user module (service ``scapy``) raised or returned something that is
                   not an IPv4 packet (see :mod:`vnf.scapy_service`)

The NSH TTL is left alone: connectors decrement it (DESIGN.md section 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from struct import Struct
from typing import Protocol

from dmano.macaddr import parse_mac

ETH_P_NSH = 0x894F
ETH_HLEN = 14
NSH_MD1_LEN = 24  # base 4 + service path 4 + 4 x 4 context
MIN_FRAME = ETH_HLEN + NSH_MD1_LEN  # 38
INNER_OFFSET = MIN_FRAME
NSH_NEXT_IPV4 = 1

REASONS: tuple[str, ...] = (
    "truncated",
    "not_nsh",
    "bad_version",
    "bad_md_type",
    "bad_length",
    "si_zero",
    "over_capacity",
    "bad_inner",
    "policy_drop",
    "too_big",  # bigger than the receive slot (counted by the I/O layer)
    "tx_error",  # the kernel refused the send, e.g. ENOBUFS (counted by the I/O layer)
    "vnf_error",  # the user's code failed on this packet (service scapy)
)
(TRUNCATED, NOT_NSH, BAD_VERSION, BAD_MD_TYPE, BAD_LENGTH, SI_ZERO, OVER_CAPACITY,
 BAD_INNER, POLICY_DROP, TOO_BIG, TX_ERROR, VNF_ERROR) = range(len(REASONS))
FORWARD = -1
#: a service's verdict: forward, the service already rewrote SPI/SI (no SI-1)
RECLASSIFIED = -2
#: verdicts at most RESIZED: forward a frame whose length changed (see :func:`resized`)
RESIZED = -16


def resized(length: int) -> int:
    """The verdict "forward, the frame at ``buf[off:]`` is now ``length`` bytes long"."""
    return RESIZED - length


def forwarded_length(verdict: int, length: int) -> int:
    """The length to send for a forward verdict (:data:`FORWARD` keeps ``length``)."""
    return length if verdict == FORWARD else RESIZED - verdict

# ethertype, base byte 0, base byte 1, base byte 2, (next protocol skipped), spi|si, ctx1
_HDR = Struct("!12xHBBBxII")

Inspector = Callable[[bytearray, int, int], int]


class Service(Protocol):
    """What the processor needs from a service (implementations in :mod:`vnf.services`)."""

    # read-only members: a service may define them as class attributes or as a method
    @property
    def name(self) -> str:
        """The service's name, as in ``--service``."""

    @property
    def inspect(self) -> Inspector | None:
        """``inspect(buf, off, length) -> FORWARD | RECLASSIFIED | drop reason``, or
        None: accept all."""

    def tick(self, now: float, flows: dict[int, int]) -> None:
        """Called about every stats period with the monotonic time and the flow table."""

    def stats(self) -> dict[str, object]:
        """Service-specific counters for the stats file."""


class Processor:
    """Validates, serves and rewrites NSH frames; owns the counters.

    ``clock`` (monotonic seconds) is only read when a capacity is set; tests inject one.
    """

    def __init__(self, mac: bytes | str, service: Service, *, capacity: float | None = None,
                 burst: float | None = None, work_us: float = 0.0, flows_max: int = 4096,
                 clock: Callable[[], float] = time.monotonic):
        if capacity is not None and capacity <= 0:
            raise ValueError(f"capacity must be > 0 packets/s, got {capacity}")
        if flows_max < 1:
            raise ValueError(f"flows_max must be >= 1, got {flows_max}")
        self.mac = parse_mac(mac)  # 6 bytes (or text); ValueError otherwise
        self.service = service
        self.capacity = capacity
        self.burst = float(burst) if burst is not None else default_burst(capacity)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1 packet, got {self.burst}")
        self.work_s = max(work_us, 0.0) / 1e6
        self.flows_max = flows_max
        self.clock = clock
        self._tokens = self.burst
        self._last = clock() if capacity is not None else 0.0
        # counters
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.drops = [0] * len(REASONS)
        #: ctx1 -> packets, in recency order (oldest first); at most ``flows_max`` entries
        self.flows: dict[int, int] = {}
        self.flows_evicted = 0
        #: SPI -> NSH packets that arrived on that service path (before any capacity drop):
        #: where this instance's traffic goes next (the central orchestrator's demand)
        self.spi_packets: dict[int, int] = {}

    # -- the fast path ---------------------------------------------------------------
    def process(self, buf: bytearray, off: int, n: int) -> int:
        """Handle the ``n``-byte frame at ``buf[off:]`` in place; FORWARD, a resized
        verdict (at most :data:`RESIZED`) or a drop reason.

        On FORWARD the frame (same length) is ready to send back on the interface; on a
        resized verdict it is ready too, :func:`forwarded_length` bytes long. Never raises
        for any content of the buffer.
        """
        self.packets_in += 1
        self.bytes_in += n
        if n < MIN_FRAME:
            reason = TRUNCATED
            if n >= ETH_HLEN and (buf[off + 12] != 0x89 or buf[off + 13] != 0x4F):
                reason = NOT_NSH
            self.drops[reason] += 1
            return reason
        etype, b0, b1, b2, spi_si, ctx1 = _HDR.unpack_from(buf, off)
        if etype != ETH_P_NSH:
            self.drops[NOT_NSH] += 1
            return NOT_NSH
        if b0 & 0xC0:
            self.drops[BAD_VERSION] += 1
            return BAD_VERSION
        if b2 & 0x0F != 1:
            self.drops[BAD_MD_TYPE] += 1
            return BAD_MD_TYPE
        if b1 & 0x3F != 6:
            self.drops[BAD_LENGTH] += 1
            return BAD_LENGTH
        si = spi_si & 0xFF
        if not si:
            self.drops[SI_ZERO] += 1
            return SI_ZERO
        spi_packets = self.spi_packets
        spi = spi_si >> 8
        spi_packets[spi] = spi_packets.get(spi, 0) + 1

        # per-flow packet counts, most recent last (pop + insert moves the key to the end)
        flows = self.flows
        count = flows.pop(ctx1, 0)
        flows[ctx1] = count + 1
        if not count and len(flows) > self.flows_max:
            del flows[next(iter(flows))]
            self.flows_evicted += 1

        if self.capacity is not None:
            now = self.clock()
            tokens = self._tokens + (now - self._last) * self.capacity
            self._last = now
            if tokens > self.burst:
                tokens = self.burst
            if tokens < 1.0:
                self._tokens = tokens
                self.drops[OVER_CAPACITY] += 1
                return OVER_CAPACITY
            self._tokens = tokens - 1.0

        if self.work_s:
            busy_wait(self.work_s)

        inspect = self.service.inspect
        if inspect is None:
            buf[off + 21] = si - 1
            buf[off:off + 12] = buf[off + 6:off + 12] + self.mac
            return FORWARD
        verdict = inspect(buf, off, n)
        if verdict >= 0:
            self.drops[verdict] += 1
            return verdict
        if verdict != RECLASSIFIED:
            buf[off + 21] = si - 1
        buf[off:off + 12] = buf[off + 6:off + 12] + self.mac
        return FORWARD if verdict > RESIZED else verdict

    # -- helpers for the I/O layer and tests -----------------------------------------
    def count_out(self, packets: int, nbytes: int) -> None:
        self.packets_out += packets
        self.bytes_out += nbytes

    def count_drop(self, reason: int, packets: int = 1) -> None:
        """A drop the processor did not see (e.g. ``too_big``, ``tx_error``)."""
        self.drops[reason] += packets

    def count_oversize(self, length: int) -> None:
        """A frame longer than the receive slot (seen by the I/O layer only)."""
        self.packets_in += 1
        self.bytes_in += length
        self.drops[TOO_BIG] += 1

    def handle(self, frame: bytes) -> bytes | None:
        """Process one frame as if received and sent: the frame to send, or None."""
        buf = bytearray(frame)
        verdict = self.process(buf, 0, len(buf))
        if verdict >= 0:
            return None
        length = forwarded_length(verdict, len(frame))
        self.count_out(1, length)
        return bytes(buf[:length])

    def drop_counts(self) -> dict[str, int]:
        return dict(zip(REASONS, self.drops, strict=True))


def default_burst(capacity: float | None) -> float:
    """Token bucket depth: 50 ms of capacity, at least 1 packet."""
    if capacity is None:
        return 1.0
    return max(1.0, capacity * 0.05)


def busy_wait(seconds: float, _now: Callable[[], float] = time.perf_counter) -> None:
    """Burn CPU for ``seconds`` (``--work-us``): makes the VNF's CPU load real."""
    end = _now() + seconds
    while _now() < end:
        pass
