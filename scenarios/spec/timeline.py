"""The scenario timeline: events read and played through once at load time.

Each event is checked against the state the earlier events leave (an instance must be
stopped to be started, a link failed to be restored, ...), so that a wrong timeline is a
:class:`dmano.yamlconf.ConfigError` at load time, not a surprise half-way through a run.
The result is the events and the :class:`~scenarios.spec.model.TimelineState` after each.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, TypeVar

from dmano.policy import Policy, policy_from_data
from dmano.yamlconf import ConfigError, Fields
from scenarios.spec.model import (
    _EPS,
    ACTIONS,
    DAEMON_ACTIONS,
    DAEMONS,
    DRAIN_ACTIONS,
    INSTANCE_ACTIONS,
    LINK_ACTIONS,
    MIN_WALL_PERIOD_S,
    NODE_ACTIONS,
    ORCHESTRATOR,
    ORCHESTRATOR_ACTIONS,
    Event,
    TimelineState,
    TrafficClass,
    needs_dmano,
)
from topologies.spec import Topology

T = TypeVar("T")


def _check_wall_period(f: Fields, key: str, period_s: float, time_scale: float,
                       what: str = "the D-MANO period",
                       why: str = "an LSA needs tens of ms to spread") -> None:
    """A period (scenario time) must be at least :data:`MIN_WALL_PERIOD_S` of wall time."""
    wall = period_s * time_scale
    if wall < MIN_WALL_PERIOD_S - _EPS:
        raise f.error(key, f"{what} would be {wall:g} s of wall time "
                           f"({period_s:g} s x time_scale {time_scale:g}); keep it >= "
                           f"{MIN_WALL_PERIOD_S:g} s ({why}): "
                           f"raise time_scale to at least {MIN_WALL_PERIOD_S / period_s:g}")


def _timeline(top: Fields, topo: Topology, policy: Policy, time_scale: float,
              duration: float, traffic: list[TrafficClass], control: str = "distributed"
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
        if control == "centralized":
            daemon = f.data.get("daemon") if action in DAEMON_ACTIONS else None
            why = needs_dmano(action, daemon)
            if why is not None:
                raise f.error("daemon" if daemon is not None else "action", why)
        ev, state = _apply(f, i, at, action, label, state, topo, time_scale, traffic,
                           history)
        ev = replace(ev, line=f.line or 0)
        last_at = at
        states.append((at, state))
        return ev

    events = top.indexed_items("events", read, default=[])
    return events, states


def _apply(f: Fields, i: int, at: float, action: str, label: str, st: TimelineState,
           topo: Topology, time_scale: float, traffic: list[TrafficClass],
           history: dict[str, str]) -> tuple[Event, TimelineState]:
    when = f"at {at:g} s"
    done = f"events[{i}]: {action} at {at:g} s"  # for the history
    if action in INSTANCE_ACTIONS:
        inst_names = {x.name for x in topo.instances}
        name = f.ref("instance", inst_names, "instance")
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
        history["instance:" + name] = done
        return (Event(at, action, instance=name, label=label, index=i),
                replace(st, running=frozenset(running), failed_instances=frozenset(failed)))
    if action in DRAIN_ACTIONS:
        return _drain(f, i, at, action, label, st, topo, history)
    if action in DAEMON_ACTIONS:
        return _daemon(f, i, at, action, label, st, topo, history)
    if action in ORCHESTRATOR_ACTIONS:
        return _orchestrator(f, i, at, action, label, st, history)
    if action in LINK_ACTIONS:
        link = _link(f, topo)
        pair = (min(link), max(link))
        links = _toggle(f, "link", pair, f"{link[0]}-{link[1]}", st.failed_links,
                        action == "fail_link", when, history, done)
        return (Event(at, action, link=link, label=label, index=i),
                replace(st, failed_links=links))
    if action in NODE_ACTIONS:
        node = f.ref("node", {n.name for n in topo.nodes}, "node")
        down = sorted(d for n, d in st.failed_daemons if n == node)
        if action == "fail_node" and down:
            raise f.error("node", f"node {node} has its {', '.join(down)} failed {when} "
                                  f"({history.get(f'daemon:{node}/{down[0]}', '')}); "
                                  "restore_daemon first")
        nodes = _toggle(f, "node", node, node, st.failed_nodes, action == "fail_node", when,
                        history, done)
        return (Event(at, action, node=node, label=label, index=i),
                replace(st, failed_nodes=nodes))
    if action == "set_policy_param":
        pname, value, policy = _policy_param(f, st.policy, time_scale)
        return (Event(at, action, name=pname, value=value, label=label, index=i,
                      policy=policy),
                replace(st, policy=policy))
    # set_load
    classes = {c.name for c in traffic}
    cname = f.ref("traffic", classes, "traffic class")
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


def _drain(f: Fields, i: int, at: float, action: str, label: str, st: TimelineState,
           topo: Topology, history: dict[str, str]) -> tuple[Event, TimelineState]:
    """``drain_instance`` / ``undrain_instance``: the instance must be running (on a node
    that is up); draining the last instance of its service that takes new flows needs
    ``force: true``."""
    when = f"at {at:g} s"
    name = f.ref("instance", {x.name for x in topo.instances}, "instance")
    inst = next(x for x in topo.instances if x.name == name)
    force = f.bool("force", default=False) if action == "drain_instance" else False
    if inst.node in st.failed_nodes:
        raise f.error("instance", f"instance {name!r} is on node {inst.node}, which is "
                                  f"failed {when} ({history.get('node:' + inst.node, '')})")
    why = history.get("instance:" + name, "as the topology starts it"
                      if name in st.running else "start: false in the topology")
    if name not in st.running:
        status = "killed" if name in st.failed_instances else "not running"
        raise f.error("instance", f"instance {name!r} is {status} {when} ({why}); only a "
                                  f"running instance can be {action.split('_')[0]}ed")
    drained = set(st.drained)
    if action == "drain_instance":
        if name in drained:
            raise f.error("instance", f"instance {name!r} is already draining {when} "
                                      f"({history.get('drain:' + name, '')})")
        live = st.live_instances(topo)
        others = sorted(x.name for x in topo.instances if x.service == inst.service
                        and x.name != name and x.name in live and x.name not in drained)
        if not others and not force:
            raise f.error("instance", f"instance {name!r} is the last running instance of "
                                      f"service {inst.service} that takes new flows {when};"
                                      " draining it leaves new flows of the service nowhere "
                                      "to go: write force: true if that is the point")
        drained.add(name)
    else:
        if name not in drained:
            raise f.error("instance", f"instance {name!r} is not draining {when}; "
                                      "undrain_instance needs an earlier drain_instance")
        drained.discard(name)
    history["drain:" + name] = f"events[{i}]: {action} at {at:g} s"
    return (Event(at, action, instance=name, force=force, label=label, index=i),
            replace(st, drained=frozenset(drained)))


def _daemon(f: Fields, i: int, at: float, action: str, label: str, st: TimelineState,
            topo: Topology, history: dict[str, str]) -> tuple[Event, TimelineState]:
    """``fail_daemon`` / ``restore_daemon``: ``node`` and ``daemon`` (one of
    :data:`~scenarios.spec.model.DAEMONS`; ``bfdd`` only with BFD on)."""
    when = f"at {at:g} s"
    node = f.ref("node", {n.name for n in topo.nodes}, "node")
    daemon = f.choice("daemon", DAEMONS)
    if daemon == "bfdd" and topo.ospf.bfd is None:
        raise f.error("daemon", f"topology {topo.name} runs no bfdd (ospf: bfd: off); "
                                f"expected one of {', '.join(d for d in DAEMONS if d != 'bfdd')}")
    if node in st.failed_nodes:
        raise f.error("node", f"node {node} is failed {when} "
                              f"({history.get('node:' + node, '')}); its daemons are all down")
    key = (node, daemon)
    hkey = f"daemon:{node}/{daemon}"
    if action == "fail_daemon":
        if key in st.failed_daemons:
            raise f.error("daemon", f"{daemon} on node {node} is already failed {when} "
                                    f"({history[hkey]})")
        down = st.failed_daemons | {key}
    else:
        if key not in st.failed_daemons:
            raise f.error("daemon", f"{daemon} on node {node} is not failed {when}; "
                                    "restore_daemon needs an earlier fail_daemon")
        down = st.failed_daemons - {key}
    history[hkey] = f"events[{i}]: {action} at {at:g} s"
    return (Event(at, action, node=node, daemon=daemon, label=label, index=i),
            replace(st, failed_daemons=down))


def _orchestrator(f: Fields, i: int, at: float, action: str, label: str,
                  st: TimelineState, history: dict[str, str]
                  ) -> tuple[Event, TimelineState]:
    """``fail_orchestrator`` / ``restore_orchestrator`` (no target; valid in both control
    modes, a no-op the runner logs with ``control: distributed``)."""
    when = f"at {at:g} s"
    if action == "fail_orchestrator":
        if st.orchestrator_down:
            raise f.error("action", f"the orchestrator is already failed {when} "
                                    f"({history[ORCHESTRATOR]})")
    elif not st.orchestrator_down:
        raise f.error("action", f"the orchestrator is not failed {when}; "
                                "restore_orchestrator needs an earlier fail_orchestrator")
    history[ORCHESTRATOR] = f"events[{i}]: {action} at {at:g} s"
    return (Event(at, action, label=label, index=i),
            replace(st, orchestrator_down=action == "fail_orchestrator"))


def _toggle(f: Fields, kind: str, obj: T, shown: str, down: frozenset[T], fail: bool,
            when: str, history: dict[str, str], done: str) -> frozenset[T]:
    """``down`` (the failed links or nodes) after failing (``fail``) or restoring ``obj``,
    the ``kind`` (link or node) read from field ``kind``, shown as ``shown``."""
    hkey = f"{kind}:" + ("-".join(obj) if isinstance(obj, tuple) else str(obj))
    if fail:
        if obj in down:
            raise f.error(kind, f"{kind} {shown} is already failed {when} ({history[hkey]})")
        new = down | {obj}
    else:
        if obj not in down:
            raise f.error(kind, f"{kind} {shown} is not failed {when}; restore_{kind} needs "
                                f"an earlier fail_{kind}")
        new = down - {obj}
    history[hkey] = done
    return new


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
