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

Plans are read through :mod:`dmano.yamlconf` like every configuration file of the
project: a mistake raises :class:`PlanFileError` (a :class:`dmano.yamlconf.ConfigError`
and a :class:`PlanError`) naming the file, the line, the field and what was expected,
e.g. ``plan.yaml:12: arrivals[0].rate: expected a rate > 0 like 20, 20pps, 2/s or 1.5k,
got 'fast'``; unknown keys are errors, and a key given as ``null`` counts as not given
(except ``duration: null``, which means "until the generator stops").

Times are seconds from the generator's time zero (its ``epoch``). Arrival times come from
:func:`scenarios.arrivals.arrival_times` (the generator the scenario schedule uses too);
the process of index ``i`` draws from ``random.Random(seed * 1_000_003 + i)``: a plan and
a seed always give the same flows (start, duration, rate, size, destination), on every
machine.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from dmano.yamlconf import ConfigError, Fields, load_json, load_yaml
from scenarios.arrivals import PROCESSES, arrival_times
from scenarios.traffic.wire import HEADER_SIZE, MAX_PAYLOAD

DEFAULT_SPORT_RANGE = (20000, 59999)
DEFAULT_RATE = 10.0
DEFAULT_SIZE = 64
T = TypeVar("T")


class PlanError(ValueError):
    """An invalid plan, option or value (the message says which and why)."""


class PlanFileError(PlanError, ConfigError):
    """An invalid plan (file or mapping): a :class:`~dmano.yamlconf.ConfigError` naming
    the file, line, field and what was expected, that is also a :class:`PlanError`."""


class _BadValueError(ValueError):
    """A value parser's complaint: what was expected, and what was given."""


# --------------------------------------------------------------------------- values
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_RATE_RE = re.compile(rf"^{_NUM}\s*([kKmM]?)\s*(pps|/s|fps)?$")
_DUR_RE = re.compile(rf"^{_NUM}\s*(ns|us|ms|s|min|h)?$")
_SIZE_RE = re.compile(rf"^{_NUM}\s*([kK]i?)?[bB]?$")
_BYTES_RE = re.compile(r"^([0-9]+)\s*([kKmMgG]?)(i?[bB])?$")
_DUR_UNITS = {None: 1.0, "s": 1.0, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "min": 60.0,
              "h": 3600.0}
_RATE_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}


def _scaled(value: Any, pattern: re.Pattern[str], units: Mapping[Any, float],
            hint: str, positive: bool) -> float:
    """A number, or a string matching ``pattern`` (number, unit): a finite value > 0
    (``positive``) or >= 0, else :class:`_BadValueError` expecting ``hint``."""
    m = None if isinstance(value, bool | int | float) else pattern.match(str(value).strip())
    if isinstance(value, bool) or not (m or isinstance(value, int | float)):
        raise _BadValueError(f"expected {hint}, got {value!r}")
    x = float(m.group(1)) * units[m.group(2)] if m else float(value)
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise _BadValueError(f"expected {hint}, got {value!r}")
    return x


def _rate(value: Any) -> float:
    """Events per second: ``2``, ``2.5``, ``"2pps"``, ``"2/s"``, ``"1.5k"``, ``"1kpps"``."""
    return _scaled(value, _RATE_RE, _RATE_UNITS, "a rate > 0 like 20, 20pps, 2/s or 1.5k",
                   positive=True)


def _duration(value: Any) -> float:
    """Seconds: ``50``, ``"50s"``, ``"500ms"``, ``"2min"``, ``"1h"``."""
    return _scaled(value, _DUR_RE, _DUR_UNITS, "a duration >= 0 like 50, 50s, 500ms or 2min",
                   positive=False)


def _positive_duration(value: Any) -> float:
    d = _duration(value)
    if d <= 0:
        raise _BadValueError(f"expected a duration > 0 (null: until the generator stops), "
                             f"got {value!r}")
    return d


def _size(value: Any) -> int:
    """UDP payload bytes, between the probe header (20) and 65507."""
    expected = (f"expected a UDP payload of {HEADER_SIZE}..{MAX_PAYLOAD} bytes like 64 or 1k "
                f"(the probe header is {HEADER_SIZE})")
    if isinstance(value, bool):
        raise _BadValueError(f"{expected}, got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    else:
        m = _SIZE_RE.match(str(value).strip())
        if not m:
            raise _BadValueError(f"{expected}, got {value!r}")
        size = int(float(m.group(1)) * (1024 if m.group(2) else 1))
    if not HEADER_SIZE <= size <= MAX_PAYLOAD:
        raise _BadValueError(f"{expected}, got {value!r}")
    return size


def _bytes(value: Any) -> int:
    """A byte count: ``4194304``, ``"4M"``, ``"4MiB"``, ``"512k"`` (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _BYTES_RE.match(str(value).strip())
        if not m:
            raise _BadValueError(f"expected a byte count like 4194304 or 4M, got {value!r}")
        n = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    if n < 0:
        raise _BadValueError(f"expected a byte count >= 0, got {value!r}")
    return n


def _port(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _BadValueError(f"expected a port 1..65535, got {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise _BadValueError(f"expected a port 1..65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise _BadValueError(f"expected a port 1..65535, got {value!r}")
    return port


def _port_range(value: Any) -> tuple[int, int]:
    """``"20000-59999"``, ``[20000, 59999]`` or one port ``5001``."""
    expected = "expected a port range LOW-HIGH like 20000-59999, or one port"
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise _BadValueError(f"{expected}, got {value!r}")
        lo, hi = (_port(v) for v in value)
    elif isinstance(value, int):
        lo = hi = _port(value)
    else:
        parts = str(value).strip().split("-")
        if len(parts) > 2:
            raise _BadValueError(f"{expected}, got {value!r}")
        lo, hi = _port(parts[0]), _port(parts[-1])
    if lo > hi:
        raise _BadValueError(f"{expected} (LOW <= HIGH), got {value!r}")
    return lo, hi


def _endpoint(value: Any) -> tuple[str, int]:
    """``"10.1.100.20:5001"``, ``"[fd00::1]:5001"`` or ``[ip, port]`` -> (ip, port)."""
    expected = "expected a destination IP:PORT like 10.1.100.20:5001"
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
            raise _BadValueError(f"{expected}, got {value!r}")
    else:
        raise _BadValueError(f"{expected}, got {value!r}")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise _BadValueError(f"{expected}: {host!r} is not an IP address") from None
    return host, _port(port)


def _option(parser: Callable[[Any], T], value: Any, what: str) -> T:
    """``parser(value)`` for a command-line option or a lone value: PlanError naming it."""
    try:
        return parser(value)
    except _BadValueError as exc:
        raise PlanError(f"{what}: {exc}") from None


def parse_rate(value: Any, what: str = "rate") -> float:
    """Events per second: ``2``, ``2.5``, ``"2pps"``, ``"2/s"``, ``"1.5k"``, ``"1kpps"``."""
    return _option(_rate, value, what)


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds: ``50``, ``"50s"``, ``"500ms"``, ``"2min"``, ``"1h"``."""
    return _option(_duration, value, what)


def parse_size(value: Any, what: str = "size") -> int:
    """UDP payload bytes, between the probe header (20) and 65507."""
    return _option(_size, value, what)


def parse_bytes(value: Any, what: str = "size") -> int:
    """A byte count: ``4194304``, ``"4M"``, ``"4MiB"``, ``"512k"`` (powers of 1024)."""
    return _option(_bytes, value, what)


def parse_port(value: Any, what: str = "port") -> int:
    return _option(_port, value, what)


def parse_port_range(value: Any, what: str = "port range") -> tuple[int, int]:
    """``"20000-59999"``, ``[20000, 59999]`` or one port ``5001``."""
    return _option(_port_range, value, what)


def parse_endpoint(value: Any, what: str = "dst") -> tuple[str, int]:
    """``"10.1.100.20:5001"``, ``"[fd00::1]:5001"`` or ``[ip, port]`` -> (ip, port)."""
    return _option(_endpoint, value, what)


def format_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


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
        """Arrival times (s), increasing (:func:`scenarios.arrivals.arrival_times`)."""
        return arrival_times(self.process, self.rate, rng, self.start, self.until,
                             self.count)


_FLOW_KEYS = {"dst", "rate", "size", "duration", "start", "sport"}  # keys of --flow


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


# --------------------------------------------------------------------------- reading
def plan_from_mapping(data: Mapping[str, Any], *, seed: int | None = None,
                      path: str | Path = "<plan>") -> FlowPlan:
    """Validate a plan mapping (the file format above) read from ``path`` (for messages;
    a mapping from :func:`read_plan_file` knows its lines). ``seed`` overrides the file's.
    Raises :class:`PlanFileError`."""
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise PlanError(f"seed must be an integer, got {seed!r}")
    try:
        with Fields(data, path, "") as top:
            file_seed = top.int("seed", default=None)
            sport_range = _value(top, "sport_range", _port_range, DEFAULT_SPORT_RANGE)
            first = top.int("first_flow_id", default=0, lo=0, hi=0xFFFFFFFF)
            defaults = _section(top, "defaults", lambda f: _params(f, FlowParams()),
                                FlowParams())
            explicit = top.items("flows", lambda f: _explicit(f, defaults), default=[])
            if isinstance(top.raw("arrivals", None), list):
                arrivals = top.items("arrivals", lambda f: _arrival(f, defaults))
            else:
                none: list[ArrivalProcess] = []
                arrivals = _section(top, "arrivals", lambda f: [_arrival(f, defaults)], none)
        if not explicit and not arrivals:
            raise ConfigError(top.path, top.line, "",
                              "the plan has no flows: give flows and/or arrivals")
    except PlanFileError:
        raise
    except ConfigError as exc:
        raise PlanFileError(exc.path, exc.line, exc.field, exc.detail) from None
    if seed is None:
        seed = file_seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return FlowPlan(explicit, arrivals, seed, sport_range, first)


def _value(f: Fields, key: str, parser: Callable[[Any], T], *default: Any) -> Any:
    """Field ``key`` through one of the value parsers (required without ``default``)."""
    raw = f.raw(key, *default)
    if default and raw is default[0]:
        return raw
    try:
        return parser(raw)
    except _BadValueError as exc:
        raise f.error(key, str(exc)) from None


def _section(top: Fields, key: str, reader: Callable[[Fields], T], default: T) -> T:
    """The mapping under ``key`` through ``reader`` (``default`` if not given)."""
    data = top.raw(key, None)
    if data is None:
        return default
    with Fields(data, top.path, top.field(key), top.line_of(key)) as f:
        return reader(f)


def _params(f: Fields, base: FlowParams) -> FlowParams:
    """The per-flow keys of ``f`` (dst, rate, size, duration) over ``base``."""
    p = base
    if f.raw("dst", None) is not None:
        p = replace(p, dsts=_dsts(f, "dst"))
    rate = _value(f, "rate", _rate, None)
    if rate is not None:
        p = replace(p, rate=rate)
    size = _value(f, "size", _size, None)
    if size is not None:
        p = replace(p, size=size)
    given = "duration" in f.data  # null: until the generator stops
    duration = _value(f, "duration", _positive_duration, None)
    return replace(p, duration=duration) if given else p


def _dsts(f: Fields, key: str) -> tuple[tuple[str, int], ...]:
    value = f.raw(key)
    if not isinstance(value, list):
        return (_value(f, key, _endpoint),)
    if not value:
        raise f.error(key, "expected a destination IP:PORT or a list of them, got an empty "
                           "list")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_endpoint(item))
        except _BadValueError as exc:
            lines = getattr(value, "item_lines", [])
            line = lines[i] if i < len(lines) else f.line_of(key)
            raise ConfigError(f.path, line, f"{f.field(key)}[{i}]", str(exc)) from None
    return tuple(out)


def _need_dst(f: Fields, key: str, params: FlowParams) -> None:
    if not params.dsts:
        raise f.error(key, "no destination: expected dst (IP:PORT) here or in defaults")


def _explicit(f: Fields, defaults: FlowParams) -> ExplicitFlow:
    params = _params(f, defaults)
    _need_dst(f, "dst", params)
    start = _value(f, "start", _duration, 0.0)
    return ExplicitFlow(start, params, _value(f, "sport", _port, None))


def _arrival(f: Fields, defaults: FlowParams) -> ArrivalProcess:
    process = f.choice("process", PROCESSES, default="poisson")
    rate = _value(f, "rate", _rate)
    start = _value(f, "start", _duration, 0.0)
    until = _value(f, "until", _duration, None)
    count = f.int("count", default=None, lo=0)
    params = _section(f, "flow", lambda sub: _params(sub, defaults), defaults)
    _need_dst(f, "flow", params)
    return ArrivalProcess(process, rate, params, start=start, until=until, count=count)


def read_plan_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a plan file, with its lines: YAML (``.yaml``/``.yml``) or JSON
    (anything else), read by :mod:`dmano.yamlconf`. Raises :class:`PlanFileError`."""
    p = Path(path)
    try:
        data = load_yaml(p) if p.suffix in (".yaml", ".yml") else load_json(p)
    except ConfigError as exc:
        raise PlanFileError(exc.path, exc.line, exc.field, exc.detail) from None
    if not isinstance(data, dict):
        shown = "nothing" if data is None else f"a {type(data).__name__}"
        raise PlanFileError(p, getattr(data, "line", None) or 1, "",
                            f"expected a mapping (key: value) at the top, got {shown}")
    return data


def load_plan(path: str | Path, *, seed: int | None = None) -> FlowPlan:
    """Read and validate a plan file (``seed`` overrides the file's)."""
    return plan_from_mapping(read_plan_file(path), seed=seed, path=path)


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
