"""Bring-up and OSPF convergence time of emulated networks of growing size.

For each size: a ring of N NFV nodes with chords (every 3rd node also linked to the one
opposite), random costs 1..20 from a fixed seed; the time from an empty machine to a
converged network (all adjacencies Full, all routes installed), repeated.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from topologies.network import Network
from topologies.spec import Topology, parse_topology

SIZES = (5, 10, 20)
REPEAT = 2


def ring_topology(n: int, seed: int = 1) -> Topology:
    rnd = random.Random(seed)
    names = [f"N{i}" for i in range(1, n + 1)]
    links = [{"a": names[i], "b": names[(i + 1) % n], "cost": rnd.randint(1, 20)}
             for i in range(n)]
    for i in range(0, n // 2, 3):
        j = i + n // 2
        if abs(i - j) > 1:
            links.append({"a": names[i], "b": names[j], "cost": rnd.randint(1, 20)})
    data = {"name": f"ring{n}", "nodes": [{"name": x} for x in names], "links": links}
    return parse_topology(data, Path(f"<ring{n}>"))


def service_ring(n: int, suffix: str = "svc") -> Topology:
    """ring_topology(n) with one service SVC and two instances (s1 on the first node,
    s2 half way round), capacity 1000: the D-MANO benchmarks' network."""
    ring = ring_topology(n)
    data = {
        "name": f"ring{n}-{suffix}", "nodes": [{"name": x.name} for x in ring.nodes],
        "links": [{"a": lk.a, "b": lk.b, "cost": lk.cost} for lk in ring.links],
        "services": [{"name": "SVC", "id": 1, "anycast": "10.254.1.1"}],
        "instances": [{"name": "s1", "service": "SVC", "node": ring.nodes[0].name,
                       "capacity": 1000},
                      {"name": "s2", "service": "SVC", "node": ring.nodes[n // 2].name,
                       "capacity": 1000}],
    }
    return parse_topology(data, Path(f"<ring{n}-{suffix}>"))


def measure(topo: Topology) -> tuple[float, float]:
    net = Network(topo)
    t0 = time.monotonic()
    try:
        net.start(converge_timeout=120)
        total = time.monotonic() - t0
        ospf = net.wait_converged(1)  # already converged: measures one readiness poll
    finally:
        net.stop()
    return total, ospf


def main() -> None:
    print("\n== Topology bring-up (namespaces + FRR + OSPF convergence), "
          f"{REPEAT} runs each ==")
    print(f"{'nodes':>6} {'links':>6} {'bring-up s (median)':>20} {'min':>7} {'max':>7} "
          f"{'readiness poll s':>17}")
    for n in SIZES:
        topo = ring_topology(n)
        runs = [measure(topo) for _ in range(REPEAT)]
        totals = [r[0] for r in runs]
        print(f"{n:>6} {len(topo.links):>6} {statistics.median(totals):>20.2f} "
              f"{min(totals):>7.2f} {max(totals):>7.2f} {runs[-1][1]:>17.3f}")


if __name__ == "__main__":
    main()
