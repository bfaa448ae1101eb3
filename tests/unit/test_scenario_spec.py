"""Scenario file validation and time-scaling arithmetic (no root, no network)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmano.yamlconf import ConfigError, loads_yaml
from scenarios.spec import (
    MIN_WALL_PERIOD_S,
    Scenario,
    apply_policy_param,
    arrival_segments,
    flow_schedule,
    load_scenario,
    parse_scenario,
    policy_params,
    run_dir,
    run_set_dir,
)

ROOT = Path(__file__).resolve().parents[2]
# A path inside scenarios/ so that "../topologies/..." resolves; the file need not exist.
SCENARIO_PATH = ROOT / "scenarios" / "t.yaml"

BASE = """\
topology: ../topologies/paper_eval.yaml
policy: paper
time_scale: 0.5
duration_s: 300
traffic:
  - name: main
    source: src
    destination: sink
    chain: 1
    arrival: constant
    flows_per_s: 2
    flow_duration_s: 50
    packets_per_s: 2
events:
  - {at_s: 150, action: start_instance, instance: svc_d}
measure:
  sample_period_s: 2
  warmup_s: 50
  windows:
    - {name: phase1, start_s: 100, end_s: 150}
    - {name: phase2, start_s: 250, end_s: 300}
"""


def parse(text: str) -> Scenario:
    return parse_scenario(loads_yaml(text, SCENARIO_PATH), SCENARIO_PATH)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def with_events(*events: str) -> str:
    head, _, tail = BASE.partition("events:\n")
    _, _, rest = tail.partition("measure:\n")
    lines = "".join(f"  - {e}\n" for e in events)
    return f"{head}events:\n{lines}measure:\n{rest}"


# -- valid files ----------------------------------------------------------------------------

def test_base_is_valid() -> None:
    s = parse(BASE)
    assert s.name == "t"
    assert s.topology.name == "paper_eval"
    assert s.policy.name == "paper"
    assert s.traffic[0].chain == 1
    assert s.events[0].instance == "svc_d"
    assert [w.name for w in s.measure.windows] == ["phase1", "phase2"]
    assert s.output == Path("results")
    assert (s.repetitions, s.seed) == (1, 1)


@pytest.mark.parametrize("name", ["paper_fig4.yaml", "paper_fig4_short.yaml"])
def test_shipped_scenarios_load(name: str) -> None:
    s = load_scenario(ROOT / "scenarios" / name)
    assert s.duration_s == 300
    assert s.policy.name == "paper" and s.policy.period_s == 2
    c = s.traffic[0]
    assert (c.arrival, c.flows_per_s, c.flow_duration_s, c.packets_per_s) == (
        "constant", 2, 50, 2)
    assert c.concurrent_flows == 100 and c.load_units_per_s == 200
    assert [(e.at_s, e.action, e.instance) for e in s.events] == [
        (150, "start_instance", "svc_d")]
    assert [(w.name, w.start_s, w.end_s) for w in s.measure.windows] == [
        ("phase1", 100, 150), ("phase2", 250, 300)]
    assert s.measure.windows[1].reference_map == {"svc_b": 40, "svc_c": 40, "svc_d": 20}
    assert s.repetitions == 1
    assert s.state_at(100).live_instances(s.topology) == {"svc_b", "svc_c"}
    assert s.state_at(150).live_instances(s.topology) == {"svc_b", "svc_c", "svc_d"}


def test_shipped_wall_times() -> None:
    full = load_scenario(ROOT / "scenarios" / "paper_fig4.yaml")
    short = load_scenario(ROOT / "scenarios" / "paper_fig4_short.yaml")
    assert full.wall_duration_s == 150  # a few minutes with bring-up
    assert 30 <= short.wall_duration_s <= 50  # ~40-60 s with bring-up and teardown
    assert short.wall_policy().period_s >= MIN_WALL_PERIOD_S


@pytest.mark.parametrize("name", ["faults", "maintenance"])
def test_shipped_fault_scenarios(name: str) -> None:
    full = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    short = load_scenario(ROOT / "scenarios" / f"{name}_short.yaml")
    topo = full.topology
    assert len(topo.nodes) >= 8 and topo.ospf.bfd is not None
    assert all(sum(1 for i in topo.instances if i.service == svc.name) >= 2
               for svc in topo.services) and len(topo.services) >= 2
    # the same experiment, scaled: same events and traffic in scenario time
    assert [e.describe() for e in short.events] == [e.describe() for e in full.events]
    assert short.traffic[0].concurrent_flows == full.traffic[0].concurrent_flows
    assert full.wall_duration_s <= 180  # with bring-up and teardown < 5 min
    assert short.wall_duration_s <= 40  # < 60 s with bring-up and teardown
    assert short.wall_policy().period_s >= MIN_WALL_PERIOD_S
    for s in (full, short):  # traffic throughout: arrivals until the end
        assert s.traffic[0].end_s == s.duration_s
    if name == "maintenance":  # the stop comes after the drained instance's flows ended
        drain, stop = (next(e for e in full.events if e.action == a)
                       for a in ("drain_instance", "stop_instance"))
        assert stop.at_s - drain.at_s > full.traffic[0].flow_duration_s + 1
        assert [e.action for e in full.events] == [
            "drain_instance", "stop_instance", "start_instance", "undrain_instance"]
    else:
        assert [e.action for e in full.events] == [
            "fail_instance", "restore_instance", "fail_link", "restore_link", "fail_node",
            "restore_node"]


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("instance: svc_d}", "instance: svc_x}",
         "t.yaml:15: events[0].instance: unknown instance 'svc_x' (known: svc_b, svc_c, svc_d)"),
        ("{at_s: 150,", "{at_s: -1,", "t.yaml:15: events[0].at_s: expected a number >= 0, got -1"),
        ("{at_s: 150,", "{at_s: 300,",
         "t.yaml:15: events[0].at_s: expected a time in [0, 300) (before duration_s), got 300"),
        ("{at_s: 150,", "{at_s: soon,",
         "t.yaml:15: events[0].at_s: expected a number, got string 'soon'"),
        ("    flows_per_s: 2\n", "",
         "t.yaml:6: traffic[0].flows_per_s: missing required field"),
        ("policy: paper\n", "policy: paper\ncolour: red\n",
         "t.yaml:3: colour: unknown key (allowed here:"),
        ("instance: svc_d}", "instance: svc_d, node: B}",
         "t.yaml:15: events[0].node: unknown key (allowed here: action, at_s, instance, label)"),
        ("time_scale: 0.5", "time_scale: 0",
         "t.yaml:3: time_scale: expected a number > 0, got 0"),
        ("time_scale: 0.5", "time_scale: -2",
         "t.yaml:3: time_scale: expected a number > 0, got -2"),
        ("{name: phase2, start_s: 250, end_s: 300}", "{name: phase2, start_s: 250, end_s: 301}",
         "t.yaml:21: measure.windows[1].end_s: expected a time <= duration_s (300), got 301"),
        ("{name: phase2, start_s: 250, end_s: 300}", "{name: phase2, start_s: 300, end_s: 310}",
         "t.yaml:21: measure.windows[1].start_s: expected a time in [50, 300) (inside "
         "duration_s), got 300"),
        ("{name: phase1, start_s: 100,", "{name: phase1, start_s: 20,",
         "t.yaml:20: measure.windows[0].start_s: expected a time >= warmup_s (50): a "
         "steady-state window cannot start in the warm-up, got 20"),
        ("{name: phase1, start_s: 100, end_s: 150}", "{name: phase1, start_s: 100, end_s: 90}",
         "measure.windows[0].end_s: expected a time after start_s (100), got 90"),
        ("{name: phase1, start_s: 100, end_s: 150}", "{name: phase1, start_s: 100, end_s: 101}",
         "measure.windows[0].end_s: the window is 1 s long, shorter than one sample (2 s)"),
        ("{name: phase2,", "{name: phase1,",
         "t.yaml:21: measure.windows[1].name: duplicate name phase1 (first at windows[0])"),
        ("policy: paper", "policy: fancy",
         "t.yaml:2: policy: expected one of cpu, inverse-cost, paper, static or a path"),
        ("policy: paper", "policy: nothere.yaml", "t.yaml:2: policy: no such file"),
        ("topology: ../topologies/paper_eval.yaml", "topology: nothere.yaml",
         "t.yaml:1: topology: no such file"),
        ("    source: src\n", "    source: sink\n",
         "t.yaml:7: traffic[0].source: host 'sink' has role sink"),
        ("    destination: sink\n", "    destination: nobody\n",
         "t.yaml:8: traffic[0].destination: unknown host 'nobody' (known: sink, src)"),
        ("    chain: 1\n", "    chain: 7\n",
         "t.yaml:9: traffic[0].chain: unknown chain spi 7 (known: 1)"),
        ("    chain: 1\n", "    chain: none\n",
         "t.yaml:9: traffic[0].chain: the topology's classifier[0] at node A puts udp "
         "10.1.100.10:10000-59999 -> 10.1.100.11:5000 into chain 1; write chain: 1"),
        ("    chain: 1\n", "",
         "t.yaml:6: traffic[0].chain: missing required field"),
        ("    arrival: constant\n", "    arrival: bursty\n",
         "traffic[0].arrival: expected one of constant, poisson, got 'bursty'"),
        ("    packets_per_s: 2\n", "    packets_per_s: 0\n",
         "traffic[0].packets_per_s: expected a number > 0, got 0"),
        ("    packets_per_s: 2\n", "    packets_per_s: 2\n    src_ports: 10000-10100\n",
         "traffic[0].src_ports: expected a range of at least 210 ports"),
        ("    packets_per_s: 2\n", "    packets_per_s: 2\n    end_s: 400\n",
         "traffic[0].end_s: expected a time in (0, 300]"),
        ("    packets_per_s: 2\n", "    packets_per_s: 2\n    payload_bytes: 1500\n",
         "traffic[0].payload_bytes: expected an integer in 20..1472, got 1500"),
        ("time_scale: 0.5", "time_scale: 0.01",
         "t.yaml:3: time_scale: the D-MANO period would be 0.02 s of wall time (2 s x "
         "time_scale 0.01); keep it >= 0.1 s"),
        ("measure:\n", "repetitions: 0\nmeasure:\n",
         "repetitions: expected an integer in 1..1000, got 0"),
    ],
)
def test_errors(old: str, new: str, expected: str) -> None:
    assert old in BASE
    assert expected in error_of(BASE.replace(old, new, 1))


def test_traffic_needs_a_class() -> None:
    text = BASE.split("traffic:")[0] + "traffic: []\n"
    assert "t.yaml:5: traffic: expected at least 1 item(s), got 0" in error_of(text)
    assert "t.yaml:1: traffic: missing required field" in error_of(BASE.split("traffic:")[0])


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["{at_s: 10, action: start_instance, instance: svc_b}"],
         "events[0].instance: instance 'svc_b' is already running at 10 s (as the topology "
         "starts it)"),
        (["{at_s: 10, action: stop_instance, instance: svc_d}"],
         "events[0].instance: instance 'svc_d' is not running at 10 s (start: false in the "
         "topology)"),
        (["{at_s: 10, action: restore_instance, instance: svc_b}"],
         "events[0].instance: instance 'svc_b' is not killed at 10 s (as the topology "
         "starts it); restore_instance restarts an instance after fail_instance"),
        (["{at_s: 10, action: fail_instance, instance: svc_b}",
          "{at_s: 20, action: start_instance, instance: svc_b}"],
         "events[1].instance: instance 'svc_b' was killed (events[0]: fail_instance at 10 s);"
         " use restore_instance"),
        (["{at_s: 10, action: fail_link, link: B-C}"],
         "events[0].link: no link between B and C in the topology (known: A-B, A-C, A-D)"),
        (["{at_s: 10, action: fail_link, link: A-X}"],
         "events[0].link: unknown node 'X' in 'A-X' (known nodes: A, B, C, D)"),
        (["{at_s: 10, action: fail_link, link: AB}"],
         "events[0].link: expected a link as A-B (known: A-B, A-C, A-D), got 'AB'"),
        (["{at_s: 10, action: restore_link, link: A-B}"],
         "events[0].link: link A-B is not failed at 10 s"),
        (["{at_s: 10, action: fail_link, link: A-B}", "{at_s: 20, action: fail_link, link: B-A}"],
         "events[1].link: link B-A is already failed at 20 s (events[0]: fail_link at 10 s)"),
        (["{at_s: 10, action: fail_node, node: Z}"],
         "events[0].node: unknown node 'Z' (known: A, B, C, D)"),
        (["{at_s: 10, action: restore_node, node: B}"],
         "events[0].node: node B is not failed at 10 s"),
        (["{at_s: 10, action: fail_node, node: D}",
          "{at_s: 20, action: start_instance, instance: svc_d}"],
         "events[1].instance: instance 'svc_d' is on node D, which is failed at 20 s "
         "(events[0]: fail_node at 10 s); restore_node first"),
        (["{at_s: 20, action: fail_node, node: D}", "{at_s: 10, action: restore_node, node: D}"],
         "events[1].at_s: expected a time >= 20 (events must be in time order; events[0] is "
         "at 20), got 10"),
        (["{at_s: 10, action: explode}"],
         "events[0].action: expected one of start_instance, stop_instance"),
        (["{at_s: 10, action: start_instance}"],
         "events[0].instance: missing required field"),
        (["{at_s: 10, action: set_policy_param, name: colour, value: 1}"],
         "events[0].name: expected a policy field of policy 'paper': period_s, "
         "max_group_size, hysteresis.abs, hysteresis.rel, cost.scale, cost.min_cost, "
         "weight.function; got 'colour'"),
        (["{at_s: 10, action: set_policy_param, name: hysteresis.rel, value: 5}"],
         "events[0].value: expected a number <= 1, got 5 (policy field hysteresis.rel)"),
        (["{at_s: 10, action: set_policy_param, name: weight.function, value: best}"],
         "events[0].value: expected one of inverse-cost, proportional-cost, got 'best' "
         "(policy field weight.function)"),
        (["{at_s: 10, action: set_policy_param, name: period_s, value: 0.1}"],
         "events[0].value: the D-MANO period would be 0.05 s of wall time"),
        (["{at_s: 10, action: set_load, traffic: main}"],
         "events[0].flows_per_s: set_load needs flows_per_s, packets_per_s or both"),
        (["{at_s: 10, action: set_load, traffic: other, flows_per_s: 1}"],
         "events[0].traffic: unknown traffic class 'other' (known: main)"),
        (["{at_s: 10, action: set_load, traffic: main, flows_per_s: 1000}"],
         "events[0].flows_per_s: traffic main: src_ports has too few ports for 1000 flows/s"),
    ],
)
def test_timeline_errors(events: list[str], expected: str) -> None:
    assert expected in error_of(with_events(*events))


def test_reference_errors() -> None:
    ok = BASE.replace("{name: phase2, start_s: 250, end_s: 300}",
                      "{name: phase2, start_s: 250, end_s: 300, reference: {svc_d: 20}}")
    assert parse(ok).measure.windows[1].reference_map == {"svc_d": 20.0}
    bad = BASE.replace("{name: phase1, start_s: 100, end_s: 150}",
                       "{name: phase1, start_s: 100, end_s: 150, reference: {svc_d: 20}}")
    assert ("t.yaml:20: measure.windows[0].reference.svc_d: instance 'svc_d' is not running "
            "at the start of window phase1 (100 s), so it cannot take 20 %") in error_of(bad)
    zero = bad.replace("{svc_d: 20}", "{svc_d: 0}")
    assert parse(zero).measure.windows[0].reference_map == {"svc_d": 0.0}
    unknown = bad.replace("{svc_d: 20}", "{svc_q: 20}")
    assert "reference.svc_q: unknown instance 'svc_q'" in error_of(unknown)
    over = bad.replace("{svc_d: 20}", "{svc_b: 120}")
    assert "reference.svc_b: expected a share in percent, 0..100, got 120" in error_of(over)


def test_full_timeline_is_played() -> None:
    s = parse(with_events(
        "{at_s: 100, action: fail_instance, instance: svc_b}",
        "{at_s: 110, action: restore_instance, instance: svc_b}",
        "{at_s: 120, action: fail_link, link: D-A}",
        "{at_s: 130, action: fail_node, node: C}",
        "{at_s: 140, action: start_instance, instance: svc_d, label: D up}",
        "{at_s: 150, action: restore_node, node: C}",
        "{at_s: 160, action: restore_link, link: A-D}",
        "{at_s: 170, action: set_policy_param, name: period_s, value: 4}",
        "{at_s: 180, action: set_load, traffic: main, flows_per_s: 3}",
        "{at_s: 190, action: stop_instance, instance: svc_d}",
    ))
    topo = s.topology
    assert s.state_at(105).live_instances(topo) == {"svc_c"}
    assert s.state_at(105).failed_instances == {"svc_b"}
    assert s.state_at(125).failed_links == {("A", "D")}
    assert s.state_at(135).live_instances(topo) == {"svc_b"}
    assert s.state_at(145).live_instances(topo) == {"svc_b", "svc_d"}
    assert s.state_at(150).live_instances(topo) == {"svc_b", "svc_c", "svc_d"}
    assert s.state_at(165).failed_links == frozenset()
    assert s.state_at(175).policy.period_s == 4
    assert s.state_at(185).rate("main") == (3, 2)
    assert s.state_at(195).live_instances(topo) == {"svc_b", "svc_c"}
    ev = s.events[7]
    assert ev.policy is not None and ev.policy.period_s == 4
    assert s.wall_policy(ev.policy).period_s == 2  # time_scale 0.5
    assert [e.target for e in s.events[:3]] == ["svc_b", "svc_b", "D-A"]
    assert s.events[4].describe() == "D up"
    assert s.events[8].target == "main flows_per_s=3"
    assert s.events[7].target == "period_s=4"


def test_policy_params() -> None:
    s = parse(BASE)
    assert "cost.scale" in policy_params(s.policy)
    p = apply_policy_param(s.policy, "weight.function", "inverse-cost")
    assert p.weight.name == "inverse-cost" and p.cost == s.policy.cost
    with pytest.raises(ConfigError):
        apply_policy_param(s.policy, "max_group_size", 0)


def test_policy_path_and_period_override(tmp_path: Path) -> None:
    pol = tmp_path / "mine.yaml"
    pol.write_text("cost: static\nweight: inverse-cost\nperiod_s: 3\n")
    scen = tmp_path / "s.yaml"
    text = BASE.replace("policy: paper", "policy: mine.yaml\ndmano_period_s: 5").replace(
        "../topologies/paper_eval.yaml", str(ROOT / "topologies" / "paper_eval.yaml"))
    scen.write_text(text)
    s = load_scenario(scen)
    assert s.policy.name == "mine" and s.policy.period_s == 5
    assert s.policy_ref == "mine.yaml"
    assert s.wall_policy().period_s == 2.5


# -- scaling --------------------------------------------------------------------------------

def test_scaling_arithmetic() -> None:
    s = parse(BASE)  # time_scale 0.5
    assert s.wall(300) == 150 and s.wall_duration_s == 150
    assert s.scenario_time(75) == 150
    assert s.wall_rate(2) == 4  # flows/s: rates divide by the scale
    assert s.wall_policy().period_s == 1.0  # times multiply by it
    assert s.policy.period_s == 2.0  # the scenario's own policy stays in scenario time
    summary = s.scaling_summary()
    assert "2 flows/s -> 4 flows/s" in summary
    assert "flows of 50 s -> 25 s" in summary
    assert "2 packets/s per flow (not scaled)" in summary
    assert "100 concurrent flows, 200 units/s" in summary


def test_flow_schedule_constant() -> None:
    s = parse(BASE)
    plans = flow_schedule(s, 1)
    assert len(plans) == 600  # 2 flows/s for 300 s
    assert [p.start_s for p in plans[:3]] == [0.0, 0.5, 1.0]
    assert plans[3].start_wall_s == pytest.approx(0.75)
    assert all(p.duration_wall_s == 25 and p.packets_per_s == 2 for p in plans)
    assert all(0 <= p.phase_wall_s < 0.5 for p in plans)
    assert all(10000 <= p.src_port <= 59999 and p.dst_port == 5000 for p in plans)
    # ports are distinct among concurrent flows
    for p in plans:
        alive = [q.src_port for q in plans if q.start_s <= p.start_s < q.start_s + q.duration_s]
        assert len(alive) == len(set(alive))
    assert flow_schedule(s, 1) == plans  # deterministic
    assert [p.src_port for p in flow_schedule(s, 2)] != [p.src_port for p in plans]


def test_flow_schedule_set_load_and_poisson() -> None:
    s = parse(with_events("{at_s: 100, action: set_load, traffic: main, flows_per_s: 0}",
                          "{at_s: 200, action: set_load, traffic: main, flows_per_s: 4, "
                          "packets_per_s: 3}"))
    plans = flow_schedule(s)
    assert sum(p.start_s < 100 for p in plans) == 200
    assert not any(100 <= p.start_s < 200 for p in plans)
    late = [p for p in plans if p.start_s >= 200]
    assert len(late) == 400 and all(p.packets_per_s == 3 for p in late)
    segs = arrival_segments(s)  # time_scale 0.5: times x 0.5, arrival rates / 0.5
    assert [(a.start_wall_s, a.until_wall_s, a.flows_per_wall_s, a.packets_per_s)
            for a in segs] == [(0, 50, 4, 2), (100, 150, 8, 3)]
    assert all(a.flow_duration_wall_s == 25 and a.arrival == "constant" for a in segs)
    assert all(p.first_packet_wall_s == p.start_wall_s + p.phase_wall_s for p in plans)
    poisson = parse(BASE.replace("arrival: constant", "arrival: poisson"))
    counts = [len(flow_schedule(poisson, r)) for r in range(1, 6)]
    assert all(500 < n < 700 for n in counts)  # mean 600, sd ~24.5
    assert len(set(counts)) > 1


@settings(max_examples=25, deadline=None)
@given(scale=st.sampled_from([0.1, 0.125, 0.25, 0.5, 1.0, 2.0]),
       t=st.floats(min_value=60, max_value=290))
def test_scaling_keeps_concurrent_flows(scale: float, t: float) -> None:
    """At any scale the same flows are alive at the same scenario time: the number of
    concurrent flows (and so the load) does not depend on time_scale."""
    s = parse(BASE.replace("time_scale: 0.5", f"time_scale: {scale}"))
    plans = flow_schedule(s)
    wall = s.wall(t)
    alive = [p for p in plans if p.start_wall_s <= wall < p.start_wall_s + p.duration_wall_s]
    assert len(alive) == 100
    assert sum(p.packets_per_s for p in alive) == 200  # units/s, unscaled
    assert s.wall_rate(2) * s.wall(50) == pytest.approx(100)


def test_noisy_load_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scenarios.spec"):
        parse(BASE.replace("time_scale: 0.5", "time_scale: 0.125"))
    assert "0.5 packet(s) per flow per D-MANO period" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scenarios.spec"):
        parse(BASE)
    assert caplog.text == ""


def test_output_folders(tmp_path: Path) -> None:
    s = parse(BASE)
    d = run_set_dir(s, "20250101-120000", base=tmp_path)
    assert d == tmp_path / "results" / "t" / "20250101-120000"
    assert run_dir(d, 3) == d / "run-03"
    assert s.rep_seed(1) == 1 and s.rep_seed(20) == 20


# -- drain / undrain and daemon events ------------------------------------------------------

@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["{at_s: 10, action: drain_instance, instance: svc_d}"],
         "t.yaml:15: events[0].instance: instance 'svc_d' is not running at 10 s (start: "
         "false in the topology); only a running instance can be drained"),
        (["{at_s: 10, action: stop_instance, instance: svc_b}",
          "{at_s: 20, action: drain_instance, instance: svc_b}"],
         "t.yaml:16: events[1].instance: instance 'svc_b' is not running at 20 s (events[0]: "
         "stop_instance at 10 s); only a running instance can be drained"),
        (["{at_s: 10, action: drain_instance, instance: svc_b}",
          "{at_s: 20, action: drain_instance, instance: svc_c}"],
         "events[1].instance: instance 'svc_c' is the last running instance of service SVC "
         "that takes new flows at 20 s; draining it leaves new flows of the service nowhere "
         "to go: write force: true if that is the point"),
        (["{at_s: 10, action: fail_instance, instance: svc_b}",
          "{at_s: 20, action: drain_instance, instance: svc_c}"],
         "events[1].instance: instance 'svc_c' is the last running instance of service SVC"),
        (["{at_s: 10, action: drain_instance, instance: svc_b}",
          "{at_s: 20, action: drain_instance, instance: svc_b}"],
         "events[1].instance: instance 'svc_b' is already draining at 20 s (events[0]: "
         "drain_instance at 10 s)"),
        (["{at_s: 10, action: undrain_instance, instance: svc_b}"],
         "events[0].instance: instance 'svc_b' is not draining at 10 s; undrain_instance "
         "needs an earlier drain_instance"),
        (["{at_s: 10, action: drain_instance, instance: svc_b}",
          "{at_s: 20, action: stop_instance, instance: svc_b}",
          "{at_s: 30, action: undrain_instance, instance: svc_b}"],
         "events[2].instance: instance 'svc_b' is not running at 30 s (events[1]: "
         "stop_instance at 20 s); only a running instance can be undrained"),
        (["{at_s: 10, action: drain_instance, instance: svc_q}"],
         "events[0].instance: unknown instance 'svc_q' (known: svc_b, svc_c, svc_d)"),
        (["{at_s: 10, action: drain_instance, instance: svc_b, force: maybe}"],
         "events[0].force: expected true or false"),
        (["{at_s: 10, action: drain_instance, instance: svc_b}",
          "{at_s: 20, action: undrain_instance, instance: svc_b, force: true}"],
         "events[1].force: unknown key (allowed here: action, at_s, instance, label)"),
        (["{at_s: 10, action: fail_node, node: B}",
          "{at_s: 20, action: drain_instance, instance: svc_b}"],
         "events[1].instance: instance 'svc_b' is on node B, which is failed at 20 s "
         "(events[0]: fail_node at 10 s)"),
        (["{at_s: 10, action: fail_daemon, node: B, daemon: zebra}"],
         "t.yaml:15: events[0].daemon: expected one of dmano, ospfd, bfdd, connector, got "
         "'zebra'"),
        (["{at_s: 10, action: fail_daemon, node: Q, daemon: ospfd}"],
         "events[0].node: unknown node 'Q' (known: A, B, C, D)"),
        (["{at_s: 10, action: fail_daemon, node: B}"],
         "events[0].daemon: missing required field"),
        (["{at_s: 10, action: restore_daemon, node: B, daemon: dmano}"],
         "t.yaml:15: events[0].daemon: dmano on node B is not failed at 10 s; "
         "restore_daemon needs an earlier fail_daemon"),
        (["{at_s: 10, action: fail_daemon, node: B, daemon: ospfd}",
          "{at_s: 20, action: restore_daemon, node: C, daemon: ospfd}"],
         "events[1].daemon: ospfd on node C is not failed at 20 s"),
        (["{at_s: 10, action: fail_daemon, node: B, daemon: connector}",
          "{at_s: 20, action: fail_daemon, node: B, daemon: connector}"],
         "events[1].daemon: connector on node B is already failed at 20 s (events[0]: "
         "fail_daemon at 10 s)"),
        (["{at_s: 10, action: fail_node, node: B}",
          "{at_s: 20, action: fail_daemon, node: B, daemon: dmano}"],
         "events[1].node: node B is failed at 20 s (events[0]: fail_node at 10 s); its "
         "daemons are all down"),
        (["{at_s: 10, action: fail_daemon, node: B, daemon: bfdd}",
          "{at_s: 20, action: fail_node, node: B}"],
         "events[1].node: node B has its bfdd failed at 20 s (events[0]: fail_daemon at "
         "10 s); restore_daemon first"),
    ],
)
def test_drain_and_daemon_errors(events: list[str], expected: str) -> None:
    assert expected in error_of(with_events(*events))


def test_drain_and_daemon_timeline() -> None:
    s = parse(with_events(
        "{at_s: 100, action: drain_instance, instance: svc_b}",
        "{at_s: 110, action: stop_instance, instance: svc_b}",
        "{at_s: 120, action: start_instance, instance: svc_b}",
        "{at_s: 130, action: undrain_instance, instance: svc_b}",
        "{at_s: 140, action: fail_daemon, node: C, daemon: ospfd}",
        "{at_s: 150, action: fail_daemon, node: C, daemon: bfdd}",
        "{at_s: 160, action: restore_daemon, node: C, daemon: ospfd}",
        "{at_s: 170, action: drain_instance, instance: svc_c}",
        "{at_s: 180, action: drain_instance, instance: svc_b, force: true}",
    ))
    assert s.state_at(105).drained == {"svc_b"}
    assert s.state_at(115).drained == {"svc_b"}  # draining while stopped
    assert s.state_at(125).live_instances(s.topology) == {"svc_b", "svc_c"}
    assert s.state_at(135).drained == frozenset()
    assert s.state_at(155).failed_daemons == {("C", "ospfd"), ("C", "bfdd")}
    assert s.state_at(165).failed_daemons == {("C", "bfdd")}
    assert s.state_at(185).drained == {"svc_b", "svc_c"}
    assert [e.target for e in s.events[4:7]] == ["C/ospfd", "C/bfdd", "C/ospfd"]
    assert s.events[8].force and not s.events[7].force
    assert s.events[8].describe() == "drain_instance svc_b (force)"


def test_bfdd_needs_bfd_on(tmp_path: Path) -> None:
    topo = (ROOT / "topologies" / "paper_eval.yaml").read_text()
    off = tmp_path / "nobfd.yaml"
    off.write_text(topo.replace("nodes:\n", "ospf: {bfd: off}\nnodes:\n", 1))
    text = with_events("{at_s: 10, action: fail_daemon, node: B, daemon: bfdd}")
    assert "daemon: bfdd" in text
    assert parse(text).events[0].daemon == "bfdd"
    msg = error_of(text.replace("../topologies/paper_eval.yaml", str(off)))
    assert ("t.yaml:15: events[0].daemon: topology paper_eval runs no bfdd (ospf: bfd: "
            "off); expected one of dmano, ospfd, connector") in msg
    ok = text.replace("../topologies/paper_eval.yaml", str(off))
    ok = ok.replace("daemon: bfdd", "daemon: dmano")
    assert parse(ok).events[0].target == "B/dmano"
