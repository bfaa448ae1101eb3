"""The discrete-event engine: a clock and a queue of timed callbacks.

Times are seconds of the emulation's wall clock since the scenario's t = 0 (what an
emulated run of the same file would live through, ``time_scale`` included); outputs are
converted to scenario time like the runner's. Events at equal times run in the order
they were scheduled (a sequence number breaks ties), so a run is deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Timer:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("args", "cancelled", "fn", "t")

    def __init__(self, t: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.t = t
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Engine:
    """``at(t, fn, *args)`` schedules, ``run(until)`` plays the queue in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.executed = 0

    def at(self, t: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` at time ``t`` (never before the current time)."""
        t = max(t, self.now)
        timer = Timer(t, fn, args)
        heapq.heappush(self._queue, (t, next(self._seq), timer))
        return timer

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.at(self.now + max(delay, 0.0), fn, *args)

    def next_time(self) -> float | None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def run(self, until: float) -> None:
        """Run every callback due at or before ``until``; the clock ends at ``until``."""
        queue = self._queue
        while queue and queue[0][0] <= until:
            t, _, timer = heapq.heappop(queue)
            if timer.cancelled:
                continue
            self.now = t
            self.executed += 1
            timer.fn(*timer.args)
        self.now = max(self.now, until)

    def __len__(self) -> int:
        return len(self._queue)
