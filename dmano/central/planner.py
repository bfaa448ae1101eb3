"""Every node's service tables, computed in one place from one LSDB and the polls.

The orchestrator builds what each D-MANO would have built for itself, with the same
code: a :class:`~dmano.model.LsdbView` whose routers and networks come from the one
router's LSDB it follows and whose instances are the inventory's instances that the
last poll saw up, with the VNF cost the policy gives their measurement (and the same
hysteresis the D-MANOs apply before re-announcing a cost). Then, per node,
:func:`dmano.service_plane.compute_tables` from that node's router id.

Objective ``policy``: those tables as they are (only the control loop differs from the
distributed mode). Objective ``min-max-utilisation``: the same candidates (reachability,
path costs, draining state) but the weights of the up candidates come from the LP of
:mod:`dmano.central.optimum` on the measured demand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from dmano.config import NodeConfig
from dmano.model import InstanceState, LsdbView, VnfAnnouncement
from dmano.monitor import InstanceStatus
from dmano.policy import Policy
from dmano.service_plane import ServiceTable, compute_tables

log = logging.getLogger(__name__)

U32_MAX = 2**32 - 1
InstanceKey = tuple[IPv4Address, int]  # (advertising router, instance id), as in LSAs
NodeTables = dict[str, dict[int, ServiceTable]]  # node -> service id -> candidates


@dataclass
class CostBook:
    """The VNF cost in use per instance (node, name), with the policy's hysteresis: a
    new cost replaces it only when the policy would re-announce it (as a D-MANO does)."""

    costs: dict[tuple[str, str], int] = field(default_factory=dict)

    def update(self, node: str, name: str, cost: int, policy: Policy) -> bool:
        key = (node, name)
        last = self.costs.get(key)
        if last is not None and not policy.should_announce(cost, last):
            return False
        self.costs[key] = cost
        return last != cost

    def forget(self, node: str, name: str) -> None:
        self.costs.pop((node, name), None)

    def reset(self) -> None:
        self.costs.clear()


def instance_view(base: LsdbView, nodes: Iterable[NodeConfig],
                  statuses: Mapping[str, Mapping[str, InstanceStatus]],
                  costs: CostBook) -> LsdbView:
    """``base``'s routers and networks plus one announcement per instance that is up in
    ``statuses`` (node -> instance name -> status) and has a cost in ``costs``."""
    instances: dict[InstanceKey, VnfAnnouncement] = {}
    for n in nodes:
        anycast = {s.id: s.anycast for s in n.services}
        for inst in n.instances:
            st = statuses.get(n.node, {}).get(inst.name)
            cost = costs.costs.get((n.node, inst.name))
            if st is None or not st.up or cost is None:
                continue
            instances[(n.router_id, inst.id)] = VnfAnnouncement(
                instance_id=inst.id, service_id=inst.service,
                anycast=anycast.get(inst.service, IPv4Address("0.0.0.0")), cost=cost,
                endpoint=n.nsh_endpoint, capacity=inst.capacity,
                load=min(max(round(st.measurement.load), 0), U32_MAX),
                state=InstanceState.UP, name=inst.name)
    return LsdbView(routers=dict(base.routers), networks=dict(base.networks),
                    instances=instances)


def policy_tables(view: LsdbView, nodes: Iterable[NodeConfig], policy: Policy) -> NodeTables:
    """Every node's tables as its own D-MANO would compute them from ``view``."""
    return {n.node: compute_tables(view, n.router_id, policy) for n in nodes}


def min_max_tables(view: LsdbView, nodes: Iterable[NodeConfig], policy: Policy,
                   demand: Mapping[tuple[str, int], float]
                   ) -> tuple[NodeTables, dict[int, Any]]:
    """The policy's candidates with the LP optimum's weights (module docstring).

    ``demand``: (node, service id) -> units/s that node sends to the service. The LP is
    solved per service (each instance serves one service, so the services are
    independent, and a network-wide U would leave a lightly loaded service's instances
    unbalanced among themselves). Returns the tables and the
    :class:`dmano.central.optimum.Solution` per service id."""
    from dmano.central import optimum

    nodes = list(nodes)
    tables = policy_tables(view, nodes, policy)
    pairs: dict[int, dict[tuple[str, int], dict[InstanceKey, float]]] = {}
    for node, per_service in tables.items():
        for sid, rows in per_service.items():
            pairs.setdefault(sid, {})[(node, sid)] = {
                (c.adv_router, c.instance_id): float(c.path_cost)
                for c in rows if c.state == InstanceState.UP}
    capacity = {key: float(max(ann.capacity, 1)) for key, ann in view.instances.items()}
    solutions: dict[int, Any] = {}
    ints: dict[tuple[str, int], dict[InstanceKey, int]] = {}
    split: dict[tuple[str, int], dict[InstanceKey, float]] = {}
    for sid, cands in sorted(pairs.items()):
        used = {k for c in cands.values() for k in c}
        sol = optimum.solve({p: max(0.0, float(demand.get(p, 0.0))) for p in cands}, cands,
                            {k: capacity[k] for k in used})
        solutions[sid] = sol
        ints.update(optimum.weights(sol, policy.max_group_size))
        split.update(sol.split)
    out: NodeTables = {}
    for node, per_service in tables.items():
        out[node] = {}
        for sid, rows in per_service.items():
            w = ints.get((node, sid), {})
            frac = split.get((node, sid), {})
            out[node][sid] = [
                replace(c, weight=int(w.get((c.adv_router, c.instance_id), 0)),
                        share=float(frac.get((c.adv_router, c.instance_id), 0.0)))
                if c.state == InstanceState.UP else c
                for c in rows]
    return out, solutions
