"""Synthetic VNF load: write VNF counters files with chosen rates, without traffic.

A test stand-in (``tests.loadsim``): for the D-MANO integration tests and benchmarks that
need to set the load a VNF reports (the D-MANO reads it exactly as it reads a real VNF's
counters, see ``vnf/stats.py``). Use it only for instances whose real VNF process is not
running: both would write the same file.
"""

from __future__ import annotations

import os
import threading
import time

from dmano.atomicfile import write_json_atomic
from topologies.network import Network
from topologies.nodeconf import vnf_stats_path


class SyntheticLoad:
    """Writes each instance's counters file every ``interval`` s; set ``rates[name]``."""

    def __init__(self, net: Network, interval: float = 0.2):
        self.net = net
        self.interval = interval
        self.rates = {i.name: 0.0 for i in net.topo.instances}
        self.stopped: set[str] = set()  # instances to report as gone (file not refreshed)
        self._stop = threading.Event()
        (net.run_folder / "vnf").mkdir(exist_ok=True)
        self.write()
        self._thread = threading.Thread(target=self._loop, name="synthetic-load", daemon=True)
        self._thread.start()

    def write(self) -> None:
        for inst in self.net.topo.instances:
            if inst.name in self.stopped:
                continue
            write_json_atomic(vnf_stats_path(self.net.run_folder, inst.name),
                              {"name": inst.name, "pid": os.getpid(),
                               "capacity": inst.capacity, "rate_pps": self.rates[inst.name],
                               "updated": time.time()}, indent=None)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> SyntheticLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
