"""The scapy service (vnf/scapy_service.py): user modules on frames, bytes in -> bytes out.

The shipped examples (vnfs/), the ctx, drops, length changes (also through the I/O
loops), errors in user code (the VNF goes on, ``vnf_error``, one log per distinct
error), modules that cannot be used at start (exit 3 with the error), re-encoding.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Ether, IPOption_RR, IPv6, Raw, load_contrib

load_contrib("nsh")
from scapy.contrib.nsh import NSH  # noqa: E402

from vnf import cli, packetio  # noqa: E402
from vnf.fastpath import FORWARD, REASONS, Processor, forwarded_length  # noqa: E402
from vnf.scapy_service import Context, ScapyService, checksum, encode  # noqa: E402
from vnf.stats import StatsWriter  # noqa: E402
from vnf.usermodule import MAX_ERROR_KINDS, ModuleError, load_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VNFS = ROOT / "vnfs"
VNF_MAC = "02:00:00:00:00:aa"
CONN_MAC = "02:00:00:00:00:cc"
CTX1 = 0x1A2B3C4D


def inner(payload: bytes = b"hello world", dport: int = 5001, src: str = "10.1.100.10",
          tos: int = 0) -> IP:
    return (IP(src=src, dst="10.3.100.10", tos=tos) / UDP(sport=1234, dport=dport)
            / Raw(payload))


def frame(pkt: IP | None = None, *, spi: int = 10, si: int = 254, ctx1: int = CTX1,
          **kwargs: object) -> bytes:
    ip = pkt if pkt is not None else inner(**kwargs)  # type: ignore[arg-type]
    ctx = struct.pack("!IIII", ctx1, 0, 0, 0)
    return bytes(Ether(dst=VNF_MAC, src=CONN_MAC) / NSH(spi=spi, si=si, context_header=ctx)
                 / ip)


def write(tmp_path: Path, text: str, name: str = "mod.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def service(path: Path, params: dict | None = None, **kwargs: object) -> ScapyService:
    return ScapyService.from_file(path, params, **kwargs)  # type: ignore[arg-type]


def proc(svc: ScapyService, **kwargs: object) -> Processor:
    return Processor(VNF_MAC, svc, **kwargs)  # type: ignore[arg-type]


def drops(p: Processor) -> dict[str, int]:
    return {k: v for k, v in p.drop_counts().items() if v}


def check_inner(out: bytes) -> IP:
    """The inner packet of a sent frame, after checking its framing and checksums."""
    eth = Ether(out)
    assert eth.dst == CONN_MAC and eth.src == VNF_MAC and eth.type == 0x894F
    ip = eth[NSH].payload
    assert isinstance(ip, IP)
    raw_ip = out[38:]
    assert ip.len == len(raw_ip)
    assert checksum(raw_ip, 0, ip.ihl * 4) == 0  # a valid header checksum sums to 0
    rebuilt = IP(raw_ip)
    for layer in (UDP, TCP, ICMP):
        if layer in rebuilt and layer is not ICMP:
            fresh = IP(raw_ip)
            del fresh[layer].chksum
            assert IP(bytes(fresh))[layer].chksum == rebuilt[layer].chksum, layer
    if UDP in rebuilt:
        assert rebuilt[UDP].len == len(raw_ip) - ip.ihl * 4
    return ip


# -- the shipped examples ----------------------------------------------------------------

def test_passthrough_example_sends_the_packet_on_unchanged() -> None:
    p = proc(service(VNFS / "passthrough.py"))
    f = frame(si=200)
    out = p.handle(f)
    assert out is not None and len(out) == len(f)
    assert out[38:] == f[38:] and Ether(out)[NSH].si == 199
    assert out[14:21] == f[14:21] and out[22:38] == f[22:38]  # NSH but the SI unchanged
    assert drops(p) == {} and p.packets_out == 1


def test_dscp_marker_example_marks_every_packet_keeping_ecn() -> None:
    svc = service(VNFS / "dscp_marker.py", {"dscp": 46})
    p = proc(svc)
    out = p.handle(frame(tos=0x03))
    assert out is not None
    ip = check_inner(out)
    assert ip.tos == 46 << 2 | 0x03
    assert bytes(ip[UDP].payload) == b"hello world"
    assert svc.stats()["user"] == {"dscp": 46, "marked": 1}


def test_dscp_marker_example_only_the_given_ports() -> None:
    svc = service(VNFS / "dscp_marker.py", {"dscp": 10, "dports": [5001]})
    p = proc(svc)
    assert check_inner(p.handle(frame(dport=5001)) or b"").tos == 40
    assert check_inner(p.handle(frame(dport=80)) or b"").tos == 0
    with pytest.raises(ModuleError, match=r"dscp must be 0\.\.63"):
        service(VNFS / "dscp_marker.py", {"dscp": 64})


def test_dpi_example_drops_matching_payloads(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    svc = service(VNFS / "dpi.py", {"pattern": "attack"})
    p = proc(svc)
    assert p.handle(frame(payload=b"an attack here")) is None
    assert p.handle(frame(payload=b"an attack again")) is None
    assert p.handle(frame(payload=b"benign")) is not None
    assert drops(p) == {"policy_drop": 2}
    assert svc.stats()["returned_none"] == 2
    assert svc.stats()["user"] == {"pattern": b"attack".hex(), "action": "drop",
                                   "matched": 2}
    found = [r for r in caplog.records if "pattern found" in r.getMessage()]
    assert len(found) == 1 and r"1a2b3c4d" in found[0].getMessage()  # once per flow
    assert found[0].name == "vnf.user.dpi"


def test_dpi_example_marks_instead_of_dropping() -> None:
    p = proc(service(VNFS / "dpi.py", {"hex": "deadbeef", "action": "mark", "dscp": 8}))
    out = p.handle(frame(payload=b"xx\xde\xad\xbe\xefyy"))
    assert out is not None and check_inner(out).tos == 32
    out = p.handle(frame(payload=b"clean"))
    assert out is not None and check_inner(out).tos == 0
    with pytest.raises(ModuleError, match="exactly one of pattern"):
        service(VNFS / "dpi.py", {})


def test_rate_meter_example_logs_each_flows_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = [100.0]
    svc = service(VNFS / "rate_meter.py", {"period_s": 2}, clock=lambda: clock[0])
    p = proc(svc)
    for i in range(41):  # 20 packets/s for 2 s on one flow, 1 packet of another
        clock[0] = 100.0 + i * 0.05
        f = frame()
        out = p.handle(f)
        assert out is not None and out[38:] == f[38:]
    p.handle(frame(ctx1=7))
    lines = [r.getMessage() for r in caplog.records if r.name == "vnf.user.rate_meter"]
    assert len(lines) == 1
    assert "flow 1a2b3c4d 10.1.100.10 -> 10.3.100.10 (spi 10): 20.5 packets/s" in lines[0]
    assert svc.stats()["user"] == {"period_s": 2.0, "reports": 1}


# -- the contract ------------------------------------------------------------------------

SPY = """
    seen = []
    params_given = []

    def setup(params):
        params_given.append(params)

    def process(pkt, ctx):
        ctx.flow["n"] = ctx.flow.get("n", 0) + 1
        seen.append((type(pkt).__name__, pkt.src, ctx.flow_hash, ctx.spi, ctx.si,
                     dict(ctx.flow), ctx.now, ctx.params, ctx.log.name))
        return pkt
"""


def test_ctx_gives_flow_hash_spi_si_a_per_flow_dict_time_params_log(tmp_path: Path) -> None:
    svc = service(write(tmp_path, SPY, "spy.py"), {"k": [1, 2]}, clock=lambda: 42.5)
    p = proc(svc)
    p.handle(frame(spi=77, si=250))
    p.handle(frame(spi=77, si=250, ctx1=5))
    p.handle(frame(spi=77, si=249))
    seen = svc.module.module.seen
    assert seen == [
        ("IP", "10.1.100.10", CTX1, 77, 250, {"n": 1}, 42.5, {"k": [1, 2]}, "vnf.user.spy"),
        ("IP", "10.1.100.10", 5, 77, 250, {"n": 1}, 42.5, {"k": [1, 2]}, "vnf.user.spy"),
        ("IP", "10.1.100.10", CTX1, 77, 249, {"n": 2}, 42.5, {"k": [1, 2]}, "vnf.user.spy"),
    ]
    assert svc.module.module.params_given == [{"k": [1, 2]}]
    assert isinstance(svc.ctx, Context) and "flow_hash=1a2b3c4d" in repr(svc.ctx)
    assert svc.module.hooks == ["process", "setup"]


def test_per_flow_dicts_are_bounded_least_recently_seen_first_out(tmp_path: Path) -> None:
    svc = service(write(tmp_path, SPY, "spy.py"), flows_max=2)
    p = proc(svc)
    for ctx1 in (1, 2, 1, 3):
        p.handle(frame(ctx1=ctx1))
    assert list(svc.flow_state) == [1, 3] and svc.flows_evicted == 1
    assert svc.flow_state[1] == {"n": 2}
    assert svc.stats()["flows_tracked"] == 2


def test_returning_none_drops_as_policy_drop(tmp_path: Path) -> None:
    svc = service(write(tmp_path, "def process(pkt, ctx):\n    return None\n"))
    p = proc(svc)
    assert p.handle(frame()) is None
    assert drops(p) == {"policy_drop": 1} and svc.returned_none == 1 and svc.calls == 1


def test_a_new_packet_may_be_returned(tmp_path: Path) -> None:
    path = write(tmp_path, """
        from scapy.layers.inet import IP, TCP
        def process(pkt, ctx):
            return IP(src=pkt.dst, dst=pkt.src, ttl=9) / TCP(dport=80, flags="S")
    """)
    out = proc(service(path)).handle(frame())
    assert out is not None
    ip = check_inner(out)
    assert (ip.src, ip.dst, ip.ttl, ip[TCP].dport) == ("10.3.100.10", "10.1.100.10", 9, 80)
    assert len(out) == 38 + 40


GROW = """
    from scapy.packet import Raw
    def process(pkt, ctx):
        pkt[Raw].load = pkt[Raw].load * ctx.params["times"]
        return pkt
"""


@pytest.mark.parametrize("times", [3, 0])
def test_length_changes_rebuild_the_framing(tmp_path: Path, times: int) -> None:
    svc = service(write(tmp_path, GROW), {"times": times})
    p = proc(svc)
    f = frame(si=9, payload=b"0123456789")
    out = p.handle(f)
    assert out is not None and len(out) == len(f) + 10 * (times - 1)
    assert Ether(out)[NSH].si == 8 and out[14:21] == f[14:21] and out[22:38] == f[22:38]
    ip = check_inner(out)
    assert bytes(ip[UDP].payload) == b"0123456789" * times
    assert svc.resized == 1 and p.bytes_out == len(out) and drops(p) == {}


def test_resized_frames_keep_their_neighbours_in_a_shared_buffer(tmp_path: Path) -> None:
    svc = service(write(tmp_path, GROW), {"times": 2}, room=200)
    f = frame(payload=b"abcdefgh")
    buf = bytearray(b"\xee" * 10 + f + b"\xee" * (200 - len(f)) + b"\xff" * 50)
    verdict = proc(svc).process(buf, 10, len(f))
    n = forwarded_length(verdict, len(f))
    assert n == len(f) + 8 and buf[:10] == b"\xee" * 10 and buf[210:] == b"\xff" * 50
    assert bytes(check_inner(bytes(buf[10:10 + n]))[UDP].payload) == b"abcdefgh" * 2


def test_a_packet_longer_than_the_slot_is_a_vnf_error(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    svc = service(write(tmp_path, GROW), {"times": 100}, room=512)
    p = proc(svc)
    assert p.handle(frame(payload=b"0123456789")) is None
    assert p.handle(frame(payload=b"01234567890")) is None
    assert drops(p) == {"vnf_error": 2}
    [error] = svc.stats()["errors"]
    assert "returned a packet of 1028 bytes" in error["error"] and error["count"] == 2
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


IO_KINDS = ["simple"] + (["mmsg"] if packetio.mmsg_available() else [])


@pytest.mark.parametrize("kind", IO_KINDS)
def test_io_loops_send_resized_frames_at_their_new_length(tmp_path: Path, kind: str) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.settimeout(2.0)
        svc = service(write(tmp_path, GROW), {"times": 2}, room=2048)
        p = proc(svc)
        cls = packetio.MmsgIO if kind == "mmsg" else packetio.SimpleIO
        io = cls(b, p, batch=8, slot=2048, timeout=0.05)
        sizes = [4, 40, 400]
        for size in sizes:
            a.send(frame(payload=bytes(range(size % 256)) * (size // 256 + 1)))
        got = 0
        while got < len(sizes):
            got += io.poll()
        out = [a.recv(4096) for _ in sizes]
        for f, size in zip(out, sizes, strict=True):
            payload_len = len(bytes(range(size % 256)) * (size // 256 + 1))
            assert len(f) == 38 + 28 + 2 * payload_len
            check_inner(f)
        assert p.packets_out == 3 and p.bytes_out == sum(len(f) for f in out)


@pytest.mark.parametrize("bad", [
    frame(IPv6(dst="::1") / UDP()),  # next protocol says IPv4 but it is not
    frame()[:38] + b"\x45\x00\x00\xff" + frame()[42:],  # total length beyond the frame
    frame()[:38] + b"\x44" + frame()[39:],  # header length 16
    frame()[:17] + b"\x02" + frame()[18:],  # NSH next protocol IPv6
    frame()[:50],  # cut inside the IPv4 header
])
def test_not_ipv4_inside_is_bad_inner_without_calling_the_module(tmp_path: Path,
                                                                 bad: bytes) -> None:
    svc = service(write(tmp_path, SPY, "spy.py"))
    p = proc(svc)
    assert p.handle(bad) is None
    assert drops(p) == {"bad_inner": 1} and svc.module.module.seen == []


def test_ethernet_padding_is_not_handed_over_nor_sent(tmp_path: Path) -> None:
    svc = service(write(tmp_path, SPY, "spy.py"))
    f = frame(payload=b"")
    out = proc(svc).handle(f + b"\0" * 8)
    assert out == proc(service(VNFS / "passthrough.py")).handle(f)


# -- errors in user code -------------------------------------------------------------------

EVERY_TENTH = """
    count = 0
    def process(pkt, ctx):
        global count
        count += 1
        if count % 10 == 0:
            raise ValueError(f"packet {count} is unlucky")
        return pkt
"""


def test_an_exception_every_tenth_packet(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, EVERY_TENTH, "unlucky.py")
    svc = service(path)
    p = proc(svc)
    sent = [p.handle(frame(ctx1=i)) for i in range(100)]
    assert sum(out is not None for out in sent) == 90
    assert all(out is None for out in sent[9::10])
    assert drops(p) == {"vnf_error": 10}
    assert p.packets_in == 100 and p.packets_out == 90
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # once per distinct error, not per packet
    text = errors[0].getMessage()
    assert "unlucky.py: process raised ValueError: packet 10 is unlucky at unlucky.py:7" in text
    assert "Traceback (most recent call last)" in text
    assert 'raise ValueError(f"packet {count} is unlucky")' in text
    assert "vnf/scapy_service.py" not in text  # the user's frames only
    stats = svc.stats()
    assert stats["vnf_errors"] == 10 and stats["calls"] == 100
    assert stats["errors"] == [{"hook": "process", "error": "ValueError: packet 10 is unlucky",
                                "where": "unlucky.py:7", "count": 10}]


def test_distinct_errors_are_logged_once_each(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, """
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether
        def process(pkt, ctx):
            kind = ctx.flow_hash % 5
            if kind == 0:
                return {}["missing"]
            if kind == 1:
                return 1 / 0
            if kind == 2:
                return IPv6()
            if kind == 3:
                return bytes(pkt)
            return Ether() / pkt
    """)
    svc = service(path)
    p = proc(svc)
    for i in range(50):
        assert p.handle(frame(ctx1=i)) is None
    assert drops(p) == {"vnf_error": 50}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 5
    assert any("returned a scapy IPv6 packet, expected an IPv4 packet" in e for e in errors)
    assert any("returned a value of type bytes" in e for e in errors)
    assert any("returned a scapy Ether packet" in e for e in errors)
    assert {e["count"] for e in svc.stats()["errors"]} == {10}
    json.dumps(svc.stats())


def test_error_kinds_are_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = "\n".join(f"    if ctx.flow_hash == {i}: raise KeyError({i})"
                      for i in range(MAX_ERROR_KINDS + 5))
    svc = service(write(tmp_path, f"def process(pkt, ctx):\n{lines}\n    return pkt\n"))
    p = proc(svc)
    for i in range(MAX_ERROR_KINDS + 5):
        p.handle(frame(ctx1=i))
    assert len(svc.stats()["errors"]) == MAX_ERROR_KINDS and svc.errors.other == 5
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == MAX_ERROR_KINDS + 1


def test_tick_and_stats_hooks_and_their_errors(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, """
        ticks = []
        def process(pkt, ctx):
            return pkt
        def tick(now):
            ticks.append(now)
            if len(ticks) > 1:
                raise RuntimeError("tick failed")
        def stats():
            if len(ticks) > 2:
                return {"not json": object()}
            return {"ticks": len(ticks)}
    """)
    svc = service(path)
    for now in (1.0, 2.0, 3.0):
        svc.tick(now, {})
    assert svc.module.module.ticks == [1.0, 2.0, 3.0]
    stats = svc.stats()
    assert "user" not in stats and stats["hook_errors"] == 3  # 2 ticks, 1 stats
    assert [e["hook"] for e in stats["errors"]] == ["tick", "stats"]
    assert "returned what JSON cannot hold" in stats["errors"][1]["error"]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


def test_stats_file_counts_vnf_error_and_holds_the_module_stats(tmp_path: Path) -> None:
    svc = service(write(tmp_path, EVERY_TENTH, "unlucky.py"))
    p = proc(svc)
    for i in range(20):
        p.handle(frame(ctx1=i))
    data = StatsWriter(tmp_path / "s.json", p, name="u1", iface="eth0").write()
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["service"] == "scapy" and saved["dropped"]["vnf_error"] == 2
    assert saved["dropped"] == {r: 0 for r in REASONS} | {"vnf_error": 2}
    assert saved["service_stats"]["module"] == str(tmp_path / "unlucky.py")
    assert data["packets_in"] == saved["packets_out"] + saved["dropped_total"]


# -- modules that cannot be used: fail at start --------------------------------------------

BAD_MODULES = {
    "syntax": ("def process(pkt, ctx)\n    return pkt\n", "does not import: SyntaxError"),
    "import": ("import no_such_module_here\ndef process(pkt, ctx):\n    return pkt\n",
               "does not import: ModuleNotFoundError: No module named "
               "'no_such_module_here'"),
    "raises": ("raise RuntimeError('not configured')\n",
               "does not import: RuntimeError: not configured"),
    "exits": ("import sys\nsys.exit(4)\n", "does not import: SystemExit: 4"),
    "no process": ("def handle(pkt, ctx):\n    return pkt\n", "defines no process(pkt, ctx)"),
    "not callable": ("process = 5\n", "process is a int, expected a function"),
    "arity": ("def process(pkt):\n    return pkt\n",
              "process(pkt) cannot be called as process(pkt, ctx)"),
    "setup arity": ("def process(pkt, ctx):\n    return pkt\ndef setup():\n    pass\n",
                    "setup() cannot be called as setup(params)"),
    "setup raises": ("def process(pkt, ctx):\n    return pkt\n"
                     "def setup(params):\n    raise KeyError('threshold')\n",
                     "setup(params) raised KeyError: 'threshold'"),
}


@pytest.mark.parametrize("name", list(BAD_MODULES))
def test_unusable_modules_fail_at_start(tmp_path: Path, name: str) -> None:
    text, needle = BAD_MODULES[name]
    with pytest.raises(ModuleError) as info:
        service(write(tmp_path, text, "bad.py"), {"x": 1})
    assert needle in str(info.value)
    assert str(tmp_path / "bad.py") in str(info.value)


def test_missing_module_file(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="no such file"):
        load_module(tmp_path / "nope.py")


def test_main_exits_3_before_opening_the_interface(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    bad = write(tmp_path, BAD_MODULES["setup raises"][0], "bad.py")
    rc = cli.main(["--name", "u1", "--iface", "no-such-if0", "--service", "scapy",
                   "--stats", str(tmp_path / "s.json"), "--module", str(bad),
                   "--params-json", '{"a": 1}'])
    assert rc == 3
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "cannot use the VNF module" in text and "KeyError: 'threshold'" in text
    assert "AF_PACKET" not in text and not (tmp_path / "s.json").exists()


def test_the_vnf_process_reports_an_import_error_on_stderr(tmp_path: Path) -> None:
    """What the builder's bring-up check shows from the VNF's log (stdout+stderr)."""
    bad = write(tmp_path, "import no_such_module_here\n", "bad.py")
    done = subprocess.run(
        [sys.executable, "-m", "vnf", "--name", "u1", "--iface", "eth0", "--stats",
         str(tmp_path / "s.json"), "--service", "scapy", "--module", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 3, done.stderr
    assert "vnf[u1] ERROR vnf: cannot use the VNF module" in done.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in done.stderr
    assert f'File "{bad}", line 1' in done.stderr


def test_scapy_is_imported_only_for_the_scapy_service() -> None:
    code = ("import sys; from vnf import cli; from vnf.config import parse_args; "
            "cli.build_service(parse_args(['--name', 'f', '--iface', 'e', '--stats', 's', "
            "'--service', 'firewall'])); "
            "import topologies.spec; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- re-encoding ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(payload=st.binary(min_size=1, max_size=300), proto=st.sampled_from(["udp", "tcp",
                                                                          "icmp"]),
       tos=st.integers(0, 255), grow=st.binary(max_size=40))
def test_encode_matches_scapy_computing_every_length_and_checksum(
        payload: bytes, proto: str, tos: int, grow: bytes) -> None:
    l4 = {"udp": UDP(sport=7, dport=9), "tcp": TCP(sport=7, dport=9, flags="PA"),
          "icmp": ICMP()}[proto]
    original = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / l4 / Raw(payload))
    pkt = IP(original)
    assert bytes(encode(pkt)) == original  # unchanged: the same bytes
    pkt = IP(original)
    pkt.tos = tos
    pkt[Raw].load = payload + grow
    expected = IP(original)
    expected.tos = tos
    expected[Raw].load = payload + grow
    del expected.len, expected.chksum, expected.payload.chksum
    if proto == "udp":
        del expected[UDP].len
    assert bytes(encode(pkt)) == bytes(expected)


def test_encode_leaves_fragments_transport_checksum_and_udp_zero_checksum() -> None:
    first = (IP(src="10.0.0.1", dst="10.0.0.2", flags="MF")
             / UDP(sport=1, dport=2, chksum=0x1234) / (b"x" * 8))
    out = encode(IP(bytes(first)))
    assert IP(bytes(out))[UDP].chksum == 0x1234 and checksum(out, 0, 20) == 0
    nosum = IP(bytes(IP(dst="10.0.0.2") / UDP(chksum=0) / b"abc"))
    nosum[Raw].load = b"abcdef"
    out = encode(nosum)
    assert IP(bytes(out))[UDP].chksum == 0 and IP(bytes(out))[UDP].len == 14


def test_encode_with_ip_options_lets_scapy_lay_out_the_header() -> None:
    pkt = IP(bytes(IP(dst="10.0.0.2") / UDP() / b"abc"))
    pkt.options = [IPOption_RR(routers=["1.2.3.4"])]
    out = encode(pkt)
    parsed = IP(bytes(out))
    assert parsed.ihl == 7 and parsed.options[0].routers == ["1.2.3.4"]
    assert bytes(parsed[UDP].payload) == b"abc" and checksum(out, 0, 28) == 0
    removed = IP(bytes(out))
    removed.options = []
    assert IP(bytes(encode(removed))).ihl == 5


def test_encode_refuses_what_is_not_ipv4() -> None:
    with pytest.raises(ValueError, match="version 6"):
        encode(IP(version=6) / UDP())


def test_checksum_of_all_zero_and_all_ones() -> None:
    assert checksum(b"\0\0\0\0", 0, 4) == 0xFFFF
    assert checksum(b"\xff\xff", 0, 2) == 0
    assert checksum(b"\x01", 0, 1) == 0xFEFF


def test_forward_verdict_is_unchanged_for_same_length(tmp_path: Path) -> None:
    buf = bytearray(frame())
    assert proc(service(VNFS / "dscp_marker.py")).process(buf, 0, len(buf)) == FORWARD
