"""Flow plans: which UDP flows the generator sends, when, and how fast.

A plan is a set of *sources* merged in start order: an explicit list of flows and/or
arrival processes (Poisson or constant inter-arrival times). Flows are numbered in start
order from ``first_flow_id``. Flows are produced lazily, so an arrival process without
``until``/``count`` goes on until the generator is stopped.

Plan file (YAML or JSON; every key optional but at least one of ``flows``/``arrivals``)::

    seed: 1                    # random seed of the arrival processes (default: random, logged)
    sport_range: 20000-59999   # UDP source ports handed out to flows (one per flow)
    first_flow_id: 0
    defaults:                  # per-flow parameters used where a flow/process says nothing
      dst: 10.1.100.20:5001    # or a list: flows take them round-robin
      rate: 2pps               # packets/s of each flow (2, 2pps, 2/s, 1.5k)
      size: 64                 # UDP payload bytes (>= 20, the probe header)
      duration: 50s            # of each flow; null = until the generator stops
    flows:                     # explicit flows
      - {start: 0, duration: 10, rate: 20, dst: 10.1.100.20:5001, sport: 30000}
    arrivals:                  # one process or a list of them
      - process: poisson       # or constant
        rate: 2/s              # flow arrivals per second
        start: 0               # s; first arrival of a Poisson process is start + Exp(rate)
        until: 150             # s; no arrival at or after this time (optional)
        count: 300             # at most this many flows (optional)
        flow: {rate: 2pps, duration: 50}   # per-flow parameters over ``defaults``

Times are seconds from the generator's time zero (its ``epoch``). The arrival process of
index ``i`` draws from ``random.Random(seed * 1_000_003 + i)``: a plan and a seed always give
the same flows (start, duration, rate, size, destination), on every machine.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scenarios.traffic.wire import HEADER_SIZE, MAX_PAYLOAD

DEFAULT_SPORT_RANGE = (20000, 59999)
DEFAULT_RATE = 10.0
DEFAULT_SIZE = 64
PROCESSES = ("poisson", "constant")


class PlanError(ValueError):
    """An invalid plan, option or value (the message says which and why)."""


# --------------------------------------------------------------------------- values
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_RATE_RE = re.compile(rf"^{_NUM}\s*([kKmM]?)\s*(pps|/s|fps)?$")
_DUR_RE = re.compile(rf"^{_NUM}\s*(ns|us|ms|s|min|h)?$")
_SIZE_RE = re.compile(rf"^{_NUM}\s*([kK]i?)?[bB]?$")
_DUR_UNITS = {None: 1.0, "s": 1.0, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "min": 60.0,
              "h": 3600.0}


def parse_rate(value: Any, what: str = "rate") -> float:
    """Events per second: ``2``, ``2.5``, ``"2pps"``, ``"2/s"``, ``"1.5k"``, ``"1kpps"``."""
    if isinstance(value, bool):
        raise PlanError(f"{what}: not a rate: {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        m = _RATE_RE.match(str(value).strip())
        if not m:
            raise PlanError(f"{what}: not a rate: {value!r} (e.g. 20, 20pps, 2/s, 1.5k)")
        rate = float(m.group(1)) * {"": 1.0, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if not math.isfinite(rate) or rate <= 0:
        raise PlanError(f"{what} must be > 0, got {value!r}")
    return rate


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds: ``50``, ``"50s"``, ``"500ms"``, ``"2min"``, ``"1h"``."""
    if isinstance(value, bool):
        raise PlanError(f"{what}: not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DUR_RE.match(str(value).strip())
        if not m:
            raise PlanError(f"{what}: not a duration: {value!r} (e.g. 50, 50s, 500ms)")
        seconds = float(m.group(1)) * _DUR_UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise PlanError(f"{what} must be >= 0, got {value!r}")
    return seconds


def parse_size(value: Any, what: str = "size") -> int:
    """UDP payload bytes, between the probe header (20) and 65507."""
    if isinstance(value, bool):
        raise PlanError(f"{what}: not a size: {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    else:
        m = _SIZE_RE.match(str(value).strip())
        if not m:
            raise PlanError(f"{what}: not a size: {value!r}")
        size = int(float(m.group(1)) * (1024 if m.group(2) else 1))
    if not HEADER_SIZE <= size <= MAX_PAYLOAD:
        raise PlanError(f"{what} must be {HEADER_SIZE}..{MAX_PAYLOAD} bytes (UDP payload, "
                        f"the probe header is {HEADER_SIZE}), got {value!r}")
    return size


_BYTES_RE = re.compile(r"^([0-9]+)\s*([kKmMgG]?)(i?[bB])?$")


def parse_bytes(value: Any, what: str = "size") -> int:
    """A byte count: ``4194304``, ``"4M"``, ``"4MiB"``, ``"512k"`` (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _BYTES_RE.match(str(value).strip())
        if not m:
            raise PlanError(f"{what}: not a byte count: {value!r} (e.g. 4194304, 4M)")
        n = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    if n < 0:
        raise PlanError(f"{what} must be >= 0, got {value!r}")
    return n


def parse_port(value: Any, what: str = "port") -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise PlanError(f"{what}: not a port number: {value!r}") from None
    if not 1 <= port <= 65535 or isinstance(value, bool):
        raise PlanError(f"{what} must be 1..65535, got {value!r}")
    return port


def parse_port_range(value: Any, what: str = "port range") -> tuple[int, int]:
    """``"20000-59999"``, ``[20000, 59999]`` or one port ``5001``."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise PlanError(f"{what}: expected [low, high], got {value!r}")
        lo, hi = (parse_port(v, what) for v in value)
    elif isinstance(value, int):
        lo = hi = parse_port(value, what)
    else:
        text = str(value).strip()
        parts = text.split("-")
        if len(parts) == 1:
            lo = hi = parse_port(parts[0], what)
        elif len(parts) == 2:
            lo, hi = parse_port(parts[0], what), parse_port(parts[1], what)
        else:
            raise PlanError(f"{what}: expected LOW-HIGH, got {value!r}")
    if lo > hi:
        raise PlanError(f"{what}: {lo} > {hi}")
    return lo, hi


def parse_endpoint(value: Any, what: str = "dst") -> tuple[str, int]:
    """``"10.1.100.20:5001"``, ``"[fd00::1]:5001"`` or ``[ip, port]`` -> (ip, port)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = str(value[0]), value[1]
    elif isinstance(value, Mapping) and {"ip", "port"} <= set(value):
        host, port = str(value["ip"]), value["port"]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
        else:
            host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise PlanError(f"{what}: expected IP:PORT, got {value!r}")
    else:
        raise PlanError(f"{what}: expected IP:PORT, got {value!r}")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise PlanError(f"{what}: not an IP address: {host!r}") from None
    return host, parse_port(port, what)


def format_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _parse_dsts(value: Any, what: str) -> tuple[tuple[str, int], ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PlanError(f"{what}: empty destination list")
    return tuple(parse_endpoint(v, what) for v in items)


# --------------------------------------------------------------------------- flows
@dataclass(frozen=True, slots=True)
class FlowSpec:
    """One planned flow. ``duration`` None = until the generator stops."""

    flow_id: int
    start: float  # s after the generator's epoch
    duration: float | None
    rate: float  # packets/s
    size: int  # UDP payload bytes
    dst_ip: str
    dst_port: int
    sport: int | None = None  # None: taken from the plan's source port range

    @property
    def packets(self) -> int | None:
        """Packets of the complete flow: one every 1/rate s from start, before start+duration."""
        if self.duration is None:
            return None
        return max(1, math.ceil(self.duration * self.rate - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        return {"flow_id": self.flow_id, "start": round(self.start, 9),
                "duration": self.duration, "rate": self.rate, "size": self.size,
                "dst_ip": self.dst_ip, "dst_port": self.dst_port, "sport": self.sport}


@dataclass(frozen=True, slots=True)
class FlowParams:
    """Per-flow parameters a source gives its flows."""

    dsts: tuple[tuple[str, int], ...] = ()
    rate: float = DEFAULT_RATE
    size: int = DEFAULT_SIZE
    duration: float | None = None


_PARAM_KEYS = {"dst", "rate", "size", "duration"}


def _params(data: Mapping[str, Any] | None, base: FlowParams, what: str) -> FlowParams:
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise PlanError(f"{what}: expected a mapping, got {data!r}")
    unknown = set(data) - _PARAM_KEYS
    if unknown:
        raise PlanError(f"{what}: unknown keys {sorted(unknown)} (known: {sorted(_PARAM_KEYS)})")
    p = base
    if "dst" in data:
        p = replace(p, dsts=_parse_dsts(data["dst"], f"{what}.dst"))
    if "rate" in data:
        p = replace(p, rate=parse_rate(data["rate"], f"{what}.rate"))
    if "size" in data:
        p = replace(p, size=parse_size(data["size"], f"{what}.size"))
    if "duration" in data:
        d = data["duration"]
        p = replace(p, duration=None if d is None else _positive_duration(d, f"{what}.duration"))
    return p


def _positive_duration(value: Any, what: str) -> float:
    d = parse_duration(value, what)
    if d <= 0:
        raise PlanError(f"{what} must be > 0 (null = until stopped), got {value!r}")
    return d


@dataclass(frozen=True)
class ExplicitFlow:
    start: float
    params: FlowParams
    sport: int | None = None


@dataclass(frozen=True)
class ArrivalProcess:
    process: str  # poisson | constant
    rate: float  # arrivals/s
    params: FlowParams
    start: float = 0.0
    until: float | None = None
    count: int | None = None

    def starts(self, rng: random.Random) -> Iterator[float]:
        """Arrival times (s), increasing."""
        n = 0
        t = self.start
        while self.count is None or n < self.count:
            if self.process == "poisson":
                t += rng.expovariate(self.rate)
            else:
                t = self.start + n / self.rate
            if self.until is not None and t >= self.until:
                return
            yield t
            n += 1


_TOP_KEYS = {"seed", "sport_range", "first_flow_id", "defaults", "flows", "arrivals"}
_FLOW_KEYS = _PARAM_KEYS | {"start", "sport"}
_ARRIVAL_KEYS = {"process", "rate", "start", "until", "count", "flow"}


@dataclass
class FlowPlan:
    """Sources of flows, merged in start order by :meth:`flows`."""

    explicit: list[ExplicitFlow]
    arrivals: list[ArrivalProcess]
    seed: int
    sport_range: tuple[int, int] = DEFAULT_SPORT_RANGE
    first_flow_id: int = 0

    @property
    def finite(self) -> bool:
        return all(a.until is not None or a.count is not None for a in self.arrivals)

    def flows(self) -> Iterator[FlowSpec]:
        """Every flow of the plan in start order (lazy; endless if a process is)."""
        streams: list[Iterable[tuple[float, int, int, FlowParams, int | None]]] = []
        explicit = sorted(self.explicit, key=lambda f: f.start)
        streams.append((f.start, 0, i, f.params, f.sport) for i, f in enumerate(explicit))
        for idx, proc in enumerate(self.arrivals):
            rng = random.Random(self.seed * 1_000_003 + idx)
            streams.append((t, idx + 1, n, proc.params, None)
                           for n, t in enumerate(proc.starts(rng)))
        merged = heapq.merge(*streams, key=lambda e: (e[0], e[1], e[2]))
        for flow_id, (start, _src, n, params, sport) in zip(
                itertools.count(self.first_flow_id), merged, strict=False):
            if flow_id > 0xFFFFFFFF:
                raise PlanError("flow ids exhausted (u32)")
            dst_ip, dst_port = params.dsts[n % len(params.dsts)]
            yield FlowSpec(flow_id, start, params.duration, params.rate, params.size,
                           dst_ip, dst_port, sport)


def plan_from_mapping(data: Mapping[str, Any], *, seed: int | None = None) -> FlowPlan:
    """Validate a plan mapping (the file format above). ``seed`` overrides the file's."""
    if not isinstance(data, Mapping):
        raise PlanError(f"plan: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PlanError(f"plan: unknown keys {sorted(unknown)} (known: {sorted(_TOP_KEYS)})")
    if seed is None:
        seed = data.get("seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise PlanError(f"seed must be an integer, got {seed!r}")
    sport_range = parse_port_range(data.get("sport_range", list(DEFAULT_SPORT_RANGE)),
                                   "sport_range")
    first = data.get("first_flow_id", 0)
    if not isinstance(first, int) or isinstance(first, bool) or not 0 <= first <= 0xFFFFFFFF:
        raise PlanError(f"first_flow_id must be 0..2^32-1, got {first!r}")
    defaults = _params(data.get("defaults"), FlowParams(), "defaults")

    explicit: list[ExplicitFlow] = []
    flows = data.get("flows") or []
    if not isinstance(flows, list):
        raise PlanError("flows: expected a list")
    for i, f in enumerate(flows):
        what = f"flows[{i}]"
        if not isinstance(f, Mapping):
            raise PlanError(f"{what}: expected a mapping, got {f!r}")
        unknown = set(f) - _FLOW_KEYS
        if unknown:
            raise PlanError(f"{what}: unknown keys {sorted(unknown)} "
                            f"(known: {sorted(_FLOW_KEYS)})")
        params = _params({k: v for k, v in f.items() if k in _PARAM_KEYS}, defaults, what)
        _need_dst(params, what)
        sport = parse_port(f["sport"], f"{what}.sport") if f.get("sport") is not None else None
        explicit.append(ExplicitFlow(parse_duration(f.get("start", 0), f"{what}.start"),
                                     params, sport))

    arrivals: list[ArrivalProcess] = []
    raw = data.get("arrivals") or []
    for i, a in enumerate(raw if isinstance(raw, list) else [raw]):
        what = f"arrivals[{i}]"
        if not isinstance(a, Mapping):
            raise PlanError(f"{what}: expected a mapping, got {a!r}")
        unknown = set(a) - _ARRIVAL_KEYS
        if unknown:
            raise PlanError(f"{what}: unknown keys {sorted(unknown)} "
                            f"(known: {sorted(_ARRIVAL_KEYS)})")
        process = a.get("process", "poisson")
        if process not in PROCESSES:
            raise PlanError(f"{what}.process must be one of {PROCESSES}, got {process!r}")
        if "rate" not in a:
            raise PlanError(f"{what}: 'rate' (arrivals per second) is required")
        params = _params(a.get("flow"), defaults, f"{what}.flow")
        _need_dst(params, f"{what}.flow")
        count = a.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                                  or count < 0):
            raise PlanError(f"{what}.count must be an integer >= 0, got {count!r}")
        until = a.get("until")
        arrivals.append(ArrivalProcess(
            process, parse_rate(a["rate"], f"{what}.rate"), params,
            start=parse_duration(a.get("start", 0), f"{what}.start"),
            until=None if until is None else parse_duration(until, f"{what}.until"),
            count=count))
    if not explicit and not arrivals:
        raise PlanError("plan has no flows: give 'flows' and/or 'arrivals'")
    return FlowPlan(explicit, arrivals, seed, sport_range, first)


def _need_dst(params: FlowParams, what: str) -> None:
    if not params.dsts:
        raise PlanError(f"{what}: no destination (set 'dst' here or in 'defaults')")


def read_plan_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a plan file: YAML (``.yaml``/``.yml``) or JSON (anything else)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PlanError(f"cannot read plan {p}: {exc}") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise PlanError(f"{p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}:"
                        f" {exc}") from None
    if not isinstance(data, dict):
        raise PlanError(f"{p}: expected a mapping at the top, got {type(data).__name__}")
    return data


def load_plan(path: str | Path, *, seed: int | None = None) -> FlowPlan:
    """Read and validate a plan file (``seed`` overrides the file's)."""
    try:
        return plan_from_mapping(read_plan_file(path), seed=seed)
    except PlanError as exc:
        msg = str(exc)
        raise PlanError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def parse_flow_option(text: str) -> dict[str, Any]:
    """``--flow "dst=10.0.0.2:5001,rate=20,size=64,start=0,duration=10,sport=30000"``."""
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise PlanError(f"--flow: expected KEY=VALUE[,KEY=VALUE...], got {text!r}")
        if key not in _FLOW_KEYS:
            raise PlanError(f"--flow: unknown key {key!r} (known: {sorted(_FLOW_KEYS)})")
        out[key] = None if key == "duration" and value in ("", "none", "null") else value
    return out
