"""Fast detection of a local VNF's death or hang (DESIGN.md §9), between policy periods.

* **Death**: one pidfd (``os.pidfd_open``) per VNF process, registered in the asyncio
  loop with ``loop.add_reader``; the kernel makes it readable the moment the process
  exits, so the instance is reported down at once. The PID is the one in the VNF's
  counters file; the pidfd is re-armed when it changes (a restarted VNF).
* **Hang**: the VNF rewrites its counters file every ``--stats-interval``; every
  ``tick_s`` the ``updated`` time of each watched instance's file is checked. An
  instance whose file is missing, unreadable or bad is reported down; one whose file is
  older than ``heartbeat_s`` is judged by the :class:`~dmano.starvation.HangTracker`
  (shared with the monitor): down when hung, left up when only starved of CPU (a
  saturated machine), down anyway beyond the starvation bound.

Only instances the daemon considers up are watched (:meth:`Liveness.watch`); a report
(``on_down(name, reason)``) is made once, after which the instance is unwatched until the
daemon's next period poll finds it up again (a restarted VNF: new PID, fresh file). A
pidfd error never propagates: a process already gone is down, any other error leaves
the instance to the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from functools import partial

from dmano.config import InstanceConf
from dmano.monitor import (
    BadCountersError,
    CountersUnavailableError,
    counters_updated,
    read_counters,
)
from dmano.starvation import HangTracker, Verdict

log = logging.getLogger(__name__)

DownCallback = Callable[[str, str], None]


def tick_for(heartbeat_s: float) -> float:
    """The heartbeat check interval: a quarter of the timeout, within 0.05..0.25 s."""
    return min(0.25, max(0.05, heartbeat_s / 4))


class Liveness:
    """Watches the local VNF processes of one node (see the module docstring);
    ``tracker``: the node's :class:`HangTracker` (by default its own, on
    ``heartbeat_s``)."""

    def __init__(self, instances: Iterable[InstanceConf], heartbeat_s: float,
                 on_down: DownCallback, tick_s: float | None = None,
                 on_bad_file: Callable[[str], None] | None = None,
                 tracker: HangTracker | None = None) -> None:
        self.instances = {inst.name: inst for inst in instances}
        self.heartbeat_s = heartbeat_s
        self.tracker = tracker if tracker is not None else HangTracker(heartbeat_s)
        self.tick_s = tick_s if tick_s is not None else tick_for(heartbeat_s)
        self.on_down = on_down
        self.on_bad_file = on_bad_file  # counts a bad counters file (Monitor.count_bad)
        self.reports = 0  # instances reported down
        self._watched: set[str] = set()
        self._armed: dict[str, tuple[int, int]] = {}  # name -> (pid, pidfd)
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what the daemon tells us ------------------------------------------------------
    def watch(self, name: str, pid: int) -> None:
        """``name`` is up with process ``pid``: report its death or hang from now on."""
        if name not in self.instances:
            return
        self._watched.add(name)
        self._arm(name, pid)

    def unwatch(self, name: str) -> None:
        """``name`` is down (the daemon knows): nothing to report."""
        self._watched.discard(name)
        self._disarm(name)

    def watching(self, name: str) -> bool:
        return name in self._watched

    def armed_pid(self, name: str) -> int | None:
        armed = self._armed.get(name)
        return armed[0] if armed is not None else None

    # -- pidfds ------------------------------------------------------------------------
    def _arm(self, name: str, pid: int) -> None:
        armed = self._armed.get(name)
        if armed is not None and armed[0] == pid:
            return
        self._disarm(name)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._down(name, f"VNF process {pid} is gone")
            return
        except (OSError, AttributeError) as exc:  # no pidfd support: heartbeat only
            log.warning("instance %s: cannot watch VNF process %d (%s); relying on the "
                        "heartbeat", name, pid, exc)
            return
        try:
            self._event_loop().add_reader(fd, self._exited, name, pid)
        except (OSError, RuntimeError, ValueError) as exc:
            os.close(fd)
            log.warning("instance %s: cannot watch VNF process %d (%s); relying on the "
                        "heartbeat", name, pid, exc)
            return
        self._armed[name] = (pid, fd)
        log.debug("instance %s: watching VNF process %d (pidfd %d)", name, pid, fd)

    def _disarm(self, name: str) -> None:
        armed = self._armed.pop(name, None)
        if armed is None:
            return
        _, fd = armed
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _exited(self, name: str, pid: int) -> None:
        armed = self._armed.get(name)
        if armed is None or armed[0] != pid:
            return
        self._down(name, f"VNF process {pid} exited")

    def _down(self, name: str, reason: str) -> None:
        self._disarm(name)
        if name not in self._watched:
            return
        self._watched.discard(name)
        self.reports += 1
        log.warning("instance %s is down: %s (detected between periods)", name, reason)
        try:
            self.on_down(name, reason)
        except Exception:  # the daemon's bug must not stop the detection of others
            log.exception("handling the death of instance %s failed", name)

    # -- heartbeat ---------------------------------------------------------------------
    def check(self, now: float | None = None) -> None:
        """One heartbeat round over the watched instances (also re-arms on a new PID)."""
        now = time.time() if now is None else now
        for name in sorted(self._watched):
            inst = self.instances[name]
            try:
                counters = read_counters(inst.stats)
            except CountersUnavailableError as exc:
                self._down(name, str(exc))
                continue
            except BadCountersError as exc:
                if self.on_bad_file is not None:
                    self.on_bad_file(name)
                self._down(name, f"bad counters file {inst.stats}: {exc}")
                continue
            updated = counters.updated
            judged = self.tracker.assess(name, counters.pid, updated, now,
                                         partial(counters_updated, inst.stats))
            if judged.verdict is Verdict.GONE:
                self._down(name, judged.reason)
                continue
            if judged.verdict is Verdict.HUNG and updated is not None:
                self._down(name, f"counters not updated for {now - updated:.2f} s "
                                 f"(heartbeat {self.heartbeat_s:g} s): VNF hung "
                                 f"({judged.reason})")
                continue
            if self.armed_pid(name) != counters.pid:
                self._arm(name, counters.pid)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat rounds every ``tick_s`` until ``stop``; then release the pidfds."""
        self._event_loop()
        try:
            while not stop.is_set():
                try:
                    self.check()
                except Exception:  # never let one bad round end the detection
                    log.exception("VNF heartbeat check failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_s)
        finally:
            self.close()

    def close(self) -> None:
        for name in list(self._armed):
            self._disarm(name)
