"""Helpers for data-plane integration tests: send UDP flows from a host, read counters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from topologies.network import Network

SENDER = r"""
import socket, sys, time
dst, port, sport0, nflows, pkts, size, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
socks = []
for i in range(nflows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", sport0 + i))
    socks.append(s)
payload = b"d" * size
sent = 0
for k in range(pkts):
    for s in socks:
        s.sendto(payload, (dst, port))
        sent += 1
        if gap:
            time.sleep(gap)
print("SENT", sent)
"""


def start_flows(net: Network, host: str, dst: str, *, port: int = 5000, sport0: int = 20000,
                flows: int = 1, packets: int = 1, size: int = 64,
                gap_s: float = 0.0) -> subprocess.Popen:
    """send_flows in the background; sent_of(proc) waits and returns the count."""
    script = net.run_folder / "send_flows.py"
    script.write_text(SENDER)
    return subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{net.nodes[host].netns}", sys.executable, str(script),
         dst, str(port), str(sport0), str(flows), str(packets), str(size), str(gap_s)],
        stdout=subprocess.PIPE, text=True)


def sent_of(proc: subprocess.Popen, timeout: float = 120) -> int:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return int(out.split()[-1])


def send_flows(net: Network, host: str, dst: str, *, port: int = 5000, sport0: int = 20000,
               flows: int = 1, packets: int = 1, size: int = 64, gap_s: float = 0.0,
               timeout: float = 120) -> int:
    """Send ``packets`` datagrams on each of ``flows`` UDP flows (source ports sport0..)."""
    script = net.run_folder / "send_flows.py"
    script.write_text(SENDER)
    netns = net.nodes[host].netns
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", sys.executable, str(script), dst, str(port),
         str(sport0), str(flows), str(packets), str(size), str(gap_s)],
        capture_output=True, text=True, timeout=timeout, check=True)
    return int(out.stdout.split()[-1])


def vnf_stats(net: Network, name: str) -> dict[str, Any]:
    return json.loads((net.run_folder / "vnf" / f"{name}.json").read_text())


def wait_vnf_count(net: Network, name: str, key: str, at_least: int,
                   timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st = vnf_stats(net, name)
    while st[key] < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
        st = vnf_stats(net, name)
    return st


def udp_sink_start(net: Network, host: str, port: int = 5000) -> subprocess.Popen:
    """A sink counting datagrams per source port; prints JSON on SIGTERM and keeps its
    running total in ``<run folder>/sink_<host>_<port>.count`` (see wait_sink_total)."""
    script = net.run_folder / f"sink_{host}.py"
    total_file = net.run_folder / f"sink_{host}_{port}.count"
    script.write_text(r"""
import json, os, signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[1])))
s.settimeout(0.05)
counts = {}
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))

def save(total):
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(total))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])

save(0)
print("READY", flush=True)
total = saved = 0
while not stop:
    try:
        data, (ip, sport) = s.recvfrom(65535)
        counts[sport] = counts.get(sport, 0) + 1
        total += 1
    except socket.timeout:
        pass
    if total != saved:
        save(total)
        saved = total
print(json.dumps(counts), flush=True)
""")
    netns = net.nodes[host].netns
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable,
                             str(script), str(port), str(total_file)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    proc.total_file = total_file  # type: ignore[attr-defined]
    return proc


def wait_sink_total(proc: subprocess.Popen, total: int, timeout: float = 10) -> int:
    """Wait until the sink has received ``total`` datagrams (or the deadline); return
    what it has received."""
    path: Path = proc.total_file  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    got = int(path.read_text() or 0)
    while got < total and time.monotonic() < deadline:
        time.sleep(0.02)
        got = int(path.read_text() or 0)
    return got


def udp_sink_stop(proc: subprocess.Popen) -> dict[int, int]:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def capture(net: Network, node: str, iface: str, bpf_filter: str, fields: list[str],
            count: int, seconds: float) -> subprocess.Popen:
    """Start tshark in ``node``'s namespace; read ``fields`` of up to ``count`` packets."""
    netns = net.nodes[node].netns
    args = ["nsenter", f"--net=/run/netns/{netns}", "tshark", "-l", "-n", "-i", iface,
            "-f", bpf_filter, "-c", str(count), "-a", f"duration:{seconds}", "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_capture_ready(proc: subprocess.Popen, timeout: float = 10) -> None:
    """tshark prints 'Capturing on ...' to stderr once it listens."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "Capturing on" in line or not line:
            return
    raise AssertionError("tshark did not start")


def read_capture(proc: subprocess.Popen, timeout: float = 30) -> list[list[str]]:
    out, _ = proc.communicate(timeout=timeout)
    return [ln.split("\t") for ln in out.splitlines() if ln.strip()]


def p4rt_client(net: Network, node: str, election_id: int = 100) -> Any:
    from p4runtime_sh.p4runtime import P4RuntimeClient

    return P4RuntimeClient(1, f"unix:{net.p4rt_socket(node)}", (0, election_id))


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
