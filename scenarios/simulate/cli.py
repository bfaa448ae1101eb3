"""``python -m scenarios simulate FILE``: a scenario's runs, simulated; the same report.

Writes ``<output>/<scenario>/<stamp>-sim/run-NN/`` (the runner's layout, the stamp marked
``-sim``) with the emulated run's files plus ``controlplane.csv``, ``convergence.csv``
and ``controlplane.png``, then ``report.txt`` / ``summary.json`` / Fig. 5 of the set
(:func:`scenarios.report.report_run`, :func:`~scenarios.report.report_set`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from scenarios.report import RunSummary, report_run, report_set
from scenarios.simulate.outputs import RunOutput
from scenarios.simulate.sim import SimOptions, Simulation
from scenarios.spec import Scenario, load_scenario, run_dir, run_set_dir
from topologies.spec import SIM_MAX_NODES, Topology, load_topology

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "simulate", help="simulate a scenario (no namespaces): the control plane of up to "
        "10 000 NFV nodes, the real D-MANO code at every node, flows placed by the "
        "connectors' rule",
        description="Simulate a scenario file's runs and report them like emulated runs.")
    p.add_argument("file", type=Path)
    p.add_argument("--nodes-from", metavar="SOURCE",
                   help="add routers to the scenario's network: a topology file (its nodes "
                        "and links; up to 2**20 nodes) or a generator KIND:N[,key=value] "
                        "(ring:10000,chords=1 | geometric:5000,degree=6 | waxman:1000; "
                        "seed=S); each scenario node is linked to 2 of them at cost 10000")
    p.add_argument("--repetitions", type=int, help="override the file's repetitions")
    p.add_argument("--output", type=Path, help="base folder for relative 'output' paths")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--time-scale", type=float,
                   help="override the file's time_scale (default: the file's, so the run "
                        "models the emulated run of the file; 1: the scenario's own time)")
    p.add_argument("--hop-delay-ms", type=float, default=1.0,
                   help="flooding delay per hop (default 1)")
    p.add_argument("--adjacency-ms", type=float,
                   help="link/node up -> full adjacency (default: half the hello interval)")
    p.add_argument("--local-reaction-ms", type=float, default=20.0,
                   help="VNF death -> its node's connector rewritten and LSA flushed "
                        "(default 20)")
    p.add_argument("--node-detection", choices=("bfd", "carrier"), default="bfd",
                   help="neighbours notice a failed node after BFD (default) or at once "
                        "(carrier loss, as when its interfaces go down)")
    p.add_argument("--watch", choices=("auto", "all", "ingress", "none"), default="auto",
                   help="whose weights go to weights.csv / weight_changes.csv (auto: every "
                        "node up to 250 nodes, else the ingress nodes)")


def options_from(args: argparse.Namespace) -> SimOptions:
    return SimOptions(
        hop_delay_s=args.hop_delay_ms / 1000.0,
        adjacency_s=None if args.adjacency_ms is None else args.adjacency_ms / 1000.0,
        local_reaction_s=args.local_reaction_ms / 1000.0,
        node_detection=args.node_detection, watch=args.watch, time_scale=args.time_scale)


def load(path: Path, nodes_from: str | None = None) -> Scenario:
    """The scenario, its topology extended by ``nodes_from`` (simulation limits)."""
    from scenarios.simulate.synthetic import KINDS, extend

    s = load_scenario(path, max_nodes=SIM_MAX_NODES)
    if nodes_from is None:
        return s
    if nodes_from.split(":", 1)[0] in KINDS or (":" in nodes_from
                                                 and not Path(nodes_from).exists()):
        topo = extend(s.topology, nodes_from)
    else:
        other = load_topology(nodes_from, max_nodes=SIM_MAX_NODES)
        clash = {x.name for x in other.nodes} & {x.name for x in s.topology.nodes}
        if clash:
            raise ValueError(f"{nodes_from}: node names also in the scenario's topology: "
                             f"{', '.join(sorted(clash)[:5])}")
        topo = _merge(s.topology, other)
    return load_scenario(path, max_nodes=SIM_MAX_NODES, topology=topo)


def _merge(topo: Topology, other: Topology) -> Topology:
    """``topo`` plus ``other``'s routers and links, attached like a generated network."""
    import random

    from topologies.spec import LinkSpec, NodeSpec

    rng = random.Random(1)
    nodes = list(topo.nodes) + [NodeSpec(x.name, len(topo.nodes) + x.index)
                                for x in other.nodes]
    links = list(topo.links) + [dataclasses.replace(lk, index=len(topo.links) + k)
                                for k, lk in enumerate(other.links)]
    for x in topo.nodes:
        for y in rng.sample(list(other.nodes), min(2, len(other.nodes))):
            links.append(LinkSpec(x.name, y.name, 10000, None, len(links)))
    return dataclasses.replace(topo, nodes=tuple(nodes), links=tuple(links))


def simulate_scenario(path: Path, repetitions: int | None = None, output: Path | None = None,
                      figures_too: bool = True, options: SimOptions | None = None,
                      nodes_from: str | None = None, scenario: Scenario | None = None
                      ) -> Path:
    """Simulate every repetition; return the set folder with the report."""
    s = scenario if scenario is not None else load(path, nodes_from)
    opts = options or SimOptions()
    if opts.time_scale is not None:
        s = dataclasses.replace(s, time_scale=opts.time_scale)
    n = repetitions or s.repetitions
    set_dir = run_set_dir(s, time.strftime("%Y%m%d-%H%M%S") + "-sim", base=output)
    set_dir.mkdir(parents=True, exist_ok=True)
    print(f"scenario {s.name}: {n} simulated run(s) of {s.duration_s:g} s scenario time "
          f"on {len(s.topology.nodes)} nodes / {len(s.topology.links)} links; results in "
          f"{set_dir}", flush=True)
    summaries: list[RunSummary] = []
    for rep in range(1, n + 1):
        folder = run_dir(set_dir, rep)
        started = time.time()
        sim = Simulation(s, rep, opts)
        out = RunOutput(sim, folder)
        sim.run(out)
        out.finish(started)
        print(f"run {rep}/{n}: {s.duration_s:g} s simulated in {sim.result.wall_s:.1f} s "
              f"({sim.engine.executed} events, {sim.store.versions_made} LSA instances)",
              flush=True)
        summaries.append(report_run(s, folder, rep, figures_too))
    report_set(s, summaries, set_dir, figures_too)
    return set_dir


def cmd_simulate(args: argparse.Namespace) -> int:
    folder = simulate_scenario(args.file, args.repetitions, args.output, not args.no_figures,
                               options_from(args), args.nodes_from)
    print((folder / "report.txt").read_text(), end="")
    print(f"\nresults: {folder}")
    return 0


__all__ = ["add_parser", "cmd_simulate", "load", "options_from", "simulate_scenario"]
