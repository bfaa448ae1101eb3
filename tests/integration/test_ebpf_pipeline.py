"""The eBPF connector pipeline (connector_p4/ebpf/connector.c) driven with BPF_PROG_TEST_RUN.

Nothing is attached and no interface is created: every test loads a fresh copy of the
program, pins it under /sys/fs/bpf/dsfc-unittest-<pid>/ (removed afterwards, even on
failure), fills the tables through EbpfTarget and runs scapy-built frames through the
program as if they arrived on a given port (ingress ifindex in the test-run context).
The redirect target, which BPF_PROG_TEST_RUN does not report, is read from the program's
per-CPU `dbg` map (EbpfTarget.last_decision()). Needs root, clang and libbpf.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
import subprocess
from collections import Counter as Tally
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from scapy.all import ARP, IP, TCP, UDP, Ether, Raw, load_contrib
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.vxlan import VXLAN

from connector_p4 import ebpf_build, ebpf_target, libbpf
from connector_p4.ebpf_target import (
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    EbpfTarget,
    make_port,
    remove_pins,
    role_of_port,
)
from connector_p4.flowhash import crc32c, flow_hash, gpe_source_port
from connector_p4.target import (
    DROP_REASONS,
    MAX_SERVICES,
    SELECT_SLOTS,
    ClassifierRule,
    ConnectorConfig,
    Member,
    SffAction,
    TargetError,
    Ternary,
)

load_contrib("nsh")
from scapy.contrib.nsh import NSH  # noqa: E402  (exists once the contrib is loaded)

from tests.conftest import skip_or_fail  # noqa: E402
from topologies.runstate import ensure_bpffs  # noqa: E402


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (BPF program load and test run)"
    if shutil.which("clang") is None:
        return "clang not installed (make setup)"
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        return "libbpf-dev not installed (make setup)"
    try:
        libbpf.lib()
    except OSError as e:
        return f"libbpf.so.1 not usable: {e}"
    try:
        ensure_bpffs()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"cannot mount bpffs on /sys/fs/bpf: {e}"
    return None


SKIP = _skip_reason()

# ---- the connector under test (ifindexes are fake: nothing is attached) ----
LOCAL_IP = "10.1.0.2"
REMOTE_IP = "10.2.0.2"
ROUTER_MAC = "02:00:00:00:00:fe"
IF_RTR, IF_RTRH, IF_VA, IF_VB, IF_H = 1001, 1002, 1016, 1017, 1064
MAC_RTR, MAC_VA_PORT, MAC_VB_PORT, MAC_H_PORT = (
    "02:00:00:01:00:01", "02:00:00:01:00:10", "02:00:00:01:00:11", "02:00:00:01:00:40")
VNF_A_MAC, VNF_B_MAC = "02:00:00:0a:00:01", "02:00:00:0b:00:01"
PORTS = {
    1: ("rtr", IF_RTR, MAC_RTR, "router", 1600),
    2: ("rtrh", IF_RTRH, "02:00:00:01:00:02", "hostbridge", 1500),
    16: ("v-a", IF_VA, MAC_VA_PORT, "vnf", 1600),
    17: ("v-b", IF_VB, MAC_VB_PORT, "vnf", 1600),
    64: ("h-1", IF_H, MAC_H_PORT, "host", 1500),
}
# chain 10: service 1 (local VNF A) -> service 2 (remote) -> end of chain
SPI = 10
SVC_LOCAL, SVC_REMOTE, SVC_EMPTY = 1, 2, 9
M_A, M_B, M_R = 1, 2, 3
REMOTE_ARRIVAL = MAX_SERVICES  # select slot of (service S, from_remote 1) = S + 256

H_SRC, H_DST = "10.1.100.10", "10.2.100.10"


def _mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def tern(value: int, mask: int) -> Ternary:
    return Ternary(value, mask)


ANY = Ternary(0, 0)


@contextlib.contextmanager
def loaded_target() -> Iterator[EbpfTarget]:
    """A fresh pipeline with the tables below, unpinned on the way out."""
    pin = Path(f"/sys/fs/bpf/dsfc-unittest-{os.getpid()}")
    t = EbpfTarget(ebpf_build.build(), pin, PORTS)
    try:
        t.load()
        t.set_config(ConnectorConfig(IPv4Address(LOCAL_IP), _mac(ROUTER_MAC), _mac(MAC_RTR)))
        t.set_classifier([
            ClassifierRule(100, ANY, ANY, tern(17, 0xFF), ANY, tern(5678, 0xFFFF), SPI),
            ClassifierRule(50, ANY, tern(int(IPv4Address("10.9.0.0")), 0xFFFF0000), ANY, ANY,
                           ANY, 11),
        ])
        t.set_sff(SPI, 255, SffAction("to_service", SVC_LOCAL))
        t.set_sff(SPI, 254, SffAction("to_service", SVC_REMOTE))
        t.set_sff(SPI, 253, SffAction("end_of_chain"))
        t.set_sff(SPI, 252, SffAction("to_service", SVC_EMPTY))
        t.set_sff(11, 255, SffAction("drop"))
        t.set_member(M_A, Member("local", port=16, dmac=_mac(VNF_A_MAC)))
        t.set_member(M_B, Member("local", port=17, dmac=_mac(VNF_B_MAC)))
        t.set_member(M_R, Member("remote", endpoint=IPv4Address(REMOTE_IP)))
        # as the D-MANO writes them: (S, 0) -> every candidate, (S, 1) -> the local ones,
        # or the same members when this node has none
        t.set_group(SVC_LOCAL, [(M_A, 1)])
        t.set_group(SVC_LOCAL + REMOTE_ARRIVAL, [(M_A, 1)])
        t.set_group(SVC_REMOTE, [(M_R, 1)])
        t.set_group(SVC_REMOTE + REMOTE_ARRIVAL, [(M_R, 1)])
        yield t
    finally:
        t.close()
        remove_pins(pin)
    assert not pin.exists()


@pytest.fixture
def tgt():
    if SKIP:
        skip_or_fail(SKIP)
    with loaded_target() as t:
        yield t


def run(t: EbpfTarget, frame: bytes, ifindex: int):
    t.reset_debug()
    res = t.test_run(bytes(frame), ifindex)
    return res, t.last_decision()


def nsh_frame(spi: int = SPI, si: int = 254, ttl: int = 63, ctx1: int = 0x12345678,
              inner: bytes | None = None, src_mac: str = VNF_A_MAC) -> bytes:
    inner = inner if inner is not None else bytes(IP(src=H_SRC, dst=H_DST) / UDP(
        sport=1111, dport=5678) / Raw(b"p" * 32))
    return bytes(Ether(src=src_mac, dst=MAC_VA_PORT) / NSH(
        ttl=ttl, spi=spi, si=si, nextproto=1,
        context_header=struct.pack("!IIII", ctx1, 0, 0, 0))
        / Raw(inner))


def gpe_frame(spi: int = SPI, si: int = 254, ttl: int = 60, ctx1: int = 0x0BADF00D,
              inner: bytes | None = None, options: bytes = b"", flags: int = 0x0C,
              next_proto: int = 4) -> bytes:
    inner = inner if inner is not None else bytes(IP(src=H_SRC, dst=H_DST) / TCP(
        sport=40000, dport=80) / Raw(b"g" * 40))
    nsh = bytes(NSH(ttl=ttl, spi=spi, si=si, nextproto=1,
                    context_header=struct.pack("!IIII", ctx1, 0, 0, 0)))
    ip = IP(src=REMOTE_IP, dst=LOCAL_IP, options=options) if options else IP(
        src=REMOTE_IP, dst=LOCAL_IP)
    return bytes(Ether(src=ROUTER_MAC, dst=MAC_RTR) / ip / UDP(sport=50000, dport=4790)
                 / VXLAN(flags=flags, NextProtocol=next_proto) / Raw(nsh + inner))


def drops(t: EbpfTarget) -> dict[str, int]:
    return {k: v.packets for k, v in t.drop_counters().items() if v.packets}


# ---- the Python reference hash ----

def test_crc32c_reference_vectors():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    key = IPv4Address("1.2.3.4").packed + IPv4Address("5.6.7.8").packed + b"\x06\x00\x50\x01\xbb"
    assert flow_hash("1.2.3.4", "5.6.7.8", 6, 80, 443) == crc32c(key)
    assert gpe_source_port(0xFFFFFFFF) == 0xFFFF and gpe_source_port(0) == 49152


def test_build_is_incremental_and_names_clang(monkeypatch):
    if shutil.which("clang") is None:
        skip_or_fail("clang not installed (make setup)")
    obj = ebpf_build.build()
    mtime = obj.stat().st_mtime_ns
    assert ebpf_build.build() == obj and obj.stat().st_mtime_ns == mtime  # up to date
    monkeypatch.setattr(ebpf_build.shutil, "which", lambda name: None)
    with pytest.raises(ebpf_build.BuildError, match="clang"):
        ebpf_build.build(force=True)
    assert obj.exists() and obj.stat().st_mtime_ns == mtime


def test_port_specs():
    assert [role_of_port(p) for p in (1, 2, 16, 63, 64, 511)] == [
        "router", "hostbridge", "vnf", "vnf", "host", "host"]
    p = make_port(16, ("v-a", 7, "02:00:00:00:00:01", "vnf", 1600))
    assert (p.ifname, p.ifindex, p.mac, p.role, p.mtu) == ("v-a", 7, bytes([2, 0, 0, 0, 0, 1]),
                                                            3, 1600)
    lo = make_port(64, "lo")  # by name: looked up in this network namespace
    assert lo.ifindex == 1 and lo.role == 4 and lo.mac == bytes(6) and lo.mtu > 0
    with pytest.raises(ValueError):
        make_port(16, "no-such-if0")
    with pytest.raises(ValueError):
        make_port(3, ("x", 5, "02:00:00:00:00:01", "pump"))


# ---- classification ----

def test_classify_pushes_nsh_and_goes_to_local_vnf(tgt):
    inner = IP(src=H_SRC, dst=H_DST) / UDP(sport=1234, dport=5678) / Raw(b"x" * 50)
    frame = Ether(src="02:00:00:00:99:01", dst=MAC_H_PORT) / inner
    res, dec = run(tgt, bytes(frame), IF_H)
    assert res.retval == TC_ACT_REDIRECT
    assert dec.egress_ifindex == IF_VA and dec.member == M_A
    out = Ether(res.data)
    assert out.dst == VNF_A_MAC and out.src == MAC_VA_PORT and out.type == 0x894F
    nsh = out[NSH]
    assert (nsh.ver, nsh.ttl, nsh.length, nsh.mdtype, nsh.nextproto) == (0, 63, 6, 1, 1)
    assert (nsh.spi, nsh.si) == (SPI, 255)
    ctx1, c2, c3, c4 = struct.unpack("!IIII", nsh.context_header)
    assert ctx1 == flow_hash(H_SRC, H_DST, 17, 1234, 5678) and (c2, c3, c4) == (0, 0, 0)
    assert bytes(nsh.payload) == bytes(inner)
    assert len(res.data) == len(bytes(frame)) + 24
    misc = tgt.misc_counters()
    assert misc["classified"].packets == 1 and misc["classified"].bytes == len(bytes(frame))
    assert tgt.member_counters()[M_A].packets == 1
    assert drops(tgt) == {}


def test_flow_hash_matches_c_for_many_tuples_and_ip_options(tgt):
    tgt.set_classifier([ClassifierRule(1, ANY, ANY, ANY, ANY, ANY, SPI)])
    rng = random.Random(7)
    for i in range(40):
        src = str(IPv4Address(rng.getrandbits(32)))
        dst = str(IPv4Address(rng.getrandbits(32)))
        sport, dport = rng.getrandbits(16), rng.getrandbits(16)
        kind = i % 4
        if kind == 0:
            inner, key = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport), (6, sport, dport)
        elif kind == 1:  # IP options: ports 0 (as connector.p4, which parses ihl 5 only)
            inner = IP(src=src, dst=dst, options=b"\x01\x01\x01\x00") / UDP(
                sport=sport, dport=dport)
            key = (17, 0, 0)
        elif kind == 2:  # not TCP/UDP: ports 0
            inner, key = IP(src=src, dst=dst, proto=47) / Raw(b"\x01\x02\x03\x04"), (47, 0, 0)
        elif i % 8 == 3:  # non-first fragment: ports 0
            inner, key = IP(src=src, dst=dst, frag=100) / UDP(sport=sport, dport=dport), (
                17, 0, 0)
        else:  # first fragment: ports
            inner, key = IP(src=src, dst=dst, flags="MF") / UDP(sport=sport, dport=dport), (
                17, sport, dport)
        res, _ = run(tgt, bytes(Ether() / inner), IF_H)
        assert res.retval == TC_ACT_REDIRECT
        ctx1 = struct.unpack("!I", Ether(res.data)[NSH].context_header[:4])[0]
        assert ctx1 == flow_hash(src, dst, *key), (i, inner.summary())


def test_classifier_priority_miss_and_non_ip(tgt):
    # both rules match 10.9.x.x:5678/udp; the higher priority (SPI 10) wins
    hit = Ether() / IP(src=H_SRC, dst="10.9.1.1") / UDP(sport=1, dport=5678)
    res, _ = run(tgt, bytes(hit), IF_H)
    assert res.retval == TC_ACT_REDIRECT and Ether(res.data)[NSH].spi == SPI
    # the lower one alone -> SPI 11 -> sff drop_packet() -> policy_drop
    res, dec = run(tgt, bytes(Ether() / IP(src=H_SRC, dst="10.9.1.1") / TCP(dport=22)), IF_H)
    assert res.retval == TC_ACT_SHOT and dec.drop_reason == "policy_drop"
    # no rule: plain IP to the kernel, untouched
    miss = bytes(Ether() / IP(src=H_SRC, dst=H_DST) / TCP(sport=5, dport=5678))
    res, _ = run(tgt, miss, IF_H)
    assert res.retval == TC_ACT_OK and res.data == miss
    # rules replaced: lower priority first in the list still loses
    tgt.set_classifier([
        ClassifierRule(1, ANY, ANY, ANY, ANY, ANY, 11),
        ClassifierRule(9, ANY, ANY, tern(6, 0xFF), ANY, ANY, SPI),
    ])
    res, _ = run(tgt, miss, IF_H)
    assert res.retval == TC_ACT_REDIRECT and Ether(res.data)[NSH].spi == SPI
    tgt.set_classifier([])
    res, _ = run(tgt, miss, IF_H)
    assert res.retval == TC_ACT_OK
    assert tgt.misc_counters()["classified"].packets == 3


# ---- forwarding ----

def test_vnf_to_remote_encap(tgt):
    ctx1 = 0xA5A51234
    inner = bytes(IP(src=H_SRC, dst=H_DST) / UDP(sport=9, dport=5678) / Raw(b"r" * 100))
    frame = nsh_frame(si=254, ttl=50, ctx1=ctx1, inner=inner)
    res, dec = run(tgt, frame, IF_VA)
    assert res.retval == TC_ACT_REDIRECT
    assert dec.egress_ifindex == IF_RTR and dec.member == M_R
    out = Ether(res.data)
    assert out.dst == ROUTER_MAC and out.src == MAC_RTR and out.type == 0x0800
    ip = out[IP]
    assert (ip.src, ip.dst, ip.ttl, ip.proto, int(ip.flags), ip.ihl) == (
        LOCAL_IP, REMOTE_IP, 64, 17, 2, 5)
    assert ip.len == len(res.data) - 14
    fresh = IP(bytes(ip))
    fresh.chksum = None
    assert IP(bytes(fresh)).chksum == ip.chksum  # scapy recomputes the same checksum
    udp = out[UDP]
    assert (udp.sport, udp.dport, udp.chksum) == (gpe_source_port(ctx1), 4790, 0)
    assert udp.len == ip.len - 20
    gpe = out[VXLAN]
    assert bytes(gpe)[:8] == bytes.fromhex("0c00000400000000")
    nsh = out[NSH]
    assert (nsh.spi, nsh.si, nsh.ttl) == (SPI, 254, 49)
    assert struct.unpack("!I", nsh.context_header[:4])[0] == ctx1
    assert bytes(nsh.payload) == inner
    assert len(res.data) == len(frame) + 36


@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x00"])
def test_router_decap_to_local_vnf(tgt, options):
    inner = bytes(IP(src=H_SRC, dst=H_DST) / TCP(sport=40000, dport=80) / Raw(b"d" * 33))
    frame = gpe_frame(si=255, ttl=40, ctx1=77, inner=inner, options=options)
    res, dec = run(tgt, frame, IF_RTR)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_VA
    out = Ether(res.data)
    assert out.dst == VNF_A_MAC and out.src == MAC_VA_PORT and out.type == 0x894F
    nsh = out[NSH]
    assert (nsh.spi, nsh.si, nsh.ttl) == (SPI, 255, 39)
    assert struct.unpack("!I", nsh.context_header[:4])[0] == 77
    assert bytes(nsh.payload) == inner
    assert len(res.data) == 14 + 24 + len(inner)


def test_gpe_needs_only_the_p_flag(tgt):
    res, dec = run(tgt, gpe_frame(si=255, flags=0x04), IF_RTR)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_VA


def test_router_transit_reencap(tgt):
    inner = bytes(IP(src=H_SRC, dst=H_DST) / UDP(sport=1, dport=2) / Raw(b"t" * 10))
    res, dec = run(tgt, gpe_frame(si=254, ttl=30, ctx1=0xFFFF0001, inner=inner), IF_RTR)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_RTR
    out = Ether(res.data)
    assert out[IP].src == LOCAL_IP and out[IP].dst == REMOTE_IP
    assert out[UDP].sport == gpe_source_port(0xFFFF0001)
    assert (out[NSH].si, out[NSH].ttl) == (254, 29)
    assert bytes(out[NSH].payload) == inner


@pytest.mark.parametrize("payload", [0, 1, 200, 218, 219, 600, 1400])
def test_end_of_chain_from_vnf_strips_nsh(tgt, payload):
    # a non-IP skb (0x894F): the strip moves the payload in 256-byte chunks
    inner = bytes(IP(src=H_SRC, dst=H_DST) / UDP(sport=3, dport=4) / Raw(
        bytes(i & 0xFF for i in range(payload))))
    res, dec = run(tgt, nsh_frame(si=253, inner=inner), IF_VA)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_RTR
    assert dec.member is None
    out = Ether(res.data)
    assert out.dst == ROUTER_MAC and out.src == MAC_RTR and out.type == 0x0800
    assert res.data[14:] == inner
    assert tgt.misc_counters()["end_of_chain"].packets == 1


def test_end_of_chain_from_router_decaps(tgt):
    inner = bytes(IP(src=H_SRC, dst=H_DST) / TCP(sport=7, dport=8) / Raw(b"e" * 70))
    res, dec = run(tgt, gpe_frame(si=253, inner=inner), IF_RTR)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_RTR
    assert res.data[:14] == _mac(ROUTER_MAC) + _mac(MAC_RTR) + b"\x08\x00"
    assert res.data[14:] == inner


def test_end_of_chain_right_after_classifier(tgt):
    tgt.set_sff(SPI, 255, SffAction("end_of_chain"))
    frame = bytes(Ether() / IP(src=H_SRC, dst=H_DST) / UDP(sport=1, dport=5678))
    res, dec = run(tgt, frame, IF_H)
    assert res.retval == TC_ACT_REDIRECT and dec.egress_ifindex == IF_RTR
    assert res.data[14:] == frame[14:] and res.data[:6] == _mac(ROUTER_MAC)


# ---- drops ----

def _raw_nsh(base: int, sp: int, rest: bytes = bytes(16)) -> bytes:
    return struct.pack("!II", base, sp) + rest


def _eth_nsh(body: bytes) -> bytes:
    return bytes(Ether(src=VNF_A_MAC, dst=MAC_VA_PORT, type=0x894F)) + body


BASE_OK = (0 << 30) | (63 << 22) | (6 << 16) | (1 << 8) | 1
INNER = bytes(IP(src=H_SRC, dst=H_DST) / UDP(sport=1, dport=2))

DROP_CASES = {
    "ttl_0": (IF_VA, lambda: nsh_frame(ttl=0), "ttl_expired"),
    "ttl_1": (IF_VA, lambda: nsh_frame(ttl=1), "ttl_expired"),
    "si_0": (IF_VA, lambda: nsh_frame(si=0), "si_zero"),
    "unknown_spi": (IF_VA, lambda: nsh_frame(spi=4242), "unknown_path"),
    "unknown_si": (IF_VA, lambda: nsh_frame(si=100), "unknown_path"),
    "bad_version": (IF_VA, lambda: _eth_nsh(_raw_nsh(BASE_OK | 1 << 30, SPI << 8 | 254) + INNER),
                    "bad_version"),
    "md_type_2": (IF_VA, lambda: _eth_nsh(
        _raw_nsh((63 << 22) | (2 << 16) | (2 << 8) | 1, SPI << 8 | 254, b"") + INNER),
        "bad_md_type"),
    "bad_length": (IF_VA, lambda: _eth_nsh(
        _raw_nsh((63 << 22) | (5 << 16) | (1 << 8) | 1, SPI << 8 | 254) + INNER),
        "bad_md_type"),
    "nsh_next_proto_ipv6": (IF_VA, lambda: _eth_nsh(
        _raw_nsh(BASE_OK + 1, SPI << 8 | 254) + INNER), "bad_md_type"),
    "inner_ipv4_truncated": (IF_VA, lambda: nsh_frame(inner=INNER[:19]), "truncated"),
    "nsh_4_bytes": (IF_VA, lambda: _eth_nsh(struct.pack("!I", BASE_OK)), "truncated"),
    "nsh_20_bytes": (IF_VA, lambda: _eth_nsh(_raw_nsh(BASE_OK, SPI << 8 | 254, bytes(12))),
                     "truncated"),
    "ipv4_on_vnf_port": (IF_VA, lambda: bytes(Ether() / IP() / UDP()), "not_nsh"),
    "ipv6_on_vnf_port": (IF_VA, lambda: bytes(Ether() / IPv6() / UDP()), "not_nsh"),
    "gpe_truncated": (IF_RTR, lambda: gpe_frame()[: 14 + 20 + 8 + 4], "truncated"),
    "gpe_nsh_truncated": (IF_RTR, lambda: gpe_frame()[: 14 + 20 + 8 + 8 + 12], "truncated"),
    "gpe_no_p_flag": (IF_RTR, lambda: gpe_frame(flags=0x08), "bad_gpe"),
    "gpe_next_proto_ipv4": (IF_RTR, lambda: gpe_frame(next_proto=1), "bad_gpe"),
    "gpe_ttl_0": (IF_RTR, lambda: gpe_frame(ttl=0), "ttl_expired"),
    "no_group": (IF_VA, lambda: nsh_frame(si=252), "no_instance"),
    "too_big_for_router_link": (IF_VA, lambda: nsh_frame(inner=bytes(
        IP(src=H_SRC, dst=H_DST) / UDP() / Raw(bytes(1600 - 60 - 28 + 1)))), "too_big"),
    # (BPF_PROG_TEST_RUN itself refuses IPv4 frames shorter than 34 bytes)
    "host_bad_ihl": (IF_H, lambda: bytes(Ether() / IP(ihl=4) / UDP()), "truncated"),
    "host_truncated_udp": (IF_H, lambda: bytes(Ether() / IP(proto=17)), "truncated"),
}


@pytest.mark.parametrize("case", sorted(DROP_CASES))
def test_drops_are_counted(tgt, case):
    ifindex, make, reason = DROP_CASES[case]
    frame = make()
    res, dec = run(tgt, frame, ifindex)
    assert res.retval == TC_ACT_SHOT
    assert dec.drop_reason == reason and dec.egress_ifindex == 0
    assert drops(tgt) == {reason: 1}
    assert tgt.drop_counters()[reason].bytes == len(frame)
    assert not any(c.packets for c in tgt.member_counters().values())


def test_exact_mtu_fits(tgt):
    inner = bytes(IP(src=H_SRC, dst=H_DST) / UDP() / Raw(bytes(1600 - 60 - 28)))
    res, _ = run(tgt, nsh_frame(inner=inner), IF_VA)
    assert res.retval == TC_ACT_REDIRECT and len(res.data) == 14 + 1600


# ---- what goes to the kernel ----

ARP_FRAME = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=LOCAL_IP, pdst="10.1.0.1")


@pytest.mark.parametrize("ifindex", [IF_RTR, IF_RTRH, IF_VA, IF_H])
def test_arp_passes_on_every_port(tgt, ifindex):
    frame = bytes(ARP_FRAME)
    res, _ = run(tgt, frame, ifindex)
    assert res.retval == TC_ACT_OK and res.data == frame
    assert drops(tgt) == {}


def test_to_the_kernel(tgt):
    cases = [
        (IF_VA, Ether() / IPv6(src="fe80::1", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fe80::2")),
        (IF_RTR, Ether() / IP(src=REMOTE_IP, dst="10.1.0.1") / UDP(dport=4790)),  # not to us
        (IF_RTR, Ether() / IP(src=REMOTE_IP, dst=LOCAL_IP) / UDP(dport=53)),
        (IF_RTR, Ether() / IP(src=REMOTE_IP, dst=LOCAL_IP) / TCP(dport=4790)),
        (IF_RTR, Ether() / IPv6() / UDP(dport=4790)),
        (IF_RTRH, Ether() / IP(src=H_SRC, dst=H_DST) / UDP(dport=5678)),  # never classified
        (IF_H, Ether() / IPv6() / UDP(dport=5678)),
        (4242, Ether(type=0x894F) / NSH()),  # not a connector port
    ]
    for ifindex, pkt in cases:
        frame = bytes(pkt)
        res, _ = run(tgt, frame, ifindex)
        assert res.retval == TC_ACT_OK and res.data == frame, pkt.summary()
    assert drops(tgt) == {}


def test_malformed_input_is_never_more_than_a_drop(tgt):
    rng = random.Random(3)
    seeds = [gpe_frame(), nsh_frame(), bytes(Ether() / IP(src=H_SRC, dst=H_DST) / UDP(
        dport=5678) / Raw(b"z" * 20))]
    for _ in range(300):
        frame = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            frame[rng.randrange(12, len(frame))] = rng.getrandbits(8)
        # test run refuses IPv4 < 34 and IPv6 < 54 bytes, so cut no shorter than that
        frame = frame[: rng.randint(54, len(frame))]
        for ifindex in (IF_RTR, IF_VA, IF_H):
            res, dec = run(tgt, bytes(frame), ifindex)
            assert res.retval in (TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT)
            if res.retval == TC_ACT_SHOT:
                assert dec.drop_reason in DROP_REASONS


# ---- instance selection ----

def test_flow_cache_keeps_flow_on_its_member_after_weight_change(tgt):
    tgt.set_group(SVC_LOCAL, [(M_A, 1), (M_B, 1)])
    # ctx1 % 2 picks the slot: even -> A, odd -> B
    res, dec = run(tgt, nsh_frame(spi=SPI, si=255, ctx1=1001), IF_RTRH)  # hostbridge: passes
    assert res.retval == TC_ACT_OK
    res, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_B and dec.egress_ifindex == IF_VB
    assert tgt.flow_cache_entry(1001, SVC_LOCAL) == M_B
    # weights now strongly favour A: the cached flow stays on B, a new odd flow goes to A
    tgt.set_group(SVC_LOCAL, [(M_A, 63), (M_B, 1)])
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_B
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1003), IF_VB)
    assert dec.member == M_A  # 1003 % 64 = 43 -> A's slots 0..62
    # B leaves the group: the cached entry is ignored and replaced
    tgt.set_group(SVC_LOCAL, [(M_A, 1)])
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_A and tgt.flow_cache_entry(1001, SVC_LOCAL) == M_A
    # flow cache off: pure hash
    tgt.set_group(SVC_LOCAL, [(M_A, 1), (M_B, 1)])
    tgt.set_cache_timeout(0)
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_B


def test_draining_member_keeps_its_cached_flows_and_gets_no_new_one(tgt):
    """Weight 0 (PIPELINE.md): never chosen for a new flow, but a flow the cache holds
    on it stays; with every member draining, cached flows still pass, new ones drop."""
    tgt.set_group(SVC_LOCAL, [(M_A, 1), (M_B, 1)])
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)  # odd -> B
    assert dec.member == M_B
    tgt.set_group(SVC_LOCAL, [(M_A, 1), (M_B, 0)])  # B drains
    assert tgt.read_state().groups[SVC_LOCAL] == [(M_A, 1), (M_B, 0)]
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_B  # the existing flow stays
    for ctx1 in range(2001, 2041, 2):  # new flows that the hash would have put on B
        _, dec = run(tgt, nsh_frame(si=255, ctx1=ctx1), IF_VB)
        assert dec.member == M_A, ctx1
    tgt.set_group(SVC_LOCAL, [(M_A, 0), (M_B, 0)])  # both drain
    _, dec = run(tgt, nsh_frame(si=255, ctx1=1001), IF_VB)
    assert dec.member == M_B
    res, dec = run(tgt, nsh_frame(si=255, ctx1=4243), IF_VB)  # a new flow: nowhere to go
    assert res.retval == TC_ACT_SHOT and dec.drop_reason == "no_instance"


def test_wcmp_shares_follow_weights(tgt):
    tgt.set_cache_timeout(0)
    rng = random.Random(11)
    for weights in ([5, 20, 39], [1, 2], [3, 3, 1]):
        members = list(zip([M_A, M_B, M_R][: len(weights)], weights, strict=True))
        tgt.set_group(SVC_LOCAL, members)
        tgt.clear_counters()
        expansion = [m for m, w in members for _ in range(w)]
        n_flows = 2400
        template = bytearray(nsh_frame(si=255, ttl=63))
        picks: Tally[int] = Tally()
        for i in range(n_flows):
            ctx1 = rng.getrandbits(32)
            template[14 + 8: 14 + 12] = ctx1.to_bytes(4, "big")
            if i < 100:  # the exact slot rule, decision by decision
                _, dec = run(tgt, bytes(template), IF_VA)
                assert dec.member == expansion[ctx1 % len(expansion)]
            else:
                tgt.test_run(bytes(template), IF_VA)
            picks[expansion[ctx1 % len(expansion)]] += 1
        counted = {m: c.packets for m, c in tgt.member_counters().items() if c.packets}
        assert counted == dict(picks)
        total = sum(weights)
        for m, w in members:
            share = counted.get(m, 0) / n_flows
            assert abs(share - w / total) <= 0.03, (weights, m, share)


def test_remote_arrival_uses_its_own_select_slot(tgt):
    """A packet decapsulated from port 1 for service S uses slot S + 256, everything else
    slot S: a flow another connector sent here stays on a local instance."""
    # slot S would send the flow on to the remote connector; slot S + 256 has VNF A only
    tgt.set_group(SVC_LOCAL, [(M_R, 1)])
    tgt.set_group(SVC_LOCAL + REMOTE_ARRIVAL, [(M_A, 1)])
    ctx1 = 0x600D
    inner = bytes(IP(src=H_SRC, dst=H_DST) / TCP(sport=40000, dport=80) / Raw(b"k" * 20))
    res, dec = run(tgt, gpe_frame(si=255, ctx1=ctx1, inner=inner), IF_RTR)
    assert res.retval == TC_ACT_REDIRECT
    assert dec.member == M_A and dec.egress_ifindex == IF_VA
    assert Ether(res.data).dst == VNF_A_MAC and bytes(Ether(res.data)[NSH].payload) == inner
    # the same flow and service from a VNF (from_remote 0) uses slot S: the remote member
    res, dec = run(tgt, nsh_frame(si=255, ctx1=ctx1), IF_VB)
    assert dec.member == M_R and dec.egress_ifindex == IF_RTR
    # and classified on a host port (from_remote 0) too
    frame = Ether() / IP(src=H_SRC, dst=H_DST) / UDP(sport=1234, dport=5678)
    res, dec = run(tgt, bytes(frame), IF_H)
    assert dec.member == M_R and dec.egress_ifindex == IF_RTR
    # the flow cache keeps the two lookups apart (no aliasing between the slots)
    assert tgt.flow_cache_entry(ctx1, SVC_LOCAL, from_remote=1) == M_A
    assert tgt.flow_cache_entry(ctx1, SVC_LOCAL, from_remote=0) == M_R
    for _ in range(2):
        _, dec = run(tgt, gpe_frame(si=255, ctx1=ctx1), IF_RTR)
        assert dec.member == M_A
        _, dec = run(tgt, nsh_frame(si=255, ctx1=ctx1), IF_VA)
        assert dec.member == M_R
    # WCMP inside the remote-arrival slot works as in any other
    tgt.set_group(SVC_LOCAL + REMOTE_ARRIVAL, [(M_A, 1), (M_B, 1)])
    tgt.set_cache_timeout(0)
    for c in (4, 5):
        _, dec = run(tgt, gpe_frame(si=255, ctx1=c), IF_RTR)
        assert dec.member == (M_A, M_B)[c % 2]
    # an empty or missing slot S + 256 drops the remote arrival even though slot S is set
    tgt.set_group(SVC_LOCAL + REMOTE_ARRIVAL, [])
    res, dec = run(tgt, gpe_frame(si=255), IF_RTR)
    assert res.retval == TC_ACT_SHOT and dec.drop_reason == "no_instance"
    tgt.delete_group(SVC_LOCAL + REMOTE_ARRIVAL)
    res, dec = run(tgt, gpe_frame(si=255), IF_RTR)
    assert res.retval == TC_ACT_SHOT and dec.drop_reason == "no_instance"
    _, dec = run(tgt, nsh_frame(si=255), IF_VA)
    assert dec.member == M_R
    assert drops(tgt) == {"no_instance": 2}
    # the highest slot exists (service 255 from a remote connector)
    tgt.set_sff(SPI, 200, SffAction("to_service", 255))
    tgt.set_group(SELECT_SLOTS - 1, [(M_B, 1)])
    _, dec = run(tgt, gpe_frame(si=200), IF_RTR)
    assert dec.member == M_B and dec.egress_ifindex == IF_VB
    _, dec = run(tgt, nsh_frame(si=200), IF_VA)
    assert dec.drop_reason == "no_instance"


# ---- target API ----

def test_limits_and_errors(tgt):
    rule = ClassifierRule(1, ANY, ANY, ANY, ANY, ANY, 1)
    with pytest.raises(TargetError) as e:
        tgt.set_classifier([rule] * 65)
    assert e.value.code == "RESOURCE_EXHAUSTED"
    tgt.set_classifier([rule] * 64)
    with pytest.raises(TargetError) as e:
        tgt.set_group(SVC_LOCAL, [(M_A, 40), (M_B, 25)])
    assert e.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(TargetError) as e:
        tgt.set_group(SVC_LOCAL, [(M_A, -1)])
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TargetError) as e:
        tgt.set_group(SVC_LOCAL, [(999, 1)])
    assert e.value.code == "NOT_FOUND"
    for slot in (SELECT_SLOTS, -1):
        with pytest.raises(TargetError) as e:
            tgt.set_group(slot, [(M_A, 1)])
        assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TargetError) as e:
        tgt.set_member(1024, Member("remote", endpoint=IPv4Address(REMOTE_IP)))
    assert e.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(TargetError) as e:
        tgt.set_member(5, Member("local", port=99, dmac=_mac(VNF_A_MAC)))
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TargetError) as e:
        tgt.delete_member(M_A)
    assert e.value.code == "FAILED_PRECONDITION"
    with pytest.raises(TargetError) as e:
        tgt.delete_sff(99, 1)
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(TargetError) as e:
        tgt.delete_group(SVC_EMPTY)
    assert e.value.code == "NOT_FOUND"
    for i in range(4096 - 5):
        tgt.set_sff(1000 + i, 1, SffAction("end_of_chain"))
    with pytest.raises(TargetError) as e:
        tgt.set_sff(99999, 1, SffAction("end_of_chain"))
    assert e.value.code == "RESOURCE_EXHAUSTED"
    tgt.set_sff(SPI, 253, SffAction("end_of_chain"))  # an existing entry can still change
    tgt.delete_group(SVC_LOCAL)
    with pytest.raises(TargetError) as e:
        tgt.delete_member(M_A)  # still in slot SVC_LOCAL + 256
    assert e.value.code == "FAILED_PRECONDITION"
    tgt.delete_group(SVC_LOCAL + REMOTE_ARRIVAL)
    tgt.delete_member(M_A)
    _, dec = run(tgt, nsh_frame(si=255), IF_VA)
    assert dec.drop_reason == "no_instance"


def test_open_pinned_finds_the_running_pipeline(tgt, monkeypatch):
    tgt.set_group(SVC_LOCAL, [(M_A, 3), (M_B, 5)])
    tgt.set_group(SVC_EMPTY, [])
    again = EbpfTarget.open_pinned(tgt.pin_dir)
    try:
        st, mine = again.read_state(), tgt.read_state()
        assert st == mine
        assert st.config.local_ip == IPv4Address(LOCAL_IP)
        assert st.groups == {SVC_LOCAL: [(M_A, 3), (M_B, 5)], SVC_REMOTE: [(M_R, 1)],
                             SVC_EMPTY: [], SVC_LOCAL + REMOTE_ARRIVAL: [(M_A, 1)],
                             SVC_REMOTE + REMOTE_ARRIVAL: [(M_R, 1)]}
        assert st.sff[(SPI, 253)] == SffAction("end_of_chain")
        assert st.members[M_R] == Member("remote", endpoint=IPv4Address(REMOTE_IP))
        assert [r.spi for r in st.rules] == [SPI, 11]
        assert sorted(again.ports) == sorted(PORTS)
        assert again.ports[16].ifindex == IF_VA and again.ports[16].mtu == 1600
        # the reopened handle drives the same maps
        again.set_group(SVC_LOCAL, [(M_B, 1)])
        _, dec = run(tgt, nsh_frame(si=255, ctx1=4), IF_VA)
        assert dec.member == M_B
        assert again.member_counters()[M_B].packets == 1
    finally:
        again.close()
    with pytest.raises(FileExistsError):
        EbpfTarget(tgt.object_path, tgt.pin_dir, PORTS).load()
    # a pipeline pinned by a build with another groups map (e.g. 256 slots) is refused
    with monkeypatch.context() as m:
        m.setitem(ebpf_target.MAP_ENTRIES, "groups", MAX_SERVICES)
        with pytest.raises(TargetError, match=r"groups .* has 512 entries") as e:
            EbpfTarget.open_pinned(tgt.pin_dir)
        assert e.value.code == "FAILED_PRECONDITION"
    # a restarted server: load_or_open adopts the tables and rewrites its ports
    ports = dict(PORTS)
    ports[18] = ("v-c", 1018, "02:00:00:01:00:12", "vnf", 1500)
    third = EbpfTarget(tgt.object_path, tgt.pin_dir, ports, cache_timeout_s=0.5)
    try:
        assert third.load_or_open() is True
        st = third.read_state()
        assert st.groups[SVC_LOCAL] == [(M_B, 1)] and st.cache_timeout_s == 0.5
        third.set_member(7, Member("local", port=18, dmac=_mac(VNF_B_MAC)))
        third.set_group(SVC_LOCAL, [(7, 1)])
        _, dec = run(tgt, nsh_frame(si=255, ctx1=5), IF_VA)
        assert dec.egress_ifindex == 1018
    finally:
        third.close()
