"""VNF fast path speed: ``Processor.process`` on bytes, no interface, one core.

Frames: Ethernet/NSH MD type 1/IPv4/UDP, 84 bytes, laid out back to back in one buffer
(as the I/O layer's receive slots are) and processed in place by a plain Python loop, so
the loop's own cost is included. 1024 flows unless said otherwise. Best of 3 runs.

The ``scapy`` rows run user modules from ``vnfs/`` (service ``scapy``,
:mod:`vnf.scapy_service`) in the same harness on fewer frames (:data:`SCAPY_FRAMES`):
scapy parses every inner packet and builds it again, the price of writing the VNF's
work in Python per packet.

The last rows add the I/O layer: frames queued on an ``AF_UNIX`` datagram socketpair
(64 at a time, queued untimed), then :class:`MmsgIO` / :class:`SimpleIO` ``poll()``
timed while receiving, processing and sending them to the other end. A real interface
adds the kernel's AF_PACKET and veth costs on top.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmano.macaddr import parse_mac
from vnf.fastpath import VNF_ERROR, Processor
from vnf.packetio import MmsgIO, SimpleIO, mmsg_available
from vnf.services import Firewall, Ids, Passthrough, parse_rule

FRAMES = 200_000
STRIDE = 128
MAC = parse_mac("02:00:00:00:00:01")  # the VNF's
PEER_MAC = parse_mac("02:00:00:00:00:ff")  # the connector's: the frames' source
REPEAT = 3
SCAPY_FRAMES = 3000
VNFS = Path(__file__).resolve().parent.parent / "vnfs"  # the shipped example modules


def frame(flow: int, *, ethertype: int = 0x894F, dport: int = 5001) -> bytes:
    """Ethernet/NSH(spi 1, si 255, ctx1 from flow)/IPv4/UDP with an 18-byte payload."""
    src_ip = 0x0A016400 | (flow & 0xFF)  # 10.1.100.x
    dst_ip = 0x0A056400 | ((flow >> 8) & 0xFF)  # 10.5.100.y
    payload = bytes(18)
    udp = struct.pack("!HHHH", 10000 + flow % 50000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip,
                     dst_ip) + udp
    ctx1 = (flow * 2654435761) & 0xFFFFFFFF
    nsh = struct.pack("!BBBBII12x", 0x0F, 0xC6, 0x01, 0x01, (1 << 8) | 255, ctx1)
    eth = MAC + PEER_MAC
    return eth + struct.pack("!H", ethertype) + nsh + ip


def frames_buffer(n: int, flows: int, **kwargs: int) -> tuple[bytearray, int]:
    buf = bytearray(n * STRIDE)
    length = 0
    for i in range(n):
        f = frame(i % flows, **kwargs)
        length = len(f)
        buf[i * STRIDE:i * STRIDE + length] = f
    return buf, length


def time_process(processor: Processor, template: bytearray, length: int) -> float:
    """Seconds to process every frame of a fresh copy of ``template``."""
    buf = bytearray(template)
    process = processor.process
    t0 = time.perf_counter()
    for off in range(0, len(buf), STRIDE):
        process(buf, off, length)
    return time.perf_counter() - t0


def run_case(name: str, make: Callable[[], Processor], template: bytearray,
             length: int) -> float:
    """:func:`time_process` on a new processor; a user module's error fails the run."""
    processor = make()
    elapsed = time_process(processor, template, length)
    if processor.drops[VNF_ERROR]:
        raise RuntimeError(f"{name}: {processor.drop_counts()}")
    return elapsed


def firewall_rules(n: int) -> list:
    """``n`` rules that never match the benchmark's traffic (full scan per frame)."""
    return [parse_rule(f"drop src=192.168.{i}.0/24 proto=tcp dport={i + 1}") for i in range(n)]


CASES: list[tuple[str, Callable[[], Processor], int, dict[str, int]]] = [
    ("passthrough", lambda: Processor(MAC, Passthrough()), 1024, {}),
    ("passthrough, capacity 1e9 pps (bucket)",
     lambda: Processor(MAC, Passthrough(), capacity=1e9), 1024, {}),
    ("ids (per-packet part)", lambda: Processor(MAC, Ids(1e6)), 1024, {}),
    ("firewall, 0 rules (inner parse)", lambda: Processor(MAC, Firewall([])), 1024, {}),
    ("firewall, 8 rules, no match",
     lambda: Processor(MAC, Firewall(firewall_rules(8))), 1024, {}),
    ("firewall, 1st rule drops",
     lambda: Processor(MAC, Firewall([parse_rule("drop proto=udp dport=5001")])), 1024, {}),
    ("passthrough, 100k flows (flow table churn)",
     lambda: Processor(MAC, Passthrough()), 100_000, {}),
    ("malformed: not NSH", lambda: Processor(MAC, Passthrough()), 1024,
     {"ethertype": 0x0800}),
]


def scapy_processor(module: str, params: dict[str, Any] | None = None) -> Processor:
    """A processor running ``vnfs/<module>`` (scapy imported on first use only)."""
    from vnf.scapy_service import ScapyService

    return Processor(MAC, ScapyService.from_file(VNFS / module, params, room=STRIDE))


SCAPY_CASES: list[tuple[str, Callable[[], Processor], int, dict[str, int]]] = [
    ("scapy: vnfs/passthrough.py", lambda: scapy_processor("passthrough.py"), 1024, {}),
    ("scapy: vnfs/dscp_marker.py (rewrites DSCP)",
     lambda: scapy_processor("dscp_marker.py", {"dscp": 46}), 1024, {}),
    ("scapy: vnfs/dpi.py (payload scan, no match)",
     lambda: scapy_processor("dpi.py", {"pattern": "attack"}), 1024, {}),
]


def bench_io(kind: str, total: int = 50_000, batch: int = 64) -> float:
    """Frames/s through an I/O loop over a socketpair (only poll() timed)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        processor = Processor(MAC, Passthrough())
        io_cls = MmsgIO if kind == "mmsg" else SimpleIO
        io = io_cls(b, processor, batch=batch, slot=2048, timeout=0.05)
        frames = [frame(i) for i in range(batch)]
        a.setblocking(False)
        elapsed = 0.0
        done = 0
        sink = bytearray(2048)
        while done < total:
            for f in frames:
                a.send(f)
            t0 = time.perf_counter()
            got = 0
            while got < batch:
                got += io.poll()
            elapsed += time.perf_counter() - t0
            done += got
            for _ in range(got):
                a.recv_into(sink)
        io.close()
        if processor.packets_out != done:
            raise RuntimeError(f"{kind}: sent {processor.packets_out} of {done}")
    return done / elapsed


def main() -> None:
    print(f"\n== VNF fast path: Processor.process on bytes, {FRAMES} frames, "
          f"best of {REPEAT} ==")
    print(f"{'case':<44} {'kpps':>8} {'ns/frame':>9}")
    for cases, frames in ((CASES, FRAMES), (SCAPY_CASES, SCAPY_FRAMES)):
        if frames != FRAMES:
            print(f"-- the same harness, {frames} frames: user modules (service scapy)")
        for name, make, flows, kwargs in cases:
            template, length = frames_buffer(frames, flows, **kwargs)
            best = min(run_case(name, make, template, length) for _ in range(REPEAT))
            rate = f"{frames / best / 1e3:>8.0f}" if frames / best >= 1e4 else \
                f"{frames / best / 1e3:>8.1f}"
            print(f"{name:<44} {rate} {best / frames * 1e9:>9.0f}")
    print(f"\n== VNF I/O loop over an AF_UNIX socketpair, passthrough, 64 frames per "
          f"round, best of {REPEAT} ==")
    print(f"{'I/O':<44} {'kpps':>8} {'ns/frame':>9}")
    kinds = ["mmsg", "simple"] if mmsg_available() else ["simple"]
    for kind in kinds:
        rate = max(bench_io(kind) for _ in range(REPEAT))
        label = ("MmsgIO (recvmmsg/sendmmsg, batch 64)" if kind == "mmsg"
                 else "SimpleIO (recv_into/send per frame)")
        print(f"{label:<44} {rate / 1e3:>8.0f} {1e9 / rate:>9.0f}")


if __name__ == "__main__":
    main()
