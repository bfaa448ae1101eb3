"""Scenario control modes (issue #12): ``control``, the ``central:`` section, the
orchestrator events, the mode-dependent event checks, :meth:`Scenario.with_control` and
the shipped comparison scenario (no root, no network)."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import networkx as nx
import pytest

from dmano.yamlconf import ConfigError, loads_yaml
from scenarios.spec import (
    ACTIONS,
    CONTROL_MODES,
    DOWN_ACTIONS,
    MIN_WALL_PERIOD_S,
    OBJECTIVES,
    ORCHESTRATOR_ACTIONS,
    UP_ACTIONS,
    CentralSpec,
    Scenario,
    load_scenario,
    needs_dmano,
    parse_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_PATH = ROOT / "scenarios" / "t.yaml"  # so that ../topologies/... resolves

HEAD = """\
topology: ../topologies/paper_eval.yaml
policy: paper
time_scale: 0.5
duration_s: 200
"""  # lines 1-4; what text() inserts starts at line 5
TRAFFIC = """\
traffic:
  - {name: main, source: src, destination: sink, chain: 1, arrival: constant,
     flows_per_s: 2, flow_duration_s: 50, packets_per_s: 2}
"""


def text(mode: str = "", *events: str) -> str:
    """A scenario on paper_eval (nodes A-D, instances svc_b, svc_c, svc_d) with ``mode``
    (YAML lines) at line 5 and ``events``."""
    ev = "events:\n" + "".join(f"  - {e}\n" for e in events) if events else ""
    return HEAD + mode + TRAFFIC + ev


def parse(src: str) -> Scenario:
    return parse_scenario(loads_yaml(src, SCENARIO_PATH), SCENARIO_PATH)


def error_of(src: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(src)
    return str(info.value)


CENTRAL = "control: centralized\n"


def events_line(mode: str) -> int:
    """Line of events[0] in text(mode, ...)."""
    return len((HEAD + mode + TRAFFIC).splitlines()) + 2


# -- defaults -------------------------------------------------------------------------------

def test_defaults_are_distributed() -> None:
    s = parse(text())
    assert s.control == "distributed" and not s.centralized
    assert s.central is None
    # the settings a centralized run would use: the D-MANO period, no RTT, the policy's
    # objective and the LSDB of the first node
    assert s.effective_central == CentralSpec(poll_period_s=2.0, mgmt_rtt_ms=0.0,
                                              objective="policy", router="A")
    assert s.wall_central() == CentralSpec(1.0, 0.0, "policy", "A")
    assert "D-MANO period 2 s -> 1 s" in s.scaling_summary()
    assert "orchestrator" not in s.scaling_summary()
    assert CONTROL_MODES == ("distributed", "centralized")
    assert OBJECTIVES == ("policy", "min-max-utilisation")


def test_centralized_without_section_gets_defaults() -> None:
    s = parse(text(CENTRAL))
    assert s.control == "centralized" and s.centralized
    assert s.central is None
    assert s.effective_central == CentralSpec(2.0, 0.0, "policy", "A")
    # the default poll period follows dmano_period_s
    s = parse(text("dmano_period_s: 3\n" + CENTRAL))
    assert s.effective_central.poll_period_s == 3
    s = parse(text("dmano_period_s: 3\n" + CENTRAL + "central: {mgmt_rtt_ms: 5}\n"))
    assert s.central == CentralSpec(3.0, 5.0, "policy", "A")


def test_explicit_distributed_and_empty_central() -> None:
    assert parse(text("control: distributed\n")).control == "distributed"
    s = parse(text(CENTRAL + "central: {}\n"))
    assert s.central == CentralSpec(2.0, 0.0, "policy", "A")


def test_central_section() -> None:
    s = parse(text(CENTRAL + "central:\n  poll_period_s: 4\n  mgmt_rtt_ms: 20\n"
                             "  objective: min-max-utilisation\n  router: C\n"))
    assert s.central == CentralSpec(poll_period_s=4.0, mgmt_rtt_ms=20.0,
                                    objective="min-max-utilisation", router="C")
    assert s.effective_central is s.central
    # wall clock: both durations x time_scale (0.5)
    assert s.wall_central() == CentralSpec(2.0, 10.0, "min-max-utilisation", "C")
    assert s.wall_central(CentralSpec(1.0, 3.0)).mgmt_rtt_ms == 1.5
    assert s.central.poll_period_s == 4  # the scenario's own stays in scenario time
    summary = s.scaling_summary()
    assert "control centralized: objective min-max-utilisation, LSDB of node C's router" \
        in summary
    assert "orchestrator poll period 4 s -> 2 s, management RTT 20 ms -> 10 ms" in summary
    assert "D-MANO period" not in summary
    assert isinstance(s.central.mgmt_rtt_ms, float)


def test_poll_period_at_the_wall_clock_limit() -> None:
    # 0.2 s x 0.5 = 0.1 s of wall time: exactly the limit, allowed
    s = parse(text(CENTRAL + "central: {poll_period_s: 0.2}\n"))
    assert s.wall_central().poll_period_s == pytest.approx(MIN_WALL_PERIOD_S)


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("control: hybrid\n",
         "t.yaml:5: control: expected one of distributed, centralized, got 'hybrid'"),
        ("control: 1\n",
         "t.yaml:5: control: expected one of distributed, centralized, got 1"),
        ("central: {poll_period_s: 2}\n",
         "t.yaml:5: central: needs control: centralized (this scenario has control: "
         "distributed, which runs no orchestrator); add control: centralized or remove the "
         "section"),
        ("control: distributed\ncentral:\n  mgmt_rtt_ms: 20\n",
         "t.yaml:6: central: needs control: centralized (this scenario has control: "
         "distributed"),
        (CENTRAL + "central: [1, 2]\n",
         "t.yaml:6: central: expected a mapping, got a list"),
        (CENTRAL + "central:\n  poll_period_s: 0\n",
         "t.yaml:7: central.poll_period_s: expected a number > 0, got 0"),
        (CENTRAL + "central:\n  poll_period_s: -1\n",
         "t.yaml:7: central.poll_period_s: expected a number > 0, got -1"),
        (CENTRAL + "central:\n  poll_period_s: fast\n",
         "t.yaml:7: central.poll_period_s: expected a number, got string 'fast'"),
        (CENTRAL + "central:\n  poll_period_s: 4000\n",
         "t.yaml:7: central.poll_period_s: expected a number <= 3600, got 4000"),
        (CENTRAL + "central:\n  poll_period_s: 0.1\n",
         "t.yaml:7: central.poll_period_s: the orchestrator's poll period would be 0.05 s of "
         "wall time (0.1 s x time_scale 0.5); keep it >= 0.1 s (one poll reads every node's "
         "counters and may write every connector): raise time_scale to at least 1"),
        (CENTRAL + "central:\n  mgmt_rtt_ms: -1\n",
         "t.yaml:7: central.mgmt_rtt_ms: expected a number >= 0, got -1"),
        (CENTRAL + "central:\n  mgmt_rtt_ms: 10001\n",
         "t.yaml:7: central.mgmt_rtt_ms: expected a number <= 10000, got 10001"),
        (CENTRAL + "central:\n  mgmt_rtt_ms: true\n",
         "t.yaml:7: central.mgmt_rtt_ms: expected a number, got boolean True"),
        (CENTRAL + "central:\n  objective: lp\n",
         "t.yaml:7: central.objective: expected one of policy, min-max-utilisation, got 'lp'"),
        (CENTRAL + "central:\n  router: Z\n",
         "t.yaml:7: central.router: unknown node 'Z' (known: A, B, C, D)"),
        (CENTRAL + "central:\n  router: 5\n",
         "t.yaml:7: central.router: expected a non-empty string, got int 5"),
        (CENTRAL + "central:\n  poll_period_s: 2\n  colour: red\n",
         "t.yaml:8: central.colour: unknown key (allowed here: mgmt_rtt_ms, objective, "
         "poll_period_s, router)"),
    ],
)
def test_errors(mode: str, expected: str) -> None:
    assert expected in error_of(text(mode))


def test_wall_poll_check_applies_to_the_default_too() -> None:
    """The default poll period is the D-MANO period, which has the same check."""
    msg = error_of(text("dmano_period_s: 0.1\n" + CENTRAL))
    assert "dmano_period_s: the D-MANO period would be 0.05 s of wall time" in msg


# -- orchestrator events --------------------------------------------------------------------

def test_orchestrator_actions_are_events() -> None:
    assert ORCHESTRATOR_ACTIONS == ("fail_orchestrator", "restore_orchestrator")
    assert set(ORCHESTRATOR_ACTIONS) <= set(ACTIONS)
    assert "fail_orchestrator" in DOWN_ACTIONS and "restore_orchestrator" in UP_ACTIONS


@pytest.mark.parametrize("mode", ["", CENTRAL])
def test_orchestrator_toggles(mode: str) -> None:
    """Valid in both modes (a logged no-op when distributed, so compare runs one file)."""
    s = parse(text(mode,
                   "{at_s: 10, action: fail_orchestrator, label: central down}",
                   "{at_s: 20, action: fail_instance, instance: svc_b}",
                   "{at_s: 30, action: restore_orchestrator}",
                   "{at_s: 40, action: fail_orchestrator}",
                   "{at_s: 50, action: restore_orchestrator}"))
    assert [s.state_at(t).orchestrator_down for t in (0, 10, 25, 30, 45, 60)] == [
        False, True, True, False, True, False]
    assert s.states[0][1].orchestrator_down is False
    # other state is untouched by the orchestrator's events
    assert s.state_at(35).failed_instances == {"svc_b"}
    assert [e.target for e in s.events] == ["orchestrator", "svc_b", "orchestrator",
                                            "orchestrator", "orchestrator"]
    assert s.events[0].describe() == "central down"
    assert s.events[2].describe() == "restore_orchestrator orchestrator"
    ev = s.events[0]
    assert (ev.instance, ev.node, ev.link, ev.daemon, ev.traffic) == (None,) * 5


@pytest.mark.parametrize("mode", ["", CENTRAL])
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["{at_s: 10, action: restore_orchestrator}"],
         "events[0].action: the orchestrator is not failed at 10 s; restore_orchestrator "
         "needs an earlier fail_orchestrator"),
        (["{at_s: 10, action: fail_orchestrator}", "{at_s: 20, action: fail_orchestrator}"],
         "events[1].action: the orchestrator is already failed at 20 s (events[0]: "
         "fail_orchestrator at 10 s)"),
        (["{at_s: 10, action: fail_orchestrator}", "{at_s: 20, action: restore_orchestrator}",
          "{at_s: 30, action: restore_orchestrator}"],
         "events[2].action: the orchestrator is not failed at 30 s"),
        (["{at_s: 10, action: fail_orchestrator, node: B}"],
         "events[0].node: unknown key (allowed here: action, at_s, label)"),
        (["{at_s: 10, action: fail_orchestrator}",
          "{at_s: 20, action: restore_orchestrator, instance: svc_b}"],
         "events[1].instance: unknown key (allowed here: action, at_s, label)"),
    ],
)
def test_orchestrator_toggle_errors(mode: str, events: list[str], expected: str) -> None:
    msg = error_of(text(mode, *events))
    assert expected in msg
    n = int(re.match(r"events\[(\d+)\]", expected).group(1))  # type: ignore[union-attr]
    assert msg.startswith(f"{SCENARIO_PATH}:{events_line(mode) + n}: ")


# -- events that need a D-MANO --------------------------------------------------------------

NO_DMANO = "needs control: distributed: no D-MANO runs with control: centralized"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["{at_s: 10, action: fail_daemon, node: B, daemon: dmano}"],
         "events[0].daemon: fail_daemon of daemon dmano " + NO_DMANO),
        (["{at_s: 10, action: restore_daemon, node: B, daemon: dmano}"],
         "events[0].daemon: restore_daemon of daemon dmano " + NO_DMANO),
        (["{at_s: 10, action: fail_instance, instance: svc_c}",
          "{at_s: 20, action: drain_instance, instance: svc_b}"],
         "events[1].action: drain_instance (a drain is announced by the instance's D-MANO) "
         + NO_DMANO),
        (["{at_s: 10, action: undrain_instance, instance: svc_b}"],
         "events[0].action: undrain_instance (a drain is announced by the instance's D-MANO) "
         + NO_DMANO),
    ],
)
def test_dmano_events_need_distributed(events: list[str], expected: str) -> None:
    msg = error_of(text(CENTRAL, *events))
    assert expected in msg
    n = len(events) - 1
    assert msg.startswith(f"{SCENARIO_PATH}:{events_line(CENTRAL) + n}: ")


def test_dmano_events_are_fine_distributed() -> None:
    s = parse(text("", "{at_s: 10, action: fail_daemon, node: B, daemon: dmano}",
                   "{at_s: 20, action: drain_instance, instance: svc_c}",
                   "{at_s: 30, action: restore_daemon, node: B, daemon: dmano}",
                   "{at_s: 40, action: undrain_instance, instance: svc_c}"))
    assert [e.action for e in s.events] == ["fail_daemon", "drain_instance",
                                            "restore_daemon", "undrain_instance"]


def test_other_daemons_are_fine_centralized() -> None:
    s = parse(text(CENTRAL, "{at_s: 10, action: fail_daemon, node: B, daemon: connector}",
                   "{at_s: 20, action: fail_daemon, node: C, daemon: ospfd}",
                   "{at_s: 30, action: restore_daemon, node: B, daemon: connector}",
                   "{at_s: 40, action: fail_node, node: D}"))
    assert s.state_at(25).failed_daemons == {("B", "connector"), ("C", "ospfd")}


def test_needs_dmano() -> None:
    assert needs_dmano("fail_daemon", "dmano") == "fail_daemon of daemon dmano " + NO_DMANO
    assert needs_dmano("fail_daemon", "ospfd") is None
    assert needs_dmano("drain_instance") is not None
    assert needs_dmano("fail_instance") is None
    assert needs_dmano("fail_orchestrator") is None


# -- with_control -------------------------------------------------------------------------

def test_with_control_both_ways() -> None:
    dist = parse(text("", "{at_s: 10, action: fail_orchestrator}",
                      "{at_s: 20, action: restore_orchestrator}"))
    cen = dist.with_control("centralized")
    assert cen.control == "centralized" and cen.centralized
    assert cen.central == CentralSpec(2.0, 0.0, "policy", "A")  # the defaults, filled in
    assert dist.control == "distributed" and dist.central is None  # a copy: unchanged
    assert (cen.events, cen.states, cen.traffic, cen.seed) == (
        dist.events, dist.states, dist.traffic, dist.seed)
    back = cen.with_control("distributed")
    assert back == dist
    # a centralized file keeps its section; distributed drops it
    own = parse(text(CENTRAL + "central: {mgmt_rtt_ms: 20, router: D}\n"))
    assert own.with_control("centralized") == own
    assert own.with_control("centralized").central == CentralSpec(2.0, 20.0, "policy", "D")
    d = own.with_control("distributed")
    assert d.control == "distributed" and d.central is None
    assert d.effective_central == CentralSpec(2.0, 0.0, "policy", "A")  # back to defaults
    with pytest.raises(ValueError, match="control: expected one of distributed, "
                                         "centralized, got 'central'"):
        own.with_control("central")


@pytest.mark.parametrize(
    ("event", "field", "action"),
    [
        ("{at_s: 30, action: fail_daemon, node: B, daemon: dmano}", "daemon",
         "fail_daemon of daemon dmano"),
        ("{at_s: 30, action: drain_instance, instance: svc_b}", "action", "drain_instance"),
    ],
)
def test_with_control_refuses_dmano_events(event: str, field: str, action: str) -> None:
    s = parse(text("", "{at_s: 10, action: fail_instance, instance: svc_c}",
                   "{at_s: 20, action: restore_instance, instance: svc_c}", event))
    with pytest.raises(ConfigError) as info:
        s.with_control("centralized")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == f"events[2].{field}"
    assert err.line == events_line("") + 2
    assert str(err).startswith(f"{SCENARIO_PATH}:{events_line('') + 2}: events[2].{field}: "
                               f"{action}")
    assert NO_DMANO in str(err)
    # the same words as at load time
    with pytest.raises(ConfigError) as at_load:
        parse(text(CENTRAL, "{at_s: 10, action: fail_instance, instance: svc_c}",
                   "{at_s: 20, action: restore_instance, instance: svc_c}", event))
    assert at_load.value.detail == err.detail and at_load.value.field == err.field
    assert s.with_control("distributed") == s


def test_event_line_is_not_part_of_equality() -> None:
    s = parse(text("", "{at_s: 10, action: fail_orchestrator}"))
    ev = s.events[0]
    assert ev.line == events_line("")
    assert replace(ev, line=0) == ev


def test_noisy_load_warning_uses_the_poll_period(caplog: pytest.LogCaptureFixture) -> None:
    slow = text(CENTRAL + "central: {poll_period_s: 0.4}\n").replace(
        "packets_per_s: 2}", "packets_per_s: 4}")
    with caplog.at_level(logging.WARNING, logger="scenarios.spec"):
        parse(slow)  # 4 packets/s x 0.2 s of wall time: 0.8 per poll period
    assert "0.8 packet(s) per flow per orchestrator poll period" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scenarios.spec"):
        parse(slow.replace(CENTRAL + "central: {poll_period_s: 0.4}\n", ""))
    assert caplog.text == ""  # distributed: 4 x 1 s per D-MANO period


# -- the shipped comparison scenario --------------------------------------------------------

FULL = ROOT / "scenarios" / "central_vs_distributed.yaml"
SHORT = ROOT / "scenarios" / "central_vs_distributed_short.yaml"


def test_central10_topology() -> None:
    s = load_scenario(FULL)
    topo = s.topology
    assert topo.name == "central10" and len(topo.nodes) >= 10
    g = nx.Graph()
    g.add_weighted_edges_from((lk.a, lk.b, lk.cost) for lk in topo.links)
    assert len({lk.cost for lk in topo.links}) >= 3  # varied costs
    assert len(topo.links) > len(topo.nodes)  # more than a ring
    assert nx.is_biconnected(g) and nx.edge_connectivity(g) >= 2  # no single cut
    sources = {h.node for h in topo.hosts if h.role == "source"}
    sinks = {h.node for h in topo.hosts if h.role == "sink"}
    assert len(sources) >= 2 and sinks and not sources & sinks
    for svc in ("FW", "IDS"):
        inst = [i for i in topo.instances if i.service == svc]
        assert len(inst) >= 3 and len({i.node for i in inst}) == len(inst)
        assert len({i.capacity for i in inst}) == len(inst)
    assert all(set(c.services) == {"FW", "IDS"} for c in topo.chains)
    assert {r.node for r in topo.classifier} == sources


@pytest.mark.parametrize("path", [FULL, SHORT])
def test_shipped_comparison_scenarios_load(path: Path) -> None:
    s = load_scenario(path)
    assert s.control == "centralized"
    assert s.central == CentralSpec(poll_period_s=s.policy.period_s, mgmt_rtt_ms=20,
                                    objective="policy", router="N1")
    assert [e.action for e in s.events] == [
        "fail_instance", "restore_instance", "set_load", "fail_orchestrator",
        "fail_instance", "restore_orchestrator", "restore_instance"]
    crash1, _, step, down, crash2, up, _ = s.events
    assert crash2.instance != crash1.instance
    assert 0 < crash2.at_s - down.at_s <= 10 and up.at_s > crash2.at_s
    assert s.state_at(crash2.at_s).orchestrator_down
    assert not s.state_at(s.duration_s).orchestrator_down
    assert s.state_at(s.duration_s).failed_instances == frozenset()
    assert len(s.traffic) == 2 and len({c.source for c in s.traffic}) == 2
    assert 150 <= s.duration_s <= 180
    # steady windows before and after the load step, none in a transient of an event
    before = [w for w in s.measure.windows if w.end_s <= step.at_s]
    after = [w for w in s.measure.windows if w.start_s >= step.at_s]
    assert before and after
    for w in s.measure.windows:
        assert not any(w.start_s < e.at_s < w.end_s for e in s.events)
    # load: 40-70 % of each service's capacity in every window, <= 2000 packets/s
    topo = s.topology
    for w in s.measure.windows:
        st = s.state_at(w.start_s)
        offered = sum(st.rate(c.name)[0] * c.flow_duration_s * st.rate(c.name)[1]
                      for c in s.traffic)
        assert offered <= 2000
        for svc in ("FW", "IDS"):
            cap = sum(i.capacity for i in topo.instances if i.service == svc
                      and i.name in st.live_instances(topo))
            assert 0.4 <= offered / cap <= 0.7, (w.name, svc, offered / cap)
        # references: the policy's fixed point the comments give, within half a point of
        # the shares in proportion to capacity (equal utilisation), per service
        for svc in ("FW", "IDS"):
            inst = [i for i in topo.instances if i.service == svc]
            total = sum(i.capacity for i in inst)
            assert sum(w.reference_map[i.name] for i in inst) == pytest.approx(100, abs=0.1)
            for i in inst:
                assert w.reference_map[i.name] == pytest.approx(100 * i.capacity / total,
                                                                abs=0.5)
    # the same file runs distributed (compare)
    d = s.with_control("distributed")
    assert d.control == "distributed" and d.central is None and d.events == s.events


def test_shipped_comparison_wall_times() -> None:
    full, short = load_scenario(FULL), load_scenario(SHORT)
    assert full.wall_duration_s <= 90
    assert short.wall_duration_s <= 45
    assert short.time_scale == full.time_scale / 2
    for s in (full, short):
        assert s.wall_central().poll_period_s >= MIN_WALL_PERIOD_S
        assert s.wall_policy().period_s >= MIN_WALL_PERIOD_S
    # the same experiment in scenario time
    assert [e.describe() for e in short.events] == [e.describe() for e in full.events]
    assert short.events == full.events
    assert short.traffic == full.traffic and short.measure == full.measure
    assert short.central == full.central
    assert full.wall_central().mgmt_rtt_ms == 10 and short.wall_central().mgmt_rtt_ms == 5
