"""Integer WCMP weights: budget, minimum of one, largest-remainder error bound."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from dmano import wcmp

weights_st = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=1000).map(float),
    ),
    min_size=0, max_size=40,
)
odd_st = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.just(-1.0), st.just(0.0),
        st.floats(min_value=1e-3, max_value=1e3),
    ),
    max_size=20,
)
budget_st = st.integers(min_value=1, max_value=512)


def _quotas(weights: list[float], budget: int) -> list[Fraction]:
    exact = [Fraction(w) if math.isfinite(w) and w > 0 else Fraction(0) for w in weights]
    total = sum(exact)
    return [budget * w / total if total else Fraction(0) for w in exact]


@given(weights_st, budget_st)
def test_sum_within_budget_and_exact_when_it_fits(weights: list[float], budget: int) -> None:
    raw = wcmp.apportion(weights, budget)
    reduced = wcmp.integer_weights(weights, budget)
    n_live = sum(1 for w in weights if w > 0)
    assert sum(reduced) <= sum(raw) <= budget
    if 0 < n_live <= budget:
        assert sum(raw) == budget
    elif n_live > budget:
        assert sum(raw) == budget  # the `budget` heaviest get one each
    else:
        assert sum(raw) == 0


@given(weights_st, budget_st)
def test_live_members_get_at_least_one_and_dead_ones_zero(weights: list[float],
                                                          budget: int) -> None:
    out = wcmp.integer_weights(weights, budget)
    assert len(out) == len(weights)
    n_live = sum(1 for w in weights if w > 0)
    for w, k in zip(weights, out, strict=True):
        if w <= 0:
            assert k == 0
        elif n_live <= budget:
            assert k >= 1


@given(odd_st, budget_st)
def test_nan_inf_and_negative_count_as_dead(weights: list[float], budget: int) -> None:
    out = wcmp.integer_weights(weights, budget)
    for w, k in zip(weights, out, strict=True):
        if not (math.isfinite(w) and w > 0):
            assert k == 0
        assert k >= 0


@given(weights_st, budget_st)
def test_error_bound(weights: list[float], budget: int) -> None:
    """|k_i - q_i| < 1 + |C| in general, < 1 when no quota is below one."""
    n_live = sum(1 for w in weights if w > 0)
    if not 0 < n_live <= budget:
        return
    raw = wcmp.apportion(weights, budget)
    q = _quotas(weights, budget)
    # C (members raised to one) is a subset of the members that got exactly one.
    ones = sum(1 for w, k in zip(weights, raw, strict=True) if w > 0 and k == 1)
    for k, qi in zip(raw, q, strict=True):
        assert abs(k - qi) < 1 + ones
    if all(qi >= 1 for w, qi in zip(weights, q, strict=True) if w > 0):
        for k, qi in zip(raw, q, strict=True):
            assert abs(k - qi) < 1  # share error below 1/budget
            assert math.floor(qi) <= k <= math.ceil(qi)


@given(weights_st, budget_st)
def test_reduction_keeps_ratios(weights: list[float], budget: int) -> None:
    raw = wcmp.apportion(weights, budget)
    reduced = wcmp.integer_weights(weights, budget)
    if sum(raw) == 0:
        assert reduced == raw
        return
    g = math.gcd(*raw)
    assert reduced == [k // g for k in raw]
    assert math.gcd(*reduced) == 1


@given(st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=12,
                unique=True), budget_st, st.randoms(use_true_random=False))
def test_permutation_equivariant_for_distinct_weights(weights: list[float], budget: int,
                                                      rnd) -> None:
    order = list(range(len(weights)))
    rnd.shuffle(order)
    out = wcmp.apportion(weights, budget)
    permuted = wcmp.apportion([weights[i] for i in order], budget)
    assert permuted == [out[i] for i in order]


@given(weights_st, budget_st, st.sampled_from([0.25, 0.5, 2.0, 1024.0]))
@settings(max_examples=50)
def test_scale_invariant(weights: list[float], budget: int, factor: float) -> None:
    assert wcmp.apportion(weights, budget) == wcmp.apportion(
        [w * factor for w in weights], budget)


def test_examples() -> None:
    assert wcmp.integer_weights([1.0, 1.0]) == [1, 1]
    assert wcmp.apportion([1.0, 1.0], 64) == [32, 32]
    assert wcmp.integer_weights([310, 310, 180], 64) == [25, 25, 14]
    assert wcmp.integer_weights([0.0, 5.0, 0.0], 64) == [0, 1, 0]
    assert wcmp.integer_weights([], 64) == []
    assert wcmp.integer_weights([0.0, -3.0], 64) == [0, 0]
    # a tiny member is raised to one, the rest is re-apportioned
    assert wcmp.apportion([1000.0, 1.0], 8) == [7, 1]
    assert wcmp.apportion([1.0, 1000.0, 1.0, 1.0], 4) == [1, 1, 1, 1]


def test_ties_are_deterministic() -> None:
    # 64 / 3 = 21.33 each: the left-over seat goes to the first member
    assert wcmp.apportion([1.0, 1.0, 1.0], 64) == [22, 21, 21]
    # equal remainders: the heavier member wins before position
    assert wcmp.apportion([1.0, 3.0], 2) == [1, 1]
    assert wcmp.apportion([1.0, 1.0, 2.0], 5) == [1, 1, 3]
    assert wcmp.apportion([3.0, 1.0, 1.0, 3.0], 4) == [1, 1, 1, 1]


def test_more_members_than_budget_keeps_the_heaviest(caplog) -> None:
    wcmp._warned.clear()
    out = wcmp.integer_weights([1.0, 5.0, 3.0, 5.0], 2)
    assert out == [0, 1, 0, 1]
    assert "budget of 2" in caplog.text
    caplog.clear()
    assert wcmp.integer_weights([1.0, 5.0, 3.0, 6.0], 2) == [0, 1, 0, 1]
    assert caplog.text == ""  # warned once per shape only


def test_shares() -> None:
    assert wcmp.shares([1, 3]) == [0.25, 0.75]
    assert wcmp.shares([0, 0]) == [0.0, 0.0]
    assert wcmp.shares([float("nan"), 2.0]) == [0.0, 1.0]
