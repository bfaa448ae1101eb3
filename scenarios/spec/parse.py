"""Reading a scenario file: :func:`load_scenario` / :func:`parse_scenario`.

Every section is checked through :mod:`dmano.yamlconf` (file, line, field, what was
expected) and against the topology it names; the events are played through by
:mod:`scenarios.spec.timeline`. The format is documented in :mod:`scenarios.spec`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

from dmano.policy import Policy, load_policy, shipped_policy
from dmano.yamlconf import ConfigError, Fields, load_yaml
from scenarios.spec.model import (
    _EPS,
    ARRIVALS,
    CONTROL_MODES,
    DEFAULT_SRC_PORTS,
    MAX_MGMT_RTT_MS,
    MAX_PAYLOAD,
    MIN_PAYLOAD,
    MIN_WALL_SAMPLE_S,
    NAME_HINT,
    NAME_PATTERN,
    OBJECTIVES,
    SHIPPED_POLICIES,
    CentralSpec,
    Measure,
    Scenario,
    TimelineState,
    TrafficClass,
    Window,
)
from scenarios.spec.timeline import _check_wall_period, _timeline
from topologies.addressing import host_addresses
from topologies.spec import MAX_NODES, Topology, load_topology

log = logging.getLogger(__name__)


def load_scenario(path: str | Path, *, max_nodes: int = MAX_NODES,
                  topology: Topology | None = None) -> Scenario:
    """Read and validate a scenario file (and the topology and policy it names).

    ``max_nodes`` bounds the topology's size (the emulation's limit unless the caller is
    the control-plane simulation); ``topology`` replaces the file's topology (the
    simulation's ``--nodes-from``): every name in the scenario is checked against it."""
    path = Path(path)
    return parse_scenario(load_yaml(path), path, max_nodes=max_nodes, topology=topology)


def parse_scenario(data: object, path: Path, *, max_nodes: int = MAX_NODES,
                   topology: Topology | None = None) -> Scenario:
    with Fields(data, path, "") as top:
        name = top.str("name", default=path.stem, pattern=NAME_PATTERN, hint=NAME_HINT)
        description = top.str("description", default="")
        topo = _topology(top, path, max_nodes) if topology is None else topology
        if topology is not None:
            top.str("topology", default="")  # read (the key is known), not used
        policy_ref, policy = _policy(top, path)
        period = top.number("dmano_period_s", default=None, lo=0, lo_open=True, hi=3600)
        if period is not None:
            policy = replace(policy, period_s=period)
        time_scale = top.number("time_scale", lo=0, lo_open=True, hi=1000)
        duration = top.number("duration_s", lo=0, lo_open=True, hi=7 * 86400)
        _check_wall_period(top, "dmano_period_s" if period is not None else "time_scale",
                           policy.period_s, time_scale)
        control = top.choice("control", CONTROL_MODES, default="distributed")
        central = _central(top, topo, policy, time_scale, control)
        traffic = top.indexed_items("traffic", lambda f, i: _traffic(f, i, topo, duration),
                                    min_len=1)
        top.unique("traffic", [c.name for c in traffic], item_field="name")
        events, states = _timeline(top, topo, policy, time_scale, duration, traffic,
                                   control)
        measure = _measure(top, topo, duration, time_scale, states)
        repetitions = top.int("repetitions", default=1, lo=1, hi=1000)
        seed = top.int("seed", default=1, lo=0, hi=2**32 - 1)
        output = Path(top.str("output", default="results"))
    scenario = Scenario(
        name=name, path=path, topology=topo, policy=policy, policy_ref=policy_ref,
        time_scale=time_scale, duration_s=duration, traffic=tuple(traffic),
        events=tuple(events), measure=measure, repetitions=repetitions, seed=seed,
        output=output, description=description, states=tuple(states), control=control,
        central=central,
    )
    _warn_noisy_load(scenario)
    return scenario


def _topology(top: Fields, path: Path, max_nodes: int = MAX_NODES) -> Topology:
    ref = top.str("topology")
    topo_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
    if not topo_path.is_file():
        raise top.error("topology", f"no such file {topo_path} (a path relative to the "
                                    f"scenario file, e.g. ../topologies/paper_eval.yaml)")
    return load_topology(topo_path, max_nodes)


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


def _central(top: Fields, topo: Topology, policy: Policy, time_scale: float,
             control: str) -> CentralSpec | None:
    """The ``central:`` section (only with ``control: centralized``), defaults filled in
    from :meth:`CentralSpec.defaults`; None when absent."""
    data = top.mapping("central", default=None)
    if data is None:
        return None
    if control != "centralized":
        raise top.error("central", f"needs control: centralized (this scenario has control:"
                                   f" {control}, which runs no orchestrator); add control: "
                                   "centralized or remove the section")
    dflt = CentralSpec.defaults(policy, topo)
    with Fields(data, top.path, "central", top.line_of("central")) as f:
        poll = f.number("poll_period_s", default=dflt.poll_period_s, lo=0, lo_open=True,
                        hi=3600)
        _check_wall_period(f, "poll_period_s", poll, time_scale,
                           what="the orchestrator's poll period",
                           why="one poll reads every node's counters and may write every "
                               "connector")
        rtt = f.number("mgmt_rtt_ms", default=dflt.mgmt_rtt_ms, lo=0, hi=MAX_MGMT_RTT_MS)
        objective = f.choice("objective", OBJECTIVES, default=dflt.objective)
        router = dflt.router
        if f.raw("router", default=None) is not None:
            router = f.ref("router", (n.name for n in topo.nodes), "node")
    return CentralSpec(poll_period_s=poll, mgmt_rtt_ms=rtt, objective=objective,
                       router=router)


def _traffic(f: Fields, i: int, topo: Topology, duration: float) -> TrafficClass:
    name = f.str("name", default=f"class{i + 1}", pattern=NAME_PATTERN, hint=NAME_HINT)
    hosts = {h.name: h for h in topo.hosts}
    source = f.ref("source", hosts, "host")
    if hosts[source].role == "sink":
        raise f.error("source", f"host {source!r} has role sink; a source needs role "
                                "source or both")
    destination = f.ref("destination", hosts, "host")
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
    """The topology's classifier at the source's node must put the class in its chain.

    Hosts have the emulation's addresses, or the simulation's beyond the emulation's
    250 nodes (only ``python -m scenarios simulate`` reads such topologies)."""
    if len(topo.nodes) <= MAX_NODES:
        addrs = {h: a.ip for h, a in host_addresses(topo).items()}
    else:
        from scenarios.simulate.addressing import host_addresses as sim_host_addresses

        addrs = sim_host_addresses(topo)
    src_ip, dst_ip = addrs[cls.source], addrs[cls.destination]
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
        windows = f.items("windows", lambda w: _window(w, topo, duration, warmup, sample,
                                                       states), default=[])
        f.unique("windows", [w.name for w in windows], item_field="name")
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


def _warn_noisy_load(s: Scenario) -> None:
    if s.centralized:  # the orchestrator measures the load over its poll period
        what, periods = "orchestrator poll period", [s.effective_central.poll_period_s]
    else:
        what = "D-MANO period"
        periods = [s.policy.period_s] + [e.policy.period_s for e in s.events if e.policy]
    wall_period = s.wall(min(periods))
    for c in s.traffic:
        per_period = c.packets_per_s * wall_period
        if per_period < 1:
            log.warning("%s: traffic %s sends %.2g packet(s) per flow per %s "
                        "(%.3g s of wall time): the load the VNFs measure will be noisy; "
                        "a larger time_scale reduces that", s.path, c.name, per_period,
                        what, wall_period)
