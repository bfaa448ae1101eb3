"""Real processes for the starvation tests (dmano/starvation.py): sleepers, busy loops, a
stopped process, and a busy loop starved of CPU on purpose (pinned to one CPU with a
competitor, at ``SCHED_IDLE``). Every process is killed by its PID and reaped by the
``procs`` fixture (conftest.py); waits poll with generous deadlines, never a fixed sleep."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from dmano.starvation import read_proc
from tests.unit.dmano_helpers import stop_child

SLEEP = "import time; time.sleep(600)"
BUSY = "while True: pass"
DEADLINE_S = 60.0  # only a bound for a broken test on a loaded machine
POLL_S = 0.05


def wait_until(cond: Callable[[], object], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


class Procs:
    """The processes one test starts; :meth:`close` kills (by PID) and reaps them all."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, code: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
        self.started.append(proc)
        return proc

    def sleeper(self) -> subprocess.Popen[bytes]:
        """A process asleep (state S) once started."""
        proc = self.start(SLEEP)
        wait_until(lambda: cpu_s(proc.pid) > 0 and states(proc.pid) == "S", "a sleeper")
        return proc

    def stopped(self) -> subprocess.Popen[bytes]:
        """A sleeper stopped with SIGSTOP (state T)."""
        proc = self.sleeper()
        os.kill(proc.pid, signal.SIGSTOP)
        wait_until(lambda: states(proc.pid) == "T", "a stopped process")
        return proc

    def busy(self) -> subprocess.Popen[bytes]:
        """A busy loop, in its loop (it has used more CPU than Python's start-up)."""
        proc = self.start(BUSY)
        wait_until(lambda: cpu_s(proc.pid) >= 0.3, "a busy loop in its loop")
        return proc

    def close(self) -> None:
        for proc in self.started:
            stop_child(proc)  # SIGKILL to its PID (a stopped process dies too), reap


def cpu_s(pid: int) -> float:
    sample = read_proc(pid, False)
    return sample.cpu_s if sample is not None else -1.0


def states(pid: int) -> str:
    sample = read_proc(pid)
    return sample.states if sample is not None else ""


def one_cpu() -> int:
    """A CPU this process may run on (children inherit its affinity)."""
    return max(os.sched_getaffinity(0))


def starve(vnf: subprocess.Popen[bytes], competitor: subprocess.Popen[bytes]) -> None:
    """Starve ``vnf`` of CPU while it stays runnable: both on one CPU, the VNF at
    SCHED_IDLE (weight 3 against the competitor's 1024: about 0.3 % of that CPU)."""
    cpu = one_cpu()
    os.sched_setaffinity(competitor.pid, {cpu})
    os.sched_setaffinity(vnf.pid, {cpu})
    os.sched_setscheduler(vnf.pid, os.SCHED_IDLE, os.sched_param(0))


def boost(proc: subprocess.Popen[bytes]) -> None:
    """Make sure a busy loop gets (most of) a CPU even on a saturated machine: real-time
    round-robin on one CPU (the kernel keeps 5 % of it for others); without the right
    to, nice -10, else as it is. For a second or two: the test kills it once judged."""
    os.sched_setaffinity(proc.pid, {one_cpu()})
    try:
        os.sched_setscheduler(proc.pid, os.SCHED_RR, os.sched_param(1))
    except OSError:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, -10)
