"""The VNF's stats file: what the D-MANO monitor reads about a local instance.

Written as one JSON object to the ``--stats`` path every ``stats_interval`` (0.5 s) and
on exit, atomically: to ``.<name>.<pid>.tmp`` in the same folder, then ``os.replace``,
so a reader never sees a partial file. Counters are cumulative since ``started`` (a new
``pid``/``started`` means the process restarted and counters began again at 0).

Format (``format`` 1; new keys may be added, existing ones keep their meaning)::

    {
      "format": 1,
      "name": "fw1",                 instance name (--name)
      "service": "firewall",         passthrough | firewall | ids | dpi | scapy
      "iface": "eth0",
      "mac": "02:00:00:00:00:01",    source MAC of the frames the VNF sends
      "pid": 1234,
      "started": 1732500000.12,      unix time the process started
      "updated": 1732500012.62,      unix time of this snapshot
      "capacity": 150.0,             packets/s the token bucket allows; null = unlimited
      "burst": 7.5,                  token bucket depth in packets (null when unlimited)
      "work_us": 0.0,                busy work per accepted packet
      "rate_pps": 149.8,             packets received per second over the last ~1 s
                                     (offered load, including packets then dropped)
      "rate_out_pps": 120.1,         packets sent per second over the same window
      "cpu_percent": 12.5,           this process's CPU over the same window, 100 = 1 core
      "packets_in": 1875, "bytes_in": 187500,
      "packets_out": 1500, "bytes_out": 150000,
      "packets_by_spi": {"10": 1500},   NSH packets that arrived per service path (SPI)
      "dropped": {"truncated": 0, "not_nsh": 0, "bad_version": 0, "bad_md_type": 0,
                  "bad_length": 0, "si_zero": 0, "over_capacity": 300, "bad_inner": 0,
                  "policy_drop": 75, "too_big": 0, "tx_error": 0, "vnf_error": 0},
      "dropped_total": 375,
      "flows": {"1a2b3c4d": 930, ...},  packets received per ctx1 (flow hash, 8 hex
                                     digits), most recently seen first, at most
                                     ``flows_max`` (4096) flows
      "flows_tracked": 2, "flows_evicted": 0,
      "service_stats": {...}         per service: firewall {"default_action",
                                     "default_hits", "rules": [{"rule", "hits"}]};
                                     ids {"threshold_pps", "alerts", "flagged":
                                     {ctx1_hex: pps}} and, with --reclassify-to,
                                     "reclassified" (below); dpi {"packets_scanned",
                                     "bytes_scanned", "packets_matched", "rules":
                                     [{"rule", "hits"}]}; scapy: see
                                     vnf/scapy_service.py ("calls", "returned_none",
                                     "vnf_errors", "errors", "user", ...);
                                     passthrough {}
    }

``service_stats.reclassified`` (ids with ``--reclassify-to``)::

    {"to_spi": 20,        the chain suspicious flows are sent to (SI 255)
     "flows": 3,          times a flow was marked (crossed threshold_pps)
     "packets": 4410,     packets that left with SPI to_spi, SI 255
     "marked": 2,         flows marked now (not yet idle for idle_s)
     "on_target": 0,      packets that arrived already on chain to_spi (left alone)
     "tracked": 17, "evicted": 0,   flows in the rate table (at most flows_max)
     "idle_s": 5.0}

``packets_in`` = ``packets_out`` + ``dropped_total`` once the last batch is sent
(``too_big`` frames are counted in ``packets_in`` too).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmano.atomicfile import write_json_atomic
from dmano.macaddr import format_mac
from vnf.fastpath import Processor

FORMAT = 1
RATE_WINDOW_S = 1.0


class RateMeter:
    """Packets per second in and out (and CPU %) over the last ``window`` seconds."""

    def __init__(self, window: float = RATE_WINDOW_S):
        self.window = window
        self._samples: deque[tuple[float, int, int, float]] = deque()
        self.rate_in = 0.0
        self.rate_out = 0.0
        self.cpu_percent = 0.0

    def sample(self, now: float, packets_in: int, packets_out: int, cpu_s: float) -> None:
        s = self._samples
        s.append((now, packets_in, packets_out, cpu_s))
        # keep the newest sample that is at least `window` old, and everything after it
        while len(s) > 2 and s[1][0] <= now - self.window:
            s.popleft()
        t0, in0, out0, cpu0 = s[0]
        dt = now - t0
        if dt <= 0:
            return
        self.rate_in = (packets_in - in0) / dt
        self.rate_out = (packets_out - out0) / dt
        self.cpu_percent = 100.0 * (cpu_s - cpu0) / dt


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class StatsWriter:
    """Builds the stats snapshot from a :class:`Processor` and writes it."""

    def __init__(self, path: str | Path, processor: Processor, *, name: str, iface: str,
                 started: float | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 mono_clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = _cpu_seconds):
        self.path = Path(path)
        self.processor = processor
        self.name = name
        self.iface = iface
        self.wall_clock = wall_clock
        self.mono_clock = mono_clock
        self.cpu_clock = cpu_clock
        self.started = wall_clock() if started is None else started
        self.meter = RateMeter()
        self.meter.sample(mono_clock(), processor.packets_in, processor.packets_out,
                          cpu_clock())
        self.writes = 0

    def snapshot(self) -> dict[str, Any]:
        p = self.processor
        m = self.meter
        m.sample(self.mono_clock(), p.packets_in, p.packets_out, self.cpu_clock())
        drops = p.drop_counts()
        flows = {f"{k:08x}": v for k, v in reversed(p.flows.items())}
        return {
            "format": FORMAT,
            "name": self.name,
            "service": p.service.name,
            "iface": self.iface,
            "mac": format_mac(p.mac),
            "pid": os.getpid(),
            "started": round(self.started, 3),
            "updated": round(self.wall_clock(), 3),
            "capacity": p.capacity,
            "burst": p.burst if p.capacity is not None else None,
            "work_us": p.work_s * 1e6,
            "rate_pps": round(m.rate_in, 1),
            "rate_out_pps": round(m.rate_out, 1),
            "cpu_percent": round(m.cpu_percent, 1),
            "packets_in": p.packets_in,
            "bytes_in": p.bytes_in,
            "packets_out": p.packets_out,
            "bytes_out": p.bytes_out,
            "dropped": drops,
            "dropped_total": sum(drops.values()),
            "flows": flows,
            "flows_tracked": len(flows),
            "flows_evicted": p.flows_evicted,
            "packets_by_spi": {str(k): v for k, v in sorted(p.spi_packets.items())},
            "service_stats": p.service.stats(),
        }

    def write(self) -> dict[str, Any]:
        data = self.snapshot()
        write_json_atomic(self.path, data, indent=None)  # compact, one line
        self.writes += 1
        return data
