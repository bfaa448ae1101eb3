"""The central orchestrator's reaction to a VNF crash (DESIGN §10, issue #12).

On the ring of N NFV nodes (with chords) of :mod:`benchmarks.failure_avoidance`, with the
central orchestrator instead of the D-MANOs (objective ``policy``, management RTT 0, then
one poll period with a 20 ms RTT): SIGKILL one instance's VNF and measure the time until
the orchestrator has written the last connector without it (its per-node status files
are written right after each node's connector write; polled every 2 ms). The VNF is
restarted and back everywhere before the next kill. One network per size; the
orchestrator is restarted with each poll period.

A crash is seen at the next poll: the expected time is about half a poll period plus
the RTT (poll) plus the RTT (writes) plus the computation; compare with the distributed
mode's local pidfd path in ``failure_avoidance`` (~20 ms local, < 100 ms everywhere).
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from benchmarks.dmano_propagation import pct
from benchmarks.failure_avoidance import StatusWatch, kill_s1, topology, wait_all
from dmano.policy import shipped_policy
from topologies import central
from topologies.network import Network

SIZES = (5, 10, 20)
SETTINGS = ((0.25, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 20.0))  # (poll period s, RTT ms)
KILLS = 8


def kills(n: int) -> dict[tuple[float, float], list[float]]:
    topo = topology(n)
    out: dict[tuple[float, float], list[float]] = {}
    params = central.CentralParams(poll_period_s=SETTINGS[0][0], mgmt_rtt_ms=SETTINGS[0][1])
    with Network(topo, policy=shipped_policy("paper"), vnfs=True, connectors=True,
                 central=params) as net:
        watches = {x.name: StatusWatch(central.node_status_file(net.run_folder, x.name))
                   for x in topo.nodes}
        for k, (poll, rtt) in enumerate(SETTINGS):
            if k:
                net.stop_process(central.PROCESS)
                net.central = replace(params, poll_period_s=poll, mgmt_rtt_ms=rtt)
                for w in watches.values():
                    w.mtime = 0
                net.start_central()
                net.wait_ready()
            wait_all(watches, present=True)
            out[(poll, rtt)] = [max(seen.values()) for seen in kill_s1(net, watches, KILLS)]
    return out


def main() -> None:
    print(f"\n== Central orchestrator: VNF SIGKILLed -> last connector written without it "
          f"({KILLS} kills per setting; status files polled every 2 ms) ==")
    print(f"{'nodes':>6} {'poll s':>7} {'RTT ms':>7} {'p50 ms':>8} {'max ms':>8} "
          f"{'mean ms':>8} {'expected ~ poll/2 + 2 RTT':>26}")
    for n in SIZES:
        for (poll, rtt), times in kills(n).items():
            print(f"{n:>6} {poll:>7g} {rtt:>7g} {1000 * statistics.median(times):>8.0f} "
                  f"{1000 * pct(times, 100):>8.0f} {1000 * statistics.fmean(times):>8.0f} "
                  f"{1000 * (poll / 2) + 2 * rtt:>26.0f}", flush=True)


if __name__ == "__main__":
    main()
