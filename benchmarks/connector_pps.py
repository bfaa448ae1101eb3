"""Connector data-plane speed against plain kernel forwarding, on the same path.

Three namespaces: gen --veth-- dut --veth-- sink (registered in a run folder, so
``make clean`` removes them even if the benchmark is killed). trafgen (netsniff-ng, one
worker, TX_RING) sends 64-byte UDP frames of one flow into ``dut``; the packet rate is
counted at the sink interface over a fixed window after a warm-up, repeated:

- *kernel*: ``dut`` forwards IPv4 (ip_forward, static neighbours);
- *connector*: the connector eBPF pipeline on ``dut`` (loaded through EbpfTarget, programmed
  through its P4Runtime server): classify the UDP flow, push NSH (SI 255, ctx1), encapsulate
  in VXLAN-GPE to a remote endpoint and redirect out of the router port: the ingress path
  of every chained packet;
- *VNF*: the VNF process (``python -m vnf``, passthrough) on a veth: NSH frames in, SI-1,
  back out; counted as frames returned to the generator side.

P4Runtime write latency: a group weight change written by the D-MANO's writer
(p4runtime-shell client) to the connector's P4Runtime server, p50/p99 over 200 writes.

On 2 cores the generator and the device under test share the machine: trafgen runs on
CPU 1, the rest where the kernel puts it.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano.macaddr import format_mac
from dmano.procutil import ProcessDiedError, popen_alive, terminate, wait_for_path
from topologies.runstate import BPF_ROOT, Registry, clean_run, ensure_bpffs, new_run

WINDOW_S = 3.0
WARMUP_S = 1.0
REPEAT = 3
BMV2_OFFERED_PPS = 20000  # a paced load BMv2 can take, next to the flood


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def ns(reg: Registry, name: str) -> str:
    full = reg.namespace_name(name)
    reg.add_namespace(full)
    sh("ip", "netns", "add", full)
    sh("ip", "-n", full, "link", "set", "dev", "lo", "up")
    return full


def in_ns(netns: str, *args: str, check: bool = True) -> str:
    return sh("nsenter", f"--net=/run/netns/{netns}", *args, check=check)


def veth(a: str, ia: str, b: str, ib: str) -> None:
    sh("ip", "link", "add", "tmpa", "netns", a, "type", "veth", "peer", "name", "tmpb",
       "netns", b)
    sh("ip", "-n", a, "link", "set", "dev", "tmpa", "name", ia)
    sh("ip", "-n", b, "link", "set", "dev", "tmpb", "name", ib)
    for n, i in ((a, ia), (b, ib)):
        sh("ip", "-n", n, "link", "set", "dev", i, "up")
        in_ns(n, "ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
              check=False)


def mac(netns: str, iface: str) -> str:
    """The interface's MAC address, in the canonical text form."""
    link = json.loads(sh("ip", "-n", netns, "-j", "link", "show", iface))[0]
    return format_mac(link["address"])


def rx_packets(netns: str, iface: str) -> int:
    data = json.loads(sh("ip", "-n", netns, "-s", "-j", "link", "show", iface))
    return int(data[0]["stats64"]["rx"]["packets"])


def trafgen_conf(path: Path, dst_mac: str, src_mac: str, payload: bytes | None = None) -> None:
    if payload is None:
        body = (f"eth(da={dst_mac}, sa={src_mac}, type=0x0800), "
                "ipv4(saddr=10.10.1.2, daddr=10.10.2.2, proto=17, ttl=64), "
                "udp(sport=1234, dport=5000), fill(0x00, 18)")
    else:
        body = ", ".join(f"0x{b:02x}" for b in payload)
    path.write_text("{ " + body + " }\n")


def measure(gen: str, dev: str, conf: Path, count_ns: str, count_if: str,
            offered_pps: int | None = None) -> float:
    """Packets/s counted at count_ns:count_if while trafgen floods gen:dev with conf (or
    sends at ``offered_pps``)."""
    rates = []
    pace = ["-b", f"{offered_pps}pps"] if offered_pps else []
    for _ in range(REPEAT):
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{gen}", "taskset", "-c", "1",
                                 "trafgen", "--dev", dev, "--conf", str(conf), "-P", "1",
                                 "-Q", "-C", "--no-sock-mem", *pace],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(WARMUP_S)
            c0, t0 = rx_packets(count_ns, count_if), time.monotonic()
            time.sleep(WINDOW_S)
            c1, t1 = rx_packets(count_ns, count_if), time.monotonic()
        finally:
            terminate(proc, grace_s=10, sig=signal.SIGINT)
        rates.append((c1 - c0) / (t1 - t0))
    return statistics.median(rates)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        terminate(p, grace_s=10)


def wait_socket(sock: Path, proc: subprocess.Popen, logfile: Path,
                timeout: float = 30) -> None:
    """Wait for a P4Runtime server's unix socket; fail with its log if it dies first."""
    try:
        wait_for_path(sock, timeout, alive=popen_alive(proc), what=logfile.stem)
    except (ProcessDiedError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}; {logfile}:\n{logfile.read_text()}") from None


def program_connector(sock: Path, sink_mac: str, out_mac: str) -> tuple[Any, Any]:
    """The tables of the connector measurement: classify UDP, one service on a remote
    endpoint (the ingress path of every chained packet). Returns the writer and the
    state it wrote."""
    from dmano.config import ConnectorConf
    from dmano.connector_state import DesiredState, MemberKey, TernaryRule, diff
    from dmano.p4rt_client import P4RuntimeConnector

    writer = P4RuntimeConnector(ConnectorConf(kind="p4runtime", address=f"unix:{sock}"))
    member = MemberKey("remote", endpoint="10.10.2.2")
    want = DesiredState(
        config=("10.10.2.1", sink_mac, out_mac),
        classifier={TernaryRule(100, (0, 0), (0, 0), (17, 0xFF), (0, 0), (0, 0), 1)},
        sff={(1, 255): ("to_service", 1), (1, 254): ("end_of_chain", 0)},
        groups={1: {member: 1}}, selects={(1, 0): 1, (1, 1): 1})
    writer.write(diff(writer.read_state(), want))
    return writer, want


def bmv2_connector(reg: Registry, procs: list[subprocess.Popen]) -> tuple[float | None, str]:
    """The same measurement on BMv2 simple_switch_grpc, where it is installed."""
    from connector_p4 import bmv2_build, bmv2_target

    reason = bmv2_build.missing_reason()
    if reason:
        return None, "skipped: " + reason.split(";")[0]
    art = bmv2_build.build()
    gen, dut, sink = ns(reg, "bgen"), ns(reg, "bdut"), ns(reg, "bsink")
    veth(gen, "eth0", dut, "in")
    veth(dut, "out", sink, "eth0")
    conf = reg.folder / "bmv2-udp.trafgen"
    trafgen_conf(conf, mac(dut, "in"), mac(gen, "eth0"))
    sock = reg.folder / "bmv2.sock"
    ports = {1: "out", 64: "in"}
    with open(reg.folder / "bmv2.log", "wb") as log:
        switch = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{dut}", *bmv2_target.switch_command(
                bmv2_build.find_tools().switch, ports, f"unix:{sock}")],
            stdout=log, stderr=subprocess.STDOUT)
    procs.append(switch)
    reg.add_process(switch.pid, "bmv2")
    wait_socket(sock, switch, reg.folder / "bmv2.log")
    conn = bmv2_target.Bmv2Connector(ports, IPv4Address("10.10.2.1"), mac(sink, "eth0"),
                                     mac(dut, "out"), hostbridge_mac="02:00:00:00:00:01")
    bmv2_target.push_pipeline(f"unix:{sock}", art, conn)
    cli = ["nsenter", f"--net=/run/netns/{dut}"]
    bmv2_target.wait_thrift(cli)
    bmv2_target.thrift_setup(cli, art.json)
    program_connector(sock, mac(sink, "eth0"), mac(dut, "out"))[0].close()
    flood = measure(gen, "eth0", conf, sink, "eth0")
    paced = measure(gen, "eth0", conf, sink, "eth0", offered_pps=BMV2_OFFERED_PPS)
    return flood, (f"simple_switch_grpc as built here, logging macros off; paced with "
                   f"trafgen -b {BMV2_OFFERED_PPS}pps (approximate): {paced / 1e3:.0f} kpps "
                   "delivered")


def main() -> None:
    from connector_p4.ebpf_build import build

    ensure_bpffs()
    reg = new_run("benchmark connector_pps")
    folder = reg.folder
    procs: list[subprocess.Popen] = []
    try:
        gen, dut, sink = ns(reg, "gen"), ns(reg, "dut"), ns(reg, "sink")
        veth(gen, "eth0", dut, "in")
        veth(dut, "out", sink, "eth0")
        conf = folder / "udp.trafgen"
        trafgen_conf(conf, mac(dut, "in"), mac(gen, "eth0"))

        # kernel IPv4 forwarding
        in_ns(dut, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", dut, "addr", "add", "10.10.1.1/24", "dev", "in")
        sh("ip", "-n", dut, "addr", "add", "10.10.2.1/24", "dev", "out")
        sh("ip", "-n", dut, "neigh", "add", "10.10.2.2", "lladdr", mac(sink, "eth0"),
           "dev", "out")
        kernel = measure(gen, "eth0", conf, sink, "eth0")

        # connector: eBPF pipeline behind its P4Runtime server
        pins = BPF_ROOT / reg.run_id / "dut"
        reg.add_bpf_dir(BPF_ROOT / reg.run_id)
        sock = folder / "p4rt.sock"
        log = open(folder / "p4rt.log", "wb")  # noqa: SIM115 (closed with the process)
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{dut}", sys.executable, "-m",
             "connector_p4.p4rt_server", "--socket", str(sock), "--target", "ebpf",
             "--bpf-object", str(build()), "--pin-dir", str(pins), "--port", "1=out",
             "--port", "64=in", "--local-ip", "10.10.2.1",
             "--router-mac", mac(sink, "eth0"), "--local-mac", mac(dut, "out")],
            stdout=log, stderr=subprocess.STDOUT)
        procs.append(server)
        reg.add_process(server.pid, "p4rt-server")
        wait_socket(sock, server, folder / "p4rt.log")
        from dmano.connector_state import MemberKey, diff

        writer, want = program_connector(sock, mac(sink, "eth0"), mac(dut, "out"))
        member = MemberKey("remote", endpoint="10.10.2.2")
        other = MemberKey("remote", endpoint="10.10.2.3")
        connector = measure(gen, "eth0", conf, sink, "eth0")

        # P4Runtime write latency: group weight changes
        want.groups = {1: {member: 1, other: 1}}
        writer.write(diff(writer.state, want))
        lat = []
        for k in range(200):
            want.groups = {1: {member: 1 + k % 7, other: 1}}
            ops = diff(writer.state, want)
            t0 = time.perf_counter()
            writer.write(ops)
            lat.append(time.perf_counter() - t0)
        writer.close()

        # VNF fast path on a veth: NSH frames in, returned frames counted at the sender
        vnf = ns(reg, "vnf")
        veth(gen, "v", vnf, "eth0")
        from scapy.all import IP, UDP, Ether, Raw, load_contrib

        load_contrib("nsh")
        from scapy.contrib.nsh import NSH

        frame = bytes(Ether(dst=mac(vnf, "eth0"), src=mac(gen, "v"), type=0x894F) /
                      NSH(ttl=63, length=6, mdtype=1, nextproto=1, spi=1, si=255) /
                      IP(src="10.10.1.2", dst="10.10.2.2") / UDP(sport=1, dport=2) /
                      Raw(b"\0" * 18))
        vconf = folder / "nsh.trafgen"
        trafgen_conf(vconf, "", "", frame)
        vproc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{vnf}", sys.executable, "-m", "vnf", "--name",
             "bench", "--iface", "eth0", "--service", "passthrough", "--stats",
             str(folder / "vnf.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(vproc)
        reg.add_process(vproc.pid, "vnf")
        time.sleep(1.0)
        vnf_rate = measure(gen, "v", vconf, gen, "v")
        stop_all(procs)  # BMv2 gets the machine to itself, as the others did
        bmv2_rate, bmv2_note = bmv2_connector(reg, procs)
    finally:
        stop_all(procs)
        clean_run(reg)

    print("\n== Connector data plane vs kernel forwarding (64 B UDP, one flow, trafgen on "
          f"CPU 1, {WINDOW_S:.0f} s windows, median of {REPEAT}) ==")
    print(f"{'path':<44} {'kpps':>8}")
    print(f"{'kernel IPv4 forwarding (dut routes)':<44} {kernel / 1e3:>8.0f}")
    print(f"{'connector eBPF: classify+NSH+GPE encap':<44} {connector / 1e3:>8.0f}")
    print(f"{'ratio connector / kernel (goal >= 0.8)':<44} {connector / kernel:>8.2f}")
    print(f"{'VNF process on a veth (NSH in, SI-1, out)':<44} {vnf_rate / 1e3:>8.0f}")
    if bmv2_rate is None:
        print(f"{'connector BMv2 (same path)':<44} {'-':>8}  ({bmv2_note})")
    else:
        print(f"{'connector BMv2 (same path, same tables)':<44} {bmv2_rate / 1e3:>8.0f}  "
              f"({bmv2_note})")
    lat_ms = sorted(1000 * x for x in lat)
    print(f"P4Runtime group modify (D-MANO writer -> server -> BPF maps): "
          f"p50 {statistics.median(lat_ms):.2f} ms, p99 {lat_ms[int(0.99 * len(lat_ms))]:.2f} ms"
          f" over {len(lat_ms)} writes")


if __name__ == "__main__":
    main()
