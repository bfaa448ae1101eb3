"""The ids's reclassification (SPI rewrite, SI 255), the dpi service and their options."""

from __future__ import annotations

import json
import logging
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, Ether, Raw, load_contrib

load_contrib("nsh")
from scapy.contrib.nsh import NSH  # noqa: E402

from dmano.yamlconf import ConfigError  # noqa: E402
from vnf import cli, packetio  # noqa: E402
from vnf.config import parse_args  # noqa: E402
from vnf.dpi import Dpi, DpiRule, parse_dpi_rule  # noqa: E402
from vnf.fastpath import FORWARD, RECLASSIFIED, Processor  # noqa: E402
from vnf.services import Ids, RuleError, make_service  # noqa: E402
from vnf.stats import StatsWriter  # noqa: E402

VNF_MAC = "02:00:00:00:00:aa"
CONN_MAC = "02:00:00:00:00:cc"
VNF_MAC_B = bytes.fromhex(VNF_MAC.replace(":", ""))
FAST, SLOW = 0xAAAA0001, 0xBBBB0002
CHAIN, QUARANTINE = 10, 20


def frame(*, ctx1: int = FAST, spi: int = CHAIN, si: int = 255, l4: object = None,
          payload: bytes = b"hello", frag: int = 0, pad: bytes = b"") -> bytes:
    inner = IP(src="10.1.100.10", dst="10.2.100.10", frag=frag) / (
        l4 if l4 is not None else UDP(sport=1234, dport=5001)) / Raw(payload)
    pkt = (Ether(dst=VNF_MAC, src=CONN_MAC)
           / NSH(spi=spi, si=si, context_header=struct.pack("!I12x", ctx1)) / inner)
    return bytes(pkt) + pad


def path_of(out: bytes) -> tuple[int, int]:
    """(spi, si) of a frame the VNF sent."""
    spi_si = struct.unpack_from("!I", out, 18)[0]
    return spi_si >> 8, spi_si & 0xFF


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def reclassifier(threshold: float = 100.0, **kwargs: object) -> tuple[Ids, Processor,
                                                                       FakeClock]:
    clock = FakeClock()
    ids = Ids(threshold, reclassify_to=QUARANTINE, clock=clock, **kwargs)  # type: ignore[arg-type]
    return ids, Processor(VNF_MAC_B, ids), clock


def send_at(p: Processor, clock: FakeClock, pps: float, seconds: float,
            ctx1: int = FAST, spi: int = CHAIN) -> list[tuple[int, int]]:
    """Packets of one flow at a steady rate; the (spi, si) of each one sent."""
    out = []
    for i in range(round(pps * seconds)):
        clock.t += 1 / pps if i else 0.0
        sent = p.handle(frame(ctx1=ctx1, spi=spi))
        assert sent is not None
        out.append(path_of(sent))
    return out


# -- ids reclassification --------------------------------------------------------------

def test_flow_above_the_threshold_goes_to_the_target_chain_at_si_255() -> None:
    ids, p, clock = reclassifier(100)
    paths = send_at(p, clock, 150, 1.0)
    # the 101st packet within a second crosses 100 packets/s: it and all after it move
    assert paths[:100] == [(CHAIN, 254)] * 100
    assert paths[100:] == [(QUARANTINE, 255)] * 50
    stats = ids.stats()["reclassified"]
    assert stats == {"to_spi": QUARANTINE, "flows": 1, "packets": 50, "marked": 1,
                     "on_target": 0, "tracked": 1, "evicted": 0, "idle_s": 5.0}
    assert p.packets_out == 150 and sum(p.drops) == 0


def test_reclassified_frame_keeps_everything_but_the_service_path() -> None:
    ids, p, _clock = reclassifier(1)
    original = frame()
    assert path_of(p.handle(original) or b"") == (CHAIN, 254)
    out = p.handle(original)
    assert out is not None and path_of(out) == (QUARANTINE, 255)
    assert out[:6] == bytes.fromhex(CONN_MAC.replace(":", "")) and out[6:12] == VNF_MAC_B
    assert out[12:18] == original[12:18]  # ethertype, NSH base (TTL untouched)
    assert out[22:] == original[22:]  # context headers and the inner packet
    buf = bytearray(original)  # the service's verdict: the processor must not touch SI
    assert ids.inspect is not None and ids.inspect(buf, 0, len(buf)) == RECLASSIFIED
    assert path_of(bytes(buf)) == (QUARANTINE, 255)


def test_flow_below_the_threshold_is_untouched() -> None:
    ids, p, clock = reclassifier(100)
    assert set(send_at(p, clock, 80, 5.0)) == {(CHAIN, 254)}
    assert ids.stats()["reclassified"]["flows"] == 0  # type: ignore[index]


def test_only_the_fast_flow_moves() -> None:
    ids, p, clock = reclassifier(100)
    seen: dict[int, set[tuple[int, int]]] = {FAST: set(), SLOW: set()}
    for i in range(600):  # 2 s: fast at 250 packets/s, slow at 50
        clock.t += 1 / 300
        ctx1 = SLOW if i % 6 == 0 else FAST
        seen[ctx1].add(path_of(p.handle(frame(ctx1=ctx1)) or b""))
    assert seen[SLOW] == {(CHAIN, 254)}
    assert seen[FAST] == {(CHAIN, 254), (QUARANTINE, 255)}
    assert ids.marked == 1 and ids.reclassified_flows == 1


def test_packets_already_on_the_target_chain_are_never_reclassified() -> None:
    ids, p, clock = reclassifier(10)
    assert set(send_at(p, clock, 1000, 1.0, spi=QUARANTINE)) == {(QUARANTINE, 254)}
    stats = ids.stats()["reclassified"]
    assert stats["on_target"] == 1000 and stats["packets"] == 0  # type: ignore[index]
    assert stats["tracked"] == 0  # type: ignore[index]
    # the same flow, marked on its own chain: its packets on the target still just go on
    send_at(p, clock, 1000, 0.1)
    assert ids.marked == 1
    assert path_of(p.handle(frame(spi=QUARANTINE, si=255)) or b"") == (QUARANTINE, 254)


def test_a_marked_flow_stays_marked_until_idle() -> None:
    ids, p, clock = reclassifier(100, idle_s=5.0)
    send_at(p, clock, 500, 1.0)
    assert ids.marked == 1
    # slow now, but never idle for 5 s: still reclassified
    assert set(send_at(p, clock, 1, 20.0)) == {(QUARANTINE, 255)}
    clock.t += 6.0  # idle
    assert path_of(p.handle(frame()) or b"") == (CHAIN, 254)
    assert ids.marked == 0 and ids.reclassified_flows == 1
    send_at(p, clock, 500, 1.0)  # fast again: marked again
    assert ids.reclassified_flows == 2
    clock.t += 6.0
    ids.tick(clock.t, p.flows)  # the stats tick forgets idle flows
    assert ids.rates == {} and ids.marked == 0


def test_rate_table_is_bounded() -> None:
    ids, p, clock = reclassifier(5, flows_max=3)
    send_at(p, clock, 100, 0.2, ctx1=1)  # marked
    for ctx1 in (2, 3, 4):
        p.handle(frame(ctx1=ctx1))
    assert list(ids.rates) == [2, 3, 4]
    assert ids.rates_evicted == 1 and ids.marked == 0


def test_without_reclassify_to_the_ids_only_flags() -> None:
    ids = Ids(1)
    assert ids.inspect is None and "reclassified" not in ids.stats()
    p = Processor(VNF_MAC_B, ids)
    for _ in range(10):
        assert path_of(p.handle(frame()) or b"") == (CHAIN, 254)


def test_ids_parameters_are_checked() -> None:
    for bad in ({"reclassify_to": 0}, {"reclassify_to": 1 << 24},
                {"reclassify_to": 5, "idle_s": 0}, {"flows_max": 0}):
        with pytest.raises(ValueError):
            Ids(10, **bad)  # type: ignore[arg-type]
    ids = make_service("ids", ids_threshold_pps=7, reclassify_to=9, reclassify_idle_s=2,
                       flows_max=11)
    assert isinstance(ids, Ids)
    assert (ids.threshold_pps, ids.reclassify_to, ids.idle_s, ids.flows_max) == (7, 9, 2, 11)


def test_stats_file_counts_reclassified_flows_and_packets(tmp_path: Path) -> None:
    _ids, p, clock = reclassifier(100)
    send_at(p, clock, 200, 1.0)
    data = StatsWriter(tmp_path / "ids1.json", p, name="ids1", iface="eth0").write()
    on_disk = json.loads((tmp_path / "ids1.json").read_text())
    assert on_disk["service"] == "ids"
    rec = on_disk["service_stats"]["reclassified"]
    assert (rec["to_spi"], rec["flows"], rec["packets"]) == (QUARANTINE, 1, 100)
    assert data["packets_out"] == 200


@pytest.mark.parametrize("kind", ["simple"] + (["mmsg"] if packetio.mmsg_available()
                                              else []))
def test_io_sends_reclassified_frames(kind: str) -> None:
    _ids, p, _clock = reclassifier(10)  # the clock stands still: one window
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.settimeout(2.0)
        cls = packetio.MmsgIO if kind == "mmsg" else packetio.SimpleIO
        io = cls(b, p, batch=8, slot=2048, timeout=0.05)
        for _ in range(30):
            a.send(frame())
        got: list[tuple[int, int]] = []
        while len(got) < 30:
            io.poll()
            a.setblocking(False)
            try:
                while True:
                    got.append(path_of(a.recv(4096)))
            except BlockingIOError:
                pass
        io.close()
    assert got == [(CHAIN, 254)] * 10 + [(QUARANTINE, 255)] * 20


# -- dpi -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "rule"), [
    ("drop hex=deadbeef", DpiRule(b"\xde\xad\xbe\xef")),
    ("count payload=/etc/passwd", DpiRule(b"/etc/passwd", "count")),
    ("hex=0x0D0A", DpiRule(b"\r\n")),
    ("allow proto=tcp dport=80 payload=GET", DpiRule(b"GET", "allow", proto=6,
                                                      dport=(80, 80))),
])
def test_parse_dpi_rule(text: str, rule: DpiRule) -> None:
    parsed = parse_dpi_rule(text)
    assert parsed == rule
    assert parse_dpi_rule(str(parsed)) == parsed  # the text form round-trips


def test_dpi_rule_text_form() -> None:
    assert str(parse_dpi_rule("count dst=10.2.100.0/24 payload=/etc/passwd")) == \
        "count dst=10.2.100.0/24 payload=/etc/passwd"
    assert str(parse_dpi_rule("hex=deadbeef")) == "drop hex=deadbeef"


@pytest.mark.parametrize(("text", "needle"), [
    ("count", "exactly one pattern, payload=TEXT or hex=HEX, got none"),
    ("drop dport=80", "exactly one pattern"),
    ("drop payload=a hex=00", "got payload and hex"),
    ("drop hex=xyz", "hex: expected an even number of hex digits like deadbeef, got 'xyz'"),
    ("drop hex=abc", "hex: expected an even number"),
    ("drop hex=0x", "hex: expected"),
    ("reject payload=x", "expected key=value, got 'reject'"),
    ("count payload=x colour=red", "unknown field(s) colour"),
    ("count payload=x dport=99999", "dport"),
    ("count payload=x proto=icmp dport=1", "dport needs proto"),
    ("drop payload=", "expected key=value"),
    (f"drop hex={'00' * 1025}", "at most 1024 bytes, got 1025"),
])
def test_dpi_rule_errors_name_the_rule(text: str, needle: str) -> None:
    with pytest.raises(RuleError) as exc:
        parse_dpi_rule(text)
    assert f"rule {text!r}" in str(exc.value) and needle in str(exc.value)


def dpi(*rules: str) -> tuple[Dpi, Processor]:
    service = Dpi([parse_dpi_rule(r) for r in rules])
    return service, Processor(VNF_MAC_B, service)


def test_dpi_drops_and_counts_payload_matches() -> None:
    service, p = dpi("drop hex=deadbeef", "count payload=/etc/passwd")
    assert p.handle(frame(payload=b"x\xde\xad\xbe\xefy")) is None
    out = p.handle(frame(payload=b"GET /etc/passwd HTTP/1.0"))
    assert out is not None and path_of(out) == (CHAIN, 254)
    assert p.handle(frame(payload=b"harmless")) is not None
    assert p.drop_counts()["policy_drop"] == 1
    assert service.stats() == {
        "packets_scanned": 3, "bytes_scanned": 6 + 24 + 8, "packets_matched": 2,
        "rules": [{"rule": "drop hex=deadbeef", "hits": 1},
                  {"rule": "count payload=/etc/passwd", "hits": 1}]}


def test_dpi_count_goes_on_first_drop_or_allow_decides() -> None:
    service, p = dpi("count payload=evil", "allow dport=80 payload=evil",
                     "drop payload=evil")
    assert p.handle(frame(payload=b"evil", l4=TCP(dport=80))) is not None
    assert p.handle(frame(payload=b"evil")) is None  # udp 5001: not allowed, dropped
    assert service.hits == [2, 1, 1] and service.packets_matched == 2


def test_dpi_searches_the_payload_only() -> None:
    # the pattern is the inner destination address, the UDP ports, the TCP options
    service, p = dpi("drop hex=0a02640a", "drop hex=04d21389", "drop hex=0204")
    assert p.handle(frame(payload=b"clean")) is not None
    tcp = TCP(sport=1, dport=2, options=[("MSS", 1460)])  # option bytes 02 04 05 b4
    assert p.handle(frame(l4=tcp, payload=b"clean")) is not None
    assert p.handle(frame(payload=b"\x0a\x02\x64\x0a")) is None
    # Ethernet padding after the IPv4 total length is not payload
    service, p = dpi("drop payload=PAD")
    assert p.handle(frame(payload=b"x", pad=b"PAD" * 4)) is not None
    assert service.bytes_scanned == 1


def test_dpi_non_first_fragment_is_searched_after_the_ip_header() -> None:
    service, p = dpi("drop payload=tail")
    raw_udp = b"\x04\xd2\x13\x89\x00\x10\x00\x00"  # would be a UDP header in a first fragment
    assert p.handle(frame(l4=Raw(raw_udp), payload=b"tail", frag=100)) is None
    assert service.bytes_scanned == 12


def test_dpi_rule_match_fields_restrict_the_search() -> None:
    service, p = dpi("drop proto=tcp payload=x", "drop dst=10.9.0.0/16 payload=x")
    assert p.handle(frame(payload=b"x")) is not None  # udp, other dst
    assert p.handle(frame(payload=b"x", l4=TCP())) is None
    assert service.hits == [1, 0]


def test_dpi_drops_non_ipv4_as_bad_inner() -> None:
    _, p = dpi("count payload=x")
    buf = bytearray(frame())
    buf[38] = 0x65  # version 6
    assert p.handle(bytes(buf)) is None
    assert p.drop_counts()["bad_inner"] == 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(inner=st.binary(max_size=120), which=st.integers(0, 1), spi=st.integers(0, 30))
def test_random_inner_packets_never_raise(inner: bytes, which: int, spi: int) -> None:
    service: object = (Dpi([parse_dpi_rule("count payload=a"), parse_dpi_rule("hex=00")])
                       if which else Ids(1, reclassify_to=QUARANTINE, flows_max=2))
    p = Processor(VNF_MAC_B, service, capacity=1e6)  # type: ignore[arg-type]
    buf = bytearray(frame(spi=spi)[:38] + inner)
    assert p.process(buf, 0, len(buf)) in (FORWARD, *range(len(p.drops)))


# -- options ---------------------------------------------------------------------------

BASE = ["--name", "x1", "--iface", "eth0", "--stats", "/run/x/x1.json"]


def test_cli_reclassify_options() -> None:
    cfg = parse_args([*BASE, "--service", "ids", "--threshold-pps", "500",
                      "--reclassify-to", "20", "--reclassify-idle", "3"])
    assert (cfg.ids_threshold, cfg.reclassify_to, cfg.reclassify_idle) == (500.0, 20, 3.0)
    ids = cli.build_service(cfg)
    assert isinstance(ids, Ids) and ids.reclassify_to == 20 and ids.idle_s == 3.0
    cfg = parse_args([*BASE, "--service", "ids", "--ids-threshold", "7"])
    assert (cfg.ids_threshold, cfg.reclassify_to) == (7.0, None)
    assert isinstance(cli.build_service(cfg), Ids)


def test_cli_dpi_rules() -> None:
    cfg = parse_args([*BASE, "--service", "dpi", "--rule", "drop hex=deadbeef",
                      "--rule", "count payload=/etc/passwd"])
    assert [str(r) for r in cfg.dpi_rules] == ["drop hex=deadbeef",
                                               "count payload=/etc/passwd"]
    assert cfg.rules == ()
    service = cli.build_service(cfg)
    assert isinstance(service, Dpi) and len(service.rules) == 2


@pytest.mark.parametrize(("argv", "needle"), [
    (["--service", "ids", "--reclassify-to", "0"], "--reclassify-to: expected an integer"),
    (["--service", "ids", "--reclassify-to", str(1 << 24)], "in 1..16777215"),
    (["--service", "ids", "--threshold-pps", "0"], "--ids-threshold: expected a number > 0"),
    (["--service", "firewall", "--reclassify-to", "5"], "only the ids service reclassifies"),
    (["--service", "ids", "--reclassify-idle", "3"], "only with --reclassify-to"),
    (["--service", "ids", "--reclassify-to", "5", "--reclassify-idle", "0"],
     "--reclassify-idle"),
    (["--service", "dpi", "--rule", "drop dport=80"], "rule 'drop dport=80': a dpi rule"),
    (["--service", "dpi", "--rule", "count payload=x proto=bogus"], "proto"),
    (["--service", "firewall", "--rule", "drop payload=x"], "unknown field(s) payload"),
    (["--service", "ids", "--rule", "count payload=x"], "firewall and dpi services"),
])
def test_cli_errors_exit_2(argv: list[str], needle: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*BASE, *argv])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_config_file_dpi_rules_and_reclassify(tmp_path: Path) -> None:
    f = tmp_path / "dpi1.yaml"
    f.write_text("name: dpi1\niface: eth0\nservice: dpi\nstats: /run/s.json\nrules:\n"
                 "  - drop hex=deadbeef\n"
                 "  - {action: count, payload: 'GET /etc/passwd', proto: tcp}\n")
    cfg = parse_args(["--config", str(f), "--rule", "allow payload=ok"])
    assert [r.pattern for r in cfg.dpi_rules] == [b"\xde\xad\xbe\xef", b"GET /etc/passwd",
                                                  b"ok"]
    assert str(cfg.dpi_rules[1]) == "count proto=tcp hex=474554202f6574632f706173737764"
    g = tmp_path / "ids1.yaml"
    g.write_text("name: ids1\niface: eth0\nservice: ids\nstats: /run/s.json\n"
                 "ids_threshold: 50\nreclassify_to: 20\nreclassify_idle: 2\n")
    cfg = parse_args(["--config", str(g)])
    assert (cfg.ids_threshold, cfg.reclassify_to, cfg.reclassify_idle) == (50.0, 20, 2.0)


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("service: dpi\nrules:\n  - count payload=a\n  - drop hex=zz\n", 4, "hex"),
    ("service: dpi\nrules:\n  - {action: count}\n", 3, "exactly one pattern"),
    ("service: dpi\nrules:\n  - {action: count, hex: 1234}\n", 3, "quote it in YAML"),
    ("service: dpi\nrules:\n  - 5\n", 3, "payload | hex"),
    ("service: ids\nreclassify_to: 0\n", 2, "reclassify_to"),
])
def test_config_file_errors_name_the_line(tmp_path: Path, text: str, line: int,
                                          needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle) as exc:
        parse_args(["--config", str(f)])
    assert exc.value.line == line


def test_a_flood_of_new_suspicious_flows_is_logged_in_short(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vnf.services")
    ids, p, clock = reclassifier(0.5)
    for ctx1 in range(100):
        p.handle(frame(ctx1=ctx1))
    ids.tick(clock.t, p.flows)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 11 and messages[-1] == "ids: 90 more flows reclassified to spi 20"
    assert ids.reclassified_flows == 100
