"""Tests of the VNF process (vnf/): fast path on bytes, services, stats, I/O, CLI."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, Ether, Raw, load_contrib

load_contrib("nsh")
from scapy.contrib.nsh import NSH  # noqa: E402

from dmano.atomicfile import write_json_atomic as write_atomic  # noqa: E402
from dmano.yamlconf import ConfigError  # noqa: E402
from vnf import cli, fastpath, packetio  # noqa: E402
from vnf.config import parse_args  # noqa: E402
from vnf.fastpath import FORWARD, REASONS, Processor  # noqa: E402
from vnf.services import (  # noqa: E402
    Firewall,
    Ids,
    Passthrough,
    Rule,
    RuleError,
    make_service,
    parse_rule,
)
from vnf.stats import StatsWriter  # noqa: E402

VNF_MAC = "02:00:00:00:00:aa"
CONN_MAC = "02:00:00:00:00:cc"
VNF_MAC_B = bytes.fromhex(VNF_MAC.replace(":", ""))
CTX1 = 0xDEADBEEF
CTX = struct.pack("!IIII", CTX1, 0x11111111, 0x22222222, 0x33333333)


def nsh_frame(*, si: int = 255, spi: int = 7, ctx: bytes = CTX, src: str = "10.1.100.10",
              dst: str = "10.5.100.10", l4: object = None, payload: bytes = b"hello",
              **nsh: object) -> Ether:
    inner = IP(src=src, dst=dst) / (l4 if l4 is not None else UDP(sport=1234, dport=5001))
    return (Ether(dst=VNF_MAC, src=CONN_MAC) / NSH(spi=spi, si=si, context_header=ctx, **nsh)
            / inner / Raw(payload))


def raw(pkt: Ether) -> bytes:
    return bytes(pkt)


def processor(service: object = None, **kwargs: object) -> Processor:
    return Processor(VNF_MAC_B, service if service is not None else Passthrough(),
                     **kwargs)  # type: ignore[arg-type]


def counts(p: Processor) -> dict[str, int]:
    return {k: v for k, v in p.drop_counts().items() if v}


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- the fast path on bytes ------------------------------------------------------------

def test_passthrough_decrements_si_swaps_macs_keeps_the_rest() -> None:
    frame = raw(nsh_frame(si=200))
    p = processor()
    out = p.handle(frame)
    assert out is not None and len(out) == len(frame)
    pkt = Ether(out)
    assert pkt.dst == CONN_MAC and pkt.src == VNF_MAC and pkt.type == 0x894F
    n = pkt[NSH]
    orig = Ether(frame)[NSH]
    assert n.si == 199
    assert (n.spi, n.ttl, n.length, n.mdtype, n.nextproto, n.ver) == (
        orig.spi, orig.ttl, orig.length, orig.mdtype, orig.nextproto, orig.ver)
    assert n.context_header == CTX  # ctx1 (flow hash) and the rest untouched
    assert bytes(n.payload) == bytes(orig.payload)  # inner IPv4 packet unchanged
    assert out[38:] == frame[38:]
    assert (p.packets_in, p.packets_out, p.bytes_in, p.bytes_out) == (1, 1, len(frame),
                                                                     len(frame))
    assert counts(p) == {}
    assert p.flows == {CTX1: 1}


def test_process_works_at_an_offset_in_a_shared_buffer() -> None:
    frame = raw(nsh_frame(si=3))
    buf = bytearray(b"\xee" * 100 + frame + b"\xee" * 50)
    assert processor().process(buf, 100, len(frame)) == FORWARD
    assert buf[:100] == b"\xee" * 100 and buf[100 + len(frame):] == b"\xee" * 50
    assert Ether(bytes(buf[100:100 + len(frame)]))[NSH].si == 2


def test_si_one_is_forwarded_with_si_zero() -> None:
    out = processor().handle(raw(nsh_frame(si=1)))
    assert out is not None and Ether(out)[NSH].si == 0


def test_ethernet_padding_and_trailer_are_kept() -> None:
    frame = raw(nsh_frame(payload=b"")) + b"\0" * 10
    out = processor().handle(frame)
    assert out is not None and out[38:] == frame[38:]


def _set(frame: bytes, offset: int, value: int) -> bytes:
    b = bytearray(frame)
    b[offset] = value
    return bytes(b)


GOOD = raw(nsh_frame())
MALFORMED = {
    "empty": (b"", "truncated"),
    "ethernet only": (GOOD[:14], "truncated"),
    "nsh cut short": (GOOD[:37], "truncated"),
    "short ipv4 frame": (raw(Ether() / IP())[:30], "not_nsh"),
    "wrong ethertype": (raw(Ether(dst=VNF_MAC) / IP() / UDP()), "not_nsh"),
    "vlan tagged": (GOOD[:12] + b"\x81\x00\x00\x05" + GOOD[12:], "not_nsh"),
    "version 1": (raw(nsh_frame(ver=1)), "bad_version"),
    "md type 2": (raw(Ether(dst=VNF_MAC) / NSH(mdtype=2, length=2) / IP() / UDP()),
                  "bad_md_type"),
    "md type 0": (_set(GOOD, 16, 0x00), "bad_md_type"),
    "length 5": (raw(nsh_frame(length=5)), "bad_length"),
    "length 2 with md type 1": (_set(GOOD, 15, (GOOD[15] & 0xC0) | 2), "bad_length"),
    "si 0": (raw(nsh_frame(si=0)), "si_zero"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_frames_are_dropped_and_counted_per_reason(name: str) -> None:
    frame, reason = MALFORMED[name]
    p = processor(Firewall([]))
    buf = bytearray(frame)
    assert p.process(buf, 0, len(buf)) == REASONS.index(reason)
    assert buf == frame  # never modified
    assert counts(p) == {reason: 1}
    assert (p.packets_in, p.packets_out) == (1, 0)


def test_malformed_counts_accumulate() -> None:
    p = processor()
    for frame, _ in MALFORMED.values():
        assert p.handle(frame) is None
    assert p.handle(GOOD) is not None
    expected: dict[str, int] = {}
    for _, reason in MALFORMED.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert counts(p) == expected
    assert p.packets_in == len(MALFORMED) + 1 == p.packets_out + sum(p.drops)


def test_flow_table_is_bounded_and_keeps_the_most_recent() -> None:
    p = processor(flows_max=2)

    def send(flow: int) -> None:
        assert p.handle(raw(nsh_frame(ctx=struct.pack("!I12x", flow)))) is not None

    for flow in (1, 2, 1, 3):  # 2 is the least recent when 3 arrives
        send(flow)
    assert p.flows == {1: 2, 3: 1}
    assert list(p.flows) == [1, 3]
    assert p.flows_evicted == 1


# -- firewall ------------------------------------------------------------------------

def test_firewall_drops_matching_flows_and_counts_them() -> None:
    fw = Firewall([
        parse_rule("drop src=10.1.100.66/32"),
        parse_rule("drop dst=10.9.0.0/16 proto=tcp"),
        parse_rule("drop proto=udp dport=5000-5002"),
    ])
    p = processor(fw)
    cases = [
        (nsh_frame(src="10.1.100.66", l4=TCP(dport=80)), False),  # rule 0
        (nsh_frame(dst="10.9.3.4", l4=TCP(dport=22)), False),  # rule 1
        (nsh_frame(dst="10.9.3.4", l4=UDP(dport=22)), True),  # udp: rule 1 needs tcp
        (nsh_frame(l4=UDP(dport=5001)), False),  # rule 2
        (nsh_frame(l4=UDP(dport=5003)), True),
        (nsh_frame(l4=TCP(dport=5001)), True),  # rule 2 needs udp
        (nsh_frame(src="10.1.100.67"), False),  # default udp 5001 -> rule 2
    ]
    for pkt, forwarded in cases:
        out = p.handle(raw(pkt))
        assert (out is not None) == forwarded, pkt.summary()
        if out is not None:
            assert Ether(out)[NSH].si == 254 and out[38:] == raw(pkt)[38:]
    assert counts(p) == {"policy_drop": 4}
    assert fw.hits == [1, 1, 2]
    assert fw.default_hits == 3
    stats = fw.stats()
    assert stats["rules"][2] == {"rule": "drop proto=udp dport=5000-5002", "hits": 2}


def test_firewall_first_match_wins_and_default_action() -> None:
    fw = Firewall([parse_rule("allow src=10.1.100.10/32"), parse_rule("drop proto=udp")],
                  default_action="drop")
    p = processor(fw)
    assert p.handle(raw(nsh_frame(src="10.1.100.10"))) is not None
    assert p.handle(raw(nsh_frame(src="10.1.100.11"))) is None  # rule 1
    assert p.handle(raw(nsh_frame(src="10.1.100.11", l4=TCP()))) is None  # default drop
    assert counts(p) == {"policy_drop": 2}
    assert (fw.hits, fw.default_hits) == ([1, 1], 1)


def test_firewall_port_rules_skip_non_first_fragments_and_portless_protocols() -> None:
    fw = Firewall([parse_rule("drop dport=5001")])
    p = processor(fw)
    frag = (Ether(dst=VNF_MAC) / NSH(context_header=CTX)
            / IP(src="10.1.100.10", dst="10.5.100.10", proto=17, frag=100) / Raw(bytes(40)))
    icmp = Ether(dst=VNF_MAC) / NSH(context_header=CTX) / IP(proto=1) / Raw(b"\x13\x89" * 4)
    assert p.handle(raw(frag)) is not None
    assert p.handle(raw(icmp)) is not None
    assert p.handle(raw(nsh_frame())) is None


def test_firewall_handles_ip_options() -> None:
    pkt = (Ether(dst=VNF_MAC) / NSH(context_header=CTX)
           / IP(options=[b"\x01\x01\x01\x00"]) / UDP(dport=5001))
    assert Ether(raw(pkt))[IP].ihl == 6
    p = processor(Firewall([parse_rule("drop dport=5001")]))
    assert p.handle(raw(pkt)) is None
    assert counts(p) == {"policy_drop": 1}


@pytest.mark.parametrize("frame", [
    raw(nsh_frame(nextproto=2)),  # NSH says Ethernet inside, not IPv4
    raw(Ether(dst=VNF_MAC) / NSH(context_header=CTX, nextproto=1) / Raw(b"\x60" + bytes(39))),
    raw(nsh_frame())[:38 + 19],  # IPv4 header cut short
    _set(raw(nsh_frame()), 38, 0x44),  # IHL 4
    _set(raw(nsh_frame()), 38, 0x4F),  # IHL 15 (60 bytes) beyond the frame
])
def test_firewall_drops_what_is_not_ipv4_as_bad_inner(frame: bytes) -> None:
    p = processor(Firewall([]))
    assert p.handle(frame) is None
    assert counts(p) == {"bad_inner": 1}
    assert processor().handle(frame) is not None  # passthrough does not look inside


def test_firewall_udp_header_cut_short_has_no_port() -> None:
    frame = raw(nsh_frame(payload=b""))[:38 + 20 + 2]  # only the source port
    p = processor(Firewall([parse_rule("drop dport=5001")]))
    assert p.handle(frame) is not None


@pytest.mark.parametrize(("text", "rule"), [
    ("drop", Rule()),
    ("allow proto=tcp", Rule("allow", proto=6)),
    ("src=10.1.0.0/16 dst=10.5.100.10 proto=17 dport=80",
     Rule("drop", src=parse_rule("src=10.1.0.0/16").src,
          dst=parse_rule("dst=10.5.100.10/32").dst, proto=17, dport=(80, 80))),
    ("drop dport=5000-5099", Rule(dport=(5000, 5099))),
])
def test_parse_rule(text: str, rule: Rule) -> None:
    parsed = parse_rule(text)
    assert parsed == rule
    assert parse_rule(str(parsed)) == parsed


@pytest.mark.parametrize(("text", "needle"), [
    ("drop src=10.1.0.1/16", "src"),  # host bits set
    ("drop dst=banana", "dst"),
    ("drop proto=xyz", "proto"),
    ("drop proto=300", "proto"),
    ("drop dport=70000", "dport"),
    ("drop dport=90-80", "dport"),
    ("drop proto=icmp dport=1", "dport needs"),
    ("drop sport=1", "unknown field"),
    ("drop src", "key=value"),
    ("drop src=10.0.0.0/8 src=10.0.0.0/8", "twice"),
    ("reject src=10.0.0.0/8", "key=value"),
])
def test_parse_rule_errors(text: str, needle: str) -> None:
    with pytest.raises(RuleError, match=needle):
        parse_rule(text)


# -- capacity (token bucket) and work ----------------------------------------------------

def test_token_bucket_drops_beyond_capacity() -> None:
    clock = FakeClock()
    p = processor(capacity=8.0, burst=2.0, clock=clock)  # binary fractions: exact sums
    frame = raw(nsh_frame())

    def burst(n: int) -> int:
        return sum(p.handle(frame) is not None for _ in range(n))

    assert burst(5) == 2  # the bucket starts full (2 tokens)
    clock.t += 0.125  # 1 token
    assert burst(3) == 1
    clock.t += 0.0625  # half a token: not enough
    assert burst(1) == 0
    clock.t += 0.0625  # the half plus another half
    assert burst(1) == 1
    clock.t += 100.0  # refills to the burst size only
    assert burst(10) == 2
    assert counts(p) == {"over_capacity": 5 - 2 + 3 - 1 + 1 + 10 - 2}
    assert p.packets_out == 2 + 1 + 1 + 2


def test_token_bucket_long_run_rate() -> None:
    clock = FakeClock()
    p = processor(capacity=150.0, clock=clock)
    frame = raw(nsh_frame())
    sent = 0
    for _ in range(3000):  # 3000 packets offered at 1000 packets/s for 3 s
        clock.t += 0.001
        sent += p.handle(frame) is not None
    assert abs(sent - 150 * 3 - p.burst) <= 2
    assert p.drops[fastpath.OVER_CAPACITY] == 3000 - sent


def test_capacity_checked_before_the_service() -> None:
    fw = Firewall([parse_rule("drop")])
    p = processor(fw, capacity=1.0, burst=1.0, clock=FakeClock())
    p.handle(GOOD)
    p.handle(GOOD)
    assert counts(p) == {"policy_drop": 1, "over_capacity": 1}


def test_default_burst_and_bad_parameters() -> None:
    assert processor(capacity=150.0).burst == pytest.approx(7.5)
    assert processor(capacity=5.0).burst == 1.0
    for kwargs in ({"capacity": 0.0}, {"capacity": 10.0, "burst": 0.5}, {"flows_max": 0}):
        with pytest.raises(ValueError):
            processor(**kwargs)
    with pytest.raises(ValueError):
        Processor(b"\0" * 5, Passthrough())


def test_work_us_burns_time() -> None:
    p = processor(work_us=2000)
    t0 = time.perf_counter()
    assert p.handle(GOOD) is not None
    assert time.perf_counter() - t0 >= 0.002


# -- ids -------------------------------------------------------------------------------

def test_ids_flags_flows_above_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    ids = Ids(threshold_pps=100)
    p = processor(ids)
    fast, slow = struct.pack("!I12x", 0xAAAA0001), struct.pack("!I12x", 0xBBBB0002)
    ids.tick(0.0, p.flows)
    caplog.set_level(logging.WARNING, logger="vnf.services")
    for second in (1.0, 2.0):
        for _ in range(150):
            assert p.handle(raw(nsh_frame(ctx=fast))) is not None
        for _ in range(50):
            assert p.handle(raw(nsh_frame(ctx=slow))) is not None
        ids.tick(second, p.flows)
    assert ids.flagged == {0xAAAA0001: 150.0}
    assert ids.alerts == 1  # flagged twice in a row: one alert
    assert len([r for r in caplog.records if "aaaa0001" in r.getMessage()]) == 1
    ids.tick(3.0, p.flows)  # no packets for a second
    assert ids.flagged == {} and ids.alerts == 1
    assert ids.stats() == {"threshold_pps": 100, "alerts": 1, "flagged": {}}
    assert p.packets_out == 400  # ids never drops


def test_make_service() -> None:
    assert isinstance(make_service("passthrough"), Passthrough)
    assert isinstance(make_service("ids", ids_threshold_pps=5), Ids)
    fw = make_service("firewall", rules=[Rule()], default_action="drop")
    assert isinstance(fw, Firewall) and fw.default_action == "drop"
    with pytest.raises(ValueError):
        make_service("nat")
    with pytest.raises(ValueError):
        Ids(0)
    with pytest.raises(RuleError):
        Firewall([], default_action="reject")


# -- robustness ------------------------------------------------------------------------

SERVICES = [
    lambda: Passthrough(),
    lambda: Firewall([parse_rule("drop src=10.0.0.0/8 proto=udp dport=1-1000"),
                      parse_rule("allow proto=tcp")], default_action="drop"),
    lambda: Ids(1.0),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200), which=st.integers(0, 2), pad=st.integers(0, 7))
def test_random_bytes_never_raise(data: bytes, which: int, pad: int) -> None:
    p = processor(SERVICES[which](), capacity=1e6, flows_max=4)
    buf = bytearray(b"\0" * pad + data + b"\0" * pad)
    verdict = p.process(buf, pad, len(data))
    assert verdict == FORWARD or 0 <= verdict < len(REASONS)
    assert len(buf) == len(data) + 2 * pad
    assert buf[:pad] == b"\0" * pad and buf[pad + len(data):] == b"\0" * pad
    assert p.packets_in == 1 and sum(p.drops) == (verdict != FORWARD)


@settings(max_examples=300)
@given(base=st.binary(min_size=4, max_size=4), keep_base=st.booleans(),
       inner=st.binary(max_size=80), which=st.integers(0, 2))
def test_random_inner_packets_never_raise(base: bytes, keep_base: bool, inner: bytes,
                                          which: int) -> None:
    """Ethernet/NSH with a random (or valid, random next protocol) base header + random
    inner bytes: reaches the services' inner parsing."""
    frame = bytearray(GOOD[:38] + inner)
    if keep_base:
        frame[17] = base[3]
    else:
        frame[14:18] = base
    p = processor(SERVICES[which]())
    verdict = p.process(frame, 0, len(frame))
    assert verdict == FORWARD or 0 <= verdict < len(REASONS)
    if verdict == FORWARD:
        assert frame[38:] == inner and frame[21] == GOOD[21] - 1


# -- stats file ------------------------------------------------------------------------

DOCUMENTED = {"format", "name", "service", "iface", "mac", "pid", "started", "updated",
              "capacity", "burst", "work_us", "rate_pps", "rate_out_pps", "cpu_percent",
              "packets_in", "bytes_in", "packets_out", "bytes_out", "dropped",
              "dropped_total", "flows", "flows_tracked", "flows_evicted", "service_stats",
              "packets_by_spi"}


def test_stats_file_has_the_documented_fields(tmp_path: Path) -> None:
    mono, wall, cpu = FakeClock(50.0), FakeClock(1_700_000_000.0), FakeClock(3.0)
    p = processor(Firewall([parse_rule("drop src=10.1.100.66/32")]), capacity=100.0,
                  burst=10.0, clock=mono)
    path = tmp_path / "vnf" / "fw1.json"
    path.parent.mkdir()
    w = StatsWriter(path, p, name="fw1", iface="eth0", wall_clock=wall, mono_clock=mono,
                    cpu_clock=cpu)
    for i in range(5):
        p.handle(raw(nsh_frame(ctx=struct.pack("!I12x", 0x100 + i % 2))))
    p.handle(raw(nsh_frame(src="10.1.100.66")))
    p.handle(b"junk")
    mono.t += 1.0
    wall.t += 1.0
    cpu.t += 0.25
    w.write()
    data = json.loads(path.read_text())
    assert set(data) == DOCUMENTED
    assert data["format"] == 1
    assert (data["name"], data["service"], data["iface"]) == ("fw1", "firewall", "eth0")
    assert data["mac"] == VNF_MAC
    assert data["pid"] == os.getpid()
    assert data["capacity"] == 100.0 and data["burst"] == 10.0
    assert data["started"] == 1_700_000_000.0 and data["updated"] == 1_700_000_001.0
    assert data["packets_in"] == 7 and data["packets_out"] == 5
    # the 6 NSH packets (the junk is not NSH), all on the frames' service path
    assert data["packets_by_spi"] == {"7": 6}
    assert data["rate_pps"] == 7.0 and data["rate_out_pps"] == 5.0
    assert data["cpu_percent"] == 25.0
    assert data["dropped"] == {r: 0 for r in REASONS} | {"policy_drop": 1, "truncated": 1}
    assert data["dropped_total"] == 2
    assert data["packets_in"] == data["packets_out"] + data["dropped_total"]
    # most recently seen flow first; the policy-dropped packet still counts for its flow
    assert list(data["flows"].items()) == [("deadbeef", 1), ("00000100", 3),
                                           ("00000101", 2)]
    assert data["flows_tracked"] == 3
    assert data["service_stats"]["rules"] == [{"rule": "drop src=10.1.100.66/32",
                                               "hits": 1}]
    assert [f.name for f in path.parent.iterdir()] == ["fw1.json"]  # no temporary left


def test_stats_unlimited_capacity_is_null(tmp_path: Path) -> None:
    p = processor()
    data = StatsWriter(tmp_path / "s.json", p, name="x", iface="eth0").write()
    assert data["capacity"] is None and data["burst"] is None
    assert json.loads((tmp_path / "s.json").read_text())["capacity"] is None


def test_rate_is_over_the_last_second(tmp_path: Path) -> None:
    mono = FakeClock(0.0)
    p = processor()
    w = StatsWriter(tmp_path / "s.json", p, name="x", iface="eth0", mono_clock=mono)
    for step in range(1, 9):  # 100 packets per 0.5 s for 2 s, then nothing for 2 s
        mono.t = step * 0.5
        if step <= 4:
            for _ in range(100):
                p.handle(GOOD)
        rate = w.write()["rate_pps"]
        if step in (2, 3, 4):
            assert rate == 200.0
    assert rate == 0.0


def test_stats_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fw1.json"
    path.write_text('{"old": true}')
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        src, dst = Path(src), Path(dst)
        assert src.parent == dst.parent and src != dst
        assert json.loads(src.read_text())["new"] is True  # complete before the rename
        assert json.loads(dst.read_text()) == {"old": True}  # untouched until then
        renames.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(path, {"new": True})
    assert renames and renames[0][1] == path
    assert json.loads(path.read_text()) == {"new": True}

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomic(path, {"newer": True})
    assert json.loads(path.read_text()) == {"new": True}
    assert [f.name for f in tmp_path.iterdir()] == ["fw1.json"]


# -- I/O loops on a socketpair (no interface) ------------------------------------------

IO_KINDS = ["simple"] + (["mmsg"] if packetio.mmsg_available() else [])


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.settimeout(2.0)
    with a, b:
        yield a, b


def _io(kind: str, sock: socket.socket, p: Processor, **kwargs: object):
    cls = packetio.MmsgIO if kind == "mmsg" else packetio.SimpleIO
    return cls(sock, p, timeout=0.05, **kwargs)


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(70000))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


@pytest.mark.parametrize("kind", IO_KINDS)
def test_io_forwards_in_order_and_skips_drops(kind: str, pair) -> None:
    a, b = pair
    p = processor(Firewall([parse_rule("drop dport=9")]))
    io = _io(kind, b, p, batch=8, slot=2048)
    frames = []
    for i in range(20):
        dport = 9 if i % 3 == 1 else 1000 + i
        frames.append(raw(nsh_frame(si=100, l4=UDP(dport=dport))))
    frames[5] = b"short"
    frames[17] = raw(nsh_frame(si=100, l4=UDP(dport=1017))) + bytes(3000)  # too big
    for f in frames:
        a.send(f)
    received = 0
    while received < len(frames):
        got = io.poll()
        assert got > 0
        received += got
    assert io.poll() == 0  # times out quietly
    out = _drain(a)
    expected_ports = [1000 + i for i in range(20) if i % 3 != 1 and i not in (5, 17)]
    assert [Ether(f)[UDP].dport for f in out] == expected_ports
    assert all(Ether(f)[NSH].si == 99 and Ether(f).dst == CONN_MAC for f in out)
    assert counts(p) == {"policy_drop": 7, "truncated": 1, "too_big": 1}
    assert p.packets_in == 20 and p.packets_out == len(out)
    assert p.bytes_out == sum(len(f) for f in out)
    assert p.bytes_in == sum(len(f) for f in frames)
    io.close()


@pytest.mark.parametrize("kind", IO_KINDS)
def test_io_counts_refused_sends_as_tx_error(kind: str, pair) -> None:
    a, b = pair
    p = processor()
    io = _io(kind, b, p, batch=64, slot=2048)
    frame = raw(nsh_frame())
    sent = 0
    # nobody reads `a`: its receive queue fills and further sends fail with EAGAIN
    for _ in range(40):
        for _ in range(32):
            a.send(frame)
            sent += 1
        while io.poll():
            pass
        if p.drops[fastpath.TX_ERROR]:
            break
    assert p.drops[fastpath.TX_ERROR] > 0
    assert p.packets_in == sent == p.packets_out + p.drops[fastpath.TX_ERROR]
    io.close()


class _FlakySocket:
    """Stands in for a packet socket whose interface went down."""

    def __init__(self, err: int):
        self.err = err

    def settimeout(self, _: object) -> None:
        pass

    def setsockopt(self, *_: object) -> None:
        pass

    def recv_into(self, *_: object) -> int:
        raise OSError(self.err, os.strerror(self.err))

    def send(self, *_: object) -> int:
        raise AssertionError("nothing to send")


def test_receive_errors_interface_down_is_survived_others_raise(
        caplog: pytest.LogCaptureFixture) -> None:
    p = processor()
    io = packetio.SimpleIO(_FlakySocket(errno.ENETDOWN), p)  # type: ignore[arg-type]
    assert io.poll() == 0
    assert "Network is down" in caplog.text
    io = packetio.SimpleIO(_FlakySocket(errno.EBADF), p)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        io.poll()
    assert packetio._rx_error(errno.EAGAIN, "x") == 0


def test_make_io_kinds(pair) -> None:
    _, b = pair
    p = processor()
    assert isinstance(packetio.make_io("simple", b, p), packetio.SimpleIO)
    expected = packetio.MmsgIO if packetio.mmsg_available() else packetio.SimpleIO
    assert isinstance(packetio.make_io("mmsg", b, p), expected)
    with pytest.raises(ValueError):
        packetio.make_io("ring", b, p)


@pytest.mark.parametrize("kind", IO_KINDS)
def test_runner_loop_writes_stats_and_stops(kind: str, pair, tmp_path: Path) -> None:
    a, b = pair
    p = processor()
    path = tmp_path / "v.json"
    writer = StatsWriter(path, p, name="v1", iface="eth0")
    runner = cli.VnfRunner(_io(kind, b, p, batch=4, slot=2048), p, writer, interval=0.0)
    for _ in range(10):
        a.send(GOOD)
    runner.run(max_polls=5)
    assert len(_drain(a)) == 10
    data = json.loads(path.read_text())
    assert data["packets_in"] == data["packets_out"] == 10
    writes = writer.writes
    runner.request_stop()
    runner.run()  # stops at once, still writes final stats
    assert writer.writes == writes + 1


def test_runner_survives_stats_write_errors(pair, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    _, b = pair
    p = processor()
    writer = StatsWriter(tmp_path / "missing" / "v.json", p, name="v", iface="eth0")
    runner = cli.VnfRunner(packetio.SimpleIO(b, p, timeout=0.01), p, writer, interval=0.0)
    runner.run(max_polls=3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot write stats" in errors[0].getMessage()


# -- configuration ---------------------------------------------------------------------

BASE = ["--name", "fw1", "--iface", "eth0", "--stats", "/run/x/fw1.json"]


def test_cli_options() -> None:
    cfg = parse_args([*BASE, "--service", "firewall", "--capacity", "150", "--work-us", "5",
                      "--rule", "drop proto=udp dport=5001", "--rule", "allow",
                      "--io", "simple", "--batch", "32"])
    assert cfg.service == "firewall" and cfg.capacity == 150.0 and cfg.work_us == 5.0
    assert [str(r) for r in cfg.rules] == ["drop proto=udp dport=5001", "allow"]
    assert cfg.stats == Path("/run/x/fw1.json")
    assert (cfg.io, cfg.batch, cfg.burst, cfg.stats_interval) == ("simple", 32, None, 0.5)


@pytest.mark.parametrize("argv", [
    ["--service", "firewall"],  # missing name etc.
    [*BASE, "--service", "nat"],
    [*BASE, "--service", "firewall", "--capacity", "0"],
    [*BASE, "--service", "firewall", "--batch", "0"],
    [*BASE, "--service", "firewall", "--rule", "drop dport=x"],
    [*BASE, "--service", "ids", "--rule", "drop"],  # rules only for the firewall
])
def test_cli_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_config_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "fw1.yaml"
    f.write_text(
        "name: fw1\niface: eth0\nservice: firewall\nstats: /run/s.json\n"
        "capacity: 150\ndefault_action: drop\nids_threshold: 10\n"
        "rules:\n  - drop proto=udp dport=5001\n  - {action: allow, src: 10.1.0.0/16}\n")
    cfg = parse_args(["--config", str(f), "--capacity", "200", "--rule", "drop proto=tcp"])
    assert cfg.name == "fw1" and cfg.capacity == 200.0 and cfg.default_action == "drop"
    assert [str(r) for r in cfg.rules] == ["drop proto=udp dport=5001",
                                           "allow src=10.1.0.0/16", "drop proto=tcp"]
    assert cfg.ids_threshold == 10.0


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("name: a\nservice: nat\n", 2, "expected one of"),
    ("name: a\ncapacity: -1\n", 2, "capacity"),
    ("name: a\nrules:\n  - drop\n  - drop dport=1-0\n", 4, "dport"),
    ("name: a\nrules:\n  - {action: reject}\n", 3, "action"),
    ("name: a\nrules:\n  - 5\n", 3, "rule string"),
    ("name: a\ncolour: red\n", 2, "unknown key"),
])
def test_config_file_errors_name_the_line(tmp_path: Path, text: str, line: int,
                                          needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle) as exc:
        parse_args(["--config", str(f)])
    assert exc.value.line == line


def test_main_reports_a_bad_config_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("service: nat\n")
    assert cli.main(["--config", str(f)]) == 2


def test_main_fails_cleanly_without_the_interface(tmp_path: Path) -> None:
    rc = cli.main([*BASE[:2], "--iface", "no-such-if0", "--stats", str(tmp_path / "s.json"),
                   "--service", "passthrough"])
    assert rc == 1
    assert not (tmp_path / "s.json").exists()
