"""A network spread over two servers (issue #15), the second emulated on this machine.

paper_eval (4 NFV nodes, 2 VNFs) with nodes B and D on an emulated server
(:mod:`topologies.emuserver`), for each kind of cross-server router link (``vxlan``,
Cluster Edition's ``ssh``) and on one machine: the time to ``up`` (every D-MANO
ready), the ping RTT and TCP throughput (iperf, where installed) between router A and
router B (a cross-server link when spread), and the time to stop and clean.

On one machine both "servers" share the CPU: the numbers show what the tunnels cost,
not what a second machine's cores would add.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from dmano.policy import shipped_policy
from topologies import emuserver
from topologies.network import Network
from topologies.servers import SSH_CONFIG_ENV
from topologies.spec import load_topology

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "topologies" / "paper_eval.yaml"
NAME, INDEX = "bench2", 9
PINGS = 200


def topology_file(folder: Path, srv: emuserver.EmuServer | None, tunnel: str) -> Path:
    text = BASE.read_text()
    if srv is not None:
        text += ("\nservers:\n  - {name: main, address: localhost}\n"
                 f"  - {{name: {srv.name}, address: {srv.address}}}\n"
                 f"placement:\n  nodes: {{B: {srv.name}, D: {srv.name}}}\ntunnel: {tunnel}\n")
    path = folder / f"paper_eval_{tunnel if srv else 'one'}.yaml"
    path.write_text(text)
    return path


def rtt_ms(net: Network) -> float:
    out = net.nodes["rA"].cmd(f"ping -q -c {PINGS} -i 0.01 10.0.0.2")
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    if m is None:
        raise RuntimeError(f"ping rA -> rB failed: {out.strip()}")
    return float(m.group(1))


def throughput_mbit(net: Network) -> float | None:
    if shutil.which("iperf") is None:
        return None
    server = net.nodes["rB"].popen(["iperf", "-s", "-p", "5999"])
    try:
        time.sleep(0.5)
        out = net.nodes["rA"].cmd("iperf -c 10.0.0.2 -p 5999 -t 3 -f m")
        m = re.search(r"([\d.]+) Mbits/sec", out)
        return float(m.group(1)) if m else None
    finally:
        server.terminate()
        server.wait(10)


def measure(path: Path) -> dict[str, float | None]:
    t0 = time.monotonic()
    net = Network(load_topology(path), policy=shipped_policy("paper"), dmano=True,
                  vnfs=True, connectors=True)
    net.start()
    try:
        up = time.monotonic() - t0
        rtt, mbit = rtt_ms(net), throughput_mbit(net)
    finally:
        t1 = time.monotonic()
        net.stop()
    return {"up": up, "rtt": rtt, "mbit": mbit, "stop": time.monotonic() - t1}


def main() -> None:
    print("\n== A network over two servers (paper_eval, B and D on an emulated second "
          "server) ==")
    print(f"{'links A-B, A-D':<31} {'up s':>6} {'RTT A-B ms':>11} {'TCP A-B Mbit/s':>15} "
          f"{'stop s':>7}")
    emuserver.stop(NAME)
    srv = emuserver.start(NAME, INDEX)
    old = os.environ.get(SSH_CONFIG_ENV)
    os.environ[SSH_CONFIG_ENV] = str(srv.ssh_config)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows = [("one machine (veth)", topology_file(folder, None, "vxlan")),
                    ("two servers, vxlan", topology_file(folder, srv, "vxlan")),
                    ("two servers, ssh (Cluster Ed.)", topology_file(folder, srv, "ssh"))]
            for label, path in rows:
                r = measure(path)
                mbit = "-" if r["mbit"] is None else f"{r['mbit']:.0f}"
                print(f"{label:<31} {r['up']:>6.1f} {r['rtt']:>11.3f} {mbit:>15} "
                      f"{r['stop']:>7.1f}", flush=True)
    finally:
        if old is None:
            os.environ.pop(SSH_CONFIG_ENV, None)
        else:
            os.environ[SSH_CONFIG_ENV] = old
        emuserver.stop(NAME)
    if shutil.which("iperf") is None:
        print("(TCP throughput: iperf is not installed)")


if __name__ == "__main__":
    main()
