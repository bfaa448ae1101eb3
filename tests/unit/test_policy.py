"""Policies: loading and validation, cost and weight functions, the Section VI derivation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dmano import policy as pol
from dmano.policy import (
    PAPER_POLICY,
    Hysteresis,
    InverseCost,
    Measurement,
    Policy,
    ProportionalCost,
    RemainingCapacityCost,
    StaticCost,
    UtilisationCost,
    fixed_point_shares,
    load_policy,
    section_vi_prediction,
    shipped_policy,
)
from dmano.yamlconf import ConfigError

# -- shipped files ----------------------------------------------------------------------


def test_shipped_paper_policy() -> None:
    p = load_policy(shipped_policy("paper"))
    assert p.name == "paper"
    assert p.cost == RemainingCapacityCost(scale=1.0, min_cost=1)
    assert p.weight == ProportionalCost()
    assert (p.period_s, p.max_group_size, p.hysteresis) == (2.0, 64, Hysteresis())
    assert (p.cost, p.weight, p.period_s, p.max_group_size, p.hysteresis) == (
        PAPER_POLICY.cost, PAPER_POLICY.weight, PAPER_POLICY.period_s,
        PAPER_POLICY.max_group_size, PAPER_POLICY.hysteresis)


def test_shipped_inverse_cost_policy() -> None:
    p = load_policy(shipped_policy("inverse-cost"))
    assert p.cost == UtilisationCost(max_cost=100, min_cost=1, source="load")
    assert p.weight == InverseCost()
    assert p.hysteresis == Hysteresis(abs=2.0, rel=0.05)
    assert p.to_dict()["weight"] == {"function": "inverse-cost"}


def test_minimal_policy_and_shorthand(tmp_path: Path) -> None:
    f = tmp_path / "mini.yaml"
    f.write_text("cost: static\nweight: inverse-cost\n")
    p = load_policy(f)
    assert p.name == "mini"
    assert p.cost == StaticCost(default_cost=10)
    assert p.weight == InverseCost()
    assert (p.period_s, p.max_group_size, p.hysteresis) == (2.0, 64, Hysteresis())


# -- validation -------------------------------------------------------------------------

GOOD = """\
version: 1
name: t
period_s: 2
max_group_size: 64
hysteresis:
  abs: 1
  rel: 0.1
cost:
  function: utilisation
  max_cost: 100
weight:
  function: inverse-cost
"""


def _error(tmp_path: Path, text: str) -> str:
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_policy(f)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_good_text_loads(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    assert load_policy(f).hysteresis == Hysteresis(abs=1.0, rel=0.1)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("period_s: 2", "period_s: 0",
     "bad.yaml:3: period_s: expected a number > 0, got 0"),
    ("period_s: 2", "period_s: fast",
     "bad.yaml:3: period_s: expected a number, got string 'fast'"),
    ("max_group_size: 64", "max_group_size: 0",
     "bad.yaml:4: max_group_size: expected an integer in 1..65535, got 0"),
    ("version: 1", "version: 2",
     "bad.yaml:1: version: expected an integer in 1..1, got 2"),
    ("  rel: 0.1", "  rel: 1.5",
     "bad.yaml:7: hysteresis.rel: expected a number <= 1, got 1.5"),
    ("  abs: 1", "  abs: -1",
     "bad.yaml:6: hysteresis.abs: expected a number >= 0, got -1"),
    ("  function: utilisation", "  function: cheapest",
     "bad.yaml:9: cost.function: expected one of static, remaining-capacity, utilisation, "
     "got 'cheapest'"),
    ("  function: inverse-cost", "  function: inverse",
     "bad.yaml:12: weight.function: expected one of inverse-cost, proportional-cost, "
     "got 'inverse'"),
    ("  max_cost: 100", "  max_cost: 100\n  min_cost: 200",
     "bad.yaml:11: cost.min_cost: expected an integer <= max_cost (100), got 200"),
    ("  max_cost: 100", "  max_cost: 100\n  source: memory",
     "bad.yaml:11: cost.source: expected one of load, cpu, got 'memory'"),
    ("period_s: 2", "period: 2",
     "bad.yaml:3: period: unknown key (allowed here: cost, description, hysteresis, "
     "max_group_size, name, period_s, version, weight)"),
    ("function: utilisation\n  max_cost: 100", "function: remaining-capacity\n  max_cost: 100",
     "bad.yaml:10: cost.max_cost: unknown key (allowed here: function, min_cost, scale)"),
    ("weight:\n  function: inverse-cost\n", "weight: 5\n",
     "bad.yaml:11: weight: expected a mapping with a 'function' key, or a function name"),
])
def test_bad_policies(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    assert _error(tmp_path, GOOD.replace(old, new)) == message


def test_missing_parts(tmp_path: Path) -> None:
    assert _error(tmp_path, "weight: inverse-cost\n") == "bad.yaml:1: cost: missing required field"
    assert _error(tmp_path, "cost: static\nweight:\n  exponent: 2\n") == (
        "bad.yaml:3: weight.function: missing required field")
    assert _error(tmp_path, "- cost\n") == (
        "bad.yaml:1: (top level): expected a mapping (key: value), got a list")
    assert _error(tmp_path, "cost: [static\n").startswith("bad.yaml:2: invalid YAML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_policy(tmp_path / "nope.yaml")


def test_inverse_with_remaining_capacity_warns(tmp_path: Path, caplog) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("cost: remaining-capacity\nweight: inverse-cost\n")
    load_policy(f)
    assert "positively" in caplog.text


# -- cost functions ---------------------------------------------------------------------


def test_static_cost() -> None:
    c = StaticCost(default_cost=7)
    assert c.cost(Measurement(configured_cost=42, load=99, capacity=1)) == 42
    assert c.cost(Measurement()) == 7


def test_remaining_capacity_cost() -> None:
    c = RemainingCapacityCost()
    assert c.cost(Measurement(capacity=150, load=0)) == 150
    assert c.cost(Measurement(capacity=150, load=100)) == 50
    assert c.cost(Measurement(capacity=150, load=77.5)) == 73  # half up
    assert c.cost(Measurement(capacity=150, load=400)) == 1  # clamped to min_cost
    assert c.cost(Measurement(capacity=150, load=-5)) == 150  # clamped to capacity
    assert c.cost(Measurement(capacity=0, load=0)) == 1
    scaled = RemainingCapacityCost(scale=0.01, min_cost=5)
    assert scaled.cost(Measurement(capacity=15000, load=5000)) == 100
    assert scaled.cost(Measurement(capacity=15000, load=14900)) == 5


def test_utilisation_cost() -> None:
    c = UtilisationCost(max_cost=100, min_cost=2)
    assert c.cost(Measurement(capacity=200, load=50)) == 25
    assert c.cost(Measurement(capacity=200, load=0)) == 2
    assert c.cost(Measurement(capacity=200, load=1000)) == 100
    assert c.cost(Measurement(capacity=0, load=0)) == 100  # no capacity: saturated
    cpu = UtilisationCost(max_cost=100, source="cpu")
    assert cpu.cost(Measurement(capacity=200, load=50, cpu_percent=80.0)) == 80
    assert cpu.cost(Measurement(capacity=200, load=50)) == 25  # no CPU figure: load


def test_hysteresis() -> None:
    h = Hysteresis(abs=2, rel=0.05)
    assert h.should_announce(100, None)
    assert not h.should_announce(105, 100)  # band = max(2, 5) = 5
    assert h.should_announce(106, 100)
    assert not h.should_announce(12, 10)  # band = max(2, 0.5) = 2
    assert h.should_announce(7, 10)
    assert not Hysteresis().should_announce(10, 10)
    assert Hysteresis().should_announce(11, 10)


def test_weight_functions() -> None:
    assert InverseCost().weights([30, 25]) == [1 / 30, 1 / 25]
    assert InverseCost().weights([0, 5, 0]) == [1.0, 0.0, 1.0]
    assert ProportionalCost().weights([310, 180]) == [310.0, 180.0]
    assert ProportionalCost().weights([0, 0]) == [1.0, 1.0]
    assert ProportionalCost().weights([]) == []


# -- Section VI derivation --------------------------------------------------------------

STATIC_150 = Policy(name="static", cost=StaticCost(default_cost=150), weight=InverseCost())
NET = [160, 160, 30]  # B, C, D from A
CAP = [150, 150, 150]
LOAD = 200  # 2 flows/s * 50 s * 2 units


def test_inverse_cost_with_static_costs_favours_d() -> None:
    eq = fixed_point_shares(STATIC_150, NET, CAP, LOAD)
    assert eq.path_costs == (310, 310, 180)
    d = (1 / 180) / (2 / 310 + 1 / 180)
    assert eq.shares[2] == pytest.approx(d) == pytest.approx(0.4627, abs=1e-4)
    assert eq.shares[0] == pytest.approx(0.2687, abs=1e-4)


def test_proportional_remaining_capacity_fixed_point() -> None:
    eq = fixed_point_shares(PAPER_POLICY, NET, CAP, LOAD)
    assert eq.converged
    assert eq.shares == pytest.approx((0.3875, 0.3875, 0.225), abs=1e-8)
    assert eq.loads == pytest.approx((77.5, 77.5, 45.0), abs=1e-6)
    assert eq.vnf_costs == pytest.approx((72.5, 72.5, 105.0), abs=1e-6)
    assert eq.path_costs == pytest.approx((232.5, 232.5, 135.0), abs=1e-6)
    # closed form s_i = b_i / sum(b) with b_i = network_i + capacity_i
    b = [n + c for n, c in zip(NET, CAP, strict=True)]
    assert eq.shares == pytest.approx(tuple(x / sum(b) for x in b), abs=1e-8)
    # the closed form does not depend on the offered load (while nothing clamps)
    assert fixed_point_shares(PAPER_POLICY, NET, CAP, 120).shares == pytest.approx(
        eq.shares, abs=1e-8)
    # and it is within the paper's spread of 40/40/20 (half the samples within 3 points)
    assert all(abs(s - p) <= 0.03 for s, p in zip(eq.shares, (0.4, 0.4, 0.2), strict=True))


def test_fixed_point_with_integer_weights() -> None:
    eq = fixed_point_shares(PAPER_POLICY, NET, CAP, LOAD, integer=True)
    assert eq.shares == pytest.approx((25 / 64, 25 / 64, 14 / 64), abs=1e-6)


def test_other_combinations() -> None:
    bad = Policy(name="x", cost=RemainingCapacityCost(), weight=InverseCost())
    eq = fixed_point_shares(bad, NET, CAP, LOAD)
    assert eq.shares[2] == pytest.approx(0.825, abs=1e-3)
    assert eq.loads[2] > 150  # D overloaded: positive feedback
    inv = load_policy(shipped_policy("inverse-cost"))
    assert fixed_point_shares(inv, NET, CAP, LOAD).shares == pytest.approx(
        (0.25, 0.25, 0.5), abs=1e-6)


def test_section_vi_prediction() -> None:
    pred = section_vi_prediction(load_policy(shipped_policy("paper")))
    assert pred["phase1"] == pytest.approx({"B": 0.5, "C": 0.5})
    assert pred["phase2"] == pytest.approx({"B": 0.3875, "C": 0.3875, "D": 0.225}, abs=1e-6)
    static = section_vi_prediction(STATIC_150)
    assert static["phase1"] == pytest.approx({"B": 0.5, "C": 0.5})
    assert static["phase2"]["D"] == pytest.approx(0.4627, abs=1e-4)


def test_fixed_point_arguments() -> None:
    with pytest.raises(ValueError):
        fixed_point_shares(PAPER_POLICY, [1, 2], [1], 10)
    with pytest.raises(ValueError):
        fixed_point_shares(PAPER_POLICY, [1], [1], 10, damping=0)
    assert fixed_point_shares(PAPER_POLICY, [], [], 10).shares == ()


def test_module_docstring_documents_every_field() -> None:
    doc = pol.__doc__ or ""
    for key in ("version", "name", "description", "period_s", "max_group_size",
                "hysteresis", "abs", "rel", "cost", "weight", "static", "default_cost",
                "remaining-capacity", "scale", "min_cost", "utilisation", "max_cost",
                "source", "inverse-cost", "proportional-cost", "38.75", "46.3"):
        assert f"``{key}``" in doc or key in doc, key
