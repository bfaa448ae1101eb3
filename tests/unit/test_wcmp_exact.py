"""dmano.wcmp.apportion in integer arithmetic equals the Fraction version it replaced."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from dmano import wcmp


def reference(weights: list[float], budget: int) -> list[int]:
    """The apportionment with Fractions (dmano/wcmp.py before the integer version)."""
    result = [0] * len(weights)
    live = [i for i, w in enumerate(weights) if math.isfinite(w) and w > 0]
    if not live or budget < 1:
        return result
    exact = {i: Fraction(weights[i]) for i in live}
    if len(live) > budget:
        for i in sorted(live, key=lambda i: (-exact[i], i))[:budget]:
            result[i] = 1
        return result
    rest = list(live)
    seats = budget
    while True:
        total = sum(exact[i] for i in rest)
        small = [i for i in rest if seats * exact[i] < total]
        if not small:
            break
        for i in small:
            result[i] = 1
        rest = [i for i in rest if i not in small]
        seats -= len(small)
    if not rest:
        return result
    total = sum(exact[i] for i in rest)
    quotas = {i: seats * exact[i] / total for i in rest}
    for i in rest:
        result[i] = math.floor(quotas[i])
    left = seats - sum(result[i] for i in rest)
    order = sorted(rest, key=lambda i: (-(quotas[i] - math.floor(quotas[i])), -exact[i], i))
    for i in order[:left]:
        result[i] += 1
    return result


weights_st = st.lists(
    st.one_of(
        st.just(0.0), st.just(-1.0), st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=1e-300, max_value=1e300),
        st.floats(min_value=1e-3, max_value=1e3),
        st.integers(min_value=1, max_value=1000).map(float),
        st.sampled_from([1 / 3, 2 / 3, 0.1, 0.2, 0.3, 1.0]),  # ties after rounding
    ),
    max_size=50,
)


@settings(max_examples=400)
@given(weights_st, st.integers(min_value=0, max_value=600))
def test_integer_apportionment_equals_the_fraction_one(weights: list[float],
                                                       budget: int) -> None:
    assert wcmp.apportion(weights, budget) == reference(weights, budget)


def test_ints_and_floats_alike() -> None:
    assert wcmp.apportion([1, 2, 3], 64) == reference([1.0, 2.0, 3.0], 64)  # type: ignore[list-item]
