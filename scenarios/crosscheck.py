"""``python -m scenarios crosscheck TOPOLOGY``: the simulation against the emulation.

Brings the topology up (routers, connectors, VNFs, D-MANOs; no traffic), waits until
every D-MANO lists every started instance and its tables have not changed for a few
periods, and compares every node's tables (``python -m dmano show --json``, the
``services`` part) with those the control-plane simulation (:mod:`scenarios.simulate`)
computes for the same topology and policy at load 0. Prints each difference; exit 1
when there is one. The integration tests run it on the shipped topologies; run it on
your own to trust the simulation's large-scale results on it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from dmano.policy import load_policy
from scenarios.spec.parse import parse_scenario
from topologies.network import Network
from topologies.spec import Topology

log = logging.getLogger(__name__)

Tables = dict[str, dict[str, Any]]  # node -> {"services": [...]} (dmano show --json)


def simulated(topo: Topology, policy: Path) -> Tables:
    """Every node's tables in the simulation's steady state (load 0)."""
    from scenarios.simulate.sim import SimOptions, Simulation

    src = next((h for h in topo.hosts if h.role in ("source", "both")), None)
    dst = next((h for h in topo.hosts if h.role in ("sink", "both") and h != src), None)
    chain = next((r.chain for r in topo.classifier if src and r.node == src.node), None)
    traffic = [] if src is None or dst is None else [{
        "name": "none", "source": src.name, "destination": dst.name,
        "chain": "none" if chain is None else chain,
        "arrival": "constant", "flows_per_s": 0.01, "flow_duration_s": 1.0,
        "packets_per_s": 1}]
    data = {"name": "crosscheck", "topology": "x", "policy": str(policy),
            "time_scale": 1.0, "duration_s": 1, "seed": 1, "traffic": traffic,
            "events": [], "measure": {"sample_period_s": 1}}
    if not traffic:
        raise ValueError(f"{topo.path}: crosscheck needs a source and a sink host in the "
                         "topology (the simulated scenario is built around them)")
    scenario = replace(parse_scenario(data, topo.path, topology=topo), traffic=())
    sim = Simulation(scenario, 1, SimOptions(watch="none"))
    return {n.name: sim.tables_json(n.name, 0.0) for n in topo.nodes}


def _services(status: dict[str, Any] | None) -> dict[str, Any]:
    return {"services": (status or {}).get("services", [])}


def emulated(net: Network, settle_s: float = 3.0, timeout: float = 120) -> Tables:
    """Every node's tables once every D-MANO lists every started instance and nothing
    changed for ``settle_s`` (TimeoutError otherwise)."""
    want = sum(1 for i in net.topo.instances if i.start)

    def now() -> Tables:
        return {n.name: _services(net.dmano_status(n.name)) for n in net.topo.nodes}

    def complete(t: Tables) -> bool:
        return all(sum(len(s["candidates"]) for s in v["services"]) == want
                   for v in t.values())

    deadline = time.monotonic() + timeout
    last, since = now(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        cur = now()
        if cur != last or not complete(cur):
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return cur
    raise TimeoutError(f"the D-MANO tables of {net.topo.path} did not settle within "
                       f"{timeout:.0f} s")


def differences(emu: Tables, sim: Tables) -> list[str]:
    """One line per node and service whose tables differ (both shown)."""
    out = []
    for node in sorted(set(emu) | set(sim)):
        a = {s["service_id"]: s for s in emu.get(node, {}).get("services", [])}
        b = {s["service_id"]: s for s in sim.get(node, {}).get("services", [])}
        for sid in sorted(set(a) | set(b)):
            if a.get(sid) != b.get(sid):
                out.append(f"node {node} service {sid}:\n  emulation  "
                           f"{json.dumps(a.get(sid), sort_keys=True)}\n  simulation "
                           f"{json.dumps(b.get(sid), sort_keys=True)}")
    return out


def crosscheck(topo: Topology, policy: Path, memory_check: bool = True) -> list[str]:
    sim = simulated(topo, policy)
    load_policy(policy)
    with Network(topo, policy=policy, dmano=True, vnfs=True, connectors=True,
                 memory_check=memory_check) as net:
        emu = emulated(net)
    return differences(emu, sim)


def add_parser(sub: Any) -> None:
    """The ``crosscheck`` subcommand of ``python -m scenarios``."""
    p = sub.add_parser("crosscheck", help="emulate a topology and compare every D-MANO's "
                                          "tables with the simulation's (root)")
    p.add_argument("topology", type=Path, help="topology file")
    p.add_argument("--policy", default="paper", metavar="NAME|FILE",
                   help="a shipped policy name or a policy file (default paper)")
    p.add_argument("--no-memory-check", action="store_true")


def cmd_crosscheck(args: Any) -> int:
    from dmano.policy import resolve_policy
    from topologies.spec import load_topology

    topo = load_topology(args.topology)
    policy = resolve_policy(args.policy)
    t0 = time.monotonic()
    diffs = crosscheck(topo, policy, not args.no_memory_check)
    for d in diffs:
        print(d)
    verdict = (f"{len(diffs)} difference(s)" if diffs else
               "every node's tables are equal in the emulation and the simulation")
    print(f"{topo.path}: {len(topo.nodes)} nodes, "
          f"{sum(1 for i in topo.instances if i.start)} instances, policy {policy.stem}: "
          f"{verdict} ({time.monotonic() - t0:.0f} s)")
    return 1 if diffs else 0
