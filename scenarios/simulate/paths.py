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
from scenarios.simulate.store import LsaStore, SignatureInfo

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
        self.hosts = sorted(set(hosts))  # node indices whose router hosts instances
        self._graphs: OrderedDict[int, _Graph] = OrderedDict()
        self._costs: OrderedDict[tuple[int, int], dict[IPv4Address, int]] = OrderedDict()
        self._hops: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.graphs_built = 0
        self.dijkstras = 0
        self.rindex = {int(r): i for i, r in enumerate(router_ids)}
        self._base: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _index_of(self, node: tuple[object, ...], index: dict[tuple[object, ...], int]) -> int:
        if node[0] == "router":
            got = self.rindex.get(int(node[1]))  # type: ignore[call-overload]
            if got is not None:
                return got
        if node not in index:
            index[node] = self.n + len(index)  # a transit network or a stranger
        return index[node]

    def _arrays(self, edges: Edges, extra: dict[tuple[object, ...], int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.fromiter((self._index_of(e[0], extra) for e in edges), dtype=np.int64,
                        count=len(edges))
        v = np.fromiter((self._index_of(e[1], extra) for e in edges), dtype=np.int64,
                        count=len(edges))
        w = np.fromiter(edges.values(), dtype=float, count=len(edges))
        return u, v, w

    def edges(self, info: SignatureInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The service-plane edges of a signature as index arrays (u, v, cost) and the
        number of graph nodes: :func:`~dmano.service_plane.network_edges` of the router
        LSAs of t = 0 computed once, then patched where the signature's routers differ
        (the same function on those routers and their neighbours; the two-way check only
        looks at both ends of a link)."""
        extra: dict[tuple[object, ...], int] = {}
        if self._base is None:
            self._base = self._arrays(network_edges(LsdbView(routers=info.initial)), extra)
        bu, bv, bw = self._base
        changed = set(info.overrides)
        if not changed:
            return bu, bv, bw, self.n + len(extra)
        near = set(changed)
        for r in changed:
            for lsa_ in (info.overrides.get(r), info.initial.get(r)):
                if lsa_ is not None:
                    near.update(link.link_id for link in lsa_.links if link.kind == LINK_P2P)
        sub: dict[IPv4Address, RouterLsa] = {}
        for r in near:
            lsa_ = info.overrides[r] if r in info.overrides else info.initial.get(r)
            if lsa_ is not None:
                sub[r] = lsa_
        mine = {router_node(r) for r in changed}
        local = {e: w for e, w in network_edges(LsdbView(routers=sub)).items()
                 if e[0] in mine or e[1] in mine}
        idx = np.array([self.rindex[int(r)] for r in changed if int(r) in self.rindex],
                       dtype=np.int64)
        keep = ~(np.isin(bu, idx) | np.isin(bv, idx))
        lu, lv, lw = self._arrays(local, extra)
        return (np.concatenate([bu[keep], lu]), np.concatenate([bv[keep], lv]),
                np.concatenate([bw[keep], lw]), self.n + len(extra))

    def graph(self, sid: int) -> _Graph:
        g = self._graphs.get(sid)
        if g is not None:
            self._graphs.move_to_end(sid)
            return g
        u, v, w, size = self.edges(self.store.signature(sid))
        # explicit zeros (network -> router) are edges for scipy's csgraph
        csr = sp.csr_matrix((w, (u, v)), shape=(size, size))
        rcsr = sp.csr_matrix((w, (v, u)), shape=(size, size))
        g = _Graph(csr, rcsr, {})
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
