"""Per event: how long until every node's tables (and routes) are final.

An event causes LSA instances: the flush of a dead VNF's announcement, the router LSAs
of the routers next to a failed link or node, the first announcement of an instance that
starts, the re-announcements after a policy change, ... (each origination carries the
index of the event that caused it). A node's D-MANO tables are a function of the router
LSAs and announcements it holds, so they are final once its *inputs* are: the earliest
time after which, in the order those instances reach the node, what it holds gives the
final inputs. Computed without recomputing anyone's tables:

* per instance (VNF announcement and its flushes): the arrival of the last of its
  instances the event caused;
* for the router LSAs the event caused (often several: both ends of a link): the
  service-plane edges (:func:`dmano.service_plane.network_edges`, on the routers
  concerned and their neighbours) after each prefix of their arrival order at the node,
  compared with the final edges: the first of two router LSAs of a failed link already
  breaks the two-way check, so the second one changes nothing.

Tables are final ``DEBOUNCE_S`` after that (the D-MANO's debounce); routes are final
at the first SPF run of the router after it. Nodes are grouped by the order in which
the instances reach them (a handful of orders), so this costs little at 10 000 nodes.
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
    nodes: int  # live nodes considered
    never: int  # nodes whose tables never became final in the run (partitioned)


class Convergence:
    """Collects what each event caused and computes :class:`EventConvergence`."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.logs: dict[int, _EventLog] = {}

    def event(self, k: int, ev: Event, t: float) -> None:
        self.logs[k] = _EventLog(k, t, ev.action, ev.target)

    def record(self, cause: int, v: Version, prev: Version | None) -> None:
        log_ = self.logs.get(cause)
        if log_ is None or v.arr is None:
            return
        log_.caused.append(_Caused(v.key, v.seq, v.arr.copy(), v.content,
                                   prev.content if prev is not None else None, v.instance))
        if v.is_router:
            store = self.sim.store
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

    # -- computing ---------------------------------------------------------------------------
    def results(self) -> list[EventConvergence]:
        return [self.compute(k) for k in sorted(self.logs)]

    def node_times(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Per node: when its inputs became final after event ``k`` (wall; the event's
        time where nothing changed; inf: never), and the same for its routes (None if
        the event caused no router LSA)."""
        lg = self.logs[k]
        n = self.sim.n
        t_inputs = np.full(n, lg.t)
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
            t_router = self._router_times(lg, routers)
            t_inputs = np.maximum(t_inputs, t_router)
            t_routes = self._route_times(lg.t, t_router)
        return t_inputs, t_routes

    def compute(self, k: int) -> EventConvergence:
        lg = self.logs[k]
        live = self.sim.adj.node_up.copy()
        t_inputs, t_routes = self.node_times(k)
        tables = t_inputs[live]
        changed = tables > lg.t
        never = int(np.count_nonzero(~np.isfinite(tables)))
        fin = tables[np.isfinite(tables)]
        tables_s = (float(fin.max()) + DEBOUNCE_S - lg.t) if changed.any() and fin.size \
            else None
        p50 = (float(np.median(fin)) + DEBOUNCE_S - lg.t) if changed.any() and fin.size \
            else None
        routes_s = None
        if t_routes is not None:
            r = t_routes[live]
            r = r[np.isfinite(r)]
            routes_s = float(r.max()) - lg.t if r.size and (r > lg.t).any() else None
        return EventConvergence(k, lg.t, lg.kind, lg.detail, len(lg.caused), tables_s, p50,
                                routes_s, int(live.sum()), never)

    def _router_times(self, lg: _EventLog, routers: list[_Caused]) -> np.ndarray:
        n = self.sim.n
        arr = np.stack([c.arr for c in routers])  # (k, n)
        if len(routers) > MAX_ORDERED:
            return arr.max(axis=0)
        adv = {IPv4Address(c.key[2]) for c in routers}
        first_prev: dict[LsaKey, object] = {}
        for c in sorted(routers, key=lambda c: c.seq):
            first_prev.setdefault(c.key, c.prev)
        base: dict[IPv4Address, RouterLsa] = {
            r: lsa_ for r, lsa_ in lg.neighbours.items() if r not in adv and lsa_ is not None}

        def edges(held: list[_Caused]) -> frozenset[Any]:
            routers_ = dict(base)
            for key, prev in first_prev.items():
                newest = max((c for c in held if c.key == key), key=lambda c: c.seq,
                             default=None)
                content = newest.content if newest is not None else prev
                if isinstance(content, RouterLsa):
                    routers_[IPv4Address(key[2])] = content
            mine = {router_node(a) for a in adv}
            return frozenset((e, w) for e, w in network_edges(LsdbView(routers=routers_)).items()
                             if e[0] in mine or e[1] in mine)

        final = edges(routers)
        order = np.argsort(arr, axis=0, kind="stable").T  # (n, k): arrival order per node
        patterns, inverse = np.unique(order, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        out = np.full(n, lg.t)
        for p, pattern in enumerate(patterns):
            seq = [routers[j] for j in pattern]
            eq = [edges(seq[:m]) == final for m in range(len(seq) + 1)]
            first_final = len(seq)
            while first_final > 0 and eq[first_final - 1]:
                first_final -= 1
            nodes = np.flatnonzero(inverse == p)
            if first_final == 0:
                continue  # nothing changed for these nodes
            j = pattern[first_final - 1]
            out[nodes] = arr[j, nodes]
        return out

    def _route_times(self, t_event: float, t_router: np.ndarray) -> np.ndarray:
        runs = self.sim.spf_runs
        out = np.full(len(t_router), INF)
        for r in range(len(t_router)):
            need = float(t_router[r])
            if need <= t_event:
                out[r] = t_event
                continue
            if not math.isfinite(need):
                continue
            times = runs.get(r, ())
            out[r] = next((s for s in times if s >= need), INF)
        return out


def observed_convergence(rows: list[Any], t_event: float, until: float) -> float | None:
    """From weight-change rows (``Simulation.weight_rows``, every node watched): the last
    change in (t_event, until) minus ``t_event``, None if none (what the shortcut above
    must give when every node's tables are watched)."""
    times = [r.t for r in rows if t_event < r.t < until]
    return max(times) - t_event if times else None


__all__ = ["Convergence", "EventConvergence", "observed_convergence"]
