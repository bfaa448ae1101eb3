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
* what an instance of service ``p`` processes on service path (SPI) ``c`` goes on to the
  service after ``p`` in chain ``c``, from the node that hosts it: the VNF counts its
  packets per SPI (``packets_by_spi`` in its counters file); for a VNF that does not,
  its whole rate is split evenly between the places where ``p`` occurs in a chain (the
  chain's end included).

Exact except at an ingress whose classifier names several chains (its classified rate
is split evenly between them).
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


def next_service(chain: tuple[int, ...], service: int) -> int | None:
    """The service after ``service`` in ``chain`` (END at its end; None if absent)."""
    if service not in chain:
        return None
    k = chain.index(service)
    return chain[k + 1] if k + 1 < len(chain) else END


def chain_demand(nodes: Iterable[NodeConfig], classified_pps: Mapping[str, float],
                 instance_pps: Mapping[tuple[str, str], float],
                 instance_spi_pps: Mapping[tuple[str, str], Mapping[int, float]] | None = None,
                 ) -> dict[tuple[str, int], float]:
    """(node, service id) -> units/s that node sends to the service (module docstring).

    ``classified_pps``: node -> packets/s its classifier put on chains;
    ``instance_pps``: (node, instance name) -> packets/s the instance processed;
    ``instance_spi_pps``: (node, instance name) -> SPI -> packets/s, from the VNF's
    ``packets_by_spi``: when given for an instance, its traffic on each service path goes
    to the service after it on that path (exact); otherwise the even split."""
    nodes = list(nodes)
    demand: dict[tuple[str, int], float] = defaultdict(float)
    if not nodes:
        return {}
    # every node's chains (the same on every node that forwards them; a node with no
    # instances and no classifier may list none, and may come first)
    chains = {c.spi: c.services for n in nodes for c in n.chains}
    after = successors(chains.values())
    by_spi = instance_spi_pps or {}
    for n in nodes:
        spis = sorted({r.chain for r in n.classifier if r.chain in chains})
        rate = max(0.0, classified_pps.get(n.node, 0.0))
        for spi in spis:
            demand[(n.node, chains[spi][0])] += rate / len(spis)
        for inst in n.instances:
            paths = by_spi.get((n.node, inst.name))
            if paths:
                for spi, pps in paths.items():
                    nxt = next_service(chains.get(spi, ()), inst.service)
                    if nxt is not None and nxt != END:
                        demand[(n.node, nxt)] += max(0.0, pps)
                continue
            nxt_all = after.get(inst.service, [])
            out = max(0.0, instance_pps.get((n.node, inst.name), 0.0))
            for sid in nxt_all:
                if sid != END:
                    demand[(n.node, sid)] += out / len(nxt_all)
    return dict(demand)
