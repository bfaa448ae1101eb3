"""The ``scapy`` service: your own Python, one inner packet at a time, as a scapy object.

A VNF module is a Python file (``--module PATH``; ``module:`` of a ``kind: scapy``
service in a topology file) that defines::

    def process(pkt, ctx):      # required; called for every packet
        ...                     # pkt: the inner packet as scapy parsed it, IP(...)
        return pkt              # the packet to send on (the same object changed or not,
                                # or a new IP(...)), or None: drop it (policy_drop)

    def setup(params): ...      # optional: once at start, with the params mapping
    def tick(now): ...          # optional: about every stats period (monotonic seconds)
    def stats(): return {...}   # optional: JSON-able counters, written to the stats
                                # file as service_stats.user

``ctx`` (one object, refilled for every packet: keep what you need in ``ctx.flow``):

``ctx.flow_hash``  NSH context header 1: the classifier's 32-bit hash of the flow
``ctx.spi``        the packet's service path identifier (its chain)
``ctx.si``         its service index as received (the VNF sends it on with SI - 1)
``ctx.flow``       a dict of your own, one per flow (by ``flow_hash``), kept across the
                   flow's packets; the least recently seen flows are forgotten beyond
                   ``flows_max`` (4096) flows
``ctx.now``        ``time.monotonic()`` when the packet was taken
``ctx.params``     the params mapping (as given to ``setup``)
``ctx.log``        a logger for the module (``vnf.user.<file name>``)

The VNF does the rest, as for every service: NSH checks, the capacity limit, the SI - 1,
the MAC swap and the counters. A frame whose inner packet is not IPv4 (NSH next protocol,
version, header length, or an IPv4 total length beyond the frame) is dropped as
``bad_inner`` without calling ``process``. Ethernet padding after the IPv4 total length
is not handed to ``process`` and not sent back.

Re-encoding: the returned packet is built with scapy (``bytes(pkt)``); then the IPv4
total length and header checksum are set, and, unless the packet is a fragment, the UDP
length and checksum (a UDP checksum of 0, "none", stays 0), the TCP checksum and the
ICMP checksum are recomputed, so a changed payload or address needs no care. (Set on
the bytes rather than by deleting the fields before ``bytes()``: scapy reuses its cached
bytes for the layers you did not change, about 2x faster for packets sent on unchanged;
a packet with IPv4 options has its header length recomputed by scapy.) The frame
around it is rebuilt at the new length: it may grow or shrink, up to the receive slot
(``--slot``, 16384 bytes less 38 of Ethernet and NSH) and, on the wire, the link's MTU
(a longer frame is refused by the kernel: ``tx_error``).

Errors in the user's code never stop the VNF: an exception in ``process``, a return
value that is not a scapy IPv4 packet (``IP``; e.g. ``IPv6``, ``Ether``, bytes), a
packet scapy cannot build or one too long for the slot drops that packet as
``vnf_error``. Each distinct error (hook, exception type, line in the module) is logged
once with its traceback, then only counted (``service_stats.errors``). Exceptions in
``tick`` and ``stats`` are logged and counted the same way (``hook_errors``). A module
that does not import, has no ``process``, whose functions take the wrong arguments or
whose ``setup`` raises fails the VNF at start (:class:`vnf.usermodule.ModuleError`;
``python -m vnf`` exits 3 with the error on stderr).

Counters (``service_stats``): ``module``, ``hooks`` (the functions it defines),
``calls`` (packets handed to ``process``), ``returned_none`` (of them, dropped by
returning None: the ``policy_drop`` count), ``vnf_errors``, ``resized`` (packets sent on
at another length), ``hook_errors``, ``flows_tracked``, ``flows_evicted``, ``errors``
([{``hook``, ``error``, ``where``, ``count``}], most frequent first) and ``user`` (what
``stats()`` returned, when defined).

Cost: scapy parses and builds in Python, about 0.1-0.5 ms per packet (a few thousand
packets/s per VNF, ~100x slower than the built-in services); ``make bench`` prints both.
This module imports scapy, so :mod:`vnf.services` imports it only for ``--service
scapy``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from struct import Struct
from typing import Any

from scapy.layers.inet import IP

from vnf.fastpath import (
    BAD_INNER,
    FORWARD,
    INNER_OFFSET,
    MIN_FRAME,
    NSH_NEXT_IPV4,
    POLICY_DROP,
    VNF_ERROR,
    resized,
)
from vnf.packetio import DEFAULT_SLOT
from vnf.usermodule import (
    ErrorLog,
    ModuleError,
    UserModule,
    describe,
    load_module,
    user_traceback,
)

_PATH_CTX1 = Struct("!II")  # service path header (spi:24 si:8), ctx1; at Ethernet + 4
_DROPPED = "the packet is dropped (vnf_error), the VNF goes on"
_GOES_ON = "the VNF goes on"


class Context:
    """What ``process(pkt, ctx)`` knows besides the packet (see the module docstring)."""

    __slots__ = ("flow", "flow_hash", "log", "now", "params", "si", "spi")

    def __init__(self, params: dict[str, Any], logger: logging.Logger):
        self.flow_hash = 0
        self.spi = 0
        self.si = 0
        self.flow: dict[str, Any] = {}
        self.now = 0.0
        self.params = params
        self.log = logger

    def __repr__(self) -> str:
        return (f"Context(flow_hash={self.flow_hash:08x}, spi={self.spi}, si={self.si}, "
                f"flow={self.flow!r}, now={self.now:.3f})")


class ScapyService:
    """Runs a user module's ``process`` on every inner packet (module docstring).

    ``room``: bytes available at a frame's offset in the I/O buffer (the receive slot,
    ``--slot``); a returned packet that does not fit is a ``vnf_error``.
    """

    name = "scapy"

    def __init__(self, module: UserModule, params: Mapping[str, Any] | None = None, *,
                 flows_max: int = 4096, room: int = DEFAULT_SLOT,
                 clock: Callable[[], float] = time.monotonic):
        if flows_max < 1 or room < MIN_FRAME + 20:
            raise ValueError(f"flows_max must be >= 1 and room >= {MIN_FRAME + 20}, got "
                             f"{flows_max}, {room}")
        self.module = module
        self.path = module.path
        self.params = dict(params or {})
        self.flows_max = flows_max
        self.room = room
        self.clock = clock
        self.log = logging.getLogger(f"vnf.user.{module.path.stem}")
        self.ctx = Context(self.params, self.log)
        self.errors = ErrorLog(module.path)
        self._process = module.process
        #: flow hash -> the flow's ctx.flow dict, least recently seen first
        self.flow_state: dict[int, dict[str, Any]] = {}
        self.flows_evicted = 0
        self.calls = 0
        self.returned_none = 0
        self.vnf_errors = 0
        self.resized = 0
        if module.setup is not None:
            try:
                module.setup(self.params)
            except Exception as exc:
                raise ModuleError(f"{module.path}: setup(params) raised {describe(exc)} "
                                  f"(params {self.params!r})\n"
                                  f"{user_traceback(exc, module.path)}") from exc

    @classmethod
    def from_file(cls, path: str | Path, params: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> ScapyService:
        """Import the module at ``path`` and call its ``setup(params)``;
        :class:`~vnf.usermodule.ModuleError` when it cannot be used."""
        return cls(load_module(path), params, **kwargs)

    # -- per packet ----------------------------------------------------------------------
    def inspect(self, buf: bytearray, off: int, n: int) -> int:
        if n < MIN_FRAME + 20 or buf[off + 17] != NSH_NEXT_IPV4:
            return BAD_INNER
        ip = off + INNER_OFFSET
        vihl = buf[ip]
        total = buf[ip + 2] << 8 | buf[ip + 3]
        if vihl >> 4 != 4 or vihl & 0x0F < 5 or total < (vihl & 0x0F) << 2 \
                or INNER_OFFSET + total > n:
            return BAD_INNER
        spi_si, ctx1 = _PATH_CTX1.unpack_from(buf, off + 18)
        ctx = self.ctx
        ctx.flow_hash = ctx1
        ctx.spi = spi_si >> 8
        ctx.si = spi_si & 0xFF
        ctx.now = self.clock()
        flows = self.flow_state
        state = flows.pop(ctx1, None)
        if state is None:
            state = {}
            if len(flows) >= self.flows_max:
                del flows[next(iter(flows))]
                self.flows_evicted += 1
        flows[ctx1] = state
        ctx.flow = state
        self.calls += 1
        try:
            out = self._process(IP(bytes(buf[ip:ip + total])), ctx)
        except Exception as exc:
            return self._error(exc, "")
        if out is None:
            self.returned_none += 1
            return POLICY_DROP
        if not isinstance(out, IP):
            what = _what(out)
            return self._error(None, f"returned {what}, expected an IPv4 packet (scapy "
                                     "IP) or None", kind=f"returned {what}")
        try:
            data = encode(out)
        except Exception as exc:
            return self._error(exc, "")
        size = len(data)
        end = INNER_OFFSET + size
        if end > self.room:
            return self._error(None, f"returned a packet of {size} bytes, more than the "
                                     f"{self.room - INNER_OFFSET} that fit in the receive "
                                     f"slot (--slot {self.room})", kind="too long")
        buf[ip:ip + size] = data  # same length, unless handle()'s own buffer grows
        if end == n:
            return FORWARD
        self.resized += 1
        return resized(end)

    def _error(self, exc: Exception | None, what: str, kind: str | None = None) -> int:
        self.vnf_errors += 1
        self.errors.record("process", exc, what, _DROPPED, kind=kind)
        return VNF_ERROR

    # -- periodic ------------------------------------------------------------------------
    def tick(self, now: float, flows: dict[int, int]) -> None:
        if self.module.tick is not None:
            try:
                self.module.tick(now)
            except Exception as exc:
                self.errors.record("tick", exc, "", _GOES_ON)

    def stats(self) -> dict[str, object]:
        user = self._user_stats()
        out: dict[str, object] = {
            "module": str(self.path),
            "hooks": self.module.hooks,
            "calls": self.calls,
            "returned_none": self.returned_none,
            "vnf_errors": self.vnf_errors,
            "resized": self.resized,
            "hook_errors": self.errors.total("tick") + self.errors.total("stats"),
            "flows_tracked": len(self.flow_state),
            "flows_evicted": self.flows_evicted,
            "errors": self.errors.summary(),
        }
        if user is not None:
            out["user"] = user
        return out

    def _user_stats(self) -> object | None:
        """What the module's ``stats()`` returns, if it can go into the JSON file."""
        if self.module.stats is None:
            return None
        left_out = "service_stats.user is left out; " + _GOES_ON
        try:
            user = self.module.stats()
        except Exception as exc:
            self.errors.record("stats", exc, "", left_out)
            return None
        try:
            json.dumps(user, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.errors.record("stats", None, f"returned what JSON cannot hold ({exc})",
                               left_out, kind="not JSON")
            return None
        return user


def _what(value: object) -> str:
    if hasattr(value, "summary") and hasattr(value, "payload"):  # another scapy packet
        return f"a scapy {type(value).__name__} packet"
    return f"a value of type {type(value).__name__}"


# -- re-encoding ---------------------------------------------------------------------------

def encode(pkt: Any) -> bytearray:
    """The bytes of a scapy IPv4 packet with its lengths and checksums set (module
    docstring); ValueError when what scapy built is not IPv4."""
    if pkt.options:  # scapy lays the header out (and pads it) only without a set ihl
        del pkt.ihl
    data = bytearray(bytes(pkt))
    if len(data) < 20 or data[0] >> 4 != 4:
        raise ValueError(f"the returned IP packet has version {data[0] >> 4 if data else '?'}"
                         f" or is shorter than 20 bytes ({len(data)})")
    if not pkt.options:
        data[0] = 0x45  # version 4, 20-byte header (a stale ihl from the input is fixed)
    ihl = (data[0] & 0x0F) << 2
    total = len(data)
    if total > 0xFFFF or ihl > total:
        raise ValueError(f"the returned IP packet is {total} bytes with a {ihl}-byte "
                         "header; IPv4 allows 20..65535")
    data[2:4] = total.to_bytes(2, "big")
    data[10:12] = b"\0\0"
    data[10:12] = checksum(data, 0, ihl).to_bytes(2, "big")
    if data[6] & 0x3F or data[7]:  # MF set or a fragment offset: a fragment
        return data
    proto, seg = data[9], total - ihl
    if proto == 17 and seg >= 8:  # UDP
        data[ihl + 4:ihl + 6] = seg.to_bytes(2, "big")
        if data[ihl + 6] or data[ihl + 7]:
            _l4_checksum(data, ihl, ihl + 6, proto, seg, udp=True)
    elif proto == 6 and seg >= 20:  # TCP
        _l4_checksum(data, ihl, ihl + 16, proto, seg)
    elif proto == 1 and seg >= 4:  # ICMP: no pseudo-header
        data[ihl + 2:ihl + 4] = b"\0\0"
        data[ihl + 2:ihl + 4] = checksum(data, ihl, total).to_bytes(2, "big")
    return data


def _l4_checksum(data: bytearray, ihl: int, at: int, proto: int, seg: int,
                 udp: bool = False) -> None:
    data[at:at + 2] = b"\0\0"
    pseudo = bytes(data[12:20]) + bytes((0, proto)) + seg.to_bytes(2, "big")
    value = checksum(pseudo + data[ihl:], 0, len(pseudo) + seg)
    if udp and value == 0:
        value = 0xFFFF  # 0 would mean "no checksum" (RFC 768)
    data[at:at + 2] = value.to_bytes(2, "big")


def checksum(data: bytes | bytearray, start: int, end: int) -> int:
    """The Internet checksum (RFC 1071) of ``data[start:end]``.

    The one's complement sum of 16-bit words is the number the bytes spell modulo
    0xFFFF (2**16 is 1 modulo 0xFFFF), 0xFFFF standing for 0 unless all bytes are 0.
    """
    chunk = bytes(data[start:end])
    if len(chunk) % 2:
        chunk += b"\0"
    total = int.from_bytes(chunk, "big") % 0xFFFF
    if total == 0 and any(chunk):
        total = 0xFFFF
    return ~total & 0xFFFF
