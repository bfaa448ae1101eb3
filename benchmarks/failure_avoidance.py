"""Failure avoidance: how fast the service plane stops using what failed.

1. *VNF crash* (DESIGN §9, fastest path): on a ring of N NFV nodes (with chords) with two
   instances of one service, real VNF processes, SIGKILL one instance's VNF; per node,
   the time until its D-MANO's service table (written after the connector write) no
   longer lists the instance. *local*: the node that hosted it (pidfd in its D-MANO);
   *farthest*: the last node of the network (LSA flush, flooding, recomputation). The
   VNF is restarted and back everywhere before the next kill. Goals (issue #11): local
   p99 < 50 ms, every node of 20 < 300 ms.
2. *Silent node* (BFD): a node's FRR daemons are SIGKILLed while its links stay up (no
   carrier loss to notice); the time until its neighbours' BFD sessions to it are gone
   and their OSPF adjacency with it is dropped (BFD 100 ms x 3; OSPF's dead interval, 4 s,
   is what it would take without BFD). The daemons are restarted and OSPF re-converges
   before the next round.

Status files are polled every 2 ms (stat, then read when changed); vtysh every ~10 ms.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from pathlib import Path

from benchmarks.dmano_propagation import pct
from dmano.policy import shipped_policy
from topologies import addressing as addr
from topologies import frr
from topologies.network import Network
from topologies.readiness import bfd_peers, neighbor_states
from topologies.spec import Topology, parse_topology

SIZES = (5, 10, 20)
KILLS = 20
BFD_ROUNDS = 10


def topology(n: int) -> Topology:
    from benchmarks.topology_bringup import service_ring

    return service_ring(n, "vnf")


class StatusWatch:
    """Reads a D-MANO status file only when it changed (mtime_ns)."""

    def __init__(self, path: Path):
        self.path = path
        self.mtime = 0
        self.names: set[str] = set()

    def instances(self) -> set[str]:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self.mtime:
                st = json.loads(self.path.read_text())
                self.names = {c["name"] for svc in st.get("services", [])
                              for c in svc["candidates"]}
                self.mtime = mtime
        except (OSError, ValueError):
            pass
        return self.names


def wait_all(watches: dict[str, StatusWatch], present: bool, timeout: float = 60
             ) -> dict[str, float]:
    """Per node, the monotonic time at which s1's presence became ``present``."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(watches):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"s1 {'back' if present else 'gone'} not seen at "
                               f"{sorted(set(watches) - set(seen))}")
        for node, w in watches.items():
            if node not in seen and ("s1" in w.instances()) == present:
                seen[node] = now
        time.sleep(0.002)
    return seen


def vnf_kills(n: int) -> tuple[list[float], list[float]]:
    topo = topology(n)
    home = topo.instances[0].node
    local: list[float] = []
    farthest: list[float] = []
    with Network(topo, policy=shipped_policy("paper"), dmano=True, vnfs=True) as net:
        watches = {x.name: StatusWatch(net.run_folder / f"r{x.name}" / "dmano.json")
                   for x in topo.nodes}
        wait_all(watches, present=True)
        for seen in kill_s1(net, watches, KILLS):
            local.append(seen[home])
            farthest.append(max(seen.values()))
    return local, farthest


def kill_s1(net: Network, watches: dict[str, StatusWatch], kills: int
            ) -> list[dict[str, float]]:
    """SIGKILL instance s1's VNF ``kills`` times; per kill, the seconds until each node's
    status no longer lists it. It is restarted and back everywhere before the next."""
    out = []
    for _ in range(kills):
        proc = net.processes.pop("vnf-s1")
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        seen = wait_all(watches, present=False)
        proc.wait()
        out.append({node: t - t0 for node, t in seen.items()})
        net.start_vnf("s1")
        wait_all(watches, present=True)
    return out


def bfd_rounds(n: int) -> tuple[list[float], list[float]]:
    topo = parse_topology({**_plain(topology(n))}, Path(f"<ring{n}>"))
    victim = topo.nodes[n // 2].name
    rid = str(addr.router_id(topo.node(victim).index))
    peers = {lk.b if lk.a == victim else lk.a: str(
        (addr.link_addressing(lk).a_addr if lk.a == victim else
         addr.link_addressing(lk).b_addr).ip) for lk in topo.links if victim in (lk.a, lk.b)}
    bfd: list[float] = []
    ospf: list[float] = []
    with Network(topo) as net:
        for _ in range(BFD_ROUNDS):
            t0 = time.monotonic()
            for daemon in ("bfdd", "ospfd", "zebra"):
                os.kill(int(net.routers[victim].paths.pidfile(daemon).read_text()),
                        signal.SIGKILL)
            bfd_gone: dict[str, float] = {}
            ospf_gone: dict[str, float] = {}
            deadline = t0 + 10
            while (len(bfd_gone) < len(peers) or len(ospf_gone) < len(peers)) \
                    and time.monotonic() < deadline:
                for peer, addr_ in peers.items():
                    router = net.routers[peer]
                    if peer not in bfd_gone and bfd_peers(router).get(addr_) != "up":
                        bfd_gone[peer] = time.monotonic()
                    if peer not in ospf_gone and rid not in neighbor_states(router):
                        ospf_gone[peer] = time.monotonic()
            if len(bfd_gone) < len(peers) or len(ospf_gone) < len(peers):
                raise RuntimeError("the neighbours did not drop the silent node in 10 s")
            bfd.append(max(bfd_gone.values()) - t0)
            ospf.append(max(ospf_gone.values()) - t0)
            for daemon in frr.daemons(topo):
                net.routers[victim].paths.pidfile(daemon).unlink(missing_ok=True)
                net.start_daemon(victim, daemon)
            net.wait_converged(60)
    return bfd, ospf


def _plain(topo: Topology) -> dict:
    return {"name": topo.name.replace("-vnf", ""), "nodes": [{"name": x.name} for x in
                                                             topo.nodes],
            "links": [{"a": lk.a, "b": lk.b, "cost": lk.cost} for lk in topo.links]}


def ms(values: list[float], p: float | None = None) -> str:
    v = statistics.median(values) if p is None else pct(values, p)
    return f"{1000 * v:.0f}"


def main() -> None:
    print(f"\n== Failure avoidance: VNF SIGKILLed ({KILLS} kills per size; status files "
          "polled every 2 ms) ==")
    print(f"{'nodes':>6} {'local p50 ms':>13} {'local p99 ms':>13} {'all nodes p50 ms':>17} "
          f"{'all nodes p99 ms':>17}")
    for n in SIZES:
        local, farthest = vnf_kills(n)
        print(f"{n:>6} {ms(local):>13} {ms(local, 99):>13} {ms(farthest):>17} "
              f"{ms(farthest, 99):>17}")
    print(f"\n== Silent node (daemons SIGKILLed, links up): neighbours drop it "
          f"({BFD_ROUNDS} rounds, BFD 100 ms x 3, OSPF dead interval 4 s) ==")
    print(f"{'nodes':>6} {'BFD down p50 ms':>16} {'BFD down max ms':>16} "
          f"{'OSPF nbr gone p50 ms':>21} {'OSPF nbr gone max ms':>21}")
    for n in (5,):
        bfd, ospf = bfd_rounds(n)
        print(f"{n:>6} {ms(bfd):>16} {ms(bfd, 100):>16} {ms(ospf):>21} {ms(ospf, 100):>21}")


if __name__ == "__main__":
    main()
