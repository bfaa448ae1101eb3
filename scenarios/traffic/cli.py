"""``python -m scenarios.traffic gen|sink|report``: the traffic tools as programs.

Examples (Section VI of the paper: 2 flows/s, 50 s each, 2 packets/s each)::

    T0=$(python3 -c 'import time; print(time.monotonic_ns() + 2_000_000_000)')
    python -m scenarios.traffic sink --port 5001 --epoch-ns $T0 --timeseries sink.csv \\
        --summary sink.json
    python -m scenarios.traffic gen --dst 10.1.100.11:5001 --arrival poisson \\
        --arrival-rate 2/s --duration 50 --rate 2pps --size 64 --until 300 --seed 1 \\
        --epoch-ns $T0 --timeseries gen.csv --flow-log gen_flows.jsonl --summary gen.json
    python -m scenarios.traffic gen --plan plan.yaml --flow-log f.jsonl --summary gen.json
    python -m scenarios.traffic gen --plan plan.yaml --dry-run 20      # print the plan
    python -m scenarios.traffic report --gen-log gen_flows.jsonl --sink-summary sink.json

Both programs stop cleanly on SIGTERM/SIGINT/SIGHUP and then write their results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from dmano.atomicfile import write_json_atomic
from scenarios.traffic import report
from scenarios.traffic.gen import (
    MIN_SLEEP_US,
    Generator,
    format_summary,
    raise_fd_limit,
)
from scenarios.traffic.plan import (
    PROCESSES,
    PlanError,
    parse_bytes,
    parse_duration,
    parse_flow_option,
    parse_port_range,
    plan_from_mapping,
    read_plan_file,
)
from scenarios.traffic.sink import DEFAULT_RCVBUF, Sink
from scenarios.traffic.sink import format_summary as format_sink_summary

log = logging.getLogger("scenarios.traffic")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summary", type=Path, metavar="FILE",
                   help="write the summary as JSON here on exit")
    p.add_argument("--epoch-ns", type=int, metavar="NS",
                   help="time zero as a time.monotonic_ns() value, shared by the processes "
                        "of a run (default: when the program starts)")
    p.add_argument("--quiet", action="store_true", help="no summary on stdout")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scenarios.traffic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("gen", help="send constant-rate UDP flows",
                       description="Send constant-rate UDP flows (one source port each) "
                                   "given by a plan file and/or the options below.")
    g.add_argument("--plan", type=Path, metavar="FILE",
                   help="flow plan, YAML or JSON (see scenarios/traffic/plan.py); the "
                        "options below add flows/processes and override its defaults")
    g.add_argument("--flow", action="append", default=[], metavar="K=V,...",
                   help="one explicit flow, e.g. dst=10.1.100.20:5001,rate=20,start=0,"
                        "duration=10[,size=64,sport=30000] (repeatable)")
    g.add_argument("--arrival", choices=PROCESSES, default="poisson",
                   help="flow arrival process for --arrival-rate (default poisson)")
    g.add_argument("--arrival-rate", metavar="RATE", help="new flows per second, e.g. 2/s")
    g.add_argument("--arrival-start", metavar="T", default="0",
                   help="arrivals begin at T s (default 0)")
    g.add_argument("--until", metavar="T", help="no arrivals at or after T s")
    g.add_argument("--count", type=int, metavar="N", help="at most N arriving flows")
    g.add_argument("--dst", action="append", default=[], metavar="IP:PORT",
                   help="destination of the flows (repeatable: round-robin)")
    g.add_argument("--rate", metavar="PPS", help="packets/s of each flow, e.g. 2pps")
    g.add_argument("--size", metavar="BYTES", help="UDP payload bytes (>= 20, default 64)")
    g.add_argument("--duration", metavar="T",
                   help="duration of each flow, e.g. 50 or 50s (default: until stopped)")
    g.add_argument("--seed", type=int, help="seed of the arrival processes")
    g.add_argument("--sport-range", metavar="LO-HI",
                   help="source ports handed out to flows (default 20000-59999)")
    g.add_argument("--first-flow-id", type=int, metavar="N")
    g.add_argument("--src-ip", metavar="IP", help="bind the flows' sockets to this address")
    g.add_argument("--stop-after", metavar="T",
                   help="stop at T s after time zero (running flows are cut)")
    g.add_argument("--max-concurrent", type=int, metavar="N",
                   help="refuse flows beyond N running at once (default: fd limit - 64)")
    g.add_argument("--sndbuf", metavar="BYTES", help="SO_SNDBUF of each flow's socket")
    g.add_argument("--min-sleep-us", type=float, default=MIN_SLEEP_US, metavar="US",
                   help="shortest sleep between sends (default %(default)g): fewer wake-ups "
                        "at high rates, packets at most this much late")
    g.add_argument("--flow-log", type=Path, metavar="FILE",
                   help="one JSON line per flow as it ends (or is cut/fails)")
    g.add_argument("--timeseries", type=Path, metavar="FILE",
                   help="CSV, one row per --interval (packets sent, flows started/ended, "
                        "lateness)")
    g.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="time-series interval (default 1 s; rows at time zero + k x S)")
    g.add_argument("--status-interval", type=float, default=10.0, metavar="S",
                   help="log progress every S s (0: never)")
    g.add_argument("--dry-run", nargs="?", const=-1, type=int, metavar="N",
                   help="print the first N planned flows as JSON lines (all of a finite "
                        "plan without N) and exit")
    _add_common(g)

    s = sub.add_parser("sink", help="receive the flows, per-flow loss and latency",
                       description="Receive the generator's datagrams; per-flow loss, "
                                   "reordering, duplicates, latency.")
    s.add_argument("--port", action="append", default=[], metavar="PORT[-PORT]",
                   help="UDP port or range to listen on (repeatable; default 5001)")
    s.add_argument("--bind", default="0.0.0.0", metavar="IP")
    s.add_argument("--timeseries", type=Path, metavar="FILE",
                   help="CSV, one row per --interval")
    s.add_argument("--interval", type=float, default=1.0, metavar="S")
    s.add_argument("--losses", type=Path, metavar="FILE",
                   help="CSV, one row per sequence gap: estimated send times of the "
                        "packets lost (seconds after --epoch-ns)")
    s.add_argument("--duration", metavar="T", help="stop by itself after T s")
    s.add_argument("--rcvbuf", metavar="BYTES", default=str(DEFAULT_RCVBUF),
                   help=f"SO_RCVBUF of each socket (default {DEFAULT_RCVBUF})")
    s.add_argument("--max-flows", type=int, default=100_000, metavar="N",
                   help="flows tracked at most (datagrams of more flows count as malformed)")
    _add_common(s)

    r = sub.add_parser("report", help="sent vs received per flow (flow log + sink summary)")
    r.add_argument("--gen-log", type=Path, required=True, metavar="FILE")
    r.add_argument("--sink-summary", type=Path, required=True, metavar="FILE")
    r.add_argument("--json", action="store_true", help="rows as JSON instead of a table")
    r.add_argument("--limit", type=int, default=50, metavar="N", help="rows shown in the table")
    return p


def plan_mapping_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The plan file (if any) with the command line's additions and overrides."""
    data = read_plan_file(args.plan) if args.plan is not None else {}
    overrides: dict[str, Any] = {}  # of the defaults; the file's keep their line numbers
    if args.dst:
        overrides["dst"] = args.dst if len(args.dst) > 1 else args.dst[0]
    for key in ("rate", "size", "duration"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    base = data.get("defaults")
    if overrides and (base is None or isinstance(base, dict)):  # else: validation says so
        data["defaults"] = {**(base or {}), **overrides}
    if args.flow:
        data["flows"] = list(data.get("flows") or []) + [parse_flow_option(f) for f in args.flow]
    if args.arrival_rate is not None:
        arrivals = data.get("arrivals") or []
        arrivals = list(arrivals) if isinstance(arrivals, list) else [arrivals]
        proc: dict[str, Any] = {"process": args.arrival, "rate": args.arrival_rate,
                                "start": args.arrival_start}
        if args.until is not None:
            proc["until"] = args.until
        if args.count is not None:
            proc["count"] = args.count
        arrivals.append(proc)
        data["arrivals"] = arrivals
    elif args.until is not None or args.count is not None:
        raise PlanError("--until/--count go with --arrival-rate")
    if args.sport_range is not None:
        data["sport_range"] = args.sport_range
    if args.first_flow_id is not None:
        data["first_flow_id"] = args.first_flow_id
    return data


def _plan_options(args: argparse.Namespace) -> bool:
    """Whether the command line adds to or overrides the plan file's fields."""
    return bool(args.dst or args.flow) or any(
        getattr(args, key) is not None
        for key in ("rate", "size", "duration", "arrival_rate", "sport_range", "first_flow_id"))


def _setup_logging(level: str, name: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s")


def _install_signals(stop: Any) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def run_gen(args: argparse.Namespace) -> int:
    try:
        data = plan_mapping_from_args(args)
        try:
            plan = plan_from_mapping(data, seed=args.seed, path=args.plan or "<command line>")
        except PlanError as exc:
            if args.plan is None or not _plan_options(args):
                raise
            raise PlanError(f"{exc} (the plan with the command line's options)") from None
        stop_after = None if args.stop_after is None else parse_duration(args.stop_after,
                                                                          "--stop-after")
        sndbuf = None if args.sndbuf is None else parse_bytes(args.sndbuf, "--sndbuf") or None
        if args.interval <= 0:
            raise PlanError("--interval must be > 0")
    except (PlanError, OSError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if args.dry_run is not None:
        if args.dry_run < 0 and not plan.finite:
            log.error("the plan is endless: give --dry-run N")
            return 2
        flows = plan.flows() if args.dry_run < 0 else itertools.islice(plan.flows(),
                                                                       args.dry_run)
        try:
            for f in flows:
                sys.stdout.write(json.dumps(f.to_dict()) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. piped into head
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    fd_limit = raise_fd_limit()
    gen = Generator(plan, src_ip=args.src_ip, flow_log=args.flow_log, epoch_ns=args.epoch_ns,
                    stop_after=stop_after,
                    max_concurrent=args.max_concurrent or max(1, fd_limit - 64),
                    sndbuf=sndbuf, status_interval=args.status_interval,
                    min_sleep_us=args.min_sleep_us, timeseries=args.timeseries,
                    interval=args.interval)
    _install_signals(gen.request_stop)
    log.info("plan: %d explicit flows, %d arrival processes, seed %d", len(plan.explicit),
             len(plan.arrivals), plan.seed)
    try:
        summary = gen.run()
    except OSError as exc:
        log.error("%s", exc)
        return 1
    return _finish(args, summary, format_summary)


def _finish(args: argparse.Namespace, summary: dict, fmt: Any) -> int:
    """Write the JSON summary (--summary) and print it unless --quiet; the exit code."""
    rc = 0
    if args.summary is not None:
        try:
            write_json_atomic(args.summary, summary, mkdir=True)
        except OSError as exc:
            log.error("cannot write the summary %s: %s", args.summary, exc)
            rc = 1
    if not args.quiet:
        print(fmt(summary), flush=True)
    return rc


def run_sink(args: argparse.Namespace) -> int:
    try:
        ports: list[int] = []
        for spec in args.port or ["5001"]:
            lo, hi = parse_port_range(spec, "--port")
            ports.extend(range(lo, hi + 1))
        duration = None if args.duration is None else parse_duration(args.duration,
                                                                     "--duration")
        rcvbuf = parse_bytes(args.rcvbuf, "--rcvbuf") or None
        if args.interval <= 0:
            raise PlanError("--interval must be > 0")
    except PlanError as exc:
        log.error("%s", exc)
        return 2
    try:
        sink = Sink(ports, bind=args.bind, timeseries=args.timeseries, interval=args.interval,
                    rcvbuf=rcvbuf, epoch_ns=args.epoch_ns, max_flows=args.max_flows,
                    duration=duration, losses=args.losses)
    except OSError as exc:
        log.error("cannot listen on %s ports %s: %s", args.bind, ports, exc)
        return 1
    _install_signals(sink.request_stop)
    return _finish(args, sink.run(), format_sink_summary)


def run_report(args: argparse.Namespace) -> int:
    try:
        gen_flows = report.load_flow_log(args.gen_log)
        sink = json.loads(args.sink_summary.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return 1
    rows = report.join(gen_flows, sink.get("flows", []))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(report.format_table(rows, limit=args.limit))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "log_level", "info"), f"traffic-{args.cmd}")
    return {"gen": run_gen, "sink": run_sink, "report": run_report}[args.cmd](args)
