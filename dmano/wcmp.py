"""Integer WCMP weights from real-valued weights (largest-remainder apportionment).

The connector's action selector takes one positive integer weight per member, and the
sum of a group's weights is bounded (BMv2 replicates each member ``weight`` times, the
eBPF connector fills a bucket table of that size). :func:`integer_weights` turns the
policy's real weights into such integers:

* members whose real weight is ``<= 0`` (or not finite) get ``0``: they take no new
  flows (a draining instance, say);
* if the live members fit in the budget (``n_live <= budget``), every live member gets
  at least ``1`` and the weights sum to exactly ``budget`` before reduction;
* within that, the integers are the Hamilton (largest remainder) apportionment of the
  ideal quotas ``q_i = budget * w_i / sum(w)``: a member whose quota is below 1 is raised
  to 1 and the remaining budget is re-apportioned among the others (repeated until no
  quota is below 1), then each member gets ``floor(quota)`` and the seats left over go
  to the largest fractional remainders;
* ties are broken deterministically: larger remainder first, then larger real weight,
  then earlier position in the input (callers pass members in a deterministic order);
* with ``reduce=True`` (the default) the result is divided by the gcd of its entries,
  which keeps the ratios exactly and keeps selector groups small (``[32, 32]`` becomes
  ``[1, 1]``).

If there are more live members than the budget, only the ``budget`` members with the
largest real weights (ties: earlier position) get weight 1 and the others get 0; a
warning is logged (once per member count and budget). Nothing here raises on odd
input, so a daemon never dies on it.

Error bound (checked by the property tests in ``tests/unit/test_wcmp.py``). Let
``B = budget``, ``q_i = B w_i / W`` the ideal quota and ``k_i`` the result before the
gcd reduction (the reduction does not change shares), and let ``C`` be the set of live
members raised to the minimum of 1:

* if no member was raised (every share ``w_i / W >= 1/B``), then ``|k_i - q_i| < 1``,
  i.e. every member's share is within ``1/B`` of its ideal share (classic Hamilton);
* in general ``|k_i - q_i| < 1 + |C|``. Proof sketch: the final quotas of the members
  not raised are ``q'_i = r q_i`` with ``r = (B - |C|) W / (B W') <= 1`` (``W'`` their
  weight sum), so ``sum_C q_j <= |C|`` and ``q_i - q'_i = (w_i / W') (|C| - sum_C q_j)``
  lies in ``[0, |C|]``; Hamilton gives ``|k_i - q'_i| < 1``; a raised member has
  ``k_j = 1`` and ``0 <= q_j <= sum_C q_j <= |C|``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 64
_warned: set[tuple[int, int]] = set()


def _live(weights: Sequence[float]) -> list[int]:
    return [i for i, w in enumerate(weights) if math.isfinite(w) and w > 0]


def _exact(weights: Sequence[float], live: list[int]) -> dict[int, int]:
    """The live weights as integers in one common scale: each float is an exact binary
    fraction (``as_integer_ratio``), so over the largest denominator every weight is an
    integer, and every comparison and floor below is the exact rational one (the same as
    with :class:`fractions.Fraction`, much faster)."""
    ratios = {i: weights[i].as_integer_ratio() for i in live}
    den = max((d for _, d in ratios.values()), default=1)
    return {i: n * (den // d) for i, (n, d) in ratios.items()}


def apportion(weights: Sequence[float], budget: int) -> list[int]:
    """Largest-remainder apportionment of ``budget`` seats, without gcd reduction.

    See the module docstring for the guarantees. ``budget < 1`` gives all zeros.
    """
    result = [0] * len(weights)
    live = _live(weights)
    if not live or budget < 1:
        return result
    exact = _exact(weights, live)
    if len(live) > budget:
        if (len(live), budget) not in _warned:  # once per shape, not every period
            _warned.add((len(live), budget))
            log.warning("WCMP: %d live members but a group budget of %d; only the %d "
                        "heaviest get a weight", len(live), budget, budget)
        keep = sorted(live, key=lambda i: (-exact[i], i))[:budget]
        for i in keep:
            result[i] = 1
        return result

    # Raise members whose quota is below one to one, and re-apportion the rest.
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
        # seats >= len(rest) holds since len(live) <= budget, so rest is never starved.
    if not rest:
        return result
    total = sum(exact[i] for i in rest)
    # quota_i = seats * w_i / total = floor + remainder / total (the same total for all)
    remainder = {}
    for i in rest:
        result[i], remainder[i] = divmod(seats * exact[i], total)
    left = seats - sum(result[i] for i in rest)
    order = sorted(rest, key=lambda i: (-remainder[i], -exact[i], i))
    for i in order[:left]:
        result[i] += 1
    return result


def integer_weights(weights: Sequence[float], budget: int = DEFAULT_BUDGET,
                    reduce: bool = True) -> list[int]:
    """Integer WCMP weights for ``weights`` (same order); see the module docstring."""
    result = apportion(weights, budget)
    if reduce:
        g = math.gcd(*result) if result else 0
        if g > 1:
            result = [k // g for k in result]
    return result


def shares(weights: Sequence[float | int]) -> list[float]:
    """Normalise weights to fractions summing to 1 (all zeros if there is no live one)."""
    live = [w if math.isfinite(w) and w > 0 else 0.0 for w in weights]
    total = sum(live)
    if total <= 0:
        return [0.0] * len(live)
    return [w / total for w in live]
