"""``python -m scenarios optimum TOPOLOGY``: each policy's steady state next to the LP optimum.

For a topology file, offline (no namespaces, no FRR), on a given demand:

* the service plane exactly as the D-MANOs would see it in steady state: an
  :class:`~dmano.model.LsdbView` with one router LSA per node (point-to-point links with
  the topology's costs, both directions, router ids and link addresses from the address
  plan) and one VNF announcement per instance, whose VNF cost is the policy's
  :meth:`~dmano.policy.Policy.vnf_cost` at the instance's load. Each ingress's tables
  come from :func:`dmano.service_plane.compute_tables` (the D-MANO's own code), and the
  split of new flows is the connector's: the integer WCMP weights over their sum.
* The steady state of a policy is the fixed point of loads -> VNF costs -> tables ->
  split -> loads, iterated with damping 0.5 from the unloaded network (the load of an
  instance is the sum over ingresses of demand x share; flows outlive many D-MANO
  periods, as in :func:`dmano.policy.fixed_point_shares`, which this generalises to
  several ingresses). Hysteresis is ignored (a steady state does not move). CPU-based
  costs are modelled as ``100 * load / capacity`` percent of one core, as in
  :func:`~dmano.policy.fixed_point_shares`. Integer costs and weights make the map
  piecewise constant: it may cycle between neighbouring points instead of converging;
  the table says so and shows where the iteration stopped.
* The min-max-utilisation optimum (:mod:`dmano.central.optimum`) on the same demand and
  candidates, with path cost = network cost + the instance's configured ``cost`` (0 if
  none): the load-independent part of the path cost, which only breaks ties among the
  optimal splits.

Demand: by default 100 units/s (:data:`DEFAULT_RATE`) for every service at every node
with a host that sends (role ``source`` or ``both``; a sink-only host sends nothing).
This is a simplification: in a chain, the second service is entered at the node of the
instance of the first, not at the host's node. ``--demand NODE:SERVICE=RATE`` (service
by name or id, node by name, rate in units/s, 0 allowed) overrides that one pair and
may be repeated; the other pairs keep the default. Instances with ``start: false`` are
left out (a scenario starts them later) unless ``--all-instances``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano.central import optimum as lp
from dmano.model import LsdbView, RouterLink, RouterLsa, VnfAnnouncement
from dmano.policy import (
    InverseCost,
    Measurement,
    Policy,
    StaticCost,
    load_policy,
    resolve_policy,
    shipped_policy_names,
)
from dmano.service_plane import LINK_P2P, ServiceTable, compute_tables
from dmano.yamlconf import ConfigError
from topologies import addressing as addr
from topologies.spec import InstanceSpec, Topology, load_topology

log = logging.getLogger(__name__)

DEFAULT_RATE = 100.0  # units/s per service at every node with a sending host
DAMPING = 0.5
TOLERANCE = 1e-9  # converged when no instance's utilisation moves more than this
MAX_ITERATIONS = 500

Pair = tuple[str, str]  # (ingress node name, service name)
# the policy whose tables list the LP's candidates: VNF cost = configured cost or 0
_CANDIDATES_POLICY = Policy(name="optimum-candidates", cost=StaticCost(default_cost=0),
                            weight=InverseCost())


# -- demand ---------------------------------------------------------------------------

def default_demand(topo: Topology) -> dict[Pair, float]:
    """:data:`DEFAULT_RATE` for every service at every node with a sending host."""
    nodes = [n.name for n in topo.nodes
             if any(h.node == n.name and h.role != "sink" for h in topo.hosts)]
    return {(n, s.name): DEFAULT_RATE for n in nodes for s in topo.services}


def parse_demand(items: Sequence[str], topo: Topology) -> dict[Pair, float]:
    """``NODE:SERVICE=RATE`` items; raises ConfigError naming ``--demand`` otherwise."""
    out: dict[Pair, float] = {}
    nodes = [n.name for n in topo.nodes]
    for item in items:
        m = re.fullmatch(r"\s*([^:=\s]+)\s*:\s*([^:=\s]+)\s*=\s*(\S+)\s*", item)
        if m is None:
            raise _demand_error(item, "expected NODE:SERVICE=RATE, e.g. A:FW=300")
        node, service, rate_text = m.groups()
        if node not in nodes:
            raise _demand_error(item, f"unknown node {node!r} (nodes: {', '.join(nodes)})")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate) or rate < 0:
            raise _demand_error(item, f"expected a rate in units/s >= 0, got {rate_text!r}")
        out[(node, _service_name(topo, service, item))] = rate
    return out


def _service_name(topo: Topology, ref: str, item: str) -> str:
    for s in topo.services:
        if ref == s.name or ref == str(s.id):
            return s.name
    known = ", ".join(f"{s.name} ({s.id})" for s in topo.services) or "none defined"
    raise _demand_error(item, f"unknown service {ref!r} (services: {known})")


def _demand_error(item: str, message: str) -> ConfigError:
    return ConfigError("--demand", None, "", f"{item!r}: {message}")


# -- the service plane the D-MANOs see ------------------------------------------------

@dataclass(frozen=True)
class Plane:
    """The load-independent part of the steady-state LSDB, and the names of things."""

    topo: Topology
    instances: tuple[InstanceSpec, ...]
    routers: dict[IPv4Address, RouterLsa]

    def key(self, inst: InstanceSpec) -> tuple[IPv4Address, int]:
        """The D-MANO's key of an instance: (advertising router, instance id)."""
        return addr.router_id(self.topo.node(inst.node).index), inst.id

    def names(self) -> dict[tuple[IPv4Address, int], str]:
        return {self.key(i): i.name for i in self.instances}

    def view(self, policy: Policy, loads: Mapping[str, float]) -> LsdbView:
        """The LSDB with every instance announcing ``policy``'s cost at its load."""
        instances = {}
        for inst in self.instances:
            load = loads.get(inst.name, 0.0)
            m = Measurement(capacity=float(inst.capacity), load=load,
                            cpu_percent=100.0 * load / inst.capacity,
                            configured_cost=inst.cost)
            instances[self.key(inst)] = _announcement(self.topo, inst, policy.vnf_cost(m),
                                                      load)
        return LsdbView(routers=dict(self.routers), instances=instances)


def router_lsas(topo: Topology) -> dict[IPv4Address, RouterLsa]:
    """One router LSA per node: a point-to-point link each way per topology link."""
    links: dict[str, list[RouterLink]] = {n.name: [] for n in topo.nodes}
    for lk in topo.links:
        la = addr.link_addressing(lk)
        a, b = topo.node(lk.a).index, topo.node(lk.b).index
        links[lk.a].append(RouterLink(LINK_P2P, addr.router_id(b), la.a_addr.ip, lk.cost))
        links[lk.b].append(RouterLink(LINK_P2P, addr.router_id(a), la.b_addr.ip, lk.cost))
    return {addr.router_id(n.index): RouterLsa(addr.router_id(n.index),
                                               tuple(links[n.name]))
            for n in topo.nodes}


def _announcement(topo: Topology, inst: InstanceSpec, cost: int,
                  load: float) -> VnfAnnouncement:
    service = topo.service(inst.service)
    return VnfAnnouncement(
        instance_id=inst.id, service_id=service.id, anycast=service.anycast, cost=cost,
        endpoint=addr.nsh_endpoint(topo.node(inst.node).index).ip,
        capacity=inst.capacity, load=round(load), name=inst.name)


def make_plane(topo: Topology, all_instances: bool = False) -> Plane:
    """The plane of ``topo``'s running instances (all of them with ``all_instances``)."""
    chosen = tuple(i for i in topo.instances if all_instances or i.start)
    return Plane(topo, chosen, router_lsas(topo))


def ingress_tables(plane: Plane, policy: Policy, loads: Mapping[str, float],
                   nodes: Sequence[str]) -> dict[str, dict[int, ServiceTable]]:
    """Each ingress node's tables, from the D-MANO's own :func:`compute_tables`."""
    view = plane.view(policy, loads)
    return {n: compute_tables(view, addr.router_id(plane.topo.node(n).index), policy)
            for n in nodes}


def _split_of(plane: Plane, tables: Mapping[str, dict[int, ServiceTable]],
              pairs: Sequence[Pair]) -> dict[Pair, dict[str, float]]:
    """The connector's split per pair: integer WCMP weights over their sum."""
    names = plane.names()
    out: dict[Pair, dict[str, float]] = {}
    for node, service in pairs:
        rows = tables[node].get(plane.topo.service(service).id, [])
        total = sum(c.weight for c in rows)
        out[(node, service)] = ({names[(c.adv_router, c.instance_id)]: c.weight / total
                                 for c in rows} if total > 0 else {})
    return out


# -- a policy's steady state ----------------------------------------------------------

@dataclass(frozen=True)
class PolicyOutcome:
    """A policy's steady-state split on the demand and the utilisations it gives."""

    policy: str
    split: dict[Pair, dict[str, float]]
    utilisation: dict[str, float]
    max_utilisation: float
    iterations: int
    converged: bool


def _capacity(plane: Plane) -> dict[str, float]:
    return {i.name: float(i.capacity) for i in plane.instances}


def _loads(split: Mapping[Pair, Mapping[str, float]], demand: Mapping[Pair, float],
           capacity: Mapping[str, float]) -> dict[str, float]:
    util = lp.split_utilisation(split, demand, capacity)
    return {k: u * capacity[k] for k, u in util.items()}


def policy_steady_state(plane: Plane, policy: Policy, demand: Mapping[Pair, float], *,
                        damping: float = DAMPING, tol: float = TOLERANCE,
                        max_iter: int = MAX_ITERATIONS) -> PolicyOutcome:
    """Iterate loads -> costs -> tables -> split -> loads (see the module docstring)."""
    pairs = [p for p, d in demand.items() if d > 0]
    nodes = sorted({n for n, _ in pairs})
    capacity = _capacity(plane)
    loads = dict.fromkeys(capacity, 0.0)
    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        split = _split_of(plane, ingress_tables(plane, policy, loads, nodes), pairs)
        target = _loads(split, demand, capacity)
        new = {k: (1 - damping) * loads[k] + damping * target[k] for k in loads}
        delta = max((abs(new[k] - loads[k]) / capacity[k] for k in loads), default=0.0)
        loads = new
        converged = delta <= tol
    if not converged:
        log.info("policy %s: no fixed point after %d iterations (integer costs and "
                 "weights may cycle); showing where it stopped", policy.name, iterations)
    split = _split_of(plane, ingress_tables(plane, policy, loads, nodes), pairs)
    util = lp.split_utilisation(split, demand, capacity)
    return PolicyOutcome(policy.name, split, util, max(util.values(), default=0.0),
                         iterations, converged)


# -- the optimum ----------------------------------------------------------------------

def optimum(plane: Plane, demand: Mapping[Pair, float]) -> lp.Solution[Pair, str]:
    """The min-max-utilisation split over the candidates the D-MANOs would list."""
    nodes = sorted({n for n, _ in demand})
    tables = ingress_tables(plane, _CANDIDATES_POLICY, {}, nodes)
    names = plane.names()
    candidates = {}
    for node, service in demand:
        rows = tables[node].get(plane.topo.service(service).id, [])
        candidates[(node, service)] = {names[(c.adv_router, c.instance_id)]: c.path_cost
                                       for c in rows}
    return lp.solve(demand, candidates, _capacity(plane))


# -- the comparison -------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    topology: Topology
    plane: Plane
    demand: dict[Pair, float]
    optimum: lp.Solution[Pair, str]
    policies: tuple[PolicyOutcome, ...]

    def ratio(self, outcome: PolicyOutcome) -> float | None:
        """policy / optimum highest utilisation (None if the optimum is 0 and it is not)."""
        best = self.optimum.max_utilisation
        if best > 0:
            return outcome.max_utilisation / best
        return 1.0 if outcome.max_utilisation <= 0 else None

    def left_out(self) -> list[str]:
        chosen = {i.name for i in self.plane.instances}
        return [i.name for i in self.topology.instances if i.name not in chosen]


def compare(topo: Topology, policies: Sequence[Policy], demand: Mapping[Pair, float],
            all_instances: bool = False) -> Comparison:
    """Every policy's steady state and the LP optimum on ``demand``."""
    plane = make_plane(topo, all_instances)
    dem = dict(demand)
    return Comparison(topo, plane, dem, optimum(plane, dem),
                      tuple(policy_steady_state(plane, p, dem) for p in policies))


# -- output ---------------------------------------------------------------------------

def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _grid(rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [("  " + " ".join(c.ljust(w) if i < left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True)))).rstrip()
            for r in rows]


def render(c: Comparison) -> str:
    """The text report: highest utilisation per policy, then per instance."""
    demand = ", ".join(f"{n}:{s}={d:g}" for (n, s), d in c.demand.items() if d > 0)
    lines = [f"topology {c.topology.name} ({c.topology.path}): "
             f"{len(c.plane.instances)} instance(s)",
             f"demand (units/s): {demand or 'none'}"]
    if c.left_out():
        lines.append(f"left out (start: false; --all-instances counts them): "
                     f"{', '.join(c.left_out())}")
    if c.optimum.unserved:
        lines.append("no reachable instance (demand not served): "
                     + ", ".join(f"{n}:{s}" for n, s in c.optimum.unserved))
    summary = [("", "max util", "policy/optimum", "steady state"),
               ("optimum", _pct(c.optimum.max_utilisation), "1.000",
                f"LP {c.optimum.status}")]
    for o in c.policies:
        ratio = c.ratio(o)
        summary.append((o.policy, _pct(o.max_utilisation),
                        "inf" if ratio is None else f"{ratio:.3f}",
                        f"{'converged' if o.converged else 'cycling, stopped'} after "
                        f"{o.iterations} iterations"))
    lines += ["", *_grid(summary, left=1)]
    header = ("instance", "service", "node", "capacity", "optimum",
              *(o.policy for o in c.policies))
    per = [header] + [(
        i.name, i.service, i.node, str(i.capacity), _pct(c.optimum.utilisation[i.name]),
        *(_pct(o.utilisation[i.name]) for o in c.policies),
    ) for i in c.plane.instances]
    lines += ["", "utilisation per instance:", *_grid(per, left=3)]
    return "\n".join(lines) + "\n"


def _split_json(split: Mapping[Pair, Mapping[str, float]]) -> list[dict[str, Any]]:
    return [{"node": n, "service": s, "shares": dict(row)} for (n, s), row in split.items()]


def to_json(c: Comparison) -> dict[str, Any]:
    """The comparison as JSON-able data (``--json``)."""
    return {
        "topology": c.topology.name,
        "topology_file": str(c.topology.path),
        "demand": [{"node": n, "service": s, "rate": d} for (n, s), d in c.demand.items()],
        "instances": [{"name": i.name, "service": i.service, "node": i.node,
                       "capacity": i.capacity} for i in c.plane.instances],
        "left_out": c.left_out(),
        "optimum": {"max_utilisation": c.optimum.max_utilisation,
                    "status": c.optimum.status, "message": c.optimum.message,
                    "utilisation": c.optimum.utilisation,
                    "split": _split_json(c.optimum.split)},
        "policies": [{"name": o.policy, "max_utilisation": o.max_utilisation,
                      "ratio": c.ratio(o), "converged": o.converged,
                      "iterations": o.iterations, "utilisation": o.utilisation,
                      "split": _split_json(o.split)} for o in c.policies],
    }


# -- command line ---------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    """The ``optimum`` subcommand of ``python -m scenarios``."""
    p = sub.add_parser("optimum", help="each policy's steady-state utilisation next to "
                                       "the min-max-utilisation optimum (offline)")
    p.add_argument("topology", type=Path, help="topology file")
    p.add_argument("--demand", action="append", default=[], metavar="NODE:SERVICE=RATE",
                   help=f"units/s entering at NODE for SERVICE (name or id); repeatable; "
                        f"overrides the default of {DEFAULT_RATE:g} per service at every "
                        "node with a sending host")
    p.add_argument("--policy", action="append", default=[], metavar="NAME|FILE",
                   help="a shipped policy name or a policy file; repeatable "
                        f"(default: every shipped policy: {', '.join(shipped_policy_names())})")
    p.add_argument("--all-instances", action="store_true",
                   help="also count instances with start: false")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def cmd_optimum(args: argparse.Namespace) -> int:
    """Run the comparison; ConfigError (exit 2 in the caller) names the bad argument."""
    topo = load_topology(args.topology)
    if not topo.instances:
        raise ConfigError(args.topology, None, "instances",
                          "the topology has no VNF instances: nothing to compare")
    policies = [load_policy(resolve_policy(ref)) for ref in
                (args.policy or shipped_policy_names())]
    demand = default_demand(topo)
    demand.update(parse_demand(args.demand, topo))
    result = compare(topo, policies, demand, args.all_instances)
    if args.json:
        print(json.dumps(to_json(result), indent=2))
    else:
        print(render(result), end="")
    return 0


__all__ = [
    "DEFAULT_RATE", "Comparison", "Plane", "PolicyOutcome", "add_parser", "cmd_optimum",
    "compare", "default_demand", "ingress_tables", "make_plane", "optimum",
    "parse_demand", "policy_steady_state", "render", "router_lsas", "to_json",
]
