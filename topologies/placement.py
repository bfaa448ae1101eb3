"""Which server holds which NFV node of a spread network (topology ``placement:``).

Pure functions over node names, links and server names (no I/O):

* ``min-cut``: a balanced partition (the servers' node counts differ by at most 1, the
  larger shares going to the first servers) that cuts as few router links as possible.
  Each cut link becomes a tunnel between two servers, so the number of links counts, not
  their OSPF costs. Recursive bisection: the servers are halved, the nodes are split in
  two parts of the halves' sizes with Kernighan-Lin (networkx), and each half recurses.
  Kernighan-Lin keeps the sizes of its initial partition and improves it locally, so each
  bisection starts from :data:`RESTARTS` random splits drawn from ``seed`` and from a
  breadth-first split, and keeps the one cutting the fewest links (the earliest on a
  tie): the result depends only on the input and the seed, and among equally good
  placements the seed picks one.
* ``round-robin``: node *i* (file order) goes to server *i mod k*.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:  # imported where used: reading a topology file stays quick
    import networkx as nx

RULES = ("min-cut", "round-robin")
DEFAULT_RULE = "min-cut"
DEFAULT_SEED = 1
RESTARTS = 8  # random initial partitions per bisection, besides the breadth-first one
MAX_ITER = 100  # Kernighan-Lin passes per start (it stops earlier once nothing improves)


class Link(Protocol):
    """A router link (:class:`topologies.spec.LinkSpec` is one)."""

    @property
    def a(self) -> str: ...

    @property
    def b(self) -> str: ...


L = TypeVar("L", bound=Link)


def place(nodes: Sequence[str], links: Iterable[Link], servers: Sequence[str],
          rule: str = DEFAULT_RULE, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Node name -> server name for every node, by ``rule`` (one of :data:`RULES`)."""
    if not servers:
        raise ValueError("no servers to place nodes on")
    if rule == "round-robin":
        return {n: servers[i % len(servers)] for i, n in enumerate(nodes)}
    if rule != "min-cut":
        raise ValueError(f"unknown placement rule {rule!r} (known: {', '.join(RULES)})")
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((lk.a, lk.b) for lk in links)
    order = {n: i for i, n in enumerate(nodes)}
    rng = random.Random(seed)
    out: dict[str, str] = {}
    _assign(graph, list(nodes), list(servers), balanced_sizes(len(nodes), len(servers)),
            order, rng, out)
    return {n: out[n] for n in nodes}


def balanced_sizes(n: int, k: int) -> list[int]:
    """How many of ``n`` nodes each of ``k`` servers gets: the first ``n % k`` one more."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def cut_links(links: Iterable[L], placement: Mapping[str, str]) -> list[L]:
    """The links whose two ends are on different servers (in the given order)."""
    return [lk for lk in links if placement[lk.a] != placement[lk.b]]


def _assign(graph: nx.Graph, nodes: list[str], servers: list[str], sizes: list[int],
            order: dict[str, int], rng: random.Random, out: dict[str, str]) -> None:
    """Put ``nodes`` (file order) on ``servers``, ``sizes[i]`` of them on ``servers[i]``."""
    if len(servers) == 1:
        out.update(dict.fromkeys(nodes, servers[0]))
        return
    half = (len(servers) + 1) // 2
    first_size = sum(sizes[:half])
    first, second = _bisect(graph.subgraph(nodes), nodes, first_size, order, rng)
    _assign(graph, first, servers[:half], sizes[:half], order, rng, out)
    _assign(graph, second, servers[half:], sizes[half:], order, rng, out)


def _bisect(graph: nx.Graph, nodes: list[str], first_size: int, order: dict[str, int],
            rng: random.Random) -> tuple[list[str], list[str]]:
    """``nodes`` split in two parts, the first of ``first_size`` nodes, cutting few edges
    of ``graph``; both parts in file order."""
    if first_size in (0, len(nodes)):
        return nodes[:first_size], nodes[first_size:]
    import networkx as nx

    starts = []
    for _ in range(RESTARTS):
        shuffled = list(nodes)
        rng.shuffle(shuffled)
        starts.append(shuffled)
    starts.append(_breadth_first(graph, nodes))
    best: tuple[int, list[str], list[str]] | None = None
    for start in starts:
        init = (set(start[:first_size]), set(start[first_size:]))
        parts = nx.community.kernighan_lin_bisection(graph, init, max_iter=MAX_ITER)
        first, second = _sized(parts, first_size, order)
        cut = nx.cut_size(graph, first, second)
        if best is None or cut < best[0]:
            best = (cut, first, second)
    assert best is not None
    return best[1], best[2]


def _sized(parts: tuple[set[str], set[str]], first_size: int,
           order: dict[str, int]) -> tuple[list[str], list[str]]:
    """The two parts as (the one of ``first_size`` nodes, the other), in file order; with
    equal sizes the part holding the earliest node comes first."""
    a, b = (sorted(p, key=order.__getitem__) for p in parts)
    if len(a) != first_size or (len(b) == first_size and order[b[0]] < order[a[0]]):
        a, b = b, a
    return a, b


def _breadth_first(graph: nx.Graph, nodes: list[str]) -> list[str]:
    """``nodes`` in breadth-first order from the earliest one (file order), component by
    component, neighbours in file order: a first split that keeps neighbours together."""
    rank = {n: i for i, n in enumerate(nodes)}
    seen: set[str] = set()
    out: list[str] = []
    for root in nodes:
        if root in seen:
            continue
        seen.add(root)
        queue = [root]
        while queue:
            node = queue.pop(0)
            out.append(node)
            for nbr in sorted(graph[node], key=rank.__getitem__):
                if nbr not in seen:
                    seen.add(nbr)
                    queue.append(nbr)
    return out
