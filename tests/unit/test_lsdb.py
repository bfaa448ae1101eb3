"""Tests of raw OSPFv2 LSA parsing and the LSDB mirror (dmano.lsdb)."""

from __future__ import annotations

import dataclasses
import logging
import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmano import lsa
from dmano.lsdb import (
    INITIAL_SEQ,
    MAX_AGE,
    PARSE_REASONS,
    LsaHeader,
    LsaParseError,
    LsdbMirror,
    build_announcement_lsa,
    build_lsa,
    build_network_lsa,
    build_opaque_lsa,
    build_router_lsa,
    checksum_ok,
    fletcher_checksum,
    lsa_checksum,
    opaque_type_id,
    parse_lsa_header,
    parse_network_lsa,
    parse_router_lsa,
)
from dmano.model import InstanceState, NetworkLsa, RouterLink, RouterLsa, VnfAnnouncement

scapy_ospf = pytest.importorskip("scapy.contrib.ospf")

A = IPv4Address
R1, R2, R3 = A("10.255.0.1"), A("10.255.0.2"), A("10.255.0.3")

IPV4 = st.ip_addresses(v=4)
LINKS = st.builds(
    RouterLink,
    kind=st.integers(1, 4),
    link_id=IPV4,
    link_data=IPV4,
    metric=st.integers(0, 0xFFFF),
)
SEQS = st.integers(-(2**31) + 1, 2**31 - 1)

P2P = RouterLink(1, R2, A("10.0.0.1"), 10)
STUB = RouterLink(3, A("10.1.0.0"), A("255.255.255.0"), 1)

ANN = VnfAnnouncement(
    instance_id=5,
    service_id=2,
    anycast=A("10.254.2.1"),
    cost=10,
    endpoint=A("10.1.0.2"),
    capacity=100,
    load=10,
    state=InstanceState.UP,
    name="ids-a",
)


def reason_of(func, data: bytes) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(LsaParseError) as info:
        func(data)
    assert info.value.reason in PARSE_REASONS
    return info.value.reason


def with_header(lsa_type: int, ls_id: IPv4Address, adv: IPv4Address, body: bytes) -> bytes:
    """A raw LSA built by hand (checksum left at zero), for malformed bodies."""
    header = struct.pack(
        "!HBB4s4sIHH", 1, 2, lsa_type, ls_id.packed, adv.packed, 0x80000001, 0, 20 + len(body)
    )
    return header + body


# --------------------------------------------------------------------------- header


# Router LSA of 10.255.0.1 (age 12, seq 0x80000005) with a p2p link to 10.255.0.2 and a
# stub 10.1.0.0/24; checksum 0xa35a, the bytes scapy's OSPF_Router_LSA produces too.
KNOWN_ROUTER_LSA = bytes.fromhex(
    "000c02010aff00010aff000180000005a35a0030"
    "00000002"
    "0aff00020a0000010100000a"
    "0a010000ffffff0003000001"
)


def test_known_answer_router_lsa() -> None:
    built = build_router_lsa(R1, [P2P, STUB], seq=0x80000005, age=12)
    assert built == KNOWN_ROUTER_LSA
    assert checksum_ok(built)
    hdr = parse_lsa_header(built)
    assert hdr == LsaHeader(
        age=12,
        options=2,
        type=1,
        ls_id=R1,
        adv_router=R1,
        seq=-0x7FFFFFFB,
        checksum=0xA35A,
        length=48,
    )
    assert hdr.key == (1, R1, R1)
    assert not hdr.is_max_age
    assert parse_router_lsa(built) == RouterLsa(R1, (P2P, STUB))


def test_header_seq_is_signed() -> None:
    assert parse_lsa_header(build_lsa(1, R1, R1, b"\0" * 4)).seq == INITIAL_SEQ
    assert parse_lsa_header(build_lsa(1, R1, R1, b"\0" * 4, seq=INITIAL_SEQ)).seq == INITIAL_SEQ
    assert parse_lsa_header(build_lsa(1, R1, R1, b"\0" * 4, seq=5)).seq == 5
    with pytest.raises(ValueError):
        build_lsa(1, R1, R1, b"", seq=2**32)


@pytest.mark.parametrize(
    ("age", "max_age"),
    [(0, False), (3599, False), (3600, True), (0x8000 | 3600, True), (0x8000 | 5, False)],
)
def test_max_age(age: int, max_age: bool) -> None:
    assert parse_lsa_header(build_lsa(1, R1, R1, b"\0" * 4, age=age)).is_max_age is max_age


def test_header_errors() -> None:
    raw = build_router_lsa(R1, [P2P])
    assert reason_of(parse_lsa_header, b"") == "too_short"
    assert reason_of(parse_lsa_header, raw[:19]) == "too_short"
    assert reason_of(parse_lsa_header, raw[:-1]) == "length_mismatch"
    assert reason_of(parse_lsa_header, raw + b"\0") == "length_mismatch"
    assert reason_of(parse_lsa_header, raw[:18] + b"\0\x13" + raw[20:]) == "bad_length"
    # header-only parsing, as used for deletions
    assert parse_lsa_header(raw[:20], whole=False).length == len(raw)


def test_header_accepts_bytes_like() -> None:
    raw = build_router_lsa(R1, [P2P])
    assert parse_router_lsa(bytearray(raw)) == parse_router_lsa(memoryview(raw))


# --------------------------------------------------------------------------- checksum


@given(st.binary(min_size=2, max_size=200), st.data())
def test_fletcher_checksum_makes_sums_zero(data: bytes, draw: st.DataObject) -> None:
    offset = draw.draw(st.integers(0, len(data) - 2))
    value = fletcher_checksum(data, offset)
    filled = data[:offset] + value.to_bytes(2, "big") + data[offset + 2 :]
    c0 = c1 = 0
    for byte in filled:
        c0 = (c0 + byte) % 255
        c1 = (c1 + c0) % 255
    assert (c0, c1) == (0, 0)
    assert fletcher_checksum(filled, offset) == value  # the field's old content is ignored


@given(st.binary(max_size=120), IPV4, SEQS, st.integers(0, 3600))
def test_checksum_matches_scapy(body: bytes, adv: IPv4Address, seq: int, age: int) -> None:
    raw = build_lsa(10, A("230.0.0.1"), adv, body, seq=seq, age=age)
    assert raw[16:18] == scapy_ospf.ospf_lsa_checksum(raw)
    assert lsa_checksum(raw) == int.from_bytes(raw[16:18], "big")
    assert checksum_ok(raw)


def test_checksum_matches_scapy_sweep() -> None:
    # Deterministic sweep so the rare x == 0 / y > 255 corrections are exercised.
    for i in range(1024):
        raw = build_lsa(10, A("230.0.0.1"), R1, i.to_bytes(4, "big"), seq=i)
        assert raw[16:18] == scapy_ospf.ospf_lsa_checksum(raw), i


def test_checksum_detects_corruption_but_not_age() -> None:
    raw = bytearray(build_router_lsa(R1, [P2P, STUB]))
    raw[0:2] = b"\x0e\x10"  # age is not covered
    assert checksum_ok(bytes(raw))
    raw[30] ^= 0x01
    assert not checksum_ok(bytes(raw))
    assert not checksum_ok(b"short")


# --------------------------------------------------------------------------- router LSA


@given(IPV4, st.lists(LINKS, max_size=20), st.integers(0, 7))
def test_router_lsa_roundtrip(adv: IPv4Address, links: list[RouterLink], flags: int) -> None:
    raw = build_router_lsa(adv, links, flags=flags)
    assert checksum_ok(raw)
    assert parse_router_lsa(raw) == RouterLsa(adv, tuple(links))


def test_router_lsa_built_by_scapy() -> None:
    pkt = scapy_ospf.OSPF_Router_LSA(
        id=str(R3),
        adrouter=str(R3),
        seq=0x80000010,
        flags="B",
        linklist=[
            scapy_ospf.OSPF_Link(id="10.0.0.9", data="10.0.0.10", type=2, metric=5),
            scapy_ospf.OSPF_Link(id="10.3.0.0", data="255.255.255.0", type=3, metric=1),
        ],
    )
    raw = bytes(pkt)
    assert checksum_ok(raw)
    assert parse_router_lsa(raw) == RouterLsa(
        R3,
        (
            RouterLink(2, A("10.0.0.9"), A("10.0.0.10"), 5),
            RouterLink(3, A("10.3.0.0"), A("255.255.255.0"), 1),
        ),
    )


def router_body(
    *links: tuple[RouterLink, list[tuple[int, int]]], count: int | None = None
) -> bytes:
    out = struct.pack("!BBH", 0, 0, len(links) if count is None else count)
    for link, tos in links:
        out += struct.pack(
            "!4s4sBBH", link.link_id.packed, link.link_data.packed, link.kind, len(tos), link.metric
        )
        out += b"".join(struct.pack("!BBH", t, 0, m) for t, m in tos)
    return out


def test_router_lsa_skips_tos_entries() -> None:
    body = router_body((P2P, [(2, 7), (4, 9)]), (STUB, []), (P2P, [(8, 1)]))
    raw = with_header(1, R1, R1, body)
    assert parse_router_lsa(raw).links == (P2P, STUB, P2P)


@pytest.mark.parametrize(
    "body",
    [
        router_body((P2P, []), count=2),  # more links announced than present
        router_body((P2P, []), (STUB, []), count=1),  # fewer: trailing bytes
        router_body((P2P, [(2, 7)]))[:-4],  # TOS count runs past the end
        router_body((P2P, []))[:-1],  # link cut short
        router_body((P2P, [])) + b"\0\0\0\0",  # trailing bytes
        router_body(count=1),
    ],
)
def test_router_lsa_link_count_mismatch(body: bytes) -> None:
    assert reason_of(parse_router_lsa, with_header(1, R1, R1, body)) == "link_count_mismatch"


def test_router_lsa_other_errors() -> None:
    assert reason_of(parse_router_lsa, with_header(1, R1, R1, b"\0\0\0")) == "bad_body_length"
    assert reason_of(parse_router_lsa, with_header(1, R1, R1, b"")) == "bad_body_length"
    assert reason_of(parse_router_lsa, with_header(1, R2, R1, router_body())) == "bad_ls_id"
    assert reason_of(parse_router_lsa, build_network_lsa(R1, R1, A("255.0.0.0"), [])) == (
        "wrong_type"
    )
    assert reason_of(parse_router_lsa, b"\0" * 10) == "too_short"


# --------------------------------------------------------------------------- network LSA


@given(IPV4, IPV4, IPV4, st.lists(IPV4, max_size=20))
def test_network_lsa_roundtrip(
    ls_id: IPv4Address, adv: IPv4Address, mask: IPv4Address, attached: list[IPv4Address]
) -> None:
    raw = build_network_lsa(ls_id, adv, mask, attached)
    assert checksum_ok(raw)
    assert parse_network_lsa(raw) == NetworkLsa(ls_id, adv, mask, tuple(attached))


def test_network_lsa_built_by_scapy() -> None:
    pkt = scapy_ospf.OSPF_Network_LSA(
        id="10.0.5.1", adrouter=str(R2), mask="255.255.255.0", routerlist=[str(R1), str(R2)]
    )
    raw = bytes(pkt)
    assert checksum_ok(raw)
    assert parse_network_lsa(raw) == NetworkLsa(A("10.0.5.1"), R2, A("255.255.255.0"), (R1, R2))


@pytest.mark.parametrize("body", [b"", b"\xff\xff\xff", b"\xff\xff\xff\0" + b"\x0a\0\0"])
def test_network_lsa_bad_body(body: bytes) -> None:
    raw = with_header(2, A("10.0.5.1"), R1, body)
    assert reason_of(parse_network_lsa, raw) == "bad_body_length"


def test_network_lsa_wrong_type() -> None:
    assert reason_of(parse_network_lsa, build_router_lsa(R1, [])) == "wrong_type"


# --------------------------------------------------------------------------- opaque


def test_opaque_type_id() -> None:
    assert opaque_type_id(A("230.0.0.7")) == (230, 7)
    assert opaque_type_id(0xE6FFFFFF) == (230, 0xFFFFFF)
    assert opaque_type_id(0) == (0, 0)
    with pytest.raises(ValueError):
        opaque_type_id(2**32)


def test_build_opaque_lsa() -> None:
    raw = build_announcement_lsa(R1, ANN)
    hdr = parse_lsa_header(raw)
    assert (hdr.type, hdr.adv_router) == (10, R1)
    assert opaque_type_id(hdr.ls_id) == (lsa.OPAQUE_TYPE, ANN.instance_id)
    assert lsa.decode(raw[20:], ANN.instance_id) == ANN
    assert checksum_ok(raw)
    with pytest.raises(ValueError):
        build_opaque_lsa(230, 1, R1, b"", lsa_type=5)
    with pytest.raises(ValueError):
        build_opaque_lsa(230, 2**24, R1, b"")


# --------------------------------------------------------------------------- robustness


PARSERS = [parse_lsa_header, parse_router_lsa, parse_network_lsa]


def assert_only_parse_errors(data: bytes) -> None:
    """Every parser either parses ``data`` or raises LsaParseError with a known reason."""
    for parser in PARSERS:
        try:
            parser(data)
        except LsaParseError as exc:
            assert exc.reason in PARSE_REASONS


@given(st.binary(max_size=120))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    assert_only_parse_errors(data)


@st.composite
def mangled_lsas(draw: st.DrawFn) -> bytes:
    """A valid router or network LSA with a few bytes overwritten and/or cut."""
    if draw(st.booleans()):
        raw = build_router_lsa(R1, draw(st.lists(LINKS, max_size=5)))
    else:
        raw = build_network_lsa(R1, R2, A("255.255.255.0"), draw(st.lists(IPV4, max_size=5)))
    buf = bytearray(raw)
    for _ in range(draw(st.integers(0, 4))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(buf)))
    return bytes(buf[:cut])


@given(mangled_lsas())
def test_mangled_lsas_only_raise_parse_error(data: bytes) -> None:
    assert_only_parse_errors(data)


def test_reason_sets_are_disjoint() -> None:
    assert not PARSE_REASONS & lsa.REASONS


def test_parse_and_decode_errors_share_one_base() -> None:
    exc = LsaParseError("too_short", "3 bytes")
    assert isinstance(exc, lsa.MalformedError) and isinstance(exc, ValueError)
    assert (exc.reason, exc.detail, str(exc)) == ("too_short", "3 bytes", "too_short: 3 bytes")
    assert issubclass(lsa.LsaDecodeError, lsa.MalformedError)
    with pytest.raises(AssertionError, match="unknown LsaParseError reason"):
        LsaParseError("truncated", "a decode reason, not a parse reason")
    with pytest.raises(AssertionError, match="unknown LsaDecodeError reason"):
        lsa.LsaDecodeError("too_short", "a parse reason, not a decode reason")


# --------------------------------------------------------------------------- mirror


def test_mirror_router_lifecycle() -> None:
    m = LsdbMirror()
    assert m.apply_update(build_router_lsa(R1, [P2P], seq=INITIAL_SEQ))
    assert m.view.routers == {R1: RouterLsa(R1, (P2P,))}
    # refresh with the same content: no change
    assert not m.apply_update(build_router_lsa(R1, [P2P], seq=INITIAL_SEQ + 1))
    # new content
    assert m.apply_update(build_router_lsa(R1, [P2P, STUB], seq=INITIAL_SEQ + 2))
    assert m.view.routers[R1].links == (P2P, STUB)
    # older sequence number: ignored
    assert not m.apply_update(build_router_lsa(R1, [], seq=INITIAL_SEQ + 1))
    assert m.view.routers[R1].links == (P2P, STUB)
    assert m.stale_ignored == 1
    # MaxAge copy: deletion
    assert m.apply_update(build_router_lsa(R1, [P2P, STUB], seq=INITIAL_SEQ + 2, age=3600))
    assert m.view.routers == {}
    assert not m.apply_update(build_router_lsa(R1, [P2P, STUB], seq=INITIAL_SEQ + 2, age=3600))
    # re-originated from scratch after the flush (e.g. the router restarted)
    assert m.apply_update(build_router_lsa(R1, [STUB], seq=INITIAL_SEQ))
    assert m.view.routers[R1].links == (STUB,)
    assert m.stats.total == 0


def test_mirror_delete() -> None:
    m = LsdbMirror()
    raw = build_router_lsa(R1, [P2P], seq=10, age=MAX_AGE)
    assert not m.apply_delete(raw)  # nothing to delete
    assert m.apply_update(build_router_lsa(R1, [P2P], seq=10))
    assert not m.apply_delete(build_router_lsa(R1, [P2P], seq=9, age=MAX_AGE))  # older
    assert m.stale_ignored == 1
    assert m.view.routers
    assert m.apply_delete(raw[:20])  # only the header is needed
    assert m.view.routers == {}
    assert not m.apply_delete(raw)


def test_replacement_delete_keeps_the_router() -> None:
    """ospfd reports the old instance of a replaced LSA as deleted (below MaxAge) before
    the new one's update: the router must not vanish in between."""
    m = LsdbMirror()
    assert m.apply_update(build_router_lsa(R1, [P2P], seq=0x8000000B, age=2))
    assert not m.apply_delete(build_router_lsa(R1, [P2P], seq=0x8000000B, age=2))
    assert m.view.routers[R1].links == (P2P,) and m.replaced_ignored == 1
    assert m.apply_update(build_router_lsa(R1, [P2P, STUB], seq=0x8000000C, age=1))
    assert m.view.routers[R1].links == (P2P, STUB)


def test_mirror_network() -> None:
    m = LsdbMirror()
    net = A("10.0.5.1")
    mask = A("255.255.255.0")
    assert m.apply_update(build_network_lsa(net, R1, mask, [R1, R2]))
    assert m.view.networks == {net: NetworkLsa(net, R1, mask, (R1, R2))}
    # another router's LSA with the same id (DR hand-over): the newest arrival wins ...
    assert m.apply_update(build_network_lsa(net, R2, mask, [R2, R3]))
    assert m.view.networks[net].adv_router == R2
    # ... and the old DR's flush does not remove the new DR's network
    assert not m.apply_delete(build_network_lsa(net, R1, mask, [R1, R2], age=MAX_AGE))
    assert m.view.networks[net].adv_router == R2
    assert not m.apply_delete(build_network_lsa(net, R2, mask, [R2, R3]))  # replaced
    assert m.apply_delete(build_network_lsa(net, R2, mask, [R2, R3], age=MAX_AGE))
    assert m.view.networks == {}


def test_mirror_instances() -> None:
    m = LsdbMirror()
    assert m.apply_update(build_announcement_lsa(R1, ANN, seq=1))
    assert m.apply_update(build_announcement_lsa(R2, ANN, seq=1))
    assert set(m.view.instances) == {(R1, 5), (R2, 5)}
    assert m.view.instances[(R1, 5)] == ANN
    draining = dataclasses.replace(ANN, state=InstanceState.DRAINING)
    assert m.apply_update(build_announcement_lsa(R1, draining, seq=2))
    assert m.view.instances[(R1, 5)].state is InstanceState.DRAINING
    assert not m.apply_update(build_announcement_lsa(R1, draining, seq=3))
    assert m.apply_update(build_announcement_lsa(R1, draining, seq=3, age=3600))
    assert set(m.view.instances) == {(R2, 5)}
    assert m.apply_delete(build_announcement_lsa(R2, ANN, seq=1))
    assert m.view.instances == {}


def test_mirror_ignores_other_lsas() -> None:
    m = LsdbMirror()
    body = lsa.encode(ANN)
    assert not m.apply_update(build_opaque_lsa(231, 5, R1, body))  # other opaque type
    assert not m.apply_update(build_opaque_lsa(230, 5, R1, body, lsa_type=9))  # link-local
    assert not m.apply_update(build_opaque_lsa(230, 5, R1, body, lsa_type=11))  # AS-wide
    assert not m.apply_update(build_lsa(3, A("10.9.0.0"), R1, b"\xff\xff\xff\0\0\0\0\x01"))
    assert not m.apply_update(build_lsa(5, A("0.0.0.0"), R1, b"\0" * 16))
    assert not m.apply_delete(build_lsa(5, A("0.0.0.0"), R1, b"\0" * 16))
    assert m.view.instances == {} and m.view.routers == {}
    assert m.stats.total == 0
    # a mirror configured for another opaque type takes those
    m2 = LsdbMirror(opaque_type=231)
    assert m2.apply_update(build_opaque_lsa(231, 5, R1, body))


def test_mirror_malformed_is_counted_logged_once_and_supersedes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    m = LsdbMirror()
    assert m.apply_update(build_router_lsa(R1, [P2P], seq=1))
    assert m.apply_update(build_announcement_lsa(R1, ANN, seq=1))

    bad_router = build_lsa(1, R1, R1, router_body((P2P, []), count=3), seq=2)
    bad_ann = build_opaque_lsa(230, 5, R1, lsa.encode(ANN)[8:], seq=2)  # VERSION missing
    for _ in range(3):
        m.apply_update(bad_router)
        m.apply_update(bad_ann)
    # the malformed copies replaced the good ones: nothing left in the view
    assert m.view.routers == {}
    assert m.view.instances == {}
    # and an older good copy does not come back
    assert not m.apply_update(build_router_lsa(R1, [P2P], seq=1))
    assert m.stats.as_dict() == {"link_count_mismatch": 3, "not_first_version": 3}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(str(R1) in w for w in warnings)

    # garbage: counted, never raised
    assert not m.apply_update(b"")
    assert not m.apply_update(b"\0" * 25)
    assert not m.apply_update(build_router_lsa(R2, [P2P]) + b"\0")
    assert not m.apply_delete(b"\0" * 5)
    assert m.stats.count("too_short") == 2
    assert m.stats.count("bad_length") == 1
    assert m.stats.count("length_mismatch") == 1
    assert m.view.routers == {}

    # a newer good copy is taken again
    assert m.apply_update(build_router_lsa(R1, [STUB], seq=3))
    assert m.view.routers[R1].links == (STUB,)


def test_mirror_router_lsa_with_foreign_ls_id_supersedes_nothing() -> None:
    m = LsdbMirror()
    assert m.apply_update(build_router_lsa(R1, [P2P]))
    assert not m.apply_update(build_lsa(1, R2, R1, router_body((STUB, []))))
    assert not m.apply_delete(build_lsa(1, R2, R1, router_body((STUB, []))))
    assert m.view.routers[R1].links == (P2P,)
    assert m.stats.as_dict() == {"bad_ls_id": 1}  # the delete is just ignored


def test_mirror_checksum_verification() -> None:
    raw = bytearray(build_router_lsa(R1, [P2P]))
    raw[-1] ^= 0xFF
    assert LsdbMirror().apply_update(bytes(raw))  # not verified by default
    m = LsdbMirror(verify_checksum=True)
    assert not m.apply_update(bytes(raw))
    assert m.stats.as_dict() == {"bad_checksum": 1}
    assert m.apply_update(build_router_lsa(R1, [P2P]))


def test_mirror_clear() -> None:
    m = LsdbMirror()
    m.apply_update(build_router_lsa(R1, [P2P], seq=5))
    m.apply_update(build_network_lsa(A("10.0.5.1"), R1, A("255.255.255.0"), [R1]))
    m.apply_update(build_announcement_lsa(R1, ANN))
    m.apply_update(b"junk")
    m.clear()
    assert (m.view.routers, m.view.networks, m.view.instances) == ({}, {}, {})
    assert m.stats.total == 1  # statistics survive a resync
    # sequence numbers are forgotten too: an LSDB dump after a resync is taken whole
    assert m.apply_update(build_router_lsa(R1, [P2P], seq=1))


_EVENTS = st.lists(
    st.tuples(
        st.booleans(),  # update (True) or delete
        st.one_of(
            mangled_lsas(),
            st.builds(
                lambda links, seq: build_router_lsa(R1, links, seq=seq),
                st.lists(LINKS, max_size=3),
                SEQS,
            ),
            st.builds(
                lambda seq, age, ann: build_announcement_lsa(R2, ann, seq=seq, age=age),
                SEQS,
                st.sampled_from([0, 3600]),
                st.builds(dataclasses.replace, st.just(ANN), cost=st.integers(0, 5)),
            ),
            st.binary(max_size=60).map(lambda body: build_opaque_lsa(230, 1, R3, body)),
            st.binary(max_size=60),
        ),
    ),
    max_size=15,
)


@given(_EVENTS)
def test_mirror_never_raises_and_reports_changes(events: list[tuple[bool, bytes]]) -> None:
    m = LsdbMirror(log=logging.getLogger("test.lsdb.fuzz"))
    for is_update, raw in events:
        before = (dict(m.view.routers), dict(m.view.networks), dict(m.view.instances))
        changed = m.apply_update(raw) if is_update else m.apply_delete(raw)
        after = (m.view.routers, m.view.networks, m.view.instances)
        assert changed == (before != after)


def test_generations_of_one_instance_newest_sequence_wins() -> None:
    from dmano.lsa import OPAQUE_TYPE, encode, make_opaque_id
    from dmano.lsdb import LsdbMirror, build_opaque_lsa
    from dmano.model import VnfAnnouncement

    adv = IPv4Address("10.255.0.2")

    def ann(cost: int, seq: int) -> VnfAnnouncement:
        return VnfAnnouncement(instance_id=3, service_id=1, anycast=IPv4Address("10.254.1.1"),
                               cost=cost, endpoint=IPv4Address("10.2.0.2"), sequence=seq)

    def lsa(gen: int, a: VnfAnnouncement, **kw: int) -> bytes:
        return build_opaque_lsa(OPAQUE_TYPE, make_opaque_id(3, gen), adv, encode(a), **kw)

    m = LsdbMirror()
    assert m.apply_update(lsa(0, ann(150, 10)))
    assert m.view.instances == {(adv, 3): ann(150, 10)}
    # the next generation (a new opaque ID) arrives before the old one is flushed
    assert m.apply_update(lsa(1, ann(90, 11)))
    assert m.view.instances == {(adv, 3): ann(90, 11)}  # one candidate, the newest
    assert not m.apply_delete(lsa(0, ann(150, 10)))  # the old one goes: nothing changes
    assert m.view.instances == {(adv, 3): ann(90, 11)}
    # an older sequence under a higher generation number does not win either
    assert not m.apply_update(lsa(2, ann(70, 9)))
    assert m.view.instances[(adv, 3)].cost == 90
    assert m.apply_delete(lsa(1, ann(90, 11)))
    assert m.view.instances[(adv, 3)].cost == 70
    assert m.apply_delete(lsa(2, ann(70, 9)))
    assert m.view.instances == {}


def test_forget_instance_drops_all_generations() -> None:
    from dmano.lsa import OPAQUE_TYPE, encode, make_opaque_id
    from dmano.lsdb import LsdbMirror, build_opaque_lsa
    from dmano.model import VnfAnnouncement

    adv = IPv4Address("10.255.0.4")
    ann = VnfAnnouncement(instance_id=1, service_id=1, anycast=IPv4Address("10.254.1.1"),
                          cost=10, endpoint=IPv4Address("10.4.0.2"), sequence=5)
    m = LsdbMirror()
    m.apply_update(build_opaque_lsa(OPAQUE_TYPE, make_opaque_id(1, 0), adv, encode(ann)))
    m.apply_update(build_opaque_lsa(OPAQUE_TYPE, make_opaque_id(1, 1), adv, encode(ann)))
    assert m.forget_instance(adv, 1)
    assert m.view.instances == {}
    assert not m.forget_instance(adv, 1)
