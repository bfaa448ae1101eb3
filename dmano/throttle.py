"""Throttling the D-MANO on churn, as ospfd throttles SPF: recomputations after topology
or cost changes (:class:`RecomputeThrottle`) and writes to the connector (:class:`Backoff`).

A change of the routers or networks (a new :attr:`dmano.lsdb.LsdbMirror.topology_version`)
makes the next recomputation run shortest paths again. When a network starts, or a node
with many links fails, router LSAs arrive in bursts for seconds, and every D-MANO of the
network recomputing on each of them is what loaded a 100-node emulation at start-up
(load average 134; issue #13). Like ``timers throttle spf DELAY HOLD MAX`` (the builder
sets 50 / 100 / 1000 ms in ospfd): the first topology change after a quiet period is
handled at once (after the usual debounce); another within ``hold`` of the previous
recomputation waits until ``hold`` has passed, and each such wait doubles ``hold`` up to
``max_hold``; after ``2 * max_hold`` without a topology change ``hold`` is back to its
start. Changes of VNF costs alone are held the same way (:class:`RecomputeThrottle`):
under traffic, every loaded instance is re-announced when its cost moves, and at 200
nodes each D-MANO recomputing, writing its status and its connector on every one of
those LSAs kept the machine's CPUs busy (270 runnable tasks, the traffic generator
starved). Instances that come, leave or change state are never delayed.
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


class RecomputeThrottle:
    """When the D-MANO recomputes its tables after the LSDB changed, by what changed
    since its previous recomputation (the mirror's versions):

    * the routers or networks (``topology_version``): :class:`Backoff` ``topology``, as
      ospfd's SPF throttle;
    * an instance came, left, or changed its service, endpoint or state
      (``membership_version``: a failure, a withdrawal, a drain): at once, always;
    * costs only (every loaded instance is re-announced when its cost moves):
      :class:`Backoff` ``costs``. On a quiet network a cost change is acted on at once;
      when announcements of many instances keep arriving (200 nodes with traffic: one
      every few ms) each D-MANO recomputes at most once per ``hold`` (up to
      ``max_hold``), taking every cost that arrived meanwhile, instead of once per LSA.
    """

    def __init__(self, hold_s: float = HOLD_S, max_hold_s: float = MAX_HOLD_S):
        self.topology = Backoff(hold_s, max_hold_s)
        self.costs = Backoff(hold_s, max_hold_s)
        self.versions: tuple[int, int] | None = None  # of the last recomputation

    @property
    def throttled(self) -> int:
        """Recomputations after a topology change delayed so far (status)."""
        return self.topology.throttled

    @property
    def costs_held(self) -> int:
        """Recomputations after cost changes only delayed so far (status)."""
        return self.costs.throttled

    def kind(self, topology: int, membership: int) -> str:
        """What changed since the last recomputation: "topology", "membership" or
        "costs" (also the first recomputation: "membership")."""
        if self.versions is None:
            return "membership"
        if topology != self.versions[0]:
            return "topology"
        if membership != self.versions[1]:
            return "membership"
        return "costs"

    def wait_s(self, topology: int, membership: int, now: float) -> float:
        """Seconds to wait before recomputing with these versions (0: now)."""
        kind = self.kind(topology, membership)
        if kind == "topology":
            return self.topology.wait_s(now)
        if kind == "costs":
            return self.costs.wait_s(now)
        return 0.0

    def done(self, topology: int, membership: int, now: float) -> None:
        """A recomputation with these versions ran at ``now``."""
        if self.versions is None or topology != self.versions[0]:
            self.topology.done(now)
        self.costs.done(now)  # it took every cost known at ``now``
        self.versions = (topology, membership)
