"""Raw OSPFv2 LSAs -> model types, and a mirror of the parts of an area's LSDB we use.

The OSPF API of FRR delivers each LSA as it is on the wire: the 20-byte LSA header
(RFC 2328 A.4.1) followed by the body. This module parses router LSAs (A.4.2), network
LSAs (A.4.3) and the ls_id of opaque LSAs (RFC 5250: 8-bit opaque type, 24-bit opaque
id), and keeps an :class:`~dmano.model.LsdbView` current from update/delete events
(:class:`LsdbMirror`). It also builds LSAs with a correct Fletcher checksum
(:func:`build_lsa` and friends), for tests and for originating our own.

Malformed input raises :class:`LsaParseError` (reason codes in :data:`PARSE_REASONS`),
never any other exception; the mirror counts and logs those instead of raising.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, TypeVar

from dmano import lsa
from dmano.lsa import DecodeStats
from dmano.model import LsdbView, NetworkLsa, RouterLink, RouterLsa, VnfAnnouncement

logger = logging.getLogger(__name__)

T = TypeVar("T")

LSA_HEADER = struct.Struct("!HBB4s4siHH")
"""age, options, type, link state id, advertising router, seq (signed), checksum, length."""
HEADER_LEN = LSA_HEADER.size  # 20
CHECKSUM_OFFSET = 16  # of the checksum field inside the LSA (the checksum skips the age)
MAX_AGE = 3600
DO_NOT_AGE = 0x8000  # RFC 1793 DoNotAge bit of the age field
INITIAL_SEQ = -0x7FFFFFFF  # 0x80000001
MAX_SEQ = 0x7FFFFFFF

ROUTER_LSA = 1
NETWORK_LSA = 2
OPAQUE_LINK_LSA = 9
OPAQUE_AREA_LSA = 10
OPAQUE_AS_LSA = 11
OPAQUE_LSA_TYPES = frozenset({OPAQUE_LINK_LSA, OPAQUE_AREA_LSA, OPAQUE_AS_LSA})

DEFAULT_OPTIONS = 0x02  # E-bit, as FRR sets it in a normal area

_ROUTER_LINK = struct.Struct("!4s4sBBH")  # link id, link data, type, #TOS, TOS 0 metric
_TOS_ENTRY_LEN = 4

PARSE_REASONS: frozenset[str] = frozenset(
    {
        "too_short",  # fewer than 20 bytes: no complete LSA header
        "bad_length",  # LSA header length field < 20
        "length_mismatch",  # length field differs from the number of bytes given
        "wrong_type",  # e.g. parse_router_lsa on a network LSA
        "bad_ls_id",  # router LSA whose link state id is not its advertising router
        "bad_body_length",  # body too short / not a multiple of 4 where it must be
        "link_count_mismatch",  # router LSA #links (and TOS counts) disagree with the body
        "bad_checksum",  # Fletcher checksum wrong (only when verification is asked for)
    }
)
"""Every ``reason`` an :class:`LsaParseError` can carry (disjoint from lsa.REASONS, so one
:class:`~dmano.lsa.DecodeStats` can count both)."""


class LsaParseError(lsa.MalformedError):
    """A raw LSA is malformed; ``reason`` is a code from :data:`PARSE_REASONS`."""

    reasons = PARSE_REASONS


@dataclass(frozen=True)
class LsaHeader:
    """The 20-byte LSA header (RFC 2328 A.4.1)."""

    age: int  # raw field, DoNotAge bit included
    options: int
    type: int
    ls_id: IPv4Address
    adv_router: IPv4Address
    seq: int  # signed 32-bit: InitialSequenceNumber is -0x7FFFFFFF (0x80000001)
    checksum: int
    length: int

    @property
    def is_max_age(self) -> bool:
        return (self.age & ~DO_NOT_AGE) >= MAX_AGE

    @property
    def key(self) -> tuple[int, IPv4Address, IPv4Address]:
        """What identifies an LSA in the LSDB: (type, link state id, advertising router)."""
        return (self.type, self.ls_id, self.adv_router)


# --------------------------------------------------------------------------- checksum


def fletcher_checksum(data: bytes, offset: int) -> int:
    """ISO 8473 / RFC 905 Fletcher checksum of ``data`` with its 2-byte field at ``offset``.

    Returns the 16-bit value to store at ``offset`` (the field's current content is
    treated as zero), as FRR's ``fletcher_checksum()`` does.
    """
    if not 0 <= offset <= len(data) - 2:
        raise ValueError(f"checksum offset {offset} outside data of {len(data)} bytes")
    buf = bytearray(data)
    buf[offset : offset + 2] = b"\0\0"
    c0 = c1 = 0
    for byte in buf:
        c0 += byte
        c1 += c0
    c0 %= 255
    c1 %= 255
    x = ((len(buf) - offset - 1) * c0 - c1) % 255
    if x == 0:
        x = 255
    y = 510 - c0 - x
    if y > 255:
        y -= 255
    return (x << 8) | y


def lsa_checksum(raw_lsa: bytes) -> int:
    """The checksum ``raw_lsa`` should carry (computed over everything but the age)."""
    return fletcher_checksum(raw_lsa[2:], CHECKSUM_OFFSET - 2)


def checksum_ok(raw_lsa: bytes) -> bool:
    """True if the Fletcher checksum of ``raw_lsa`` (header + body) verifies."""
    if len(raw_lsa) < HEADER_LEN:
        return False
    c0 = c1 = 0
    for byte in raw_lsa[2:]:
        c0 += byte
        c1 += c0
    return c0 % 255 == 0 and c1 % 255 == 0


# --------------------------------------------------------------------------- parsing


def parse_lsa_header(data: bytes, *, whole: bool = True) -> LsaHeader:
    """Parse the LSA header at the start of ``data``.

    With ``whole`` (the default) ``data`` must be exactly one LSA: its length field must
    equal ``len(data)``. With ``whole=False`` only the 20 header bytes are needed.
    """
    if len(data) < HEADER_LEN:
        raise LsaParseError("too_short", f"{len(data)} bytes, an LSA header needs {HEADER_LEN}")
    age, options, lsa_type, ls_id, adv, seq, checksum, length = LSA_HEADER.unpack_from(data, 0)
    if length < HEADER_LEN:
        raise LsaParseError("bad_length", f"length field {length} < {HEADER_LEN}")
    if whole and length != len(data):
        raise LsaParseError("length_mismatch", f"length field {length} but {len(data)} bytes given")
    return LsaHeader(
        age=age,
        options=options,
        type=lsa_type,
        ls_id=IPv4Address(ls_id),
        adv_router=IPv4Address(adv),
        seq=seq,
        checksum=checksum,
        length=length,
    )


def _header_of_type(data: bytes, lsa_type: int) -> LsaHeader:
    hdr = parse_lsa_header(data)
    if hdr.type != lsa_type:
        raise LsaParseError("wrong_type", f"LSA type {hdr.type}, expected {lsa_type}")
    return hdr


def parse_router_lsa(data: bytes) -> RouterLsa:
    """Router LSA (RFC 2328 A.4.2); TOS entries are skipped, the TOS 0 metric kept.

    Link types are passed through as they are (1 point-to-point, 2 transit, 3 stub,
    4 virtual link; anything else is for the consumer to ignore).
    """
    hdr = _header_of_type(data, ROUTER_LSA)
    if hdr.ls_id != hdr.adv_router:
        raise LsaParseError(
            "bad_ls_id", f"router LSA id {hdr.ls_id} differs from its router {hdr.adv_router}"
        )
    body = memoryview(data)[HEADER_LEN:]
    if len(body) < 4:
        raise LsaParseError("bad_body_length", f"router LSA body of {len(body)} bytes < 4")
    (nlinks,) = struct.unpack_from("!H", body, 2)  # after flags (V/E/B) and a zero byte
    links: list[RouterLink] = []
    off = 4
    for index in range(nlinks):
        if off + _ROUTER_LINK.size > len(body):
            raise LsaParseError(
                "link_count_mismatch",
                f"{nlinks} links announced, body ends inside link {index}",
            )
        link_id, link_data, kind, ntos, metric = _ROUTER_LINK.unpack_from(body, off)
        off += _ROUTER_LINK.size + ntos * _TOS_ENTRY_LEN
        if off > len(body):
            raise LsaParseError(
                "link_count_mismatch",
                f"link {index} has {ntos} TOS entries, body ends inside them",
            )
        links.append(RouterLink(kind, IPv4Address(link_id), IPv4Address(link_data), metric))
    if off != len(body):
        raise LsaParseError(
            "link_count_mismatch",
            f"{nlinks} links take {off} bytes, body has {len(body)}",
        )
    return RouterLsa(adv_router=hdr.adv_router, links=tuple(links))


def parse_network_lsa(data: bytes) -> NetworkLsa:
    """Network LSA (RFC 2328 A.4.3): network mask and the attached routers."""
    hdr = _header_of_type(data, NETWORK_LSA)
    body = memoryview(data)[HEADER_LEN:]
    if len(body) < 4 or len(body) % 4:
        raise LsaParseError(
            "bad_body_length",
            f"network LSA body of {len(body)} bytes (need a mask and 4 bytes per router)",
        )
    attached = tuple(IPv4Address(bytes(body[i : i + 4])) for i in range(4, len(body), 4))
    return NetworkLsa(
        link_state_id=hdr.ls_id,
        adv_router=hdr.adv_router,
        mask=IPv4Address(bytes(body[:4])),
        attached=attached,
    )


def opaque_type_id(ls_id: IPv4Address | int) -> tuple[int, int]:
    """Split an opaque LSA's link state id into (8-bit opaque type, 24-bit opaque id)."""
    value = int(ls_id)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"link state id {ls_id!r} is not a 32-bit value")
    return value >> 24, value & 0xFFFFFF


# --------------------------------------------------------------------------- building


def build_lsa(
    lsa_type: int,
    ls_id: IPv4Address | int,
    adv_router: IPv4Address,
    body: bytes,
    *,
    seq: int = INITIAL_SEQ,
    age: int = 0,
    options: int = DEFAULT_OPTIONS,
) -> bytes:
    """Header + ``body`` with the length and Fletcher checksum filled in.

    ``seq`` may be given signed (-0x7FFFFFFF) or as its unsigned pattern (0x80000001).
    """
    if not -(1 << 31) <= seq <= 0xFFFFFFFF:
        raise ValueError(f"sequence number {seq} does not fit 32 bits")
    length = HEADER_LEN + len(body)
    if length > 0xFFFF:
        raise ValueError(f"LSA of {length} bytes does not fit the 16-bit length field")
    header = struct.pack(
        "!HBB4s4sIHH",
        age,
        options,
        lsa_type,
        IPv4Address(ls_id).packed,
        IPv4Address(adv_router).packed,
        seq & 0xFFFFFFFF,
        0,
        length,
    )
    raw = bytearray(header + bytes(body))
    raw[CHECKSUM_OFFSET : CHECKSUM_OFFSET + 2] = lsa_checksum(bytes(raw)).to_bytes(2, "big")
    return bytes(raw)


def build_router_lsa(
    adv_router: IPv4Address,
    links: Iterable[RouterLink],
    *,
    flags: int = 0,
    **header: int,
) -> bytes:
    """Router LSA of ``adv_router`` with ``links`` (no TOS entries)."""
    links = tuple(links)
    body = struct.pack("!BBH", flags, 0, len(links)) + b"".join(
        _ROUTER_LINK.pack(link.link_id.packed, link.link_data.packed, link.kind, 0, link.metric)
        for link in links
    )
    return build_lsa(ROUTER_LSA, adv_router, adv_router, body, **header)


def build_network_lsa(
    link_state_id: IPv4Address,
    adv_router: IPv4Address,
    mask: IPv4Address,
    attached: Iterable[IPv4Address],
    **header: int,
) -> bytes:
    """Network LSA originated by the DR ``adv_router`` whose interface is ``link_state_id``."""
    body = mask.packed + b"".join(router.packed for router in attached)
    return build_lsa(NETWORK_LSA, link_state_id, adv_router, body, **header)


def build_opaque_lsa(
    opaque_type: int,
    opaque_id: int,
    adv_router: IPv4Address,
    body: bytes,
    *,
    lsa_type: int = OPAQUE_AREA_LSA,
    **header: int,
) -> bytes:
    """Opaque LSA (type 9/10/11) with ls_id = opaque type << 24 | opaque id."""
    if lsa_type not in OPAQUE_LSA_TYPES:
        raise ValueError(f"opaque LSA type must be 9, 10 or 11, got {lsa_type}")
    if not 0 <= opaque_type <= 0xFF or not 0 <= opaque_id <= 0xFFFFFF:
        raise ValueError(f"opaque type {opaque_type} / id {opaque_id} out of range")
    return build_lsa(lsa_type, (opaque_type << 24) | opaque_id, adv_router, body, **header)


def build_announcement_lsa(adv_router: IPv4Address, ann: VnfAnnouncement, **header: int) -> bytes:
    """The type-10 VNF-announcement LSA of ``ann`` as ``adv_router`` originates it."""
    return build_opaque_lsa(lsa.OPAQUE_TYPE, ann.instance_id, adv_router, lsa.encode(ann), **header)


# --------------------------------------------------------------------------- mirror


def newest_generation(gens: Mapping[int, VnfAnnouncement]) -> VnfAnnouncement | None:
    """The copy of an instance's announcement that counts, among the copies held under
    its opaque-ID generations (opaque ID -> announcement): the highest SEQUENCE, then
    the highest opaque ID (see :func:`dmano.lsa.split_opaque_id`); None if none."""
    if not gens:
        return None
    return gens[max(gens, key=lambda o: (gens[o].sequence, o))]

_Key = tuple[int, IPv4Address, IPv4Address]


def _membership(ann: VnfAnnouncement | None) -> tuple[object, ...] | None:
    """What of an announcement is not a cost (:attr:`LsdbMirror.membership_version`)."""
    if ann is None:
        return None
    return (ann.service_id, ann.anycast, ann.endpoint, ann.state)


class LsdbMirror:
    """Keeps :attr:`view` equal to the interesting part of one area's LSDB.

    Feed it every LSA update and delete the OSPF API reports (a resync is a
    :meth:`clear` followed by the updates of an LSDB dump). Router LSAs go to
    ``view.routers`` (by advertising router), network LSAs to ``view.networks`` (by
    link state id), type-10 opaque LSAs of opaque type ``opaque_type`` are decoded as
    VNF announcements into ``view.instances[(adv_router, instance_id)]`` (the newest
    generation's copy, see :func:`dmano.lsa.split_opaque_id`); everything else is
    ignored.

    * A MaxAge LSA (age 3600) given to :meth:`apply_update` is a deletion.
    * A delete of a router or network LSA below MaxAge is ignored (counted in
      :attr:`replaced_ignored`): ospfd reports the old instance of every *replaced* LSA
      as deleted just before the new instance's update (seen here within 2 ms, and up to
      74 ms apart under load); applying it would make that router, often one's own,
      vanish from the topology for that time, and every instance behind it with it (all
      weights 0: new flows dropped). A router LSA really leaves the LSDB only at MaxAge,
      and a stale one does no harm: the SPF's two-way check ignores a router that its
      neighbours no longer list.
    * An update or delete with an older sequence number than the one held for the same
      LSA is ignored (counted in :attr:`stale_ignored`).
    * A malformed LSA is never raised: its reason is counted in :attr:`stats` (LSA
      parse reasons and announcement-body reasons share it; the codes are disjoint) and
      logged once per (reason, advertising router). If its header is readable it
      supersedes the previous copy, so whatever that copy put in the view is removed:
      the originator replaced it, and every router now holds the malformed one.
    """

    def __init__(
        self,
        *,
        opaque_type: int = lsa.OPAQUE_TYPE,
        verify_checksum: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.view = LsdbView()
        self.stats = DecodeStats()
        self.stale_ignored = 0
        self.replaced_ignored = 0
        self.opaque_type = opaque_type
        self.verify_checksum = verify_checksum
        self.log = log or logger
        self._seq: dict[_Key, int] = {}
        self._generations: dict[tuple[IPv4Address, int], dict[int, VnfAnnouncement]] = {}
        # incremented whenever view.routers or view.networks change (or on clear): the
        # network part of the service plane (dmano.service_plane.network_costs) depends
        # on them only, so a consumer may cache it per version
        self.topology_version = 0
        # incremented whenever an instance enters or leaves view.instances, or its
        # announcement changes in anything but its cost, capacity, load, name or
        # sequence (its service, anycast, endpoint or state): what the D-MANO must act
        # on at once, where a cost change alone may wait a little (dmano.throttle)
        self.membership_version = 0

    def clear(self) -> None:
        """Forget everything (before a resync); statistics are kept."""
        self.view.routers.clear()
        self.view.networks.clear()
        self.view.instances.clear()
        self.topology_version += 1
        self.membership_version += 1
        self._seq.clear()
        self._generations.clear()

    # -- events

    def forget_instance(self, adv_router: IPv4Address, instance_id: int) -> bool:
        """Drop every generation of an instance we withdrew ourselves.

        ospfd reports the deletion of its own flushed LSA only when it removes the MaxAge
        copy from its LSDB (up to a minute later); the originator knows at once."""
        self._generations.pop((adv_router, instance_id), None)
        return self._set_instance((adv_router, instance_id), None)

    def note_own(self, adv_router: IPv4Address, ann: VnfAnnouncement) -> bool:
        """Show a change of one of our own announcements (e.g. its state) at once, before
        ospfd echoes the LSA back; only for an instance already in the view, and never
        over a newer copy. True if :attr:`view` changed."""
        key = (adv_router, ann.instance_id)
        held = self.view.instances.get(key)
        if held is None or held.sequence > ann.sequence:
            return False
        return self._set_instance(key, ann)

    def apply_update(self, raw_lsa: bytes) -> bool:
        """Install a new or refreshed LSA; True if :attr:`view` changed."""
        try:
            hdr = parse_lsa_header(raw_lsa)
            if self.verify_checksum and not checksum_ok(raw_lsa):
                raise LsaParseError("bad_checksum", f"checksum 0x{hdr.checksum:04x} is wrong")
        except LsaParseError as exc:
            self._malformed(exc, raw_lsa)
            return False
        if not self._interesting(hdr) or self._is_stale(hdr):
            return False
        if hdr.type == ROUTER_LSA and hdr.ls_id != hdr.adv_router:
            # Not the router's own router LSA (RFC 2328 A.4.2): it supersedes nothing.
            self._malformed(
                LsaParseError("bad_ls_id", f"router LSA id {hdr.ls_id} != {hdr.adv_router}"),
                raw_lsa,
            )
            return False
        if hdr.is_max_age:
            return self._remove(hdr)
        self._seq[hdr.key] = hdr.seq
        if hdr.type == ROUTER_LSA:
            router = self._parse(parse_router_lsa, raw_lsa)
            return self._topology(self._set(self.view.routers, hdr.adv_router, router))
        if hdr.type == NETWORK_LSA:
            network = self._parse(parse_network_lsa, raw_lsa)
            if network is None:
                return self._remove_network(hdr)
            return self._topology(self._set(self.view.networks, hdr.ls_id, network))
        _, opaque_id = opaque_type_id(hdr.ls_id)
        iid, _ = lsa.split_opaque_id(opaque_id)
        ann = lsa.decode_counted(
            bytes(raw_lsa[HEADER_LEN:]), iid, self.stats, self.log, origin=hdr.adv_router
        )
        return self._set_generation(hdr.adv_router, opaque_id, ann)

    def apply_delete(self, raw_lsa: bytes) -> bool:
        """Remove an LSA (only its 20-byte header is read); True if :attr:`view` changed."""
        try:
            hdr = parse_lsa_header(raw_lsa, whole=False)
        except LsaParseError as exc:
            self._malformed(exc, raw_lsa)
            return False
        if not self._interesting(hdr) or self._is_stale(hdr):
            return False
        if hdr.type in (ROUTER_LSA, NETWORK_LSA) and not hdr.is_max_age:
            self.replaced_ignored += 1  # the new instance's update follows (class doc)
            return False
        return self._remove(hdr)

    # -- helpers

    def _interesting(self, hdr: LsaHeader) -> bool:
        if hdr.type in (ROUTER_LSA, NETWORK_LSA):
            return True
        return hdr.type == OPAQUE_AREA_LSA and opaque_type_id(hdr.ls_id)[0] == self.opaque_type

    def _is_stale(self, hdr: LsaHeader) -> bool:
        held = self._seq.get(hdr.key)
        if held is not None and hdr.seq < held:
            self.stale_ignored += 1
            return True
        return False

    def _parse(self, parser: Callable[[bytes], T], raw_lsa: bytes) -> T | None:
        try:
            return parser(raw_lsa)
        except LsaParseError as exc:
            self._malformed(exc, raw_lsa)
            return None

    def _malformed(self, exc: LsaParseError, raw_lsa: bytes) -> None:
        self.stats.record(exc.reason)
        origin = "unknown"
        if len(raw_lsa) >= HEADER_LEN:
            origin = str(IPv4Address(bytes(raw_lsa[8:12])))
        if self.stats.first_time(exc.reason, origin):
            self.log.warning(
                "ignoring malformed LSA from %s: %s (%s); further ones with this reason "
                "from this router are only counted",
                origin,
                exc.reason,
                exc.detail,
            )

    def _remove(self, hdr: LsaHeader) -> bool:
        self._seq.pop(hdr.key, None)
        if hdr.type == ROUTER_LSA:
            if hdr.ls_id != hdr.adv_router:
                return False
            return self._topology(self._set(self.view.routers, hdr.adv_router, None))
        if hdr.type == NETWORK_LSA:
            return self._remove_network(hdr)
        return self._set_generation(hdr.adv_router, opaque_type_id(hdr.ls_id)[1], None)

    def _set_generation(self, adv: IPv4Address, opaque_id: int,
                        ann: VnfAnnouncement | None) -> bool:
        """Record one generation's copy of an instance's announcement (None: gone) and put
        the newest copy (highest SEQUENCE, then opaque ID) in the view."""
        iid, _ = lsa.split_opaque_id(opaque_id)
        gens = self._generations.setdefault((adv, iid), {})
        if ann is None:
            gens.pop(opaque_id, None)
        else:
            gens[opaque_id] = ann
        best = newest_generation(gens)
        if not gens:
            del self._generations[(adv, iid)]
        return self._set_instance((adv, iid), best)

    def _set_instance(self, key: tuple[IPv4Address, int],
                      ann: VnfAnnouncement | None) -> bool:
        """``view.instances[key] = ann`` (None deletes), counting a change of anything but
        the cost in :attr:`membership_version`; True if the view changed."""
        old = self.view.instances.get(key)
        if _membership(old) != _membership(ann):
            self.membership_version += 1
        return self._set(self.view.instances, key, ann)

    def _remove_network(self, hdr: LsaHeader) -> bool:
        # view.networks is keyed by link state id alone: while a DR hands over, another
        # router's network LSA may hold the same id. Only remove what this router put there.
        held = self.view.networks.get(hdr.ls_id)
        if held is None or held.adv_router != hdr.adv_router:
            return False
        del self.view.networks[hdr.ls_id]
        return self._topology(True)

    def _topology(self, changed: bool) -> bool:
        """Count a change of the routers or networks in :attr:`topology_version`."""
        if changed:
            self.topology_version += 1
        return changed

    @staticmethod
    def _set(table: dict[Any, Any], key: object, value: object) -> bool:
        """``table[key] = value`` (``None`` deletes); True if that changed the table."""
        old = table.get(key)
        if value is None:
            if key not in table:
                return False
            del table[key]
            return True
        table[key] = value
        return old != value
