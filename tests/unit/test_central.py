"""The centralized baseline orchestrator (dmano/central) without FRR.

* configuration: defaults and errors that name the file and the field;
* planner: the cost book's hysteresis is the policy's, the instance view, and the key
  property of the baseline: with the same policy and the same measurements the
  orchestrator computes for every node exactly the tables that node's own D-MANO
  computes from the flooded LSDB (hand-built LSAs, real D-MANOs over a sequence of
  loads, and random topologies);
* demand: what each node sends to each service, by hand on small chains;
* poller: message and byte counts, a missing counters file, the management RTT;
* the orchestrator's loop with a fake OSPF API session, dry-run connectors and real
  child processes as VNFs: writes, status files, detection by polling only, a failing
  connector, differences only, the RTT, a policy reload, an OSPF API reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmano.central.orchestrator as orchestrator_module
import dmano.daemon
from dmano import lsa
from dmano.central.cli import main as central_main
from dmano.central.config import CentralConfig, load_central_config
from dmano.central.demand import END, chain_demand, successors
from dmano.central.orchestrator import Orchestrator
from dmano.central.planner import CostBook, NodeTables, instance_view, policy_tables
from dmano.central.poller import NodePoll, NodePoller, PollCounters
from dmano.cli import render_status
from dmano.config import (
    ChainConf,
    InstanceConf,
    NodeConfig,
    RuleConf,
    ServiceConf,
)
from dmano.connector_client import DryRunConnector
from dmano.connector_state import (
    LOCAL_GROUP_BASE,
    DesiredState,
    MemberKey,
    Op,
    desired_state,
    diff,
)
from dmano.daemon import Dmano
from dmano.lsdb import (
    LsdbMirror,
    build_announcement_lsa,
    build_network_lsa,
    build_opaque_lsa,
    build_router_lsa,
)
from dmano.model import InstanceState, RouterLink, VnfAnnouncement
from dmano.monitor import InstanceStatus
from dmano.policy import (
    Measurement,
    Policy,
    load_policy,
    shipped_policy,
    shipped_policy_names,
)
from dmano.service_plane import compute_tables
from dmano.yamlconf import ConfigError
from tests.unit.dmano_helpers import FakeSession, start_child, stop_child, write_counters

NAMES = "ABCDEF"
FW, IDS, NAT = 1, 2, 3
SERVICES = (ServiceConf("FW", FW, IPv4Address("10.254.1.1")),
            ServiceConf("IDS", IDS, IPv4Address("10.254.2.1")),
            ServiceConf("NAT", NAT, IPv4Address("10.254.3.1")))
CHAINS = (ChainConf(1, (FW, IDS)), ChainConf(2, (IDS,)))
POLICIES = {name: load_policy(shipped_policy(name)) for name in shipped_policy_names()}
NOWHERE = Path("/nonexistent/dsfc-test")


def rid(node: str) -> IPv4Address:
    return IPv4Address(f"10.255.0.{NAMES.index(node) + 1}")


def endpoint(node: str) -> IPv4Address:
    return IPv4Address(f"10.{NAMES.index(node) + 1}.0.2")


def remote(node: str) -> MemberKey:
    return MemberKey("remote", endpoint=str(endpoint(node)))


Link = tuple[str, str, int, int]  # a, b, metric a -> b, metric b -> a


def router_lsas(links: Sequence[Link], one_way: Sequence[tuple[str, str, int]] = (),
                routers: str = NAMES) -> list[bytes]:
    """Raw router LSAs: point-to-point links listed by both ends (with their own
    metrics), one-way links (fail the two-way check), loopback and connector stubs."""
    per: dict[str, list[RouterLink]] = {n: [] for n in routers}
    for k, (a, b, ab, ba) in enumerate(links):
        net = IPv4Address(f"10.0.{k}.0")
        per[a].append(RouterLink(1, rid(b), net + 1, ab))
        per[b].append(RouterLink(1, rid(a), net + 2, ba))
        per[a].append(RouterLink(3, net, IPv4Address("255.255.255.252"), ab))
        per[b].append(RouterLink(3, net, IPv4Address("255.255.255.252"), ba))
    for a, b, metric in one_way:
        per[a].append(RouterLink(1, rid(b), IPv4Address("10.0.99.1"), metric))
    out = []
    for n, links_ in per.items():
        links_.append(RouterLink(3, rid(n), IPv4Address("255.255.255.255"), 0))
        links_.append(RouterLink(3, endpoint(n) - 2, IPv4Address("255.255.255.0"), 10))
        out.append(build_router_lsa(rid(n), links_, seq=-0x7FFFFFFF + 5))
    return out


def mirror_of(raws: Sequence[bytes]) -> LsdbMirror:
    mirror = LsdbMirror()
    for raw in raws:
        mirror.apply_update(raw)
    return mirror


def instance(node: str, name: str, iid: int, service: int, *, port: int = 0,
             cost: int | None = None, folder: Path = NOWHERE) -> InstanceConf:
    return InstanceConf(name, iid, service, 150, folder / f"{name}.json", port,
                        f"02:00:00:{NAMES.index(node) + 1:02x}:{iid:02x}:01", cost)


def rule(chain: int, src: str = "0.0.0.0/0", priority: int = 100) -> RuleConf:
    return RuleConf(chain, priority, IPv4Network(src), IPv4Network("0.0.0.0/0"), 17, None,
                    (5000, 5999))


def node_config(node: str, instances: Sequence[InstanceConf], folder: Path = NOWHERE,
                classifier: Sequence[RuleConf] = (),
                chains: Sequence[ChainConf] = CHAINS) -> NodeConfig:
    return NodeConfig(
        node=node, router_id=rid(node), nsh_endpoint=endpoint(node),
        policy=shipped_policy("paper"), status_file=folder / f"r{node}" / "dmano.json",
        services=SERVICES, chains=tuple(chains), classifier=tuple(classifier),
        instances=tuple(instances), path=folder / f"r{node}.yaml", heartbeat_s=3600.0)


def measurement(inst: InstanceConf, load: float, cpu: float) -> Measurement:
    return Measurement(capacity=float(inst.capacity), load=load, cpu_percent=cpu,
                       cpu_cores=inst.cpu_cores, configured_cost=inst.cost)


def status(inst: InstanceConf, load: float, cpu: float = 0.0, up: bool = True
           ) -> InstanceStatus:
    if not up:
        return InstanceStatus(False, "no counters file (test)", measurement(inst, 0.0, 0.0))
    return InstanceStatus(True, "", measurement(inst, load, cpu), 4242)


Statuses = dict[str, dict[str, InstanceStatus]]


def dmano_tables(links: Sequence[bytes], nodes: Sequence[NodeConfig], statuses: Statuses,
                 policy: Policy) -> NodeTables:
    """What every D-MANO computes: each up instance announced by its node with the cost
    the policy gives its measurement (as Dmano._announce builds it), all LSAs flooded
    into one LSDB, then compute_tables from each router."""
    mirror = mirror_of(links)
    for n in nodes:
        anycast = {s.id: s.anycast for s in n.services}
        for seq, inst in enumerate(n.instances, start=1):
            st_ = statuses[n.node][inst.name]
            if not st_.up:
                continue
            ann = VnfAnnouncement(
                instance_id=inst.id, service_id=inst.service, anycast=anycast[inst.service],
                cost=policy.vnf_cost(st_.measurement), endpoint=n.nsh_endpoint,
                capacity=inst.capacity, load=round(st_.measurement.load),
                state=InstanceState.UP, name=inst.name, sequence=1000 + seq)
            assert mirror.apply_update(build_announcement_lsa(n.router_id, ann))
    return {n.node: compute_tables(mirror.view, n.router_id, policy) for n in nodes}


def central_tables(links: Sequence[bytes], nodes: Sequence[NodeConfig],
                   statuses: Statuses, policy: Policy) -> NodeTables:
    """What the orchestrator computes from the same router LSAs and polls."""
    costs = CostBook()
    for node, per in statuses.items():
        for name, st_ in per.items():
            if st_.up:
                costs.update(node, name, policy.vnf_cost(st_.measurement), policy)
    view = instance_view(mirror_of(links).view, nodes, statuses, costs)
    return policy_tables(view, nodes, policy)


# =============================================================================== config

NODE_YAML = """\
node: {node}
router_id: 10.255.0.{i}
nsh_endpoint: 10.{i}.0.2
policy: {policy}
status_file: {folder}/r{node}/dmano.json
connector:
  kind: dry-run
  router_mac: "02:00:00:00:0{i}:01"
  local_mac: "02:00:00:00:0{i}:02"
services:
  - {{name: FW, id: 1, anycast: 10.254.1.1}}
chains:
  - {{spi: 1, services: [1]}}
classifier:
  - {{chain: 1, priority: 100, src: 10.{i}.100.0/24, dst: 0.0.0.0/0, proto: udp,
     sport: null, dport: 5000-5999}}
instances:
  - name: fw_{low}
    id: 1
    service: 1
    capacity: {capacity}
    stats: {folder}/vnf/fw_{low}.json
    port: 16
    mac: "02:00:00:01:10:0{i}"
"""


def write_node(folder: Path, node: str, i: int, capacity: int = 150,
               router_id: str | None = None) -> Path:
    text = NODE_YAML.format(node=node, i=i, low=node.lower(), folder=folder,
                            policy=shipped_policy("paper"), capacity=capacity)
    if router_id is not None:
        text = text.replace(f"router_id: 10.255.0.{i}", f"router_id: {router_id}")
    path = folder / f"r{node}.yaml"
    path.write_text(text)
    return path


def write_central(folder: Path, extra: str = "", nodes: str = "[rA.yaml, rB.yaml]") -> Path:
    path = folder / "central.yaml"
    path.write_text(f"policy: {shipped_policy('paper')}\n"
                    f"status_file: central/central.json\nnodes: {nodes}\n{extra}")
    return path


@pytest.fixture
def two_nodes(tmp_path: Path) -> Path:
    write_node(tmp_path, "A", 1)
    write_node(tmp_path, "B", 2)
    return tmp_path


def test_config_two_nodes_and_defaults(two_nodes: Path) -> None:
    cfg = load_central_config(write_central(two_nodes))
    assert [n.node for n in cfg.nodes] == ["A", "B"]
    assert [n.router_id for n in cfg.nodes] == [rid("A"), rid("B")]
    assert cfg.nodes[1].instances[0].name == "fw_b"
    assert cfg.nodes[0].path == two_nodes / "rA.yaml"
    assert cfg.objective == "policy" and cfg.poll_period_s == 2.0
    assert cfg.mgmt_rtt_ms == 0.0 and cfg.rtt_s == 0.0 and cfg.election_id == 20
    assert cfg.status_file == two_nodes / "central" / "central.json"  # relative to file
    assert cfg.node_status_dir == two_nodes / "central"
    assert cfg.node_status_file("B") == two_nodes / "central" / "B.json"
    assert cfg.ospf_api == "127.0.0.1" and cfg.area == IPv4Address("0.0.0.0")
    assert cfg.path == two_nodes / "central.yaml"

    cfg = load_central_config(write_central(
        two_nodes, "objective: min-max-utilisation\npoll_period_s: 0.5\nmgmt_rtt_ms: 25\n"
                   f"node_status_dir: {two_nodes}/nodes\nelection_id: 7\n"))
    assert cfg.objective == "min-max-utilisation" and cfg.poll_period_s == 0.5
    assert cfg.rtt_s == 0.025 and cfg.election_id == 7
    assert cfg.node_status_file("A") == two_nodes / "nodes" / "A.json"


@pytest.mark.parametrize("extra, field, words", [
    ("objective: fastest\n", "objective",
     "expected one of policy, min-max-utilisation, got 'fastest'"),
    ("poll_period_s: -1\n", "poll_period_s", "expected a number >= 0.05, got -1"),
    ("poll_period_s: .nan\n", "poll_period_s", "finite"),
    ("mgmt_rtt_ms: -5\n", "mgmt_rtt_ms", "expected a number >= 0.0, got -5"),
    ("mgmt_rtt_ms: 10001\n", "mgmt_rtt_ms", "expected a number <= 10000.0, got 10001"),
    ("surprise: 1\n", "surprise", "unknown key"),
])
def test_config_field_errors(two_nodes: Path, extra: str, field: str, words: str) -> None:
    path = write_central(two_nodes, extra)
    with pytest.raises(ConfigError) as err:
        load_central_config(path)
    assert err.value.path == str(path) and err.value.field == field
    assert err.value.line is not None
    assert words in str(err.value)


def test_config_nodes_errors(two_nodes: Path) -> None:
    path = write_central(two_nodes, nodes="[]")
    with pytest.raises(ConfigError, match="expected at least 1 item") as err:
        load_central_config(path)
    assert err.value.path == str(path) and err.value.field == "nodes"

    # a bad field in a node file: the error is that node file's, with its field
    bad = write_node(two_nodes, "B", 2, capacity=-5)
    with pytest.raises(ConfigError) as err:
        load_central_config(write_central(two_nodes))
    assert err.value.path == str(bad) and err.value.field == "instances[0].capacity"
    assert "got -5" in str(err.value)

    # two nodes with the same router id: both files named
    write_node(two_nodes, "B", 2, router_id="10.255.0.1")
    path = write_central(two_nodes)
    with pytest.raises(ConfigError) as err:
        load_central_config(path)
    assert err.value.path == str(path) and err.value.field == "nodes"
    assert "same router_id 10.255.0.1" in str(err.value)
    assert str(two_nodes / "rA.yaml") in str(err.value)
    assert str(two_nodes / "rB.yaml") in str(err.value)

    # the same node file twice
    write_node(two_nodes, "B", 2)
    with pytest.raises(ConfigError, match="same node A"):
        load_central_config(write_central(two_nodes, nodes="[rA.yaml, rB.yaml, rA.yaml]"))


def test_config_node_status_file_must_not_be_the_orchestrators(two_nodes: Path) -> None:
    write_node(two_nodes, "central", 3)
    path = write_central(two_nodes, nodes="[rA.yaml, rcentral.yaml]")
    with pytest.raises(ConfigError, match="would be the orchestrator's status_file"):
        load_central_config(path)
    node_b = two_nodes / "rB.yaml"
    node_b.write_text(node_b.read_text().replace("node: B", "node: ../B"))
    with pytest.raises(ConfigError, match=r"node name '\.\./B' cannot name its status file"):
        load_central_config(write_central(two_nodes))
    # with a folder of their own the name is fine
    cfg = load_central_config(write_central(
        two_nodes, f"node_status_dir: {two_nodes}/nodes\n", nodes="[rA.yaml, rcentral.yaml]"))
    assert cfg.node_status_file("central") == two_nodes / "nodes" / "central.json"


def test_cli_check(two_nodes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    level = logging.getLogger("dmano").level
    try:
        assert central_main(["check", "--config", str(write_central(two_nodes))]) == 0
        out = capsys.readouterr().out
        assert "2 node(s), 2 instance(s), objective policy, policy paper" in out
        assert central_main(["check", "--config",
                             str(write_central(two_nodes, "mgmt_rtt_ms: -1\n"))]) == 2
        assert "mgmt_rtt_ms: expected a number >= 0.0" in capsys.readouterr().err
    finally:
        logging.getLogger("dmano").setLevel(level)


# ============================================================================== planner

@pytest.mark.parametrize("name", ["paper", "inverse-cost", "cpu"])
def test_costbook_hysteresis_is_the_policys(name: str) -> None:
    policy = POLICIES[name]
    costs = [50, 51, 52, 53, 60, 61, 40, 41, 100, 97, 94, 94, 1, 3]
    book = CostBook()
    announced: int | None = None
    suppressed = 0  # changes of cost the hysteresis held back
    for cost in costs:
        expect = policy.should_announce(cost, announced)
        changed = book.update("A", "fw", cost, policy)
        if expect:
            assert changed == (cost != announced)
            announced = cost
        else:
            assert not changed
            suppressed += cost != announced
        assert book.costs[("A", "fw")] == announced
    if name == "paper":
        assert suppressed == 0  # no hysteresis: every change
    else:
        assert suppressed >= 5  # abs 2 / rel 5 %: e.g. 50 -> 51, 52 are not announced
    book.forget("A", "fw")
    assert book.update("A", "fw", 51, policy)  # first cost after a withdrawal: always
    book.reset()
    assert book.costs == {}


def test_instance_view_keeps_topology_and_only_costed_up_instances() -> None:
    fw = instance("B", "fw_b", 1, FW)
    ids = instance("B", "ids_b", 2, IDS)
    nat = instance("B", "nat_b", 3, NAT)
    fw_c = instance("C", "fw_c", 1, FW)
    ids_d = instance("D", "ids_d", 1, IDS)
    nodes = [node_config("B", [fw, ids, nat]), node_config("C", [fw_c]),
             node_config("D", [ids_d])]
    raws = router_lsas([("B", "C", 10, 10), ("C", "D", 10, 10)], routers="BCD")
    base = mirror_of(raws).view
    base.networks[IPv4Address("10.9.9.1")] = mirror_of([build_network_lsa(
        IPv4Address("10.9.9.1"), rid("B"), IPv4Address("255.255.255.0"),
        [rid("B"), rid("C")])]).view.networks[IPv4Address("10.9.9.1")]
    # an opaque LSA in the base view (e.g. a D-MANO's) is not the orchestrator's truth
    base.instances[(rid("C"), 9)] = VnfAnnouncement(9, FW, IPv4Address("10.254.1.1"), 1,
                                                    endpoint("C"))
    statuses = {"B": {"fw_b": status(fw, 30.4), "ids_b": status(ids, 0, up=False),
                      "nat_b": status(nat, 10)},
                "C": {"fw_c": status(fw_c, 0)}}  # D not polled yet
    book = CostBook()
    book.update("B", "fw_b", 120, POLICIES["paper"])
    book.update("B", "ids_b", 77, POLICIES["paper"])  # stale: the instance is down now
    book.update("C", "fw_c", 150, POLICIES["paper"])
    book.update("D", "ids_d", 150, POLICIES["paper"])  # no poll of D: not shown
    view = instance_view(base, nodes, statuses, book)  # nat_b: up, but no cost yet
    assert view.routers == base.routers and view.networks == base.networks
    assert set(view.instances) == {(rid("B"), 1), (rid("C"), 1)}
    ann = view.instances[(rid("B"), 1)]
    assert ann == VnfAnnouncement(
        instance_id=1, service_id=FW, anycast=IPv4Address("10.254.1.1"), cost=120,
        endpoint=endpoint("B"), capacity=150, load=30, state=InstanceState.UP, name="fw_b")
    view.routers.clear()  # a copy: the mirror's view is not touched
    assert base.routers


LINKS6: list[Link] = [("A", "B", 10, 10), ("A", "C", 30, 20), ("B", "D", 15, 15),
                      ("C", "D", 5, 40), ("D", "E", 10, 10), ("B", "E", 50, 45)]


def six_nodes() -> tuple[list[NodeConfig], Statuses]:
    """Six routers; F links to A one way only (A does not link back): unreachable."""
    loads = {"fw_b": (40, 30), "ids_b": (100, 80), "fw_c": (10, 5), "fw_d": (140, 95),
             "ids_d": (20, 12), "ids_d2": (0, 0), "ids_e": (75, 50), "fw_f": (0, 1)}
    insts = {
        "A": [],
        "B": [instance("B", "fw_b", 1, FW, cost=20), instance("B", "ids_b", 2, IDS)],
        "C": [instance("C", "fw_c", 1, FW, cost=12)],
        "D": [instance("D", "fw_d", 1, FW, cost=5), instance("D", "ids_d", 2, IDS),
              instance("D", "ids_d2", 3, IDS)],
        "E": [instance("E", "ids_e", 1, IDS, cost=33)],
        "F": [instance("F", "fw_f", 1, FW)],
    }
    nodes = [node_config(n, insts[n], classifier=[rule(1)] if n == "A" else [])
             for n in NAMES]
    statuses = {n.node: {i.name: status(i, *loads[i.name], up=i.name != "ids_d2")
                         for i in n.instances} for n in nodes}
    return nodes, statuses


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_same_policy_same_inputs_same_tables(name: str) -> None:
    """THE property of the baseline: the orchestrator's tables for every node are the
    ones that node's D-MANO computes from the flooded LSDB."""
    policy = POLICIES[name]
    nodes, statuses = six_nodes()
    raws = router_lsas(LINKS6, one_way=[("F", "A", 5)])
    want = dmano_tables(raws, nodes, statuses, policy)
    got = central_tables(raws, nodes, statuses, policy)
    for n in nodes:
        assert got[n.node] == want[n.node], n.node
    # ... and the case is not trivial
    a = want["A"]
    assert set(a) == {FW, IDS}
    assert {c.name for c in a[FW]} == {"fw_b", "fw_c", "fw_d"}  # not fw_f: unreachable
    assert {c.name for c in a[IDS]} == {"ids_b", "ids_d", "ids_e"}  # not ids_d2: down
    assert len({c.weight for c in a[FW]}) == 3 and all(c.weight > 0 for c in a[FW])
    fw_c = next(c for c in a[FW] if c.name == "fw_c")
    assert fw_c.network_cost == 30  # A -> C direct (A's metric 30), not C's 20
    assert [c.name for c in want["F"][FW]] == ["fw_f"] and want["F"][FW][0].local
    assert want["F"][IDS] == []  # F reaches nobody
    from_c = {c.name: c.network_cost for c in want["C"][FW]}
    assert from_c == {"fw_c": 0, "fw_d": 5, "fw_b": 20}  # C-D 5 + D-B 15; C-A-B 30


class AnnounceSession(FakeSession):
    """Records what one D-MANO announces; no echo (LSAs are flooded by the test)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.echo = False


@pytest.mark.parametrize("name", ["paper", "inverse-cost"])
def test_orchestrator_follows_real_dmanos_over_a_load_sequence(
        name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real D-MANOs (their measure-and-announce step, hysteresis included) against the
    orchestrator's poll + recompute, step by step over changing loads and a VNF that
    goes down and comes back."""
    policy = POLICIES[name]
    monkeypatch.setattr(dmano.daemon, "OspfApiSession", AnnounceSession)
    monkeypatch.setattr(orchestrator_module, "OspfApiSession", FakeSession)
    nodes, _ = six_nodes()
    nodes = [replace(n, status_file=tmp_path / f"r{n.node}" / "dmano.json") for n in nodes]
    raws = router_lsas(LINKS6, one_way=[("F", "A", 5)])
    daemons = {n.node: Dmano(n, policy, DryRunConnector()) for n in nodes}
    for d in daemons.values():
        d.liveness.watch = lambda name, pid: None  # type: ignore[method-assign]
        d.liveness.unwatch = lambda name: None  # type: ignore[method-assign]
    cfg = CentralConfig(policy=shipped_policy(name), status_file=tmp_path / "c.json",
                        node_status_dir=tmp_path / "nodes", nodes=tuple(nodes))
    orch = Orchestrator(cfg, policy, {n.node: DryRunConnector() for n in nodes})
    for raw in raws:
        orch.session.on_update(raw)  # type: ignore[attr-defined]
    by_name = {i.name: i for n in nodes for i in n.instances}
    steps: list[dict[str, float | None]] = [  # instance -> load (None: down)
        {},
        {"fw_b": 41, "fw_d": 141},
        {"fw_b": 43, "fw_c": None, "ids_e": 80},
        {"fw_b": 70, "fw_c": 12, "ids_b": 30},
        {"fw_d": 60, "ids_d": 149, "fw_b": 69},
    ]
    loads: dict[str, float | None] = {"fw_b": 40, "ids_b": 100, "fw_c": 10, "fw_d": 140,
                                      "ids_d": 20, "ids_d2": None, "ids_e": 75, "fw_f": 0}
    suppressed = 0

    def statuses_of(node: NodeConfig) -> dict[str, InstanceStatus]:
        return {i.name: status(i, loads[i.name] or 0.0, up=loads[i.name] is not None)
                for i in node.instances}

    async def go() -> None:
        nonlocal suppressed
        for n in nodes:
            async def poll(rtt_s: float, node: NodeConfig = n) -> NodePoll:
                return NodePoll(node.node, statuses_of(node))
            orch.pollers[n.node].poll = poll  # type: ignore[method-assign]
        for step in steps:
            loads.update(step)
            shared = mirror_of(raws)
            for n in nodes:
                d = daemons[n.node]
                d.monitor.poll = lambda now=None, node=n: statuses_of(node)  # type: ignore[method-assign]
                await d.measure_and_announce()
                for iid, body in d.session.desired.items():
                    shared.apply_update(build_opaque_lsa(lsa.OPAQUE_TYPE, iid, n.router_id,
                                                         body))
            await orch.poll_all()
            await orch.recompute()
            for n in nodes:
                assert orch.tables[n.node] == compute_tables(shared.view, n.router_id,
                                                             policy), (step, n.node)
            for iname, load in loads.items():
                if load is not None:
                    fresh = policy.vnf_cost(measurement(by_name[iname], load, 0.0))
                    node = next(n.node for n in nodes if by_name[iname] in n.instances)
                    suppressed += orch.costs.costs[(node, iname)] != fresh

    asyncio.run(go())
    a_fw = {c.name for c in orch.tables["A"][FW]}
    assert a_fw == {"fw_b", "fw_c", "fw_d"}
    if name == "inverse-cost":
        assert suppressed > 0  # the hysteresis held back some changes, in both
    else:
        assert suppressed == 0


@st.composite
def random_networks(draw: st.DrawFn) -> tuple[list[bytes], list[NodeConfig], Statuses,
                                               Policy]:
    routers = NAMES[:draw(st.integers(4, 6))]
    links: list[Link] = []
    one_way: list[tuple[str, str, int]] = []
    for i, a in enumerate(routers):
        for b in routers[i + 1:]:
            kind = draw(st.sampled_from(["none", "both", "both", "one-way"]))
            if kind == "both":
                links.append((a, b, draw(st.integers(1, 100)), draw(st.integers(1, 100))))
            elif kind == "one-way":
                one_way.append((a, b, draw(st.integers(1, 100))))
    nodes = []
    statuses: Statuses = {}
    for n in routers:
        insts = [instance(n, f"vnf_{n.lower()}{k}", k, draw(st.sampled_from([FW, IDS])),
                          cost=draw(st.none() | st.integers(1, 200)))
                 for k in range(1, draw(st.integers(0, 3)) + 1)]
        nodes.append(node_config(n, insts))
        statuses[n] = {i.name: status(i, draw(st.floats(0, 300)), draw(st.floats(0, 250)),
                                      up=draw(st.sampled_from([True, True, False])))
                       for i in insts}
    policy = POLICIES[draw(st.sampled_from(sorted(POLICIES)))]
    return router_lsas(links, one_way, routers), nodes, statuses, policy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_networks())
def test_same_tables_on_random_networks(
        case: tuple[list[bytes], list[NodeConfig], Statuses, Policy]) -> None:
    raws, nodes, statuses, policy = case
    want = dmano_tables(raws, nodes, statuses, policy)
    assert central_tables(raws, nodes, statuses, policy) == want


# =============================================================================== demand

def test_demand_one_chain_two_ingresses() -> None:
    chain = (ChainConf(1, (FW, IDS)),)
    nodes = [
        node_config("A", [], classifier=[rule(1, "10.1.100.0/24"), rule(1, "10.1.101.0/24")],
                    chains=chain),
        node_config("B", [instance("B", "fw_b", 1, FW)], classifier=[rule(1)], chains=chain),
        node_config("C", [instance("C", "fw_c", 1, FW), instance("C", "ids_c", 2, IDS)],
                    chains=chain),
        node_config("D", [instance("D", "ids_d", 1, IDS)], chains=chain),
    ]
    demand = chain_demand(nodes, {"A": 100.0, "B": 50.0, "D": 7.0},
                          {("B", "fw_b"): 60.0, ("C", "fw_c"): 80.0, ("C", "ids_c"): 90.0,
                           ("D", "ids_d"): 40.0, ("B", "gone"): 5.0})
    # two rules of one chain on A: all of A's traffic to FW; D classifies nothing
    assert demand == {("A", FW): 100.0, ("B", FW): 50.0,
                      ("B", IDS): 60.0, ("C", IDS): 80.0}  # FW's output to IDS, there
    assert chain_demand([], {}, {}) == {}
    negative = chain_demand(nodes, {"A": -3.0}, {("B", "fw_b"): -1.0})
    assert set(negative) == set(demand) and not any(negative.values())


def test_demand_service_ending_one_chain_continuing_another() -> None:
    chains = (ChainConf(1, (FW, IDS)), ChainConf(2, (IDS, NAT)))
    assert successors(c.services for c in chains) == {FW: [IDS], IDS: [END, NAT], NAT: [END]}
    nodes = [
        node_config("A", [], classifier=[rule(1)], chains=chains),
        node_config("B", [instance("B", "ids_b", 1, IDS), instance("B", "nat_b", 2, NAT)],
                    chains=chains),
    ]
    demand = chain_demand(nodes, {"A": 10.0}, {("B", "ids_b"): 60.0, ("B", "nat_b"): 8.0})
    # IDS occurs twice: at the end of chain 1 (leaves) and before NAT in chain 2
    assert demand == {("A", FW): 10.0, ("B", NAT): 30.0}


def test_demand_classifier_naming_two_chains() -> None:
    chains = (ChainConf(1, (FW, IDS)), ChainConf(2, (IDS,)))
    # the first node forwards nothing and has no chains: the others' chains count
    nodes = [
        node_config("E", [], chains=()),
        node_config("A", [], chains=chains,
                    classifier=[rule(1, "10.1.100.0/24"), rule(2, "10.1.101.0/24"),
                                rule(1, "10.1.102.0/24")]),
        node_config("B", [instance("B", "fw_b", 1, FW)], chains=chains),
    ]
    demand = chain_demand(nodes, {"A": 90.0}, {("B", "fw_b"): 20.0})
    assert demand == {("A", FW): 45.0, ("A", IDS): 45.0, ("B", IDS): 20.0}


# =============================================================================== poller

@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = start_child()
    yield proc
    stop_child(proc)


def test_poller_counts_and_a_missing_counters_file(
        tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    fw = instance("B", "fw_b", 1, FW, folder=tmp_path)
    ids = instance("B", "ids_b", 2, IDS, folder=tmp_path)
    cfg = node_config("B", [fw, ids], tmp_path)
    write_counters(fw.stats, child.pid, rate=30.0)
    counters = PollCounters()
    poller = NodePoller(cfg, counters)
    other = NodePoller(node_config("C", [], tmp_path), counters)

    poll = asyncio.run(poller.poll(0.0))
    assert poll.node == "B" and set(poll.statuses) == {"fw_b", "ids_b"}
    assert poll.statuses["fw_b"].up and poll.statuses["fw_b"].pid == child.pid
    assert poll.statuses["fw_b"].measurement.load == 30.0
    down = poll.statuses["ids_b"]
    assert not down.up and "no counters file" in down.reason
    request = len(json.dumps({"get": "vnf_counters", "node": "B"}).encode())
    reply = 2 + (fw.stats.stat().st_size + 1) + (len("ids_b") + 16)
    assert counters.as_dict() == {"requests": 1, "replies": 1, "request_bytes": request,
                                  "reply_bytes": reply}
    asyncio.run(poller.poll(0.0))
    asyncio.run(other.poll(0.0))  # one counter for every node's polls
    assert counters.requests == 3 and counters.replies == 3
    assert counters.request_bytes == 2 * request + len(
        json.dumps({"get": "vnf_counters", "node": "C"}).encode())
    assert counters.reply_bytes == 2 * reply + 2


def test_poller_reads_after_the_rtt(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    fw = instance("B", "fw_b", 1, FW, folder=tmp_path)
    cfg = node_config("B", [fw], tmp_path)
    write_counters(fw.stats, child.pid)
    counters = PollCounters()
    poller = NodePoller(cfg, counters)
    rtt = 0.15

    async def go() -> tuple[float, NodePoll]:
        start = time.monotonic()
        task = asyncio.ensure_future(poller.poll(rtt))
        await asyncio.sleep(0.03)
        assert counters.requests == 1 and counters.replies == 0  # the request is out
        fw.stats.unlink()  # the VNF stops while the request is under way
        poll = await task
        return time.monotonic() - start, poll

    took, poll = asyncio.run(go())
    assert took >= rtt * 0.95
    assert not poll.statuses["fw_b"].up  # what it sees is no older than the RTT
    assert counters.replies == 1


# ========================================================================= orchestrator

VNFS = ("ids_a", "fw_b", "fw_c", "ids_c")
LINKS3: list[Link] = [("A", "B", 10, 10), ("B", "C", 10, 10), ("A", "C", 50, 50)]
RATES = {"ids_a": 10.0, "fw_b": 30.0, "fw_c": 90.0, "ids_c": 50.0}
LOCAL16 = {n: MemberKey("local", port=16, mac=f"02:00:00:{NAMES.index(n) + 1:02x}:01:01")
           for n in "ABC"}
LOCAL17_C = MemberKey("local", port=17, mac="02:00:00:03:02:01")


@dataclass
class Net:
    """A three-node network, its VNF processes and the central configuration."""

    folder: Path
    nodes: tuple[NodeConfig, ...]
    procs: dict[str, subprocess.Popen[bytes]]

    def inst(self, name: str) -> InstanceConf:
        return next(i for n in self.nodes for i in n.instances if i.name == name)

    def config(self, **kwargs: Any) -> CentralConfig:
        central = self.folder / "central"
        return CentralConfig(policy=shipped_policy("paper"),
                             status_file=central / "central.json", node_status_dir=central,
                             nodes=self.nodes, **kwargs)

    def kill(self, name: str) -> None:
        stop_child(self.procs[name])  # killed and reaped


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    vnf = tmp_path / "vnf"
    vnf.mkdir()
    nodes = (
        node_config("A", [instance("A", "ids_a", 1, IDS, port=16, folder=vnf)], tmp_path,
                    classifier=[rule(1, "10.1.100.0/24")]),
        node_config("B", [instance("B", "fw_b", 1, FW, port=16, folder=vnf)], tmp_path),
        node_config("C", [instance("C", "fw_c", 1, FW, port=16, folder=vnf),
                          instance("C", "ids_c", 2, IDS, port=17, folder=vnf)], tmp_path),
    )
    procs = {name: start_child() for name in VNFS}
    n = Net(tmp_path, nodes, procs)
    try:
        for name, proc in procs.items():
            write_counters(n.inst(name).stats, proc.pid, rate=RATES[name])
        yield n
    finally:
        for proc in procs.values():
            stop_child(proc)


def make_orch(monkeypatch: pytest.MonkeyPatch, cfg: CentralConfig,
              writers: dict[str, Any] | None = None, policy: Policy | None = None,
              links: Sequence[Link] = LINKS3) -> Orchestrator:
    monkeypatch.setattr(orchestrator_module, "OspfApiSession", FakeSession)
    writers = writers or {n.node: DryRunConnector() for n in cfg.nodes}
    orch = Orchestrator(cfg, policy or load_policy(cfg.policy), writers)
    assert isinstance(orch.session, FakeSession) and orch.session.connected
    for raw in router_lsas(links, routers="ABC"):
        orch.session.on_update(raw)
    return orch


def state(orch: Orchestrator, node: str) -> DesiredState:
    writer = orch.writers[node]
    assert isinstance(writer, DryRunConnector)
    return writer.state


def writes(orch: Orchestrator) -> dict[str, int]:
    return {node: w.writes for node, w in orch.writers.items()}


async def poll_and_recompute(orch: Orchestrator) -> None:
    await orch.poll_all()
    await orch.recompute()


def node_status(orch: Orchestrator, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(orch.cfg.node_status_file(node).read_text())
    return data


def test_every_connector_gets_its_tables(monkeypatch: pytest.MonkeyPatch, net: Net) -> None:
    orch = make_orch(monkeypatch, net.config())
    before = time.time()
    asyncio.run(poll_and_recompute(orch))
    for n in net.nodes:
        assert state(orch, n.node) == desired_state(n, orch.tables[n.node])
        assert orch.last_error[n.node] == ""
    # paper policy: cost = remaining capacity (150 - rate), weight ~ path cost
    a_fw = {c.name: c for c in orch.tables["A"][FW]}
    assert (a_fw["fw_b"].path_cost, a_fw["fw_c"].path_cost) == (10 + 120, 20 + 60)
    a = state(orch, "A")
    assert a.groups[FW] == {remote("B"): 5, remote("C"): 3}  # 130 : 80 -> 40 : 24 of 64
    assert set(a.groups[IDS]) == {LOCAL16["A"], remote("C")}
    assert a.selects[(FW, 0)] == FW and a.classifier
    assert a.sff == {(1, 255): ("to_service", FW), (1, 254): ("to_service", IDS),
                     (1, 253): ("end_of_chain", 0), (2, 255): ("to_service", IDS),
                     (2, 254): ("end_of_chain", 0)}
    b = state(orch, "B")
    assert set(b.groups[FW]) == {LOCAL16["B"], remote("C")}
    assert set(b.groups[LOCAL_GROUP_BASE + FW]) == {LOCAL16["B"]}
    assert set(b.groups[IDS]) == {remote("A"), remote("C")} and not b.classifier
    c = state(orch, "C")
    assert set(c.groups[FW]) == {LOCAL16["C"], remote("B")}
    assert set(c.groups[IDS]) == {LOCAL17_C, remote("A")}
    assert all(w > 0 for s in (a, b, c) for g in s.groups.values() for w in g.values())

    # per node: the D-MANO's status form, rendered by ``python -m dmano show --status``
    for n in net.nodes:
        st_ = node_status(orch, n.node)
        assert st_["node"] == n.node and st_["router_id"] == str(n.router_id)
        assert st_["control"] == "centralized" and st_["running"]
        assert st_["updated"] >= before and st_["connector"]["writes"] > 0
        assert st_["connector"]["writes"] == orch.writers[n.node].writes
        assert st_["connector"]["last_error"] == ""
        assert [s["service_id"] for s in st_["services"]] == sorted(orch.tables[n.node])
        for svc in st_["services"]:
            rows = orch.tables[n.node][svc["service_id"]]
            assert [(c["name"], c["weight"]) for c in svc["candidates"]] == [
                (c.name, c.weight) for c in rows]
        text = render_status(st_)
        assert f"node {n.node} (router id {n.router_id}), policy paper, running" in text
        assert "[centralized: tables from the orchestrator" in text
        assert "service 1 (FW) anycast 10.254.1.1" in text
    a_st = node_status(orch, "A")
    assert a_st["local_instances"]["ids_a"] == {
        "up": True, "reason": "", "pid": net.procs["ids_a"].pid, "load": 10.0,
        "cpu": a_st["local_instances"]["ids_a"]["cpu"], "cost": 140}
    assert "ids_a up load 10 cost 140" in render_status(a_st)
    central = json.loads(orch.cfg.status_file.read_text())
    assert central["control_traffic"]["polls"]["requests"] == 3
    assert central["control_traffic"]["poll_rounds"] == 1
    assert central["control_traffic"]["lsdb_feed"]["updates"] == 3
    assert central["nodes"]["C"]["instances_up"] == 2


def test_a_dead_vnf_is_seen_only_by_the_next_poll(monkeypatch: pytest.MonkeyPatch,
                                                   net: Net) -> None:
    orch = make_orch(monkeypatch, net.config())
    asyncio.run(poll_and_recompute(orch))
    assert remote("C") in state(orch, "A").groups[FW]
    net.kill("fw_c")

    asyncio.run(orch.recompute())  # no poll since: the orchestrator does not know
    assert "fw_c" in {c.name for c in orch.tables["A"][FW]}
    assert remote("C") in state(orch, "A").groups[FW]
    assert LOCAL16["C"] in state(orch, "C").groups[FW]

    asyncio.run(poll_and_recompute(orch))
    for n in net.nodes:
        assert "fw_c" not in {c.name for rows in orch.tables[n.node].values() for c in rows}
        assert state(orch, n.node) == desired_state(n, orch.tables[n.node])
    assert state(orch, "A").groups[FW] == {remote("B"): 1}
    assert state(orch, "B").groups[FW] == {LOCAL16["B"]: 1}
    assert state(orch, "C").groups[FW] == {remote("B"): 1}
    assert LOCAL_GROUP_BASE + FW not in state(orch, "C").groups
    assert remote("C") in state(orch, "A").groups[IDS]  # ids_c still up
    fw_c = node_status(orch, "C")["local_instances"]["fw_c"]
    assert not fw_c["up"] and fw_c["cost"] is None
    assert fw_c["reason"] == f"VNF process {net.procs['fw_c'].pid} is gone"


class FlakyWriter(DryRunConnector):
    """A dry-run connector whose writes can fail after applying ``apply`` ops."""

    kind = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.fail = ""
        self.apply = 0
        self.reads = 0
        self.batches: list[list[Op]] = []

    def read_state(self) -> DesiredState:
        self.reads += 1
        return super().read_state()

    def write(self, ops: list[Op]) -> None:
        self.batches.append(list(ops))
        if self.fail:
            super().write(ops[:self.apply])
            raise RuntimeError(self.fail)
        super().write(ops)


def test_a_failing_connector_is_retried_and_resynced(monkeypatch: pytest.MonkeyPatch,
                                                     net: Net) -> None:
    writers = {n.node: FlakyWriter() for n in net.nodes}
    writers["B"].fail, writers["B"].apply = "connector of B unreachable", 5
    orch = make_orch(monkeypatch, net.config(), writers)
    asyncio.run(poll_and_recompute(orch))
    assert orch.last_error == {"A": "", "B": "connector of B unreachable", "C": ""}
    for node in "AC":
        assert writers[node].state == desired_state(orch.nodes[node], orch.tables[node])
    want_b = desired_state(orch.nodes["B"], orch.tables["B"])
    assert writers["B"].writes == 5 and writers["B"].state != want_b
    st_b = node_status(orch, "B")
    assert st_b["connector"]["last_error"] == "connector of B unreachable"
    assert "error: connector of B unreachable" in render_status(st_b)
    assert node_status(orch, "A")["connector"]["last_error"] == ""
    central = json.loads(orch.cfg.status_file.read_text())
    assert central["nodes"]["B"]["last_error"] == "connector of B unreachable"
    assert central["nodes"]["B"]["written_at"] is None
    assert central["nodes"]["A"]["written_at"] is not None

    writers["B"].fail = ""
    before = writes(orch)
    asyncio.run(orch.recompute())
    assert writers["B"].reads == 2  # read back before writing again
    assert writers["A"].reads == 1 and writers["C"].reads == 1
    assert writers["B"].state == want_b and orch.last_error["B"] == ""
    # only what the failed batch did not apply
    assert writers["B"].batches[-1] == diff(_applied(writers["B"].batches[0][:5]), want_b)
    assert writers["B"].writes == len(writers["B"].batches[0])
    assert writes(orch)["A"] == before["A"] and writes(orch)["C"] == before["C"]


def _applied(ops: list[Op]) -> DesiredState:
    probe = DryRunConnector()
    probe.write(ops)
    return probe.state


def test_nothing_changed_nothing_written(monkeypatch: pytest.MonkeyPatch, net: Net) -> None:
    orch = make_orch(monkeypatch, net.config())
    asyncio.run(poll_and_recompute(orch))
    first = writes(orch)
    stamps = dict(orch.written_at)
    assert all(first.values())
    asyncio.run(orch.recompute())
    asyncio.run(poll_and_recompute(orch))  # same loads: same costs, same tables
    assert writes(orch) == first and orch.written_at == stamps
    assert orch.table_changes == {"A": 1, "B": 1, "C": 1}


def test_the_management_rtt_delays_polls_and_writes(monkeypatch: pytest.MonkeyPatch,
                                                    net: Net) -> None:
    rtt = 0.3
    orch = make_orch(monkeypatch, net.config(mgmt_rtt_ms=rtt * 1000))

    async def timed(step: Callable[[], Any]) -> float:
        start = time.monotonic()
        await step()
        return time.monotonic() - start

    async def go() -> tuple[float, float, float]:
        return (await timed(orch.poll_all), await timed(orch.recompute),
                await timed(orch.recompute))

    poll, write, idle = asyncio.run(go())
    assert rtt * 0.95 <= poll < 3 * rtt  # every node at once (one after the other: 3 rtt)
    assert rtt * 0.95 <= write < 3 * rtt  # every connector at once
    assert all(orch.writers[n].writes for n in orch.nodes)
    assert idle < rtt  # nothing to write: no round trip


def test_policy_reload_keeps_every_instance(monkeypatch: pytest.MonkeyPatch,
                                            net: Net) -> None:
    inverse = net.folder / "inverse.yaml"
    inverse.write_text(shipped_policy("inverse-cost").read_text())
    cfg = replace(net.config(), policy=inverse)
    orch = make_orch(monkeypatch, cfg, policy=POLICIES["paper"])
    asyncio.run(poll_and_recompute(orch))
    orch.changed.clear()
    orch.reload_policy()
    assert orch.policy.name == "inverse-cost" and orch.changed.is_set()
    asyncio.run(orch.recompute())  # before the next poll (e.g. an LSA update)
    a_fw = {c.name: c.vnf_cost for c in orch.tables["A"][FW]}
    assert a_fw == {"fw_b": 20, "fw_c": 60}  # utilisation costs of the last poll
    assert set(state(orch, "A").groups[FW]) == {remote("B"), remote("C")}
    inverse.write_text("cost: {function: nonsense}\n")
    orch.reload_policy()  # a bad file is reported and ignored
    assert orch.policy.name == "inverse-cost"


def test_writes_wait_for_the_lsdb_after_an_ospf_api_reconnect(
        monkeypatch: pytest.MonkeyPatch, net: Net) -> None:
    orch = make_orch(monkeypatch, net.config())
    asyncio.run(poll_and_recompute(orch))
    held = {n: state(orch, n) for n in orch.nodes}
    first = writes(orch)
    session = orch.session
    assert isinstance(session, FakeSession)
    session.connections = 2  # ospfd restarted: connected again, the LSDB dump follows
    orch._reset()
    raws = router_lsas(LINKS3, routers="ABC")
    asyncio.run(orch.recompute())
    session.on_update(raws[0])
    asyncio.run(orch.recompute())
    assert writes(orch) == first and {n: state(orch, n) for n in orch.nodes} == held
    for raw in raws[1:]:
        session.on_update(raw)
    asyncio.run(poll_and_recompute(orch))
    assert orch.hold_until == 0.0 and writes(orch) == first
    net.kill("fw_b")  # writes work again
    asyncio.run(poll_and_recompute(orch))
    assert state(orch, "A").groups[FW] == {remote("C"): 1}


def test_the_loop_runs_and_stops(monkeypatch: pytest.MonkeyPatch, net: Net) -> None:
    orch = make_orch(monkeypatch, net.config(poll_period_s=0.05))

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(orch.run(stop))
        deadline = time.monotonic() + 10
        while orch.poll_rounds < 3 or FW not in state(orch, "A").groups:
            assert time.monotonic() < deadline, "no poll or no write"
            await asyncio.sleep(0.01)
        net.kill("fw_c")
        while remote("C") in state(orch, "A").groups[FW]:
            assert time.monotonic() < deadline, "fw_c never left A's group"
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(go())
    assert not json.loads(orch.cfg.status_file.read_text())["running"]
    assert not node_status(orch, "A")["running"]


def test_the_loop_ends_when_polling_fails(monkeypatch: pytest.MonkeyPatch, net: Net) -> None:
    orch = make_orch(monkeypatch, net.config(poll_period_s=0.05))
    rounds = 0
    poll_all = orch.poll_all

    async def failing() -> None:
        nonlocal rounds
        rounds += 1
        if rounds > 2:
            raise RuntimeError("poll bug")
        await poll_all()

    orch.poll_all = failing  # type: ignore[method-assign]

    async def go() -> None:
        await asyncio.wait_for(orch.run(asyncio.Event()), 10)

    with pytest.raises(RuntimeError, match="poll bug"):
        asyncio.run(go())
    assert not json.loads(orch.cfg.status_file.read_text())["running"]
