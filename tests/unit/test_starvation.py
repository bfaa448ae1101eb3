"""Starved or hung (dmano/starvation.py), on synthetic /proc readings: the rule's
boundaries, the baseline taken while the counters are fresh, one count and one log line
per starvation episode, the bound, a held hung verdict, a reused PID, the recheck."""

from __future__ import annotations

import logging

import pytest

from dmano.starvation import (
    BUSY_SHARE,
    MIN_WINDOW_S,
    Assessment,
    HangTracker,
    ProcSample,
    Verdict,
    classify,
    starvation_bound,
)

HB = 3.0  # heartbeat of generated configurations
T0 = 1_000_000.0  # the counters' last `updated`


class FakeProc:
    """What /proc says of one process; the tracker's reader."""

    def __init__(self, states: str = "R", cpu_s: float = 10.0, start: int = 7) -> None:
        self.states, self.cpu_s, self.start = states, cpu_s, start
        self.gone = False
        self.reads: list[bool] = []  # the `threads` argument of each read

    def __call__(self, pid: int, threads: bool) -> ProcSample | None:
        self.reads.append(threads)
        if self.gone:
            return None
        return ProcSample(self.start, self.cpu_s, self.states if threads else "")


def tracker(proc: FakeProc, **kw: float) -> HangTracker:
    return HangTracker(HB, reader=proc, **kw)


def seen_fresh(t: HangTracker, at: float = T0) -> None:
    assert t.assess("fw", 42, T0, at).verdict is Verdict.FRESH


# -- the rule ---------------------------------------------------------------------------

def test_bound() -> None:
    assert starvation_bound(1.0) == 30.0 and starvation_bound(3.0) == 30.0
    assert starvation_bound(5.0) == 50.0 and starvation_bound(0.05) == 30.0


@pytest.mark.parametrize("states", ["S", "T", "t", "SSS", "ST"])
def test_no_runnable_thread_is_hung_at_once(states: str) -> None:
    a = classify(HB + 0.1, 30.0, states, None, None)
    assert a.verdict is Verdict.HUNG and "no runnable thread" in a.reason
    assert classify(HB + 0.1, 30.0, states, 0.0, 10.0).verdict is Verdict.HUNG


@pytest.mark.parametrize("states", ["D", "SSD", "DS", "RD"])
def test_a_thread_waiting_in_the_kernel_is_starved_not_hung(states: str) -> None:
    """D (uninterruptible wait: I/O, a lock, reclaim) is the machine's contention."""
    assert classify(HB + 0.1, 30.0, states, 0.0, 10.0).verdict is Verdict.STARVED
    assert classify(31.0, 30.0, states, 0.0, 10.0).verdict is Verdict.HUNG  # the bound


@pytest.mark.parametrize("cpu_s, window_s, verdict", [
    (BUSY_SHARE * 4.0, 4.0, Verdict.HUNG),  # exactly half a core: busy
    (BUSY_SHARE * 4.0 - 0.04, 4.0, Verdict.STARVED),  # just below (4 ticks)
    (4.0, 4.0, Verdict.HUNG),
    (8.0, 4.0, Verdict.HUNG),  # two threads busy
    (0.0, 4.0, Verdict.STARVED),
    (0.01, 4.0, Verdict.STARVED),
    (5.0, MIN_WINDOW_S - 0.01, Verdict.STARVED),  # window too short to judge
    (5.0, None, Verdict.STARVED),  # no earlier sample
])
def test_runnable_busy_or_starved(cpu_s: float, window_s: float | None,
                                  verdict: Verdict) -> None:
    a = classify(HB + 1, 30.0, "SR", cpu_s, window_s)
    assert a.verdict is verdict
    assert ("busy" in a.reason) == (verdict is Verdict.HUNG)
    measured = window_s is not None and window_s >= MIN_WINDOW_S
    assert (a.share is not None) == measured


def test_beyond_the_bound_is_hung_whatever_the_state() -> None:
    assert classify(30.0, 30.0, "R", 0.0, 27.0).verdict is Verdict.STARVED
    a = classify(30.01, 30.0, "R", 0.0, 27.0)
    assert a.verdict is Verdict.HUNG and "30 s, the starvation bound" in a.reason


# -- the tracker -------------------------------------------------------------------------

def test_baseline_sampled_once_per_fresh_update() -> None:
    proc = FakeProc()
    t = tracker(proc)
    for dt in (0.0, 0.25, 0.5):
        assert t.assess("fw", 42, T0, T0 + dt).verdict is Verdict.FRESH
    assert proc.reads == [False]  # one cheap read (no threads) for `updated` T0
    assert t.assess("fw", 42, T0 + 0.2, T0 + 0.7).verdict is Verdict.FRESH
    assert proc.reads == [False, False]
    assert t.assess("fw", 42, None, T0 + 99).verdict is Verdict.FRESH  # never stale
    assert proc.reads == [False, False]


def test_starved_episode_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    seen_fresh(t)
    with caplog.at_level(logging.INFO, logger="dmano.starvation"):
        for i in range(1, 10):  # 0.1 s of CPU in 4..12 s: about 1 %
            proc.cpu_s = 10.0 + 0.01 * i
            a = t.assess("fw", 42, T0, T0 + 3 + i)
            assert a.verdict is Verdict.STARVED and a.share is not None and a.share < 0.05
    assert t.starved == {"fw": 1} and t.starving("fw") and not t.starving("other")
    lines = [r for r in caplog.records if "starved, not hung" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert t.assess("fw", 42, T0 + 20, T0 + 20.1).verdict is Verdict.FRESH  # it ran
    assert not t.starving("fw")
    proc.cpu_s += 0.01
    assert t.assess("fw", 42, T0 + 20, T0 + 25).verdict is Verdict.STARVED  # again
    assert t.starved == {"fw": 2}


def test_starved_then_hung_beyond_the_bound_and_held() -> None:
    proc = FakeProc(states="R")
    t = tracker(proc)
    seen_fresh(t)
    assert t.assess("fw", 42, T0, T0 + 29.9).verdict is Verdict.STARVED
    assert t.starving("fw")
    a = t.assess("fw", 42, T0, T0 + 30.1)
    assert a.verdict is Verdict.HUNG and "starvation bound" in a.reason
    assert not t.starving("fw")
    # held while no progress: the same verdict, /proc not even read
    reads = len(proc.reads)
    assert t.assess("fw", 42, T0, T0 + 31) == a and len(proc.reads) == reads
    assert t.assess("fw", 42, T0 + 31, T0 + 31.1).verdict is Verdict.FRESH


def test_a_hung_verdict_is_held_until_fresh_again() -> None:
    """A sleeping process that becomes runnable (without writing) stays hung."""
    proc = FakeProc(states="S")
    t = tracker(proc)
    seen_fresh(t)
    a = t.assess("fw", 42, T0, T0 + 4)
    assert a.verdict is Verdict.HUNG and a.reason == "no runnable thread, states S"
    proc.states = "R"
    assert t.assess("fw", 42, T0, T0 + 5) == a
    assert t.starved == {}


def test_busy_loop_is_hung() -> None:
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    seen_fresh(t)
    proc.cpu_s = 13.5  # 3.5 s of CPU in 3.5 s
    a = t.assess("fw", 42, T0, T0 + 3.5)
    assert a.verdict is Verdict.HUNG and a.reason.startswith("busy: 100% of a core")
    assert t.starved == {}


def test_no_baseline_measures_from_the_first_stale_look() -> None:
    """The D-MANO started while the VNF was already stale: runnable, kept up (not
    counted) until a window is measured."""
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    a = t.assess("fw", 42, T0, T0 + 10)
    assert a == Assessment(Verdict.STARVED, "runnable, CPU share not measured yet")
    assert t.starved == {}
    proc.cpu_s = 11.5  # 1.5 s of CPU in 2 s
    assert t.assess("fw", 42, T0, T0 + 12).verdict is Verdict.HUNG


def test_unseen_progress_moves_the_baseline() -> None:
    """The VNF wrote again while nobody looked: the CPU it used before is not counted."""
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    seen_fresh(t)
    proc.cpu_s = 20.0  # worked hard, wrote at T0 + 12, then starved
    assert t.assess("fw", 42, T0 + 12, T0 + 16).share is None
    proc.cpu_s = 20.01
    a = t.assess("fw", 42, T0 + 12, T0 + 18)
    assert a.verdict is Verdict.STARVED and a.share is not None and a.share < 0.05


def test_reused_pid_or_new_pid_starts_over() -> None:
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    seen_fresh(t)
    proc.start, proc.cpu_s = 99, 0.01  # another process under the same PID
    assert t.assess("fw", 42, T0, T0 + 5).share is None
    proc.start = 7
    seen_fresh(t)
    assert t.assess("fw", 43, T0, T0 + 5).share is None  # a restarted VNF


def test_gone() -> None:
    proc = FakeProc()
    t = tracker(proc)
    seen_fresh(t)
    proc.cpu_s += 0.01
    assert t.assess("fw", 42, T0, T0 + 4).verdict is Verdict.STARVED
    proc.gone = True
    assert t.assess("fw", 42, T0, T0 + 5) == Assessment(Verdict.GONE,
                                                        "VNF process 42 is gone")
    assert not t.starving("fw") and t.starved == {"fw": 1}
    assert t.assess("fw", 42, T0 + 4, T0 + 4.1).verdict is Verdict.FRESH


def test_recheck_sees_progress_made_while_reading_proc() -> None:
    """Counters read stale, then the VNF wrote and went back to sleep before /proc was
    read: the second read of the counters shows the progress, so not hung."""
    proc = FakeProc(states="S")
    t = tracker(proc)
    seen_fresh(t)
    a = t.assess("fw", 42, T0, T0 + 5, recheck=lambda: T0 + 4.9)
    assert a.verdict is Verdict.FRESH
    assert t.assess("fw", 42, T0, T0 + 5, recheck=lambda: T0).verdict is Verdict.HUNG
    t2 = tracker(FakeProc(states="S"))
    seen_fresh(t2)
    assert t2.assess("fw", 42, T0, T0 + 5, recheck=lambda: None).verdict is Verdict.HUNG


def test_instances_are_tracked_apart() -> None:
    proc = FakeProc(states="R", cpu_s=10.0)
    t = tracker(proc)
    for name in ("a", "b"):
        assert t.assess(name, 42, T0, T0).verdict is Verdict.FRESH
    proc.cpu_s = 10.01
    assert t.assess("a", 42, T0, T0 + 4).verdict is Verdict.STARVED
    assert t.assess("b", 42, T0, T0 + 4).verdict is Verdict.STARVED
    assert t.starved == {"a": 1, "b": 1}
    t.forget("a")
    assert t.assess("a", 42, T0, T0 + 5).share is None
