"""Topology file validation: each kind of mistake gives its own, actionable message."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dmano.yamlconf import ConfigError, loads_yaml
from topologies.spec import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
nodes:
  - name: A
  - name: B
links:
  - {a: A, b: B, cost: 10}
services:
  - {name: FW, id: 1, anycast: 10.254.1.1}
instances:
  - {name: fw1, service: FW, node: B, capacity: 150}
hosts:
  - {name: h1, node: A}
chains:
  - {spi: 1, services: [FW]}
classifier:
  - {node: A, chain: 1, dst: 10.2.100.0/24, proto: udp, dport: 5000-6000}
"""


def parse(text: str):
    return parse_topology(loads_yaml(text, "t.yaml"), Path("t.yaml"))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_base_is_valid():
    topo = parse(BASE)
    assert [n.name for n in topo.nodes] == ["A", "B"]
    assert topo.links[0].cost == 10
    assert topo.services[0].anycast == IPv4Address("10.254.1.1")
    assert topo.instances[0].id == 1
    assert topo.classifier[0].dport == (5000, 6000)
    assert topo.classifier[0].proto == "udp"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{a: A, b: B, cost: 10}", "{a: A, b: X, cost: 10}",
         "t.yaml:5: links[0].b: unknown node 'X' (known: A, B)"),
        ("  - name: B\n", "  - name: A\n",
         "t.yaml:3: nodes[1]: duplicate name A (first at nodes[0])"),
        ("cost: 10}", "cost: -5}",
         "t.yaml:5: links[0].cost: expected an integer in 1..65535, got -5"),
        ("{a: A, b: B, cost: 10}", "{a: A, b: B}",
         "t.yaml:5: links[0].cost: missing required field"),
        ("{a: A, b: B, cost: 10}", "{a: A, b: B, cost: 10, colour: red}",
         "t.yaml:5: links[0].colour: unknown key (allowed here: a, b, bandwidth_mbit, cost)"),
        ("anycast: 10.254.1.1", "anycast: 10.254.1.300",
         "t.yaml:7: services[0].anycast: expected an IPv4 address like 10.254.1.1, "
         "got '10.254.1.300'"),
        ("dst: 10.2.100.0/24", "dst: 10.2.100.1/24",
         "t.yaml:15: classifier[0].dst: expected an IPv4 prefix like 10.1.100.0/24, "
         "got '10.2.100.1/24'"),
        ("services: [FW]", "services: [IDS]",
         "t.yaml:13: chains[0].services: item 0: unknown service 'IDS' (known: FW)"),
        ("{node: A, chain: 1,", "{node: A, chain: 7,",
         "t.yaml:15: classifier[0].chain: unknown chain spi 7 (known: 1)"),
        ("dport: 5000-6000", "dport: 6000-5000",
         "t.yaml:15: classifier[0].dport: expected a port 0..65535 or a range like "
         "1000-2000, got '6000-5000'"),
        ("  - name: B\n", "  - name: 9B\n",
         "t.yaml:3: nodes[1].name: expected a name of 1-10 letters, digits or '_' "
         "starting with a letter, got '9B'"),
        ("capacity: 150", "capacity: many",
         "t.yaml:9: instances[0].capacity: expected an integer in 1..10000000, "
         "got string 'many'"),
        ("{name: h1, node: A}", "{name: rA, node: A}",
         "t.yaml: hosts[0].name: 'rA' clashes with the router of node A; pick another name"),
    ],
)
def test_specific_messages(old: str, new: str, expected: str):
    assert old in BASE
    assert error_of(BASE.replace(old, new, 1)) == expected


def test_unknown_top_level_key():
    assert error_of(BASE + "swiches: []\n").startswith("t.yaml:16: swiches: unknown key")


def test_self_link_and_duplicate_link():
    assert "a link needs two different nodes" in error_of(
        BASE.replace("{a: A, b: B, cost: 10}", "{a: A, b: A, cost: 10}"))
    dup = BASE.replace("  - {a: A, b: B, cost: 10}\n",
                       "  - {a: A, b: B, cost: 10}\n  - {a: B, b: A, cost: 3}\n")
    assert "links[1]: duplicate link between the same two nodes A - B" in error_of(dup)


def test_disconnected_network():
    text = BASE.replace("  - name: B\n", "  - name: B\n  - name: C\n")
    assert "3 NFV nodes" not in error_of(text)
    assert "2 islands: A, B; C" in error_of(text)


def test_yaml_syntax_error_has_line():
    msg = error_of("nodes:\n  - name: A\n links: [\n")
    assert msg.startswith("t.yaml:3: invalid YAML")


def test_missing_file_names_it(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read file"):
        load_topology(tmp_path / "nope.yaml")


def test_not_a_mapping():
    assert error_of("- a\n- b\n") == "t.yaml:1: (top level): expected a mapping (key: value), " \
                                     "got a list"


@pytest.mark.parametrize("name", ["paper_fig3", "paper_eval", "fig1"])
def test_shipped_topologies_are_valid(name: str):
    topo = load_topology(ROOT / "topologies" / f"{name}.yaml")
    assert topo.name == name


def test_shipped_fig3_matches_the_paper():
    topo = load_topology(ROOT / "topologies" / "paper_fig3.yaml")
    links = {frozenset((lk.a, lk.b)): lk.cost for lk in topo.links}
    assert links == {frozenset("AB"): 10, frozenset("AC"): 10, frozenset("CD"): 5,
                     frozenset("BE"): 10, frozenset("DE"): 10}
    assert {(i.node, i.cost) for i in topo.instances} == {("B", 20), ("D", 10)}


def test_shipped_eval_matches_the_paper():
    topo = load_topology(ROOT / "topologies" / "paper_eval.yaml")
    links = {frozenset((lk.a, lk.b)): lk.cost for lk in topo.links}
    assert links == {frozenset("AB"): 160, frozenset("AC"): 160, frozenset("AD"): 30}
    assert {(i.node, i.capacity, i.start) for i in topo.instances} == {
        ("B", 150, True), ("C", 150, True), ("D", 150, False)}


def test_service_kind_and_rules():
    ok = parse(BASE.replace("anycast: 10.254.1.1}",
                            "anycast: 10.254.1.1, kind: firewall, rules: ['drop proto=udp']}"))
    assert ok.services[0].kind == "firewall" and ok.services[0].rules == ("drop proto=udp",)
    msg = error_of(BASE.replace("anycast: 10.254.1.1}", "anycast: 10.254.1.1, kind: nat}"))
    assert msg == "t.yaml:7: services[0].kind: expected one of passthrough, firewall, ids, " \
                  "got 'nat'"
    msg = error_of(BASE.replace("anycast: 10.254.1.1}",
                                "anycast: 10.254.1.1, kind: firewall, rules: ['drop prot=x']}"))
    assert msg.startswith("t.yaml:7: services[0].rules: item 0: ")
    msg = error_of(BASE.replace("anycast: 10.254.1.1}",
                                "anycast: 10.254.1.1, rules: ['drop proto=udp']}"))
    assert msg == "t.yaml:7: services[0].rules: rules only apply to kind firewall, not passthrough"
