"""The VNF's configuration: command-line options, optionally on top of a YAML file.

Every option has a key of the same name in the ``--config`` file (dashes become
underscores); an option given on the command line overrides the file, and ``--rule``
options are appended after the file's ``rules``. Example file::

    name: fw1
    iface: eth0
    service: firewall
    stats: /run/dsfc/demo/vnf/fw1.json
    capacity: 150          # packets/s; omit for no limit
    work_us: 20
    default_action: allow
    rules:
      - drop proto=udp dst=10.5.100.0/24 dport=5000-5099     # rule text, or
      - {action: drop, src: 10.1.100.66/32}                  # a mapping

``rules`` are firewall rules for ``service: firewall`` and payload rules
(:mod:`vnf.dpi`, e.g. ``count payload=/etc/passwd``) for ``service: dpi``. An ``ids``
reclassifies flows above ``ids_threshold`` packets/s to chain ``reclassify_to`` (SPI)::

    service: ids
    ids_threshold: 500      # or --threshold-pps
    reclassify_to: 20       # --reclassify-to
    reclassify_idle: 5      # s a marked flow must be idle to be forgotten

A ``scapy`` service runs the user's Python module (:mod:`vnf.scapy_service`)::

    service: scapy
    module: ../vnfs/dscp_marker.py   # --module; relative to this file (on the command
                                     # line: to the current folder)
    params: {dscp: 46}               # --params-json '{"dscp": 46}': given to setup()
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmano.yamlconf import ConfigError, Fields, load_yaml
from vnf.dpi import DpiRule, dpi_rule_from_fields, parse_dpi_rule
from vnf.packetio import DEFAULT_BATCH, DEFAULT_RCVBUF, DEFAULT_SLOT
from vnf.services import (
    MAX_SPI,
    RECLASSIFY_IDLE_S,
    SERVICES,
    Rule,
    RuleError,
    parse_rule,
    rule_from_fields,
)

IO_KINDS = ("mmsg", "simple")
LOG_LEVELS = ("debug", "info", "warning", "error")
RULE_SERVICES = ("firewall", "dpi")  # the services that take rules


@dataclass(frozen=True)
class VnfConfig:
    name: str
    iface: str
    service: str
    stats: Path
    capacity: float | None = None
    burst: float | None = None
    work_us: float = 0.0
    rules: tuple[Rule, ...] = ()  # firewall
    dpi_rules: tuple[DpiRule, ...] = ()  # dpi
    default_action: str = "allow"
    ids_threshold: float = 1000.0
    reclassify_to: int | None = None  # ids: SPI of the chain suspicious flows go to
    reclassify_idle: float = RECLASSIFY_IDLE_S
    io: str = "mmsg"
    batch: int = DEFAULT_BATCH
    slot: int = DEFAULT_SLOT
    rcvbuf: int = DEFAULT_RCVBUF
    flows_max: int = 4096
    stats_interval: float = 0.5
    log_level: str = "info"
    module: Path | None = None  # scapy: the user's module file
    params: dict[str, Any] = field(default_factory=dict, hash=False)  # scapy: for setup()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vnf",
        description="A VNF instance: receives Ethernet/NSH (0x894F) frames on an "
                    "interface, applies its service, decrements the NSH service index "
                    "and sends them back to the connector. Writes its counters as JSON.",
        epilog="Firewall rule syntax: [drop|allow] [src=PREFIX] [dst=PREFIX] "
               "[proto=tcp|udp|icmp|sctp|N] [dport=P|P-Q]; first match wins. "
               "DPI rule syntax: [drop|allow|count] [the same fields] "
               "payload=TEXT|hex=HEX; count rules count and go on, the first drop or "
               "allow match decides.",
    )
    p.add_argument("--config", type=Path, help="YAML file with any of the options below")
    p.add_argument("--name", help="instance name (used in logs and the stats file)")
    p.add_argument("--iface", help="interface to serve, e.g. eth0")
    p.add_argument("--service", choices=SERVICES, help="what the VNF does")
    p.add_argument("--stats", type=Path, help="JSON stats file, rewritten every interval")
    p.add_argument("--capacity", type=float, metavar="PPS",
                   help="token-bucket limit in packets/s (default: none); beyond it "
                        "packets are dropped as over_capacity")
    p.add_argument("--burst", type=float, metavar="PACKETS",
                   help="token bucket depth (default: 50 ms of capacity, at least 1)")
    p.add_argument("--work-us", type=float, metavar="US",
                   help="busy work per accepted packet in microseconds (default 0)")
    p.add_argument("--rule", action="append", default=[], metavar="RULE",
                   help="firewall or dpi rule (repeatable, in order)")
    p.add_argument("--default-action", choices=("allow", "drop"),
                   help="firewall action when no rule matches (default allow)")
    p.add_argument("--ids-threshold", "--threshold-pps", dest="ids_threshold", type=float,
                   metavar="PPS",
                   help="ids: flag flows above this many packets/s (default 1000)")
    p.add_argument("--reclassify-to", type=int, metavar="SPI",
                   help="ids: send the packets of flows above the threshold to the chain "
                        "with this SPI, at SI 255 (default: only flag them)")
    p.add_argument("--reclassify-idle", type=float, metavar="S",
                   help=f"ids: a reclassified flow idle this long is forgotten (default "
                        f"{RECLASSIFY_IDLE_S:g})")
    p.add_argument("--module", type=Path, metavar="PATH",
                   help="scapy: the Python file whose process(pkt, ctx) handles every "
                        "packet (see vnf/scapy_service.py)")
    p.add_argument("--params-json", metavar="JSON",
                   help="scapy: a JSON object handed to the module's setup(params)")
    p.add_argument("--io", choices=IO_KINDS, help="mmsg (batched, default) or simple")
    p.add_argument("--batch", type=int, help=f"frames per system call (default "
                                             f"{DEFAULT_BATCH})")
    p.add_argument("--slot", type=int, metavar="BYTES",
                   help=f"largest frame received (default {DEFAULT_SLOT}); longer ones "
                        "are dropped as too_big")
    p.add_argument("--rcvbuf", type=int, metavar="BYTES",
                   help=f"socket receive buffer (default {DEFAULT_RCVBUF})")
    p.add_argument("--flows-max", type=int, help="flows kept in the stats (default 4096)")
    p.add_argument("--stats-interval", type=float, metavar="S",
                   help="seconds between stats writes (default 0.5)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    return p


# numeric options: (lowest, highest or None, lowest excluded)
_NUMBER_LIMITS: dict[str, tuple[float, float | None, bool]] = {
    "capacity": (0.0, None, True),
    "burst": (1.0, None, False),
    "work_us": (0.0, 1e6, False),
    "ids_threshold": (0.0, None, True),
    "reclassify_idle": (0.0, 86400.0, True),
    "stats_interval": (0.01, 3600.0, False),
}
_INT_LIMITS: dict[str, tuple[int, int]] = {
    "batch": (1, 1024),
    "slot": (64, 1 << 20),
    "rcvbuf": (4096, 1 << 30),
    "flows_max": (1, 1 << 20),
    "reclassify_to": (1, MAX_SPI),
}


def _read_file(path: Path, cli_service: str | None) -> dict[str, Any]:
    """The file's options; its rules are read with the syntax of the service (the
    command line's, else the file's; firewall when neither says)."""
    data = load_yaml(path)
    values: dict[str, Any] = {}
    with Fields(data, path, "") as f:
        for key in ("name", "iface", "stats"):
            values[key] = f.str(key, None)
        for key, choices in (("service", SERVICES), ("default_action", ("allow", "drop")),
                             ("io", IO_KINDS), ("log_level", LOG_LEVELS)):
            values[key] = _optional_choice(f, key, choices)
        for key, (lo, hi, lo_open) in _NUMBER_LIMITS.items():
            values[key] = f.number(key, None, lo=lo, hi=hi, lo_open=lo_open)
        for key, (ilo, ihi) in _INT_LIMITS.items():
            values[key] = f.int(key, None, lo=ilo, hi=ihi)
        module = f.str("module", None)
        values["module"] = (path.parent / Path(module).expanduser()
                            if module is not None else None)
        params = f.mapping("params", None)
        values["params"] = _json_object(params, lambda m: f.error("params", m))
        rules = f.list("rules", [])
        dpi = (cli_service or values["service"]) == "dpi"
        values["dpi_rules" if dpi else "rules"] = [_file_rule(f, i, item, dpi)
                                                   for i, item in enumerate(rules)]
    return values


def _json_object(value: Any, error: Callable[[str], Exception]) -> dict[str, Any] | None:
    """A mapping of JSON values as a plain dict (None stays None); ``error(message)``
    makes the exception for anything else."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise error(f"expected a mapping (a JSON object), got {type(value).__name__}")
    try:
        plain = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise error(f"expected strings, numbers, booleans, lists and mappings only "
                    f"({exc})") from None
    if any(not isinstance(k, str) for k in value):
        raise error("expected text keys")
    return plain


def _optional_choice(f: Fields, key: str, choices: tuple[str, ...]) -> str | None:
    value = f.raw(key, None)
    if value is not None and value not in choices:
        raise f.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _file_rule(f: Fields, i: int, item: Any, dpi: bool) -> Rule | DpiRule:
    line = f.item_line("rules", i)
    where = f"rules[{i}]"
    try:
        if isinstance(item, str):
            return parse_dpi_rule(item) if dpi else parse_rule(item)
        if isinstance(item, dict):
            fields = dict(item)
            action = str(fields.pop("action", "drop"))
            if dpi:
                return dpi_rule_from_fields(fields, action, where=where)
            return rule_from_fields(fields, action, where=where)
    except RuleError as exc:
        raise ConfigError(f.path, line, where, str(exc)) from None
    keys = "action, src, dst, proto, dport" + (", payload | hex" if dpi else "")
    raise ConfigError(f.path, line, where, f"expected a rule string or a mapping {{{keys}}}")


def _check_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for key, (lo, hi, lo_open) in _NUMBER_LIMITS.items():
        value = getattr(args, key)
        if value is None:
            continue
        if value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            rel = ">" if lo_open else ">="
            top = f" and <= {hi:g}" if hi is not None else ""
            parser.error(f"--{key.replace('_', '-')}: expected a number {rel} {lo:g}{top}, "
                         f"got {value:g}")
    for key, (ilo, ihi) in _INT_LIMITS.items():
        value = getattr(args, key)
        if value is not None and not ilo <= value <= ihi:
            parser.error(f"--{key.replace('_', '-')}: expected an integer in {ilo}..{ihi}, "
                         f"got {value}")


def _scapy_options(args: argparse.Namespace, values: dict[str, Any],
                   parser: argparse.ArgumentParser) -> None:
    """``--module`` and ``--params-json`` (over the file's module and params)."""
    if args.module is not None:
        values["module"] = args.module
    if args.params_json is not None:
        try:
            params = json.loads(args.params_json)
        except ValueError as exc:
            parser.error(f"--params-json: not JSON: {exc}")
        values["params"] = _json_object(params, lambda m: parser.error(f"--params-json: {m}"))
    service = values["service"]
    if service == "scapy" and values.get("module") is None:
        parser.error("--service scapy needs --module PATH (a Python file defining "
                     "process(pkt, ctx))")
    if service != "scapy":
        for key, option in (("module", "--module"), ("params", "--params-json")):
            if values.get(key) is not None:
                parser.error(f"{option}: only the scapy service runs a module, not "
                             f"{service}")


def parse_args(argv: list[str] | None = None) -> VnfConfig:
    """Command line (+ ``--config`` file) -> :class:`VnfConfig`; exits 2 on errors.

    A bad ``--config`` file raises :class:`ConfigError` (file, line, field, fix).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_cli(args, parser)
    values: dict[str, Any] = (_read_file(args.config, args.service) if args.config
                              else {})
    for key in ("name", "iface", "service", "stats", *_NUMBER_LIMITS, *_INT_LIMITS,
                "default_action", "io", "log_level"):
        cli = getattr(args, key)
        if cli is not None:
            values[key] = cli
    missing = [k for k in ("name", "iface", "service", "stats") if not values.get(k)]
    if missing:
        parser.error("missing " + ", ".join(f"--{k}" for k in missing)
                     + (" (not in the command line nor in --config)" if args.config else ""))
    service = values["service"]
    rules = list(values.pop("rules", []))
    dpi_rules = list(values.pop("dpi_rules", []))
    if (rules or dpi_rules or args.rule) and service not in RULE_SERVICES:
        parser.error(f"rules are only used by the firewall and dpi services, not {service}")
    for text in args.rule:
        try:
            if service == "dpi":
                dpi_rules.append(parse_dpi_rule(text))
            else:
                rules.append(parse_rule(text))
        except RuleError as exc:
            parser.error(f"--rule: {exc}")
    if values.get("reclassify_to") is not None and service != "ids":
        parser.error(f"--reclassify-to: only the ids service reclassifies, not {service}")
    if values.get("reclassify_idle") is not None and values.get("reclassify_to") is None:
        parser.error("--reclassify-idle: only with --reclassify-to")
    _scapy_options(args, values, parser)
    given = {k: v for k, v in values.items() if v is not None}
    given["stats"] = Path(given["stats"])
    return VnfConfig(rules=tuple(rules), dpi_rules=tuple(dpi_rules), **given)
