"""``python -m topologies import``: real networks (topohub, GraphML, GML) as topology files.

Names, cost rules (numbers checked by hand), placement rules against networkx's own
rankings, GraphML/GML round trips, every refused input (exit 2, nothing written), the
scenario written from SNDlib demands, and the shipped imported topologies (each equal to
a fresh run of the command in its header, each valid).
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from pathlib import Path

import networkx as nx
import pytest

from dmano.yamlconf import loads_yaml
from topologies import importer as imp
from topologies.cli import main
from topologies.frr import router_iface
from topologies.naming import clean_name, comment_text, sanitize_names, unique_name
from topologies.spec import INSTANCE_PATTERN, NAME_PATTERN, load_topology

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {  # file -> (nodes, links, instances)
    "abilene.yaml": (11, 14, 4),
    "janos_us_ca.yaml": (39, 61, 8),
    "tata_nld.yaml": (143, 181, 30),
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["import", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def source(edges: list[tuple[str, str, dict]], nodes: dict[str, dict] | None = None,
           demands: dict | None = None) -> imp.Source:
    """A hand-made source: node ids are the original names."""
    g = nx.MultiGraph()
    for n, attrs in (nodes or {}).items():
        g.add_node(n, orig_name=n, **attrs)
    for a, b, attrs in edges:
        for n in (a, b):
            if n not in g:
                g.add_node(n, orig_name=n)
        g.add_edge(a, b, **attrs)
    return imp.Source(g, "test-graph", "a test graph", demands or {})


def topo_of(text: str):
    from topologies.spec import parse_topology

    return parse_topology(loads_yaml(text, "t.yaml"), Path("t.yaml"))


# -- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("original", "expected"), [
    ("Zürich", "Zurich"),
    ("Los Angeles", "LosAngeles"),
    ("Washington DC", "Washington"),  # 12 characters, cut to 10
    ("Kot kapura", "KotKapura"),
    ("Frankfurt/Main", "FrankfurtM"),
    ("São Paulo", "SaoPaulo"),
    ("1", "N1"),  # a letter first
    ("9 Elms", "N9Elms"),
    ("", "N"),
    ("___", "N"),
    ("東京", "N"),  # nothing ASCII left
    ("a" * 40, "a" * 10),
    ("ADH_10", "ADH10"),  # '_' separates words like any other character
])
def test_clean_name(original: str, expected: str) -> None:
    assert clean_name(original) == expected
    assert re.fullmatch(NAME_PATTERN, expected)


def test_collisions_keep_the_first_and_suffix_the_others() -> None:
    names = sanitize_names(["Indianapolis", "Indianapolis2", "Mil", "Mil", "Mil", "Mil_2",
                            "A B", "AB", "Frankfurt am Main", "Frankfurt an der Oder"])
    assert names == ["Indianapol", "Indianap_2", "Mil", "Mil_2", "Mil_3", "Mil2",
                     "AB", "AB_2", "FrankfurtA", "Frankfur_2"]
    assert len(set(names)) == len(names)


def test_a_suffix_never_takes_a_name_another_node_cleans_to() -> None:
    # "X_2" cleans to X2 (so suffixed names, with their '_', never meet cleaned ones);
    # the third "X" skips X_2, handed out already; a reserved name is skipped too
    assert sanitize_names(["X", "X", "X_2", "X"]) == ["X", "X_2", "X2", "X_3"]
    assert sanitize_names(["X", "X"], reserved=["X_2"]) == ["X", "X_3"]
    assert unique_name("abcdefghij", {"abcdefghij", "abcdefgh_2"}) == "abcdefgh_3"


def test_every_name_fits_the_format_and_the_interface_names() -> None:
    odd = ["New York", "São Tomé & Príncipe", "0", "-", "a/b\\c", "x" * 99, "Ünïcödé",
           "on", "No", "null", "True", "tab\there", "line\nbreak", "日本 Tokyo"] * 3
    names = sanitize_names(odd)
    assert len(set(names)) == len(names)
    for n in names:
        assert re.fullmatch(NAME_PATTERN, n), n
        assert len(router_iface(n)) <= 15  # Linux IFNAMSIZ - 1
        assert len(f"h-{n}") <= 15


@pytest.mark.parametrize("value", ["On", "No", "null", "True", "yes", "off", "a: b",
                                   "#x", "New York", "plain", "x'y", ""])
def test_scalars_read_back_as_the_same_string(value: str) -> None:
    assert loads_yaml(f"k: {imp.scalar(value)}\n", "t.yaml")["k"] == value


def test_nodes_named_like_yaml_booleans_load_as_names() -> None:
    src = source([("On", "No", {"dist": 100}), ("No", "null", {"dist": 50})])
    result = imp.import_topology(src, imp.ImportOptions(name="t"))
    assert [n.name for n in topo_of(result.topology_text).nodes] == ["On", "No", "null"]


def test_comments_are_one_line() -> None:
    assert comment_text("a\nb\tc\x00d  e") == "a b c d e"


# -- costs --------------------------------------------------------------------------------
def test_length_costs_by_hand() -> None:
    # 10 km per unit, rounded half up: 149.9 -> 14.99 -> 15; 145 -> 14.5 -> 15 (Python's
    # round() would give 14); 155 -> 16; 4 km -> 0.4 -> at least 1; 1e6 km -> capped 65535
    src = source([("A", "B", {"dist": 149.9}), ("B", "C", {"dist": 145}),
                  ("C", "D", {"dist": 155}), ("D", "E", {"dist": 4}),
                  ("E", "F", {"dist": 1e6})])
    costs = imp.link_costs(src, imp.ImportOptions())
    assert [c for c, _ in costs.values()] == [15, 15, 16, 1, 65535]
    unit100 = imp.link_costs(src, imp.ImportOptions(length_unit_km=100))
    assert [c for c, _ in unit100.values()] == [1, 1, 2, 1, 10000]


def test_great_circle_when_there_is_no_length() -> None:
    # one degree of longitude on the equator: 2 * pi * 6371 / 360 = 111.19 km -> cost 11;
    # one degree of latitude anywhere is the same; (0,0)-(90,0): a quarter circle
    nodes = {"A": {"coords": (0.0, 0.0)}, "B": {"coords": (1.0, 0.0)},
             "C": {"coords": (1.0, 1.0)}, "D": {"coords": (90.0, 0.0)}}
    src = source([("A", "B", {}), ("B", "C", {}), ("A", "D", {})], nodes)
    costs = {(u, v): c for (u, v, _), (c, _) in imp.link_costs(src, imp.ImportOptions()).items()}
    assert costs == {("A", "B"): 11, ("B", "C"): 11, ("A", "D"): 1001}
    assert imp.great_circle_km((0, 0), (1, 0)) == pytest.approx(111.195, abs=1e-3)
    assert imp.great_circle_km((0, 0), (90, 0)) == pytest.approx(math.pi * 6371 / 2)
    assert imp.great_circle_km((0, 60), (1, 60)) == pytest.approx(55.6, abs=0.1)  # cos 60


def test_capacity_costs_by_hand() -> None:
    # reference 100000 Mbit/s: 10 Gbit/s -> 10; 40 Gbit/s -> 2.5 -> 3; 1 Mbit/s -> 100000
    # -> 65535; 1 Tbit/s -> 0.1 -> 1; LinkSpeedRaw is in bit/s
    src = source([("A", "B", {"capacity": 10000}), ("B", "C", {"capacity": 40000}),
                  ("C", "D", {"capacity": 1}), ("D", "E", {"capacity": 1e6})])
    assert [c for c, _ in imp.link_costs(src, imp.ImportOptions(cost="capacity")).values()] \
        == [10, 3, 65535, 1]
    raw = source([("A", "B", {"LinkSpeedRaw": 1e10}), ("B", "C", {"LinkSpeedRaw": 1e8})])
    assert [c for c, _ in imp.link_costs(raw, imp.ImportOptions(cost="capacity")).values()] \
        == [10, 1000]
    opts = imp.ImportOptions(cost="capacity", cost_attribute="LinkSpeedRaw")
    assert [c for c, _ in imp.link_costs(raw, opts).values()] == [10, 1000]  # still bit/s
    named = source([("A", "B", {"speed": 1000})])
    opts = imp.ImportOptions(cost="capacity", cost_attribute="speed", reference_mbit=1e4)
    assert [c for c, _ in imp.link_costs(named, opts).values()] == [10]


def test_unit_costs() -> None:
    src = source([("A", "B", {"dist": 5000}), ("B", "C", {})])
    assert [c for c, _ in imp.link_costs(src, imp.ImportOptions(cost="unit")).values()] \
        == [1, 1]


def test_parallel_edges_keep_the_cheapest_and_self_loops_go(caplog) -> None:
    src = source([("A", "B", {"dist": 500}), ("A", "B", {"dist": 120}),
                  ("B", "A", {"dist": 300}), ("B", "B", {"dist": 1}),
                  ("B", "C", {"dist": 100})])
    with caplog.at_level(logging.INFO, logger="topologies.importer"):
        result = imp.import_topology(src, imp.ImportOptions(name="t"))
    assert [(lk.a, lk.b, lk.cost) for lk in result.links] == [("A", "B", 12), ("B", "C", 10)]
    assert "dropped 1 self-loop(s) (at B)" in caplog.text
    assert "2 parallel edge(s) dropped, the cheapest link of each node pair kept" \
        in caplog.text


# -- placement ----------------------------------------------------------------------------
def _graph() -> nx.Graph:
    g = nx.Graph()
    edges = [("A", "B", 1), ("B", "C", 1), ("C", "D", 5), ("D", "E", 1), ("B", "F", 2),
             ("F", "G", 1), ("G", "D", 1), ("C", "G", 3), ("E", "H", 1)]
    g.add_nodes_from("ABCDEFGH")
    for a, b, c in edges:
        g.add_edge(a, b, cost=c)
    return g


def test_degree_ranking_is_networkx_degree_ties_in_file_order() -> None:
    g = _graph()
    ranking = imp.rank_nodes(g, "degree")
    deg = dict(g.degree())
    assert [deg[n] for n in ranking] == sorted(deg.values(), reverse=True)
    assert ranking == ["B", "C", "D", "G", "E", "F", "A", "H"]  # by hand


def test_betweenness_ranking_is_networkx_weighted_betweenness() -> None:
    g = _graph()
    bc = nx.betweenness_centrality(g, weight="cost")
    ranking = imp.rank_nodes(g, "betweenness")
    assert [bc[n] for n in ranking] == sorted(bc.values(), reverse=True)
    # by hand, by cost: C-D (5) and C-G (3) are dear, so no cheapest path crosses C
    # (B-C-G 4 > B-F-G 3) while every path from {A, B} to {G, D, E, H} crosses F: 8 pairs
    raw = nx.betweenness_centrality(g, weight="cost", normalized=False)
    assert (raw["C"], raw["F"]) == (0, 8)
    assert ranking == ["G", "D", "F", "B", "E", "A", "C", "H"]  # zeros in file order
    unweighted = nx.betweenness_centrality(g)
    assert ranking != sorted(g.nodes, key=lambda n: -unweighted[n])  # weights matter


def test_random_ranking_is_seeded() -> None:
    g = _graph()
    first = imp.rank_nodes(g, "random", seed=7)
    assert imp.rank_nodes(g, "random", seed=7) == first
    assert sorted(first) == sorted(g.nodes)
    assert any(imp.rank_nodes(g, "random", seed=s) != first for s in range(8, 12))


def test_services_take_consecutive_runs_of_the_ranking() -> None:
    ranking = ["B", "C", "D"]
    assert imp.place_instances(ranking, [("FW", 2), ("IDS", 2)]) == [
        ("FW", "B"), ("FW", "C"), ("IDS", "D"), ("IDS", "B")]
    # more instances than nodes: only then does a node get a second one of a service
    placed = imp.place_instances(ranking, [("FW", 4)])
    assert [n for _, n in placed] == ["B", "C", "D", "B"]


def test_placement_in_the_file_follows_the_rule() -> None:
    g = _graph()
    src = source([(a, b, {"dist": 10 * d["cost"]}) for a, b, d in g.edges(data=True)],
                 {n: {} for n in g})
    text = imp.import_topology(src, imp.ImportOptions(
        name="t", placement="degree",
        services=(imp.ServiceRequest.parse("FW:3"), imp.ServiceRequest.parse("NAT:1"))
    )).topology_text
    topo = topo_of(text)
    assert [(i.name, i.service, i.node) for i in topo.instances] == [
        ("fw1", "FW", "B"), ("fw2", "FW", "C"), ("fw3", "FW", "D"), ("nat1", "NAT", "G")]
    assert [s.kind for s in topo.services] == ["firewall", "passthrough"]
    assert topo.chains[0].services == ("FW", "NAT")


def test_default_count_is_one_per_ten_nodes_at_least_two() -> None:
    assert [imp.default_count(n) for n in (2, 11, 20, 21, 143)] == [2, 2, 2, 3, 15]


@pytest.mark.parametrize(("text", "expected"), [
    ("FW", imp.ServiceRequest("FW", None, "firewall")),
    ("ids:3", imp.ServiceRequest("ids", 3, "ids")),
    ("CACHE:2:passthrough", imp.ServiceRequest("CACHE", 2, "passthrough")),
    ("X::dpi", imp.ServiceRequest("X", None, "dpi")),
])
def test_service_option(text: str, expected: imp.ServiceRequest) -> None:
    assert imp.ServiceRequest.parse(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("F-W", "the name must be"), ("FW:0", "COUNT must be"), ("FW:x", "COUNT must be"),
    ("FW:1:scapy", "KIND must be one of"), ("A:1:b:c", "NAME[:COUNT[:KIND]]"),
])
def test_bad_service_option(text: str, message: str) -> None:
    with pytest.raises(imp.TopologyImportError, match=re.escape(message)):
        imp.ServiceRequest.parse(text)


def test_instance_names_never_clash_with_routers_or_connectors() -> None:
    # service CACHE -> cache1 would be the connector of node "ache1"
    src = source([("ache1", "B", {"dist": 10}), ("B", "C", {"dist": 10})])
    text = imp.import_topology(src, imp.ImportOptions(
        name="t", placement="degree", services=(imp.ServiceRequest("CACHE", 1),)
    )).topology_text
    inst = topo_of(text).instances[0]
    assert inst.name == "cache1_2"
    assert re.fullmatch(INSTANCE_PATTERN, inst.name)


# -- endpoints ------------------------------------------------------------------------------
def test_default_endpoints_are_the_two_nodes_farthest_apart() -> None:
    g = _graph()
    ingress, egress, span = imp.choose_endpoints(g, [], [])
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight="cost"))
    assert span == max(dist[a][b] for a in g for b in g)
    assert (ingress, egress) == (["A"], ["H"])  # A-B-F-G-D-E-H costs 7
    assert span == 7


def test_one_side_given_the_other_is_farthest_from_it() -> None:
    g = _graph()
    assert imp.choose_endpoints(g, ["H"], [])[:2] == (["H"], ["A"])
    assert imp.choose_endpoints(g, [], ["D"])[:2] == (["A"], ["D"])


def test_endpoints_by_original_or_sanitised_name(tmp_path, capsys) -> None:
    gml = tmp_path / "n.gml"
    gml.write_text(_gml([("New York", 0, 0), ("Los Angeles", 1, 0), ("Boston", 2, 0)],
                        [(0, 1), (1, 2)]))
    out = tmp_path / "t.yaml"
    rc, _, err = run([str(gml), "-o", str(out), "--ingress", "New York", "--egress",
                      "LosAngeles", "Boston"], capsys)
    assert rc == 0, err
    topo = load_topology(out)
    assert [(h.name, h.node, h.role) for h in topo.hosts] == [
        ("h1", "NewYork", "source"), ("h2", "LosAngeles", "sink"), ("h3", "Boston", "sink")]
    assert [(r.node, str(r.dst)) for r in topo.classifier] == [
        ("NewYork", "10.2.100.0/24"), ("NewYork", "10.3.100.0/24")]


# -- GraphML and GML --------------------------------------------------------------------------
def _gml(nodes: list[tuple[str, float, float]], edges: list[tuple[int, int]],
         edge_attrs: str = "") -> str:
    """Topology Zoo style GML: labels may repeat, coordinates Longitude/Latitude."""
    out = ["graph [", "  multigraph 1"]
    for i, (label, lon, lat) in enumerate(nodes):
        out.append(f'  node [ id {i} label "{label}" Longitude {lon} Latitude {lat} ]')
    for a, b in edges:
        out.append(f"  edge [ source {a} target {b} {edge_attrs}]")
    out.append("]")
    return "\n".join(out) + "\n"


def test_graphml_round_trip(tmp_path, capsys) -> None:
    g = nx.MultiGraph()
    names = ["Alpha City", "Beta", "Gamma/Delta", "Beta"]  # Beta twice
    for i, n in enumerate(names):
        g.add_node(f"n{i}", label=n)
    g.add_edge("n0", "n1", km=120.0)
    g.add_edge("n1", "n2", km=80.0)
    g.add_edge("n1", "n2", km=60.0)  # parallel: the cheaper one stays
    g.add_edge("n2", "n3", km=300.0)
    g.add_edge("n3", "n3", km=1.0)  # self-loop
    path = tmp_path / "net.graphml"
    nx.write_graphml(g, path)
    out = tmp_path / "net.yaml"
    rc, stdout, err = run([str(path), "-o", str(out), "--cost-attribute", "km"], capsys)
    assert rc == 0, err
    assert "4 NFV nodes, 3 links" in stdout
    topo = load_topology(out)
    assert [n.name for n in topo.nodes] == ["AlphaCity", "Beta", "GammaDelta", "Beta_2"]
    assert [(lk.a, lk.b, lk.cost) for lk in topo.links] == [
        ("AlphaCity", "Beta", 12), ("Beta", "GammaDelta", 6), ("GammaDelta", "Beta_2", 30)]
    text = out.read_text()
    assert "  - name: Beta_2      # Beta\n" in text
    assert "  - name: GammaDelta  # Gamma/Delta\n" in text


def test_gml_round_trip_with_coordinates(tmp_path, capsys) -> None:
    path = tmp_path / "zoo.gml"
    path.write_text(_gml([("Milan", 0, 0), ("Milan", 1, 0), ("Rome", 1, 1)],
                         [(0, 1), (1, 2), (1, 2)]))
    out = tmp_path / "zoo.yaml"
    rc, _, err = run([str(path), "-o", str(out)], capsys)
    assert rc == 0, err
    topo = load_topology(out)
    assert [n.name for n in topo.nodes] == ["Milan", "Milan_2", "Rome"]
    assert [lk.cost for lk in topo.links] == [11, 11]  # 111.2 km great-circle each
    assert "# 111.2 km great-circle" in out.read_text()


def test_graphml_capacity_in_bits_as_topology_zoo_writes_it(tmp_path, capsys) -> None:
    path = tmp_path / "zoo.gml"
    path.write_text(_gml([("A", 0, 0), ("B", 1, 0), ("C", 2, 0)], [(0, 1), (1, 2)],
                         "LinkSpeedRaw 10000000000.0 "))
    out = tmp_path / "zoo.yaml"
    rc, _, err = run([str(path), "-o", str(out), "--cost", "capacity"], capsys)
    assert rc == 0, err
    assert [lk.cost for lk in load_topology(out).links] == [10, 10]


# -- refused input: exit 2, nothing written ---------------------------------------------------
def _refused(argv: list[str], tmp_path: Path, capsys) -> str:
    out = tmp_path / "out.yaml"
    rc, stdout, err = run([*argv, "-o", str(out)], capsys)
    assert rc == 2, (stdout, err)
    assert not out.exists()
    assert list(tmp_path.glob(".out.yaml*")) == []
    return err


def test_unknown_topohub_key_lists_close_matches(tmp_path, capsys) -> None:
    err = _refused(["topozoo/abilene"], tmp_path, capsys)
    assert "unknown topohub key 'topozoo/abilene'; did you mean topozoo/Abilene" in err
    err = _refused(["sndlib/germany"], tmp_path, capsys)
    assert "sndlib/germany50" in err
    err = _refused(["Abilen"], tmp_path, capsys)
    assert "sndlib/abilene" in err and "topozoo/Abilene" in err


def test_disconnected_graph_names_the_component_sizes(tmp_path, capsys) -> None:
    path = tmp_path / "split.gml"
    path.write_text(_gml([("A", 0, 0), ("B", 1, 0), ("C", 2, 0), ("D", 3, 0), ("E", 4, 0),
                          ("F", 5, 0)], [(0, 1), (1, 2), (3, 4)]))
    err = _refused([str(path)], tmp_path, capsys)
    assert "not connected: 3 components of 3, 2 and 1 nodes; --largest-component keeps " \
           "the largest (3 nodes)" in err
    out = tmp_path / "largest.yaml"
    rc, _, err = run([str(path), "-o", str(out), "--largest-component"], capsys)
    assert rc == 0, err
    assert [n.name for n in load_topology(out).nodes] == ["A", "B", "C"]


def test_empty_and_one_node_graphs(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.graphml"
    nx.write_graphml(nx.Graph(), empty)
    assert "the graph is empty" in _refused([str(empty)], tmp_path, capsys)
    one = tmp_path / "one.gml"
    one.write_text(_gml([("A", 0, 0)], [(0, 0)]))  # a self-loop only
    assert "one node and no links" in _refused([str(one)], tmp_path, capsys)


def test_missing_cost_attribute_names_file_attribute_and_the_ones_there(tmp_path,
                                                                        capsys) -> None:
    g = nx.Graph()
    g.add_edge("a", "b", LinkLabel="10G", weight=3)
    g.add_edge("b", "c", LinkLabel="1G", weight=3)
    path = tmp_path / "net.graphml"
    nx.write_graphml(g, path)
    err = _refused([str(path), "--cost-attribute", "km"], tmp_path, capsys)
    assert f"{path}: edge attribute 'km' is missing on 2 of 2 links (first: a - b); " \
           "edge attributes in this graph: LinkLabel, weight" in err
    err = _refused([str(path), "--cost", "capacity"], tmp_path, capsys)
    assert f"{path}: --cost capacity needs a link capacity" in err
    assert "edge attributes here: LinkLabel, weight" in err
    err = _refused([str(path)], tmp_path, capsys)  # length: no attribute, no coordinates
    assert "--cost length needs link lengths" in err and "3 of 3 nodes have no " \
           "coordinates" in err
    err = _refused([str(path), "--cost-attribute", "LinkLabel"], tmp_path, capsys)
    assert "edge attribute 'LinkLabel' of link a - b is '10G'; expected a length in km" \
        in err


def test_other_refusals(tmp_path, capsys) -> None:
    assert "no such file" in _refused([str(tmp_path / "none.graphml")], tmp_path, capsys)
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml><oops")
    assert "not a readable graphml graph" in _refused([str(bad)], tmp_path, capsys)
    assert "has no demand matrix" in _refused(
        ["topozoo/Abilene", "--scenario-out", str(tmp_path / "s.yaml")], tmp_path, capsys)
    assert not (tmp_path / "s.yaml").exists()
    assert "--demands applies to --scenario-out only" in _refused(
        ["sndlib/polska", "--demands", "3"], tmp_path, capsys)
    assert "no node 'Denverr' in this graph; did you mean Denver?" in _refused(
        ["topozoo/Abilene", "--ingress", "Denverr"], tmp_path, capsys)
    assert "the ingress and egress are the same node" in _refused(
        ["topozoo/Abilene", "--ingress", "Denver", "--egress", "Denver"], tmp_path, capsys)
    assert "--cost-attribute applies to --cost length or --cost capacity" in _refused(
        ["topozoo/Abilene", "--cost", "unit", "--cost-attribute", "dist"], tmp_path, capsys)
    assert "--service FW is given twice" in _refused(
        ["topozoo/Abilene", "--service", "FW", "--service", "FW:3"], tmp_path, capsys)
    assert "at most 48 per node" in _refused(
        ["topozoo/Abilene", "--service", "FW:600"], tmp_path, capsys)


def test_too_many_nodes_for_the_address_plan(tmp_path, capsys) -> None:
    g = nx.path_graph(251)
    path = tmp_path / "big.graphml"
    nx.write_graphml(g, path)
    err = _refused([str(path), "--cost", "unit"], tmp_path, capsys)
    assert "251 nodes, but the address plan supports at most 250 NFV nodes" in err


def test_argument_errors_exit_2(tmp_path, capsys) -> None:
    for bad in (["--length-unit", "0"], ["--capacity", "0"], ["--placement", "x"],
                ["--cost", "delay"]):
        with pytest.raises(SystemExit) as info:
            main(["import", "topozoo/Abilene", "-o", str(tmp_path / "o.yaml"), *bad])
        assert info.value.code == 2
    assert not (tmp_path / "o.yaml").exists()


# -- memory ---------------------------------------------------------------------------------
def test_memory_estimate_and_warning(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  16000000 kB\nMemAvailable:   1953125 kB\n")
    assert imp.available_memory_mb(meminfo) == 2000  # 1953125 KiB = 2.0e9 bytes
    assert imp.available_memory_mb(tmp_path / "none") is None
    assert imp.memory_warning(21, 2000) is None  # 1995 MB fit
    warning = imp.memory_warning(143, 2000)
    assert warning is not None
    assert "143 NFV nodes needs about 13.6 GB of memory (95 MB each) but 2.0 GB is " \
           "available" in warning


def test_import_warns_when_memory_is_short(tmp_path, capsys, caplog, monkeypatch) -> None:
    monkeypatch.setattr(imp, "available_memory_mb", lambda: 500)
    with caplog.at_level(logging.WARNING):
        rc, _, err = run(["topozoo/Abilene", "-o", str(tmp_path / "a.yaml")], capsys)
    assert rc == 0, err
    assert "bringing up 11 NFV nodes needs about 1.0 GB" in caplog.text
    assert (tmp_path / "a.yaml").exists()


# -- demands -> scenario ------------------------------------------------------------------
def test_demand_scenario_loads_and_matches_the_largest_demands(tmp_path, capsys) -> None:
    from scenarios.spec.parse import load_scenario

    (tmp_path / "topologies").mkdir()
    (tmp_path / "scenarios").mkdir()
    topo_path = tmp_path / "topologies" / "polska.yaml"
    scen_path = tmp_path / "scenarios" / "polska_demands.yaml"
    rc, stdout, err = run(["sndlib/polska", "-o", str(topo_path), "--scenario-out",
                           str(scen_path), "--demands", "4", "--total-pps", "400"], capsys)
    assert rc == 0, err
    assert "4 traffic classes" in stdout
    scenario = load_scenario(scen_path)
    assert scenario.name == "polska_demands"
    assert "topology: ../topologies/polska.yaml" in scen_path.read_text()
    # the 4 largest demands of the matrix, by hand from topohub
    import topohub

    data = topohub.get("sndlib/polska")
    names = {int(n["id"]): n["name"] for n in data["nodes"]}
    flat = sorted(((v, names[s], names[d]) for s, row in data["graph"]["demands"].items()
                   for d, v in row.items() if s != d), key=lambda t: -t[0])[:4]
    hosts = {h.name: h.node for h in scenario.topology.hosts}
    got = [(hosts[c.source], hosts[c.destination]) for c in scenario.traffic]
    assert got == [(s, d) for _, s, d in flat]
    total = sum(v for v, _, _ in flat)
    for c, (v, _, _) in zip(scenario.traffic, flat, strict=True):
        assert c.load_units_per_s == pytest.approx(400 * v / total, abs=0.1)
        assert c.chain == 10


# -- the shipped files -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_file_is_its_command_output(name: str, tmp_path, capsys,
                                           monkeypatch) -> None:
    shipped = ROOT / "topologies" / name
    text = shipped.read_text(encoding="utf-8")
    command = text.splitlines()[1].removeprefix("#").strip()
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "topologies", "import"]
    assert argv[argv.index("-o") + 1] == f"topologies/{name}"
    (tmp_path / "topologies").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(argv[3:]) == 0, capsys.readouterr().err
    assert (tmp_path / "topologies" / name).read_text(encoding="utf-8") == text


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_file_loads(name: str) -> None:
    topo = load_topology(ROOT / "topologies" / name)
    nodes, links, instances = SHIPPED[name]
    assert (len(topo.nodes), len(topo.links), len(topo.instances)) == (nodes, links, instances)
    assert topo.chains[0].services == ("FW", "IDS")
    assert len(topo.hosts) == 2 and len(topo.classifier) == 1
