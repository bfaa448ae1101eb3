"""Starved or hung, with real processes and the real /proc (issue #13): a sleeping, a
stopped and a busy-looping VNF with stale counters are hung; a busy loop starved of CPU
on purpose (one CPU shared with a competitor, at SCHED_IDLE) stays up, counted, until
the starvation bound. Through Liveness and Monitor sharing one tracker, as the D-MANO.

Nothing asserts speed: every wait polls up to a generous deadline (starve_helpers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from dmano.config import InstanceConf
from dmano.liveness import Liveness
from dmano.monitor import Monitor
from dmano.starvation import HangTracker, read_proc
from tests.unit.dmano_helpers import write_counters
from tests.unit.starve_helpers import DEADLINE_S, POLL_S, Procs, boost, starve, wait_until

HB = 0.5  # heartbeat of these tests: stale soon; windows are then at least 1 s
HB_LONG = 2.0  # where the test must see the counters fresh first, even on a loaded machine


def inst(tmp_path: Path) -> InstanceConf:
    return InstanceConf(name="fw_a", id=1, service=1, capacity=150,
                        stats=tmp_path / "fw_a.json")


def hung_by_liveness(conf: InstanceConf, pid: int, tracker: HangTracker,
                     fresh_first: bool = True) -> str:
    """Watch ``pid`` (counters written once: fresh, or already stale) until Liveness
    reports it down; the reason."""
    downs: list[str] = []

    async def main() -> None:
        live = Liveness([conf], HB, on_down=lambda n, r: downs.append(r), tracker=tracker)
        write_counters(conf.stats, pid, updated=None if fresh_first else time.time() - 2)
        live.watch(conf.name, pid)
        deadline = time.monotonic() + DEADLINE_S
        while not downs:
            assert time.monotonic() < deadline, "never reported down"
            live.check()
            await asyncio.sleep(POLL_S)
        live.close()

    asyncio.run(main())
    assert len(downs) == 1
    return downs[0]


# -- reading /proc ------------------------------------------------------------------------

def test_read_proc_of_this_process() -> None:
    me = read_proc(os.getpid())
    assert me is not None and "R" in me.states  # this thread, reading
    assert me.cpu_s > 0 and len(me.states) == len(os.listdir("/proc/self/task"))
    stat = Path("/proc/self/stat").read_text()
    assert me.start == int(stat[stat.rfind(")") + 2:].split()[19])
    light = read_proc(os.getpid(), threads=False)
    assert light is not None and light.states == "" and light.start == me.start


def test_a_zombie_or_missing_process_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: (read_proc(proc.pid) is None), "the child to exit (a zombie)")
        assert os.path.exists(f"/proc/{proc.pid}")  # not reaped yet
    finally:
        proc.wait(DEADLINE_S)
    assert read_proc(proc.pid) is None


# -- hung ---------------------------------------------------------------------------------

def test_sleeping_vnf_with_stale_counters_is_hung(tmp_path: Path, procs: Procs) -> None:
    sleeper = procs.sleeper()
    reason = hung_by_liveness(inst(tmp_path), sleeper.pid, HangTracker(HB),
                              fresh_first=False)
    assert "VNF hung (no runnable thread, states S)" in reason, reason


def test_stopped_vnf_is_hung(tmp_path: Path, procs: Procs) -> None:
    stopped = procs.stopped()
    reason = hung_by_liveness(inst(tmp_path), stopped.pid, HangTracker(HB))
    assert "VNF hung (no runnable thread, states T)" in reason, reason


def test_busy_looping_vnf_is_hung_once_it_used_the_cpu(tmp_path: Path, procs: Procs) -> None:
    busy = procs.busy()
    boost(busy)  # it gets its CPU whatever else runs on this machine
    tracker = HangTracker(HB, bound_s=3600.0)  # so only the busy rule can tell
    reason = hung_by_liveness(inst(tmp_path), busy.pid, tracker)
    assert "VNF hung (busy: " in reason and "of a core over" in reason, reason
    assert tracker.starved == {}


def test_monitor_says_hung_too(tmp_path: Path, procs: Procs) -> None:
    conf = inst(tmp_path)
    sleeper = procs.sleeper()
    mon = Monitor((conf,), stale_s=HB)
    write_counters(conf.stats, sleeper.pid, updated=time.time() - 2)
    st = mon.poll()["fw_a"]
    assert not st.up and "VNF hung (no runnable thread, states S)" in st.reason
    assert mon.poll(time.time() + 1)["fw_a"].reason == st.reason  # stable


# -- starved ------------------------------------------------------------------------------

def test_starved_vnf_stays_up_until_the_bound(tmp_path: Path, procs: Procs) -> None:
    """One tracker for Liveness (every tick) and Monitor (every period), as the daemon."""
    conf = inst(tmp_path)
    competitor, vnf = procs.busy(), procs.busy()
    starve(vnf, competitor)
    tracker = HangTracker(HB_LONG)  # the default bound: 30 s
    mon = Monitor((conf,), stale_s=HB_LONG, tracker=tracker)
    downs: list[str] = []

    async def main() -> None:
        live = Liveness([conf], HB_LONG, on_down=lambda n, r: downs.append(r),
                        tracker=tracker)
        write_counters(conf.stats, vnf.pid, rate=42.0)  # fresh, then never again
        st = mon.poll()["fw_a"]
        assert st.up and not st.starved and st.measurement.load == 42.0
        live.watch(conf.name, vnf.pid)
        deadline = time.monotonic() + DEADLINE_S
        while not tracker.starved:  # stale, then measured: starved
            assert time.monotonic() < deadline, "never judged starved"
            live.check()
            assert downs == [] and live.watching(conf.name)
            await asyncio.sleep(POLL_S)
        assert tracker.starved == {"fw_a": 1} and tracker.starving("fw_a")
        sample = read_proc(vnf.pid)
        assert sample is not None and "R" in sample.states  # runnable all along

        st = mon.poll()["fw_a"]  # the period: up on its last measurement
        assert st.up and st.starved and st.reason == "" and st.pid == vnf.pid
        assert st.measurement.load == 42.0
        live.check()
        assert downs == [] and tracker.starved == {"fw_a": 1}  # one episode

        later = time.time() + tracker.bound_s + 1  # starvation does not hide a hang
        live.check(later)
        assert len(downs) == 1 and "starvation bound" in downs[0], downs
        st = mon.poll(later)["fw_a"]
        assert not st.up and "30 s, the starvation bound" in st.reason
        live.close()

    asyncio.run(main())
