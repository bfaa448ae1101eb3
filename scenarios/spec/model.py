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
from dmano.yamlconf import ConfigError
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
# the centralized baseline's orchestrator (no target; a logged no-op with control:
# distributed, so one file runs in both modes)
ORCHESTRATOR_ACTIONS = ("fail_orchestrator", "restore_orchestrator")
ORCHESTRATOR = "orchestrator"  # Event.target of ORCHESTRATOR_ACTIONS
ACTIONS = (*INSTANCE_ACTIONS, *DRAIN_ACTIONS, *LINK_ACTIONS, *NODE_ACTIONS, *DAEMON_ACTIONS,
           *ORCHESTRATOR_ACTIONS, "set_policy_param", "set_load")
# what an event takes away (the report measures loss, recovery and avoidance after it)
# and what it gives back (the report measures when the instance carries traffic again)
DOWN_ACTIONS = ("stop_instance", "fail_instance", "drain_instance", "fail_link", "fail_node",
                "fail_daemon", "fail_orchestrator")
UP_ACTIONS = ("start_instance", "restore_instance", "undrain_instance", "restore_link",
              "restore_node", "restore_daemon", "restore_orchestrator")
# who computes the WCMP weights (DESIGN.md sections 6 and 10)
CONTROL_MODES = ("distributed", "centralized")
# what the orchestrator optimises: the D-MANO's policy code, or the min-max LP
OBJECTIVES = ("policy", "min-max-utilisation")
MAX_MGMT_RTT_MS = 10000  # ms, scenario time
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,31}"
NAME_HINT = "a name of 1-32 letters, digits, '_' or '-' starting with a letter"
MAX_PAYLOAD = 1472  # 1500-byte inner IPv4 packet minus IPv4 and UDP headers
MIN_PAYLOAD = 20  # the traffic generator's probe header (scenarios.traffic.wire)
MIN_WALL_PERIOD_S = 0.1  # the D-MANO loop may not run faster than this (wall clock)
MIN_WALL_SAMPLE_S = 0.05  # nor the runner's sampling
DEFAULT_SRC_PORTS = (10000, 59999)

# -- the dataclasses ------------------------------------------------------------------------

def needs_dmano(action: str, daemon: str | None = None) -> str | None:
    """Why an event cannot be played with ``control: centralized`` (no D-MANO runs
    there), or None if it can: ``fail_daemon``/``restore_daemon`` of daemon ``dmano``
    and ``drain_instance``/``undrain_instance`` (a drain is announced by the instance's
    D-MANO). The message is the same at load time and from
    :meth:`Scenario.with_control`."""
    if action in DAEMON_ACTIONS and daemon == "dmano":
        what = f"{action} of daemon dmano"
    elif action in DRAIN_ACTIONS:
        what = f"{action} (a drain is announced by the instance's D-MANO)"
    else:
        return None
    return f"{what} needs control: distributed: no D-MANO runs with control: centralized"


@dataclass(frozen=True)
class CentralSpec:
    """The ``central:`` section: the centralized orchestrator (DESIGN.md section 10).

    Like every time in a scenario file, both durations are in *scenario time*: the
    runner gives the orchestrator ``poll_period_s * time_scale`` seconds and models a
    management round trip of ``mgmt_rtt_ms * time_scale`` milliseconds (see
    :meth:`Scenario.wall_central`), so the ratio of the RTT to the poll period, and of
    both to the D-MANO period, is the one written whatever the scale. The RTT is a
    modelled delay (no netem here), added to every poll and every connector write.
    """

    poll_period_s: float  # every node's VNF counters are read this often (scenario time)
    mgmt_rtt_ms: float = 0.0  # management network round trip (scenario time, ms)
    objective: str = "policy"  # one of OBJECTIVES
    router: str = ""  # node whose router's LSDB the orchestrator mirrors

    @staticmethod
    def defaults(policy: Policy, topology: Topology) -> CentralSpec:
        """The settings of an absent ``central:`` section (or of its absent keys): poll
        at the D-MANO period of ``policy`` (``dmano_period_s`` or the policy's
        ``period_s``), no RTT, objective ``policy``, the topology's first node."""
        return CentralSpec(poll_period_s=policy.period_s, router=topology.nodes[0].name)


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
    line: int = field(default=0, compare=False)  # line in the file (0: unknown)

    @property
    def target(self) -> str:
        """What the event acts on, as written to ``events.csv`` (``detail``)."""
        if self.action in ORCHESTRATOR_ACTIONS:
            return ORCHESTRATOR
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
    orchestrator_down: bool = False  # after fail_orchestrator (in either control mode)

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
    """A validated scenario file; every time and duration in scenario time.

    ``control`` says who computes the WCMP weights: ``distributed`` (a D-MANO per node,
    the default) or ``centralized`` (one orchestrator, no D-MANO; DESIGN.md section 10).
    ``central`` is the file's ``central:`` section with its defaults filled in, or None
    when the file has none (it is only allowed with ``control: centralized``);
    :attr:`effective_central` gives the orchestrator's settings in either case, and
    :meth:`with_control` the same scenario in the other mode (``scenarios compare``).
    """

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
    control: str = "distributed"  # one of CONTROL_MODES
    central: CentralSpec | None = None  # the central: section (control: centralized only)

    # -- control mode ----------------------------------------------------------------------
    @property
    def centralized(self) -> bool:
        return self.control == "centralized"

    @property
    def effective_central(self) -> CentralSpec:
        """The orchestrator's settings (scenario time): the ``central:`` section, or
        :meth:`CentralSpec.defaults` when the file has none (also in distributed mode,
        e.g. to say what a centralized run of the file would use)."""
        if self.central is not None:
            return self.central
        return CentralSpec.defaults(self.policy, self.topology)

    def with_control(self, mode: str) -> Scenario:
        """This scenario with ``control: mode``, for ``scenarios compare``.

        ``centralized`` keeps the ``central:`` section, or gets the defaults
        (:attr:`effective_central`); ``distributed`` drops the section. Everything else
        (traffic, seed, timeline) is the same; ``fail_orchestrator`` and
        ``restore_orchestrator`` are no-ops in distributed mode. Raises
        :class:`~dmano.yamlconf.ConfigError` (a ``ValueError``) naming the file, line and
        ``events[i]`` of the first event that needs a D-MANO (:func:`needs_dmano`) when
        ``mode`` is ``centralized``, and ``ValueError`` for an unknown mode.
        """
        if mode not in CONTROL_MODES:
            raise ValueError(f"control: expected one of {', '.join(CONTROL_MODES)}, "
                             f"got {mode!r}")
        if mode == "distributed":
            return replace(self, control=mode, central=None)
        for ev in self.events:
            why = needs_dmano(ev.action, ev.daemon)
            if why is not None:
                key = "daemon" if ev.action in DAEMON_ACTIONS else "action"
                raise ConfigError(self.path, ev.line or None, f"events[{ev.index}].{key}",
                                  why)
        return replace(self, control=mode, central=self.effective_central)

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

    def wall_central(self, central: CentralSpec | None = None) -> CentralSpec:
        """The orchestrator's settings on the wall clock: ``poll_period_s`` in wall-clock
        seconds and ``mgmt_rtt_ms`` in wall-clock milliseconds (both x time_scale), of
        ``central`` or else :attr:`effective_central`."""
        c = central if central is not None else self.effective_central
        return replace(c, poll_period_s=self.wall(c.poll_period_s),
                       mgmt_rtt_ms=self.wall(c.mgmt_rtt_ms))

    def scaling_summary(self) -> str:
        """One line per scaled quantity, for logs and reports."""
        k = self.time_scale
        lines = [f"time_scale {k:g}: {self.duration_s:g} s of scenario time in "
                 f"{self.wall_duration_s:g} s"]
        if self.centralized:
            cen, w = self.effective_central, self.wall_central()
            lines += [f"control centralized: objective {cen.objective}, LSDB of node "
                      f"{cen.router}'s router, no D-MANO",
                      f"orchestrator poll period {cen.poll_period_s:g} s -> "
                      f"{w.poll_period_s:g} s, management RTT {cen.mgmt_rtt_ms:g} ms -> "
                      f"{w.mgmt_rtt_ms:g} ms"]
        else:
            lines.append(f"D-MANO period {self.policy.period_s:g} s -> "
                         f"{self.wall(self.policy.period_s):g} s")
        lines.append(f"sample period {self.measure.sample_period_s:g} s -> "
                     f"{self.wall(self.measure.sample_period_s):g} s")
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
