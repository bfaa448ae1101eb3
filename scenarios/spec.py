"""The scenario file format: parsing and validation into frozen dataclasses.

A scenario says what to run on a topology: which policy the D-MANOs use, what traffic
the hosts send, which events happen when (instances started, stopped or killed, links
and nodes failed and restored, policy parameters and load changed), what to measure and
how often to repeat it. Like topology files, scenario files are read through
:mod:`dmano.yamlconf`: every mistake raises :class:`dmano.yamlconf.ConfigError` naming
the file, the line, the field and what was expected, and unknown keys are errors. Names
of instances, links, nodes, hosts and chains are checked against the topology, and the
timeline is played through once so that, e.g., restoring a link that never failed is an
error at load time, not a surprise half-way through a run.

Example (``scenarios/paper_fig4.yaml`` is the paper's Section VI)::

    name: paper_fig4                  # optional, default: the file name
    description: Section VI           # optional
    topology: ../topologies/paper_eval.yaml   # relative to this file
    policy: paper                     # paper | inverse-cost | static, or a path (.yaml)
    dmano_period_s: 2                 # optional, default: the policy's period_s
    time_scale: 0.5                   # run 300 s of scenario time in 150 s (see below)
    duration_s: 300
    repetitions: 1                    # optional, default 1
    seed: 1                           # optional, default 1; run r uses seed + r - 1
    output: results                   # optional, default results (relative to the cwd)
    traffic:
      - name: main                    # optional, default class1, class2, ...
        source: src                   # a host with role source or both
        destination: sink             # a host with role sink or both
        chain: 1                      # a chain's spi, or none (plain IP)
        arrival: constant             # constant | poisson
        flows_per_s: 2                # arrival rate of new flows
        flow_duration_s: 50
        packets_per_s: 2              # per flow = processing units per flow (NOT scaled)
        payload_bytes: 64             # optional, 20..1472, default 64 (UDP payload, which
                                      # starts with the generator's 20-byte probe header)
        dst_port: 5000                # optional, default 5000
        src_ports: 10000-59999        # optional, each flow draws a distinct one
        start_s: 0                    # optional, first arrival (default 0)
        end_s: 300                    # optional, no arrivals from then on (default duration)
    events:                           # in time order
      - {at_s: 150, action: start_instance, instance: svc_d, label: "D starts"}
    measure:
      sample_period_s: 2              # optional, default 1
      warmup_s: 50                    # optional, default 0; windows must start after it
      loss_window_s: 10               # optional, default 10: loss is counted this long
                                      # before and after each event
      windows:                        # steady-state windows for the report
        - {name: phase1, start_s: 100, end_s: 150, reference: {svc_b: 50, svc_c: 50}}
        - {name: phase2, start_s: 250, end_s: 300}

Events (``at_s`` in ``[0, duration_s)``, non-decreasing; ``label`` optional everywhere):

=====================  ================================================================
``start_instance``     ``instance``: start a stopped instance (``start: false`` in the
                       topology, or stopped earlier)
``stop_instance``      ``instance``: stop it gracefully (SIGTERM; its LSA is withdrawn)
``fail_instance``      ``instance``: kill it (SIGKILL, no goodbye)
``restore_instance``   ``instance``: restart an instance killed by ``fail_instance``
``fail_link``          ``link: A-B`` (either order): take the router link down
``restore_link``       ``link``: bring a failed link back
``fail_node``          ``node``: kill the node's router, connector, D-MANO and VNFs
``restore_node``       ``node``: restart them (the instances that ran before it failed)
``set_policy_param``   ``name``, ``value``: change one policy field on every node, by
                       its dotted name: ``period_s``, ``max_group_size``,
                       ``hysteresis.abs``, ``hysteresis.rel``, ``cost.<parameter>`` of
                       the policy's cost function, ``weight.function``
``set_load``           ``traffic`` (a class name) and at least one of ``flows_per_s``,
                       ``packets_per_s``: new rates for flows that start from then on
=====================  ================================================================

Time scaling
============

``time_scale`` (``k`` > 0) runs the scenario faster (``k < 1``) or slower than written.
Every number in the file is in *scenario time* (for the paper's files, the paper's own
seconds); the runner turns them into wall-clock time by one rule:

* **times multiply by k**: ``duration_s``, ``flow_duration_s``, ``start_s``/``end_s``,
  every event's ``at_s``, ``dmano_period_s`` (and the policy's ``period_s``, also when
  changed by ``set_policy_param``), ``sample_period_s``, ``warmup_s``, ``loss_window_s``,
  window bounds;
* **rates of events divide by k**: ``flows_per_s`` (flow arrivals);
* **per-flow packet rates are NOT scaled**: ``packets_per_s`` is the load a flow puts on
  a VNF, in the same processing units as the instances' ``capacity`` and (through the
  remaining-capacity cost) as the link costs. Scaling it would change the experiment.

What stays the same under this rule: the number of concurrent flows ``flows_per_s *
flow_duration_s`` (100 in the paper), hence the offered load (200 units/s against a
capacity of 150 per instance) and the VNF costs it produces; the number of new flows
placed per D-MANO period (``flows_per_s * period_s`` = 4), which is what the cost ->
weight -> load loop responds to; and the number of samples per window. So shares,
costs and weights at steady state, and the shape of the transients measured in periods,
are the same as in the unscaled experiment. What changes: a flow sends ``k`` times fewer
packets per D-MANO period (``packets_per_s * period_s * k``), so the load each VNF
measures over one period is noisier (a warning is logged below one packet per flow per
period); and the system's own time constants are not scaled (OSPF hello/dead and LSA
timers, process start-up, the VNF's rate window), so they weigh ``1/k`` times more in
scenario time. That is why a wall-clock D-MANO period below
:data:`MIN_WALL_PERIOD_S` is refused: an LSA takes tens of milliseconds to spread.

All times written by the runner (``t_s`` columns of the CSV outputs, see
:mod:`scenarios.figures`) are in scenario time, so results at any scale are plotted on
the paper's axes; ``packets_per_s`` there are wall-clock rates, which are the file's
units because per-flow rates are not scaled.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dmano.policy import Policy, load_policy, policy_from_data, shipped_policy
from dmano.yamlconf import ConfigError, Fields, load_yaml
from topologies.addressing import host_addresses
from topologies.spec import Topology, load_topology

log = logging.getLogger(__name__)

SHIPPED_POLICIES = ("paper", "inverse-cost", "static")
ARRIVALS = ("constant", "poisson")
INSTANCE_ACTIONS = ("start_instance", "stop_instance", "fail_instance", "restore_instance")
LINK_ACTIONS = ("fail_link", "restore_link")
NODE_ACTIONS = ("fail_node", "restore_node")
ACTIONS = (*INSTANCE_ACTIONS, *LINK_ACTIONS, *NODE_ACTIONS, "set_policy_param", "set_load")
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,31}"
NAME_HINT = "a name of 1-32 letters, digits, '_' or '-' starting with a letter"
MAX_PAYLOAD = 1472  # 1500-byte inner IPv4 packet minus IPv4 and UDP headers
MIN_PAYLOAD = 20  # the traffic generator's probe header (scenarios.traffic.wire)
MIN_WALL_PERIOD_S = 0.1  # the D-MANO loop may not run faster than this (wall clock)
MIN_WALL_SAMPLE_S = 0.05  # nor the runner's sampling
DEFAULT_SRC_PORTS = (10000, 59999)
_EPS = 1e-9


# -- the dataclasses ------------------------------------------------------------------------

@dataclass(frozen=True)
class TrafficClass:
    """One traffic class; times and ``flows_per_s`` in scenario time."""

    name: str
    source: str  # host name
    destination: str  # host name
    chain: int | None  # spi, None = plain IP (no classifier rule may match)
    arrival: str  # constant | poisson
    flows_per_s: float
    flow_duration_s: float
    packets_per_s: float  # per flow; processing units; never scaled
    payload_bytes: int = 64
    dst_port: int = 5000
    src_ports: tuple[int, int] = DEFAULT_SRC_PORTS
    start_s: float = 0.0
    end_s: float = 0.0
    index: int = 0

    @property
    def concurrent_flows(self) -> float:
        """Mean number of flows alive at steady state (Little's law), scale-invariant."""
        return self.flows_per_s * self.flow_duration_s

    @property
    def load_units_per_s(self) -> float:
        """Offered load at steady state, in processing units (packets) per second."""
        return self.concurrent_flows * self.packets_per_s


@dataclass(frozen=True)
class Event:
    """One timeline event, in scenario time; only the fields of its action are set."""

    at_s: float
    action: str
    instance: str | None = None
    link: tuple[str, str] | None = None  # as written (a, b)
    node: str | None = None
    name: str | None = None  # set_policy_param: dotted policy field
    value: float | str | None = None  # set_policy_param
    traffic: str | None = None  # set_load
    flows_per_s: float | None = None  # set_load, scenario time
    packets_per_s: float | None = None  # set_load, per flow, not scaled
    label: str = ""
    index: int = 0  # position in the file
    policy: Policy | None = None  # set_policy_param: the policy from then on (scenario time)

    @property
    def target(self) -> str:
        """What the event acts on, as written to ``events.csv`` (``detail``)."""
        if self.instance is not None:
            return self.instance
        if self.link is not None:
            return f"{self.link[0]}-{self.link[1]}"
        if self.node is not None:
            return self.node
        if self.action == "set_policy_param":
            return f"{self.name}={self.value}"
        parts = [f"{self.traffic}"]
        if self.flows_per_s is not None:
            parts.append(f"flows_per_s={self.flows_per_s:g}")
        if self.packets_per_s is not None:
            parts.append(f"packets_per_s={self.packets_per_s:g}")
        return " ".join(parts)

    def describe(self) -> str:
        return self.label or f"{self.action} {self.target}"


@dataclass(frozen=True)
class Window:
    """A steady-state window of the report, in scenario time: ``(start_s, end_s]``."""

    name: str
    start_s: float
    end_s: float
    reference: tuple[tuple[str, float], ...] = ()  # (instance, expected share in %)

    @property
    def reference_map(self) -> dict[str, float]:
        return dict(self.reference)

    def contains(self, t_s: float) -> bool:
        return self.start_s + _EPS < t_s <= self.end_s + _EPS


@dataclass(frozen=True)
class Measure:
    sample_period_s: float = 1.0
    warmup_s: float = 0.0
    loss_window_s: float = 10.0
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True)
class TimelineState:
    """What is up and which rates apply after the events up to some time."""

    running: frozenset[str]  # instances running (or that will run once their node is back)
    failed_instances: frozenset[str]
    failed_links: frozenset[tuple[str, str]]  # sorted name pairs
    failed_nodes: frozenset[str]
    policy: Policy
    rates: tuple[tuple[str, float, float], ...]  # (class, flows_per_s, packets_per_s)

    def live_instances(self, topo: Topology) -> frozenset[str]:
        """Instances actually processing: running and on a node that is up."""
        nodes = {i.name: i.node for i in topo.instances}
        return frozenset(i for i in self.running if nodes[i] not in self.failed_nodes)

    def rate(self, traffic: str) -> tuple[float, float]:
        for name, flows, packets in self.rates:
            if name == traffic:
                return flows, packets
        raise KeyError(traffic)


@dataclass(frozen=True)
class PlannedFlow:
    """One flow the generator must send; see :func:`flow_schedule`."""

    flow_id: int
    traffic: str
    start_s: float  # scenario time
    duration_s: float  # scenario time
    start_wall_s: float  # wall-clock seconds after the scenario's t = 0
    duration_wall_s: float
    packets_per_s: float  # wall clock (= scenario file, not scaled)
    phase_wall_s: float  # first packet this long after start_wall_s, in [0, 1/pps)
    src_port: int
    dst_port: int
    payload_bytes: int

    @property
    def first_packet_wall_s(self) -> float:
        """When the first packet is due: the start a generator should be given."""
        return self.start_wall_s + self.phase_wall_s


@dataclass(frozen=True)
class ArrivalSegment:
    """A stretch of constant arrival rate of one class, in wall-clock units."""

    traffic: str
    arrival: str  # constant | poisson
    start_wall_s: float
    until_wall_s: float  # no arrival at or after this time
    flows_per_wall_s: float
    flow_duration_wall_s: float
    packets_per_s: float  # per flow, not scaled
    payload_bytes: int
    dst_port: int


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    topology: Topology
    policy: Policy  # as used at t = 0, scenario time (period_s not scaled)
    policy_ref: str  # as written: a shipped name or a path
    time_scale: float
    duration_s: float
    traffic: tuple[TrafficClass, ...]
    events: tuple[Event, ...] = ()
    measure: Measure = field(default_factory=Measure)
    repetitions: int = 1
    seed: int = 1
    output: Path = Path("results")
    description: str = ""
    states: tuple[tuple[float, TimelineState], ...] = ()  # state after each event

    # -- scaling ---------------------------------------------------------------------------
    def wall(self, t_s: float) -> float:
        """Scenario time (or duration) -> wall-clock seconds."""
        return t_s * self.time_scale

    def scenario_time(self, wall_s: float) -> float:
        """Wall-clock seconds since t = 0 -> scenario time (the CSVs' ``t_s``)."""
        return wall_s / self.time_scale

    def wall_rate(self, per_s: float) -> float:
        """An event rate (flow arrivals) in scenario time -> per wall-clock second."""
        return per_s / self.time_scale

    @property
    def wall_duration_s(self) -> float:
        return self.wall(self.duration_s)

    def wall_policy(self, policy: Policy | None = None) -> Policy:
        """The policy to give the D-MANOs: ``period_s`` in wall-clock seconds."""
        p = policy if policy is not None else self.policy
        return replace(p, period_s=self.wall(p.period_s))

    def scaling_summary(self) -> str:
        """One line per scaled quantity, for logs and reports."""
        k = self.time_scale
        lines = [f"time_scale {k:g}: {self.duration_s:g} s of scenario time in "
                 f"{self.wall_duration_s:g} s",
                 f"D-MANO period {self.policy.period_s:g} s -> "
                 f"{self.wall(self.policy.period_s):g} s",
                 f"sample period {self.measure.sample_period_s:g} s -> "
                 f"{self.wall(self.measure.sample_period_s):g} s"]
        for c in self.traffic:
            lines.append(
                f"traffic {c.name}: {c.flows_per_s:g} flows/s -> {self.wall_rate(c.flows_per_s):g}"
                f" flows/s, flows of {c.flow_duration_s:g} s -> {self.wall(c.flow_duration_s):g}"
                f" s, {c.packets_per_s:g} packets/s per flow (not scaled); "
                f"{c.concurrent_flows:g} concurrent flows, {c.load_units_per_s:g} units/s")
        return "\n".join(lines)

    # -- timeline --------------------------------------------------------------------------
    def state_at(self, t_s: float) -> TimelineState:
        """The state after every event with ``at_s <= t_s``."""
        state = self.states[0][1]
        for at, st in self.states[1:]:
            if at <= t_s + _EPS:
                state = st
            else:
                break
        return state

    def rep_seed(self, repetition: int) -> int:
        """Seed of run ``repetition`` (1-based): ``seed + repetition - 1``."""
        return self.seed + repetition - 1

    def traffic_class(self, name: str) -> TrafficClass:
        return next(c for c in self.traffic if c.name == name)


# -- loading --------------------------------------------------------------------------------

def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (and the topology and policy it names)."""
    path = Path(path)
    return parse_scenario(load_yaml(path), path)


def parse_scenario(data: object, path: Path) -> Scenario:
    with Fields(data, path, "") as top:
        name = top.str("name", default=path.stem, pattern=NAME_PATTERN, hint=NAME_HINT)
        description = top.str("description", default="")
        topo = _topology(top, path)
        policy_ref, policy = _policy(top, path)
        period = top.number("dmano_period_s", default=None, lo=0, lo_open=True, hi=3600)
        if period is not None:
            policy = replace(policy, period_s=period)
        time_scale = top.number("time_scale", lo=0, lo_open=True, hi=1000)
        duration = top.number("duration_s", lo=0, lo_open=True, hi=7 * 86400)
        _check_wall_period(top, "dmano_period_s" if period is not None else "time_scale",
                           policy.period_s, time_scale)
        traffic = _read_list(top, "traffic", lambda f, i: _traffic(f, i, topo, duration),
                             min_len=1)
        _unique(top, "traffic", [c.name for c in traffic])
        events, states = _timeline(top, topo, policy, time_scale, duration, traffic)
        measure = _measure(top, topo, duration, time_scale, states)
        repetitions = top.int("repetitions", default=1, lo=1, hi=1000)
        seed = top.int("seed", default=1, lo=0, hi=2**32 - 1)
        output = Path(top.str("output", default="results"))
    scenario = Scenario(
        name=name, path=path, topology=topo, policy=policy, policy_ref=policy_ref,
        time_scale=time_scale, duration_s=duration, traffic=tuple(traffic),
        events=tuple(events), measure=measure, repetitions=repetitions, seed=seed,
        output=output, description=description, states=tuple(states),
    )
    _warn_noisy_load(scenario)
    return scenario


def _read_list(top: Fields, key: str, reader: Callable[[Fields, int], Any],
               min_len: int = 0) -> list[Any]:
    """Like ``Fields.items`` but the reader also gets the item's index."""
    seq = top.list(key, min_len=min_len) if min_len else top.list(key, default=[])
    lines = getattr(seq, "item_lines", [])
    out = []
    for i, item in enumerate(seq):
        line = lines[i] if i < len(lines) else top.line_of(key)
        with Fields(item, top.path, f"{top.field(key)}[{i}]", line) as sub:
            out.append(reader(sub, i))
    return out


def _topology(top: Fields, path: Path) -> Topology:
    ref = top.str("topology")
    topo_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
    if not topo_path.is_file():
        raise top.error("topology", f"no such file {topo_path} (a path relative to the "
                                    f"scenario file, e.g. ../topologies/paper_eval.yaml)")
    return load_topology(topo_path)


def _policy(top: Fields, path: Path) -> tuple[str, Policy]:
    ref = top.str("policy")
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        pol_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
        if not pol_path.is_file():
            raise top.error("policy", f"no such file {pol_path} (a path relative to the "
                                      "scenario file, or one of "
                                      f"{', '.join(SHIPPED_POLICIES)})")
    elif ref in SHIPPED_POLICIES:
        pol_path = shipped_policy(ref)
    else:
        raise top.error("policy", f"expected one of {', '.join(SHIPPED_POLICIES)} or a "
                                  f"path to a policy file (.yaml), got {ref!r}")
    return ref, load_policy(pol_path)


def _check_wall_period(f: Fields, key: str, period_s: float, time_scale: float) -> None:
    wall = period_s * time_scale
    if wall < MIN_WALL_PERIOD_S - _EPS:
        raise f.error(key, f"the D-MANO period would be {wall:g} s of wall time "
                           f"({period_s:g} s x time_scale {time_scale:g}); keep it >= "
                           f"{MIN_WALL_PERIOD_S:g} s (an LSA needs tens of ms to spread): "
                           f"raise time_scale to at least {MIN_WALL_PERIOD_S / period_s:g}")


def _traffic(f: Fields, i: int, topo: Topology, duration: float) -> TrafficClass:
    name = f.str("name", default=f"class{i + 1}", pattern=NAME_PATTERN, hint=NAME_HINT)
    hosts = {h.name: h for h in topo.hosts}
    source = _ref(f, "source", set(hosts), "host")
    if hosts[source].role == "sink":
        raise f.error("source", f"host {source!r} has role sink; a source needs role "
                                "source or both")
    destination = _ref(f, "destination", set(hosts), "host")
    if hosts[destination].role == "source":
        raise f.error("destination", f"host {destination!r} has role source; a "
                                     "destination needs role sink or both")
    if destination == source:
        raise f.error("destination", f"expected a host other than the source, got {source!r}")
    chain = _chain(f, topo)
    arrival = f.choice("arrival", ARRIVALS)
    flows_per_s = f.number("flows_per_s", lo=0, lo_open=True, hi=100000)
    flow_duration = f.number("flow_duration_s", lo=0, lo_open=True, hi=7 * 86400)
    packets_per_s = f.number("packets_per_s", lo=0, lo_open=True, hi=10_000_000)
    payload = f.int("payload_bytes", default=64, lo=MIN_PAYLOAD, hi=MAX_PAYLOAD)
    dst_port = f.int("dst_port", default=5000, lo=1, hi=65535)
    src_ports = f.port_range("src_ports") or DEFAULT_SRC_PORTS
    if src_ports[0] == 0:
        raise f.error("src_ports", "expected ports from 1 up, got a range starting at 0")
    start = f.number("start_s", default=0.0, lo=0)
    if start >= duration:
        raise f.error("start_s", f"expected a time before duration_s ({duration:g}), "
                                 f"got {start:g}")
    end = f.number("end_s", default=duration, lo=0)
    if not start < end <= duration + _EPS:
        raise f.error("end_s", f"expected a time in ({start:g}, {duration:g}] (after "
                               f"start_s, at most duration_s), got {end:g}")
    n_ports = src_ports[1] - src_ports[0] + 1
    needed = 2 * flows_per_s * flow_duration + 10
    if n_ports < needed:
        raise f.error("src_ports", f"expected a range of at least {math.ceil(needed)} ports "
                                   f"(twice the {flows_per_s * flow_duration:g} concurrent "
                                   f"flows, plus 10), got {n_ports}")
    cls = TrafficClass(
        name=name, source=source, destination=destination, chain=chain, arrival=arrival,
        flows_per_s=flows_per_s, flow_duration_s=flow_duration, packets_per_s=packets_per_s,
        payload_bytes=payload, dst_port=dst_port, src_ports=src_ports, start_s=start,
        end_s=end, index=i,
    )
    _check_classifier(f, topo, cls)
    return cls


def _chain(f: Fields, topo: Topology) -> int | None:
    value = f.raw("chain")
    spis = sorted(c.spi for c in topo.chains)
    known = ", ".join(str(s) for s in spis) or "none defined"
    if isinstance(value, str) and value.lower() == "none":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise f.error("chain", f"expected a chain's spi ({known}) or none, got {value!r}")
    if value not in spis:
        raise f.error("chain", f"unknown chain spi {value} (known: {known})")
    return value


def _check_classifier(f: Fields, topo: Topology, cls: TrafficClass) -> None:
    """The topology's classifier at the source's node must put the class in its chain."""
    addrs = host_addresses(topo)
    src_ip, dst_ip = addrs[cls.source].ip, addrs[cls.destination].ip
    node = next(h.node for h in topo.hosts if h.name == cls.source)
    what = (f"udp {src_ip}:{cls.src_ports[0]}-{cls.src_ports[1]} -> {dst_ip}:{cls.dst_port}")
    found: int | None = None
    where = ""
    rules = sorted(enumerate(topo.classifier), key=lambda ir: -ir[1].priority)
    for idx, rule in rules:
        if rule.node != node or src_ip not in rule.src or dst_ip not in rule.dst:
            continue
        if rule.proto not in ("any", "udp"):
            continue
        if rule.dport is not None and not rule.dport[0] <= cls.dst_port <= rule.dport[1]:
            continue
        if rule.sport is not None:
            lo, hi = rule.sport
            if hi < cls.src_ports[0] or lo > cls.src_ports[1]:
                continue
            if not (lo <= cls.src_ports[0] and cls.src_ports[1] <= hi):
                raise f.error("src_ports", f"classifier[{idx}] at node {node} matches only "
                                           f"source ports {lo}-{hi} of {what}; make "
                                           "src_ports fit inside or outside that range")
        found, where = rule.chain, f"classifier[{idx}]"
        break
    if found == cls.chain:
        return
    if cls.chain is None:
        raise f.error("chain", f"the topology's {where} at node {node} puts {what} into "
                               f"chain {found}; write chain: {found}, or change the classifier")
    if found is None:
        raise f.error("chain", f"no classifier rule at node {node} matches {what}, so it "
                               f"would not enter chain {cls.chain}; add one to the topology")
    raise f.error("chain", f"the topology's {where} at node {node} puts {what} into chain "
                           f"{found}, not {cls.chain}")


def _timeline(top: Fields, topo: Topology, policy: Policy, time_scale: float,
              duration: float, traffic: list[TrafficClass]
              ) -> tuple[list[Event], list[tuple[float, TimelineState]]]:
    state = TimelineState(
        running=frozenset(i.name for i in topo.instances if i.start),
        failed_instances=frozenset(), failed_links=frozenset(), failed_nodes=frozenset(),
        policy=policy,
        rates=tuple((c.name, c.flows_per_s, c.packets_per_s) for c in traffic),
    )
    states: list[tuple[float, TimelineState]] = [(0.0, state)]
    events: list[Event] = []
    last_at = 0.0
    history: dict[str, str] = {}  # what last changed an object, for messages

    def read(f: Fields, i: int) -> Event:
        nonlocal state, last_at
        at = f.number("at_s", lo=0)
        if at >= duration:
            raise f.error("at_s", f"expected a time in [0, {duration:g}) (before duration_s),"
                                  f" got {at:g}")
        if at < last_at:
            raise f.error("at_s", f"expected a time >= {last_at:g} (events must be in time "
                                  f"order; events[{i - 1}] is at {last_at:g}), got {at:g}")
        action = f.choice("action", ACTIONS)
        label = f.str("label", default="")
        ev, state = _apply(f, i, at, action, label, state, topo, time_scale, traffic,
                           history)
        last_at = at
        states.append((at, state))
        return ev

    events = _read_list(top, "events", read)
    return events, states


def _apply(f: Fields, i: int, at: float, action: str, label: str, st: TimelineState,
           topo: Topology, time_scale: float, traffic: list[TrafficClass],
           history: dict[str, str]) -> tuple[Event, TimelineState]:
    when = f"at {at:g} s"
    if action in INSTANCE_ACTIONS:
        inst_names = {x.name for x in topo.instances}
        name = _ref(f, "instance", inst_names, "instance")
        node = next(x.node for x in topo.instances if x.name == name)
        if node in st.failed_nodes:
            raise f.error("instance", f"instance {name!r} is on node {node}, which is failed "
                                      f"{when} ({history.get('node:' + node, '')}); "
                                      "restore_node first")
        running, failed = set(st.running), set(st.failed_instances)
        why = history.get("instance:" + name, "as the topology starts it"
                          if name in st.running else "start: false in the topology")
        if action == "start_instance":
            if name in running:
                raise f.error("instance", f"instance {name!r} is already running {when} "
                                          f"({why})")
            if name in failed:
                raise f.error("instance", f"instance {name!r} was killed ({why}); use "
                                          "restore_instance to restart it")
            running.add(name)
        elif action in ("stop_instance", "fail_instance"):
            if name not in running:
                status = "killed" if name in failed else "not running"
                raise f.error("instance", f"instance {name!r} is {status} {when} ({why})")
            running.discard(name)
            if action == "fail_instance":
                failed.add(name)
        else:  # restore_instance
            if name not in failed:
                raise f.error("instance", f"instance {name!r} is not killed {when} "
                                          f"({why}); restore_instance restarts an instance "
                                          "after fail_instance, start_instance starts a "
                                          "stopped one")
            failed.discard(name)
            running.add(name)
        history["instance:" + name] = f"events[{i}]: {action} at {at:g} s"
        return (Event(at, action, instance=name, label=label, index=i),
                replace(st, running=frozenset(running), failed_instances=frozenset(failed)))
    if action in LINK_ACTIONS:
        link = _link(f, topo)
        key = tuple(sorted(link))
        down = set(st.failed_links)
        shown = f"{link[0]}-{link[1]}"
        hkey = "link:" + "-".join(key)
        if action == "fail_link":
            if key in down:
                raise f.error("link", f"link {shown} is already failed {when} "
                                      f"({history[hkey]})")
            down.add(key)
        else:
            if key not in down:
                raise f.error("link", f"link {shown} is not failed {when}; restore_link "
                                      "needs an earlier fail_link")
            down.discard(key)
        history[hkey] = f"events[{i}]: {action} at {at:g} s"
        return (Event(at, action, link=link, label=label, index=i),
                replace(st, failed_links=frozenset(down)))
    if action in NODE_ACTIONS:
        node = _ref(f, "node", {n.name for n in topo.nodes}, "node")
        down = set(st.failed_nodes)
        if action == "fail_node":
            if node in down:
                raise f.error("node", f"node {node} is already failed {when} "
                                      f"({history['node:' + node]})")
            down.add(node)
        else:
            if node not in down:
                raise f.error("node", f"node {node} is not failed {when}; restore_node "
                                      "needs an earlier fail_node")
            down.discard(node)
        history["node:" + node] = f"events[{i}]: {action} at {at:g} s"
        return (Event(at, action, node=node, label=label, index=i),
                replace(st, failed_nodes=frozenset(down)))
    if action == "set_policy_param":
        pname, value, policy = _policy_param(f, st.policy, time_scale)
        return (Event(at, action, name=pname, value=value, label=label, index=i,
                      policy=policy),
                replace(st, policy=policy))
    # set_load
    classes = {c.name for c in traffic}
    cname = _ref(f, "traffic", classes, "traffic class")
    flows = f.number("flows_per_s", default=None, lo=0, hi=100000)
    packets = f.number("packets_per_s", default=None, lo=0, lo_open=True, hi=10_000_000)
    if flows is None and packets is None:
        raise f.error("flows_per_s", "set_load needs flows_per_s, packets_per_s or both")
    rates = []
    for name, fl, pk in st.rates:
        if name == cname:
            cls = next(c for c in traffic if c.name == cname)
            new_flows = fl if flows is None else flows
            need = 2 * new_flows * cls.flow_duration_s + 10
            if cls.src_ports[1] - cls.src_ports[0] + 1 < need:
                raise f.error("flows_per_s", f"traffic {cname}: src_ports has too few ports"
                                             f" for {new_flows:g} flows/s (need "
                                             f"{math.ceil(need)})")
            rates.append((name, new_flows, pk if packets is None else packets))
        else:
            rates.append((name, fl, pk))
    return (Event(at, action, traffic=cname, flows_per_s=flows, packets_per_s=packets,
                  label=label, index=i),
            replace(st, rates=tuple(rates)))


def _link(f: Fields, topo: Topology) -> tuple[str, str]:
    value = f.str("link")
    known = ", ".join(f"{lk.a}-{lk.b}" for lk in topo.links) or "none defined"
    a, sep, b = value.partition("-")
    if not sep or not a or not b:
        raise f.error("link", f"expected a link as A-B (known: {known}), got {value!r}")
    nodes = {n.name for n in topo.nodes}
    for end in (a, b):
        if end not in nodes:
            raise f.error("link", f"unknown node {end!r} in {value!r} (known nodes: "
                                  f"{', '.join(sorted(nodes))})")
    if not any({lk.a, lk.b} == {a, b} for lk in topo.links):
        raise f.error("link", f"no link between {a} and {b} in the topology (known: {known})")
    return (a, b)


def policy_params(policy: Policy) -> list[str]:
    """Dotted names ``set_policy_param`` accepts for ``policy``."""
    names = ["period_s", "max_group_size", "hysteresis.abs", "hysteresis.rel"]
    names += [f"cost.{k}" for k in policy.cost.params() if k != "function"]
    names.append("weight.function")
    return names


def apply_policy_param(policy: Policy, name: str, value: Any,
                       source: str = "<set_policy_param>") -> Policy:
    """``policy`` with one field changed, checked like a policy file (ConfigError)."""
    data = policy.to_dict()
    section, _, key = name.rpartition(".")
    target = data[section] if section else data
    target[key] = value
    new = policy_from_data(data, source)
    return replace(new, source=policy.source)


def _policy_param(f: Fields, policy: Policy, time_scale: float
                  ) -> tuple[str, Any, Policy]:
    allowed = policy_params(policy)
    name = f.str("name")
    if name not in allowed:
        raise f.error("name", f"expected a policy field of policy {policy.name!r}: "
                              f"{', '.join(allowed)}; got {name!r}")
    value = f.raw("value")
    if isinstance(value, dict | list):
        raise f.error("value", f"expected a number or a name, got a {type(value).__name__}")
    try:
        new = apply_policy_param(policy, name, value)
    except ConfigError as exc:
        raise f.error("value", f"{exc.detail} (policy field {name})") from None
    if name == "period_s":
        _check_wall_period(f, "value", new.period_s, time_scale)
    return name, value, new


def _measure(top: Fields, topo: Topology, duration: float, time_scale: float,
             states: list[tuple[float, TimelineState]]) -> Measure:
    data = top.mapping("measure", default=None)
    if data is None:
        return Measure()
    with Fields(data, top.path, "measure", top.line_of("measure")) as f:
        sample = f.number("sample_period_s", default=1.0, lo=0, lo_open=True, hi=3600)
        if sample * time_scale < MIN_WALL_SAMPLE_S - _EPS:
            raise f.error("sample_period_s",
                          f"the sample period would be {sample * time_scale:g} s of wall time;"
                          f" keep it >= {MIN_WALL_SAMPLE_S:g} s")
        if sample > duration:
            raise f.error("sample_period_s", f"expected at most duration_s ({duration:g}), "
                                             f"got {sample:g}")
        warmup = f.number("warmup_s", default=0.0, lo=0)
        if warmup >= duration:
            raise f.error("warmup_s", f"expected a time before duration_s ({duration:g}), "
                                      f"got {warmup:g}")
        loss_window = f.number("loss_window_s", default=10.0, lo=0, lo_open=True,
                               hi=duration)
        windows = _read_list(f, "windows", lambda w, _i: _window(w, topo, duration, warmup,
                                                                 sample, states))
        _unique(f, "windows", [w.name for w in windows])
    return Measure(sample, warmup, loss_window, tuple(windows))


def _window(f: Fields, topo: Topology, duration: float, warmup: float, sample: float,
            states: list[tuple[float, TimelineState]]) -> Window:
    name = f.str("name", pattern=NAME_PATTERN, hint=NAME_HINT)
    start = f.number("start_s", lo=0)
    end = f.number("end_s", lo=0)
    if start < warmup - _EPS:
        raise f.error("start_s", f"expected a time >= warmup_s ({warmup:g}): a steady-state"
                                 f" window cannot start in the warm-up, got {start:g}")
    if start >= duration:
        raise f.error("start_s", f"expected a time in [{warmup:g}, {duration:g}) (inside "
                                 f"duration_s), got {start:g}")
    if end > duration + _EPS:
        raise f.error("end_s", f"expected a time <= duration_s ({duration:g}), got {end:g}")
    if end <= start:
        raise f.error("end_s", f"expected a time after start_s ({start:g}), got {end:g}")
    if end - start < sample - _EPS:
        raise f.error("end_s", f"the window is {end - start:g} s long, shorter than one "
                               f"sample ({sample:g} s)")
    ref_raw = f.mapping("reference", default=None)
    reference: list[tuple[str, float]] = []
    if ref_raw is not None:
        state = states[0][1]
        for at, st in states[1:]:
            if at <= start + _EPS:
                state = st
        live = state.live_instances(topo)
        known = {i.name for i in topo.instances}
        lines = getattr(ref_raw, "key_lines", {})
        for inst, pct in ref_raw.items():
            where = f"{f.field('reference')}.{inst}"
            line = lines.get(inst, f.line_of("reference"))
            if inst not in known:
                raise ConfigError(f.path, line, where, f"unknown instance {inst!r} (known: "
                                                       f"{', '.join(sorted(known))})")
            if isinstance(pct, bool) or not isinstance(pct, int | float) \
                    or not 0 <= pct <= 100:
                raise ConfigError(f.path, line, where,
                                  f"expected a share in percent, 0..100, got {pct!r}")
            if pct > 0 and inst not in live:
                raise ConfigError(f.path, line, where,
                                  f"instance {inst!r} is not running at the start of window "
                                  f"{name} ({start:g} s), so it cannot take {pct:g} %")
            reference.append((str(inst), float(pct)))
    return Window(name, start, end, tuple(reference))


def _ref(f: Fields, key: str, known: set[str], what: str) -> str:
    value = f.str(key)
    if value not in known:
        names = ", ".join(sorted(known)) or "none defined"
        raise f.error(key, f"unknown {what} {value!r} (known: {names})")
    return value


def _unique(f: Fields, key: str, values: list[str]) -> None:
    seen: dict[str, int] = {}
    seq = f.data.get(key) or []
    lines = getattr(seq, "item_lines", [])
    for i, v in enumerate(values):
        if v in seen:
            line = lines[i] if i < len(lines) else f.line_of(key)
            raise ConfigError(f.path, line, f"{f.field(key)}[{i}].name",
                              f"duplicate name {v} (first at {key}[{seen[v]}])")
        seen[v] = i


def _warn_noisy_load(s: Scenario) -> None:
    periods = [s.policy.period_s] + [e.policy.period_s for e in s.events if e.policy]
    wall_period = s.wall(min(periods))
    for c in s.traffic:
        per_period = c.packets_per_s * wall_period
        if per_period < 1:
            log.warning("%s: traffic %s sends %.2g packet(s) per flow per D-MANO period "
                        "(%.3g s of wall time): the load the VNFs measure will be noisy; "
                        "a larger time_scale reduces that", s.path, c.name, per_period,
                        wall_period)


# -- flows ----------------------------------------------------------------------------------

def _segments(scenario: Scenario, cls: TrafficClass) -> list[tuple[float, float, float, float]]:
    """(start, end, flows_per_s, packets_per_s) in scenario time, split at set_load."""
    cuts = [e.at_s for e in scenario.events if e.action == "set_load"
            and e.traffic == cls.name and cls.start_s < e.at_s < cls.end_s]
    bounds = [cls.start_s, *cuts, cls.end_s]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        flows, pps = scenario.state_at(lo).rate(cls.name)  # a set_load at lo counts
        if hi > lo:
            out.append((lo, hi, flows, pps))
    return out


def arrival_segments(scenario: Scenario) -> list[ArrivalSegment]:
    """Each class's arrival process as stretches of constant rate, already scaled to the
    wall clock (times x time_scale, arrival rates / time_scale), ordered by start: what an
    arrival-process generator needs. Stretches with rate 0 are left out. Note that a
    generator running constant arrivals with constant-rate flows sends the packets of all
    flows in step (bursts); :func:`flow_schedule` gives each flow a random phase."""
    out = []
    for cls in scenario.traffic:
        for lo, hi, flows, pps in _segments(scenario, cls):
            if flows > 0:
                out.append(ArrivalSegment(
                    traffic=cls.name, arrival=cls.arrival, start_wall_s=scenario.wall(lo),
                    until_wall_s=scenario.wall(hi),
                    flows_per_wall_s=scenario.wall_rate(flows),
                    flow_duration_wall_s=scenario.wall(cls.flow_duration_s),
                    packets_per_s=pps, payload_bytes=cls.payload_bytes,
                    dst_port=cls.dst_port))
    return sorted(out, key=lambda a: (a.start_wall_s, a.traffic))


def flow_schedule(scenario: Scenario, repetition: int = 1) -> list[PlannedFlow]:
    """Every flow of run ``repetition``, ordered by start time.

    Arrivals follow each class's process (``constant``: at ``start + j / rate``;
    ``poisson``: exponential gaps) within each stretch of constant rate, which ends at
    a ``set_load`` for the class; a new stretch starts its own sequence at the event.
    Source ports are drawn at random from ``src_ports`` among the ports not used by a
    flow still alive, so the flow hashes, and thus the WCMP choices, differ between
    repetitions even with constant arrivals. Each flow's first packet is sent
    ``phase_wall_s`` (uniform in one packet interval) after its start, so constant
    arrivals do not synchronise the packets of all flows into bursts (the VNFs' token
    buckets hold only 50 ms of capacity): hand a generator the flows as explicit flows
    starting at :attr:`PlannedFlow.first_packet_wall_s`. Deterministic for a given
    scenario and repetition (seeded with :meth:`Scenario.rep_seed`).
    """
    rng = random.Random(scenario.rep_seed(repetition))
    raw: list[tuple[float, int, TrafficClass, float]] = []  # (start, class idx, cls, pps)
    for cls in scenario.traffic:
        for lo, hi, flows, pps in _segments(scenario, cls):
            if flows <= 0:
                continue
            t = lo if cls.arrival == "constant" else lo + rng.expovariate(flows)
            j = 0
            while t < hi - _EPS:
                raw.append((t, cls.index, cls, pps))
                if cls.arrival == "constant":
                    j += 1
                    t = lo + j / flows
                else:
                    t += rng.expovariate(flows)
    raw.sort(key=lambda r: (r[0], r[1]))
    free: dict[str, list[int]] = {c.name: list(range(c.src_ports[0], c.src_ports[1] + 1))
                                  for c in scenario.traffic}
    busy: dict[str, list[tuple[float, int]]] = {c.name: [] for c in scenario.traffic}
    plans: list[PlannedFlow] = []
    for fid, (start, _, cls, pps) in enumerate(raw):
        heap = busy[cls.name]
        while heap and heap[0][0] <= start + _EPS:
            free[cls.name].append(heapq.heappop(heap)[1])
        pool = free[cls.name]
        if not pool:
            raise ValueError(f"traffic {cls.name}: no free source port at {start:g} s "
                             f"(src_ports {cls.src_ports[0]}-{cls.src_ports[1]})")
        k = rng.randrange(len(pool))
        pool[k], pool[-1] = pool[-1], pool[k]
        port = pool.pop()
        heapq.heappush(heap, (start + cls.flow_duration_s, port))
        plans.append(PlannedFlow(
            flow_id=fid, traffic=cls.name, start_s=start, duration_s=cls.flow_duration_s,
            start_wall_s=scenario.wall(start),
            duration_wall_s=scenario.wall(cls.flow_duration_s), packets_per_s=pps,
            phase_wall_s=rng.uniform(0.0, 1.0 / pps), src_port=port,
            dst_port=cls.dst_port, payload_bytes=cls.payload_bytes,
        ))
    return plans


# -- output folders -------------------------------------------------------------------------

def run_set_dir(scenario: Scenario, stamp: str, base: Path | None = None) -> Path:
    """Folder of one invocation: ``<output>/<scenario name>/<stamp>`` (relative paths
    are resolved against ``base``, default the current directory)."""
    out = scenario.output
    if not out.is_absolute():
        out = (base or Path.cwd()) / out
    return out / scenario.name / stamp


def run_dir(set_dir: Path, repetition: int) -> Path:
    """Folder of run ``repetition`` (1-based) inside a set: ``run-01``, ``run-02``, ..."""
    return set_dir / f"run-{repetition:02d}"


__all__ = [
    "ACTIONS", "ARRIVALS", "INSTANCE_ACTIONS", "LINK_ACTIONS", "MIN_WALL_PERIOD_S",
    "NODE_ACTIONS", "SHIPPED_POLICIES", "ArrivalSegment", "Event", "Measure", "PlannedFlow",
    "Scenario", "TimelineState", "TrafficClass", "Window", "apply_policy_param",
    "arrival_segments", "flow_schedule", "load_scenario", "parse_scenario", "policy_params",
    "run_dir", "run_set_dir",
]
