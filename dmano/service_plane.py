"""The service plane topology and the per-service WCMP tables (paper, Sections III and V).

From the mirrored LSDB (:class:`~dmano.model.LsdbView`) each NFV node builds, on its own,
a directed graph of

* NFV/router nodes ``("router", router_id)``, one per router LSA;
* transit network nodes ``("network", dr_address)``, one per network LSA;
* VNF nodes ``("vnf", adv_router, instance_id)``, one per announced instance;

with the edges of RFC 2328 16.1: a point-to-point link is an edge to the neighbour's
router id with the link's metric, a transit link is an edge router -> network with the
link's metric and the network has a cost-0 edge to each attached router; a link is only
used if the other end links back (the two-way check of 16.1 (2)(b)); stub links and
virtual links are not edges. Each instance is a VNF node hanging off its advertising
router with its VNF cost (so VNF nodes are leaves and never carry transit paths).

:func:`compute_tables` runs Dijkstra from our own router and, per service id, lists the
candidate instances (see below). It is the composition of two parts that change for
different reasons, each usable on its own (the D-MANO caches the first per topology
version; the control-plane simulation, ``scenarios.simulate``, shares it between nodes):

* the *network part*, :func:`network_edges` (the edges of the graph above, from router
  and network LSAs only) and :func:`network_costs` (shortest-path cost from ourselves to
  every reachable router): it changes only when router or network LSAs change;
* the *candidates part*, :func:`candidate_tables`: instances (opaque LSAs) + network
  costs -> :class:`Candidate` rows -> policy weights -> integer weights: it changes with
  every VNF cost.

The candidates are every announced instance whose advertising router is reachable,
with network cost (0 for our own instances), VNF cost and path cost = network + VNF
cost. UP candidates get WCMP weights from the policy's weight function over their path
costs, made into integers by :mod:`dmano.wcmp` (``policy.max_group_size``); DRAINING
candidates are listed with weight 0 (they keep their flows through the connector's
flow cache but take no new ones). A service whose instances are all unreachable maps
to an empty table, so the connector writer knows to empty its group.

Rows are sorted by (path cost, advertising router, instance id), which is also the
tie-break order of the integer apportionment, so equal inputs always give equal tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import networkx as nx

from dmano import wcmp
from dmano.model import InstanceState, LsdbView, RouterLsa, VnfAnnouncement
from dmano.policy import Policy

log = logging.getLogger(__name__)

LINK_P2P = 1
LINK_TRANSIT = 2
LINK_STUB = 3
LINK_VIRTUAL = 4

Node = tuple[Any, ...]


def router_node(router_id: IPv4Address) -> Node:
    return ("router", router_id)


def network_node(dr_address: IPv4Address) -> Node:
    return ("network", dr_address)


def vnf_node(adv_router: IPv4Address, instance_id: int) -> Node:
    return ("vnf", adv_router, instance_id)


@dataclass(frozen=True)
class Candidate:
    """One instance of a service as seen from this node."""

    adv_router: IPv4Address
    instance_id: int
    name: str
    endpoint: IPv4Address
    network_cost: int
    vnf_cost: int
    path_cost: int
    weight: int  # integer WCMP weight for new flows (0: takes no new flows)
    local: bool  # hosted on this node
    state: InstanceState = InstanceState.UP
    share: float = 0.0  # ideal fraction of new flows (real weight / sum), before rounding
    anycast: IPv4Address | None = None

    def sort_key(self) -> tuple[int, int, int]:
        return (self.path_cost, int(self.adv_router), self.instance_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "adv_router": str(self.adv_router),
            "instance_id": self.instance_id,
            "name": self.name,
            "endpoint": str(self.endpoint),
            "anycast": str(self.anycast) if self.anycast is not None else None,
            "state": self.state.name.lower(),
            "local": self.local,
            "network_cost": self.network_cost,
            "vnf_cost": self.vnf_cost,
            "path_cost": self.path_cost,
            "weight": self.weight,
            "share": self.share,
        }


ServiceTable = list[Candidate]


# -- graph ------------------------------------------------------------------------------

def _links_back_p2p(lsa: RouterLsa | None, to: IPv4Address) -> bool:
    return lsa is not None and any(
        link.kind == LINK_P2P and link.link_id == to for link in lsa.links)


def _links_to_network(lsa: RouterLsa | None, dr: IPv4Address) -> bool:
    return lsa is not None and any(
        link.kind == LINK_TRANSIT and link.link_id == dr for link in lsa.links)


Edges = dict[tuple[Node, Node], int]


def _add_edge(edges: Edges, u: Node, v: Node, cost: int) -> None:
    """Add u -> v, keeping the cheapest of parallel links."""
    held = edges.get((u, v))
    if held is not None and held <= cost:
        return
    edges[(u, v)] = cost


def network_edges(view: LsdbView) -> Edges:
    """The router and transit-network edges of the service plane topology of ``view``
    (see the module docstring): (u, v) -> cost, parallel links reduced to the cheapest.

    Depends on ``view.routers`` and ``view.networks`` only (not on the instances)."""
    edges: Edges = {}
    for rid, lsa in view.routers.items():
        for link in lsa.links:
            if link.kind == LINK_P2P:
                if _links_back_p2p(view.routers.get(link.link_id), rid):
                    _add_edge(edges, router_node(rid), router_node(link.link_id),
                              link.metric)
                else:
                    log.debug("%s -> %s: no link back, not used", rid, link.link_id)
            elif link.kind == LINK_TRANSIT:
                net = view.networks.get(link.link_id)
                if net is not None and rid in net.attached:
                    _add_edge(edges, router_node(rid), network_node(link.link_id),
                              link.metric)
                else:
                    log.debug("%s -> network %s: no network LSA listing it, not used",
                              rid, link.link_id)
            # stub links (3) are prefixes, not edges; virtual links (4) are ignored
    for dr, net in view.networks.items():
        for rid in net.attached:
            if _links_to_network(view.routers.get(rid), dr):
                _add_edge(edges, network_node(dr), router_node(rid), 0)
    return edges


def build_graph(view: LsdbView, self_id: IPv4Address) -> nx.DiGraph:
    """The service plane topology of ``view`` (see the module docstring)."""
    graph = nx.DiGraph()
    graph.add_node(router_node(self_id))
    for rid in view.routers:
        graph.add_node(router_node(rid))
    for (u, v), cost in network_edges(view).items():
        graph.add_edge(u, v, weight=cost)
    for (adv, iid), ann in view.instances.items():
        graph.add_edge(router_node(adv), vnf_node(adv, iid), weight=ann.cost)
    return graph


def network_costs(view: LsdbView, self_id: IPv4Address) -> dict[IPv4Address, int]:
    """Shortest-path cost from ``self_id`` to every reachable router (self: 0).

    The network part of :func:`compute_tables`: it depends on the router and network
    LSAs only (VNF nodes are leaves of the graph and never on a path between routers)."""
    graph = nx.DiGraph()
    graph.add_node(router_node(self_id))
    for (u, v), cost in network_edges(view).items():
        graph.add_edge(u, v, weight=cost)
    dist = nx.single_source_dijkstra_path_length(graph, router_node(self_id))
    return {node[1]: int(d) for node, d in dist.items() if node[0] == "router"}


# -- tables -----------------------------------------------------------------------------

def compute_tables(view: LsdbView, self_id: IPv4Address,
                   policy: Policy) -> dict[int, ServiceTable]:
    """Per service id, the candidate instances with their WCMP weights.

    The composition of the network part (:func:`network_costs`) and the candidates part
    (:func:`candidate_tables`)."""
    return candidate_tables(view.instances, network_costs(view, self_id), self_id, policy)


def candidate_tables(instances: Mapping[tuple[IPv4Address, int], VnfAnnouncement],
                     costs: Mapping[IPv4Address, int], self_id: IPv4Address,
                     policy: Policy) -> dict[int, ServiceTable]:
    """The candidates part of :func:`compute_tables`: per service id of ``instances``
    ((advertising router, instance id) -> announcement), the candidates with their WCMP
    weights, given the network ``costs`` from ``self_id`` to the reachable routers (as
    :func:`network_costs` gives them; an instance whose router is not in ``costs`` is
    unreachable, our own are at cost 0)."""
    by_service: dict[int, list[Candidate]] = {}
    for (adv, iid), ann in instances.items():
        rows = by_service.setdefault(ann.service_id, [])
        local = adv == self_id
        net_cost = 0 if local else costs.get(adv)
        if net_cost is None:
            log.debug("service %d: instance %s/%d unreachable", ann.service_id, adv, iid)
            continue
        rows.append(Candidate(
            adv_router=adv, instance_id=iid, name=ann.name, endpoint=ann.endpoint,
            network_cost=int(net_cost), vnf_cost=ann.cost,
            path_cost=int(net_cost) + ann.cost, weight=0, local=local,
            state=ann.state, anycast=ann.anycast,
        ))
    return {sid: _weigh(sorted(rows, key=Candidate.sort_key), policy)
            for sid, rows in sorted(by_service.items())}


def _weigh(rows: list[Candidate], policy: Policy) -> ServiceTable:
    live = [i for i, c in enumerate(rows) if c.state == InstanceState.UP]
    real = policy.real_weights([rows[i].path_cost for i in live])
    ints = wcmp.integer_weights(real, policy.max_group_size)
    fractions = wcmp.shares(real)
    out = list(rows)
    for i, w, s in zip(live, ints, fractions, strict=True):
        c = rows[i]  # dataclasses.replace(c, weight=w, share=s), without its overhead
        out[i] = Candidate(c.adv_router, c.instance_id, c.name, c.endpoint, c.network_cost,
                           c.vnf_cost, c.path_cost, w, c.local, c.state, s, c.anycast)
    return out


# -- output -----------------------------------------------------------------------------

def tables_to_json(tables: dict[int, ServiceTable]) -> dict[str, Any]:
    """JSON-able form: ``{"services": [{"service_id", "anycast", "candidates": [...]}]}``."""
    services = []
    for sid, rows in sorted(tables.items()):
        anycast = next((str(c.anycast) for c in rows if c.anycast is not None), None)
        services.append({"service_id": sid, "anycast": anycast,
                         "candidates": [c.to_dict() for c in rows]})
    return {"services": services}


def dumps_tables(tables: dict[int, ServiceTable]) -> str:
    return json.dumps(tables_to_json(tables), indent=2, sort_keys=True)


_HEADER = ("", "instance", "router", "id", "endpoint", "state", "net", "vnf", "path",
           "weight", "share")


def render_tables(tables: dict[int, ServiceTable],
                  service_names: dict[int, str] | None = None) -> str:
    """Text tables for ``show``: one block per service, ``*`` marks local instances."""
    names = service_names or {}
    blocks: list[str] = []
    for sid, rows in sorted(tables.items()):
        anycast = next((str(c.anycast) for c in rows if c.anycast is not None), "")
        title = f"service {sid}"
        if sid in names:
            title += f" ({names[sid]})"
        if anycast:
            title += f" anycast {anycast}"
        live = sum(1 for c in rows if c.weight > 0)
        title += f": {len(rows)} candidate(s), {live} taking new flows"
        if not rows:
            blocks.append(title + "\n  (no reachable instance)")
            continue
        cells = [_HEADER] + [(
            "*" if c.local else "", c.name or "-", str(c.adv_router), str(c.instance_id),
            str(c.endpoint), c.state.name.lower(), str(c.network_cost), str(c.vnf_cost),
            str(c.path_cost), str(c.weight), f"{100 * c.share:.1f}%",
        ) for c in rows]
        blocks.append(title + "\n" + _grid(cells))
    return "\n\n".join(blocks) + ("\n" if blocks else "(no services)\n")


def _grid(cells: Iterable[tuple[str, ...]]) -> str:
    cells = list(cells)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    numeric = {3, 6, 7, 8, 9, 10}
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if i in numeric else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append(("  " + " ".join(parts)).rstrip())
    return "\n".join(lines)
