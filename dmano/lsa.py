"""Codec for the body of the VNF-announcement opaque LSA (DESIGN.md section 4).

One OSPF type-10 (area-local) opaque LSA per VNF instance; its opaque type is
:data:`OPAQUE_TYPE` and its 24-bit opaque ID is the instance id, which is therefore not
repeated in the body. The body is a sequence of RFC 5250-style TLVs: 16-bit type,
16-bit length (of the value, without padding), value padded with zeros to a 4-byte
boundary, all in network byte order.

======  ===============  ======  =================================================
type    name             length  value
======  ===============  ======  =================================================
1       VERSION          4       u8 version (:data:`LSA_VERSION`), 3 reserved bytes
2       SERVICE_ANYCAST  4       IPv4 address
3       SERVICE_ID       4       u32
4       VNF_COST         4       u32
5       NSH_ENDPOINT     4       IPv4 address
6       CAPACITY         4       u32, processing units per second
7       LOAD             4       u32, processing units per second
8       STATE            4       u8 :class:`~dmano.model.InstanceState`, 3 reserved
9       NAME             0..64   UTF-8 instance name (omitted when empty)
======  ===============  ======  =================================================

Decoding rules:

* VERSION must be the first TLV. Its version byte is checked before anything else, so
  a future version may change the rest of the layout (even the VERSION TLV's length)
  and an old decoder still reports ``unknown_version``.
* TLVs 1-5 are required; CAPACITY, LOAD and STATE default to 0, 0 and UP, NAME to "".
* Unknown TLV types are skipped (forward compatibility), wherever they appear after
  VERSION and however often. A known TLV appearing twice is an error.
* Reserved bytes and padding bytes are ignored on receipt (sent as zeros).
* Every TLV, the last one included, must be complete *with* its padding: a body whose
  length is not what the TLVs' padded lengths add up to is ``truncated``.

Any violation raises :class:`LsaDecodeError` whose ``reason`` is one of :data:`REASONS`
and never any other exception. :func:`decode_counted` wraps :func:`decode` for the
LSDB mirror: a malformed LSA is ignored, counted, and logged once per (reason, origin).
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import ClassVar

from dmano.model import InstanceState, VnfAnnouncement

logger = logging.getLogger(__name__)

OPAQUE_TYPE = 230
"""Opaque type of the VNF-announcement LSA (private range 128-255)."""

LSA_VERSION = 1
"""Version carried in the VERSION TLV; bodies with any other version are rejected."""

MAX_BODY = 1024
"""Largest body accepted by :func:`decode` (an encoded body is at most 112 bytes)."""

MAX_NAME_BYTES = 64
MAX_INSTANCE_ID = (1 << 24) - 1
MAX_U32 = (1 << 32) - 1

# Opaque ID layout: generation (16 bits) << 8 | instance id (8 bits). A changed
# announcement is originated under the next generation's opaque ID (and the previous one
# deleted) when the current LSA is younger than FRR's fixed 5 s MinLSInterval, which
# would otherwise hold the refresh back for up to 5 s; receivers keep, per (router,
# instance id), the copy with the highest SEQUENCE.
INSTANCE_BITS = 8
MAX_LOCAL_INSTANCE = (1 << INSTANCE_BITS) - 1
MAX_GENERATION = (1 << (24 - INSTANCE_BITS)) - 1


def make_opaque_id(instance_id: int, generation: int) -> int:
    if not 0 <= instance_id <= MAX_LOCAL_INSTANCE or not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"instance id {instance_id} / generation {generation} out of range")
    return generation << INSTANCE_BITS | instance_id


def split_opaque_id(opaque_id: int) -> tuple[int, int]:
    """(instance id, generation) of a 24-bit opaque ID."""
    return opaque_id & MAX_LOCAL_INSTANCE, opaque_id >> INSTANCE_BITS

TLV_HEADER = struct.Struct("!HH")


class Tlv(enum.IntEnum):
    """TLV types of the announcement body."""

    VERSION = 1
    SERVICE_ANYCAST = 2
    SERVICE_ID = 3
    VNF_COST = 4
    NSH_ENDPOINT = 5
    CAPACITY = 6
    LOAD = 7
    STATE = 8
    NAME = 9
    SEQUENCE = 10


REQUIRED_TLVS: tuple[Tlv, ...] = (
    Tlv.VERSION,
    Tlv.SERVICE_ANYCAST,
    Tlv.SERVICE_ID,
    Tlv.VNF_COST,
    Tlv.NSH_ENDPOINT,
)

# Known TLVs with a fixed value length (NAME is variable: 0..MAX_NAME_BYTES).
_FIXED_LENGTH: dict[int, int] = {t: 4 for t in Tlv if t is not Tlv.NAME}
_KNOWN_TLVS: frozenset[int] = frozenset(int(t) for t in Tlv)

REASONS: frozenset[str] = frozenset(
    {
        "truncated",  # a TLV header, value or padding runs past the end of the body
        "bad_tlv_length",  # a known TLV with a length it cannot have
        "unknown_version",  # VERSION TLV carries a version other than LSA_VERSION
        "missing_tlv",  # a required TLV is absent (an empty body lacks VERSION)
        "oversized",  # body longer than MAX_BODY
        "bad_value",  # invalid state code or invalid UTF-8 name
        "duplicate_tlv",  # a known TLV appears twice
        "not_first_version",  # the first TLV is not VERSION
    }
)
"""Every ``reason`` an :class:`LsaDecodeError` can carry."""


class MalformedError(ValueError):
    """Malformed input (base of :class:`LsaDecodeError` and ``lsdb.LsaParseError``).

    ``reason`` is a short code from the subclass's :attr:`reasons` (stable, usable as a
    :class:`DecodeStats` counter key); ``detail`` says what exactly was wrong, for the log.
    """

    reasons: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, reason: str, detail: str):
        if reason not in self.reasons:  # a programming error
            raise AssertionError(f"unknown {type(self).__name__} reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class LsaDecodeError(MalformedError):
    """A VNF-announcement body is malformed; ``reason`` is a code from :data:`REASONS`."""

    reasons = REASONS


def _tlv(tlv_type: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return TLV_HEADER.pack(tlv_type, len(value)) + value + b"\0" * pad


def _check_u32(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U32:
        raise ValueError(f"{field} must be an integer in 0..{MAX_U32}, got {value!r}")
    return value


def _check_ipv4(field: str, value: object) -> IPv4Address:
    if not isinstance(value, IPv4Address):
        raise ValueError(f"{field} must be an IPv4Address, got {value!r}")
    return value


def encode(ann: VnfAnnouncement) -> bytes:
    """Encode the body of ``ann``'s opaque LSA (the instance id goes in the opaque ID).

    TLVs are written in type order; NAME is omitted when empty. Raises ``ValueError``
    when a field is out of range (ids and counters must fit their widths, the name
    must be at most :data:`MAX_NAME_BYTES` bytes of UTF-8).
    """
    iid = ann.instance_id
    if isinstance(iid, bool) or not isinstance(iid, int) or not 0 <= iid <= MAX_INSTANCE_ID:
        raise ValueError(f"instance_id must be an integer in 0..{MAX_INSTANCE_ID}, got {iid!r}")
    try:
        state = InstanceState(ann.state)
    except ValueError:
        raise ValueError(f"state must be an InstanceState, got {ann.state!r}") from None
    if not isinstance(ann.name, str):
        raise ValueError(f"name must be a string, got {ann.name!r}")
    try:
        name = ann.name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"name is not encodable as UTF-8: {exc}") from None
    if len(name) > MAX_NAME_BYTES:
        raise ValueError(f"name must be at most {MAX_NAME_BYTES} bytes of UTF-8, got {len(name)}")

    parts = [
        _tlv(Tlv.VERSION, bytes((LSA_VERSION, 0, 0, 0))),
        _tlv(Tlv.SERVICE_ANYCAST, _check_ipv4("anycast", ann.anycast).packed),
        _tlv(Tlv.SERVICE_ID, struct.pack("!I", _check_u32("service_id", ann.service_id))),
        _tlv(Tlv.VNF_COST, struct.pack("!I", _check_u32("cost", ann.cost))),
        _tlv(Tlv.NSH_ENDPOINT, _check_ipv4("endpoint", ann.endpoint).packed),
        _tlv(Tlv.CAPACITY, struct.pack("!I", _check_u32("capacity", ann.capacity))),
        _tlv(Tlv.LOAD, struct.pack("!I", _check_u32("load", ann.load))),
        _tlv(Tlv.STATE, bytes((int(state), 0, 0, 0))),
    ]
    if name:
        parts.append(_tlv(Tlv.NAME, name))
    parts.append(_tlv(Tlv.SEQUENCE, struct.pack("!I", _check_u32("sequence", ann.sequence))))
    return b"".join(parts)


def iter_tlvs(body: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield the ``(type, value)`` pairs of ``body`` (padding removed), checking framing.

    Raises :class:`LsaDecodeError` ``truncated`` when a header, value or its padding
    runs past the end of ``body`` (lazily: the TLVs before it are yielded first).
    """
    n = len(body)
    off = 0
    while off < n:
        if n - off < TLV_HEADER.size:
            raise LsaDecodeError(
                "truncated", f"TLV header at offset {off} needs 4 bytes, {n - off} left"
            )
        tlv_type, length = TLV_HEADER.unpack_from(body, off)
        start = off + TLV_HEADER.size
        end = start + length
        padded_end = start + ((length + 3) & ~3)
        if padded_end > n:
            raise LsaDecodeError(
                "truncated",
                f"TLV type {tlv_type} at offset {off}: length {length} "
                f"(padded {padded_end - start}) but {n - start} bytes left",
            )
        yield tlv_type, bytes(body[start:end])
        off = padded_end


def decode(body: bytes, instance_id: int) -> VnfAnnouncement:
    """Decode an announcement body; ``instance_id`` is the LSA's 24-bit opaque ID.

    Raises :class:`LsaDecodeError` (and nothing else) when ``body`` is malformed;
    ``ValueError`` only for an ``instance_id`` outside 0..2**24-1 (a caller bug).
    """
    if isinstance(instance_id, bool) or not 0 <= instance_id <= MAX_INSTANCE_ID:
        raise ValueError(f"instance_id must be in 0..{MAX_INSTANCE_ID}, got {instance_id!r}")
    if len(body) > MAX_BODY:
        raise LsaDecodeError("oversized", f"body is {len(body)} bytes, limit {MAX_BODY}")

    values: dict[int, bytes] = {}
    for index, (tlv_type, value) in enumerate(iter_tlvs(body)):
        if index == 0 and tlv_type != Tlv.VERSION:
            raise LsaDecodeError("not_first_version", f"first TLV is type {tlv_type}, not 1")
        if tlv_type not in _KNOWN_TLVS:
            continue  # unknown TLV: skipped for forward compatibility
        if tlv_type == Tlv.VERSION:
            if not value:
                raise LsaDecodeError("bad_tlv_length", "VERSION TLV has length 0")
            if value[0] != LSA_VERSION:
                raise LsaDecodeError(
                    "unknown_version", f"version {value[0]}, this decoder knows {LSA_VERSION}"
                )
        if tlv_type == Tlv.NAME:
            if len(value) > MAX_NAME_BYTES:
                raise LsaDecodeError(
                    "bad_tlv_length", f"NAME TLV has length {len(value)} > {MAX_NAME_BYTES}"
                )
        elif len(value) != _FIXED_LENGTH[tlv_type]:
            raise LsaDecodeError(
                "bad_tlv_length",
                f"{Tlv(tlv_type).name} TLV has length {len(value)}, "
                f"expected {_FIXED_LENGTH[tlv_type]}",
            )
        if tlv_type in values:
            raise LsaDecodeError("duplicate_tlv", f"{Tlv(tlv_type).name} TLV appears twice")
        values[tlv_type] = value

    for required in REQUIRED_TLVS:
        if required not in values:
            raise LsaDecodeError("missing_tlv", f"required {required.name} TLV is absent")

    state = InstanceState.UP
    if Tlv.STATE in values:
        code = values[Tlv.STATE][0]
        try:
            state = InstanceState(code)
        except ValueError:
            raise LsaDecodeError("bad_value", f"unknown instance state {code}") from None
    name = ""
    if Tlv.NAME in values:
        try:
            name = values[Tlv.NAME].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LsaDecodeError("bad_value", f"NAME is not valid UTF-8: {exc.reason}") from None

    def u32(tlv_type: Tlv, default: int = 0) -> int:
        raw = values.get(tlv_type)
        return default if raw is None else int.from_bytes(raw, "big")

    return VnfAnnouncement(
        instance_id=instance_id,
        service_id=u32(Tlv.SERVICE_ID),
        anycast=IPv4Address(values[Tlv.SERVICE_ANYCAST]),
        cost=u32(Tlv.VNF_COST),
        endpoint=IPv4Address(values[Tlv.NSH_ENDPOINT]),
        capacity=u32(Tlv.CAPACITY),
        load=u32(Tlv.LOAD),
        state=state,
        name=name,
        sequence=u32(Tlv.SEQUENCE),
    )


class DecodeStats:
    """Counts of malformed inputs per reason code, and a log-once memory.

    ``first_time(reason, origin)`` answers True once per distinct pair, so a peer that
    keeps sending the same broken LSA is logged once but counted every time. The
    memory is bounded (:attr:`max_logged` pairs); past it nothing more is logged, once
    said so, while counting goes on.
    """

    max_logged = 1024

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        self.log_suppressed = False

    def record(self, reason: str) -> None:
        self._counts[reason] += 1

    def first_time(self, reason: str, origin: str) -> bool:
        key = (reason, origin)
        if key in self._logged or self.log_suppressed:
            return False
        if len(self._logged) >= self.max_logged:
            self.log_suppressed = True
            logger.warning(
                "more than %d distinct malformed-LSA sources: no longer logging new ones "
                "(still counted)",
                self.max_logged,
            )
            return False
        self._logged.add(key)
        return True

    def count(self, reason: str) -> int:
        return self._counts[reason]

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        """Reason -> count, only reasons seen at least once, sorted by reason."""
        return dict(sorted(self._counts.items()))


def decode_counted(
    body: bytes,
    instance_id: int,
    stats: DecodeStats,
    log: logging.Logger,
    origin: object = None,
) -> VnfAnnouncement | None:
    """:func:`decode`, but a malformed body gives ``None``: counted, logged once, not raised.

    ``origin`` names the sender in the log and in the log-once key (the LSDB mirror
    passes the advertising router id); by default the instance id is used.
    """
    try:
        return decode(body, instance_id)
    except LsaDecodeError as exc:
        stats.record(exc.reason)
        key = f"instance {instance_id}" if origin is None else str(origin)
        who = f"instance {instance_id}" if origin is None else f"{origin} instance {instance_id}"
        if stats.first_time(exc.reason, key):
            log.warning(
                "ignoring malformed VNF announcement from %s: %s (%s); further ones with "
                "this reason from this origin are only counted",
                who,
                exc.reason,
                exc.detail,
            )
        return None
