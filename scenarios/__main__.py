"""``python -m scenarios``: run scenario files (and check them); compare policies with the
min-max-utilisation optimum offline (``optimum``); simulate them without namespaces, up to
10 000 nodes (``simulate``); check the simulation's tables against an emulation
(``crosscheck``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path


def _run_and_print(run: Callable[[], Path], report: str) -> int:
    """Run (emulated networks), then print the folder's ``report`` and where it is;
    Ctrl-C: 130, the network was torn down."""
    try:
        folder = run()
    except KeyboardInterrupt:
        print("interrupted: the network was stopped and cleaned; partial results are in "
              "the results folder", file=sys.stderr)
        return 130
    print((folder / report).read_text(), end="")
    print(f"\nresults: {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a scenario (all its repetitions)")
    run.add_argument("file", type=Path)
    run.add_argument("--repetitions", type=int, help="override the file's repetitions")
    run.add_argument("--output", type=Path, help="base folder for relative 'output' paths")
    run.add_argument("--no-figures", action="store_true")
    run.add_argument("--connector", choices=("ebpf", "bmv2"),
                     help="run the connectors on this target instead of the topology's")
    cmp_ = sub.add_parser("compare", help="run a scenario once per control mode "
                          "(distributed, centralized) and compare them")
    cmp_.add_argument("file", type=Path)
    cmp_.add_argument("--repetitions", type=int, help="runs per mode (default: the file's)")
    cmp_.add_argument("--output", type=Path, help="base folder for relative 'output' paths")
    cmp_.add_argument("--no-figures", action="store_true")
    chk = sub.add_parser("check", help="validate a scenario file and print its scaling")
    chk.add_argument("file", type=Path)
    from scenarios.crosscheck import add_parser as add_crosscheck
    from scenarios.optimum import add_parser as add_optimum
    from scenarios.simulate.cli import add_parser as add_simulate

    add_optimum(sub)
    add_simulate(sub)
    add_crosscheck(sub)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("scenarios").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from dmano.yamlconf import ConfigError
    from scenarios.spec import load_scenario

    if args.cmd in ("run", "compare", "crosscheck"):  # they build networks: SIGTERM and
        from topologies.cli import _terminate_on_signals  # SIGHUP stop and clean them

        _terminate_on_signals()

    try:
        if args.cmd == "check":
            s = load_scenario(args.file)
            print(f"{args.file}: scenario {s.name} OK\n{s.scaling_summary()}")
            return 0
        if args.cmd == "compare":
            from scenarios.compare import compare_scenario

            return _run_and_print(lambda: compare_scenario(
                args.file, args.repetitions, args.output, not args.no_figures),
                "comparison.txt")
        if args.cmd == "simulate":
            from scenarios.simulate.cli import cmd_simulate

            try:
                return cmd_simulate(args)
            except ValueError as exc:
                if isinstance(exc, ConfigError):
                    raise
                print(f"error: {exc}", file=sys.stderr)
                return 2
        if args.cmd == "crosscheck":
            from scenarios.crosscheck import cmd_crosscheck

            try:
                return cmd_crosscheck(args)
            except KeyboardInterrupt:
                print("interrupted: the network was stopped and cleaned", file=sys.stderr)
                return 130
        if args.cmd == "optimum":
            from scenarios.optimum import cmd_optimum

            return cmd_optimum(args)
        from scenarios.runner import run_scenario

        return _run_and_print(lambda: run_scenario(
            args.file, args.repetitions, args.output, not args.no_figures, args.connector),
            "report.txt")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
