"""Tests of the traffic tools (scenarios/traffic/): generator, sink, report, CLI (plans and
their values: test_traffic_plan.py).

Traffic goes only to 127.0.0.1, on ports the tests pick (bound to port 0 by the sink),
bounded in count and duration.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.traffic import cli, report, wire
from scenarios.traffic.gen import Generator, PortAllocator
from scenarios.traffic.plan import FlowPlan, plan_from_mapping
from scenarios.traffic.sink import MISSING_MAX, FlowStats, Sink
from scenarios.traffic.stats import LogHistogram

ROOT = Path(__file__).resolve().parents[2]
LOOP = "127.0.0.1"


# ------------------------------------------------------------------ helpers
class RunningSink:
    """A Sink on 127.0.0.1, ephemeral port(s), in a thread."""

    def __init__(self, ports: tuple[int, ...] = (0,), bind: str = LOOP, **kwargs: Any) -> None:
        self.sink = Sink(ports, bind=bind, **kwargs)
        self.port = self.sink.ports[0]
        self.stop = threading.Event()
        self.result: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = self.sink.run(self.stop)

    def __enter__(self) -> RunningSink:
        self.thread.start()
        return self

    def finish(self, settle: float = 0.2) -> dict[str, Any]:
        time.sleep(settle)  # datagrams in flight on loopback
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        assert self.result is not None
        return self.result

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def plan(flows: int, rate: float, duration: float | None, port: int, *,
         spread: bool = True, **extra: Any) -> FlowPlan:
    """``flows`` flows starting within one packet interval (evenly phased)."""
    data: dict[str, Any] = {
        "seed": 1, "sport_range": extra.pop("sport_range", "30000-39999"),
        "defaults": {"dst": f"{LOOP}:{port}", "rate": rate, "size": extra.pop("size", 64),
                     "duration": duration},
        "arrivals": {"process": "constant", "rate": flows * rate if spread else 1e6,
                     "count": flows},
    }
    data.update(extra)
    return plan_from_mapping(data)


def sink_flows_by_id(summary: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {f["flow_id"]: f for f in summary["flows"]}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ wire format
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
       st.integers(wire.HEADER_SIZE, 1500))
def test_probe_roundtrip(flow_id: int, seq: int, ts: int, size: int) -> None:
    data = wire.encode(flow_id, seq, ts, size)
    assert len(data) == size
    assert wire.decode(data) == (flow_id, seq, ts)


def test_probe_rejects_short_and_foreign() -> None:
    good = wire.encode(1, 2, 3)
    assert wire.decode(good[:-1]) is None
    assert wire.decode(b"") is None
    assert wire.decode(b"XXXX" + good[4:]) is None
    with pytest.raises(ValueError):
        wire.encode(1, 2, 3, size=19)


# ------------------------------------------------------------------ statistics
@settings(max_examples=200)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=300),
       st.floats(0, 100))
def test_histogram_percentile_error_is_bounded(values: list[int], q: float) -> None:
    h = LogHistogram()
    for v in values:
        h.add(v)
    exact = sorted(values)[max(1, math.ceil(q / 100 * len(values))) - 1]
    got = h.percentile(q)
    assert got is not None
    assert abs(got - exact) <= exact / 64 + 0.5
    assert (h.min, h.max, h.count) == (min(values), max(values), len(values))


@given(st.lists(st.integers(0, 300), max_size=400))
def test_sequence_accounting(seqs: list[int]) -> None:
    fs = FlowStats("10.0.0.1", 1, 1, 5001)
    lost = 0
    for s in seqs:
        lost += fs.add(s, 0, 1000, 64)
    assert fs.packets == len(seqs)
    assert fs.unique == len(set(seqs))
    assert fs.expected == (max(seqs) + 1 if seqs else 0)
    assert fs.lost == lost == fs.expected - fs.unique
    assert fs.duplicates == len(seqs) - len(set(seqs))
    assert fs.stale == 0
    # reordered = first arrivals below the highest seq seen before them
    top, seen, reordered = -1, set(), 0
    for s in seqs:
        if s not in seen and s < top:
            reordered += 1
        seen.add(s)
        top = max(top, s)
    assert fs.reordered == reordered


def test_sequence_gaps_and_huge_jump() -> None:
    fs = FlowStats("10.0.0.1", 1, 1, 5001)
    for s in [0, 1, 3, 2, 2, 7, 8]:
        fs.add(s, 0, 0, 20)
    assert (fs.lost, fs.gaps, fs.reordered, fs.duplicates) == (3, 2, 1, 1)
    jump = 8 + MISSING_MAX * 3
    fs.add(jump, 0, 0, 20)  # memory stays bounded; the loss is still counted
    assert len(fs.missing) <= MISSING_MAX
    assert fs.lost == 3 + jump - 9
    fs.add(10, 0, 0, 20)  # too old to know: stale, not a duplicate or a fill
    assert fs.stale == 1 and fs.duplicates == 1
    fs.add(jump - 1, 0, 0, 20)  # recent enough: fills a gap
    assert fs.reordered == 2 and fs.lost == 3 + jump - 10


def test_negative_latency_is_counted() -> None:
    fs = FlowStats("10.0.0.1", 1, 1, 5001)
    fs.add(0, 2000, 1000, 20)
    assert fs.negative_latency == 1 and fs.latency.count == 0


# ------------------------------------------------------------------ sink robustness
def test_sink_counts_malformed_datagrams_and_keeps_going(tmp_path: Path) -> None:
    with RunningSink(timeseries=tmp_path / "ts.csv", interval=0.1) as rs, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        dst = (LOOP, rs.port)
        tx.bind((LOOP, 0))
        tx_port = tx.getsockname()[1]
        for junk in [b"", b"x", b"DSF1", wire.encode(1, 0, 0)[:-1], b"HTTP" + bytes(40),
                     os.urandom(19), b"\xff" * 1400]:
            tx.sendto(junk, dst)
        for seq in range(5):
            tx.sendto(wire.encode(9, seq, time.monotonic_ns(), 100), dst)
        time.sleep(0.35)  # a few time-series rows
        summary = rs.finish()
    bad = summary["totals"]["malformed"]
    assert bad["short"] == 5 and bad["bad_magic"] == 2
    assert summary["totals"]["datagrams"] == 12
    (flow,) = summary["flows"]
    assert (flow["flow_id"], flow["packets"], flow["lost"]) == (9, 5, 0)
    assert flow["src_port"] == tx_port
    assert flow["bytes"] == 500 and flow["latency_us"]["count"] == 5
    rows = (tmp_path / "ts.csv").read_text().splitlines()
    assert rows[0].startswith("t_s,mono_ns,packets") and len(rows) >= 4
    assert rows[-1].split(",")[12] == "7"  # malformed_total


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_sink_handle_never_raises(data: bytes) -> None:
    sink = Sink([0], bind=LOOP, rcvbuf=None)
    try:
        sink.handle(data, len(data), ("127.0.0.1", 1), sink.ports[0], 5)
        sink.handle(wire.MAGIC + data, len(data) + 4, ("127.0.0.1", 2), sink.ports[0], 5)
        s = sink.summary()
        assert s["totals"]["datagrams"] == 2
    finally:
        sink.close()


def test_sink_flow_limit() -> None:
    sink = Sink([0], bind=LOOP, rcvbuf=None, max_flows=2)
    try:
        for i in range(4):
            sink.handle(wire.encode(i, 0, 0), 20, ("127.0.0.1", 7), 1, 10)
        assert len(sink.flows) == 2 and sink.malformed["too_many_flows"] == 2
    finally:
        sink.close()


# ------------------------------------------------------------------ generator + sink
def test_fifty_flows_at_twenty_pps(tmp_path: Path) -> None:
    """50 concurrent flows x 20 pps for 2 s over loopback: nothing lost, exact counts."""
    log_path = tmp_path / "flows.jsonl"
    epoch = time.monotonic_ns() + 100_000_000  # shared time zero: time series rows line up
    with RunningSink(interval=0.5, epoch_ns=epoch, timeseries=tmp_path / "sink.csv") as rs:
        gen = Generator(plan(50, 20, 2.0, rs.port), flow_log=log_path, keep_records=True,
                        status_interval=0, epoch_ns=epoch, interval=0.5,
                        timeseries=tmp_path / "gen.csv")
        gsum = gen.run()
        ssum = rs.finish()
    assert gsum["stopped_by"] == "done"
    assert gsum["flows"] == {"started": 50, "complete": 50, "cut": 0, "failed": 0,
                             "not_started": 0, "max_concurrent": 50}
    assert gsum["packets"]["sent"] == gsum["packets"]["requested"] == 50 * 40
    assert gsum["packets"]["send_errors"] == 0
    req, got = gsum["rate"]["requested_pps"], gsum["rate"]["achieved_pps"]
    assert got == pytest.approx(req, rel=0.01) and req == pytest.approx(1000, rel=0.05)
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert records == gen.records and len(records) == 50
    assert len({r["src_port"] for r in records}) == 50  # one source port per flow
    by_id = sink_flows_by_id(ssum)
    assert set(by_id) == {r["flow_id"] for r in records}
    for r in records:
        s = by_id[r["flow_id"]]
        assert r["status"] == "complete" and r["packets_sent"] == 40
        assert r["achieved_pps"] == pytest.approx(20, rel=0.02)
        assert (s["src_ip"], s["src_port"]) == (r["src_ip"], r["src_port"])
        assert s["unique"] == s["packets"] == r["packets_sent"]
        assert (s["lost"], s["duplicates"], s["reordered"]) == (0, 0, 0)
        assert 0 < s["latency_us"]["min"] <= s["latency_us"]["p50"] <= s["latency_us"]["p99"]
        assert s["latency_us"]["p50"] < 20_000  # loopback: tens of us; generous for CI
    assert ssum["totals"]["latency_us"]["p99"] < 100_000
    assert ssum["totals"]["socket_drops"] in (0, None)
    rows = report.join(records, ssum["flows"])
    assert sum(r["lost"] for r in rows) == 0 and len(rows) == 50
    # time series: rows on the grid epoch + k * 0.5 s; per-interval counts add up
    gen_rows = list(csv.DictReader((tmp_path / "gen.csv").open()))
    sink_rows = list(csv.DictReader((tmp_path / "sink.csv").open()))
    assert sum(int(r["sent"]) for r in gen_rows) == 2000 == int(gen_rows[-1]["sent_total"])
    assert sum(int(r["packets"]) for r in sink_rows) == 2000
    assert sum(int(r["flows_started"]) for r in gen_rows) == 50
    assert sum(int(r["flows_ended"]) for r in gen_rows) == 50
    gen_t = [float(r["t_s"]) for r in gen_rows[:-1]]
    assert gen_t == [0.5 * k for k in range(1, len(gen_t) + 1)]
    assert [float(r["t_s"]) for r in sink_rows[:len(gen_t)]] == gen_t
    full = [int(r["sent"]) for r in gen_rows[1:4]]  # all 50 flows running: 50 x 20 x 0.5
    assert all(abs(n - 500) <= 50 for n in full), full


def test_several_destination_ports() -> None:
    with RunningSink((0, 0)) as rs:
        ports = rs.sink.ports
        p = plan_from_mapping({"defaults": {"dst": [f"{LOOP}:{port}" for port in ports],
                                            "rate": 50, "duration": 0.2},
                               "arrivals": {"process": "constant", "rate": 1000, "count": 4},
                               "sport_range": "30000-39999"})
        Generator(p, status_interval=0).run()
        summary = rs.finish()
    assert [f["dst_port"] for f in summary["flows"]] == ports * 2
    assert all(f["unique"] == 10 and f["lost"] == 0 for f in summary["flows"])


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")
def test_ipv6() -> None:
    with RunningSink(bind="::1") as rs:
        p = plan_from_mapping({"defaults": {"dst": f"[::1]:{rs.port}", "rate": 50,
                                            "duration": 0.2},
                               "flows": [{}, {}], "sport_range": "30000-39999"})
        gen = Generator(p, status_interval=0, keep_records=True)
        gen.run()
        summary = rs.finish()
    assert {r["src_ip"] for r in gen.records} == {"::1"}
    assert [(f["src_ip"], f["unique"], f["lost"]) for f in summary["flows"]] == [
        ("::1", 10, 0)] * 2


def test_sequence_gaps_detected_as_loss() -> None:
    """The generator skips every 10th packet (seq % 10 == 5): the sink sees gaps."""
    with RunningSink() as rs:
        gen = Generator(plan(5, 50, 1.0, rs.port), keep_records=True, status_interval=0,
                        skip=lambda _fid, seq: seq % 10 == 5)
        gsum = gen.run()
        ssum = rs.finish()
    assert gsum["packets"]["skipped"] == 25 and gsum["packets"]["sent"] == 225
    for f in ssum["flows"]:
        assert (f["expected"], f["unique"], f["lost"], f["gaps"]) == (50, 45, 5, 5)
        assert f["loss_ratio"] == pytest.approx(0.1)
    assert ssum["totals"]["lost"] == 25
    rows = report.join(gen.records, ssum["flows"])  # network loss: none
    assert all(r["sent"] == r["received"] == 45 for r in rows)


def test_tail_loss_is_seen_by_the_report() -> None:
    with RunningSink() as rs:
        gen = Generator(plan(2, 50, 0.2, rs.port), keep_records=True, status_interval=0,
                        skip=lambda fid, seq: fid == 1 and seq >= 7)
        gen.run()
        ssum = rs.finish()
    by_id = sink_flows_by_id(ssum)
    assert by_id[1]["lost"] == 0 and by_id[1]["unique"] == 7  # the sink cannot know
    gen.records[1]["packets_sent"] = 10  # as if the last 3 were lost in the network
    rows = {r["flow_id"]: r for r in report.join(gen.records, ssum["flows"])}
    assert rows[1]["lost"] == 3 and rows[0]["lost"] == 0
    assert "3 lost" in report.format_table(list(rows.values()))


def test_stop_cuts_flows_and_counts_what_was_due() -> None:
    port = free_udp_port()  # nobody listens: ICMP errors must not make sends fail
    gen = Generator(plan(3, 100, None, port), keep_records=True, status_interval=0,
                    stop_after=0.3)
    t0 = time.monotonic()
    s = gen.run()
    assert time.monotonic() - t0 < 1.5
    assert s["stopped_by"] == "stop_after"
    assert s["flows"]["cut"] == 3 and s["flows"]["complete"] == 0
    assert s["packets"]["send_errors"] == 0
    for r in gen.records:
        assert r["status"] == "cut" and r["packets_planned"] is None
        assert abs(r["packets_sent"] - r["packets_due"]) <= 1 and r["packets_sent"] >= 20


def test_stop_after_leaves_later_flows_unstarted(tmp_path: Path) -> None:
    p = plan_from_mapping({"defaults": {"dst": f"{LOOP}:{free_udp_port()}", "rate": 100,
                                        "duration": 0.1},
                           "flows": [{"start": 0}, {"start": 5}, {"start": 6}],
                           "sport_range": "30000-39999"})
    t0 = time.monotonic()
    s = Generator(p, status_interval=0, stop_after=0.3).run()
    assert time.monotonic() - t0 < 1.0
    assert s["stopped_by"] == "stop_after"
    assert (s["flows"]["complete"], s["flows"]["not_started"]) == (1, 2)
    assert cli.main(["gen", "--plan", str(tmp_path / "missing.yaml")]) == 2


def test_request_stop_from_another_thread() -> None:
    gen = Generator(plan(2, 50, 60, free_udp_port()), keep_records=True, status_interval=0)
    threading.Timer(0.2, gen.request_stop).start()
    s = gen.run()
    assert s["stopped_by"] == "stopped" and s["flows"]["cut"] == 2
    assert all(r["packets_planned"] == 3000 and r["status"] == "cut" for r in gen.records)


def test_source_ports_skip_busy_ones_and_limits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        taken = busy.getsockname()[1]
        lo = taken - 1 if taken > 1024 else taken
        p = plan(3, 50, 0.1, free_udp_port(), sport_range=[lo, lo + 3])
        gen = Generator(p, keep_records=True, status_interval=0)
        gen.run()
        ports = [r["src_port"] for r in gen.records]
        assert taken not in ports and len(set(ports)) == 3
        assert all(r["status"] == "complete" for r in gen.records)
        # an explicit source port that is busy, and a concurrency limit
        p2 = plan_from_mapping({"defaults": {"dst": f"{LOOP}:9", "rate": 50, "duration": 0.1},
                                "flows": [{"sport": taken}, {}, {}, {}],
                                "sport_range": "30000-39999"})
        gen2 = Generator(p2, keep_records=True, status_interval=0, max_concurrent=2)
        s = gen2.run()
    assert s["flows"]["failed"] == 2 and s["flows"]["complete"] == 2
    errors = sorted(r["error"] for r in gen2.records if r["status"] == "failed")
    assert "Address already in use" in errors[0] or "in use" in errors[0]
    assert "concurrent" in errors[1]


def test_port_allocator_goes_round_the_range() -> None:
    a = PortAllocator(100, 103)
    first = next(a.candidates())
    a.take(first)
    a.release(first)
    second = next(a.candidates())
    assert (first, second) == (100, 101)  # a freed port is not reused at once
    for p in (102, 103):
        a.take(p)
    assert list(a.candidates()) == [100, 101]


# ------------------------------------------------------------------ command line
# (plan options and dry runs: tests/unit/test_traffic_plan.py)
def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", "scenarios.traffic", *args]


def test_cli_processes_stop_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_udp_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sink = subprocess.Popen(
        _py("sink", "--bind", LOOP, "--port", str(port), "--interval", "0.2", "--timeseries",
            str(tmp_path / "ts.csv"), "--summary", str(tmp_path / "sink.json"),
            "--duration", "20"),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gen = None
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ts.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        gen = subprocess.Popen(
            _py("gen", "--dst", f"{LOOP}:{port}", "--arrival", "constant", "--arrival-rate",
                "20/s", "--rate", "50", "--duration", "0.5", "--flow",
                f"dst={LOOP}:{port},rate=100,duration=none", "--seed", "3",
                "--sport-range", "30000-39999",
                "--flow-log", str(tmp_path / "flows.jsonl"), "--summary",
                str(tmp_path / "gen.json"), "--stop-after", "15"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        gen.send_signal(signal.SIGTERM)
        out, err = gen.communicate(timeout=10)
        assert gen.returncode == 0, err
        assert "generator: stopped by stopped" in out
        time.sleep(0.2)
        sink.send_signal(signal.SIGTERM)
        sout, serr = sink.communicate(timeout=10)
        assert sink.returncode == 0, serr
        assert "sink: stopped by stopped" in sout
    finally:
        for p in (gen, sink):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    gsum = json.loads((tmp_path / "gen.json").read_text())
    ssum = json.loads((tmp_path / "sink.json").read_text())
    records = report.load_flow_log(tmp_path / "flows.jsonl")
    statuses = [r["status"] for r in records]
    assert gsum["stopped_by"] == "stopped" and gsum["flows"]["not_started"] is None
    assert "cut" in statuses and "complete" in statuses  # the endless flow, some arrivals
    assert len(records) == gsum["flows"]["started"] >= 20
    endless = next(r for r in records if r["flow_id"] == 0)
    assert endless["status"] == "cut" and endless["packets_sent"] >= 100
    rows = report.join(records, ssum["flows"])
    assert sum(r["lost"] for r in rows) == 0
    assert sum(r["sent"] for r in rows) == gsum["packets"]["sent"] == ssum["totals"]["unique"]
    series = (tmp_path / "ts.csv").read_text().splitlines()
    assert len(series) > 5 and series[0].split(",")[0] == "t_s"
    out = subprocess.run(
        _py("report", "--gen-log", str(tmp_path / "flows.jsonl"), "--sink-summary",
            str(tmp_path / "sink.json")),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert "0 lost" in out
