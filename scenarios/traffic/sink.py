"""The sink: receives the generator's datagrams on one or more UDP ports, per-flow stats.

A flow is (source IP, source port, flow id from the payload). Per flow: packets, bytes,
first/last arrival, loss from sequence numbers, duplicates, reordering, one-way latency
(receive ``time.monotonic_ns()`` minus the send time in the payload).

Sequence accounting (seq starts at 0): ``expected = highest seq + 1``;
``lost = expected - unique`` (packets after the highest one received are invisible here:
join with the generator's flow log for tail loss, see :mod:`scenarios.traffic.report`).
A packet above the highest so far opens a *gap* (the numbers skipped are remembered as
missing); one that fills a missing number is *reordered* (and no longer lost); one
already received is a *duplicate*. At most ``MISSING_MAX`` missing numbers are remembered
per flow; a packet older than those is counted as *stale* (it may be late or duplicate).

Loss events (``losses``, a CSV path or text file): one row per gap, ``t_s`` and
``until_s`` = the estimated send times of the first and last packet missing (seconds
after the epoch, interpolated between the send timestamps of the packets received on
either side of the gap, which a constant-rate flow makes exact to the sender's jitter;
both the send time of the packet that revealed it if it is the flow's first), the flow
(``flow_id``, ``src_port``), ``first_seq`` and ``lost``; a late packet that fills a gap
is a row with ``lost`` -1 at its own send time. Rows are flushed at each interval.

Datagrams shorter than the probe header or with another magic are counted as malformed
(never fatal); so are datagrams of new flows beyond ``max_flows``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from scenarios.traffic.stats import LogHistogram, open_timeseries
from scenarios.traffic.wire import HEADER, HEADER_SIZE, MAGIC

log = logging.getLogger(__name__)

MISSING_MAX = 16384
RECV_BUDGET = 512  # datagrams read from one socket before looking at the others
DEFAULT_RCVBUF = 4 << 20
TIMESERIES_FIELDS = (
    "t_s", "mono_ns", "packets", "bytes", "pps", "mbps", "flows_active", "flows_total",
    "received_total", "lost_total", "duplicates_total", "reordered_total", "malformed_total",
    "socket_drops", "lat_p50_us", "lat_p99_us", "lat_max_us",
)
LOSS_FIELDS = ("t_s", "flow_id", "src_port", "first_seq", "lost", "until_s")


class FlowStats:
    """Receive statistics of one flow."""

    __slots__ = ("bytes", "dst_port", "duplicates", "first_ns", "flow_id", "gaps", "last_ns",
                 "latency", "lost", "max_seq", "missing", "negative_latency", "packets",
                 "reordered", "src_ip", "src_port", "stale", "top_sent_ns", "tracked_from",
                 "unique")

    def __init__(self, src_ip: str, src_port: int, flow_id: int, dst_port: int) -> None:
        self.src_ip, self.src_port, self.flow_id, self.dst_port = (src_ip, src_port, flow_id,
                                                                   dst_port)
        self.packets = self.bytes = self.unique = 0
        self.first_ns = self.last_ns = 0
        self.max_seq = -1
        self.top_sent_ns = 0  # send time of the packet max_seq
        self.lost = self.duplicates = self.reordered = self.gaps = self.stale = 0
        self.negative_latency = 0
        self.missing: dict[int, None] = {}  # insertion order = increasing seq
        self.tracked_from = 0  # every seq >= this is known: received or in `missing`
        self.latency = LogHistogram()

    def add(self, seq: int, sent_ns: int, now_ns: int, size: int) -> int:
        """Account one packet; return the change of ``lost`` it caused."""
        self.packets += 1
        self.bytes += size
        if not self.first_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        lat = now_ns - sent_ns
        if lat >= 0:
            self.latency.add(lat)
        else:
            self.negative_latency += 1
        top = self.max_seq
        if seq > top:
            self.unique += 1
            self.max_seq = seq
            self.top_sent_ns = sent_ns
            gap = seq - top - 1
            if not gap:
                return 0
            self.gaps += 1
            self.lost += gap
            missing = self.missing
            lo = max(top + 1, seq - MISSING_MAX)
            if lo > top + 1:
                missing.clear()
                self.tracked_from = lo
            for s in range(lo, seq):
                missing[s] = None
            while len(missing) > MISSING_MAX:
                oldest = next(iter(missing))
                del missing[oldest]
                self.tracked_from = oldest + 1
            return gap
        if seq in self.missing:
            del self.missing[seq]
            self.unique += 1
            self.reordered += 1
            self.lost -= 1
            return -1
        if seq < self.tracked_from:
            self.stale += 1
        else:
            self.duplicates += 1
        return 0

    @property
    def expected(self) -> int:
        return self.max_seq + 1

    def to_dict(self, epoch_ns: int) -> dict[str, Any]:
        span = (self.last_ns - self.first_ns) / 1e9
        return {
            "flow_id": self.flow_id, "src_ip": self.src_ip, "src_port": self.src_port,
            "dst_port": self.dst_port, "packets": self.packets, "unique": self.unique,
            "bytes": self.bytes,
            "first_s": round((self.first_ns - epoch_ns) / 1e9, 6),
            "last_s": round((self.last_ns - epoch_ns) / 1e9, 6),
            "first_ns": self.first_ns, "last_ns": self.last_ns,
            "rate_pps": round((self.unique - 1) / span, 3) if span > 0 else None,
            "max_seq": self.max_seq, "max_seq_sent_ns": self.top_sent_ns or None,
            "expected": self.expected, "lost": self.lost,
            "loss_ratio": round(self.lost / self.expected, 6) if self.expected else 0.0,
            "duplicates": self.duplicates, "reordered": self.reordered, "gaps": self.gaps,
            "stale": self.stale, "negative_latency": self.negative_latency,
            "latency_us": self.latency.summary_us(),
        }


def _udp_socket_drops(inodes: Iterable[int]) -> int | None:
    """Datagrams the kernel dropped on our sockets (receive buffer full), from
    /proc/net/udp{,6}; None if unreadable."""
    want = {str(i) for i in inodes}
    total, found = 0, False
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 13 and parts[9] in want:
                        total += int(parts[-1])
                        found = True
        except OSError:
            continue
    return total if found else None


class Sink:
    """Receive on ``ports`` (UDP, ``bind`` address). ``run()`` until stopped; results via
    :meth:`summary`. ``timeseries``: CSV path or text file, one row per ``interval``."""

    def __init__(self, ports: Iterable[int], *, bind: str = "0.0.0.0",
                 timeseries: str | Path | IO[str] | None = None, interval: float = 1.0,
                 rcvbuf: int | None = DEFAULT_RCVBUF, epoch_ns: int | None = None,
                 max_flows: int = 100_000, duration: float | None = None,
                 losses: str | Path | IO[str] | None = None) -> None:
        self.bind = bind
        self.interval = interval
        self.max_flows = max_flows
        self.duration = duration
        self.epoch_ns = epoch_ns if epoch_ns is not None else time.monotonic_ns()
        self.flows: dict[tuple[str, int, int], FlowStats] = {}
        self.malformed = {"short": 0, "bad_magic": 0, "too_many_flows": 0}
        self.received = 0
        self.bytes = 0
        self.lost_total = 0
        self.started_at = time.time()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        try:
            for port in ports:
                s = socket.socket(family, socket.SOCK_DGRAM)
                self.socks.append(s)
                if rcvbuf:
                    with contextlib.suppress(OSError):
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                s.bind((bind, port))
                s.setblocking(False)
                self._sel.register(s, selectors.EVENT_READ, s.getsockname()[1])
        except OSError:
            self.close()
            raise
        if not self.socks:
            raise ValueError("sink: no port to listen on")
        self.ports = [s.getsockname()[1] for s in self.socks]
        self._inodes = [os.fstat(s.fileno()).st_ino for s in self.socks]
        self._drops0 = _udp_socket_drops(self._inodes) or 0
        self._ts_arg = timeseries
        self._ts_file: IO[str] | None = None
        self._ts_writer: Any = None
        self._own_ts = False
        self._loss_arg = losses
        self._loss_file: IO[str] | None = None
        self._loss_writer: Any = None
        self._own_loss = False
        self._drops_last: int | None = None
        self._interval_lat = LogHistogram()
        self._last_tick_ns = self.epoch_ns
        self._last_received = 0
        self._last_bytes = 0
        self._active_since_tick: set[tuple[str, int, int]] = set()
        self._logged_malformed = 0
        self._buf = bytearray(65536)
        self.end_ns: int | None = None
        self.stopped_by: str | None = None

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Stop soon (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            s.close()
        self._sel.close()

    # ------------------------------------------------------------------ receive
    def handle(self, data: bytes | bytearray | memoryview, n: int, addr: tuple[Any, ...],
               dst_port: int, now_ns: int) -> None:
        """Account one datagram of ``n`` bytes (at the start of ``data``)."""
        self.received += 1
        self.bytes += n
        if n < HEADER_SIZE:
            self._malformed("short", n, addr)
            return
        magic, flow_id, seq, sent_ns = HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            self._malformed("bad_magic", n, addr)
            return
        key = (addr[0], addr[1], flow_id)
        fs = self.flows.get(key)
        if fs is None:
            if len(self.flows) >= self.max_flows:
                self._malformed("too_many_flows", n, addr)
                return
            fs = self.flows[key] = FlowStats(addr[0], addr[1], flow_id, dst_port)
        top, top_ns = fs.max_seq, fs.top_sent_ns
        delta = fs.add(seq, sent_ns, now_ns, n)
        if delta:
            self.lost_total += delta
            if self._loss_writer is not None:
                self._loss_row(fs, top, top_ns, seq, sent_ns, delta)
        lat = now_ns - sent_ns
        self._interval_lat.add(lat if lat > 0 else 0)
        self._active_since_tick.add(key)

    def _loss_row(self, fs: FlowStats, top: int, top_ns: int, seq: int, sent_ns: int,
                  delta: int) -> None:
        """A gap (``delta`` > 0 packets between ``top`` and ``seq``) or a filled one (-1)."""
        if delta > 0:
            first = seq - delta
            if top >= 0:
                step = (sent_ns - top_ns) / (seq - top)
                t0, t1 = top_ns + step, sent_ns - step
            else:  # the flow's first packets: no earlier timestamp
                t0 = t1 = sent_ns
        else:
            first, t0, t1 = seq, sent_ns, sent_ns
        epoch = self.epoch_ns
        try:
            self._loss_writer.writerow([round((t0 - epoch) / 1e9, 6), fs.flow_id, fs.src_port,
                                        first, delta, round((t1 - epoch) / 1e9, 6)])
        except OSError as exc:
            log.error("cannot write the loss events: %s (no more rows)", exc)
            self._loss_writer = None

    def _malformed(self, reason: str, n: int, addr: tuple[Any, ...]) -> None:
        self.malformed[reason] += 1
        if self._logged_malformed < 10:
            self._logged_malformed += 1
            log.warning("malformed datagram (%s, %d bytes) from %s:%s%s", reason, n, addr[0],
                        addr[1], "; not logging more" if self._logged_malformed == 10 else "")

    def poll(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for datagrams and read what is there; return how many."""
        got = 0
        buf = self._buf
        mono = time.monotonic_ns
        handle = self.handle
        for key, _ in self._sel.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            port: int = key.data
            recv = sock.recvfrom_into
            for _ in range(RECV_BUDGET):
                try:
                    n, addr = recv(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # e.g. ECONNREFUSED from an ICMP error: not fatal
                    log.debug("recvfrom: %s", exc)
                    break
                handle(buf, n, addr, port, mono())
                got += 1
        return got

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Receive until ``stop``/:meth:`request_stop`/``duration``; return the summary."""
        self._open_timeseries()
        stop_ev = stop if stop is not None else self._stop
        end_at = None if self.duration is None else self.epoch_ns + round(self.duration * 1e9)
        interval_ns = round(self.interval * 1e9)
        # rows on the grid epoch + k * interval, like the generator's: with a shared
        # --epoch-ns their rows line up
        now = time.monotonic_ns()
        next_tick = self.epoch_ns + interval_ns * max(
            1, -(-(now - self.epoch_ns) // interval_ns))
        self._last_tick_ns = min(self.epoch_ns, now)
        log.info("sink: listening on %s port(s) %s", self.bind,
                 ",".join(map(str, self.ports)))
        self.stopped_by = "stopped"
        try:
            while not (stop_ev.is_set() or self._stop.is_set()):
                now = time.monotonic_ns()
                if end_at is not None and now >= end_at:
                    self.stopped_by = "duration"
                    break
                if now >= next_tick:
                    self.tick(now, next_tick)
                    next_tick += interval_ns * max(1, -(-(now + 1 - next_tick) // interval_ns))
                wake = next_tick if end_at is None else min(next_tick, end_at)
                self.poll(min(max(wake - now, 0) / 1e9, 0.05))
        finally:
            self.poll(0)  # what is already queued
            self.end_ns = time.monotonic_ns()
            self.tick(self.end_ns)
            if self._ts_file is not None and self._own_ts:
                self._ts_file.close()
            self._ts_file = None
            if self._loss_file is not None:
                with contextlib.suppress(OSError):
                    if self._own_loss:
                        self._loss_file.close()
                    else:
                        self._loss_file.flush()
            self._loss_file = self._loss_writer = None
            self.close()
        return self.summary()

    # ------------------------------------------------------------------ results
    def _open_timeseries(self) -> None:
        self._ts_file, self._ts_writer, self._own_ts = open_timeseries(self._ts_arg,
                                                                       TIMESERIES_FIELDS)
        self._loss_file, self._loss_writer, self._own_loss = open_timeseries(
            self._loss_arg, LOSS_FIELDS, line_buffered=False)

    def socket_drops(self) -> int | None:
        d = _udp_socket_drops(self._inodes) if all(s.fileno() >= 0 for s in self.socks) \
            else None
        if d is not None:
            self._drops_last = d - self._drops0
        return self._drops_last

    def tick(self, now_ns: int, grid_ns: int | None = None) -> dict[str, Any]:
        """Close one time-series interval (written as a CSV row); return the row.
        ``grid_ns``: the interval's end on the grid (the row's ``t_s``); None: now."""
        dt = (now_ns - self._last_tick_ns) / 1e9
        packets = self.received - self._last_received
        nbytes = self.bytes - self._last_bytes
        lat = self._interval_lat
        tot_dup = sum(f.duplicates for f in self.flows.values())
        tot_reo = sum(f.reordered for f in self.flows.values())

        def us(v: float | None) -> float | str:
            return "" if v is None else round(v / 1e3, 3)

        row = {
            "t_s": round(((grid_ns or now_ns) - self.epoch_ns) / 1e9, 6), "mono_ns": now_ns,
            "packets": packets, "bytes": nbytes,
            "pps": round(packets / dt, 3) if dt > 0 else "",
            "mbps": round(nbytes * 8 / dt / 1e6, 6) if dt > 0 else "",
            "flows_active": len(self._active_since_tick), "flows_total": len(self.flows),
            "received_total": self.received, "lost_total": self.lost_total,
            "duplicates_total": tot_dup, "reordered_total": tot_reo,
            "malformed_total": sum(self.malformed.values()),
            "socket_drops": "" if (d := self.socket_drops()) is None else d,
            "lat_p50_us": us(lat.percentile(50)), "lat_p99_us": us(lat.percentile(99)),
            "lat_max_us": us(lat.max),
        }
        if self._ts_writer is not None and dt > 0:
            try:
                self._ts_writer.writerow([row[k] for k in TIMESERIES_FIELDS])
            except OSError as exc:
                log.error("cannot write the time series: %s (no more rows)", exc)
                self._ts_writer = None
        if self._loss_file is not None:
            try:
                self._loss_file.flush()
            except OSError as exc:
                log.error("cannot write the loss events: %s (no more rows)", exc)
                self._loss_file = self._loss_writer = None
        self._last_tick_ns = now_ns
        self._last_received, self._last_bytes = self.received, self.bytes
        self._interval_lat = LogHistogram()
        self._active_since_tick = set()
        return row

    def summary(self) -> dict[str, Any]:
        end = self.end_ns if self.end_ns is not None else time.monotonic_ns()
        flows = sorted(self.flows.values(), key=lambda f: (f.flow_id, f.src_ip, f.src_port))
        lat = LogHistogram()
        for f in flows:
            lat.merge(f.latency)
        return {
            "tool": "dsfc-traffic-sink",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
            "epoch_ns": self.epoch_ns, "end_ns": end,
            "elapsed_s": round((end - self.epoch_ns) / 1e9, 6),
            "stopped_by": self.stopped_by, "bind": self.bind, "ports": self.ports,
            "totals": {
                "flows": len(flows), "datagrams": self.received, "bytes": self.bytes,
                "packets": sum(f.packets for f in flows),
                "unique": sum(f.unique for f in flows),
                "expected": sum(f.expected for f in flows),
                "lost": self.lost_total,
                "duplicates": sum(f.duplicates for f in flows),
                "reordered": sum(f.reordered for f in flows),
                "stale": sum(f.stale for f in flows),
                "malformed": dict(self.malformed),
                "socket_drops": self.socket_drops(),
                "latency_us": lat.summary_us(),
            },
            "flows": [f.to_dict(self.epoch_ns) for f in flows],
        }


def format_summary(s: dict[str, Any]) -> str:
    t = s["totals"]
    lat = t["latency_us"]
    bad = sum(t["malformed"].values())
    lines = [
        f"sink: stopped by {s['stopped_by']} after {s['elapsed_s']:.2f} s on port(s) "
        f"{','.join(map(str, s['ports']))}",
        f"  {t['flows']} flows, {t['packets']} packets ({t['unique']} unique of "
        f"{t['expected']} expected): {t['lost']} lost, {t['duplicates']} duplicates, "
        f"{t['reordered']} reordered; {bad} malformed datagrams, "
        f"{t['socket_drops'] if t['socket_drops'] is not None else '?'} socket drops",
    ]
    if lat["count"]:
        lines.append(f"  latency: min {lat['min']:.0f} us, p50 {lat['p50']:.0f} us, "
                     f"p99 {lat['p99']:.0f} us, max {lat['max']:.0f} us")
    return "\n".join(lines)
