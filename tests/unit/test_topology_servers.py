"""Topology files with ``servers`` and ``placement``: parsing, every error, the placement
the Topology carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_topology_spec import error_of, parse
from topologies.cli import summary
from topologies.servers import ServerSpec
from topologies.spec import load_topology

ROOT = Path(__file__).resolve().parents[2]

# a chain A-B-C-D
BASE = """\
nodes: [{name: A}, {name: B}, {name: C}, {name: D}]
links:
  - {a: A, b: B, cost: 1}
  - {a: B, b: C, cost: 1}
  - {a: C, b: D, cost: 1}
"""
TWO = """\
servers:
  - {name: main, address: localhost}
  - {name: s2, address: 10.99.0.2}
"""


def test_without_servers_nothing_changes():
    topo = parse(BASE)
    assert topo.servers == ()
    assert topo.placement == {}
    assert topo.server_of("A") is None
    assert not topo.spread
    assert topo.cut_links() == []
    shipped = load_topology(ROOT / "topologies" / "paper_fig3.yaml")
    assert shipped.servers == () and shipped.placement == {}
    assert "server" not in summary(shipped)


def test_servers_without_placement_is_min_cut_seed_1():
    topo = parse(BASE + TWO)
    assert topo.servers == (ServerSpec("main", "localhost"), ServerSpec("s2", "10.99.0.2"))
    assert topo.servers[1].user == "root"
    assert topo.placement == {"A": "main", "B": "main", "C": "s2", "D": "s2"}
    assert topo.spread
    assert [(lk.a, lk.b) for lk in topo.cut_links()] == [("B", "C")]
    assert topo.server_of("D") == ServerSpec("s2", "10.99.0.2")
    explicit = parse(BASE + TWO + "placement: {rule: min-cut, seed: 1}\n")
    assert explicit.placement == topo.placement


def test_user_and_round_robin():
    topo = parse(BASE + """\
servers:
  - {name: main, address: localhost}
  - {name: s2, address: node2.lab, user: dsfc}
placement: {rule: round-robin}
""")
    assert topo.servers[1] == ServerSpec("s2", "node2.lab", "dsfc")
    assert topo.placement == {"A": "main", "B": "s2", "C": "main", "D": "s2"}
    assert len(topo.cut_links()) == 3


def test_explicit_placement_others_go_to_the_first_server():
    topo = parse(BASE + TWO + """\
placement:
  nodes: {B: s2, D: s2}
""")
    assert topo.placement == {"A": "main", "B": "s2", "C": "main", "D": "s2"}
    assert topo.server_of("A").local and not topo.server_of("B").local


def test_one_server_holds_everything():
    topo = parse(BASE + "servers: [{name: only, address: 10.0.0.9}]\n")
    assert topo.placement == dict.fromkeys("ABCD", "only")
    assert not topo.spread
    assert topo.cut_links() == []


def test_explicit_placement_on_one_server_is_not_spread():
    topo = parse(BASE + TWO + "placement: {nodes: {}}\n")
    assert set(topo.placement.values()) == {"main"}
    assert not topo.spread


def test_three_and_four_servers():
    nodes = "".join(f"  - name: N{i}\n" for i in range(12))
    links = "".join(f"  - {{a: N{i}, b: N{(i + 1) % 12}, cost: 5}}\n" for i in range(12))
    for k in (3, 4):
        servers = "".join(f"  - {{name: s{i}, address: 10.99.0.{i + 1}}}\n" for i in range(k))
        topo = parse(f"nodes:\n{nodes}links:\n{links}servers:\n{servers}")
        per = [list(topo.placement.values()).count(f"s{i}") for i in range(k)]
        assert per == [12 // k] * k
        assert len(topo.cut_links()) == k


def test_seed_is_used():
    nodes = "".join(f"  - name: N{i}\n" for i in range(12))
    links = "".join(f"  - {{a: N{i}, b: N{(i + 1) % 12}, cost: 5}}\n" for i in range(12))
    text = f"nodes:\n{nodes}links:\n{links}{TWO}"
    seen = {tuple(parse(text + f"placement: {{seed: {s}}}\n").placement.values())
            for s in range(6)}
    assert len(seen) > 1
    assert parse(text + "placement: {seed: 3}\n").placement == \
        parse(text + "placement: {seed: 3}\n").placement


def test_summary_shows_servers_and_cut_links():
    text = summary(parse(BASE + TWO))
    assert "  server main: nodes A, B" in text
    assert "  server s2 (root@10.99.0.2): nodes C, D" in text
    assert "  links between servers: B-C" in text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("servers:\n  - {name: 2bad, address: 10.0.0.1}\n",
         "t.yaml:7: servers[0].name: expected a name of 1-10 letters, digits or '_' "
         "starting with a letter, got '2bad'"),
        ("servers:\n  - {name: a, address: 10.0.0.1}\n  - {name: a, address: 10.0.0.2}\n",
         "t.yaml:8: servers[1].name: duplicate name a (first at servers[0])"),
        ("servers:\n  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.1}\n",
         "t.yaml:8: servers[1].address: duplicate address 10.0.0.1 (first at servers[0])"),
        ("servers:\n  - {name: a, address: localhost}\n  - {name: b, address: 127.0.0.1}\n",
         "t.yaml:8: servers[1].address: servers[0] is already this machine (localhost); "
         "at most one server may be localhost or 127.0.0.1"),
        ("servers:\n  - {name: a, address: root@10.0.0.1}\n",
         "t.yaml:7: servers[0].address: expected a host name or IPv4 address like "
         "10.99.0.2 (the user goes in 'user'), got 'root@10.0.0.1'"),
        ("servers:\n  - {name: a, address: 10.0.0.1, user: 'x y'}\n",
         "t.yaml:7: servers[0].user: expected a login name"),
        ("servers:\n  - {name: a}\n",
         "t.yaml:7: servers[0].address: missing required field"),
        ("servers:\n  - {name: a, address: 10.0.0.1, port: 22}\n",
         "t.yaml:7: servers[0].port: unknown key (allowed here: address, name, user)"),
        ("servers: []\n",
         "t.yaml:6: servers: expected at least 1 item(s), got 0"),
        ("servers: {name: a, address: 10.0.0.1}\n",
         "t.yaml:6: servers: expected a list, got a mapping"),
        ("placement: {rule: min-cut}\n",
         "t.yaml:6: placement: placement needs a 'servers' list (without one every node "
         "runs on this machine)"),
        (TWO + "placement:\n  nodes: {B: s3}\n",
         "t.yaml:10: placement.nodes.B: unknown server 's3' (known: main, s2)"),
        (TWO + "placement:\n  nodes:\n    B: s2\n    X: s2\n",
         "t.yaml:12: placement.nodes.X: unknown node 'X' (known: A, B, C, D)"),
        (TWO + "placement:\n  rule: min-cut\n  nodes: {B: s2}\n",
         "t.yaml:10: placement.rule: give either nodes (explicit placement) or a rule, "
         "not both (rule with nodes)"),
        (TWO + "placement:\n  seed: 4\n  nodes: {B: s2}\n",
         "t.yaml:10: placement.seed: give either nodes (explicit placement) or a rule, "
         "not both (seed with nodes)"),
        (TWO + "placement:\n  rule: fastest\n",
         "t.yaml:10: placement.rule: expected one of min-cut, round-robin, got 'fastest'"),
        (TWO + "placement:\n  rule: min-cut\n  seed: -1\n",
         "t.yaml:11: placement.seed: expected an integer in 0..4294967295, got -1"),
        (TWO + "placement:\n  rules: min-cut\n",
         "t.yaml:10: placement.rules: unknown key (allowed here: nodes, rule, seed)"),
        (TWO + "placement: min-cut\n",
         "t.yaml:9: placement: expected a mapping, got string 'min-cut'"),
        (TWO + "placement:\n  nodes: [B]\n",
         "t.yaml:10: placement.nodes: expected a mapping, got a list"),
    ],
)
def test_errors(extra, expected):
    assert error_of(BASE + extra).startswith(expected)


def test_tunnel_kind_between_servers():
    assert parse(BASE + TWO).tunnel == "vxlan"
    assert parse(BASE + TWO + "tunnel: ssh\n").tunnel == "ssh"
    msg = error_of(BASE + TWO + "tunnel: gre\n")
    assert "t.yaml" in msg and "tunnel" in msg and "vxlan" in msg and "ssh" in msg
    msg = error_of(BASE + "tunnel: ssh\n")
    assert "tunnel" in msg and "servers" in msg
