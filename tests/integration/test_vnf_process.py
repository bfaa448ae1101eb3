"""``python -m vnf`` on a real AF_PACKET socket (root: CAP_NET_RAW)."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from scapy.all import IP, UDP, Ether, load_contrib, raw

from tests.integration.conftest import ROOT
from vnf import fastpath

load_contrib("nsh")
from scapy.contrib.nsh import NSH  # noqa: E402

CONN_MAC = "02:00:00:00:00:cc"
CTX = struct.pack("!IIII", 0xDEADBEEF, 0x11111111, 0x22222222, 0x33333333)

# -- the real program on the loopback interface (root only) -----------------------------

def test_program_on_loopback(tmp_path: Path) -> None:
    """``python -m vnf --iface lo``: frames in and out of a real AF_PACKET socket.

    On ``lo`` every frame the VNF sends comes back to it, so one frame sent with SI 2
    is seen three times: SI 2 (ours), SI 1 (the VNF's answer), SI 0 (the VNF's answer
    to its own answer, which it then drops as si_zero).
    """
    stats = tmp_path / "lo.json"
    spi = 0xABCDE  # unlikely to be anyone else's
    proc = subprocess.Popen(
        [sys.executable, "-m", "vnf", "--name", "t", "--iface", "lo", "--service",
         "passthrough", "--stats", str(stats), "--stats-interval", "0.1"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not stats.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "VNF did not write its stats"
            time.sleep(0.05)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
            s.bind(("lo", fastpath.ETH_P_NSH))
            s.settimeout(0.2)
            frame = raw(Ether(dst="00:00:00:00:00:00", src=CONN_MAC)
                        / NSH(spi=spi, si=2, context_header=CTX) / IP() / UDP())
            s.send(frame)
            seen = []
            end = time.monotonic() + 5
            while time.monotonic() < end and len(seen) < 3:
                try:
                    pkt = Ether(s.recv(4096))
                except TimeoutError:
                    continue
                if NSH in pkt and pkt[NSH].spi == spi:
                    seen.append(pkt)
        assert [p[NSH].si for p in seen] == [2, 1, 0]
        assert seen[1].dst == CONN_MAC and seen[1][NSH].context_header == CTX
        deadline = time.monotonic() + 5
        while True:
            data = json.loads(stats.read_text())
            if data["packets_in"] >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert data["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        final = json.loads(stats.read_text())
        assert final["updated"] >= data["updated"]
        assert final["packets_out"] >= 2 and final["dropped"]["si_zero"] >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
