"""Traffic generator speed: requested vs achieved rate and per-flow jitter over 127.0.0.1.

Each row: N flows of R packets/s, 64-byte payloads, all started within one packet
interval (evenly phased), running DURATION s, sent by :class:`Generator` in this process
to a sink started as a separate process (``python -m scenarios.traffic sink``) on an
ephemeral loopback port. Both compete for the machine's cores (2 here).

Columns: requested = N x R; achieved = sum over flows of (packets sent - 1) / (last send -
first send); recv = unique packets at the sink; lateness = send time - scheduled time over all
packets; rate err = worst flow's |achieved / R - 1|; jitter = mean |inter-send gap - 1/R|
of a flow (mean over flows, and the worst flow); cpu = generator CPU time / run time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dmano.procutil import terminate
from scenarios.traffic.gen import Generator, raise_fd_limit
from scenarios.traffic.plan import plan_from_mapping

ROOT = Path(__file__).resolve().parents[1]
DURATION = 4.0
CASES = [(100, 20.0), (300, 20.0), (1000, 20.0), (1000, 50.0)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(flows: int, rate: float, tmp: Path) -> dict[str, Any]:
    port = _free_port()
    summary_path = tmp / f"sink_{flows}_{rate:g}.json"
    sink = subprocess.Popen(
        [sys.executable, "-m", "scenarios.traffic", "sink", "--bind", "127.0.0.1", "--port",
         str(port), "--summary", str(summary_path), "--quiet", "--log-level", "warning",
         "--duration", str(DURATION + 20)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        time.sleep(0.5)  # sink up
        plan = plan_from_mapping({
            "seed": 1, "sport_range": "20000-59999",
            "defaults": {"dst": f"127.0.0.1:{port}", "rate": rate, "size": 64,
                         "duration": DURATION},
            "arrivals": {"process": "constant", "rate": flows * rate, "count": flows}})
        gen = Generator(plan, keep_records=True, status_interval=0)
        g = gen.run()
        time.sleep(0.3)
    finally:
        rc = terminate(sink, grace_s=20)  # the sink writes its summary on SIGTERM
    if rc != 0:
        raise RuntimeError(f"the sink exited with status {rc} (negative: killed by that signal)")
    s = json.loads(summary_path.read_text())
    recs = [r for r in gen.records if r["status"] == "complete"]
    rate_err = max((abs(r["achieved_pps"] / rate - 1) for r in recs if r["achieved_pps"]),
                   default=float("nan"))
    jit = [r["jitter_us"] for r in recs if r["jitter_us"] is not None]
    return {
        "flows": flows, "rate": rate, "requested": flows * rate,
        "achieved": sum(r["achieved_pps"] or 0 for r in recs), "sent": g["packets"]["sent"],
        "due": g["packets"]["requested"], "recv": s["totals"]["unique"],
        "late": g["lateness_us"], "rate_err": rate_err,
        "jitter_mean": sum(jit) / len(jit) if jit else float("nan"),
        "jitter_max": max(jit, default=float("nan")),
        "cpu": g["cpu_s"] / g["elapsed_s"] if g["elapsed_s"] else float("nan"),
        "failed": g["flows"]["failed"],
    }


def main() -> None:
    raise_fd_limit()
    print(f"traffic generator over 127.0.0.1: 64-byte payloads, {DURATION:g} s per row, "
          f"sink in another process, {os.cpu_count()} cores")
    head = (f"{'flows':>6} {'pps/flow':>8} {'requested':>10} {'achieved':>10} {'sent':>7} "
            f"{'recv':>7} {'late p50':>9} {'p99':>7} {'max':>8} {'rate err':>9} "
            f"{'jitter':>7} {'worst':>7} {'cpu':>5}")
    print(head)
    print(f"{'':>6} {'':>8} {'pps':>10} {'pps':>10} {'':>7} {'':>7} {'us':>9} {'us':>7} "
          f"{'us':>8} {'%':>9} {'us':>7} {'us':>7} {'%':>5}")
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="dsfc-bench-traffic-") as tmp:
        for flows, rate in CASES:
            r = run_case(flows, rate, Path(tmp))
            lt = r["late"]
            print(f"{r['flows']:>6} {r['rate']:>8.0f} {r['requested']:>10.0f} "
                  f"{r['achieved']:>10.0f} {r['sent']:>7} {r['recv']:>7} {lt['p50']:>9.0f} "
                  f"{lt['p99']:>7.0f} {lt['max']:>8.0f} {r['rate_err'] * 100:>9.2f} "
                  f"{r['jitter_mean']:>7.0f} {r['jitter_max']:>7.0f} {r['cpu'] * 100:>5.0f}"
                  + (f"  ({r['failed']} flows failed)" if r["failed"] else ""), flush=True)
    print("achieved = sum of the flows' measured rates; late packets are sent late, never "
          "dropped (sent == due unless a send failed)")


if __name__ == "__main__":
    main()
