"""Real networks as topology files: ``python -m topologies import SOURCE -o FILE``.

SOURCE is a key of the ``topohub`` package (offline copies of Topology Zoo, SNDlib,
CAIDA, ... as networkx node-link data: ``topozoo/Abilene``, ``sndlib/germany50``) or a
GraphML (``.graphml``) or GML (``.gml``) file. :func:`import_topology` turns it into the
text of a topology file (:mod:`topologies.spec`) and, for a source with a demand matrix,
optionally a scenario file; nothing here writes files (``topologies.cli`` does).

The rules, each documented where it is implemented:

- **graph clean-up** (:func:`clean_graph`): edges are undirected; self-loops are dropped
  and of parallel edges the cheapest is kept (each logged); an empty, one-node or
  disconnected graph is refused (``largest_component`` keeps the largest part).
- **link cost** (:func:`link_costs`): ``length`` = one per ``length_unit_km`` (default
  10 km, i.e. about 50 us of fibre delay per unit), rounded half up, at least 1; the length
  comes from an edge attribute (``dist``, ``length`` or ``distance``, or the one named) or
  else from the great-circle distance between the nodes' coordinates. ``capacity`` =
  ``reference_mbit / capacity`` as OSPF auto-cost (default reference 100 000 Mbit/s),
  rounded half up, capped to 1..65535; the capacity comes from an edge attribute
  (``capacity`` or ``bandwidth`` in Mbit/s, Topology Zoo's ``LinkSpeedRaw`` in bit/s, or
  the one named, in Mbit/s unless it is ``LinkSpeedRaw``). ``unit``: every link 1.
- **node names** (:mod:`topologies.naming`): sanitised to the format's 1-10 characters,
  unique; the original name is a comment on each node.
- **VNF placement** (:func:`rank_nodes`, :func:`place_instances`): nodes ranked by a
  named rule (``degree``, ``betweenness`` weighted by link cost, or ``random`` with a
  seed); the services take consecutive runs of that ranking in turn (the first service
  the top nodes, the next service the following ones, wrapping round), so one node has
  at most one instance of a service unless a service has more instances than there are
  nodes.
- **hosts, chain, classifier** (:func:`choose_endpoints`): one host ``h<N>`` (N = the
  node's position, so its address is 10.N.100.10) on each ingress and egress node; by
  default the ingress and egress are the two nodes farthest apart by link cost. One chain
  (SPI 10) through all services in order; a classifier rule per (ingress, egress) pair
  puts UDP from the ingress host subnet to the egress host subnet into it.
- **demands** (:func:`top_demands`): with a scenario requested, the ``demands`` largest
  entries of the source's demand matrix (SNDlib) become traffic classes; their end nodes
  get hosts and classifier rules too. See :func:`render_scenario` for the rates.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import logging
import math
import random
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from topologies import addressing as addr
from topologies.naming import clean_name, comment_text, sanitize_names, unique_name
from topologies.spec import MAX_INSTANCES_PER_NODE, MAX_NODES, NAME_PATTERN, VNF_KINDS

log = logging.getLogger(__name__)

COST_RULES = ("length", "capacity", "unit")
PLACEMENTS = ("degree", "betweenness", "random")
LENGTH_ATTRIBUTES = ("dist", "length", "distance")  # km
CAPACITY_ATTRIBUTES = {"capacity": 1.0, "bandwidth": 1.0, "LinkSpeedRaw": 1e-6}  # -> Mbit/s
DEFAULT_LENGTH_UNIT_KM = 10.0
DEFAULT_REFERENCE_MBIT = 100_000.0
DEFAULT_CAPACITY = 1000
DEFAULT_SERVICES = ("FW", "IDS")
DEFAULT_DEMANDS = 10
DEFAULT_TOTAL_PPS = 500.0
MAX_COST = 65535
CHAIN_SPI = 10
CLASSIFIER_PRIORITY = 100
HEADER_WIDTH = 86
INSTANCE_NAME_MAX = 11  # topologies.spec.INSTANCE_PATTERN
EARTH_RADIUS_KM = 6371.0  # mean radius
MB_PER_NFV_NODE = 95  # measured: router, connector, D-MANO and a VNF or two per node
FLOW_DURATION_S = 10.0  # scenario traffic classes: 1 new flow/s of 10 s (10 concurrent)
FLOWS_PER_S = 1.0
SCENARIO_DURATION_S = 60
SCENARIO_WARMUP_S = 20
KIND_BY_NAME = {"fw": "firewall", "firewall": "firewall", "ids": "ids", "dpi": "dpi"}
GROUP_LABELS = {"topozoo": "Topology Zoo", "sndlib": "SNDlib", "caida": "CAIDA",
                "gabriel": "Gabriel graph (synthetic)", "backbone": "backbone"}


class TopologyImportError(ValueError):
    """The source cannot be imported; the message says why and what to do instead."""


# -- options and results ------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceRequest:
    """One ``--service NAME[:COUNT[:KIND]]``; ``count`` None = the default for the size."""

    name: str
    count: int | None = None
    kind: str = "passthrough"

    @staticmethod
    def parse(text: str) -> ServiceRequest:
        """``FW``, ``FW:3`` or ``CACHE:2:passthrough``; the kind defaults from the name
        (FW/firewall -> firewall, IDS -> ids, DPI -> dpi, anything else passthrough)."""
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise TopologyImportError(f"--service {text!r}: expected NAME[:COUNT[:KIND]]")
        name = parts[0]
        if not re.fullmatch(NAME_PATTERN, name):
            raise TopologyImportError(f"--service {text!r}: the name must be 1-10 letters, "
                                      "digits or '_' starting with a letter")
        count = None
        if len(parts) > 1 and parts[1]:
            try:
                count = int(parts[1])
            except ValueError:
                count = 0
            if count < 1:
                raise TopologyImportError(f"--service {text!r}: COUNT must be a whole "
                                          f"number >= 1, got {parts[1]!r}")
        kind = KIND_BY_NAME.get(name.lower(), "passthrough")
        if len(parts) > 2:
            kinds = [k for k in VNF_KINDS if k != "scapy"]
            if parts[2] not in kinds:
                raise TopologyImportError(f"--service {text!r}: KIND must be one of "
                                          f"{', '.join(kinds)} (scapy needs a module: add "
                                          "it to the file by hand)")
            kind = parts[2]
        return ServiceRequest(name, count, kind)


@dataclass(frozen=True)
class ImportOptions:
    """Everything ``import`` can be told; the defaults are the documented ones."""

    cost: str = "length"
    length_unit_km: float = DEFAULT_LENGTH_UNIT_KM
    reference_mbit: float = DEFAULT_REFERENCE_MBIT
    cost_attribute: str | None = None
    services: tuple[ServiceRequest, ...] = ()  # empty: FW and IDS
    placement: str = "betweenness"
    seed: int = 1
    capacity: int = DEFAULT_CAPACITY
    ingress: tuple[str, ...] = ()  # empty: by rule
    egress: tuple[str, ...] = ()
    largest_component: bool = False
    demands: int | None = None  # None: no scenario; else the K largest demands
    total_pps: float = DEFAULT_TOTAL_PPS
    scenario_name: str = "imported_demands"  # the scenario's name
    topology_ref: str = "imported.yaml"  # the topology file as the scenario names it
    name: str = "imported"  # topology name (the CLI uses the output file's stem)
    command: str = ""  # the command line, recorded in the header


@dataclass
class Source:
    """A loaded source: an undirected multigraph whose nodes carry ``orig_name`` and
    maybe ``coords`` (longitude, latitude), plus its demand matrix (may be empty)."""

    graph: nx.MultiGraph
    label: str  # for messages: the key or the file
    title: str  # for the header: 'Topology Zoo "Abilene" (topohub key topozoo/Abilene)'
    demands: dict[tuple[Hashable, Hashable], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    cost: int
    note: str = ""  # the measure the cost came from, for the file's comment


@dataclass(frozen=True)
class Placed:
    name: str
    service: str
    node: str


@dataclass(frozen=True)
class Demand:
    src: str
    dst: str
    value: float


@dataclass
class ImportResult:
    """The generated files' text and what they hold (for the CLI's summary)."""

    topology_text: str
    scenario_text: str | None
    nodes: list[str]
    links: list[Link]
    instances: list[Placed]
    hosts: dict[str, tuple[str, str]]  # host -> (node, role)
    ingress: list[str]
    egress: list[str]
    demands: list[Demand]
    memory_mb: int


# -- sources --------------------------------------------------------------------------------
def topohub_keys() -> list[str]:
    """Every key ``topohub.get`` accepts (``group/.../name``), sorted."""
    import topohub

    root = importlib.resources.files(topohub) / "data"
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".json"):
                keys.append(prefix + child.name[:-len(".json")])

    walk(root, "")
    return sorted(keys)


def close_keys(key: str, keys: Sequence[str], n: int = 5) -> list[str]:
    """Keys like ``key`` (difflib, case-insensitive, also on the part after the group)."""
    lower = {k.lower(): k for k in keys}
    found = difflib.get_close_matches(key.lower(), list(lower), n=n, cutoff=0.6)
    tail = key.lower().rsplit("/", 1)[-1]
    by_tail: dict[str, list[str]] = {}
    for k in keys:
        by_tail.setdefault(k.lower().rsplit("/", 1)[-1], []).append(k.lower())
    for t in difflib.get_close_matches(tail, list(by_tail), n=n, cutoff=0.75):
        found += [k for k in by_tail[t] if k not in found]
    return [lower[k] for k in found[:n]]


def load_source(source: str) -> Source:
    """A topohub key or a GraphML/GML file path (told apart by the file suffix)."""
    if Path(source).suffix.lower() in (".graphml", ".gml", ".xml"):
        return load_graph_file(Path(source))
    return load_topohub(source)


def load_topohub(key: str) -> Source:
    import topohub

    keys = topohub_keys()
    if key not in keys:
        close = close_keys(key, keys)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        groups = sorted({k.split("/", 1)[0] for k in keys})
        raise TopologyImportError(
            f"unknown topohub key {key!r}{hint} (keys are group/name, groups: "
            f"{', '.join(groups)}; a file needs the suffix .graphml or .gml)")
    data = topohub.get(key)
    g = nx.MultiGraph()
    for n in data["nodes"]:
        attrs = {k: v for k, v in n.items() if k != "id"}
        attrs["orig_name"] = str(n.get("name", n["id"]))
        pos = n.get("pos")
        if isinstance(pos, list | tuple) and len(pos) == 2:
            attrs["coords"] = (float(pos[0]), float(pos[1]))
        g.add_node(n["id"], **attrs)
    for e in data["edges"]:
        g.add_edge(e["source"], e["target"],
                   **{k: v for k, v in e.items() if k not in ("source", "target")})
    by_str = {str(n): n for n in g}
    demands: dict[tuple[Hashable, Hashable], float] = {}
    for s, row in (data.get("graph", {}).get("demands") or {}).items():
        for d, v in row.items():
            if str(s) in by_str and str(d) in by_str and isinstance(v, int | float):
                demands[(by_str[str(s)], by_str[str(d)])] = float(v)
    group, _, name = key.partition("/")
    title = f"{GROUP_LABELS.get(group, group)} {name} (topohub key {key})"
    return Source(g, key, title, demands)


def load_graph_file(path: Path) -> Source:
    """GraphML or GML; node names from ``label`` or ``name`` (else the node id),
    coordinates from ``Longitude``/``Latitude`` (Topology Zoo), ``lon``/``lat`` or
    ``pos``. Directed graphs are taken as undirected (both directions become parallel
    edges, of which the cheapest is kept later)."""
    if not path.is_file():
        raise TopologyImportError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".gml":
            raw = nx.read_gml(path, label="id")
        else:
            raw = nx.read_graphml(path)
    except (nx.NetworkXError, ET.ParseError, ValueError, KeyError, OSError) as exc:
        raise TopologyImportError(f"{path}: not a readable {path.suffix[1:]} graph: "
                                  f"{exc}") from None
    if raw.is_directed():
        log.info("%s: directed graph, its edges are taken as undirected links", path)
    g = nx.MultiGraph()
    for n, d in raw.nodes(data=True):
        attrs = dict(d)
        attrs["orig_name"] = str(d.get("label", d.get("name", n)))
        coords = _coordinates(d)
        if coords is not None:
            attrs["coords"] = coords
        g.add_node(n, **attrs)
    g.add_edges_from((u, v, dict(d)) for u, v, d in raw.edges(data=True))
    return Source(g, str(path), f"{path.name}", {})


def _coordinates(d: dict[str, Any]) -> tuple[float, float] | None:
    lower = {str(k).lower(): v for k, v in d.items()}
    for lon_key, lat_key in (("longitude", "latitude"), ("lon", "lat"), ("lng", "lat")):
        if lon_key in lower and lat_key in lower:
            try:
                return float(lower[lon_key]), float(lower[lat_key])
            except (TypeError, ValueError):
                return None
    pos = lower.get("pos")
    if isinstance(pos, list | tuple) and len(pos) == 2:
        return float(pos[0]), float(pos[1])
    return None


# -- clean-up, costs ------------------------------------------------------------------------
def clean_graph(src: Source, largest_component: bool = False) -> None:
    """Drop self-loops; refuse an empty, one-node, disconnected or too large graph (or,
    with ``largest_component``, keep the largest connected part)."""
    g = src.graph
    loops = list(nx.selfloop_edges(g, keys=True))
    if loops:
        g.remove_edges_from(loops)
        names = sorted({g.nodes[u]["orig_name"] for u, _, _ in loops})
        log.info("%s: dropped %d self-loop(s) (at %s)", src.label, len(loops),
                 ", ".join(names))
    if len(g) == 0:
        raise TopologyImportError(f"{src.label}: the graph is empty (no nodes)")
    parts = sorted(nx.connected_components(g), key=lambda p: -len(p))
    if len(parts) > 1:
        sizes = [len(p) for p in parts]
        if not largest_component:
            raise TopologyImportError(
                f"{src.label}: the graph is not connected: {len(parts)} components of "
                f"{_count_list(sizes)} nodes; --largest-component keeps the largest "
                f"({sizes[0]} nodes)")
        order = {n: i for i, n in enumerate(g)}
        keep = min(parts, key=lambda p: (-len(p), min(order[n] for n in p)))
        dropped = [n for n in g if n not in keep]
        log.info("%s: kept the largest component (%d nodes), dropped %d nodes in %d "
                 "other component(s)", src.label, len(keep), len(dropped), len(parts) - 1)
        g.remove_nodes_from(dropped)
    if len(g) < 2:
        raise TopologyImportError(f"{src.label}: the graph has one node and no links; a "
                                  "topology needs at least two nodes")
    if len(g) > MAX_NODES:
        raise TopologyImportError(
            f"{src.label}: {len(g)} nodes, but the address plan supports at most "
            f"{MAX_NODES} NFV nodes (node N owns 10.N.0.0/24 and 10.N.100.0/24; see "
            "topologies/addressing.py)")


def _count_list(values: Sequence[int]) -> str:
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (longitude, latitude) points in degrees, in km on
    a sphere of the Earth's mean radius (6371 km)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def length_cost(km: float, unit_km: float = DEFAULT_LENGTH_UNIT_KM) -> int:
    """``max(1, round(km / unit))`` (half up), at most 65535."""
    return min(MAX_COST, max(1, round_half_up(km / unit_km)))


def capacity_cost(mbit: float, reference_mbit: float = DEFAULT_REFERENCE_MBIT) -> int:
    """OSPF auto-cost: ``reference / capacity`` rounded half up, capped to 1..65535."""
    return min(MAX_COST, max(1, round_half_up(reference_mbit / mbit)))


def _edge_attributes(g: nx.MultiGraph) -> list[str]:
    return sorted({str(k) for _, _, d in g.edges(data=True) for k in d})


def _numbers(src: Source, attr: str, what: str) -> dict[tuple[Any, Any, Any], float]:
    """Edge (u, v, key) -> the attribute as a number; a missing or bad value: an error
    naming the file, the attribute and the attributes that do exist."""
    g = src.graph
    out: dict[tuple[Any, Any, Any], float] = {}
    missing = []
    for u, v, k, d in g.edges(keys=True, data=True):
        if attr not in d:
            missing.append((u, v))
            continue
        value = d[attr]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise TopologyImportError(
                f"{src.label}: edge attribute {attr!r} of link {_edge_label(g, u, v)} is "
                f"{value!r}; expected a {what}")
        out[(u, v, k)] = number
    if missing:
        attrs = ", ".join(_edge_attributes(g)) or "none"
        raise TopologyImportError(
            f"{src.label}: edge attribute {attr!r} is missing on {len(missing)} of "
            f"{g.number_of_edges()} links (first: {_edge_label(g, *missing[0])}); edge "
            f"attributes in this graph: {attrs}")
    return out


def _edge_label(g: nx.MultiGraph, u: Any, v: Any) -> str:
    return f"{g.nodes[u]['orig_name']} - {g.nodes[v]['orig_name']}"


def _on_every_edge(g: nx.MultiGraph, names: Iterable[str]) -> str | None:
    for name in names:
        if g.number_of_edges() and all(name in d for _, _, d in g.edges(data=True)):
            return name
    return None


def link_costs(src: Source, opts: ImportOptions) -> dict[tuple[Any, Any, Any], tuple[int, str]]:
    """Edge (u, v, key) -> (OSPF cost, note for the comment) by ``opts.cost``."""
    g = src.graph
    if opts.cost == "unit":
        if opts.cost_attribute:
            raise TopologyImportError("--cost-attribute applies to --cost length or "
                                      "--cost capacity, not --cost unit")
        return {e: (1, "") for e in g.edges(keys=True)}
    if opts.cost == "capacity":
        attr = opts.cost_attribute or _on_every_edge(g, CAPACITY_ATTRIBUTES)
        if attr is None:
            raise TopologyImportError(
                f"{src.label}: --cost capacity needs a link capacity: no edge attribute "
                f"{' or '.join(CAPACITY_ATTRIBUTES)} on every link (edge attributes here: "
                f"{', '.join(_edge_attributes(g)) or 'none'}); name one with "
                "--cost-attribute NAME (in Mbit/s) or use --cost length or unit")
        scale = CAPACITY_ATTRIBUTES.get(attr, 1.0)  # LinkSpeedRaw is in bit/s, named or not
        values = _numbers(src, attr, "capacity in Mbit/s")
        out = {}
        for e, v in values.items():
            mbit = v * scale
            if mbit <= 0:
                raise TopologyImportError(f"{src.label}: link {_edge_label(g, e[0], e[1])} "
                                          f"has capacity {v!r}; expected more than 0")
            out[e] = (capacity_cost(mbit, opts.reference_mbit), f"{mbit:g} Mbit/s")
        return out
    if opts.cost != "length":
        raise TopologyImportError(f"--cost: expected one of {', '.join(COST_RULES)}")
    attr = opts.cost_attribute or _on_every_edge(g, LENGTH_ATTRIBUTES)
    if attr is not None:
        return {e: (length_cost(km, opts.length_unit_km), f"{km:g} km")
                for e, km in _numbers(src, attr, "length in km").items()}
    no_coords = [d["orig_name"] for _, d in g.nodes(data=True) if "coords" not in d]
    if no_coords:
        attrs = ", ".join(_edge_attributes(g)) or "none"
        raise TopologyImportError(
            f"{src.label}: --cost length needs link lengths: no edge attribute "
            f"{', '.join(LENGTH_ATTRIBUTES)} on every link (edge attributes here: {attrs}), "
            f"and {len(no_coords)} of {len(g)} nodes have no coordinates (first: "
            f"{no_coords[0]}); name the length with --cost-attribute NAME (km) or use "
            "--cost unit")
    out = {}
    for u, v, k in g.edges(keys=True):
        km = great_circle_km(g.nodes[u]["coords"], g.nodes[v]["coords"])
        out[(u, v, k)] = (length_cost(km, opts.length_unit_km), f"{km:.1f} km great-circle")
    return out


def simple_graph(src: Source, names: dict[Any, str],
                 costs: dict[tuple[Any, Any, Any], tuple[int, str]]) -> nx.Graph:
    """The node names' graph with one link per node pair: of parallel edges the
    cheapest (the first of equals) is kept, and that is logged."""
    g = nx.Graph()
    g.add_nodes_from(names[n] for n in src.graph)
    dropped = 0
    for (u, v, _key), (cost, note) in costs.items():
        a, b = names[u], names[v]
        if g.has_edge(a, b):
            dropped += 1
            if cost >= g.edges[a, b]["cost"]:
                continue
        g.add_edge(a, b, cost=cost, note=note)
    if dropped:
        log.info("%s: %d parallel edge(s) dropped, the cheapest link of each node pair "
                 "kept", src.label, dropped)
    return g


# -- placement, endpoints -------------------------------------------------------------------
def rank_nodes(g: nx.Graph, rule: str, seed: int = 1) -> list[str]:
    """Nodes best first by ``rule``: ``degree`` (number of links), ``betweenness``
    (networkx's exact betweenness centrality, shortest paths by link cost) or ``random``
    (a shuffle by ``random.Random(seed)``). Ties go to the node earlier in the file."""
    nodes = list(g.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    if rule == "random":
        random.Random(seed).shuffle(nodes)
        return nodes
    if rule == "degree":
        score: dict[str, float] = {n: float(d) for n, d in g.degree()}
    elif rule == "betweenness":
        score = nx.betweenness_centrality(g, weight="cost")
    else:
        raise TopologyImportError(f"--placement: expected one of {', '.join(PLACEMENTS)}, "
                                  f"got {rule!r}")
    return sorted(nodes, key=lambda n: (-round(score[n], 9), order[n]))


def place_instances(ranking: Sequence[str], counts: Sequence[tuple[str, int]]
                    ) -> list[tuple[str, str]]:
    """(service, node) per instance: each service takes the next ``count`` nodes of
    the ranking (cyclically), services in order."""
    out = []
    pos = 0
    for service, count in counts:
        for _ in range(count):
            out.append((service, ranking[pos % len(ranking)]))
            pos += 1
    return out


def default_count(n_nodes: int) -> int:
    """Instances per service unless given: one per 10 nodes (rounded up), at least 2."""
    return max(2, math.ceil(n_nodes / 10))


def _resolve(given: Sequence[str], names: Sequence[str], originals: dict[str, str],
             option: str) -> list[str]:
    """Node names from the sanitised or the original names."""
    by_orig: dict[str, str] = {}
    for name in names:
        by_orig.setdefault(originals[name], name)
    out = []
    for g in given:
        if g in names:
            node = g
        elif g in by_orig:
            node = by_orig[g]
        else:
            close = list(dict.fromkeys(
                difflib.get_close_matches(g, list(dict.fromkeys([*names, *by_orig])), n=5)))
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TopologyImportError(f"{option}: no node {g!r} in this graph{hint}")
        if node not in out:
            out.append(node)
    return out


def choose_endpoints(g: nx.Graph, ingress: Sequence[str], egress: Sequence[str]
                     ) -> tuple[list[str], list[str], float | None]:
    """Ingress and egress nodes: those given; a missing side is the node farthest (by
    link cost) from the other side's nearest node; neither given: the two nodes farthest
    apart (the earlier one in the file is the ingress). Ties go to earlier nodes. Also
    returns the chosen distance (None if both sides were given)."""
    order = {n: i for i, n in enumerate(g.nodes)}
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight="cost"))
    if ingress and egress:
        return list(ingress), list(egress), None
    if not ingress and not egress:
        best: tuple[float, int, int] | None = None
        pair = ("", "")
        for a in g.nodes:
            for b in g.nodes:
                if order[a] < order[b]:
                    key = (-dist[a][b], order[a], order[b])
                    if best is None or key < best:
                        best, pair = key, (a, b)
        return [pair[0]], [pair[1]], dist[pair[0]][pair[1]]
    given = list(ingress or egress)
    others = [n for n in g.nodes if n not in given]
    if not others:
        side = "--egress" if ingress else "--ingress"
        raise TopologyImportError(f"every node is given; name the other side with {side}")
    far = min(others, key=lambda n: (-min(dist[s][n] for s in given), order[n]))
    d = min(dist[s][far] for s in given)
    return (given, [far], d) if ingress else ([far], given, d)


def top_demands(src: Source, names: dict[Any, str], k: int) -> tuple[list[Demand], int]:
    """The ``k`` largest non-zero demands between different kept nodes (ties: earlier
    source, then earlier destination node) and how many there were in all."""
    order = {n: i for i, n in enumerate(src.graph)}
    items = [(v, s, d) for (s, d), v in src.demands.items()
             if s != d and v > 0 and s in names and d in names]
    items.sort(key=lambda t: (-t[0], order[t[1]], order[t[2]]))
    return [Demand(names[s], names[d], v) for v, s, d in items[:k]], len(items)


# -- the whole import -----------------------------------------------------------------------
def import_topology(source: str | Source, opts: ImportOptions) -> ImportResult:
    """Load, check and convert ``source``; raise :class:`TopologyImportError` on bad input.
    The topology text is checked by :func:`topologies.spec.parse_topology` before it is
    returned (a failure there is a bug here: RuntimeError)."""
    src = load_source(source) if isinstance(source, str) else source
    if opts.demands is not None and not src.demands:
        raise TopologyImportError(
            f"{src.label} has no demand matrix, so there is no traffic for --scenario-out "
            "(topohub's SNDlib networks, sndlib/..., have one)")
    clean_graph(src, opts.largest_component)
    costs = link_costs(src, opts)
    originals = [src.graph.nodes[n]["orig_name"] for n in src.graph]
    sanitized = sanitize_names(originals)
    names = dict(zip(src.graph, sanitized, strict=True))
    orig_of = dict(zip(sanitized, originals, strict=True))
    g = simple_graph(src, names, costs)
    if g.number_of_edges() > addr.MAX_LINKS:
        raise TopologyImportError(f"{src.label}: {g.number_of_edges()} links, but the "
                                  f"address plan has /30s for at most {addr.MAX_LINKS}")
    nodes = list(g.nodes)
    index = {n: i + 1 for i, n in enumerate(nodes)}

    requests = list(opts.services) or [ServiceRequest(s, None, KIND_BY_NAME[s.lower()])
                                       for s in DEFAULT_SERVICES]
    seen: set[str] = set()
    for r in requests:
        if r.name in seen:
            raise TopologyImportError(f"--service {r.name} is given twice")
        seen.add(r.name)
    if len(requests) > 254:
        raise TopologyImportError("at most 254 services fit a chain (NSH SI 255..1)")
    counts = [(r.name, r.count or default_count(len(nodes))) for r in requests]

    ingress = _resolve(opts.ingress, nodes, orig_of, "--ingress")
    egress = _resolve(opts.egress, nodes, orig_of, "--egress")
    ingress, egress, span = choose_endpoints(g, ingress, egress)
    demands: list[Demand] = []
    n_demands = 0
    if opts.demands is not None:
        demands, n_demands = top_demands(src, names, opts.demands)
        if not demands:
            raise TopologyImportError(f"{src.label}: no non-zero demand between two "
                                      "different nodes of the imported graph")
    pairs = {(i, e) for i in ingress for e in egress if i != e}
    pairs |= {(d.src, d.dst) for d in demands}
    if not pairs:
        raise TopologyImportError("the ingress and egress are the same node: no traffic "
                                  "would cross the network; give different --ingress and "
                                  "--egress nodes")
    senders = {s for s, _ in pairs} | set(ingress)
    receivers = {d for _, d in pairs} | set(egress)
    hosts: dict[str, tuple[str, str]] = {}
    host_of: dict[str, str] = {}
    for n in nodes:
        if n in senders or n in receivers:
            role = ("both" if n in senders and n in receivers else
                    "source" if n in senders else "sink")
            host_of[n] = f"h{index[n]}"
            hosts[host_of[n]] = (n, role)

    ranking = rank_nodes(g, opts.placement, opts.seed)
    placed_pairs = place_instances(ranking, counts)
    per_node: dict[str, int] = {}
    for _, n in placed_pairs:
        per_node[n] = per_node.get(n, 0) + 1
        if per_node[n] > MAX_INSTANCES_PER_NODE:
            raise TopologyImportError(
                f"{per_node[n]} instances on node {n}: at most {MAX_INSTANCES_PER_NODE} "
                "per node (connector VNF ports 16..63); ask for fewer instances")
    taken = {f"r{n}" for n in nodes} | {f"c{n}" for n in nodes} | set(hosts)
    instances: list[Placed] = []
    number: dict[str, int] = {}
    for service, n in placed_pairs:
        number[service] = number.get(service, 0) + 1
        k = str(number[service])
        prefix = clean_name(service.lower(), INSTANCE_NAME_MAX - len(k), prefix="v")
        name = unique_name(prefix + k, taken, INSTANCE_NAME_MAX)
        taken.add(name)
        instances.append(Placed(name, service, n))

    links = [Link(*_ordered(a, b, index), d["cost"], d["note"])
             for a, b, d in g.edges(data=True)]
    links.sort(key=lambda lk: (index[lk.a], index[lk.b]))
    memory_mb = MB_PER_NFV_NODE * len(nodes)
    header = _header(src, opts, requests, counts, nodes, links, ingress, egress, span,
                     host_of, demands, n_demands, memory_mb)
    description = _description(src, opts, len(nodes), len(links))
    classifier = sorted(pairs, key=lambda p: (index[p[0]], index[p[1]]))
    text = render_topology(opts.name, header, description, nodes, orig_of, links, requests,
                           instances, hosts, index, classifier, opts.capacity)
    _validate(text)
    scenario_text = None
    if opts.demands is not None:
        scenario_text = render_scenario(opts.scenario_name, opts.topology_ref, opts.command,
                                        src.title, demands, n_demands, host_of,
                                        opts.total_pps)
    return ImportResult(
        topology_text=text, scenario_text=scenario_text, nodes=nodes, links=links,
        instances=instances, hosts=hosts, ingress=ingress, egress=egress, demands=demands,
        memory_mb=memory_mb,
    )


def _ordered(a: str, b: str, index: dict[str, int]) -> tuple[str, str]:
    return (a, b) if index[a] < index[b] else (b, a)


def _validate(text: str) -> None:
    from dmano.yamlconf import ConfigError, loads_yaml
    from topologies.spec import parse_topology

    try:
        parse_topology(loads_yaml(text, "<generated>"), Path("generated.yaml"))
    except ConfigError as exc:
        raise RuntimeError(f"internal error: the generated topology does not validate: "
                           f"{exc}") from exc


# -- rendering ------------------------------------------------------------------------------
def scalar(value: object) -> str:
    """A YAML scalar that reads back as ``value``: plain when safe, else double-quoted
    (JSON's quoting is valid YAML): node names like ``On`` or ``No`` would be booleans."""
    if isinstance(value, bool) or not isinstance(value, str):
        return json.dumps(value)
    try:
        plain = value != "" and yaml.safe_load(value) == value and value == value.strip() \
            and not any(c in value for c in ":#,[]{}&*!|>'\"%@`")
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value)


def flow(mapping: dict[str, object]) -> str:
    """A one-line flow mapping ``{k: v, ...}``."""
    return "{" + ", ".join(f"{k}: {_flow_value(v)}" for k, v in mapping.items()) + "}"


def _flow_value(v: object) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(scalar(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return scalar(v)


def _description(src: Source, opts: ImportOptions, n_nodes: int, n_links: int) -> str:
    return f"{src.title}: {n_nodes} nodes, {n_links} links, cost {_cost_rule(opts)}"


def _cost_rule(opts: ImportOptions) -> str:
    attr = f" ({opts.cost_attribute})" if opts.cost_attribute else ""
    if opts.cost == "length":
        return f"length{attr}, 1 per {opts.length_unit_km:g} km"
    if opts.cost == "capacity":
        return f"capacity{attr}, {opts.reference_mbit:g} Mbit/s reference"
    return "1 per link"


def _header(src: Source, opts: ImportOptions, requests: Sequence[ServiceRequest],
            counts: Sequence[tuple[str, int]], nodes: Sequence[str], links: Sequence[Link],
            ingress: Sequence[str], egress: Sequence[str], span: float | None,
            host_of: dict[str, str], demands: Sequence[Demand], n_demands: int,
            memory_mb: int) -> list[str]:
    kinds = {r.name: r.kind for r in requests}
    services = ", ".join(f"{s} x{c} ({kinds[s]})" for s, c in counts)
    placement = {"degree": "degree (most links first)",
                 "betweenness": "betweenness centrality (shortest paths by link cost)",
                 "random": f"random (seed {opts.seed})"}[opts.placement]
    ends = "given" if span is None else (
        "the two nodes farthest apart" if not opts.ingress and not opts.egress
        else "the node farthest from the given ones") + f", path cost {span:g}"
    paragraphs = [
        f"{len(nodes)} NFV nodes (the comments give the original names), {len(links)} "
        f"links; link cost: {_cost_rule(opts)}"
        + (" (rounded half up, at least 1, at most 65535)." if opts.cost != "unit" else "."),
        f"Services: {services}; capacity {opts.capacity} each, placed by {placement}.",
        f"Chain {CHAIN_SPI}: {' -> '.join(s for s, _ in counts)}; the classifier puts UDP "
        "from each source host's subnet to each destination host's subnet into it.",
        "Ingress " + ", ".join(f"{host_of[n]} on {n}" for n in ingress) + "; egress "
        + ", ".join(f"{host_of[n]} on {n}" for n in egress) + f" ({ends}).",
    ]
    if demands:
        paragraphs.append(f"Hosts also on the ends of the {len(demands)} largest of "
                          f"{n_demands} demands (the scenario file's traffic).")
    paragraphs.append(f"Bringing it up takes about {memory_mb / 1000:.1f} GB of memory "
                      f"({MB_PER_NFV_NODE} MB per NFV node).")
    lines = [f"Imported from {src.title} by",
             f"  {opts.command}" if opts.command else "  (no command recorded)",
             "Generated: the same command gives this file again, byte for byte; change the",
             "options rather than the file (topologies/importer.py documents the rules).",
             ""]
    for p in paragraphs:
        lines += textwrap.wrap(p, width=HEADER_WIDTH)
    return lines


def render_topology(name: str, header: Sequence[str], description: str,
                    nodes: Sequence[str], orig_of: dict[str, str], links: Sequence[Link],
                    requests: Sequence[ServiceRequest], instances: Sequence[Placed],
                    hosts: dict[str, tuple[str, str]], index: dict[str, int],
                    pairs: Sequence[tuple[str, str]], capacity: int) -> str:
    """The topology file's text: header comments, then the sections of
    :mod:`topologies.spec` in its order, one item per line."""
    out = [f"# {h}".rstrip() for h in header]
    out += [f"name: {scalar(name)}", f"description: {scalar(description)}", "nodes:"]
    width = max(len(scalar(n)) for n in nodes)
    for n in nodes:
        out.append(f"  - name: {scalar(n):<{width}}  # {comment_text(orig_of[n])}")
    out.append("links:")
    for lk in links:
        line = f"  - {flow({'a': lk.a, 'b': lk.b, 'cost': lk.cost})}"
        out.append(f"{line}  # {lk.note}" if lk.note else line)
    out.append("services:")
    for i, r in enumerate(requests, start=1):
        service: dict[str, object] = {"name": r.name, "id": i, "anycast": f"10.254.{i}.1",
                                      "kind": r.kind}
        out.append(f"  - {flow(service)}")
    out.append("instances:")
    for inst in instances:
        item: dict[str, object] = {"name": inst.name, "service": inst.service,
                                   "node": inst.node, "capacity": capacity}
        out.append(f"  - {flow(item)}")
    out.append("hosts:")
    for h, (n, role) in hosts.items():
        out.append(f"  - {flow({'name': h, 'node': n, 'role': role})}")
    out.append("chains:")
    chain = {"spi": CHAIN_SPI, "name": "-".join(r.name.lower() for r in requests),
             "services": [r.name for r in requests]}
    out.append(f"  - {flow(chain)}")
    out.append("classifier:")
    for s, d in pairs:
        rule = {"node": s, "chain": CHAIN_SPI, "priority": CLASSIFIER_PRIORITY,
                "src": str(addr.host_subnet(index[s])),
                "dst": str(addr.host_subnet(index[d])), "proto": "udp"}
        out.append(f"  - {flow(rule)}")
    return "\n".join(out) + "\n"


def render_scenario(name: str, topology_ref: str, command: str, src_title: str,
                    demands: Sequence[Demand], n_demands: int, host_of: dict[str, str],
                    total_pps: float) -> str:
    """A scenario file (scenarios/spec) with one traffic class per demand: constant
    arrivals of 1 flow/s lasting 10 s (10 flows at a time), each flow sending
    ``total_pps * demand / sum of the chosen demands / 10`` packets/s (at least 1, two
    decimals), so all classes together offer about ``total_pps``; 60 s, warm-up 20 s,
    policy paper. Edit the timing, add events and windows as needed."""
    total = sum(d.value for d in demands)
    text = (f"Traffic from the demand matrix of {src_title}: the {len(demands)} largest "
            f"of {n_demands} demands, scaled to about {total_pps:g} packets/s in all. Each "
            "class: 1 new flow/s of 10 s (10 flows at a time); packets_per_s is per flow. "
            "A starting point: set time_scale, duration, events and windows for your "
            "experiment.")
    lines = ["Generated by", f"  {command}" if command else "  (no command recorded)"]
    lines += textwrap.wrap(text, width=HEADER_WIDTH)
    out = [f"# {x}".rstrip() for x in lines]
    out += [f"name: {scalar(name)}",
            f"description: {scalar(f'{len(demands)} largest demands of {src_title}')}",
            f"topology: {scalar(topology_ref)}",
            "policy: paper",
            "time_scale: 1",
            f"duration_s: {SCENARIO_DURATION_S}",
            "seed: 1",
            "traffic:"]
    concurrent = FLOWS_PER_S * FLOW_DURATION_S
    for d in demands:
        pps = max(1.0, round(total_pps * d.value / total / concurrent, 2))
        item = flow({"name": f"{d.src}-{d.dst}", "source": host_of[d.src],
                     "destination": host_of[d.dst], "chain": CHAIN_SPI,
                     "arrival": "constant", "flows_per_s": FLOWS_PER_S,
                     "flow_duration_s": FLOW_DURATION_S, "packets_per_s": pps})
        out.append(f"  - {item}  # demand {d.value:g} ({100 * d.value / total:.1f} %)")
    out += ["measure:", "  sample_period_s: 1", f"  warmup_s: {SCENARIO_WARMUP_S}"]
    return "\n".join(out) + "\n"


# -- memory -----------------------------------------------------------------------------------
def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in MB (10^6 bytes), or None where it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 1_000_000
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_warning(n_nodes: int, available_mb: int | None) -> str | None:
    """A warning when ``n_nodes`` NFV nodes (95 MB each) need more than is available."""
    need = MB_PER_NFV_NODE * n_nodes
    if available_mb is None or need <= available_mb:
        return None
    return (f"bringing up {n_nodes} NFV nodes needs about {need / 1000:.1f} GB of memory "
            f"({MB_PER_NFV_NODE} MB each) but {available_mb / 1000:.1f} GB is available "
            "here: `up` may fail or swap")
