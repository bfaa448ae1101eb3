"""Control-plane simulation at scale: simulated seconds per second and peak memory.

For 1 000, 5 000 and 10 000 NFV nodes (``scenarios.simulate.synthetic``: a ring with one
random chord per router, seed 1), the benchmark scenario: 4 services with 25 instances
each on random routers (100 D-MANOs announcing load-dependent costs, policy ``paper``:
remaining capacity, so an instance re-announces whenever its load moved), 4 chains of two
services, 10 ingress routers each with a Poisson class of 1 new flow/s lasting 30 s at
10 packets/s (about 300 flows at a time), and one event of each kind the simulation
models (fail/restore an instance, a link, a router; set_policy_param), over 300 s of
scenario time at time scale 1. Each size runs alone in its own process, one after the
other (so the peak RSS is that size's), and writes its run folder's CSV files (not the
report or figures) to a temporary folder.

Printed per size: routers, links, LSA instances originated and their transmissions, the
simulated time, the wall and CPU time of the simulation (set-up included) and of writing
its files (the convergence per event is computed then), simulated seconds per wall
second and per CPU second, the peak RSS at the end of the simulation and after writing
the files, and the machine's load average when it ended (the machine is shared: under
load, wall time grows and CPU time is the fairer figure). Goal (issue #13): 10 000 nodes,
300 simulated seconds in under 10 minutes on one core.

``python -m benchmarks sim_scale`` (``make bench-scale``) runs all three sizes;
``python -m benchmarks.sim_scale --sizes 1000 --duration 60`` a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1000, 5000, 10000)
DURATION_S = 300.0
KIND = "ring"


def one(n: int, duration_s: float, kind: str = KIND) -> dict[str, float | str]:
    """Simulate the benchmark scenario on ``n`` routers in this process."""
    from scenarios.simulate.outputs import RunOutput
    from scenarios.simulate.sim import SimOptions, Simulation
    from scenarios.simulate.synthetic import benchmark_scenario_data, benchmark_topology
    from scenarios.spec import parse_scenario
    from topologies.spec import SIM_MAX_NODES

    w0, c0 = time.monotonic(), time.process_time()
    topo = benchmark_topology(kind, n, seed=1)
    data = benchmark_scenario_data(topo, duration_s=duration_s)
    scenario = parse_scenario(data, Path(f"bench_{kind}{n}.yaml"), topology=topo,
                              max_nodes=SIM_MAX_NODES)
    sim = Simulation(scenario, 1, SimOptions())
    with tempfile.TemporaryDirectory(prefix="simscale") as tmp:
        out = RunOutput(sim, Path(tmp) / "run-01")
        sim.run(out)
        w1, c1 = time.monotonic(), time.process_time()
        rss_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        out.finish(time.time())
        w2, c2 = time.monotonic(), time.process_time()
    totals = sim.stats.totals()
    return {
        "kind": kind, "nodes": n, "links": len(topo.links),
        "instances": len(topo.instances), "flows": len(sim.traffic.flows),
        "lsas": totals["lsas_originated"], "transmissions": totals["lsa_transmissions"],
        "spf_runs": totals["spf_runs"], "simulated_s": duration_s,
        "wall_s": w1 - w0, "cpu_s": c1 - c0, "files_wall_s": w2 - w1,
        "files_cpu_s": c2 - c1,
        "rss_run_mb": rss_run,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "load": os.getloadavg()[0],
    }


def run_size(n: int, duration_s: float, kind: str) -> dict[str, float | str]:
    """:func:`one` in a fresh process (its own peak RSS)."""
    code = ("import json, sys; from benchmarks.sim_scale import one; "
            f"print(json.dumps(one({n}, {duration_s!r}, {kind!r})))")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{n} nodes: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, float | str]]) -> str:
    head = (f"{'nodes':>6} {'links':>6} {'LSAs':>6} {'tx':>10} {'sim s':>6} {'wall s':>7} "
            f"{'cpu s':>7} {'sim/wall':>8} {'sim/cpu':>8} {'files s':>7} {'RSS run':>7} "
            f"{'RSS MB':>7} {'load':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sim_s, wall, cpu = float(r["simulated_s"]), float(r["wall_s"]), float(r["cpu_s"])
        lines.append(
            f"{int(r['nodes']):>6} {int(r['links']):>6} {int(float(r['lsas'])):>6} "
            f"{int(float(r['transmissions'])):>10} {sim_s:>6.0f} {wall:>7.1f} {cpu:>7.1f} "
            f"{sim_s / wall:>8.2f} {sim_s / cpu:>8.2f} {float(r['files_wall_s']):>7.1f} "
            f"{float(r['rss_run_mb']):>7.0f} {float(r['rss_mb']):>7.0f} "
            f"{float(r['load']):>5.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sim_scale",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--duration", type=float, default=DURATION_S)
    p.add_argument("--kind", default=KIND, choices=("ring", "geometric", "waxman"))
    args = p.parse_args([] if argv is None else argv)
    print(f"control-plane simulation at scale: {args.kind} networks, "
          f"{args.duration:g} s of scenario time each (benchmarks/sim_scale.py)", flush=True)
    rows = []
    for n in args.sizes:
        rows.append(run_size(n, args.duration, args.kind))
        print(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
