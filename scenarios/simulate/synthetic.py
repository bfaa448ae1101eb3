"""Large synthetic networks for the simulation (seeded, beyond the emulation's 250 nodes).

Generators (``KIND:N[,key=value...]``, :func:`parse_source`):

* ``ring:N[,chords=C]`` -- a ring of N routers (cost 10) plus C random chords per router
  (cost 10-100): a small-world network, diameter ~ log N;
* ``geometric:N[,degree=D]`` -- a random geometric graph in the unit square with the
  radius that gives a mean degree of about D (default 6), link cost 1 + 100 x length,
  the components joined by their nearest routers: a "physical" network, diameter ~
  sqrt(N);
* ``waxman:N[,alpha=A,beta=B]`` -- networkx's Waxman graph (defaults 0.05 / 0.4 scaled
  to keep the mean degree near 6), cost 1 + 100 x length, components joined.

``seed=S`` (default 1) seeds each. :func:`extend` adds such a network to a scenario's
topology (``python -m scenarios simulate --nodes-from``): the scenario's nodes keep their
links, instances, hosts and chains, and each is attached to ``attach`` (default 2)
generated routers with links of cost ``attach_cost`` (default 10000, so paths between
the scenario's own nodes stay theirs). :func:`benchmark_scenario` builds the scale
benchmark's scenario (many instances, ingresses and events) on a generated network.
Topologies built here bypass the file limit of 250 nodes: only the simulation uses them.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from scenarios.simulate.addressing import host_addresses
from topologies.spec import (
    ChainSpec,
    ClassifierRule,
    HostSpec,
    InstanceSpec,
    LinkSpec,
    NodeSpec,
    OspfTimers,
    ServiceSpec,
    Topology,
)

KINDS = ("ring", "geometric", "waxman")


def parse_source(text: str) -> tuple[str, int, dict[str, float]]:
    """``"ring:10000,chords=2,seed=3"`` -> ("ring", 10000, {"chords": 2, "seed": 3})."""
    kind, sep, rest = text.partition(":")
    if kind not in KINDS or not sep:
        raise ValueError(f"expected KIND:N[,key=value...] with KIND one of "
                         f"{', '.join(KINDS)}, got {text!r}")
    parts = rest.split(",")
    try:
        n = int(parts[0])
        params = {k: float(v) for k, v in (p.split("=", 1) for p in parts[1:] if p)}
    except ValueError:
        raise ValueError(f"{text!r}: N must be an integer and parameters key=number") from None
    if n < 3:
        raise ValueError(f"{text!r}: at least 3 routers")
    return kind, n, params


def generate(kind: str, n: int, seed: int = 1, **params: float
             ) -> list[tuple[int, int, int]]:
    """Links (a, b, cost) over routers 0..n-1 of a connected network of ``kind``."""
    rng = random.Random(seed)
    edges: dict[tuple[int, int], int] = {}

    def add(a: int, b: int, cost: int) -> None:
        if a != b:
            edges.setdefault((min(a, b), max(a, b)), max(1, min(cost, 65535)))

    if kind == "ring":
        for i in range(n):
            add(i, (i + 1) % n, 10)
        for i in range(n):
            for _ in range(int(params.get("chords", 1))):
                add(i, rng.randrange(n), rng.randint(10, 100))
        return [(a, b, c) for (a, b), c in sorted(edges.items())]
    nprng = np.random.default_rng(seed)
    pos = nprng.random((n, 2))
    if kind == "geometric":
        degree = params.get("degree", 6.0)
        radius = math.sqrt(degree / (math.pi * n))
        g = nx.random_geometric_graph(n, radius, pos={i: tuple(p) for i, p in enumerate(pos)},
                                      seed=seed)
    elif kind == "waxman":
        alpha = params.get("alpha", 0.05)
        beta = params.get("beta", 0.4)
        # keep the mean degree near 6 whatever n: scale beta down as n grows
        beta = min(beta, 6.0 / (n * 2 * math.pi * alpha * alpha))
        g = nx.waxman_graph(n, beta=beta, alpha=alpha,
                            domain=(0, 0, 1, 1), seed=seed)
        pos = np.array([g.nodes[i]["pos"] for i in range(n)])
    else:
        raise ValueError(f"unknown kind {kind!r}")
    for a, b in g.edges():
        add(a, b, 1 + round(100 * float(np.hypot(*(pos[a] - pos[b])))))
    _connect(n, edges, pos)
    return [(a, b, c) for (a, b), c in sorted(edges.items())]


def _connect(n: int, edges: dict[tuple[int, int], int], pos: np.ndarray) -> None:
    """Join the components: each one to the main one by its closest pair (sampled)."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    parts = sorted(nx.connected_components(g), key=len, reverse=True)
    main = np.array(sorted(parts[0]))
    for part in parts[1:]:
        members = np.array(sorted(part))
        a = int(members[0])
        d = np.hypot(*(pos[main] - pos[a]).T)
        b = int(main[int(np.argmin(d))])
        edges[(min(a, b), max(a, b))] = 1 + round(100 * float(d.min()))
        main = np.concatenate([main, members])


def _nodes_links(names: list[str], links: list[tuple[int, int, int]], first_link: int = 0
                 ) -> tuple[list[NodeSpec], list[LinkSpec]]:
    nodes = [NodeSpec(name, i + 1) for i, name in enumerate(names)]
    return nodes, [LinkSpec(names[a], names[b], c, None, first_link + k)
                   for k, (a, b, c) in enumerate(links)]


def extend(topo: Topology, source: str, attach: int = 2, attach_cost: int = 10000
           ) -> Topology:
    """``topo`` plus the network ``source`` describes (see the module docstring)."""
    kind, n, params = parse_source(source)
    seed = int(params.pop("seed", 1))
    links = generate(kind, n, seed, **params)
    taken = {x.name for x in topo.nodes}
    names = [f"g{i + 1}" for i in range(n)]
    clash = taken & set(names)
    if clash:
        raise ValueError(f"the generated routers' names clash with the topology's: "
                         f"{', '.join(sorted(clash)[:5])}")
    rng = random.Random(seed + 1)
    all_names = [x.name for x in topo.nodes] + names
    base = len(topo.nodes)
    new_links = [(base + a, base + b, c) for a, b, c in links]
    for i in range(base):
        for g in rng.sample(range(n), min(attach, n)):
            new_links.append((i, base + g, attach_cost))
    nodes, extra = _nodes_links(all_names, new_links, len(topo.links))
    return replace(topo, nodes=tuple(nodes), links=topo.links + tuple(extra),
                   description=f"{topo.description} + {source}".strip())


def benchmark_topology(kind: str, n: int, seed: int = 1, services: int = 4,
                       instances_per_service: int = 25, ingresses: int = 10,
                       capacity: int = 400, **params: float) -> Topology:
    """A generated network of ``n`` routers with ``services`` services, chains of two
    of them, ``instances_per_service`` instances each on random routers, and
    ``ingresses`` source hosts (and as many sinks) on random routers."""
    rng = random.Random(seed)
    links = generate(kind, n, seed, **params)
    names = [f"n{i + 1}" for i in range(n)]
    nodes, link_specs = _nodes_links(names, links)
    svcs = tuple(ServiceSpec(f"S{j + 1}", j + 1, IPv4Address(f"10.254.{j + 1}.1"))
                 for j in range(services))
    insts = []
    per_node: dict[str, int] = {}
    for svc in svcs:
        for k in range(instances_per_service):
            node = names[rng.randrange(n)]
            per_node[node] = per_node.get(node, 0) + 1
            insts.append(InstanceSpec(f"{svc.name.lower()}_{k + 1}", svc.name, node,
                                      capacity, id=per_node[node]))
    chains = tuple(ChainSpec(j + 1, (svcs[j].name, svcs[(j + 1) % services].name),
                             f"c{j + 1}") for j in range(services))
    hosts = []
    for k in range(ingresses):
        hosts.append(HostSpec(f"src{k + 1}", names[rng.randrange(n)], "source"))
        hosts.append(HostSpec(f"dst{k + 1}", names[rng.randrange(n)], "sink"))
    topo = Topology(name=f"{kind}{n}", path=Path(f"<generated {kind}:{n}>"),
                    nodes=tuple(nodes), links=tuple(link_specs), services=svcs,
                    instances=tuple(insts), hosts=tuple(hosts), chains=chains,
                    description=f"generated {kind}:{n}", ospf=OspfTimers())
    addrs = host_addresses(topo)
    rules = tuple(ClassifierRule(h.node, 1 + k % services, 100,
                                 IPv4Network(f"{addrs[h.name]}/32"),
                                 IPv4Network("0.0.0.0/0"), "udp", None, None)
                  for k, h in enumerate(x for x in hosts if x.role == "source"))
    return replace(topo, classifier=rules)


def benchmark_scenario_data(topo: Topology, duration_s: float = 300.0,
                            flows_per_s: float = 1.0, flow_duration_s: float = 30.0,
                            packets_per_s: float = 10.0, policy: str = "paper",
                            seed: int = 1) -> dict[str, Any]:
    """A scenario (as the data of a file) on :func:`benchmark_topology`'s network: one
    traffic class per source host, and every kind of event the simulation models."""
    rng = random.Random(seed + 99)
    sources = [h for h in topo.hosts if h.role == "source"]
    sinks = [h for h in topo.hosts if h.role == "sink"]
    traffic = [{"name": f"t{k + 1}", "source": s.name, "destination": d.name,
                "chain": 1 + k % len(topo.chains), "arrival": "poisson",
                "flows_per_s": flows_per_s, "flow_duration_s": flow_duration_s,
                "packets_per_s": packets_per_s}
               for k, (s, d) in enumerate(zip(sources, sinks, strict=True))]
    inst = topo.instances[rng.randrange(len(topo.instances))].name
    # a link and a node away from the hosts, so the traffic classes survive
    host_nodes = {h.node for h in topo.hosts}
    link = next(lk for lk in topo.links if lk.a not in host_nodes and lk.b not in host_nodes)
    node = next(x.name for x in topo.nodes if x.name not in host_nodes
                and x.name not in (link.a, link.b))
    d = duration_s
    events = [
        {"at_s": 0.20 * d, "action": "fail_instance", "instance": inst},
        {"at_s": 0.30 * d, "action": "restore_instance", "instance": inst},
        {"at_s": 0.40 * d, "action": "fail_link", "link": f"{link.a}-{link.b}"},
        {"at_s": 0.50 * d, "action": "restore_link", "link": f"{link.a}-{link.b}"},
        {"at_s": 0.60 * d, "action": "fail_node", "node": node},
        {"at_s": 0.70 * d, "action": "restore_node", "node": node},
        {"at_s": 0.80 * d, "action": "set_policy_param", "name": "hysteresis.rel",
         "value": 0.05},
    ]
    return {"name": f"bench_{topo.name}", "topology": str(topo.path), "policy": policy,
            "time_scale": 1.0, "duration_s": duration_s, "seed": seed, "traffic": traffic,
            "events": events,
            "measure": {"sample_period_s": 1.0, "warmup_s": min(flow_duration_s, 0.1 * d),
                        "windows": [{"name": "steady", "start_s": min(flow_duration_s,
                                                                       0.1 * d),
                                     "end_s": 0.2 * d}]}}


__all__ = ["KINDS", "benchmark_scenario_data", "benchmark_topology", "extend", "generate",
           "parse_source"]
