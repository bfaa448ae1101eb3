"""The WCMP prediction: the steady state the policy should settle at in each window.

The fixed point of the cost -> weight -> load loop (:func:`dmano.policy.fixed_point_shares`)
for the policy in effect at the window's start, with real and with integer weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import networkx as nx

from dmano.policy import fixed_point_shares
from scenarios.spec import Scenario

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """WCMP steady state for one service in one window (shares in %)."""

    window: str
    service: str
    ingress: str
    policy: str
    total_load: float  # units/s
    concurrent_flows: float
    shares: dict[str, float]
    integer_shares: dict[str, float]
    converged: bool
    integer_converged: bool
    placement_sd: dict[str, float]  # pts: binomial spread of placing the concurrent flows
    notes: tuple[str, ...] = ()


def predict(scenario: Scenario) -> dict[str, list[Prediction]]:
    """Per window, the WCMP fixed point of each service that chained traffic enters first.

    Uses the timeline state at the window's start (live instances, failed links and
    nodes, the policy with any ``set_policy_param`` applied, the ``set_load`` rates),
    network costs = shortest paths over the topology's links from the ingress node (the
    source host's node; 0 for an instance on it), capacities and configured costs from
    the topology, and the steady-state load ``sum(flows_per_s * flow_duration_s *
    packets_per_s)``. Services reached only later in a chain, or from several ingress
    nodes, are not predicted (a note says so).
    """
    topo = scenario.topology
    hosts = {h.name: h.node for h in topo.hosts}
    chains = {c.spi: c.services for c in topo.chains}
    out: dict[str, list[Prediction]] = {}
    for w in scenario.measure.windows:
        state = scenario.state_at(w.start_s)
        live = state.live_instances(topo) - state.drained  # drained: no new flows
        graph = nx.Graph()
        graph.add_nodes_from(n.name for n in topo.nodes if n.name not in state.failed_nodes)
        for lk in topo.links:
            if (tuple(sorted((lk.a, lk.b))) not in state.failed_links
                    and lk.a in graph and lk.b in graph):
                graph.add_edge(lk.a, lk.b, weight=lk.cost)
        by_service: dict[str, list[Any]] = {}
        for c in scenario.traffic:
            if c.chain is not None:
                by_service.setdefault(chains[c.chain][0], []).append(c)
        preds = []
        for service, classes in sorted(by_service.items()):
            notes: list[str] = []
            ingresses = sorted({hosts[c.source] for c in classes})
            if len(ingresses) > 1:
                log.info("window %s: service %s enters at %s: no prediction", w.name,
                         service, ", ".join(ingresses))
                continue
            ingress = ingresses[0]
            if ingress not in graph:
                continue
            dist = nx.single_source_dijkstra_path_length(graph, ingress)
            cands = [i for i in topo.instances
                     if i.service == service and i.name in live and i.node in dist]
            if not cands:
                continue
            load = 0.0
            flows = 0.0
            for c in classes:
                fps, pps = state.rate(c.name)
                if c.start_s > w.start_s - c.flow_duration_s or c.end_s < w.end_s:
                    notes.append(f"traffic {c.name} is not in steady state over the window")
                load += fps * c.flow_duration_s * pps
                flows += fps * c.flow_duration_s
            longest = max(c.flow_duration_s for c in classes)
            for e in scenario.events:
                if w.start_s <= e.at_s < w.end_s:
                    notes.append(f"{e.describe()} at {e.at_s:g} s falls inside the window")
                elif w.start_s - longest < e.at_s < w.start_s:
                    notes.append(f"{e.describe()} at {e.at_s:g} s is less than one flow "
                                 f"duration ({longest:g} s) before the window's start")
            nets = [float(dist[i.node]) for i in cands]
            caps = [float(i.capacity) for i in cands]
            conf = [i.cost for i in cands]
            real = fixed_point_shares(state.policy, nets, caps, load, configured_costs=conf)
            ints = fixed_point_shares(state.policy, nets, caps, load, configured_costs=conf,
                                      integer=True)
            names = [i.name for i in cands]
            shares = {n: 100.0 * s for n, s in zip(names, real.shares, strict=True)}
            sd = {n: (100.0 * math.sqrt(s * (1 - s) / flows) if flows > 0 else 0.0)
                  for n, s in zip(names, real.shares, strict=True)}
            if not real.converged:
                notes.append("the real-valued iteration did not converge")
            if not ints.converged:
                notes.append("with integer weights the loop cycles between neighbouring "
                             "points (shown: where the iteration stopped)")
            over = [n for n, ld, cap in zip(names, real.loads, caps, strict=True) if ld > cap]
            if over:
                notes.append(f"predicted overload on {', '.join(over)}")
            preds.append(Prediction(
                window=w.name, service=service, ingress=ingress, policy=state.policy.name,
                total_load=load, concurrent_flows=flows, shares=shares,
                integer_shares={n: 100.0 * s for n, s in zip(names, ints.shares,
                                                               strict=True)},
                converged=real.converged, integer_converged=ints.converged,
                placement_sd=sd, notes=tuple(dict.fromkeys(notes)),
            ))
        out[w.name] = preds
    return out


def predicted_shares(preds: dict[str, list[Prediction]], integer: bool = False
                     ) -> dict[str, dict[str, float]]:
    """window -> instance -> predicted share (%)."""
    return {w: {i: v for p in ps for i, v in (p.integer_shares if integer
                                              else p.shares).items()}
            for w, ps in preds.items()}


__all__ = ["Prediction", "predict", "predicted_shares"]
