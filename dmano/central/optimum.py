"""The min-max-utilisation optimum of the centralized baseline (DESIGN §10).

A pure module (no I/O): given the measured demand per (ingress, service), the instances
each ingress can reach with their path cost, and each instance's capacity, it computes
the split of every ingress's new flows over its candidates that minimises the highest
instance utilisation, and evaluates any other split (a policy's, say) on the same
demand, so the two can be compared.

Inputs
======
``demands``
    ``{(ingress, service): rate}``: units/s entering at ``ingress`` for ``service``,
    finite and ``>= 0``.
``candidates``
    ``{(ingress, service): {instance: path_cost}}``: the instances reachable from that
    ingress with their path cost (network cost + VNF cost, as in
    :class:`dmano.service_plane.Candidate`); finite and ``>= 0``. Every instance named
    here needs a capacity.
``capacity``
    ``{instance: units/s}``, finite and ``> 0``.
``base_load``
    optional ``{instance: units/s}``: load on the instance that the split cannot move
    (default 0), finite and ``>= 0``.

Keys are opaque hashables: the orchestrator uses ``(adv_router, instance_id)`` for an
instance and ``(router_id, service_id)`` for a pair; tests use strings.

The optimisation (objective ``min-max-utilisation``)
===================================================
Variables ``x[p, i] >= 0``: the fraction of pair ``p``'s demand ``d_p`` sent to
candidate ``i``, with ``sum_i x[p, i] = 1`` for every pair with ``d_p > 0`` and at least
one candidate.

1. Minimise ``U`` subject to ``(base_i + sum_p d_p x[p, i]) / capacity_i <= U`` for every
   instance: ``U*`` is the lowest achievable highest utilisation.
2. Lexicographic second stage: with every utilisation ``<= U* (1 + rel_tol) + abs_tol``
   (``U*`` the highest utilisation of stage 1's split, so that split stays feasible),
   minimise the demand-weighted path cost ``sum d_p cost[p, i] x[p, i]``, so that among
   the (usually many) optimal splits each ingress prefers its near instances. The
   tolerance (default ``1e-9`` relative, ``1e-12`` absolute) only absorbs rounding:
   stage 2's solution is a vertex and uses the slack whenever it is cheaper, so a larger
   one shows up as utilisations above ``U*``. If stage 2 fails, stage 1's split is kept.

Both are linear programs solved by HiGHS (:func:`scipy.optimize.linprog`, sparse
constraint matrices: 200 ingresses x 4 services x 50 instances is 40 000 variables).
Fractions below :data:`MIN_FRACTION` (solver noise) are set to 0 and each split is
renormalised to sum to 1; ``Solution.max_utilisation`` is the highest utilisation of the
returned split, i.e. ``U*`` within the tolerance.

U is one number for the whole network: the instances of a service that is lightly loaded
compared with the bottleneck are not balanced among themselves, only kept at or below
``U*``, and stage 2 then fills the nearest ones first (by design: distance matters once
the highest utilisation is settled).

Pairs without demand still get a split, for the first new flows that will arrive:
proportional to each reachable instance's remaining headroom at the optimum,
``capacity_i * U* - load_i``, where an instance whose utilisation is within
``HEADROOM_FLOOR * max(U*, 1)`` of ``U*`` counts as full (headroom 0: solver noise must
not give it a share, nor a WCMP weight). A marginal flow sent that way raises no
instance above ``U*`` as long as some reachable instance has headroom; when none has
(every reachable instance is at ``U*``, e.g. no demand at all), the split is
proportional to capacity, which is the split that raises ``U`` least. Pairs with demand
but no candidate cannot be served (``Solution.unserved``, named in the message); every
pair without a candidate gets an empty split, so the connector writer empties its group.

Failures never raise: if stage 1 fails (solver error, infeasible, iteration limit), a
warning is logged and the solution falls back to equal weights over each pair's
candidates (``status == "fallback"``, ``max_utilisation`` that split's); if only stage 2
fails, stage 1's optimal split is kept (with a warning). Bad input (negative or
non-finite demand, capacity ``<= 0``, ...) raises :class:`ValueError` naming the key and
the value, before anything is solved.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from scipy.optimize import linprog
from scipy.sparse import csr_matrix, hstack

from dmano import wcmp

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Hashable)  # an (ingress, service) pair
K = TypeVar("K", bound=Hashable)  # an instance

OPTIMAL = "optimal"
FALLBACK = "fallback"
REL_TOL = 1e-9  # stage 2 keeps every utilisation <= U* (1 + REL_TOL) + ABS_TOL
ABS_TOL = 1e-12
MIN_FRACTION = 1e-9  # smaller fractions are solver noise: set to 0
HEADROOM_FLOOR = 1e-6  # an instance within this utilisation of U* has no headroom


@dataclass(frozen=True)
class Solution(Generic[P, K]):
    """The min-max-utilisation split and what it gives."""

    max_utilisation: float  # U*: the highest instance utilisation of ``split``
    split: dict[P, dict[K, float]]  # pair -> instance -> fraction (sums to 1, or empty)
    utilisation: dict[K, float]  # every instance with a capacity -> its utilisation
    status: str  # OPTIMAL or FALLBACK
    message: str = ""
    unserved: tuple[P, ...] = field(default=())  # pairs with demand but no candidate


class _LpError(Exception):
    """A linear program did not end optimal."""


# -- validation -----------------------------------------------------------------------

def _number(what: str, key: Any, value: Any, positive: bool = False) -> float:
    """``value`` as a finite float ``>= 0`` (``> 0`` if ``positive``), else ValueError."""
    bound = "> 0" if positive else ">= 0"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (
            positive and number == 0):
        raise ValueError(f"{what} {key!r}: expected a finite number {bound}, got {value!r}")
    return number


def _check_capacity(capacity: Mapping[K, float],
                    base_load: Mapping[K, float] | None) -> tuple[dict[K, float],
                                                                  dict[K, float]]:
    caps = {k: _number("capacity of instance", k, v, positive=True)
            for k, v in capacity.items()}
    base = {k: 0.0 for k in caps}
    for k, v in (base_load or {}).items():
        if k not in caps:
            raise ValueError(f"base load of instance {k!r}: the instance has no capacity")
        base[k] = _number("base load of instance", k, v)
    return caps, base


def _check_demands(demands: Mapping[P, float]) -> dict[P, float]:
    return {p: _number("demand of", p, v) for p, v in demands.items()}


def _check_candidates(candidates: Mapping[P, Mapping[K, float]],
                      caps: Mapping[K, float]) -> dict[P, list[tuple[K, float]]]:
    """Per pair, its candidates sorted by path cost (stable: ties keep the given order)."""
    out: dict[P, list[tuple[K, float]]] = {}
    for p, row in candidates.items():
        checked = []
        for k, cost in row.items():
            if k not in caps:
                raise ValueError(f"candidate {k!r} of {p!r}: the instance has no capacity")
            checked.append((k, _number(f"path cost of candidate {k!r} of", p, cost)))
        out[p] = sorted(checked, key=lambda kc: kc[1])
    return out


# -- evaluating a split ---------------------------------------------------------------

def split_utilisation(split: Mapping[P, Mapping[K, float]], demands: Mapping[P, float],
                      capacity: Mapping[K, float],
                      base_load: Mapping[K, float] | None = None) -> dict[K, float]:
    """Utilisation of every instance with a capacity when ``split`` carries ``demands``.

    Fractions are used as given (a row that does not sum to 1 routes that much of its
    demand); the demand of a pair missing from ``split`` or with an empty row is not
    routed. Raises ValueError for bad numbers or an instance without a capacity.
    """
    caps, base = _check_capacity(capacity, base_load)
    dem = _check_demands(demands)
    loads = dict(base)
    for p, row in split.items():
        d = dem.get(p, 0.0)
        for k, fraction in row.items():
            if k not in caps:
                raise ValueError(f"split of {p!r}: instance {k!r} has no capacity")
            loads[k] += d * _number(f"fraction for {k!r} in the split of", p, fraction)
    return {k: loads[k] / caps[k] for k in caps}


def max_utilisation(split: Mapping[P, Mapping[K, float]], demands: Mapping[P, float],
                    capacity: Mapping[K, float],
                    base_load: Mapping[K, float] | None = None) -> float:
    """The highest instance utilisation of ``split`` on ``demands`` (0 without instances)."""
    return max(split_utilisation(split, demands, capacity, base_load).values(), default=0.0)


def equal_split(candidates: Mapping[P, Mapping[K, Any]]) -> dict[P, dict[K, float]]:
    """Equal fractions over each pair's candidates (empty rows stay empty)."""
    return {p: {k: 1.0 / len(row) for k in row} for p, row in candidates.items()}


# -- the linear programs --------------------------------------------------------------

@dataclass(frozen=True)
class _Lp:
    """Variables and constraint rows shared by both stages.

    Variable ``v`` is ``x[pair, instance]`` with ``(pair, instance) = columns[v]``;
    ``ub`` has one row per loaded instance: ``sum_p (d_p / cap_i) x[p, i]``.
    """

    columns: list[tuple[Any, Any]]
    costs: list[float]  # stage 2 objective: d_p * path_cost per variable
    ub: csr_matrix
    ub_offset: list[float]  # base_i / cap_i per row
    eq: csr_matrix  # one row per routed pair: sum_i x[p, i] (= 1)


def _build_lp(routed: list[Any], rows: Mapping[Any, list[tuple[Any, float]]],
              dem: Mapping[Any, float], caps: Mapping[Any, float],
              base: Mapping[Any, float]) -> _Lp:
    columns: list[tuple[Any, Any]] = []
    costs: list[float] = []
    eq_r: list[int] = []
    ub_row: dict[Any, int] = {}
    ub_r: list[int] = []
    ub_v: list[float] = []
    for r, p in enumerate(routed):
        for k, cost in rows[p]:
            columns.append((p, k))
            costs.append(dem[p] * cost)
            eq_r.append(r)
            ub_r.append(ub_row.setdefault(k, len(ub_row)))
            ub_v.append(dem[p] / caps[k])
    n = len(columns)
    ub = csr_matrix((ub_v, (ub_r, list(range(n)))), shape=(len(ub_row), n))
    eq = csr_matrix(([1.0] * n, (eq_r, list(range(n)))), shape=(len(routed), n))
    offset = [0.0] * len(ub_row)
    for k, i in ub_row.items():
        offset[i] = base[k] / caps[k]
    return _Lp(columns, costs, ub, offset, eq)


def _linprog(stage: str, c: list[float], a_ub: Any, b_ub: list[float], a_eq: Any,
             b_eq: list[float], bounds: Sequence[tuple[float, float | None]]) -> Any:
    try:
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds,
                      method="highs")
    except Exception as exc:  # a solver bug must not take the orchestrator down
        raise _LpError(f"{stage}: {type(exc).__name__}: {exc}") from exc
    if res.status != 0 or res.x is None:
        raise _LpError(f"{stage}: {res.message} (status {res.status})")
    return res.x


def _stage1(lp: _Lp, u_floor: float) -> list[float]:
    """A split that minimises U with every loaded instance's utilisation <= U."""
    n = len(lp.columns)
    a_ub = hstack([lp.ub, csr_matrix([[-1.0]] * lp.ub.shape[0])], format="csr")
    a_eq = hstack([lp.eq, csr_matrix((lp.eq.shape[0], 1))], format="csr")
    x = _linprog("stage 1 (min max utilisation)", [0.0] * n + [1.0], a_ub,
                 [-o for o in lp.ub_offset], a_eq, [1.0] * lp.eq.shape[0],
                 [(0.0, None)] * n + [(u_floor, None)])
    return [max(float(v), 0.0) for v in x[:n]]


def _highest(lp: _Lp, x: list[float]) -> float:
    """The highest utilisation among the LP's rows for the split ``x``."""
    rows = lp.ub @ x
    return max(float(r) + o for r, o in zip(rows, lp.ub_offset, strict=True))


def _stage2(lp: _Lp, u_bound: float) -> list[float]:
    """The cheapest split (demand-weighted path cost) with every utilisation <= u_bound."""
    x = _linprog("stage 2 (path cost at U*)", lp.costs, lp.ub,
                 [u_bound - o for o in lp.ub_offset], lp.eq, [1.0] * lp.eq.shape[0],
                 [(0.0, None)] * len(lp.columns))
    return [float(v) for v in x]


def _clean(row: Mapping[K, float]) -> dict[K, float]:
    """Drop solver noise (negative or < MIN_FRACTION) and renormalise to sum 1."""
    kept = {k: (v if v >= MIN_FRACTION else 0.0) for k, v in row.items()}
    total = sum(kept.values())
    if total <= 0:  # cannot happen for an optimal LP; stay safe
        return {k: 1.0 / len(row) for k in row} if row else {}
    return {k: v / total for k, v in kept.items()}


# -- solving --------------------------------------------------------------------------

def _headroom_split(rows: Mapping[P, list[tuple[K, float]]], pairs: list[P],
                    utilisation: Mapping[K, float], caps: Mapping[K, float],
                    u_max: float) -> dict[P, dict[K, float]]:
    """Splits for pairs without demand: proportional to the headroom ``capacity * U* -
    load``, where an instance within ``HEADROOM_FLOOR * max(U*, 1)`` of ``U*`` is full; if
    every candidate is full, proportional to capacity (see the module docstring)."""
    out: dict[P, dict[K, float]] = {}
    noise = HEADROOM_FLOOR * max(u_max, 1.0)
    for p in pairs:
        room = {k: (caps[k] * (u_max - utilisation[k])
                    if u_max - utilisation[k] > noise else 0.0) for k, _ in rows[p]}
        if sum(room.values()) <= 0:
            room = {k: caps[k] for k, _ in rows[p]}
        total = sum(room.values())
        out[p] = {k: v / total for k, v in room.items()}
    return out


def _fallback(reason: str, rows: Mapping[P, list[tuple[K, float]]],
              dem: Mapping[P, float], caps: Mapping[K, float], base: Mapping[K, float],
              unserved: tuple[P, ...]) -> Solution[P, K]:
    log.warning("min-max-utilisation: %s; falling back to equal weights", reason)
    split = equal_split({p: dict(r) for p, r in rows.items()})
    util = split_utilisation(split, dem, caps, base)
    return Solution(max(util.values(), default=0.0), split, util, FALLBACK,
                    f"{reason}; equal weights over each pair's candidates", unserved)


def solve(demands: Mapping[P, float], candidates: Mapping[P, Mapping[K, float]],
          capacity: Mapping[K, float], base_load: Mapping[K, float] | None = None, *,
          rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> Solution[P, K]:
    """The min-max-utilisation split (see the module docstring).

    Every pair of ``candidates`` or ``demands`` gets a row in ``Solution.split``.
    Raises ValueError on bad input; a solver failure gives ``status == "fallback"``.
    """
    caps, base = _check_capacity(capacity, base_load)
    dem = _check_demands(demands)
    rows = _check_candidates(candidates, caps)
    for p in dem:
        rows.setdefault(p, [])
    routed = [p for p in rows if dem.get(p, 0.0) > 0 and rows[p]]
    unserved = tuple(p for p in rows if dem.get(p, 0.0) > 0 and not rows[p])
    if unserved:
        log.info("min-max-utilisation: no reachable instance for %s",
                 ", ".join(repr(p) for p in unserved))
    u_floor = max((base[k] / caps[k] for k in caps), default=0.0)
    split: dict[P, dict[K, float]] = {p: {} for p in rows}
    notes: list[str] = []
    if routed:
        lp = _build_lp(routed, rows, dem, caps, base)
        try:
            x1 = _stage1(lp, u_floor)
        except _LpError as exc:
            return _fallback(str(exc), rows, dem, caps, base, unserved)
        u_star = max(_highest(lp, x1), u_floor)
        try:
            x = _stage2(lp, u_star * (1 + rel_tol) + abs_tol)
        except _LpError as exc:
            log.warning("min-max-utilisation: %s; keeping stage 1's split (optimal, but "
                        "not the nearest instances)", exc)
            x = x1
            notes.append(f"{exc}: stage 1's split kept")
        for (p, k), v in zip(lp.columns, x, strict=True):
            split[p][k] = v
        for p in routed:
            split[p] = _clean(split[p])
    util = split_utilisation(split, dem, caps, base)
    u_max = max(util.values(), default=0.0)
    idle = [p for p in rows if p not in routed and rows[p]]
    split.update(_headroom_split(rows, idle, util, caps, u_max))
    if unserved:
        notes.append("no reachable instance for " + ", ".join(repr(p) for p in unserved))
    return Solution(u_max, split, util, OPTIMAL, "; ".join(["optimal", *notes]), unserved)


def weights(solution: Solution[P, K], max_group_size: int = wcmp.DEFAULT_BUDGET
            ) -> dict[P, dict[K, int]]:
    """Integer WCMP weights of the solution's split, per pair, as the D-MANO writes them
    (:func:`dmano.wcmp.integer_weights`, ``max_group_size`` as in the policy): an instance
    with fraction 0 gets weight 0 (no new flows); ties favour the nearer candidate."""
    if max_group_size < 1:
        raise ValueError(f"max_group_size: expected an integer >= 1, got {max_group_size!r}")
    out: dict[P, dict[K, int]] = {}
    for p, row in solution.split.items():
        keys = list(row)
        ints = wcmp.integer_weights([row[k] for k in keys], max_group_size)
        out[p] = dict(zip(keys, ints, strict=True))
    return out


__all__ = [
    "ABS_TOL", "FALLBACK", "HEADROOM_FLOOR", "MIN_FRACTION", "OPTIMAL", "REL_TOL",
    "Solution", "equal_split", "max_utilisation", "solve",
    "split_utilisation", "weights",
]
