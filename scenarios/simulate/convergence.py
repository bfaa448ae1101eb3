"""Per event: how long until every node's tables (and routes) are final.

An event causes LSA instances: the flush of a dead VNF's announcement, the router LSAs
of the routers next to a failed link or node, the first announcement of an instance that
starts, the re-announcements after a policy change, ... (each origination carries the
index of the event that caused it). A node's D-MANO tables are a function of the
announcements it holds and of its network costs to the routers that host instances, so
they are final once those *inputs* are: the earliest time after which, in the order
the event's LSA instances reach the node, what it holds gives the final inputs.
Computed without recomputing anyone's tables:

* per instance (VNF announcement and its flushes): the arrival of the last of its
  instances the event caused;
* for the router LSAs the event caused (often several: both ends of a link): the
  network costs from the node to every instance-hosting router after each prefix of
  their arrival order at the node, compared with the final costs (one Dijkstra per
  instance-hosting router on the reversed graph, per set of those router LSAs; the
  graph is the D-MANO's, :func:`dmano.service_plane.network_edges`, patched where the
  routers concerned are). A node whose costs to the instances do not change (the failed
  link is on none of its shortest paths to them) is not waiting for anything.

Tables are final ``DEBOUNCE_S`` after that (the D-MANO's debounce). Routes are final at
the first SPF run of the router after the service-plane *edges* it holds are final
(every destination counts for a FIB). Nodes are grouped by the order in which the
instances reach them (a handful of orders), so this stays cheap at 10 000 nodes.
``tests/unit/test_simulate.py`` checks it against every node's tables recomputed at
every change on small topologies. Other changes in flight at the same time (load-driven
re-announcements) are not the event's and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

import numpy as np

from dmano.daemon import DEBOUNCE_S
from dmano.model import LsdbView, RouterLsa
from dmano.service_plane import LINK_P2P, network_edges, router_node
from scenarios.simulate.store import InstanceKey, LsaKey, Version
from scenarios.spec import Event

if TYPE_CHECKING:
    from scenarios.simulate.sim import Simulation

INF = math.inf
MAX_ORDERED = 10  # router LSAs per event considered in order (beyond: the last arrival)


@dataclass
class _Caused:
    key: LsaKey
    seq: int
    arr: np.ndarray
    content: object
    prev: object  # content of the LSA before this instance (None: none / flushed)
    instance: InstanceKey | None


@dataclass
class _EventLog:
    index: int
    t: float  # wall
    kind: str
    detail: str
    caused: list[_Caused] = field(default_factory=list)
    neighbours: dict[IPv4Address, RouterLsa | None] = field(default_factory=dict)
    routers_before: dict[IPv4Address, RouterLsa] | None = None  # at the first router LSA
    live: np.ndarray | None = None  # routers up when the next event came (None: at end)


@dataclass(frozen=True)
class EventConvergence:
    """The convergence of one event (times in wall-clock seconds after it)."""

    index: int
    t_wall: float
    kind: str
    detail: str
    lsas: int  # LSA instances the event caused
    tables_s: float | None  # every live node's tables final (None: nothing changed)
    tables_p50_s: float | None
    routes_s: float | None  # every live router's routes final (router LSAs only)
    nodes: int  # live nodes considered (up when the next event came, or at the end)
    never: int  # nodes whose tables never became final in the run (partitioned)


class Convergence:
    """Collects what each event caused and computes :class:`EventConvergence`."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.logs: dict[int, _EventLog] = {}

    def event(self, k: int, ev: Event, t: float) -> None:
        """Event ``k`` happens now (before it acts): the previous event's window ends."""
        if self.logs:
            last = self.logs[max(self.logs)]
            if last.live is None:
                last.live = self._live()
        self.logs[k] = _EventLog(k, t, ev.action, ev.target)

    def record(self, cause: int, v: Version, prev: Version | None) -> None:
        log_ = self.logs.get(cause)
        if log_ is None or v.arr is None:
            return
        log_.caused.append(_Caused(v.key, v.seq, v.arr.copy(), v.content,
                                   prev.content if prev is not None else None, v.instance))
        if v.is_router:
            store = self.sim.store
            if log_.routers_before is None:
                before = dict(store.base_routers)
                for key in store.router_flux:
                    held = store.latest(key)
                    if held is not None and isinstance(held.content, RouterLsa):
                        before[held.content.adv_router] = held.content
                log_.routers_before = before
            for content in (v.content, log_.caused[-1].prev):
                if not isinstance(content, RouterLsa):
                    continue
                for link in content.links:
                    if link.kind == LINK_P2P and link.link_id not in log_.neighbours:
                        key = (1, int(link.link_id), int(link.link_id))
                        held = store.latest(key)
                        log_.neighbours[link.link_id] = (
                            held.content if held is not None
                            and isinstance(held.content, RouterLsa) else None)

    def _live(self) -> np.ndarray:
        """Routers up whose D-MANO runs (the others' tables do not move)."""
        sim = self.sim
        alive = np.array([d.alive for d in sim.dmano], dtype=bool)
        return sim.adj.node_up & alive

    # -- computing ---------------------------------------------------------------------------
    def results(self) -> list[EventConvergence]:
        return [self.compute(k) for k in sorted(self.logs)]

    def node_times(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Per node: when its inputs became final after event ``k`` (wall; -inf where
        nothing changed; inf: never), and the same for its routes (None if the event
        caused no router LSA)."""
        lg = self.logs[k]
        n = self.sim.n
        t_inputs = np.full(n, -INF)
        units: dict[InstanceKey, list[_Caused]] = {}
        routers: list[_Caused] = []
        for c in lg.caused:
            if c.instance is not None:
                units.setdefault(c.instance, []).append(c)
            else:
                routers.append(c)
        for caused in units.values():
            t_inputs = np.maximum(t_inputs, np.max([c.arr for c in caused], axis=0))
        t_routes = None
        if routers:
            t_edges, t_costs = self._router_times(lg, routers)
            t_inputs = np.maximum(t_inputs, t_costs)
            t_routes = self._route_times(lg.t, t_edges)
        return t_inputs, t_routes

    def compute(self, k: int) -> EventConvergence:
        lg = self.logs[k]
        live = lg.live if lg.live is not None else self._live()
        t_inputs, t_routes = self.node_times(k)
        tables = t_inputs[live]
        changed = tables > -INF
        never = int(np.count_nonzero(tables == INF))
        # every live node counts for the median (one that waited for nothing: 0)
        at = np.where(changed, tables + DEBOUNCE_S - lg.t, 0.0)
        fin = at[np.isfinite(at)]
        tables_s = float(fin.max()) if changed.any() and fin.size else None
        p50 = float(np.median(fin)) if changed.any() and fin.size else None
        routes_s = None
        if t_routes is not None:
            r = t_routes[live]
            r = r[np.isfinite(r)]
            routes_s = float(r.max()) - lg.t if r.size else None
        return EventConvergence(k, lg.t, lg.kind, lg.detail, len(lg.caused), tables_s, p50,
                                routes_s, int(live.sum()), never)

    def _router_times(self, lg: _EventLog, routers: list[_Caused]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Per node: when the service-plane edges it holds were final, and when its
        network costs to the instance-hosting routers were."""
        sim = self.sim
        n = sim.n
        arr = np.stack([c.arr for c in routers])  # (k, n)
        if len(routers) > MAX_ORDERED:
            last = arr.max(axis=0)
            return last, last
        adv = {IPv4Address(c.key[2]) for c in routers}
        mine = {router_node(a) for a in adv}
        first_prev: dict[LsaKey, object] = {}
        for c in sorted(routers, key=lambda c: c.seq):
            first_prev.setdefault(c.key, c.prev)
        before = dict(lg.routers_before or {})
        for r, lsa_ in lg.neighbours.items():
            if r not in adv and r not in before and lsa_ is not None:
                before[r] = lsa_
        near = {r: before[r] for r in lg.neighbours if r in before and r not in adv}

        def held_routers(held: tuple[int, ...]) -> dict[IPv4Address, RouterLsa]:
            out = {}
            for key, prev in first_prev.items():
                newest = max((routers[j] for j in held if routers[j].key == key),
                             key=lambda c: c.seq, default=None)
                content = newest.content if newest is not None else prev
                if isinstance(content, RouterLsa):
                    out[IPv4Address(key[2])] = content
            return out

        local: dict[tuple[int, ...], frozenset[Any]] = {}

        def edges(held: tuple[int, ...]) -> frozenset[Any]:
            """The edges that touch the routers concerned, with ``held`` of the
            event's router LSAs."""
            got = local.get(held)
            if got is None:
                view = LsdbView(routers={**near, **held_routers(held)})
                got = frozenset((e, w) for e, w in network_edges(view).items()
                                if e[0] in mine or e[1] in mine)
                local[held] = got
            return got

        order = np.argsort(arr, axis=0, kind="stable").T  # (n, k): arrival order per node
        patterns, inverse = np.unique(order, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        everything = tuple(sorted(range(len(routers))))
        final = edges(everything)
        costs = _HostCosts(sim, before, held_routers) if sim.hosting else None
        t_edges = np.full(n, -INF)
        t_costs = np.full(n, -INF)
        for p, pattern in enumerate(patterns):
            nodes = np.flatnonzero(inverse == p)
            prefixes = [tuple(sorted(int(j) for j in pattern[:m]))
                        for m in range(len(pattern) + 1)]
            eq = [edges(pre) == final for pre in prefixes]
            m = _first_final(eq)
            if m > 0:
                t_edges[nodes] = arr[pattern[m - 1], nodes]
            if costs is None:
                continue
            eqc = np.stack([costs.equal(pre, everything)[nodes]
                            for pre in prefixes])  # (k+1, nodes)
            for col, node in enumerate(nodes):
                m = _first_final(list(eqc[:, col]))
                if m > 0:
                    t_costs[node] = arr[pattern[m - 1], node]
        return t_edges, t_costs

    def _route_times(self, t_event: float, t_router: np.ndarray) -> np.ndarray:
        runs = self.sim.spf_runs
        out = np.full(len(t_router), -INF)
        for r in range(len(t_router)):
            need = float(t_router[r])
            if need == -INF:
                continue  # its routes did not change
            out[r] = INF
            if not math.isfinite(need):
                continue
            times = runs.get(r, ())
            out[r] = next((s for s in times if s >= need), INF)
        return out


def _first_final(eq: list[bool]) -> int:
    """The smallest m such that every prefix of m or more arrivals gives the final state
    (eq[m], eq[m+1], ... are all True; the last one is by definition)."""
    m = len(eq) - 1
    while m > 0 and eq[m - 1]:
        m -= 1
    return m


class _HostCosts:
    """Costs from every node to every instance-hosting router (rows: hosts), for a set
    of the event's router LSAs held: the routers before the event with the routers
    concerned as ``held`` has them (the simulation's patched edges, reversed graph)."""

    def __init__(self, sim: Simulation, before: dict[IPv4Address, RouterLsa],
                 held_routers: Any) -> None:
        self.sim = sim
        initial = sim.store.initial_routers
        self.before = {r: lsa_ for r, lsa_ in before.items() if initial.get(r) is not lsa_}
        self.before.update({r: None for r in initial if r not in before})
        self.held_routers = held_routers
        self._final: tuple[tuple[int, ...], np.ndarray] | None = None
        self._equal: dict[tuple[int, ...], np.ndarray] = {}

    def equal(self, held: tuple[int, ...], final: tuple[int, ...]) -> np.ndarray:
        """Per node: are its costs to the hosts with ``held`` those with ``final``?
        (Only these vectors are kept: a cost matrix is hosts x nodes.)"""
        got = self._equal.get(held)
        if got is None:
            if self._final is None or self._final[0] != final:
                self._final = (final, self.of(final))
            got = np.all(self.of(held) == self._final[1], axis=0)
            self._equal[held] = got
        return got

    def of(self, held: tuple[int, ...]) -> np.ndarray:
        import scipy.sparse as sp
        from scipy.sparse.csgraph import dijkstra

        from scenarios.simulate.store import SignatureInfo

        sim = self.sim
        overrides: dict[IPv4Address, RouterLsa | None] = dict(self.before)
        overrides.update(self.held_routers(held))
        initial = sim.store.initial_routers
        overrides = {r: x for r, x in overrides.items() if initial.get(r) is not x}
        u, v, w, size = sim.paths.edges(SignatureInfo(-1, overrides, initial))
        rcsr = sp.csr_matrix((w, (v, u)), shape=(size, size))
        return np.atleast_2d(dijkstra(rcsr, indices=sim.hosting))[:, : sim.n]


def observed_convergence(rows: list[Any], t_event: float, until: float) -> float | None:
    """From weight-change rows (``Simulation.weight_rows``, every node watched): the last
    change in (t_event, until) minus ``t_event``, None if none (what the shortcut above
    must give when every node's tables are watched)."""
    times = [r.t for r in rows if t_event < r.t < until]
    return max(times) - t_event if times else None


__all__ = ["Convergence", "EventConvergence", "observed_convergence"]
