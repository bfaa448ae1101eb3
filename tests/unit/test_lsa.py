"""Tests of the VNF-announcement opaque LSA body codec (dmano.lsa)."""

from __future__ import annotations

import dataclasses
import logging
import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmano import lsa
from dmano.lsa import (
    LSA_VERSION,
    MAX_BODY,
    OPAQUE_TYPE,
    REASONS,
    DecodeStats,
    LsaDecodeError,
    Tlv,
    decode,
    decode_counted,
    encode,
)
from dmano.model import InstanceState, VnfAnnouncement

U32 = st.integers(0, 2**32 - 1)
IPV4 = st.ip_addresses(v=4)
NAMES = st.text(max_size=64).filter(lambda s: len(s.encode("utf-8")) <= 64)

ANNOUNCEMENTS = st.builds(
    VnfAnnouncement,
    instance_id=st.integers(0, 2**24 - 1),
    service_id=U32,
    anycast=IPV4,
    cost=U32,
    endpoint=IPV4,
    capacity=U32,
    load=U32,
    state=st.sampled_from(InstanceState),
    name=NAMES,
)

# Values a TLV may never take the place of: types the codec knows.
UNKNOWN_TYPES = st.integers(0, 2**16 - 1).filter(lambda t: t not in set(Tlv))

SAMPLE = VnfAnnouncement(
    instance_id=7,
    service_id=3,
    anycast=IPv4Address("10.254.3.1"),
    cost=20,
    endpoint=IPv4Address("10.1.0.2"),
    capacity=1000,
    load=250,
    state=InstanceState.DRAINING,
    name="fw-1",
)

DEFAULTS = {"capacity": 0, "load": 0, "state": InstanceState.UP, "name": ""}
FIELD_OF_TLV = {
    Tlv.CAPACITY: "capacity",
    Tlv.LOAD: "load",
    Tlv.STATE: "state",
    Tlv.NAME: "name",
}


def tlv(tlv_type: int, value: bytes, pad: bytes | None = None) -> bytes:
    """One TLV; ``pad`` overrides the zero padding (for tests of lenient receivers)."""
    padding = b"\0" * (-len(value) % 4) if pad is None else pad
    return struct.pack("!HH", tlv_type, len(value)) + value + padding


def split(body: bytes) -> list[bytes]:
    """The encoded TLVs of ``body`` (each with its header and padding)."""
    out = []
    off = 0
    while off < len(body):
        length = struct.unpack_from("!H", body, off + 2)[0]
        end = off + 4 + ((length + 3) & ~3)
        out.append(body[off:end])
        off = end
    return out


def tlv_type_of(encoded: bytes) -> int:
    return struct.unpack_from("!H", encoded)[0]


def reason_of(body: bytes, instance_id: int = 1) -> str:
    with pytest.raises(LsaDecodeError) as info:
        decode(body, instance_id)
    assert info.value.reason in REASONS
    return info.value.reason


# --------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert 128 <= OPAQUE_TYPE <= 255
    assert LSA_VERSION == 1
    assert [int(t) for t in Tlv] == list(range(1, 11))


# --------------------------------------------------------------------------- encode


def test_encode_known_answer() -> None:
    body = encode(SAMPLE)
    assert body.hex() == (
        "00010004" "01000000"  # VERSION 1
        "00020004" "0afe0301"  # anycast 10.254.3.1
        "00030004" "00000003"  # service id 3
        "00040004" "00000014"  # cost 20
        "00050004" "0a010002"  # endpoint 10.1.0.2
        "00060004" "000003e8"  # capacity 1000
        "00070004" "000000fa"  # load 250
        "00080004" "02000000"  # state DRAINING
        "00090004" "66772d31"  # name "fw-1"
        "000a0004" "00000000"  # sequence 0
    )  # fmt: skip
    assert decode(body, 7) == SAMPLE


def test_encode_pads_name_and_omits_empty_name() -> None:
    body = encode(dataclasses.replace(SAMPLE, name="abcde"))
    assert body[-20:-8] == b"\x00\x09\x00\x05abcde\0\0\0"
    body = encode(dataclasses.replace(SAMPLE, name=""))
    assert len(body) == 9 * 8
    assert all(tlv_type_of(t) != Tlv.NAME for t in split(body))


@pytest.mark.parametrize(
    "change",
    [
        {"instance_id": -1},
        {"instance_id": 2**24},
        {"instance_id": True},
        {"service_id": 2**32},
        {"service_id": -1},
        {"cost": 2**32},
        {"cost": 1.5},
        {"capacity": -1},
        {"load": 2**32},
        {"anycast": "10.254.1.1"},
        {"endpoint": 167837698},
        {"state": 0},
        {"state": 3},
        {"name": "x" * 65},
        {"name": "\u00e9" * 33},  # 66 bytes of UTF-8 in 33 characters
        {"name": "\ud800"},  # lone surrogate: not encodable
        {"name": None},
    ],
)
def test_encode_rejects_out_of_range(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode(dataclasses.replace(SAMPLE, **change))


def test_encode_accepts_limits() -> None:
    ann = dataclasses.replace(
        SAMPLE,
        instance_id=2**24 - 1,
        service_id=2**32 - 1,
        cost=2**32 - 1,
        capacity=2**32 - 1,
        load=2**32 - 1,
        name="\u00e9" * 32,
    )
    assert decode(encode(ann), ann.instance_id) == ann


# --------------------------------------------------------------------------- properties


@given(ANNOUNCEMENTS)
def test_roundtrip(ann: VnfAnnouncement) -> None:
    body = encode(ann)
    assert len(body) % 4 == 0
    assert len(body) <= MAX_BODY
    assert decode(body, ann.instance_id) == ann


@given(st.binary(max_size=MAX_BODY + 16), st.integers(0, 2**24 - 1))
def test_arbitrary_bytes_only_raise_decode_error(body: bytes, instance_id: int) -> None:
    try:
        decode(body, instance_id)
    except LsaDecodeError as exc:
        assert exc.reason in REASONS


# TLV soup that gets past the first checks often: VERSION 1 first, then random TLVs of
# known and unknown types with random (often right) lengths.
_SOUP_TLV = st.tuples(
    st.integers(0, 12),
    st.one_of(st.binary(min_size=4, max_size=4), st.binary(max_size=70)),
)


@given(
    st.lists(_SOUP_TLV, max_size=12),
    st.booleans(),
    st.integers(0, 3),
)
def test_tlv_soup_only_raises_decode_error(
    tlvs: list[tuple[int, bytes]], with_version: bool, cut: int
) -> None:
    body = b"".join(tlv(t, v) for t, v in tlvs)
    if with_version:
        body = tlv(Tlv.VERSION, b"\x01\0\0\0") + body
    body = body[: len(body) - cut]
    try:
        ann = decode(body, 5)
    except LsaDecodeError as exc:
        assert exc.reason in REASONS
    else:
        assert ann.instance_id == 5
        assert decode(encode(ann), 5) == ann


def _expected_after_cut(ann: VnfAnnouncement, kept: list[bytes]) -> VnfAnnouncement:
    """``ann`` as decoded from only the ``kept`` TLVs (absent optional ones default)."""
    present = {tlv_type_of(t) for t in kept}
    changes = {field: DEFAULTS[field] for t, field in FIELD_OF_TLV.items() if t not in present}
    return dataclasses.replace(ann, **changes)


@given(ANNOUNCEMENTS)
def test_truncation_at_every_point(ann: VnfAnnouncement) -> None:
    """Cutting a valid body anywhere gives an error, except exactly at a TLV boundary
    after all the required TLVs (1-5, the first 40 bytes): that is a shorter but valid
    body whose missing optional TLVs take their defaults. A cut inside a TLV (its
    header, value or padding) is "truncated"; a boundary cut before the end of TLV 5
    (including the empty body) is "missing_tlv"."""
    body = encode(ann)
    tlvs = split(body)
    boundaries = {}
    off = 0
    for index, encoded in enumerate(tlvs):
        off += len(encoded)
        boundaries[off] = index + 1  # number of whole TLVs kept
    required_end = 5 * 8
    for cut in range(len(body)):
        prefix = body[:cut]
        if cut == 0:
            assert reason_of(prefix, ann.instance_id) == "missing_tlv"
        elif cut not in boundaries:
            assert reason_of(prefix, ann.instance_id) == "truncated", cut
        elif cut < required_end:
            assert reason_of(prefix, ann.instance_id) == "missing_tlv", cut
        else:
            kept = tlvs[: boundaries[cut]]
            assert decode(prefix, ann.instance_id) == _expected_after_cut(ann, kept)


def test_truncation_inside_name_padding() -> None:
    body = encode(dataclasses.replace(SAMPLE, name="abcde"))  # value 5 bytes, padded to 8
    # Value complete, padding not: still truncated (every TLV must be whole, padding too).
    assert reason_of(body[:-1]) == "truncated"
    assert reason_of(body[:-3]) == "truncated"
    assert reason_of(body[:-4]) == "truncated"


@given(
    ANNOUNCEMENTS,
    st.lists(
        st.tuples(st.integers(1, 100), UNKNOWN_TYPES, st.binary(max_size=40)),
        min_size=1,
        max_size=8,
    ),
)
def test_unknown_tlvs_after_version_are_skipped(
    ann: VnfAnnouncement, inserts: list[tuple[int, int, bytes]]
) -> None:
    tlvs = split(encode(ann))
    for position, tlv_type, value in inserts:
        # position 1..len: anywhere after VERSION, the end included
        tlvs.insert(1 + position % len(tlvs), tlv(tlv_type, value))
    assert decode(b"".join(tlvs), ann.instance_id) == ann


@given(ANNOUNCEMENTS, st.randoms(use_true_random=False))
def test_order_after_version_does_not_matter(ann: VnfAnnouncement, rnd) -> None:  # type: ignore[no-untyped-def]
    tlvs = split(encode(ann))
    rest = tlvs[1:]
    rnd.shuffle(rest)
    assert decode(b"".join([tlvs[0], *rest]), ann.instance_id) == ann


# --------------------------------------------------------------------------- decode rules


def body_of(*tlvs: bytes) -> bytes:
    return b"".join(tlvs)


V1 = tlv(Tlv.VERSION, b"\x01\0\0\0")
ANYCAST = tlv(Tlv.SERVICE_ANYCAST, IPv4Address("10.254.1.1").packed)
SERVICE = tlv(Tlv.SERVICE_ID, struct.pack("!I", 1))
COST = tlv(Tlv.VNF_COST, struct.pack("!I", 10))
ENDPOINT = tlv(Tlv.NSH_ENDPOINT, IPv4Address("10.1.0.2").packed)
MINIMAL = body_of(V1, ANYCAST, SERVICE, COST, ENDPOINT)


def test_minimal_body_takes_defaults() -> None:
    assert decode(MINIMAL, 9) == VnfAnnouncement(
        instance_id=9,
        service_id=1,
        anycast=IPv4Address("10.254.1.1"),
        cost=10,
        endpoint=IPv4Address("10.1.0.2"),
    )


def test_empty_name_tlv_is_empty_name() -> None:
    assert decode(MINIMAL + tlv(Tlv.NAME, b""), 9).name == ""


def test_reserved_and_padding_bytes_are_ignored() -> None:
    body = body_of(
        tlv(Tlv.VERSION, b"\x01\xff\xff\xff"),
        ANYCAST,
        SERVICE,
        COST,
        ENDPOINT,
        tlv(Tlv.STATE, b"\x02\xaa\xbb\xcc"),
        tlv(Tlv.NAME, b"ab", pad=b"\xff\xff"),
    )
    ann = decode(body, 1)
    assert ann.state is InstanceState.DRAINING
    assert ann.name == "ab"


def test_unknown_tlv_may_repeat() -> None:
    extra = tlv(200, b"xyz")
    assert decode(body_of(V1, extra, ANYCAST, extra, SERVICE, COST, ENDPOINT, extra), 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # truncated: partial TLV header, value past the end
        (MINIMAL + b"\0\x06", "truncated"),
        (MINIMAL + b"\0\x06\0\x04\0\0", "truncated"),
        (MINIMAL + struct.pack("!HH", 300, 100) + b"\0" * 96, "truncated"),
        # bad_tlv_length: known TLVs with impossible lengths
        (body_of(V1, tlv(Tlv.SERVICE_ANYCAST, b"\x0a\xfe\x01"), SERVICE, COST, ENDPOINT),
         "bad_tlv_length"),
        (MINIMAL + tlv(Tlv.LOAD, b"\0" * 8), "bad_tlv_length"),
        (MINIMAL + tlv(Tlv.STATE, b"\x01"), "bad_tlv_length"),
        (MINIMAL + tlv(Tlv.NAME, b"a" * 65), "bad_tlv_length"),
        (body_of(tlv(Tlv.VERSION, b""), ANYCAST, SERVICE, COST, ENDPOINT), "bad_tlv_length"),
        (body_of(tlv(Tlv.VERSION, b"\x01\0"), ANYCAST, SERVICE, COST, ENDPOINT),
         "bad_tlv_length"),
        # unknown_version: checked before the rest, whatever the rest looks like
        (body_of(tlv(Tlv.VERSION, b"\x02\0\0\0"), ANYCAST, SERVICE, COST, ENDPOINT),
         "unknown_version"),
        (body_of(tlv(Tlv.VERSION, b"\x00\0\0\0"), ANYCAST, SERVICE, COST, ENDPOINT),
         "unknown_version"),
        (tlv(Tlv.VERSION, b"\x02" + b"\0" * 11) + tlv(Tlv.SERVICE_ID, b"??"),
         "unknown_version"),
        (tlv(Tlv.VERSION, b"\x02\0\0\0") + b"\0" * 6, "unknown_version"),  # new framing
        # missing_tlv
        (b"", "missing_tlv"),
        (V1, "missing_tlv"),
        (body_of(V1, SERVICE, COST, ENDPOINT), "missing_tlv"),
        (body_of(V1, ANYCAST, COST, ENDPOINT), "missing_tlv"),
        (body_of(V1, ANYCAST, SERVICE, ENDPOINT), "missing_tlv"),
        (body_of(V1, ANYCAST, SERVICE, COST), "missing_tlv"),
        # oversized
        (MINIMAL + tlv(300, b"\0" * (MAX_BODY - len(MINIMAL) - 3)), "oversized"),
        # bad_value
        (MINIMAL + tlv(Tlv.STATE, b"\x00\0\0\0"), "bad_value"),
        (MINIMAL + tlv(Tlv.STATE, b"\x03\0\0\0"), "bad_value"),
        (MINIMAL + tlv(Tlv.NAME, b"\xff\xfe"), "bad_value"),
        (MINIMAL + tlv(Tlv.NAME, b"\xc3"), "bad_value"),  # cut multi-byte sequence
        # duplicate_tlv
        (MINIMAL + SERVICE, "duplicate_tlv"),
        (MINIMAL + V1, "duplicate_tlv"),
        (MINIMAL + tlv(Tlv.NAME, b"a") + tlv(Tlv.NAME, b"a"), "duplicate_tlv"),
        # not_first_version
        (body_of(ANYCAST, V1, SERVICE, COST, ENDPOINT), "not_first_version"),
        (body_of(tlv(300, b""), V1, ANYCAST, SERVICE, COST, ENDPOINT), "not_first_version"),
    ],
)  # fmt: skip
def test_decode_errors(body: bytes, reason: str) -> None:
    assert reason_of(body) == reason


def test_body_at_size_limit_is_accepted() -> None:
    filler = tlv(300, b"\0" * (MAX_BODY - len(MINIMAL) - 4))
    body = MINIMAL + filler
    assert len(body) == MAX_BODY
    assert decode(body, 1).service_id == 1


def test_decode_error_carries_reason_and_detail() -> None:
    with pytest.raises(LsaDecodeError) as info:
        decode(MINIMAL + SERVICE, 1)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.reason == "duplicate_tlv"
    assert "SERVICE_ID" in err.detail
    assert str(err) == f"duplicate_tlv: {err.detail}"


@pytest.mark.parametrize("instance_id", [-1, 2**24])
def test_decode_rejects_bad_instance_id(instance_id: int) -> None:
    with pytest.raises(ValueError):
        decode(MINIMAL, instance_id)


def test_iter_tlvs() -> None:
    assert list(lsa.iter_tlvs(V1 + tlv(9, b"abc"))) == [(1, b"\x01\0\0\0"), (9, b"abc")]


# --------------------------------------------------------------------------- stats, counted


def test_decode_stats() -> None:
    stats = DecodeStats()
    assert stats.as_dict() == {}
    assert stats.total == 0
    stats.record("truncated")
    stats.record("truncated")
    stats.record("bad_value")
    assert stats.as_dict() == {"bad_value": 1, "truncated": 2}
    assert stats.count("truncated") == 2
    assert stats.count("oversized") == 0
    assert stats.total == 3
    assert stats.first_time("truncated", "a")
    assert not stats.first_time("truncated", "a")
    assert stats.first_time("truncated", "b")
    assert stats.first_time("bad_value", "a")


def test_decode_stats_log_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    stats = DecodeStats()
    stats.max_logged = 3
    assert [stats.first_time("truncated", str(i)) for i in range(5)] == [
        True, True, True, False, False
    ]  # fmt: skip
    assert stats.log_suppressed
    assert sum("no longer logging" in r.message for r in caplog.records) == 1


def test_decode_counted(caplog: pytest.LogCaptureFixture) -> None:
    stats = DecodeStats()
    test_log = logging.getLogger("test.lsa")
    caplog.set_level(logging.DEBUG, logger="test.lsa")

    assert decode_counted(encode(SAMPLE), 7, stats, test_log) == SAMPLE
    assert stats.total == 0

    bad = MINIMAL + SERVICE
    for _ in range(3):
        assert decode_counted(bad, 7, stats, test_log, origin="10.255.0.1") is None
    assert decode_counted(bad, 8, stats, test_log, origin="10.255.0.1") is None
    assert decode_counted(bad, 7, stats, test_log, origin="10.255.0.2") is None
    assert decode_counted(b"\0", 7, stats, test_log, origin="10.255.0.1") is None
    assert decode_counted(b"\0", 7, stats, test_log) is None

    assert stats.as_dict() == {"duplicate_tlv": 5, "truncated": 2}
    warnings = [r for r in caplog.records if r.name == "test.lsa"]
    assert all(r.levelno == logging.WARNING for r in warnings)
    # once per (reason, origin): dup/.1, dup/.2, truncated/.1, truncated/(instance 7)
    assert len(warnings) == 4
    assert "10.255.0.1 instance 7" in warnings[0].getMessage()
    assert "duplicate_tlv" in warnings[0].getMessage()


@given(st.binary(max_size=300))
def test_decode_counted_never_raises(body: bytes) -> None:
    stats = DecodeStats()
    result = decode_counted(body, 1, stats, logging.getLogger("test.lsa.fuzz"))
    assert (result is None) == (stats.total == 1)


def test_sequence_round_trips_and_opaque_id_layout() -> None:
    from dmano.lsa import make_opaque_id, split_opaque_id

    ann = dataclasses.replace(SAMPLE, sequence=123456789)
    assert decode(encode(ann), 7).sequence == 123456789
    assert make_opaque_id(7, 0) == 7 and make_opaque_id(7, 2) == 0x207
    assert split_opaque_id(0xFFFF07) == (7, 0xFFFF)
    with pytest.raises(ValueError):
        make_opaque_id(256, 0)
