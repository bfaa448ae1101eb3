"""Resource monitor: what each local VNF instance is doing right now.

For every instance of the node configuration it reads the VNF's own counters file
(written by ``python -m vnf`` every ``--stats-interval`` s, atomically; format in ``vnf/``: at least
``pid``, ``rate_pps`` and ``updated``) and the CPU use of its process with psutil. An
instance is *down* (withdrawn at once) when its counters file is missing or unreadable,
when its process is gone, or when the file has not been updated for ``stale_s`` (the
node's ``heartbeat_s``) and the VNF is hung, not starved (:mod:`dmano.starvation`: a
starved VNF stays up with its last measurement). :mod:`dmano.liveness` uses
:func:`read_counters` and the same :class:`~dmano.starvation.HangTracker` between polls
to notice a dead or hung VNF at once.

Every value read from the file is checked before use: ``pid`` a positive integer,
``rate_pps`` a finite number in ``0..MAX_RATE_PPS`` (the 32-bit LOAD field of the LSA),
``capacity`` (optional, overrides the configured one) a finite number in
``1..MAX_CAPACITY`` (as in the node configuration), ``updated`` a finite time. A file
with a bad value (NaN, Infinity, negative, too large, wrong type) makes the instance
*down* with the reason; it is logged once per reason and counted (``bad_files``), and
never stops the daemon.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from dmano.config import InstanceConf
from dmano.policy import Measurement
from dmano.starvation import HangTracker, Verdict

log = logging.getLogger(__name__)

MAX_RATE_PPS = 2**32 - 1  # the LSA's LOAD field is 32 bits
MAX_CAPACITY = 10_000_000  # as the node configuration's capacity
MAX_PID = 2**22  # the kernel's pid_max limit


class BadCountersError(ValueError):
    """A counters file holds a value the monitor cannot use."""


def _finite(stats: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    """``stats[key]`` as a float in [lo, hi]; None when absent; BadCountersError else."""
    if key not in stats or stats[key] is None:
        return None
    value = stats[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadCountersError(f"{key}: expected a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise BadCountersError(f"{key}: expected a finite number in {lo:g}..{hi:g}, "
                               f"got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Counters:
    """The checked values of one counters file."""

    pid: int
    updated: float | None
    load: float
    capacity: float | None  # None: not in the file (the configured one applies)


class CountersUnavailableError(ValueError):
    """The counters file is missing or unreadable (the VNF is not running)."""


def read_counters(path: Path) -> Counters:
    """Read and check one counters file (every value, see the module docstring).

    Raises :class:`CountersUnavailableError` when the file is missing or unreadable and
    :class:`BadCountersError` when a value is bad; both carry the reason as text."""
    try:
        stats = json.loads(path.read_text())
    except FileNotFoundError:
        raise CountersUnavailableError(
            f"no counters file {path} (VNF not started)") from None
    except (OSError, ValueError) as exc:
        raise CountersUnavailableError(f"unreadable counters file {path}: {exc}") from None
    if not isinstance(stats, dict):
        raise BadCountersError("not a JSON object")
    pid = stats.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < MAX_PID:
        raise BadCountersError(f"pid: expected a process id, got {pid!r}")
    updated = _finite(stats, "updated", 0, math.inf)
    load = _finite(stats, "rate_pps", 0, MAX_RATE_PPS) or 0.0
    capacity = _finite(stats, "capacity", 1, MAX_CAPACITY)
    return Counters(pid, updated, load, capacity)


def counters_updated(path: Path) -> float | None:
    """The ``updated`` time of a counters file now (None when it cannot be read): the
    ``recheck`` of :meth:`HangTracker.assess`."""
    try:
        return read_counters(path).updated
    except ValueError:
        return None


@dataclass(frozen=True)
class InstanceStatus:
    up: bool
    reason: str  # why it is down, or "" when up
    measurement: Measurement
    pid: int = 0
    starved: bool = False  # up, its counters stale: starved of CPU (the last measurement)


class Monitor:
    """Reads the local instances; ``tracker`` judges stale counters (one per node,
    shared with :class:`dmano.liveness.Liveness`; by default its own, on ``stale_s``)."""

    def __init__(self, instances: tuple[InstanceConf, ...], stale_s: float = 5.0,
                 tracker: HangTracker | None = None):
        self.instances = instances
        self.stale_s = stale_s
        self.tracker = tracker if tracker is not None else HangTracker(stale_s)
        self._procs: dict[int, psutil.Process] = {}
        self._last_reason: dict[str, str] = {}
        self._last_up: dict[str, InstanceStatus] = {}  # the last fresh measurement
        self.bad_files: dict[str, int] = {inst.name: 0 for inst in instances}

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

    def count_bad(self, name: str) -> None:
        """One more read of a bad counters file of instance ``name`` (for the status)."""
        self.bad_files[name] = self.bad_files.get(name, 0) + 1

    def read(self, inst: InstanceConf, now: float) -> InstanceStatus:
        def down(reason: str) -> InstanceStatus:
            return InstanceStatus(False, reason, Measurement(
                capacity=inst.capacity, load=0.0, configured_cost=inst.cost))

        try:
            counters = read_counters(inst.stats)
        except CountersUnavailableError as exc:
            return down(str(exc))
        except BadCountersError as exc:
            self.count_bad(inst.name)
            return down(f"bad counters file {inst.stats}: {exc}")
        pid, updated, load = counters.pid, counters.updated, counters.load
        capacity = counters.capacity or float(inst.capacity)
        proc = self._process(pid)
        if proc is None:
            return down(f"VNF process {pid} is gone")
        judged = self.tracker.assess(inst.name, pid, updated, now,
                                     partial(counters_updated, inst.stats))
        if judged.verdict is Verdict.GONE:
            return down(judged.reason)
        if judged.verdict is Verdict.HUNG and updated is not None:
            since = time.strftime("%H:%M:%S", time.localtime(updated))
            return down(f"counters not updated since {since} (more than {self.stale_s:g} s)"
                        f": VNF hung ({judged.reason})")
        try:
            cpu = proc.cpu_percent(None)
        except psutil.Error:
            return down(f"VNF process {pid} is gone")
        if judged.verdict is Verdict.STARVED:  # up, as last measured while fresh
            last = self._last_up.get(inst.name)
            if last is not None and last.pid == pid:
                return replace(last, starved=True)
            return InstanceStatus(True, "", Measurement(
                capacity=capacity, load=load, cpu_cores=inst.cpu_cores,
                configured_cost=inst.cost), pid, starved=True)
        status = InstanceStatus(True, "", Measurement(
            capacity=capacity, load=load, cpu_percent=cpu, cpu_cores=inst.cpu_cores,
            configured_cost=inst.cost), pid)
        self._last_up[inst.name] = status
        return status

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
