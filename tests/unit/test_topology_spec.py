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


@pytest.mark.parametrize("name", ["paper_fig3", "paper_eval", "fig1", "faults8", "central10"])
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
                  "dpi, scapy, got 'nat'"
    msg = error_of(BASE.replace("anycast: 10.254.1.1}",
                                "anycast: 10.254.1.1, kind: firewall, rules: ['drop prot=x']}"))
    assert msg.startswith("t.yaml:7: services[0].rules: item 0: ")
    msg = error_of(BASE.replace("anycast: 10.254.1.1}",
                                "anycast: 10.254.1.1, rules: ['drop proto=udp']}"))
    assert msg == ("t.yaml:7: services[0].rules: rules only apply to kind firewall or dpi, "
                   "not passthrough")


# -- ids reclassification and dpi ------------------------------------------------------

RECLASSIFY = """\
nodes:
  - name: A
  - name: B
links:
  - {a: A, b: B, cost: 10}
services:
  - {name: IDS, id: 1, anycast: 10.254.1.1, kind: ids, threshold_pps: 500, reclassify_to: 20}
  - {name: FW, id: 2, anycast: 10.254.2.1, kind: firewall, rules: ['drop proto=udp dport=53']}
  - name: DPI
    id: 3
    anycast: 10.254.3.1
    kind: dpi
    rules:
      - drop hex=deadbeef
      - count payload=/etc/passwd
instances:
  - {name: ids1, service: IDS, node: A, capacity: 1000}
  - {name: fw1, service: FW, node: B, capacity: 1000}
  - {name: dpi1, service: DPI, node: B, capacity: 500}
hosts:
  - {name: h1, node: A}
  - {name: h2, node: B}
chains:
  - {spi: 10, name: ids-fw, services: [IDS, FW]}
  - {spi: 20, name: quarantine, services: [DPI, FW]}
classifier:
  - {node: A, chain: 10, dst: 10.2.100.0/24, proto: udp}
"""


def test_reclassify_and_dpi_services():
    topo = parse(RECLASSIFY)
    ids, fw, dpi = topo.services
    assert (ids.kind, ids.threshold_pps, ids.reclassify_to) == ("ids", 500.0, 20)
    assert (fw.threshold_pps, fw.reclassify_to) == (None, None)
    assert dpi.kind == "dpi" and dpi.rules == ("drop hex=deadbeef", "count payload=/etc/passwd")


def test_every_node_gets_the_target_chain_in_its_sff_table(tmp_path):
    """The D-MANO writes sff_next for every chain of the topology on every node, so a
    packet reclassified to (20, 255) finds the quarantine chain's first service."""
    from dmano.config import parse_node_config
    from dmano.connector_state import sff_entries
    from topologies.nodeconf import node_config

    topo = parse(RECLASSIFY)
    for node in ("A", "B"):
        data = node_config(topo, node, tmp_path, tmp_path / "policy.yaml", {})
        sff = sff_entries(parse_node_config(data, tmp_path / "dmano.yaml"))
        assert sff[(10, 255)] == ("to_service", 1) and sff[(10, 254)] == ("to_service", 2)
        assert sff[(20, 255)] == ("to_service", 3) and sff[(20, 254)] == ("to_service", 2)
        assert sff[(20, 253)] == ("end_of_chain", 0)


def test_start_vnf_passes_the_service_settings(tmp_path, monkeypatch):
    """The builder's VNF command line (no namespace: start_process is replaced) is one
    that python -m vnf accepts."""
    from types import SimpleNamespace

    from topologies.network import Network
    from vnf.config import parse_args

    net = Network(parse(RECLASSIFY))
    net.registry = SimpleNamespace(folder=tmp_path)  # type: ignore[assignment]
    started = {}
    monkeypatch.setattr(net, "start_process",
                        lambda name, node, args, log, *_: started.setdefault(name, args))
    for inst in ("ids1", "dpi1", "fw1"):
        net.start_vnf(inst)
    ids_args = started["vnf-ids1"]
    assert ids_args[1:3] == ["-m", "vnf"]
    assert ids_args[-4:] == ["--threshold-pps", "500", "--reclassify-to", "20"]
    cfg = parse_args(ids_args[3:])
    assert (cfg.service, cfg.ids_threshold, cfg.reclassify_to) == ("ids", 500.0, 20)
    cfg = parse_args(started["vnf-dpi1"][3:])
    assert [str(r) for r in cfg.dpi_rules] == ["drop hex=deadbeef", "count payload=/etc/passwd"]
    cfg = parse_args(started["vnf-fw1"][3:])
    assert cfg.reclassify_to is None and [str(r) for r in cfg.rules] == ["drop proto=udp dport=53"]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("reclassify_to: 20}", "reclassify_to: 99}",
     "t.yaml:7: services[0].reclassify_to: unknown chain spi 99 (known: 10, 20)"),
    ("threshold_pps: 500", "threshold_pps: 0",
     "t.yaml:7: services[0].threshold_pps: expected a number > 0, got 0"),
    ("threshold_pps: 500", "threshold_pps: fast",
     "t.yaml:7: services[0].threshold_pps: expected a number, got string 'fast'"),
    ("reclassify_to: 20}", "reclassify_to: 0}",
     "t.yaml:7: services[0].reclassify_to: expected an integer in 1..16777215, got 0"),
    ("kind: firewall, rules: ['drop proto=udp dport=53']}", "kind: firewall, reclassify_to: 20}",
     "t.yaml:8: services[1].reclassify_to: only kind ids has reclassify_to, not firewall"),
    ("kind: firewall, rules: ['drop proto=udp dport=53']}", "threshold_pps: 5}",
     "t.yaml:8: services[1].threshold_pps: only kind ids has threshold_pps, not passthrough"),
    ("      - drop hex=deadbeef\n", "      - drop hex=xyz\n",
     "t.yaml:13: services[2].rules: item 0: rule 'drop hex=xyz': hex: expected an even "
     "number of hex digits like deadbeef, got 'xyz'"),
    ("      - count payload=/etc/passwd\n", "      - count dport=80\n",
     "t.yaml:13: services[2].rules: item 1: rule 'count dport=80': a dpi rule needs exactly "
     "one pattern, payload=TEXT or hex=HEX, got none"),
    ("      - drop hex=deadbeef\n", "      - {action: drop}\n",
     "t.yaml:13: services[2].rules: item 0: expected a rule string like "
     "'count payload=/etc/passwd', got {'action': 'drop'}"),
    ("rules: ['drop proto=udp dport=53']", "rules: ['drop payload=x']",
     "t.yaml:8: services[1].rules: item 0: rule 'drop payload=x': unknown field(s) payload "
     "(allowed: src, dst, proto, dport)"),
    ("services: [IDS, FW]}", "services: [FW]}",
     "t.yaml:7: services[0].reclassify_to: IDS is on no chain other than chain 20 "
     "(quarantine), so it would never reclassify (a packet already on the target chain is "
     "left alone)"),
])
def test_reclassify_errors(old, new, expected):
    assert old in RECLASSIFY
    assert error_of(RECLASSIFY.replace(old, new, 1)) == expected


def test_reclassification_loops_are_errors():
    # quarantine's DPI is replaced by a second ids that sends flows back to chain 10
    text = RECLASSIFY.replace("kind: dpi\n    rules:\n      - drop hex=deadbeef\n"
                              "      - count payload=/etc/passwd\n",
                              "kind: ids\n    reclassify_to: 10\n")
    assert error_of(text) == (
        "t.yaml:7: services[0].reclassify_to: reclassification loop: chain 10 (ids-fw) "
        "-IDS-> chain 20 (quarantine) -DPI-> chain 10 (ids-fw); a packet would go round "
        "until its NSH TTL expires")
    # an ids on its own target chain is no loop (it leaves those packets alone)
    ok = RECLASSIFY.replace("services: [DPI, FW]}", "services: [DPI, IDS, FW]}")
    assert parse(ok).chains[1].services == ("DPI", "IDS", "FW")
    # a chain of moves that ends is fine: 10 -> 20 -> 30
    ok = (RECLASSIFY.replace("kind: dpi\n    rules:\n      - drop hex=deadbeef\n"
                             "      - count payload=/etc/passwd\n",
                             "kind: ids\n    reclassify_to: 30\n")
          .replace("classifier:", "  - {spi: 30, services: [FW]}\nclassifier:"))
    assert [s.reclassify_to for s in parse(ok).services] == [20, None, 30]
