"""The generator: many constant-rate UDP flows from one process, one timer heap.

Scheduling. Packet ``k`` of a flow is due at ``start + k / rate`` (absolute times on
CLOCK_MONOTONIC, so errors never accumulate). One heap holds the next due time of every
running flow; the loop pops what is due, sends it, pushes the flow's next time, then sleeps
until the earliest next event (``time.sleep`` = ``clock_nanosleep``, with the thread's timer
slack set to 1 ns so the kernel does not add its default 50 us). A late packet is sent as
soon as possible (never skipped), so a flow's count is exact; how late is measured per
packet and reported. A flow ends at ``start + duration`` (socket closed, record written).
A sleep is never shorter than ``min_sleep_us`` (100 us): a wake-up costs ~20 us of CPU on
our VMs, so at high aggregate rates packets due close together go out in one wake-up
(at most 100 us late) instead of one wake-up each (20 kpps: ~25 % of a core instead of
~50 %). Packets are never sent early.

Sockets. One ordinary UDP socket per running flow, bound to the flow's own source port,
opened just before its first packet (20 ms ahead) and closed at its end. Why not one raw
socket for all flows: it needs CAP_NET_RAW (the unit tests run unprivileged), we would
build UDP headers and checksums ourselves, and a source port nobody has bound can be
taken by another process at the same time. Binding the port reserves it, the kernel does
routing, neighbour resolution and checksums, and ``sendto`` on a bound socket costs
~2 us. Open descriptors = running flows (hundreds to a few thousand): the CLI raises
RLIMIT_NOFILE's soft limit to the hard limit and the generator refuses (records as
``failed``) flows beyond ``max_concurrent`` (default: the fd limit minus 64). Sockets are
not connected, so an ICMP port unreachable (sink not up yet) never makes a later
``send`` fail; they are non-blocking, so a full socket buffer is a counted send error
instead of a stall of every flow.

Source ports. Taken from the plan's range in turn, skipping those in use (ours, or
another process's: ``EADDRINUSE``), so a port is reused only after the whole range has
been gone through: a new flow does not inherit the 5-tuple (and the NSH flow hash, and so
the connector's flow-cache entry) of a flow that just ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import heapq
import itertools
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from scenarios.traffic.plan import FlowPlan, FlowSpec
from scenarios.traffic.stats import LogHistogram, open_timeseries
from scenarios.traffic.wire import HEADER, MAGIC

log = logging.getLogger(__name__)

TIMESERIES_FIELDS = ("t_s", "mono_ns", "sent", "bytes", "pps", "send_errors", "skipped",
                     "flows_active", "flows_started", "flows_ended", "sent_total",
                     "late_p50_us", "late_p99_us", "late_max_us")
LEAD_NS = 20_000_000  # open a flow's socket this long before its first packet
MAX_SLEEP_NS = 50_000_000  # longest sleep: how fast a stop request is seen
MIN_SLEEP_US = 100.0  # shortest sleep: at most one wake-up per 100 us (see Generator)
BATCH = 256  # events handled before looking at new flows and the stop flag again
FD_RESERVE = 64
PR_SET_TIMERSLACK = 29

SkipHook = Callable[[int, int], bool]


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def set_timer_slack(ns: int = 1) -> bool:
    """Set this thread's timer slack (Linux prctl); False if not possible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def source_ip_for(dst_ip: str) -> str:
    """The source address the kernel picks towards ``dst_ip`` (a route lookup, no packet)."""
    family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dst_ip, 9))
            return s.getsockname()[0]
        except OSError:
            return "::" if family == socket.AF_INET6 else "0.0.0.0"


class PortAllocator:
    """Source ports from ``[lo, hi]`` in turn, skipping those in use."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.size = hi - lo + 1
        self._next = lo
        self.in_use: set[int] = set()

    def candidates(self) -> Iterator[int]:
        """Free ports in allocation order (at most one turn of the range)."""
        for _ in range(self.size):
            port = self._next
            self._next = port + 1 if port < self.hi else self.lo
            if port not in self.in_use:
                yield port

    def take(self, port: int) -> None:
        self.in_use.add(port)

    def release(self, port: int) -> None:
        self.in_use.discard(port)


class _Flow:
    __slots__ = ("count", "dst", "end_ns", "errors", "first_ns", "gapdev_sum", "interval",
                 "last_ns", "late_max", "late_sum", "planned_start_ns", "sent", "seq",
                 "skipped", "sock", "spec", "sport", "src_ip", "start_ns")

    def __init__(self, spec: FlowSpec, sock: socket.socket, sport: int, src_ip: str,
                 start_ns: int) -> None:
        self.spec = spec
        self.sock = sock
        self.sport = sport
        self.src_ip = src_ip
        self.dst = (spec.dst_ip, spec.dst_port)
        self.planned_start_ns = start_ns
        self.start_ns = start_ns
        self.interval = 1e9 / spec.rate
        self.count = spec.packets  # None: until stopped
        self.end_ns = None if spec.duration is None else start_ns + round(spec.duration * 1e9)
        self.seq = 0
        self.sent = self.errors = self.skipped = 0
        self.first_ns = self.last_ns = 0
        self.late_sum = self.late_max = 0
        self.gapdev_sum = 0.0

    def due(self, k: int) -> int:
        return self.start_ns + int(k * self.interval)


class Generator:
    """Send the flows of a plan. ``run()`` returns the summary (see :meth:`summary`).

    ``skip(flow_id, seq) -> True`` makes the generator not send that packet (its sequence
    number is used up, so the sink sees a loss); for tests.
    ``flow_log``: a path or a text file; one JSON line per flow as it ends.
    ``keep_records``: also keep the flow records in :attr:`records`.
    """

    def __init__(self, plan: FlowPlan, *, src_ip: str | None = None,
                 flow_log: str | Path | IO[str] | None = None, epoch_ns: int | None = None,
                 stop_after: float | None = None, max_concurrent: int | None = None,
                 sndbuf: int | None = None, skip: SkipHook | None = None,
                 keep_records: bool = False, status_interval: float = 10.0,
                 min_sleep_us: float = MIN_SLEEP_US,
                 timeseries: str | Path | IO[str] | None = None, interval: float = 1.0) -> None:
        self.plan = plan
        self.src_ip = src_ip
        self.epoch_ns = epoch_ns
        self.stop_after = stop_after
        if max_concurrent is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_concurrent = max(1, soft - FD_RESERVE)
        self.max_concurrent = max_concurrent
        self.sndbuf = sndbuf
        self.skip = skip
        self.keep_records = keep_records
        self.records: list[dict[str, Any]] = []
        self.status_interval = status_interval
        self.min_sleep_ns = max(0, round(min_sleep_us * 1e3))
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval_ns = round(interval * 1e9)
        self._ts_arg = timeseries
        self._ts: Any = None  # csv writer
        self._ts_file: IO[str] | None = None
        self._ts_last = {"sent": 0, "send_errors": 0, "skipped": 0, "bytes": 0,
                         "started": 0, "ended": 0, "t": 0}
        self._flow_log_arg = flow_log
        self._log_file: IO[str] | None = None
        self._stop = threading.Event()
        self._ports = PortAllocator(*plan.sport_range)
        self._src_cache: dict[str, str] = {}
        self._bufs: dict[int, bytearray] = {}
        self._errors_logged: set[int] = set()
        self.lateness = LogHistogram()  # ns, every handled packet (merged at each tick)
        self._late_interval = LogHistogram()
        self.totals = {"started": 0, "complete": 0, "cut": 0, "failed": 0, "sent": 0,
                       "send_errors": 0, "skipped": 0, "requested": 0, "bytes": 0}
        self.max_active = 0
        self.active = 0
        self._summary: dict[str, Any] | None = None

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Stop soon (safe from a signal handler): running flows are recorded as cut."""
        self._stop.set()

    # ------------------------------------------------------------------ flows
    def _src_for(self, dst_ip: str) -> str:
        if self.src_ip:
            return self.src_ip
        src = self._src_cache.get(dst_ip)
        if src is None:
            src = self._src_cache[dst_ip] = source_ip_for(dst_ip)
        return src

    def _open(self, spec: FlowSpec, start_ns: int) -> _Flow | None:
        if self.active >= self.max_concurrent:
            self._fail(spec, start_ns, f"more than {self.max_concurrent} concurrent flows")
            return None
        family = socket.AF_INET6 if ":" in spec.dst_ip else socket.AF_INET
        bind_ip = self.src_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        ports = [spec.sport] if spec.sport is not None else self._ports.candidates()
        last_err = "source port range exhausted"
        for port in ports:
            if port in self._ports.in_use:
                last_err = f"source port {port} in use by another flow"
                continue
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError as exc:
                self._fail(spec, start_ns, f"socket: {exc}")
                return None
            try:
                sock.setblocking(False)
                if self.sndbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
                sock.bind((bind_ip, port))
            except OSError as exc:
                sock.close()
                last_err = f"bind {bind_ip}:{port}: {exc}"
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                break
            self._ports.take(port)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.totals["started"] += 1
            return _Flow(spec, sock, port, self._src_for(spec.dst_ip), start_ns)
        self._fail(spec, start_ns, last_err)
        return None

    def _fail(self, spec: FlowSpec, start_ns: int, error: str) -> None:
        self.totals["failed"] += 1
        log.warning("flow %d not started: %s", spec.flow_id, error)
        self._record({
            **self._spec_fields(spec), "src_ip": self.src_ip, "src_port": spec.sport,
            "start_s": None, "end_s": None, "start_ns": None, "end_ns": None,
            "planned_start_ns": start_ns, "packets_planned": spec.packets, "packets_due": 0,
            "packets_sent": 0, "send_errors": 0, "skipped": 0, "status": "failed",
            "error": error})

    def _spec_fields(self, spec: FlowSpec) -> dict[str, Any]:
        return {"flow_id": spec.flow_id, "proto": "udp", "dst_ip": spec.dst_ip,
                "dst_port": spec.dst_port, "rate_pps": spec.rate, "size": spec.size,
                "planned_start_s": round(spec.start, 9), "planned_duration_s": spec.duration}

    def _close(self, f: _Flow, end_ns: int, status: str) -> None:
        f.sock.close()
        self._ports.release(f.sport)
        self.active -= 1
        # "complete" is only reached with a packet count (a flow without one is cut)
        due = f.count if status == "complete" and f.count is not None \
            else self._due_by(f, end_ns)
        t = self.totals
        t[status] += 1
        t["requested"] += due
        epoch = self._epoch
        intervals = f.sent + f.skipped + f.errors - 1
        achieved = (f.sent - 1) * 1e9 / (f.last_ns - f.first_ns) \
            if f.sent > 1 and f.last_ns > f.first_ns else None
        handled = f.sent + f.errors + f.skipped
        self._record({
            **self._spec_fields(f.spec), "src_ip": f.src_ip, "src_port": f.sport,
            "start_s": round((f.start_ns - epoch) / 1e9, 6),
            "end_s": round((end_ns - epoch) / 1e9, 6), "start_ns": f.start_ns,
            "end_ns": end_ns, "planned_start_ns": f.planned_start_ns,
            "first_send_ns": f.first_ns or None, "last_send_ns": f.last_ns or None,
            "packets_planned": f.count, "packets_due": due, "packets_sent": f.sent,
            "send_errors": f.errors, "skipped": f.skipped, "status": status, "error": None,
            "achieved_pps": None if achieved is None else round(achieved, 6),
            "late_mean_us": round(f.late_sum / handled / 1e3, 3) if handled else None,
            "late_max_us": round(f.late_max / 1e3, 3),
            "jitter_us": round(f.gapdev_sum / intervals / 1e3, 3) if intervals > 0 else None,
        })

    def _due_by(self, f: _Flow, t_ns: int) -> int:
        """Packets of ``f`` due at or before ``t_ns``."""
        if t_ns < f.start_ns:
            return 0
        n = int((t_ns - f.start_ns) // f.interval) + 1
        while n > 0 and f.due(n - 1) > t_ns:  # float rounding
            n -= 1
        return n if f.count is None else min(n, f.count)

    def _record(self, rec: dict[str, Any]) -> None:
        if self.keep_records:
            self.records.append(rec)
        if self._log_file is not None:
            try:
                self._log_file.write(json.dumps(rec) + "\n")
            except OSError as exc:
                log.error("cannot write the flow log: %s (no more records)", exc)
                self._log_file = None

    def _buf(self, size: int) -> bytearray:
        buf = self._bufs.get(size)
        if buf is None:
            buf = self._bufs[size] = bytearray(size)
        return buf

    # ------------------------------------------------------------------ main loop
    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Send every flow of the plan; return the summary. Stops early on ``stop`` or
        :meth:`request_stop` or after ``stop_after`` seconds (flows cut short)."""
        set_timer_slack(1)
        own_log = False
        if isinstance(self._flow_log_arg, str | Path):
            path = Path(self._flow_log_arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(path, "w", buffering=1)  # noqa: SIM115 (closed below)
            own_log = True
        elif self._flow_log_arg is not None:
            self._log_file = self._flow_log_arg
        stop_ev = stop if stop is not None else self._stop
        stop_flag = self._stop
        # default time zero: a little ahead, so flows starting at 0 get their socket in time
        self._epoch = epoch = self.epoch_ns if self.epoch_ns is not None \
            else time.monotonic_ns() + LEAD_NS
        self._wall_start = time.time()
        cpu0 = time.process_time()
        stop_at = None if self.stop_after is None else epoch + round(self.stop_after * 1e9)
        plan_iter = self.plan.flows()
        pending = next(plan_iter, None)
        pending_ns = epoch + round(pending.start * 1e9) if pending else 0
        heap: list[tuple[int, int, _Flow]] = []
        order = itertools.count()
        mono = time.monotonic_ns
        pack = HEADER.pack_into
        heappop, heapreplace, heappush = heapq.heappop, heapq.heapreplace, heapq.heappush
        skip = self.skip
        min_sleep = self.min_sleep_ns
        tot = self.totals
        status_ns = round(self.status_interval * 1e9) if self.status_interval > 0 else 0
        next_status = mono() + status_ns
        sent_at_status = 0
        self._open_timeseries()
        tick_ns = self.interval_ns
        next_tick = epoch + tick_ns * max(1, -(-(mono() - epoch) // tick_ns))
        self._ts_last["t"] = min(epoch, mono())
        first_due: int | None = None
        reason = "done"
        log.info("generator: epoch %d, source ports %d-%d, up to %d concurrent flows",
                 epoch, *self.plan.sport_range, self.max_concurrent)
        try:
            while True:
                if stop_ev.is_set() or stop_flag.is_set():
                    reason = "stopped"
                    break
                now = mono()
                if stop_at is not None and now >= stop_at:
                    reason = "stop_after"
                    break
                if now >= next_tick:
                    self._tick(now, next_tick)
                    next_tick += tick_ns * max(1, -(-(now + 1 - next_tick) // tick_ns))
                # admit flows starting soon (socket opened ahead of the first packet)
                admitted = 0
                while pending is not None and pending_ns - LEAD_NS <= now \
                        and admitted < BATCH // 4 and (stop_at is None or pending_ns < stop_at):
                    admitted += 1
                    f = self._open(pending, pending_ns)
                    if f is not None:
                        if first_due is None:
                            first_due = pending_ns
                        heappush(heap, (pending_ns, next(order), f))
                    pending = next(plan_iter, None)
                    if pending is not None:
                        pending_ns = epoch + round(pending.start * 1e9)
                    now = mono()
                # send what is due
                n = 0
                while heap and n < BATCH:
                    due, _, f = heap[0]
                    if due > now:
                        now = mono()
                        if due > now:
                            break
                    n += 1
                    seq = f.seq
                    if f.count is not None and seq >= f.count:  # end of flow
                        heappop(heap)
                        self._close(f, due, "complete")
                        continue
                    f.seq = seq + 1
                    nxt = f.due(seq + 1)
                    if f.count is not None and seq + 1 >= f.count:
                        nxt = f.end_ns if f.end_ns is not None and f.end_ns > due else due
                    heapreplace(heap, (nxt, next(order), f))
                    if skip is not None and skip(f.spec.flow_id, seq):
                        f.skipped += 1
                        tot["skipped"] += 1
                        continue
                    buf = self._buf(f.spec.size)
                    now = mono()
                    pack(buf, 0, MAGIC, f.spec.flow_id, seq & 0xFFFFFFFF, now)
                    try:
                        f.sock.sendto(buf, f.dst)
                    except OSError as exc:
                        f.errors += 1
                        tot["send_errors"] += 1
                        if exc.errno not in self._errors_logged:
                            self._errors_logged.add(exc.errno or 0)
                            log.warning("flow %d: sendto %s:%d: %s (counted; logged once per "
                                        "error)", f.spec.flow_id, *f.dst, exc)
                    else:
                        f.sent += 1
                        tot["sent"] += 1
                        tot["bytes"] += len(buf)
                    late = now - due
                    if late > 0:
                        f.late_sum += late
                        if late > f.late_max:
                            f.late_max = late
                        self._late_interval.add(late)
                    else:
                        self._late_interval.add(0)
                    if f.last_ns:
                        f.gapdev_sum += abs(now - f.last_ns - f.interval)
                    else:
                        f.first_ns = now
                    f.last_ns = now
                if n >= BATCH:
                    continue  # maybe behind: look at the stop flag and new flows first
                if not heap:
                    if pending is None:
                        break
                    if stop_at is not None and pending_ns >= stop_at:
                        reason = "stop_after"
                        break
                if status_ns and now >= next_status:
                    log.info("%d flows running, %d packets sent (%.0f pps over the last "
                             "%.0f s)", self.active, tot["sent"],
                             (tot["sent"] - sent_at_status) * 1e9 / status_ns,
                             self.status_interval)
                    sent_at_status = tot["sent"]
                    next_status = now + status_ns
                wake = heap[0][0] if heap else pending_ns - LEAD_NS
                if pending is not None:
                    wake = min(wake, pending_ns - LEAD_NS)
                if stop_at is not None:
                    wake = min(wake, stop_at)
                wake = min(wake, next_tick)
                delay = wake - mono()
                if delay > 0:
                    time.sleep(min(max(delay, min_sleep), MAX_SLEEP_NS) / 1e9)
        finally:
            end = time.monotonic_ns()
            for _, _, f in sorted(heap, key=lambda e: e[2].spec.flow_id):
                if f.count is not None and f.seq >= f.count:  # all sent, end not reached
                    self._close(f, min(f.end_ns or end, end), "complete")
                else:
                    self._close(f, end, "cut")
            heap.clear()
            self._tick(end, None)
            if self._ts_file is not None and self._ts_own:
                self._ts_file.close()
            self._ts_file = self._ts = None
            not_started: int | None = 0
            if pending is not None:
                if self.plan.finite:
                    not_started = 1 + sum(1 for _ in itertools.islice(plan_iter, 10**7))
                else:
                    not_started = None
            self._summary = self._make_summary(reason, end, first_due, not_started,
                                               time.process_time() - cpu0)
            if own_log and self._log_file is not None:
                self._log_file.close()
            self._log_file = None
        return self._summary

    # ------------------------------------------------------------------ results
    def _open_timeseries(self) -> None:
        self._ts_file, self._ts, self._ts_own = open_timeseries(self._ts_arg, TIMESERIES_FIELDS)

    def _tick(self, now_ns: int, grid_ns: int | None) -> None:
        """Close one time-series interval (``grid_ns``: its end on the interval grid;
        None: the last, partial one, ending now)."""
        lat = self._late_interval
        self.lateness.merge(lat)
        self._late_interval = LogHistogram()
        if self._ts is None:
            return
        t, last = self.totals, self._ts_last
        ended = t["complete"] + t["cut"]
        dt = (now_ns - last["t"]) / 1e9
        sent = t["sent"] - last["sent"]

        def us(v: float | None) -> float | str:
            return "" if v is None else round(v / 1e3, 3)

        end = grid_ns if grid_ns is not None else now_ns
        row = [round((end - self._epoch) / 1e9, 6), now_ns, sent, t["bytes"] - last["bytes"],
               round(sent / dt, 3) if dt > 0 else "", t["send_errors"] - last["send_errors"],
               t["skipped"] - last["skipped"], self.active, t["started"] - last["started"],
               ended - last["ended"], t["sent"], us(lat.percentile(50)),
               us(lat.percentile(99)), us(lat.max)]
        try:
            self._ts.writerow(row)
        except OSError as exc:
            log.error("cannot write the time series: %s (no more rows)", exc)
            self._ts = None
        self._ts_last = {"sent": t["sent"], "send_errors": t["send_errors"],
                         "skipped": t["skipped"], "bytes": t["bytes"], "started": t["started"],
                         "ended": ended, "t": now_ns}

    def _make_summary(self, reason: str, end_ns: int, first_due: int | None,
                      not_started: int | None, cpu_s: float) -> dict[str, Any]:
        t = self.totals
        span = (end_ns - first_due) / 1e9 if first_due is not None and end_ns > first_due \
            else 0.0
        return {
            "tool": "dsfc-traffic-gen",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._wall_start)),
            "epoch_ns": self._epoch, "end_ns": end_ns,
            "elapsed_s": round((end_ns - self._epoch) / 1e9, 6),
            "active_span_s": round(span, 6),
            "stopped_by": reason, "seed": self.plan.seed,
            "sport_range": list(self.plan.sport_range),
            "flows": {"started": t["started"], "complete": t["complete"], "cut": t["cut"],
                      "failed": t["failed"], "not_started": not_started,
                      "max_concurrent": self.max_active},
            "packets": {"requested": t["requested"], "sent": t["sent"],
                        "send_errors": t["send_errors"], "skipped": t["skipped"],
                        "bytes": t["bytes"]},
            "rate": {"requested_pps": round(t["requested"] / span, 3) if span else None,
                     "achieved_pps": round(t["sent"] / span, 3) if span else None},
            "lateness_us": self.lateness.summary_us(),
            "cpu_s": round(cpu_s, 3),
        }

    @property
    def summary(self) -> dict[str, Any] | None:
        return self._summary


def format_summary(s: dict[str, Any]) -> str:
    """The generator summary as a few human-readable lines."""
    f, p, r, lt = s["flows"], s["packets"], s["rate"], s["lateness_us"]
    lines = [
        f"generator: stopped by {s['stopped_by']} after {s['elapsed_s']:.2f} s "
        f"(seed {s['seed']}, cpu {s['cpu_s']:.2f} s)",
        f"  flows: {f['started']} started ({f['complete']} complete, {f['cut']} cut), "
        f"{f['failed']} failed, {f['not_started'] if f['not_started'] is not None else '?'}"
        f" not started, max {f['max_concurrent']} at once",
        f"  packets: {p['sent']} sent of {p['requested']} due, {p['send_errors']} send errors,"
        f" {p['skipped']} skipped",
    ]
    if r["requested_pps"] is not None:
        lines.append(f"  rate: requested {r['requested_pps']:.1f} pps, achieved "
                     f"{r['achieved_pps']:.1f} pps over {s['active_span_s']:.2f} s")
    if lt["p50"] is not None:
        lines.append(f"  lateness: p50 {lt['p50']:.0f} us, p99 {lt['p99']:.0f} us, "
                     f"max {lt['max']:.0f} us")
    return "\n".join(lines)

