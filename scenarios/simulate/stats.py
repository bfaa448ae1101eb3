"""Control-plane counters per second of scenario time (``controlplane.csv``).

Per bin: LSA instances originated (router LSAs, VNF announcements, flushes among them),
LSA transmissions (one per LSA instance sent on one adjacency, counted when the sender
sends it: at its arrival there) and their bytes, and SPF runs over all routers.
"""

from __future__ import annotations

import math

import numpy as np

from scenarios.simulate.flooding import Adjacencies, Flood

COLUMNS = ("t_s", "lsas_originated", "router_lsas", "vnf_lsas", "flushes",
           "lsa_transmissions", "lsa_bytes", "spf_runs")


class ControlStats:
    def __init__(self, time_scale: float, duration_s: float) -> None:
        self.k = time_scale
        self.bins = math.ceil(duration_s) + 2
        self.cols = {c: np.zeros(self.bins) for c in COLUMNS[1:]}

    def _bin(self, t_wall: float) -> int:
        return min(max(int(t_wall / self.k), 0), self.bins - 1)

    def flood(self, t0: float, fl: Flood, adj: Adjacencies, origin: int, size: int,
              router: bool, flush: bool) -> None:
        b = self._bin(t0)
        c = self.cols
        c["lsas_originated"][b] += 1
        c["router_lsas" if router else "vnf_lsas"][b] += 1
        if flush:
            c["flushes"][b] += 1
        reached = np.isfinite(fl.arr)
        last = float(fl.arr[reached].max()) if reached.any() else t0
        if self._bin(last) == b or fl.exact:
            self.transmissions(t0, fl.transmissions, size)
            return
        deg = adj.degree()
        per = np.maximum(deg - 1, 0).astype(float)
        per[origin] = deg[origin]
        idx = np.minimum((fl.arr[reached] / self.k).astype(np.int64), self.bins - 1)
        counts = np.bincount(np.maximum(idx, 0), weights=per[reached], minlength=self.bins)
        c["lsa_transmissions"] += counts
        c["lsa_bytes"] += counts * size

    def transmissions(self, t: float, n: int, size: int) -> None:
        b = self._bin(t)
        self.cols["lsa_transmissions"][b] += n
        self.cols["lsa_bytes"][b] += n * size

    def spf(self, t: float, runs: int) -> None:
        self.cols["spf_runs"][self._bin(t)] += runs

    def rows(self, duration_s: float) -> list[dict[str, float]]:
        n = math.ceil(duration_s)
        return [{"t_s": float(b + 1), **{c: float(v[b]) for c, v in self.cols.items()}}
                for b in range(n)]

    def totals(self) -> dict[str, float]:
        return {c: float(v.sum()) for c, v in self.cols.items()}
