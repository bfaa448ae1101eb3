"""Throttling the D-MANO on churn, as ospfd throttles SPF: recomputations after topology
changes (:class:`TopologyThrottle`) and writes to the connector (:class:`Backoff`).

A change of the routers or networks (a new :attr:`dmano.lsdb.LsdbMirror.topology_version`)
makes the next recomputation run shortest paths again. When a network starts, or a node
with many links fails, router LSAs arrive in bursts for seconds, and every D-MANO of the
network recomputing on each of them is what loaded a 100-node emulation at start-up
(load average 134; issue #13). Like ``timers throttle spf DELAY HOLD MAX`` (the builder
sets 50 / 100 / 1000 ms in ospfd): the first topology change after a quiet period is
handled at once (after the usual debounce); another within ``hold`` of the previous
recomputation waits until ``hold`` has passed, and each such wait doubles ``hold`` up to
``max_hold``; after ``2 * max_hold`` without a topology change ``hold`` is back to its
start. Changes of VNF announcements alone (costs, states) are never delayed: they reuse
the cached shortest paths and cost little.
"""

from __future__ import annotations

import math

HOLD_S = 0.1
MAX_HOLD_S = 1.0


class Backoff:
    """The first event after a quiet period goes at once; another within ``hold`` of the
    previous one waits until ``hold`` has passed, each wait doubling ``hold`` up to
    ``max_hold``; ``2 * max_hold`` of quiet resets ``hold``.

    Used for the connector writes: when a network starts, every instance announced
    changes the tables of every D-MANO, and each change was written at once (100 nodes:
    thousands of P4Runtime writes in a minute, 1.1 s of CPU per P4Runtime server). Under
    such churn the writes of one D-MANO are coalesced to one batch per ``hold``; a change
    after a quiet period (a failure in steady state) is written at once."""

    def __init__(self, hold_s: float = HOLD_S, max_hold_s: float = MAX_HOLD_S):
        self.initial_hold = hold_s
        self.max_hold = max_hold_s
        self.hold = hold_s
        self.last = -math.inf
        self.throttled = 0

    def wait_s(self, now: float) -> float:
        since = now - self.last
        if since >= 2 * self.max_hold:
            self.hold = self.initial_hold
            return 0.0
        if since >= self.hold:
            return 0.0
        wait = self.hold - since
        self.hold = min(self.hold * 2, self.max_hold)
        self.throttled += 1
        return wait

    def done(self, now: float) -> None:
        self.last = now


class TopologyThrottle:
    """:class:`Backoff` applied to recomputations that follow a topology change: one with
    the topology version of the previous recomputation (VNF announcements only) is never
    delayed."""

    def __init__(self, hold_s: float = HOLD_S, max_hold_s: float = MAX_HOLD_S):
        self.backoff = Backoff(hold_s, max_hold_s)
        self.version: int | None = None  # topology version of the last recomputation

    @property
    def throttled(self) -> int:
        """Recomputations delayed so far (status)."""
        return self.backoff.throttled

    def wait_s(self, version: int, now: float) -> float:
        """Seconds to wait before recomputing with topology ``version`` (0: now)."""
        if version == self.version:
            return 0.0
        return self.backoff.wait_s(now)

    def done(self, version: int, now: float) -> None:
        """A recomputation with topology ``version`` ran at ``now``."""
        if version != self.version:
            self.version = version
            self.backoff.done(now)
