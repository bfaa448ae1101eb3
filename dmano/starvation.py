"""Starved or hung: what a VNF whose counters file is stale is doing (issue #13).

A VNF rewrites its counters file every ``--stats-interval``; a file older than the
heartbeat means the VNF made no progress. On a saturated machine that is not a hang: the
process is runnable and waits for a CPU, and withdrawing it (an LSA flooded, every
connector rewritten) adds work and starves the others further. So, for a stale file, the
VNF process's threads (``/proc/PID/task/*/stat``) and CPU time (utime + stime of
``/proc/PID/stat``) decide (:func:`classify`):

* **hung** when no thread is waiting for the machine: none runnable (``R``, waiting
  for a CPU) or in an uninterruptible wait in the kernel (``D``: I/O, a lock, page
  reclaim; measured at 200 NFV nodes on 2 cores, where VNFs stood in ``D`` for seconds
  writing their counters), but stopped (``T``) or sleeping (``S``) without progress: a
  deadlock, a call that never returns;
* **hung** when it is runnable but used at least :data:`BUSY_SHARE` (50 %) of one core
  over the window since its counters were last seen fresh (a window of at least
  :data:`MIN_WINDOW_S`): it gets CPU and makes no progress, a busy loop;
* **starved** otherwise (runnable, little CPU: it waits for one). It stays up with its
  last measurement; each episode (one stale ``updated`` value) is counted
  (:attr:`HangTracker.starved`) and logged once, at INFO;
* whatever the state, a file stale for more than :func:`starvation_bound` (the larger
  of 10 heartbeats and 30 s) is **hung**: starvation never hides a hang for longer.

A hung verdict holds until the counters are fresh again (no flapping between readings);
a process that is gone is down. The /proc sample is taken between two reads of the
counters file (``recheck``), so a VNF that wrote its file and went back to sleep in the
meantime is not taken for a sleeping hung one.

:class:`HangTracker` keeps, per instance, the process's CPU time when its counters were
last seen fresh; the D-MANO shares one between :class:`dmano.liveness.Liveness` (every
tick) and :class:`dmano.monitor.Monitor` (every period).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)

WAITING_STATES = "RD"  # thread states of a process waiting for the machine, not hung
BUSY_SHARE = 0.5  # of one core over the window, with no progress: a busy loop
MIN_WINDOW_S = 1.0  # the CPU share is judged over at least this long (10 ms ticks)
BOUND_HEARTBEATS = 10  # starvation is believed for at most this many heartbeats ...
BOUND_MIN_S = 30.0  # ... and at least this long
DEAD_STATES = frozenset("ZXx")  # zombie, dead
CLK_TCK = os.sysconf("SC_CLK_TCK")


def starvation_bound(heartbeat_s: float) -> float:
    """How long a runnable VNF may go without progress before it is hung anyway."""
    return max(BOUND_HEARTBEATS * heartbeat_s, BOUND_MIN_S)


class Verdict(Enum):
    FRESH = "fresh"  # counters fresh: nothing to judge
    STARVED = "starved"  # stale, runnable, little CPU: kept up
    HUNG = "hung"  # stale and stuck (or beyond the bound): down
    GONE = "gone"  # the process no longer exists: down


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: its identity, CPU time and thread states."""

    start: int  # start time in clock ticks since boot (tells a reused PID apart)
    cpu_s: float  # utime + stime of all its threads
    states: str  # one state letter per thread ("" when only the CPU time was read)


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    reason: str = ""  # why hung or starved (the same while a hang lasts)
    share: float | None = None  # CPU share of one core over the window, when measured


def _fields(path: str) -> list[str] | None:
    """Fields of a /proc stat file after the command name (the state first)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()
    return rest if len(rest) > 19 else None


def read_proc(pid: int, threads: bool = True) -> ProcSample | None:
    """Read process ``pid`` (None when it is gone or a zombie); ``threads``: also the
    state of each thread (``/proc/PID/task/*/stat``), else only the CPU time."""
    rest = _fields(f"/proc/{pid}/stat")
    if rest is None:
        return None
    states = ""
    if threads:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return None
        for tid in tids:
            task = _fields(f"/proc/{pid}/task/{tid}/stat")
            if task is not None:  # a thread may exit while we read
                states += task[0]
        if not states:
            states = rest[0]
        if all(s in DEAD_STATES for s in states):
            return None
    elif rest[0] in DEAD_STATES:
        return None
    return ProcSample(start=int(rest[19]), cpu_s=(int(rest[11]) + int(rest[12])) / CLK_TCK,
                      states=states)


def classify(age_s: float, bound_s: float, states: str, cpu_s: float | None,
             window_s: float | None, busy_share: float = BUSY_SHARE,
             min_window_s: float = MIN_WINDOW_S) -> Assessment:
    """The verdict on a process whose counters are ``age_s`` old (beyond the heartbeat):
    ``states`` its thread states, ``cpu_s`` the CPU time it used over the last
    ``window_s`` (None: no earlier sample). See the module docstring for the rule; a
    runnable process whose window is too short (or unknown) is starved for now."""
    if age_s > bound_s:
        return Assessment(Verdict.HUNG, f"no progress for more than {bound_s:g} s, the "
                                        "starvation bound")
    if not set(states) & set(WAITING_STATES):
        return Assessment(Verdict.HUNG, "no runnable thread, states "
                                        f"{''.join(sorted(set(states)))}")
    if cpu_s is None or window_s is None or window_s < min_window_s:
        return Assessment(Verdict.STARVED, "runnable, CPU share not measured yet")
    share = max(cpu_s, 0.0) / window_s
    if share >= busy_share:
        return Assessment(Verdict.HUNG, f"busy: {share:.0%} of a core over {window_s:.1f} s "
                                        "without progress", share)
    return Assessment(Verdict.STARVED, f"runnable, {share:.0%} of a core over "
                                       f"{window_s:.1f} s: waiting for a CPU", share)


@dataclass
class _Watch:
    """What the tracker knows of one instance's process."""

    pid: int
    start: int | None = None
    updated: float | None = None  # the counters' time of the baseline
    base: tuple[float, float] | None = None  # (time, CPU seconds) when last seen fresh
    starved_at: float | None = None  # the stale `updated` of the starvation episode
    hung_at: float | None = None  # the stale `updated` judged hung ...
    hung: Assessment | None = None  # ... and the verdict (held until fresh again)


class HangTracker:
    """Judges the stale counters of local VNFs (see the module docstring).

    ``heartbeat_s``: counters older than this are stale; ``bound_s``: defaults to
    :func:`starvation_bound`; ``reader``: reads a process (:func:`read_proc`)."""

    def __init__(self, heartbeat_s: float, bound_s: float | None = None,
                 busy_share: float = BUSY_SHARE,
                 reader: Callable[[int, bool], ProcSample | None] = read_proc) -> None:
        self.heartbeat_s = heartbeat_s
        self.bound_s = starvation_bound(heartbeat_s) if bound_s is None else bound_s
        self.busy_share = busy_share
        self.reader = reader
        self.starved: dict[str, int] = {}  # starvation episodes per instance
        self._watches: dict[str, _Watch] = {}

    def assess(self, name: str, pid: int, updated: float | None, now: float,
               recheck: Callable[[], float | None] | None = None) -> Assessment:
        """Instance ``name``'s VNF ``pid`` last wrote its counters at ``updated``; at
        ``now`` (same clock): fresh, starved, hung or gone? ``recheck`` reads the
        counters' ``updated`` again (None when it cannot): asked after the /proc sample,
        before a hung verdict."""
        watch = self._watches.get(name)
        if watch is None or watch.pid != pid:
            watch = self._watches[name] = _Watch(pid)
        if updated is None or now - updated <= self.heartbeat_s:
            self._fresh(name, watch, updated, now)
            return Assessment(Verdict.FRESH)
        if watch.hung is not None and watch.hung_at == updated:
            return watch.hung
        sample = self.reader(pid, True)
        if sample is None:
            del self._watches[name]
            return Assessment(Verdict.GONE, f"VNF process {pid} is gone")
        if watch.start != sample.start or watch.updated != updated or watch.base is None:
            # no baseline of this process since it wrote `updated` (the PID was reused,
            # or its last progress went unseen): measure from here on
            watch.start, watch.updated, watch.base = sample.start, updated, (now, sample.cpu_s)
            verdict = classify(now - updated, self.bound_s, sample.states, None, None)
        else:
            at, cpu = watch.base
            verdict = classify(now - updated, self.bound_s, sample.states,
                               sample.cpu_s - cpu, now - at, self.busy_share)
        if verdict.verdict is Verdict.HUNG:
            again = recheck() if recheck is not None else None
            if again is not None and again != updated:  # it wrote meanwhile: progress
                return self.assess(name, pid, again, now)
            watch.hung_at, watch.hung = updated, verdict
        elif verdict.share is not None and watch.starved_at != updated:
            watch.starved_at = updated
            self.starved[name] = self.starved.get(name, 0) + 1
            log.info("instance %s: VNF process %d is starved, not hung (counters %.1f s "
                     "old; %s); kept up for at most %g s", name, pid, now - updated,
                     verdict.reason, self.bound_s)
        return verdict

    def _fresh(self, name: str, watch: _Watch, updated: float | None, now: float) -> None:
        """Counters fresh: the baseline is the CPU time at the first sight of them."""
        if watch.starved_at is not None:
            log.debug("instance %s: VNF process %d makes progress again", name, watch.pid)
        watch.starved_at = watch.hung_at = watch.hung = None
        if updated is None or (updated == watch.updated and watch.base is not None):
            return
        sample = self.reader(watch.pid, False)
        if sample is None:
            return  # gone: the pidfd or the next look tells
        watch.start, watch.updated, watch.base = sample.start, updated, (now, sample.cpu_s)

    def starving(self, name: str) -> bool:
        """Whether ``name`` is in a starvation episode now (kept up, stale)."""
        watch = self._watches.get(name)
        return watch is not None and watch.starved_at is not None and watch.hung is None

    def forget(self, name: str) -> None:
        """Drop what is known of ``name``'s process (its counter stays)."""
        self._watches.pop(name, None)
