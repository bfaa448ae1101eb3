"""Resource monitor: what each local VNF instance is doing right now.

For every instance of the node configuration it reads the VNF's own counters file
(written by ``python -m vnf`` every 0.5 s, atomically; format in ``vnf/``: at least
``pid``, ``rate_pps`` and ``updated``) and the CPU use of its process with psutil. An
instance is *down* (withdrawn at once) when its counters file is missing or unreadable,
when its process is gone, or when the file has not been updated for ``stale_s``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import psutil

from dmano.config import InstanceConf
from dmano.policy import Measurement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceStatus:
    up: bool
    reason: str  # why it is down, or "" when up
    measurement: Measurement
    pid: int = 0


class Monitor:
    def __init__(self, instances: tuple[InstanceConf, ...], stale_s: float = 5.0):
        self.instances = instances
        self.stale_s = stale_s
        self._procs: dict[int, psutil.Process] = {}
        self._last_reason: dict[str, str] = {}

    def poll(self, now: float | None = None) -> dict[str, InstanceStatus]:
        now = time.time() if now is None else now
        out = {inst.name: self.read(inst, now) for inst in self.instances}
        for name, st in out.items():
            if self._last_reason.get(name) != st.reason:
                if st.up:
                    log.info("instance %s is up (pid %d)", name, st.pid)
                else:
                    log.warning("instance %s is down: %s", name, st.reason)
                self._last_reason[name] = st.reason
        return out

    def read(self, inst: InstanceConf, now: float) -> InstanceStatus:
        def down(reason: str) -> InstanceStatus:
            return InstanceStatus(False, reason, Measurement(
                capacity=inst.capacity, load=0.0, configured_cost=inst.cost))

        try:
            stats = json.loads(inst.stats.read_text())
        except FileNotFoundError:
            return down(f"no counters file {inst.stats} (VNF not started)")
        except (OSError, ValueError) as exc:
            return down(f"unreadable counters file {inst.stats}: {exc}")
        if not isinstance(stats, dict):
            return down(f"counters file {inst.stats} is not a JSON object")
        pid = stats.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return down(f"counters file {inst.stats} has no pid")
        proc = self._process(pid)
        if proc is None:
            return down(f"VNF process {pid} is gone")
        updated = stats.get("updated")
        if isinstance(updated, int | float) and now - updated > self.stale_s:
            return down(f"counters not updated for {now - updated:.1f} s")
        rate = stats.get("rate_pps", 0.0)
        load = float(rate) if isinstance(rate, int | float) and rate >= 0 else 0.0
        try:
            cpu = proc.cpu_percent(None)
        except psutil.Error:
            return down(f"VNF process {pid} is gone")
        capacity = stats.get("capacity") or inst.capacity
        return InstanceStatus(True, "", Measurement(
            capacity=float(capacity), load=load, cpu_percent=cpu,
            configured_cost=inst.cost), pid)

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # first call primes the measurement
                self._procs[pid] = proc
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
            return proc
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
