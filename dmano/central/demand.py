"""Each node's demand on each service, from what the orchestrator measures.

The min-max-utilisation LP needs, per (node, service), the rate that node sends to the
service. The connector cannot say it directly: its per-member counters mix services
(a remote member is a whole node, shared by every service hosted there) and, for local
members, traffic other nodes steered here. What is exact is

* the packets each node's classifier put on a chain (``Ingress.classified``, read over
  P4Runtime with the poll), and
* each instance's processing rate (the VNF counters of the poll),

and the chains (from the node configurations). So:

* a node's classified rate goes to the first service of the chains its classifier rules
  name (split evenly between them when they name several chains);
* what an instance of service ``p`` processes goes on to the service after ``p`` in the
  chains, from the node that hosts it (split evenly between the places where ``p``
  occurs in a chain, the chain's end included).

Exact for chains that do not share a service at different positions with different
successors, an even-split estimate otherwise (documented in the README).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from dmano.config import NodeConfig

END = -1  # "the chain ends here" in a successor list


def successors(chains: Iterable[tuple[int, ...]]) -> dict[int, list[int]]:
    """Service id -> the service after it in each chain where it occurs (END at the end)."""
    out: dict[int, list[int]] = defaultdict(list)
    for services in chains:
        for k, sid in enumerate(services):
            out[sid].append(services[k + 1] if k + 1 < len(services) else END)
    return dict(out)


def chain_demand(nodes: Iterable[NodeConfig], classified_pps: Mapping[str, float],
                 instance_pps: Mapping[tuple[str, str], float]) -> dict[tuple[str, int], float]:
    """(node, service id) -> units/s that node sends to the service (module docstring).

    ``classified_pps``: node -> packets/s its classifier put on chains;
    ``instance_pps``: (node, instance name) -> packets/s the instance processed."""
    nodes = list(nodes)
    demand: dict[tuple[str, int], float] = defaultdict(float)
    if not nodes:
        return {}
    # every node's chains (the same on every node that forwards them; a node with no
    # instances and no classifier may list none, and may come first)
    chains = {c.spi: c.services for n in nodes for c in n.chains}
    after = successors(chains.values())
    for n in nodes:
        spis = sorted({r.chain for r in n.classifier if r.chain in chains})
        rate = max(0.0, classified_pps.get(n.node, 0.0))
        for spi in spis:
            demand[(n.node, chains[spi][0])] += rate / len(spis)
        for inst in n.instances:
            nxt = after.get(inst.service, [])
            out = max(0.0, instance_pps.get((n.node, inst.name), 0.0))
            for sid in nxt:
                if sid != END:
                    demand[(n.node, sid)] += out / len(nxt)
    return dict(demand)
