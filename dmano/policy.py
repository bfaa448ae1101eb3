"""High-level policies: how VNF costs are computed and how path costs become WCMP weights.

A policy is a YAML file that must be identical on every NFV node (paper, Section III:
"all NFV nodes must share the same routing objectives"). Two ship with the package, in
``dmano/policies/``:

* ``paper.yaml`` -- ``remaining-capacity`` costs, ``proportional-cost`` weights: the
  combination that reproduces the paper's Section VI figures (see below);
* ``inverse-cost.yaml`` -- ``utilisation`` costs, ``inverse-cost`` weights: the reading
  of the paper's Section V text ("lower cost and thus higher WCMP weight").

Policy file fields
==================

``version`` (integer, default 1)
    Format version; only 1 exists.
``name`` (string, default: the file name without ``.yaml``)
    Shown in logs and in ``show`` output.
``description`` (string, optional)
    Free text.
``period_s`` (number > 0, at most 3600, default 2.0)
    Period of the D-MANO loop in seconds: measure, cost, announce, recompute. The
    paper measures and announces every 2 s. The loop also runs on LSDB changes.
``max_group_size`` (integer 1..65535, default 64)
    Budget of integer WCMP weight per service: the integer weights of one service's
    members sum to at most this (see :mod:`dmano.wcmp`). Larger is more precise
    (share error below ``1/max_group_size`` per member) but BMv2 replicates each member
    ``weight`` times, so it costs selector entries.
``hysteresis`` (mapping, optional)
    A new VNF cost is announced only if it differs from the last announced one by more
    than a dead band of ``max(abs, rel * last)``:

    ``abs`` (number >= 0, default 0)
        absolute dead band, in cost units;
    ``rel`` (number in 0..1, default 0)
        relative dead band, as a fraction of the last announced cost.

    With both at 0 (the default) every change is announced. The first cost of an
    instance is always announced.
``cost`` (mapping, or just the function name as a string)
    How one local instance's measurements become the VNF cost it announces (an integer
    in the range of OSPF link costs). ``function`` picks one of:

    ``static``
        The instance's ``cost`` from the node configuration, unchanged; if the node
        configuration gives none, ``default_cost`` (integer >= 0, default 10).
    ``remaining-capacity`` (the paper's metric, Section V)
        ``cost = scale * (capacity - load)`` clamped to ``[min_cost, scale * capacity]``
        and rounded half up. ``capacity`` and ``load`` are in the VNF's processing units
        per second; ``scale`` (number > 0, default 1.0) normalises them to the range of
        link costs (the paper: capacity "normalized so to have the same range of values
        as the link costs"); ``min_cost`` (integer >= 1, default 1) keeps a saturated
        instance's cost positive.
    ``utilisation``
        ``cost = max_cost * u`` clamped to ``[min_cost, max_cost]`` and rounded half up,
        where ``u = load / capacity`` (``source: load``, the default) or
        ``u = cpu_percent / (100 * cpu_cores)`` (``source: cpu``: the VNF process's CPU
        use over the cores it may use, its ``cpu_limit`` in the topology, else 1; falls
        back to load when no CPU measurement is available). ``max_cost`` (integer >= 1,
        default 100); ``min_cost`` (integer >= 1, default 1). An instance with no capacity
        counts as saturated.

``weight`` (mapping, or just the function name as a string)
    How the path costs (network cost + VNF cost) of a service's live candidates become
    real-valued WCMP weights. ``function`` picks one of:

    ``inverse-cost``
        ``weight = 1 / path_cost``: the cheaper path takes more flows. If some path
        costs are 0, those candidates share all new flows equally.
    ``proportional-cost``
        ``weight = path_cost``. This only makes sense when the "cost" is a measure of
        goodness (remaining capacity); note that then a *longer* network path also
        attracts more flows. If all path costs are 0, the candidates share equally.

Unknown keys are errors, as are keys that do not belong to the chosen function (e.g.
``max_cost`` with ``remaining-capacity``). Errors name the file, line, field and the
expected value.

Which weight function reproduces the paper (Section VI, Figs. 4 and 5)
======================================================================

Setup: ingress A; links A-B 160, A-C 160, A-D 30; one service; every instance has
capacity 150 units/s and an initial VNF cost of 150 (= remaining capacity, unloaded).
2 new flows/s, each lasting 50 s and using 2 units/s, so ``L = 200`` units/s are in the
system in steady state. Phase 1: instances on B and C. Phase 2: B, C and D. Paper:
50/50, then about 40/40/20.

*Phase 1*: B and C are symmetric (same network cost, same capacity), so every policy
gives 50/50; at steady state each carries 100 units/s and announces 150 - 100 = 50.

*Phase 2, inverse-cost with the static costs of 150*: path costs 310, 310, 180, weights
``1/310 : 1/310 : 1/180``, so D gets ``(1/180) / (2/310 + 1/180) = 46.3 %`` and B, C
26.9 % each: the opposite of the figure.

*Phase 2, proportional-cost with remaining-capacity costs*: at steady state the
announced costs reflect the loads that the weights produce. With shares ``s_i``, load
``L s_i``, base ``b_i = network_i + capacity_i`` (310, 310, 180) and ``S = sum(b_i)``
= 800, the path cost is ``p_i = b_i - L s_i``, and ``sum(p_i) = S - L``. The fixed point
``s_i = p_i / sum(p)`` gives ``s_i (S - L) = b_i - L s_i``, i.e. ``s_i = b_i / S``,
independent of the load ``L`` as long as no cost is clamped: **38.75 / 38.75 / 22.5 %**
(loads 77.5, 77.5, 45; announced costs 72.5, 72.5, 105; path costs 232.5, 232.5, 135).
That is the paper's "40/40/20" within its stated spread (half the samples within 3
points of the median). With the integer weights of ``max_group_size: 64`` the connector
gets 25/25/14, i.e. 39.1 / 39.1 / 21.9 %. When D starts (costs 50, 50, 150; path costs
210, 210, 180) D first gets 30 % of new flows; iterating converges because the map's
slope is ``-L / (S - L) = -1/3``.

For comparison: inverse-cost with remaining-capacity costs has positive feedback (a
loaded instance announces a *lower* cost and attracts more flows); its equilibrium on
the Section VI setup is 8.7 / 8.7 / 82.5 %, D overloaded at 165 units/s.
Inverse-cost with utilisation costs (``max_cost: 100``, as in ``inverse-cost.yaml``)
settles at 25 / 25 / 50 %.

So the figure is reproduced by ``proportional-cost`` + ``remaining-capacity``
(``paper.yaml``), which contradicts the Section V sentence "lower cost and thus higher
WCMP weight"; the paper's cost behaves as a goodness (remaining capacity), and its link
costs are then, oddly, also counted as goodness. ``inverse-cost.yaml`` follows the
text instead. :func:`fixed_point_shares` computes such equilibria and
:func:`section_vi_prediction` evaluates the Section VI setup for any policy.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from dmano import wcmp
from dmano.yamlconf import ConfigError, Fields, load_yaml

log = logging.getLogger(__name__)

MAX_VNF_COST = 0xFFFFFFFF  # the LSA's cost field is 32 bits
POLICY_DIR = Path(__file__).resolve().parent / "policies"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


@dataclass(frozen=True)
class Measurement:
    """What the monitor knows about one local VNF instance."""

    capacity: float = 0.0  # processing units per second
    load: float = 0.0  # processing units per second, currently used
    cpu_percent: float | None = None  # CPU use of the VNF process(es), 100 = one core
    cpu_cores: float = 1.0  # the CPU the VNF may use (its cgroup limit, default one core)
    configured_cost: int | None = None  # the instance's cost in the node configuration


# -- cost functions ---------------------------------------------------------------------

class CostFunction(ABC):
    """Maps a local instance's measurements to the VNF cost it announces."""

    name: ClassVar[str]

    @abstractmethod
    def real_cost(self, m: Measurement) -> float:
        """The cost before rounding (used by :func:`fixed_point_shares`)."""

    def cost(self, m: Measurement) -> int:
        """The integer VNF cost to announce."""
        return int(_clamp(_round_half_up(self.real_cost(m)), 0, MAX_VNF_COST))

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The function and its parameters, as in the policy file."""


@dataclass(frozen=True)
class StaticCost(CostFunction):
    name: ClassVar[str] = "static"
    default_cost: int = 10

    def real_cost(self, m: Measurement) -> float:
        if m.configured_cost is not None:
            return float(m.configured_cost)
        return float(self.default_cost)

    def params(self) -> dict[str, Any]:
        return {"function": self.name, "default_cost": self.default_cost}


@dataclass(frozen=True)
class RemainingCapacityCost(CostFunction):
    name: ClassVar[str] = "remaining-capacity"
    scale: float = 1.0
    min_cost: int = 1

    def real_cost(self, m: Measurement) -> float:
        top = max(self.scale * max(m.capacity, 0.0), float(self.min_cost))
        return _clamp(self.scale * (m.capacity - m.load), float(self.min_cost), top)

    def params(self) -> dict[str, Any]:
        return {"function": self.name, "scale": self.scale, "min_cost": self.min_cost}


@dataclass(frozen=True)
class UtilisationCost(CostFunction):
    name: ClassVar[str] = "utilisation"
    max_cost: int = 100
    min_cost: int = 1
    source: str = "load"  # "load" or "cpu"

    def utilisation(self, m: Measurement) -> float:
        if self.source == "cpu" and m.cpu_percent is not None:
            return max(m.cpu_percent, 0.0) / (100.0 * max(m.cpu_cores, 0.01))
        if m.capacity <= 0:
            return 1.0
        return max(m.load, 0.0) / m.capacity

    def real_cost(self, m: Measurement) -> float:
        return _clamp(self.max_cost * self.utilisation(m), float(self.min_cost),
                      float(max(self.max_cost, self.min_cost)))

    def params(self) -> dict[str, Any]:
        return {"function": self.name, "max_cost": self.max_cost,
                "min_cost": self.min_cost, "source": self.source}


COST_FUNCTIONS: dict[str, type[CostFunction]] = {
    cls.name: cls for cls in (StaticCost, RemainingCapacityCost, UtilisationCost)
}


# -- weight functions -------------------------------------------------------------------

class WeightFunction(ABC):
    """Maps the path costs of a service's live candidates to real-valued weights."""

    name: ClassVar[str]

    @abstractmethod
    def weights(self, path_costs: Sequence[float]) -> list[float]:
        """One weight >= 0 per path cost, same order; positive for at least one if any."""

    def params(self) -> dict[str, Any]:
        return {"function": self.name}


@dataclass(frozen=True)
class InverseCost(WeightFunction):
    name: ClassVar[str] = "inverse-cost"

    def weights(self, path_costs: Sequence[float]) -> list[float]:
        if any(p <= 0 for p in path_costs):  # the limit of 1/p: zero-cost paths share all
            return [1.0 if p <= 0 else 0.0 for p in path_costs]
        return [1.0 / p for p in path_costs]


@dataclass(frozen=True)
class ProportionalCost(WeightFunction):
    name: ClassVar[str] = "proportional-cost"

    def weights(self, path_costs: Sequence[float]) -> list[float]:
        out = [float(max(p, 0)) for p in path_costs]
        if out and sum(out) <= 0:
            return [1.0] * len(out)
        return out


WEIGHT_FUNCTIONS: dict[str, type[WeightFunction]] = {
    cls.name: cls for cls in (InverseCost, ProportionalCost)
}


# -- policy -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Hysteresis:
    abs: float = 0.0
    rel: float = 0.0

    def should_announce(self, new_cost: float, last_cost: float | None) -> bool:
        """True if ``new_cost`` must be announced, given the last announced cost."""
        if last_cost is None:
            return True
        band = max(self.abs, self.rel * abs(last_cost))
        return abs(new_cost - last_cost) > band


@dataclass(frozen=True)
class Policy:
    name: str
    cost: CostFunction
    weight: WeightFunction
    period_s: float = 2.0
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    max_group_size: int = wcmp.DEFAULT_BUDGET
    description: str = ""
    source: str = ""  # file it was loaded from, for messages

    def vnf_cost(self, m: Measurement) -> int:
        return self.cost.cost(m)

    def should_announce(self, new_cost: float, last_cost: float | None) -> bool:
        return self.hysteresis.should_announce(new_cost, last_cost)

    def real_weights(self, path_costs: Sequence[float]) -> list[float]:
        return self.weight.weights(path_costs)

    def wcmp_weights(self, path_costs: Sequence[float]) -> list[int]:
        return wcmp.integer_weights(self.real_weights(path_costs), self.max_group_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "period_s": self.period_s,
            "max_group_size": self.max_group_size,
            "hysteresis": {"abs": self.hysteresis.abs, "rel": self.hysteresis.rel},
            "cost": self.cost.params(),
            "weight": self.weight.params(),
        }


PAPER_POLICY = Policy(
    name="paper",
    cost=RemainingCapacityCost(),
    weight=ProportionalCost(),
    description="remaining-capacity costs, weights proportional to path cost "
                "(reproduces the paper's Section VI figures)",
)


def shipped_policy(name: str) -> Path:
    """Path of a policy shipped in ``dmano/policies`` (``"paper"``, ``"inverse-cost"``)."""
    return POLICY_DIR / f"{name}.yaml"


def shipped_policy_names() -> list[str]:
    return sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))


def resolve_policy(ref: str | Path, base: Path | None = None,
                   where: str = "--policy") -> Path:
    """A policy given as a shipped name (``static``) or as a file path, relative to
    ``base`` (default: the current folder), as an absolute path that exists.

    Raises :class:`ConfigError` naming ``where`` and the shipped names otherwise."""
    text = str(ref)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        path = shipped_policy(text)
        if path.is_file():
            return path
        raise ConfigError(where, None, "", f"unknown policy {text!r} (shipped: "
                          f"{', '.join(shipped_policy_names())}; or give a .yaml file)")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if not path.is_file():
        raise ConfigError(where, None, "", f"no policy file {path}")
    return path.resolve()


def load_policy(path: str | Path) -> Policy:
    """Load and check a policy file; raises :class:`ConfigError` naming file and line."""
    return policy_from_data(load_yaml(path), path)


def reload_policy(path: str | Path, current: Policy) -> Policy | None:
    """Re-read a running daemon's policy file (SIGUSR1): the new policy, or None after
    logging why the file is refused (the daemon keeps ``current``)."""
    try:
        policy = load_policy(path)
    except ConfigError as exc:
        log.error("policy not reloaded, keeping %s: %s", current.name, exc)
        return None
    log.info("policy reloaded from %s: %s", path, policy.to_dict())
    return policy


def policy_from_data(data: Any, path: str | Path = "<policy>") -> Policy:
    with Fields(data, path, "") as f:
        f.int("version", 1, lo=1, hi=1)
        name = f.str("name", Path(path).stem)
        description = f.str("description", "")
        period_s = f.number("period_s", 2.0, lo=0, hi=3600, lo_open=True)
        max_group_size = f.int("max_group_size", wcmp.DEFAULT_BUDGET, lo=1, hi=65535)
        hyst = _read_hysteresis(f)
        cost = _read_function(f, "cost", _read_cost)
        weight = _read_function(f, "weight", _read_weight)
    if isinstance(cost, RemainingCapacityCost) and isinstance(weight, InverseCost):
        log.warning("%s: inverse-cost weights with remaining-capacity costs feed back "
                    "positively (a loaded instance announces a lower cost and attracts "
                    "more flows)", path)
    return Policy(name=name, cost=cost, weight=weight, period_s=period_s,
                  hysteresis=hyst, max_group_size=max_group_size,
                  description=description, source=str(path))


def _read_hysteresis(f: Fields) -> Hysteresis:
    data = f.mapping("hysteresis", None)
    if data is None:
        return Hysteresis()
    with Fields(data, f.path, f.field("hysteresis"), f.line_of("hysteresis")) as h:
        return Hysteresis(abs=h.number("abs", 0.0, lo=0),
                          rel=h.number("rel", 0.0, lo=0, hi=1))


def _read_function(f: Fields, key: str, reader: Any) -> Any:
    raw = f.raw(key)
    if isinstance(raw, str):
        raw = {"function": raw}
    elif not isinstance(raw, dict):
        raise f.error(key, "expected a mapping with a 'function' key, or a function name")
    with Fields(raw, f.path, f.field(key), f.line_of(key)) as sub:
        return reader(sub)


def _read_cost(c: Fields) -> CostFunction:
    kind = c.choice("function", COST_FUNCTIONS)
    if kind == StaticCost.name:
        return StaticCost(default_cost=c.int("default_cost", 10, lo=0, hi=MAX_VNF_COST))
    if kind == RemainingCapacityCost.name:
        return RemainingCapacityCost(
            scale=c.number("scale", 1.0, lo=0, lo_open=True),
            min_cost=c.int("min_cost", 1, lo=1, hi=MAX_VNF_COST),
        )
    max_cost = c.int("max_cost", 100, lo=1, hi=MAX_VNF_COST)
    min_cost = c.int("min_cost", 1, lo=1, hi=MAX_VNF_COST)
    if min_cost > max_cost:
        raise c.error("min_cost", f"expected an integer <= max_cost ({max_cost}), "
                                  f"got {min_cost}")
    return UtilisationCost(max_cost=max_cost, min_cost=min_cost,
                           source=c.choice("source", ["load", "cpu"], "load"))


def _read_weight(w: Fields) -> WeightFunction:
    kind = w.choice("function", WEIGHT_FUNCTIONS)
    return WEIGHT_FUNCTIONS[kind]()


# -- equilibrium ------------------------------------------------------------------------

@dataclass(frozen=True)
class Equilibrium:
    """Steady state of the cost -> weight -> load loop for one service."""

    shares: tuple[float, ...]  # fraction of new flows per instance
    loads: tuple[float, ...]  # units/s per instance
    vnf_costs: tuple[float, ...]
    path_costs: tuple[float, ...]
    iterations: int
    converged: bool


def fixed_point_shares(policy: Policy, network_costs: Sequence[float],
                       capacities: Sequence[float], total_load: float, *,
                       configured_costs: Sequence[int | None] | None = None,
                       integer: bool = False, damping: float = 0.5, tol: float = 1e-10,
                       max_iter: int = 10_000,
                       start: Sequence[float] | None = None) -> Equilibrium:
    """Iterate shares -> loads -> VNF costs -> path costs -> weights -> shares.

    Models the steady state of Section VI: instance ``i`` carries ``total_load *
    share_i`` units/s (flows outlive many D-MANO periods, so the load reflects the
    weights). ``integer=True`` rounds costs and uses the integer WCMP weights, as the
    connector does; the quantised map may then cycle between neighbouring points
    instead of converging (``converged`` says which). CPU-based utilisation is modelled
    as ``100 * load / capacity``. ``damping`` in (0, 1] is the step towards the new
    shares (1 = plain iteration).
    """
    n = len(network_costs)
    if len(capacities) != n:
        raise ValueError("network_costs and capacities differ in length")
    if not 0 < damping <= 1:
        raise ValueError("damping must be in (0, 1]")
    configured = list(configured_costs) if configured_costs is not None else [None] * n
    shares = list(start) if start is not None else [1.0 / n] * n if n else []

    def step(cur: list[float]) -> tuple[list[float], list[float], list[float], list[float]]:
        loads = [total_load * s for s in cur]
        costs: list[float] = []
        for cap, load, conf in zip(capacities, loads, configured, strict=True):
            cpu = 100.0 * load / cap if cap > 0 else 100.0
            m = Measurement(capacity=cap, load=load, cpu_percent=cpu, configured_cost=conf)
            costs.append(float(policy.vnf_cost(m)) if integer else policy.cost.real_cost(m))
        paths = [nc + c for nc, c in zip(network_costs, costs, strict=True)]
        weights: Sequence[float] = (policy.wcmp_weights(paths) if integer
                                    else policy.real_weights(paths))
        return wcmp.shares(weights), loads, costs, paths

    iterations = 0
    converged = False
    while iterations < max_iter:
        iterations += 1
        target, _, _, _ = step(shares)
        new = [(1 - damping) * s + damping * t for s, t in zip(shares, target, strict=True)]
        delta = max((abs(a - b) for a, b in zip(new, shares, strict=True)), default=0.0)
        shares = new
        if delta <= tol:
            converged = True
            break
    _, loads, costs, paths = step(shares)
    return Equilibrium(tuple(shares), tuple(loads), tuple(costs), tuple(paths),
                       iterations, converged)


class SectionViSetup(TypedDict):
    """The paper's Section VI scenario, as :data:`SECTION_VI` gives it."""

    network_costs: dict[str, int]  # instance node -> network cost from the ingress A
    capacity: int  # of every instance, units/s
    initial_cost: int  # the VNF cost announced before any load
    flows_per_s: int
    flow_duration_s: int
    units_per_flow: int
    phases: dict[str, tuple[str, ...]]  # phase -> nodes with an instance
    paper_shares: dict[str, dict[str, float]]  # phase -> node -> share the paper reports


# The paper's Section VI setup (see the module docstring).
SECTION_VI: SectionViSetup = {
    "network_costs": {"B": 160, "C": 160, "D": 30},
    "capacity": 150,
    "initial_cost": 150,
    "flows_per_s": 2,
    "flow_duration_s": 50,
    "units_per_flow": 2,
    "phases": {"phase1": ("B", "C"), "phase2": ("B", "C", "D")},
    "paper_shares": {"phase1": {"B": 0.5, "C": 0.5},
                     "phase2": {"B": 0.4, "C": 0.4, "D": 0.2}},
}


def section_vi_prediction(policy: Policy, integer: bool = False
                          ) -> dict[str, dict[str, float]]:
    """Steady-state shares per phase and instance node for the Section VI scenario."""
    setup = SECTION_VI
    total = setup["flows_per_s"] * setup["flow_duration_s"] * setup["units_per_flow"]
    out: dict[str, dict[str, float]] = {}
    for phase, nodes in setup["phases"].items():
        eq = fixed_point_shares(
            policy, [setup["network_costs"][x] for x in nodes],
            [setup["capacity"]] * len(nodes), total,
            configured_costs=[setup["initial_cost"]] * len(nodes), integer=integer)
        out[phase] = dict(zip(nodes, eq.shares, strict=True))
    return out


__all__ = [
    "COST_FUNCTIONS", "PAPER_POLICY", "POLICY_DIR", "SECTION_VI", "WEIGHT_FUNCTIONS",
    "ConfigError", "CostFunction", "Equilibrium", "Hysteresis", "InverseCost",
    "Measurement", "Policy", "ProportionalCost", "RemainingCapacityCost", "SectionViSetup",
    "StaticCost", "UtilisationCost", "WeightFunction", "fixed_point_shares", "load_policy",
    "policy_from_data", "reload_policy", "section_vi_prediction", "shipped_policy",
]
