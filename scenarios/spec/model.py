"""The scenario model: constants and the frozen dataclasses a scenario file becomes.

:class:`Scenario` carries the time-scaling rule (scenario time <-> wall clock, see
:mod:`scenarios.spec`) and the timeline's states; :func:`run_set_dir` and :func:`run_dir`
name the output folders. Parsing is in :mod:`scenarios.spec.parse` (and
:mod:`scenarios.spec.timeline`), flow scheduling in :mod:`scenarios.spec.schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from dmano.policy import Policy, shipped_policy_names
from scenarios.arrivals import EPS as _EPS
from scenarios.arrivals import PROCESSES
from topologies.spec import Topology

SHIPPED_POLICIES = tuple(shipped_policy_names())  # dmano/policies/*.yaml
ARRIVALS = PROCESSES  # constant | poisson (scenarios.arrivals)
INSTANCE_ACTIONS = ("start_instance", "stop_instance", "fail_instance", "restore_instance")
LINK_ACTIONS = ("fail_link", "restore_link")
NODE_ACTIONS = ("fail_node", "restore_node")
DRAIN_ACTIONS = ("drain_instance", "undrain_instance")
DAEMON_ACTIONS = ("fail_daemon", "restore_daemon")
DAEMONS = ("dmano", "ospfd", "bfdd", "connector")  # connector: the node's P4Runtime server
ACTIONS = (*INSTANCE_ACTIONS, *DRAIN_ACTIONS, *LINK_ACTIONS, *NODE_ACTIONS, *DAEMON_ACTIONS,
           "set_policy_param", "set_load")
# what an event takes away (the report measures loss, recovery and avoidance after it)
# and what it gives back (the report measures when the instance carries traffic again)
DOWN_ACTIONS = ("stop_instance", "fail_instance", "drain_instance", "fail_link", "fail_node",
                "fail_daemon")
UP_ACTIONS = ("start_instance", "restore_instance", "undrain_instance", "restore_link",
              "restore_node", "restore_daemon")
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,31}"
NAME_HINT = "a name of 1-32 letters, digits, '_' or '-' starting with a letter"
MAX_PAYLOAD = 1472  # 1500-byte inner IPv4 packet minus IPv4 and UDP headers
MIN_PAYLOAD = 20  # the traffic generator's probe header (scenarios.traffic.wire)
MIN_WALL_PERIOD_S = 0.1  # the D-MANO loop may not run faster than this (wall clock)
MIN_WALL_SAMPLE_S = 0.05  # nor the runner's sampling
DEFAULT_SRC_PORTS = (10000, 59999)

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
    daemon: str | None = None  # fail_daemon / restore_daemon (with node)
    force: bool = False  # drain_instance: even the last instance of its service
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
        if self.daemon is not None:
            return f"{self.node}/{self.daemon}"
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
        force = " (force)" if self.force else ""
        return self.label or f"{self.action} {self.target}{force}"


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
    drained: frozenset[str] = frozenset()  # instances draining (also while stopped)
    failed_daemons: frozenset[tuple[str, str]] = frozenset()  # (node, daemon)

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
