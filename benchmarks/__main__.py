"""Run every benchmark (``make bench``); ``python -m benchmarks NAME`` runs one."""

from __future__ import annotations

import importlib
import logging
import sys

BENCHMARKS = ["topology_bringup", "dmano_propagation", "failure_avoidance", "central_reaction",
              "cluster", "connector_pps",
              "vnf_fastpath",
              "traffic_gen"]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    names = argv or BENCHMARKS
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
            return 2
        module.main()
    return 0


sys.exit(main(sys.argv[1:]))
