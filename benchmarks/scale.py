"""Scale of the emulation (issue #13): bring-up, memory, idle CPU, traffic and stop of
networks of 25, 50, 100 and 200 NFV nodes on this machine (``make bench-scale``).

The network: a ring of N nodes with chords (benchmarks.topology_bringup's pattern,
seeded), one VNF instance per 4 nodes alternating two services FW and IDS (capacity 2000
packets/s each), chain FW -> IDS from a source host on the second node to a sink half way
round, the paper policy. OSPF hello 2 s / dead 8 s and BFD 500 ms x 4: the shipped
defaults (1 s / 4 s, BFD 100 ms x 3) collapse beyond ~60 nodes on 2 cores (BFD sessions
starve, flap, and every flap floods router LSAs: load average 750 at 100 nodes).

Per size it prints:

* ``up``: ``Network.start`` until every process is ready, and its phases; then the time
  until every D-MANO lists every instance of both services (tables complete);
* memory: the drop of MemAvailable per node (everything: processes, namespaces, veths,
  BPF maps, page cache) and the PSS of each kind of process;
* idle: the cores used by the network's processes over 10 s after the tables are
  complete, the tasks runnable at that moment, and the 1-minute load average 30 s after
  "up" (a decaying average: after a start-up that kept 2 cores busy it needs minutes to
  fall below 2 even on an idle machine, so the instantaneous figures are the ones to
  read);
* traffic: 1 000 concurrent flows of 2 packets/s through FW -> IDS for 20 s, packets
  sent and lost (steady state: the flows start after the tables are complete);
* stop: ``Network.stop`` (processes, node shells, namespaces).

Sizes whose estimated memory (65 MB per node) exceeds MemAvailable are skipped with the
numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from dmano.policy import shipped_policy
from topologies.network import Network
from topologies.spec import Topology, parse_topology

SIZES = (25, 50, 100, 200)
MB_PER_NODE = 65
FLOWS = 1000
PPS = 2
TRAFFIC_S = 20


def topology(n: int, seed: int = 1) -> Topology:
    rnd = random.Random(seed)
    names = [f"N{i}" for i in range(1, n + 1)]
    links = [{"a": names[i], "b": names[(i + 1) % n], "cost": rnd.randint(1, 20)}
             for i in range(n)]
    for i in range(0, n // 2, 3):
        links.append({"a": names[i], "b": names[i + n // 2], "cost": rnd.randint(1, 20)})
    instances = []
    for k, i in enumerate(range(0, n, 4)):
        svc = "FW" if k % 2 == 0 else "IDS"
        instances.append({"name": f"{svc.lower()}{k + 1}", "service": svc, "node": names[i],
                          "capacity": 2000})
    data = {
        "name": f"scale{n}",
        "ospf": {"hello_s": 2, "dead_s": 8, "bfd": {"interval_ms": 500, "multiplier": 4}},
        "nodes": [{"name": x} for x in names], "links": links,
        "services": [{"name": "FW", "id": 1, "anycast": "10.254.1.1", "kind": "firewall"},
                     {"name": "IDS", "id": 2, "anycast": "10.254.2.1", "kind": "ids"}],
        "chains": [{"spi": 10, "services": ["FW", "IDS"]}],
        "hosts": [{"name": "src", "node": names[1], "role": "source"},
                  {"name": "sink", "node": names[n // 2 + 1], "role": "sink"}],
        "classifier": [{"node": names[1], "chain": 10, "src": "10.2.100.0/24",
                        "proto": "udp", "dport": "5000-5999"}],
        "instances": instances,
    }
    return parse_topology(data, Path(f"<scale{n}>"))


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def runnable() -> int:
    return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])


def process_pids(net: Network) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, proc in net.processes.items():
        out.setdefault(name.split("-")[0], []).append(proc.pid)
    for handle in net.routers.values():
        for daemon in ("zebra", "ospfd", "bfdd"):
            with contextlib.suppress(OSError, ValueError):
                out.setdefault(daemon, []).append(int(handle.paths.pidfile(daemon).read_text()))
    return out


def tables_complete(net: Network, instances: int) -> bool:
    for n in net.topo.nodes:
        st = net.dmano_status(n.name) or {}
        listed = sum(len(s["candidates"]) for s in st.get("services", []))
        if listed < instances:
            return False
    return True


def traffic(net: Network, folder: Path) -> tuple[int, int]:
    """1 000 concurrent flows through the chain for TRAFFIC_S; (sent, lost)."""
    from topologies import addressing as addr

    hosts = addr.host_addresses(net.topo)
    epoch = time.monotonic_ns() + 2_000_000_000
    plan = {"first_flow_id": 0, "flows": [
        {"start": round(i / FLOWS, 6), "duration": TRAFFIC_S, "rate": PPS, "size": 64,
         "sport": 10000 + i, "dst": f"{hosts['sink'].ip}:5000"} for i in range(FLOWS)]}
    (folder / "plan.json").write_text(json.dumps(plan))
    net.start_process("sink", "sink", [
        sys.executable, "-m", "scenarios.traffic", "sink", "--epoch-ns", str(epoch),
        "--port", "5000", "--summary", str(folder / "sink.json")], folder / "sink.log")
    net.start_process("gen", "src", [
        sys.executable, "-m", "scenarios.traffic", "gen", "--plan", str(folder / "plan.json"),
        "--epoch-ns", str(epoch), "--quiet", "--summary", str(folder / "gen.json")],
        folder / "gen.log")
    gen = net.processes["gen"]
    try:
        gen.wait(TRAFFIC_S + 120)
    except subprocess.TimeoutExpired:  # starved: stop it, it writes what it sent
        net.stop_process("gen", timeout=30)
    time.sleep(1.5)  # packets in flight
    net.stop_process("sink", timeout=30)
    sent = json.loads((folder / "gen.json").read_text())["packets"]["sent"]
    got = json.loads((folder / "sink.json").read_text())["totals"]["unique"]
    return int(sent), int(sent) - int(got)


def progress(text: str) -> None:
    """A line on stderr as soon as a figure is known (a size takes minutes)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(n: int, folder: Path) -> dict[str, object]:
    topo = topology(n)
    m0 = mem_available_mb()
    if n * MB_PER_NODE > m0:
        return {"skipped": f"needs ~{n * MB_PER_NODE} MB, {m0:.0f} MB available"}
    res: dict[str, object] = {}
    net = Network(topo, policy=shipped_policy("paper"), dmano=True, vnfs=True,
                  connectors=True)
    t0 = time.monotonic()
    try:
        net.start(converge_timeout=600, ready_timeout=600)
        res["up_s"] = time.monotonic() - t0
        res["phases"] = dict(net.bringup_phases)
        progress(f"{n} nodes: up in {res['up_s']:.0f} s ("
                 + ", ".join(f"{k} {v:.0f} s" for k, v in net.bringup_phases.items()) + ")")
        deadline = time.monotonic() + 300
        while not tables_complete(net, len(topo.instances)):
            if time.monotonic() > deadline:
                raise RuntimeError("the D-MANOs' tables were not complete 300 s after up")
            time.sleep(0.5)
        res["tables_s"] = time.monotonic() - t0
        progress(f"{n} nodes: every D-MANO's table complete at {res['tables_s']:.0f} s")
        res["mem_mb_per_node"] = (m0 - mem_available_mb()) / n
        pids = process_pids(net)
        res["pss_mb"] = {k: sum(pss_mb(p) for p in v) / len(v) for k, v in pids.items()}
        a = {k: sum(cpu_ticks(p) for p in v) for k, v in pids.items()}
        # CPU seconds each kind of process used from its start until the tables were
        # complete (where the bring-up's CPU goes)
        res["start_cpu_s"] = {k: t / os.sysconf("SC_CLK_TCK") for k, t in a.items()}
        time.sleep(10)
        res["idle_cores"] = sum(sum(cpu_ticks(p) for p in v) - a[k]
                                for k, v in pids.items()) / os.sysconf("SC_CLK_TCK") / 10
        res["runnable"] = runnable()
        time.sleep(max(0.0, t0 + res["up_s"] + 30 - time.monotonic()))  # type: ignore[operator]
        res["load1_at_30s"] = float(Path("/proc/loadavg").read_text().split()[0])
        progress(f"{n} nodes: {res['mem_mb_per_node']:.1f} MB/node, idle "
                 f"{res['idle_cores']:.2f} cores, load1 {res['load1_at_30s']:.1f} 30 s "
                 "after up; traffic next")
        res["sent"], res["lost"] = traffic(net, folder)
    finally:
        t1 = time.monotonic()
        net.stop()
        res["stop_s"] = time.monotonic() - t1
    return res


def main() -> None:
    import tempfile

    sizes = [int(s) for s in os.environ.get("DSFC_SCALE_SIZES", "").split(",") if s] \
        or list(SIZES)
    print(f"\n== Emulation scale (ring + chords, 1 instance / 4 nodes, FW -> IDS, "
          f"{FLOWS} flows x {PPS} pps for {TRAFFIC_S} s; goals: up < 120 s at 200, "
          f"<= 50 MB/node, stop < 20 s, 0 lost) ==")
    print(f"{'nodes':>6} {'up s':>6} {'tables s':>9} {'MB/node':>8} {'idle cores':>11} "
          f"{'runnable':>9} {'load1@30s':>10} {'sent':>7} {'lost':>5} {'stop s':>7}")
    details = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"dsfc-scale{n}-") as tmp:
            r = run(n, Path(tmp))
        if "skipped" in r:
            print(f"{n:>6} skipped: {r['skipped']}", flush=True)
            continue
        print(f"{n:>6} {r['up_s']:>6.0f} {r['tables_s']:>9.0f} {r['mem_mb_per_node']:>8.1f} "
              f"{r['idle_cores']:>11.2f} {r['runnable']:>9} {r['load1_at_30s']:>10.1f} "
              f"{r['sent']:>7} {r['lost']:>5} {r['stop_s']:>7.1f}", flush=True)
        details.append((n, r))
    for n, r in details:
        phases = ", ".join(f"{k} {v:.0f}" for k, v in r["phases"].items())  # type: ignore[union-attr]
        pss = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["pss_mb"].items()))  # type: ignore[union-attr]
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["start_cpu_s"].items()))  # type: ignore[union-attr]
        print(f"  {n} nodes: phases (s): {phases}; PSS per process (MB): {pss}; CPU s "
              f"until the tables were complete: {cpu}")


if __name__ == "__main__":
    main()
