"""The scenario file format: parsing and validation into frozen dataclasses.

A scenario says what to run on a topology: which policy the D-MANOs use (or whether a
centralized orchestrator replaces them), what traffic the hosts send, which events
happen when (instances started, stopped, killed, drained and undrained, links, nodes,
single daemons and the orchestrator failed and restored, policy parameters and load
changed), what to measure and how often to repeat it. Like topology files, scenario
files are read through :mod:`dmano.yamlconf`: every mistake raises
:class:`dmano.yamlconf.ConfigError` naming the file, the line, the field and what was
expected, and unknown keys are errors. Names of instances, links, nodes, hosts and
chains are checked against the topology, and the timeline is played through once so
that, e.g., restoring a link that never failed is an error at load time, not a surprise
half-way through a run.

Example (``scenarios/paper_fig4.yaml`` is the paper's Section VI)::

    name: paper_fig4                  # optional, default: the file name
    description: Section VI           # optional
    topology: ../topologies/paper_eval.yaml   # relative to this file
    policy: paper                     # paper | inverse-cost | static, or a path (.yaml)
    dmano_period_s: 2                 # optional, default: the policy's period_s
    control: distributed              # optional: distributed (default) | centralized
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

Control modes
=============

``control: distributed`` (the default) runs a D-MANO on every node (DESIGN.md section
6). ``control: centralized`` runs none: one orchestrator on the management network
(outside the emulated one) mirrors one router's LSDB, polls every node's VNF counters
and writes every connector (DESIGN.md section 10). Its settings are the optional
``central:`` section, allowed only with ``control: centralized`` (with ``control:
distributed`` it is an error, ``central: needs control: centralized``)::

    control: centralized
    central:                          # optional, every key optional
      poll_period_s: 2                # > 0, default: the D-MANO period (dmano_period_s,
                                      # else the policy's period_s); scenario time, so
                                      # x time_scale on the wall clock, which must be
                                      # >= MIN_WALL_PERIOD_S like the D-MANO period
      mgmt_rtt_ms: 20                 # 0..10000, default 0: modelled management round
                                      # trip (no netem here), scenario time like every
                                      # duration: the runner uses mgmt_rtt_ms x time_scale
      objective: policy               # policy (default: the D-MANO's policy code) |
                                      # min-max-utilisation (the LP)
      router: N1                      # default: the topology's first node; whose
                                      # router's LSDB the orchestrator mirrors

``python -m scenarios compare FILE`` runs a file once per mode with the same seed
(:meth:`Scenario.with_control`): the centralized run uses the file's ``central:``
section or its defaults, the distributed run ignores it. So that one file runs in both
modes, ``fail_orchestrator``/``restore_orchestrator`` are valid with ``control:
distributed`` (the runner logs them as no-ops). Events that need a D-MANO
(``fail_daemon``/``restore_daemon`` of daemon ``dmano``, ``drain_instance``,
``undrain_instance``) are errors with ``control: centralized``, and
:meth:`Scenario.with_control` refuses to make a centralized copy of a scenario that has
them: ``... needs control: distributed: no D-MANO runs with control: centralized``.

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
``drain_instance``     ``instance``, ``force`` (default false): the instance (running) is
                       announced ``draining``: no node gives it new flows, its existing
                       flows stay. Draining the last instance of a service that still
                       takes new flows is an error unless ``force: true``. Only with
                       ``control: distributed`` (its D-MANO announces the drain)
``undrain_instance``   ``instance``: end a drain (the instance running again, e.g. after
                       ``stop_instance`` / ``start_instance`` for an upgrade; it stays
                       draining while stopped). Only with ``control: distributed``
``fail_daemon``        ``node``, ``daemon``: kill one daemon of a node: ``dmano``,
                       ``ospfd``, ``bfdd`` (only with BFD on in the topology) or
                       ``connector`` (its P4Runtime server); not on a failed node
``restore_daemon``     ``node``, ``daemon``: restart a daemon killed by ``fail_daemon``
                       (a node with a failed daemon cannot be failed as a whole);
                       ``daemon: dmano`` (both actions) only with ``control:
                       distributed``
``fail_orchestrator``  (no target): stop the central orchestrator; the connectors keep
                       their last weights. A no-op, logged, with ``control:
                       distributed``. Not while it is already failed
``restore_orchestrator`` (no target): restart it after ``fail_orchestrator``
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
  changed by ``set_policy_param``), ``central.poll_period_s`` and
  ``central.mgmt_rtt_ms`` (:meth:`Scenario.wall_central`), ``sample_period_s``,
  ``warmup_s``, ``loss_window_s``, window bounds;
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

Modules
=======

* :mod:`scenarios.spec.model`: constants and the frozen dataclasses (:class:`Scenario`,
  :class:`TrafficClass`, :class:`Event`, :class:`CentralSpec`, ...), the scaling and
  control-mode helpers and the output folders;
* :mod:`scenarios.spec.parse`: :func:`load_scenario`, :func:`parse_scenario` (through
  :mod:`dmano.yamlconf`);
* :mod:`scenarios.spec.timeline`: the events, played through at load time, and the
  ``set_policy_param`` helpers;
* :mod:`scenarios.spec.schedule`: :func:`flow_schedule` and :func:`arrival_segments`
  (arrival times from :mod:`scenarios.arrivals`).

Everything is imported from here: ``from scenarios.spec import Scenario, load_scenario``.
"""

from scenarios.spec.model import (
    ACTIONS,
    ARRIVALS,
    CONTROL_MODES,
    DAEMON_ACTIONS,
    DAEMONS,
    DOWN_ACTIONS,
    DRAIN_ACTIONS,
    INSTANCE_ACTIONS,
    LINK_ACTIONS,
    MAX_MGMT_RTT_MS,
    MIN_WALL_PERIOD_S,
    NODE_ACTIONS,
    OBJECTIVES,
    ORCHESTRATOR,
    ORCHESTRATOR_ACTIONS,
    SHIPPED_POLICIES,
    UP_ACTIONS,
    ArrivalSegment,
    CentralSpec,
    Event,
    Measure,
    PlannedFlow,
    Scenario,
    TimelineState,
    TrafficClass,
    Window,
    needs_dmano,
    run_dir,
    run_set_dir,
)
from scenarios.spec.parse import load_scenario, parse_scenario
from scenarios.spec.schedule import arrival_segments, flow_schedule
from scenarios.spec.timeline import apply_policy_param, policy_params

__all__ = [
    "ACTIONS", "ARRIVALS", "CONTROL_MODES", "DAEMONS", "DAEMON_ACTIONS", "DOWN_ACTIONS",
    "DRAIN_ACTIONS", "INSTANCE_ACTIONS", "LINK_ACTIONS", "MAX_MGMT_RTT_MS",
    "MIN_WALL_PERIOD_S", "NODE_ACTIONS", "OBJECTIVES", "ORCHESTRATOR",
    "ORCHESTRATOR_ACTIONS", "SHIPPED_POLICIES", "UP_ACTIONS", "ArrivalSegment",
    "CentralSpec", "Event", "Measure", "PlannedFlow", "Scenario", "TimelineState",
    "TrafficClass", "Window", "apply_policy_param", "arrival_segments", "flow_schedule",
    "load_scenario", "needs_dmano", "parse_scenario", "policy_params", "run_dir",
    "run_set_dir",
]
