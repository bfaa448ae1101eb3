"""Shortest paths per router-LSA signature: the D-MANO's network costs and the routes.

For a signature (a set of router LSAs, :mod:`scenarios.simulate.store`) the graph's edges
are the D-MANO's own, :func:`dmano.service_plane.network_edges` (RFC 2328 16.1: the
two-way check, the cheapest of parallel links), computed once and shared by every router
holding that signature; after the first signature only the edges around the routers
whose LSAs differ are recomputed (:meth:`Paths.edges`). Transit networks (network
LSAs) are not simulated: every router link is point-to-point, as the builder makes it.
Distances then come from ``scipy.sparse.csgraph.dijkstra`` instead of the D-MANO's
networkx Dijkstra: the same computation (non-negative integer costs, exact in float64;
``tests/unit/test_simulate`` checks the costs equal those of
:func:`dmano.service_plane.network_costs` on every shipped topology and on random
graphs), in C, and for many sources at once.

* :meth:`Paths.costs` -- what :func:`~dmano.service_plane.network_costs` gives a router
  (restricted to the routers that host instances, the only ones the candidates part
  looks up);
* :meth:`Paths.next_hops` -- each router's next hop towards a destination on its
  shortest path tree: what its FIB does after an SPF run on that signature (one path
  per destination; FRR would spread equal-cost paths over several next hops).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from ipaddress import IPv4Address

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from dmano.model import LsdbView, RouterLsa
from dmano.service_plane import LINK_P2P, Edges, network_edges, router_node
from scenarios.simulate.store import LsaStore

log = logging.getLogger(__name__)

NO_HOP = -9999  # scipy's predecessor value for "none"


class _Graph:
    __slots__ = ("csr", "index", "rcsr")

    def __init__(self, csr: sp.csr_matrix, rcsr: sp.csr_matrix,
                 index: dict[tuple[object, ...], int]) -> None:
        self.csr = csr
        self.rcsr = rcsr
        self.index = index


class Paths:
    """Shortest paths for the router-LSA signatures of one store."""

    def __init__(self, store: LsaStore, router_ids: Sequence[IPv4Address],
                 hosts: Sequence[int], cache_size: int = 4096) -> None:
        self.store = store
        self.router_ids = list(router_ids)
        self.n = len(router_ids)
        self.index = {("router", r): i for i, r in enumerate(router_ids)}
        self.hosts = sorted(set(hosts))  # node indices whose router hosts instances
        self._graphs: OrderedDict[int, _Graph] = OrderedDict()
        self._costs: OrderedDict[tuple[int, int], dict[IPv4Address, int]] = OrderedDict()
        self._hops: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.graphs_built = 0
        self.dijkstras = 0
        self._base_routers: dict[IPv4Address, RouterLsa] | None = None
        self._base_edges: Edges = {}

    def edges(self, routers: dict[IPv4Address, RouterLsa]) -> Edges:
        """:func:`~dmano.service_plane.network_edges` of ``routers``, computed in full
        once and then patched: the edges that touch a router whose LSA differs from the
        first set are recomputed (by the same function, on those routers and their
        neighbours: the two-way check only looks at both ends of a link)."""
        if self._base_routers is None or len(routers) < 64:
            self._base_routers = dict(routers)
            self._base_edges = network_edges(LsdbView(routers=self._base_routers))
            return dict(self._base_edges)
        base = self._base_routers
        changed = {r for r, lsa_ in routers.items() if base.get(r) is not lsa_}
        changed |= {r for r in base if r not in routers}
        if len(changed) > max(64, len(routers) // 10):
            self._base_routers = dict(routers)
            self._base_edges = network_edges(LsdbView(routers=self._base_routers))
            return dict(self._base_edges)
        if not changed:
            return dict(self._base_edges)
        near = set(changed)
        for r in changed:
            for lsa_ in (routers.get(r), base.get(r)):
                if lsa_ is not None:
                    near.update(link.link_id for link in lsa_.links if link.kind == LINK_P2P)
        sub = {r: routers[r] for r in near if r in routers}
        mine = {router_node(r) for r in changed}
        out = {e: w for e, w in self._base_edges.items()
               if e[0] not in mine and e[1] not in mine}
        for e, w in network_edges(LsdbView(routers=sub)).items():
            if e[0] in mine or e[1] in mine:
                out[e] = w
        return out

    def graph(self, sid: int) -> _Graph:
        g = self._graphs.get(sid)
        if g is not None:
            self._graphs.move_to_end(sid)
            return g
        info = self.store.signature(sid)
        edges = self.edges(info.routers)
        index = dict(self.index)
        rows, cols, data = [], [], []
        for (u, v), cost in edges.items():
            for node in (u, v):
                if node not in index:
                    index[node] = len(index)  # a transit network
            rows.append(index[u])
            cols.append(index[v])
            data.append(float(cost))
        size = len(index)
        r, c, d = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(data)
        # explicit zeros (network -> router) are edges for scipy's csgraph
        csr = sp.csr_matrix((d, (r, c)), shape=(size, size))
        rcsr = sp.csr_matrix((d, (c, r)), shape=(size, size))
        g = _Graph(csr, rcsr, index)
        self._graphs[sid] = g
        self.graphs_built += 1
        if len(self._graphs) > 64:
            self._graphs.popitem(last=False)
        return g

    def distances(self, sid: int, nodes: Sequence[int]) -> np.ndarray:
        """Costs from each of ``nodes`` to every graph node (rows; inf: unreachable)."""
        g = self.graph(sid)
        self.dijkstras += len(nodes)
        return np.atleast_2d(dijkstra(g.csr, indices=list(nodes)))

    def costs(self, sid: int, node: int) -> dict[IPv4Address, int]:
        """Network costs from ``node`` to the instance-hosting routers it reaches (and
        itself), as :func:`dmano.service_plane.network_costs` gives them."""
        key = (sid, node)
        got = self._costs.get(key)
        if got is not None:
            self._costs.move_to_end(key)
            return got
        row = self.distances(sid, [node])[0]
        got = {self.router_ids[h]: int(row[h]) for h in self.hosts if np.isfinite(row[h])}
        got[self.router_ids[node]] = 0
        self._costs[key] = got
        if len(self._costs) > self.cache_size:
            self._costs.popitem(last=False)
        return got

    def all_costs(self, sid: int, node: int) -> dict[IPv4Address, int]:
        """Network costs from ``node`` to every reachable router (for validation)."""
        row = self.distances(sid, [node])[0]
        return {self.router_ids[i]: int(row[i]) for i in range(self.n) if np.isfinite(row[i])}

    def next_hops(self, sid: int, dest: int) -> np.ndarray:
        """Per router, its next hop on a shortest path to router ``dest`` (``dest``
        itself: -1; no path: NO_HOP) in the graph of signature ``sid``."""
        key = (sid, dest)
        got = self._hops.get(key)
        if got is not None:
            self._hops.move_to_end(key)
            return got
        g = self.graph(sid)
        self.dijkstras += 1
        _, pred = dijkstra(g.rcsr, indices=dest, return_predecessors=True)
        pred = np.asarray(pred[: self.n], dtype=np.int64)
        pred[dest] = -1
        self._hops[key] = pred
        if len(self._hops) > 1024:
            self._hops.popitem(last=False)
        return pred


__all__ = ["NO_HOP", "Paths"]
