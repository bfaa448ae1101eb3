"""D-MANO control loop: from a VNF load change at one node to new weights everywhere.

On a ring of N NFV nodes (with chords) with two instances of one service, the load one
instance reports is changed (SyntheticLoad); for every node we record when its D-MANO's
service table shows the instance's new VNF cost. Two figures per change:

- *total*: load change -> the node's table updated. Includes the wait for the next
  measurement period (policy period_s, 2 s as in the paper), so it is roughly uniform in
  [0, period] plus propagation;
- *flooding*: originating node's table updated -> this node's table updated: LSA
  origination, flooding, API notification and recomputation.

Measured on the 2-core machine (ring of 5/10/20): flooding p50 0-8 ms, p99 5-17 ms; total
p50 and p99 about 2.0 s: one period (the change waits for the next measurement), then
milliseconds. FRR 8.4 refreshes one opaque LSA at most once every 5 s (its MinLSInterval
is fixed on that path, whatever "timers throttle lsa" says); without the D-MANO's
opaque-ID generations (dmano/lsa.py) the total was p50 3-4 s, p99 6 s.
"""

from __future__ import annotations

import json
import statistics
import time

from dmano.policy import shipped_policy
from tests.loadsim import SyntheticLoad
from topologies.network import Network
from topologies.spec import Topology

SIZES = (5, 10, 20)
CHANGES = 10


def topology(n: int) -> Topology:
    from benchmarks.topology_bringup import service_ring

    return service_ring(n, "svc")


def cost_seen(net: Network, node: str, instance: str) -> int | None:
    try:
        st = json.loads((net.run_folder / f"r{node}" / "dmano.json").read_text())
    except (OSError, ValueError):
        return None
    for svc in st.get("services", []):
        for c in svc["candidates"]:
            if c["name"] == instance:
                return c["vnf_cost"]
    return None


def run(n: int) -> tuple[list[float], list[float]]:
    topo = topology(n)
    nodes = [x.name for x in topo.nodes]
    origin = topo.instances[0].node
    totals: list[float] = []
    floods: list[float] = []
    with Network(topo, policy=shipped_policy("paper"), dmano=True) as net, \
            SyntheticLoad(net) as load:
        deadline = time.monotonic() + 60
        while any(cost_seen(net, x, "s1") != 1000 for x in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("D-MANOs did not converge")
            time.sleep(0.05)
        for k in range(CHANGES):
            rate = 100.0 * (k % 2 + 1) + k  # a new cost every time
            want = round(1000 - rate)
            load.rates["s1"] = rate
            t0 = time.monotonic()
            seen: dict[str, float] = {}
            while len(seen) < len(nodes) and time.monotonic() - t0 < 30:
                for x in nodes:
                    if x not in seen and cost_seen(net, x, "s1") == want:
                        seen[x] = time.monotonic()
                time.sleep(0.005)
            if len(seen) < len(nodes):
                raise RuntimeError(f"change {k}: not seen at {set(nodes) - set(seen)}")
            totals += [t - t0 for t in seen.values()]
            floods += [t - seen[origin] for x, t in seen.items() if x != origin]
    return totals, floods


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    print(f"\n== D-MANO propagation of a VNF cost change ({CHANGES} changes, period 2 s, "
          "status polled every 5 ms) ==")
    print(f"{'nodes':>6} {'total p50 ms':>13} {'total p99 ms':>13} "
          f"{'flooding p50 ms':>16} {'flooding p99 ms':>16} {'samples':>8}")
    for n in SIZES:
        totals, floods = run(n)
        print(f"{n:>6} {1000 * statistics.median(totals):>13.0f} "
              f"{1000 * pct(totals, 99):>13.0f} {1000 * statistics.median(floods):>16.0f} "
              f"{1000 * pct(floods, 99):>16.0f} {len(totals):>8}")


if __name__ == "__main__":
    main()
