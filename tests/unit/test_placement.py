"""Placement rules (topologies.placement): balance, determinism, min-cut quality,
round-robin, several servers, cut links."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from topologies.placement import RULES, balanced_sizes, cut_links, place
from topologies.spec import LinkSpec, load_topology

ROOT = Path(__file__).resolve().parents[2]


def links_of(pairs: list[tuple[str, str]]) -> list[LinkSpec]:
    return [LinkSpec(a, b, 10, index=i) for i, (a, b) in enumerate(pairs)]


def two_cliques(size: int = 6) -> tuple[list[str], list[LinkSpec]]:
    """Two cliques joined by the single link A0-B5; nodes interleaved in file order so
    that neither round-robin nor a split by file order finds the clusters."""
    a = [f"A{i}" for i in range(size)]
    b = [f"B{i}" for i in range(size)]
    nodes = [x for pair in zip(a, b, strict=True) for x in pair]
    pairs = [p for group in (a, b) for p in itertools.combinations(group, 2)]
    return nodes, links_of([*pairs, ("A0", "B5")])


def ring(n: int) -> tuple[list[str], list[LinkSpec]]:
    nodes = [f"N{i}" for i in range(n)]
    return nodes, links_of([(nodes[i], nodes[(i + 1) % n]) for i in range(n)])


def counts(placement: dict[str, str], servers: list[str]) -> list[int]:
    c = Counter(placement.values())
    return [c[s] for s in servers]


def test_min_cut_finds_the_single_link_between_two_clusters():
    nodes, links = two_cliques()
    for seed in range(5):
        p = place(nodes, links, ["main", "s2"], "min-cut", seed)
        cut = cut_links(links, p)
        assert [(lk.a, lk.b) for lk in cut] == [("A0", "B5")]
        assert {p[f"A{i}"] for i in range(6)} != {p[f"B{i}"] for i in range(6)}
        assert counts(p, ["main", "s2"]) == [6, 6]


def test_round_robin_goes_by_file_order():
    nodes, links = two_cliques(3)
    p = place(nodes, links, ["x", "y", "z"], "round-robin")
    assert p == {n: "xyz"[i % 3] for i, n in enumerate(nodes)}
    assert list(p) == nodes


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_every_node_placed_and_balanced(rule, k):
    nodes, links = ring(11)
    servers = [f"s{i}" for i in range(k)]
    p = place(nodes, links, servers, rule, 1)
    assert list(p) == nodes
    assert set(p.values()) <= set(servers)
    assert counts(p, servers) == balanced_sizes(11, k)


def test_balanced_sizes_give_the_larger_shares_to_the_first_servers():
    assert balanced_sizes(11, 4) == [3, 3, 3, 2]
    assert balanced_sizes(2, 3) == [1, 1, 0]
    assert balanced_sizes(6, 3) == [2, 2, 2]


@pytest.mark.parametrize("k", [3, 4])
def test_min_cut_on_a_ring_cuts_one_link_per_server(k):
    nodes, links = ring(12)
    servers = [f"s{i}" for i in range(k)]
    p = place(nodes, links, servers, "min-cut", 1)
    assert counts(p, servers) == [12 // k] * k
    assert len(cut_links(links, p)) == k  # contiguous arcs: the least possible


def test_min_cut_with_three_and_four_clusters():
    # four cliques of 4 in a chain, one link between neighbouring cliques
    groups = [[f"{c}{i}" for i in range(4)] for c in "PQRS"]
    pairs = [p for g in groups for p in itertools.combinations(g, 2)]
    pairs += [("P0", "Q0"), ("Q1", "R1"), ("R2", "S2")]
    nodes = [n for row in zip(*groups, strict=True) for n in row]  # interleaved
    links = links_of(pairs)
    p4 = place(nodes, links, ["a", "b", "c", "d"], "min-cut", 1)
    assert len(cut_links(links, p4)) == 3
    assert all(len({p4[n] for n in g}) == 1 for g in groups)
    p2 = place(nodes, links, ["a", "b"], "min-cut", 1)
    assert len(cut_links(links, p2)) == 1


def test_deterministic_for_a_seed():
    topo = load_topology(ROOT / "topologies" / "tata_nld.yaml")
    nodes = [n.name for n in topo.nodes]
    servers = ["a", "b", "c"]
    first = place(nodes, topo.links, servers, "min-cut", 7)
    assert all(place(nodes, topo.links, servers, "min-cut", 7) == first for _ in range(3))
    assert counts(first, servers) == balanced_sizes(len(nodes), 3)
    # far fewer links cut than spreading the nodes in file order
    rr = place(nodes, topo.links, servers, "round-robin")
    assert len(cut_links(topo.links, first)) * 4 < len(cut_links(topo.links, rr))


def test_the_seed_picks_among_equally_good_placements():
    nodes, links = ring(12)
    found = set()
    for seed in range(6):
        p = place(nodes, links, ["a", "b"], "min-cut", seed)
        assert len(cut_links(links, p)) == 2
        found.add(tuple(sorted(n for n in nodes if p[n] == "a")))
    assert len(found) > 1


def test_more_servers_than_nodes_leaves_some_empty():
    p = place(["A", "B"], links_of([("A", "B")]), ["x", "y", "z"], "min-cut", 1)
    assert p == {"A": "x", "B": "y"}


def test_unknown_rule_and_no_servers_are_errors():
    with pytest.raises(ValueError, match=r"unknown placement rule 'best' \(known: min-cut, "
                                         r"round-robin\)"):
        place(["A"], [], ["x"], "best")
    with pytest.raises(ValueError, match="no servers"):
        place(["A"], [], [], "min-cut")


def test_cut_links_keeps_the_order_of_the_links():
    links = links_of([("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")])
    p = {"A": "x", "B": "x", "C": "y", "D": "y"}
    assert [lk.index for lk in cut_links(links, p)] == [1, 3]
    assert cut_links(links, dict.fromkeys("ABCD", "x")) == []
