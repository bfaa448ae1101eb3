"""Run-state liveness and process ending (no root: only this test's own processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from topologies import runstate


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2:].split()[0]


def test_zombie_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = runstate.proc_start_time(proc.pid)
    assert start is not None
    deadline = time.monotonic() + 10
    while _state(proc.pid) != "Z" and time.monotonic() < deadline:  # exited, not reaped
        time.sleep(0.01)
    assert _state(proc.pid) == "Z"
    assert runstate.proc_start_time(proc.pid) == start  # /proc still lists it
    assert not runstate.alive(proc.pid, start)
    assert not runstate.alive(proc.pid, None)
    proc.wait()
    assert not runstate.alive(proc.pid, start)


def test_alive_checks_start_time() -> None:
    me = os.getpid()
    assert runstate.alive(me, runstate.proc_start_time(me))
    assert runstate.alive(me, None)
    assert not runstate.alive(me, (runstate.proc_start_time(me) or 0) + 1)  # a reused PID


def test_end_processes_reaps_children_without_waiting_the_grace() -> None:
    """Our own children exit at SIGTERM: ended and reaped well before a 30 s grace."""
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(5)]
    t0 = time.monotonic()
    ended = runstate.end_processes([p.pid for p in procs], grace_s=30)
    assert time.monotonic() - t0 < 10
    assert sorted(pid for pid, _ in ended) == sorted(p.pid for p in procs)
    for p in procs:  # reaped by end_processes: no zombie left
        assert not Path(f"/proc/{p.pid}").exists()


def test_end_processes_kills_after_grace() -> None:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                             "print('ready', flush=True)\n"
                             "time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    reaped = []
    real_waitpid = os.waitpid

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        out = real_waitpid(pid, options)
        if out[0]:
            reaped.append(out)
        return out

    os.waitpid = waitpid  # type: ignore[assignment]
    try:
        runstate.end_processes([proc.pid], grace_s=0.3)
    finally:
        os.waitpid = real_waitpid  # type: ignore[assignment]
    proc.stdout.close()
    assert [(pid, os.WTERMSIG(status)) for pid, status in reaped] == [
        (proc.pid, signal.SIGKILL)]
