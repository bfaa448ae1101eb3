"""Flow plans of the traffic generator (scenarios/traffic/plan.py): values, plans, plan
files (read through dmano.yamlconf: file, line, field), the arrival processes shared with
the scenario schedule (scenarios/arrivals.py), and the generator's plan options."""

from __future__ import annotations

import itertools
import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from dmano.yamlconf import ConfigError
from scenarios.arrivals import arrival_times
from scenarios.traffic import cli
from scenarios.traffic.plan import (
    FlowPlan,
    PlanError,
    PlanFileError,
    load_plan,
    parse_bytes,
    parse_duration,
    parse_endpoint,
    parse_flow_option,
    parse_port_range,
    parse_rate,
    parse_size,
    plan_from_mapping,
)

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ values
@pytest.mark.parametrize(("text", "value"), [
    (2, 2.0), (2.5, 2.5), ("2", 2.0), ("2pps", 2.0), ("2/s", 2.0), ("1.5k", 1500.0),
    ("1kpps", 1000.0), (" 20 pps ", 20.0), ("1e3", 1000.0)])
def test_parse_rate(text: Any, value: float) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("bad", [0, -1, "0pps", "fast", "2 per s", True, float("inf")])
def test_parse_rate_rejects(bad: Any) -> None:
    with pytest.raises(PlanError):
        parse_rate(bad)


def test_parse_other_values() -> None:
    assert parse_duration("50") == parse_duration("50s") == parse_duration(50) == 50.0
    assert parse_duration("500ms") == 0.5 and parse_duration("2min") == 120.0
    assert parse_port_range("1000-2000") == (1000, 2000)
    assert parse_port_range(5001) == parse_port_range("5001") == (5001, 5001)
    assert parse_endpoint("10.1.100.20:5001") == ("10.1.100.20", 5001)
    assert parse_endpoint("[fd00::1]:5001") == ("fd00::1", 5001)
    assert parse_endpoint(["10.0.0.1", 7]) == ("10.0.0.1", 7)
    assert parse_size(64) == 64 and parse_size("1k") == 1024
    assert parse_bytes("4M") == 4 << 20 and parse_bytes(100) == 100
    assert parse_flow_option("dst=10.0.0.1:5,rate=2,duration=none") == {
        "dst": "10.0.0.1:5", "rate": "2", "duration": None}
    for fn, bad in [(parse_duration, "-1"), (parse_port_range, "2-1"),
                    (parse_port_range, "0-5"), (parse_endpoint, "host:5001"),
                    (parse_endpoint, "10.0.0.1"), (parse_size, 19), (parse_size, 70000),
                    (parse_flow_option, "rate"), (parse_flow_option, "colour=red")]:
        with pytest.raises(PlanError):
            fn(bad)


# ------------------------------------------------------------------ plans
PAPER = {
    "seed": 7,
    "defaults": {"dst": "10.1.100.20:5001", "rate": "2pps", "size": 64, "duration": 50},
    "arrivals": {"process": "poisson", "rate": "2/s", "until": 150},
}


def starts(p: FlowPlan) -> list[tuple[float, int, float | None, float, int, str, int]]:
    return [(f.start, f.flow_id, f.duration, f.rate, f.size, f.dst_ip, f.dst_port)
            for f in p.flows()]


def test_poisson_plan_is_reproducible_for_a_seed() -> None:
    a = starts(plan_from_mapping(PAPER))
    b = starts(plan_from_mapping(dict(PAPER)))
    assert a == b
    c = starts(plan_from_mapping(PAPER, seed=8))
    assert c != a
    assert starts(plan_from_mapping({**PAPER, "seed": 8})) == c
    # a Poisson process of 2/s over 150 s: ~300 flows, increasing, all before `until`
    assert 220 < len(a) < 380
    times = [s[0] for s in a]
    assert times == sorted(times) and times[0] > 0 and times[-1] < 150
    assert [s[1] for s in a] == list(range(len(a)))
    assert {s[2:] for s in a} == {(50.0, 2.0, 64, "10.1.100.20", 5001)}
    # inter-arrival times look exponential: mean ~0.5 s, coefficient of variation ~1
    gaps = [y - x for x, y in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    std = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert 0.4 < mean < 0.6 and 0.8 < std / mean < 1.2


def test_plan_file_yaml_and_json_agree(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PAPER))
    (tmp_path / "p.json").write_text(json.dumps(PAPER))
    y, j = load_plan(tmp_path / "p.yaml"), load_plan(tmp_path / "p.json")
    assert starts(y) == starts(j) == starts(plan_from_mapping(PAPER))
    assert starts(load_plan(tmp_path / "p.yaml", seed=3)) != starts(y)
    (tmp_path / "bad.yaml").write_text("defaults: [1, 2\n")
    with pytest.raises(PlanError, match=r"bad\.yaml"):
        load_plan(tmp_path / "bad.yaml")


def test_paper_plan_file() -> None:
    p = load_plan(ROOT / "scenarios" / "traffic" / "paper_eval_plan.yaml")
    flows = list(p.flows())
    assert 500 < len(flows) < 700 and p.seed == 1
    assert {(f.rate, f.duration, f.packets, f.dst_ip) for f in flows} == {
        (2.0, 50.0, 100, "10.1.100.11")}


def test_constant_arrivals_explicit_flows_and_ids() -> None:
    p = plan_from_mapping({
        "first_flow_id": 100,
        "defaults": {"dst": ["10.0.0.1:5001", "10.0.0.2:5002"], "rate": 10},
        "flows": [{"start": 0.25, "duration": 1, "sport": 40000, "dst": "10.0.0.9:9"},
                  {"start": "0ms", "duration": "2s", "rate": "5pps"}],
        "arrivals": [{"process": "constant", "rate": 4, "count": 3, "start": 0.1,
                      "flow": {"duration": 3, "size": 100}}],
    })
    flows = list(p.flows())
    assert [(f.flow_id, round(f.start, 9)) for f in flows] == [
        (100, 0.0), (101, 0.1), (102, 0.25), (103, 0.35), (104, 0.6)]
    assert flows[0].rate == 5 and flows[0].packets == 10 and flows[0].sport is None
    assert flows[2].sport == 40000 and (flows[2].dst_ip, flows[2].dst_port) == ("10.0.0.9", 9)
    arriving = [f for f in flows if f.size == 100]
    assert [(f.dst_ip, f.duration) for f in arriving] == [
        ("10.0.0.1", 3), ("10.0.0.2", 3), ("10.0.0.1", 3)]  # round-robin destinations
    assert p.finite


def test_endless_plan_is_lazy() -> None:
    p = plan_from_mapping({"defaults": {"dst": "10.0.0.1:1"},
                           "arrivals": {"rate": 1000}})
    assert not p.finite
    it = p.flows()
    assert [next(it).flow_id for _ in range(5000)][-1] == 4999


@pytest.mark.parametrize(("data", "msg"), [
    ({}, "no flows"),
    ({"arrivals": {"rate": 2}}, "no destination"),
    ({"defaults": {"dst": "1.2.3.4:5"}, "arrivals": {"rate": 2, "proces": "x"}},
     "unknown key"),
    ({"defaults": {"dst": "1.2.3.4:5"}, "arrivals": {"rate": 2, "process": "pareto"}},
     "process"),
    ({"defaults": {"dst": "1.2.3.4:5"}, "arrivals": {"process": "poisson"}}, "rate"),
    ({"defaults": {"dst": "1.2.3.4:5", "duration": 0}, "flows": [{}]}, "duration"),
    ({"defaults": {"dst": "1.2.3.4:5"}, "flows": [{"start": 0}], "seed": "x"}, "seed"),
    ({"defaults": {"dst": "1.2.3.4:5"}, "flows": {"start": 0}}, "list"),
    ({"flow": []}, "unknown key"),
])
def test_plan_errors(data: dict[str, Any], msg: str) -> None:
    with pytest.raises(PlanError, match=msg):
        plan_from_mapping(data)


def test_packets_per_flow() -> None:
    p = plan_from_mapping({"defaults": {"dst": "1.2.3.4:5"}, "flows": [
        {"rate": 20, "duration": 2}, {"rate": 2, "duration": 50}, {"rate": 3, "duration": 1.1},
        {"rate": 1, "duration": 0.01}, {"rate": 1}]})
    assert [f.packets for f in p.flows()] == [40, 100, 4, 1, None]


# ------------------------------------------------------------------ plan files: file, line, field
BAD_FIELD = """\
seed: 1
defaults:
  dst: 10.1.100.11:5001
arrivals:
  - process: poisson
    rate: 2/s
  - process: constant
    rate: fast
"""


def test_bad_plan_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(BAD_FIELD)
    with pytest.raises(PlanFileError) as info:
        load_plan(path)
    exc = info.value
    assert isinstance(exc, ConfigError) and isinstance(exc, PlanError)
    assert (exc.path, exc.line, exc.field) == (str(path), 8, "arrivals[1].rate")
    assert str(exc) == (f"{path}:8: arrivals[1].rate: expected a rate > 0 like 20, 20pps, "
                        "2/s or 1.5k, got 'fast'")


@pytest.mark.parametrize(("text", "line", "field", "detail"), [
    ("defaults: {dst: 1.2.3.4:5}\nflows:\n  - {start: 0}\n  - {start: 1, colour: red}\n",
     4, "flows[1].colour", "unknown key (allowed here: dst, duration, rate, size, sport, "
                          "start)"),
    ("defaults:\n  dst:\n    - 1.2.3.4:5\n    - nohost:5\nflows: [{}]\n",
     4, "defaults.dst[1]", "expected a destination IP:PORT like 10.1.100.20:5001: 'nohost' "
                          "is not an IP address"),
    ("defaults: {dst: 1.2.3.4:5}\nsport_range: 9-2\nflows: [{}]\n",
     2, "sport_range", "expected a port range LOW-HIGH like 20000-59999, or one port "
                       "(LOW <= HIGH), got '9-2'"),
    ("arrivals:\n  rate: 2\n  flow:\n    duration: 0\n",
     4, "arrivals.flow.duration", "expected a duration > 0 (null: until the generator "
                                  "stops), got 0"),
    ("flows:\n  - {start: 0}\n", 2, "flows[0].dst",
     "no destination: expected dst (IP:PORT) here or in defaults"),
    ("defaults: {dst: 1.2.3.4:5}\narrivals: {rate: 2, process: pareto}\n", 2,
     "arrivals.process", "expected one of constant, poisson, got 'pareto'"),
    ("seed: 1\n", 1, "", "the plan has no flows: give flows and/or arrivals"),
    ("- 1\n- 2\n", 1, "", "expected a mapping (key: value) at the top, got a YamlList"),
    ("defaults: [1, 2\n", 2, "", "invalid YAML: expected ',' or ']', but got '<stream end>'"),
])
def test_plan_file_errors(tmp_path: Path, text: str, line: int, field: str,
                          detail: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PlanFileError) as info:
        load_plan(path)
    assert (info.value.path, info.value.line, info.value.field, info.value.detail) == (
        str(path), line, field, detail)


def test_json_plan_errors_have_lines_and_json_values(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    data = {"seed": 3, "defaults": {"dst": "1.2.3.4:5", "rate": 1e20},
            "flows": [{"start": 0}, {"start": 1.5, "sport": 70000}]}
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(PlanFileError) as info:
        load_plan(path)
    assert info.value.field == "flows[1].sport" and info.value.line == 13
    data["flows"][1]["sport"] = 7000
    path.write_text(json.dumps(data, indent=1))
    assert [f.rate for f in load_plan(path).flows()] == [1e20, 1e20]  # JSON's number
    path.write_text('{"seed": 1,\n "flows": [}')
    with pytest.raises(PlanFileError, match=r"p\.json:2: invalid JSON"):
        load_plan(path)


def test_plan_mapping_errors_name_the_given_path() -> None:
    with pytest.raises(PlanFileError, match=r"^run-01/plan\.json: seed: expected an integer"):
        plan_from_mapping({"seed": "x", "flows": [{"dst": "1.2.3.4:5"}]},
                          path="run-01/plan.json")
    with pytest.raises(PlanError, match="seed must be an integer"):
        plan_from_mapping({"flows": [{"dst": "1.2.3.4:5"}]}, seed="1")  # type: ignore[arg-type]


def test_cli_reports_the_bad_plan_field(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(BAD_FIELD)
    with caplog.at_level(logging.ERROR, logger="scenarios.traffic"):
        assert cli.main(["gen", "--plan", str(path), "--dry-run", "1"]) == 2
    assert f"{path}:8: arrivals[1].rate: expected a rate" in caplog.text


# ------------------------------------------------------------------ arrival processes
def test_arrival_times_constant_and_poisson() -> None:
    rng = random.Random(1)
    assert list(arrival_times("constant", 4, rng, 0.1, count=3)) == [0.1, 0.35, 0.6]
    # 0.1 + 7 / 10 = 0.7999999999999999: not an arrival "before" until = 0.8
    assert list(arrival_times("constant", 10, rng, 0.1, until=0.8))[-1] == 0.1 + 6 / 10
    # poisson: the same draws as a plain loop of expovariate, one more to cross until
    a, b = random.Random(5), random.Random(5)
    times = list(arrival_times("poisson", 2.0, a, 10.0, until=60.0))
    t, expected = 10.0 + b.expovariate(2.0), []
    while t < 60.0:
        expected.append(t)
        t += b.expovariate(2.0)
    assert times == expected and a.random() == b.random()
    endless = arrival_times("poisson", 1.0, rng)
    assert len(list(itertools.islice(endless, 1000))) == 1000
    with pytest.raises(ValueError, match="bursty"):
        next(arrival_times("bursty", 1.0, rng))


# ------------------------------------------------------------------ command line
def test_cli_dry_run_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gen", "--dst", "10.1.100.20:5001", "--arrival-rate", "2/s", "--duration", "50",
            "--rate", "2pps", "--until", "20", "--seed", "5", "--dry-run"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == first
    flows = [json.loads(x) for x in first.splitlines()]
    assert 15 < len(flows) < 70 and flows[0]["rate"] == 2.0 and flows[0]["duration"] == 50
    assert cli.main([*argv[:-1], "--seed", "6", "--dry-run", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert cli.main(["gen", "--dst", "1.2.3.4:5", "--arrival-rate", "2", "--dry-run"]) == 2
    assert cli.main(["gen", "--dst", "nohost:5", "--flow", "rate=2"]) == 2


def test_cli_options_over_a_plan_file(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.json").write_text(json.dumps(PAPER))
    assert cli.main(["gen", "--plan", str(tmp_path / "p.json"), "--rate", "5", "--flow",
                     "start=0,dst=10.9.9.9:7,duration=1", "--seed", "7", "--dry-run"]) == 0
    flows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert flows[0]["dst_ip"] == "10.9.9.9" and flows[0]["start"] == 0
    assert {f["rate"] for f in flows} == {5.0}
    assert [f["start"] for f in flows[1:]] == [round(s[0], 9)
                                               for s in starts(plan_from_mapping(PAPER))]
    assert cli.main(["gen", "--plan", str(tmp_path / "p.json"), "--count", "3"]) == 2
