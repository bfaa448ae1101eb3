"""topologies.health.start_paced: a few processes starting at a time (issue #13)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from topologies import health


class FakeProc:
    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Starter:
    """Starts fake processes that become ready ``ready_after`` seconds after their start;
    records how many were starting (started, not ready) at each start."""

    def __init__(self, tmp: Path, ready_after: float = 0.05) -> None:
        self.tmp = tmp
        self.ready_after = ready_after
        self.started: list[str] = []
        self.ready_at: dict[str, float] = {}
        self.starting_at_start: list[int] = []
        self.procs: dict[str, FakeProc] = {}

    def starting(self) -> int:
        now = time.monotonic()
        return sum(1 for n in self.started if self.ready_at[n] > now)

    def make(self, name: str, ready: bool = True) -> Callable[[], health.Probe]:
        def start() -> health.Probe:
            self.starting_at_start.append(self.starting())
            self.started.append(name)
            self.ready_at[name] = time.monotonic() + self.ready_after if ready else 1e18
            proc = self.procs[name] = FakeProc()
            log = self.tmp / f"{name}.log"
            log.write_text(f"{name} log line\n")

            def check() -> str | None:
                return None if time.monotonic() >= self.ready_at[name] else "not yet"
            return health.Probe(name, proc, log, check)  # type: ignore[arg-type]
        return start


def test_at_most_window_starting_and_all_started_in_order(tmp_path: Path) -> None:
    s = Starter(tmp_path)
    names = [f"p{i}" for i in range(10)]
    took = health.start_paced([s.make(n) for n in names], window=3, timeout_s=5)
    assert s.started == names
    assert max(s.starting_at_start) <= 2  # the 3rd of a window starts with 2 starting
    assert max(s.starting_at_start) == 2  # and the window is used
    assert all(time.monotonic() >= s.ready_at[n] for n in names)  # all ready at return
    assert took >= 10 / 3 * 0.05 * 0.9  # could not start faster than the window allows


def test_window_of_one_is_serial(tmp_path: Path) -> None:
    s = Starter(tmp_path, ready_after=0.02)
    health.start_paced([s.make(f"p{i}") for i in range(5)], window=1, timeout_s=5)
    assert s.starting_at_start == [0] * 5


def test_a_process_that_dies_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    s = Starter(tmp_path)
    starts = [s.make("ok"), s.make("bad", ready=False), s.make("never")]

    def killing_start() -> health.Probe:
        probe = starts[1]()
        s.procs["bad"].returncode = 3
        return probe
    with pytest.raises(health.BringUpError, match=r"(?s)bad exited \(3\).*bad log line"):
        health.start_paced([starts[0], killing_start, starts[2]], window=1, timeout_s=5)
    assert "never" not in s.started  # nothing more is started after a failure


def test_a_process_never_ready_times_out_from_its_own_start(tmp_path: Path) -> None:
    s = Starter(tmp_path, ready_after=0.1)
    starts = [s.make("a"), s.make("b"), s.make("stuck", ready=False)]
    t0 = time.monotonic()
    with pytest.raises(health.BringUpError, match=r"stuck not ready within 0.3 s .*not yet"):
        health.start_paced(starts, window=1, timeout_s=0.3)
    # a and b took ~0.2 s before stuck started: its 0.3 s count from its own start
    assert time.monotonic() - t0 >= 0.45


def test_window_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSFC_START_WINDOW", "7")
    assert health.start_window() == 7
    for bad in ("0", "x", ""):
        monkeypatch.setenv("DSFC_START_WINDOW", bad)
        assert health.start_window() >= 2
