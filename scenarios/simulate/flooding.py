"""OSPF flooding, LSA timers and SPF scheduling, as the builder configures FRR.

What is modelled (the timers are the topology's ``ospf:`` section, which
``topologies/frr.py`` writes into every ospfd.conf):

* **Flooding** (RFC 2328 13.3): a router that accepts a new LSA instance sends it on every
  other adjacency that is *full*; each hop takes ``hop_delay_s`` (one value for every
  link: veth + ospfd processing; the D-MANO propagation benchmark measures 0-8 ms over up
  to 10 hops here, so 1 ms is the default). With equal hop delays the copy that counts
  at a node is the one along the fewest hops, so an LSA's arrival time at every node is
  ``t0 + hops x hop_delay`` over the adjacencies up at origination: one breadth-first
  search per originating router and adjacency state, vectorised over the nodes.
  Transmissions: the originator sends on each of its adjacencies, every other router
  that accepts the instance on each adjacency but the one it came from (a duplicate is
  acknowledged, not forwarded).
* **min-arrival** (``timers lsa min-arrival``, ``lsa_min_arrival_ms``): a router
  discards an instance that arrives sooner than that after the instance it holds was
  received; the sender retransmits it after ``retransmit_s`` (the builder's ``ip ospf
  retransmit-interval 1``). When that can happen (the vectorised arrival times say a
  copy would arrive too soon somewhere) the flood is played hop by hop instead
  (:func:`flood_exact`).
* **LSA throttle** (``timers throttle lsa all``, ``lsa_throttle_ms``): a router
  originates a new instance of one of its router LSAs at least that long after the
  previous one; changes in between are coalesced (see ``scenarios.simulate.network``).
* **SPF throttle** (``timers throttle spf delay hold max-hold``): FRR's
  ``ospf_spf_calculate_schedule``: a router/network LSA change schedules an SPF run
  ``delay`` later unless one is pending; within the hold time of the previous run the
  wait is at least the rest of the hold time and the hold time doubles up to
  ``max-hold`` (:class:`SpfThrottle`). The D-MANO does not wait for SPF: ospfd hands
  it every LSA as it installs it, and it runs its own shortest paths; SPF decides
  when each router's *routes* change, i.e. when packets across a failed link or node
  are forwarded again.
* **Failure detection**: a link failure at once at both ends (carrier loss); a silent
  neighbour (a failed node) after BFD's ``interval x multiplier`` (or the dead interval
  without BFD); an adjacency that comes up (a restored link or node) exchanges
  databases ``adjacency_s`` later (hellos; each side gets what it lacks,
  :func:`resync`, and a restarted router flushes the stale LSAs it gets back as its
  own) and is *full* ``exchange_s`` after that, when both routers re-originate their
  router LSAs.

Not modelled: LSA refreshes every 30 minutes, MaxAge, retransmissions of lost packets
(nothing is lost on the control plane but at a failed node or link), flooding
reduction on broadcast networks (every router link is point-to-point), ECMP (one
shortest path per destination, the one scipy's Dijkstra keeps).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from topologies.spec import OspfTimers

log = logging.getLogger(__name__)

INF = math.inf
RETRANSMIT_S = 1.0  # topologies/frr.py: ip ospf retransmit-interval 1


@dataclass(frozen=True)
class OspfParams:
    """The OSPF timers of the simulated routers, in seconds."""

    hop_delay_s: float = 0.001
    lsa_throttle_s: float = 0.05
    lsa_min_arrival_s: float = 0.01
    spf_delay_s: float = 0.05
    spf_hold_s: float = 0.1
    spf_max_hold_s: float = 1.0
    retransmit_s: float = RETRANSMIT_S
    hello_s: float = 1.0
    dead_s: float = 4.0
    bfd_detect_s: float | None = 0.3
    adjacency_s: float = 0.5
    exchange_s: float = 0.01  # database exchange: flooding starts, full this much later

    @classmethod
    def from_timers(cls, t: OspfTimers, hop_delay_s: float = 0.001,
                    adjacency_s: float | None = None) -> OspfParams:
        """The timers the builder writes for a topology's ``ospf:`` section.

        ``adjacency_s``: the time from a link (or node) coming up to a full adjacency;
        default half a hello interval (both routers send a hello at once when the
        interface comes up; the exchange then takes milliseconds)."""
        return cls(
            hop_delay_s=hop_delay_s,
            lsa_throttle_s=t.lsa_throttle_ms / 1000.0,
            lsa_min_arrival_s=t.lsa_min_arrival_ms / 1000.0,
            spf_delay_s=t.spf_delay_ms / 1000.0,
            spf_hold_s=t.spf_hold_ms / 1000.0,
            spf_max_hold_s=t.spf_max_hold_ms / 1000.0,
            hello_s=float(t.hello_s),
            dead_s=float(t.dead_s),
            bfd_detect_s=t.bfd.detect_ms / 1000.0 if t.bfd is not None else None,
            adjacency_s=t.hello_s / 2.0 if adjacency_s is None else adjacency_s,
        )

    @property
    def neighbour_detect_s(self) -> float:
        """How long a silent neighbour (a failed node) stays up in a router's view."""
        return self.bfd_detect_s if self.bfd_detect_s is not None else self.dead_s


class Adjacencies:
    """The router links and which of them carry OSPF (and packets) right now.

    ``phys_up[k]``: link k carries packets (not failed, both routers alive);
    ``full[k]``: both routers hold a full adjacency over it (what their router LSAs
    list); ``exchange[k]``: the adjacency is coming up, the routers exchange their
    databases (flooding works, the router LSAs do not list it yet). Flooding uses links
    that are physically up and full or exchanging; a link that is full but not
    physically up (a node died and its neighbour has not noticed yet) swallows what is
    sent on it.
    """

    def __init__(self, n: int, links: Sequence[tuple[int, int, int]]) -> None:
        self.n = n
        self.a = np.array([a for a, _, _ in links], dtype=np.int64)
        self.b = np.array([b for _, b, _ in links], dtype=np.int64)
        self.cost = np.array([c for _, _, c in links], dtype=np.int64)
        self.phys_up = np.ones(len(links), dtype=bool)
        self.full = np.ones(len(links), dtype=bool)
        self.exchange = np.zeros(len(links), dtype=bool)  # exchanging databases
        self.node_up = np.ones(n, dtype=bool)
        self.version = 0
        self.by_node: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (peer, link)
        for k, (a, b, _) in enumerate(links):
            self.by_node[a].append((b, k))
            self.by_node[b].append((a, k))
        self._csr: sp.csr_matrix | None = None
        self._degree: np.ndarray | None = None
        self._hops: dict[int, np.ndarray] = {}

    def changed(self) -> None:
        self.version += 1
        self._csr = None
        self._degree = None
        self._hops.clear()

    def flooding(self) -> np.ndarray:
        """Mask of the links flooding goes over (full, or exchanging databases)."""
        return self.phys_up & (self.full | self.exchange)

    def csr(self) -> sp.csr_matrix:
        if self._csr is None:
            up = self.flooding()
            a, b = self.a[up], self.b[up]
            ones = np.ones(2 * len(a))
            self._csr = sp.csr_matrix((ones, (np.concatenate([a, b]), np.concatenate([b, a]))),
                                      shape=(self.n, self.n))
        return self._csr

    def degree(self) -> np.ndarray:
        """Flooding adjacencies per router."""
        if self._degree is None:
            up = self.flooding()
            self._degree = (np.bincount(self.a[up], minlength=self.n)
                            + np.bincount(self.b[up], minlength=self.n))
        return self._degree

    def hops_from(self, origin: int) -> np.ndarray:
        """Hops from ``origin`` over the flooding adjacencies (inf: not reached)."""
        got = self._hops.get(origin)
        if got is None:
            if len(self._hops) > 4096:
                self._hops.clear()
            got = dijkstra(self.csr(), indices=origin, unweighted=True)
            if not self.node_up[origin]:
                got[:] = INF
            self._hops[origin] = got
        return got

    def neighbours(self, v: int) -> list[int]:
        """Routers ``v`` floods to (see :meth:`flooding`)."""
        up = self.flooding()
        return [p for p, k in self.by_node[v] if up[k]]


@dataclass
class Flood:
    """Where and when one LSA instance arrives."""

    arr: np.ndarray  # per router: time it accepts the instance (inf: never)
    transmissions: int
    exact: bool = False  # played hop by hop (min-arrival interfered)


def last_accepted(previous: Sequence[np.ndarray], at: np.ndarray) -> np.ndarray:
    """Per router, when it received the newest earlier instance it holds at ``at``."""
    last = np.full(len(at), -INF)
    for prev in previous:
        last = np.where(prev <= at, np.maximum(last, prev), last)
    return last


def flood(adj: Adjacencies, params: OspfParams, origin: int, t0: float,
          previous: Sequence[np.ndarray] = ()) -> Flood:
    """Arrival times of an instance ``origin`` originates at ``t0``.

    ``previous``: the arrival times of the earlier instances of the same LSA still
    recent enough to matter for min-arrival (held by every router long enough before,
    they are left out)."""
    hops = adj.hops_from(origin)
    arr = t0 + hops * params.hop_delay_s
    if previous and params.lsa_min_arrival_s > 0:
        last = last_accepted(previous, arr)
        soon = np.isfinite(arr) & (arr - last < params.lsa_min_arrival_s)
        soon[origin] = False
        if soon.any():
            return flood_exact(adj, params, origin, t0, previous)
    deg = adj.degree()
    reached = np.isfinite(arr)
    tx = int(deg[origin]) + int(deg[reached].sum() - deg[origin]) - int(reached.sum() - 1)
    return Flood(arr, max(tx, 0))


def flood_exact(adj: Adjacencies, params: OspfParams, origin: int, t0: float,
                previous: Sequence[np.ndarray] = ()) -> Flood:
    """The flood played copy by copy: min-arrival discards, retransmissions."""
    n = adj.n
    arr = np.full(n, INF)
    if not adj.node_up[origin]:
        return Flood(arr, 0, exact=True)
    arr[origin] = t0
    d = params.hop_delay_s
    heap: list[tuple[float, int, int]] = []
    tx = 0
    for w in adj.neighbours(origin):
        heapq.heappush(heap, (t0 + d, w, origin))
        tx += 1
    while heap:
        t, v, frm = heapq.heappop(heap)
        if math.isfinite(arr[v]):
            continue  # a duplicate: acknowledged
        last = -INF
        for prev in previous:
            if prev[v] <= t:
                last = max(last, float(prev[v]))
        if t - last < params.lsa_min_arrival_s:
            # discarded (too soon after the copy it holds): frm retransmits it
            heapq.heappush(heap, (t + params.retransmit_s, v, frm))
            tx += 1
            continue
        arr[v] = t
        for w in adj.neighbours(v):
            if w != frm:
                heapq.heappush(heap, (t + d, w, v))
                tx += 1
    return Flood(arr, tx, exact=True)


def resync(adj: Adjacencies, params: OspfParams, arr: np.ndarray, a: int, b: int,
           ts: float) -> tuple[np.ndarray, int]:
    """Database exchange over the adjacency a-b that became full at ``ts``: if one side
    holds the instance (``arr``) and the other does not, the other gets it and floods it
    on. Returns the new arrival times and the transmissions added."""
    has_a, has_b = arr[a] <= ts, arr[b] <= ts
    if has_a == has_b:
        return arr, 0
    src, dst = (a, b) if has_a else (b, a)
    start = max(ts, float(arr[src]))
    new = start + params.hop_delay_s * (1.0 + adj.hops_from(dst))
    better = new < arr
    if not better.any():
        return arr, 0
    out = np.where(better, new, arr)
    deg = adj.degree()
    return out, 1 + int(np.maximum(deg[better] - 1, 0).sum())


class SpfThrottle:
    """FRR's SPF scheduling per router (``ospf_spf_calculate_schedule``), vectorised
    over the routers an LSA reaches at the same time."""

    def __init__(self, n: int, params: OspfParams) -> None:
        self.p = params
        self.last = np.full(n, -INF)  # start of the last SPF run
        self.mult = np.ones(n, dtype=np.int64)  # hold multiplier
        self.pending = np.full(n, INF)  # time of the scheduled run (inf: none)
        self.runs = 0

    def schedule(self, nodes: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """A router/network LSA change at ``t`` on ``nodes``; returns the routers that
        scheduled a run and when (those with one pending keep it)."""
        p = self.p
        nodes = nodes[~np.isfinite(self.pending[nodes])]
        if len(nodes) == 0:
            return nodes, np.empty(0)
        elapsed = t - self.last[nodes]
        ht = np.minimum(p.spf_hold_s * self.mult[nodes], p.spf_max_hold_s)
        within = elapsed < ht
        grow = within & (ht < p.spf_max_hold_s)
        self.mult[nodes[grow]] += 1
        self.mult[nodes[~within]] = 1
        delay = np.where(within, np.maximum(p.spf_delay_s, ht - elapsed), p.spf_delay_s)
        when = t + delay
        self.pending[nodes] = when
        return nodes, when

    def ran(self, nodes: np.ndarray, t: float) -> None:
        self.last[nodes] = t
        self.pending[nodes] = INF
        self.runs += len(nodes)


__all__ = ["Adjacencies", "Flood", "OspfParams", "SpfThrottle", "flood", "flood_exact",
           "last_accepted", "resync"]
