"""``python -m connector_p4.p4rt_server``: the command line (see the package doc)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path
from types import FrameType

from connector_p4.p4rt_server.null_target import NullTarget
from connector_p4.p4rt_server.restore import TargetState
from connector_p4.p4rt_server.schema import DEFAULT_DEVICE_ID, P4INFO_PATH, load_p4info
from connector_p4.p4rt_server.server import P4RuntimeServer
from connector_p4.target import PORT_ROLES, ConnectorConfig, Target, role_of_port
from dmano.macaddr import format_mac, parse_mac

log = logging.getLogger("connector_p4.p4rt_server")

DEFAULT_BPF_OBJECT = Path(__file__).resolve().parent.parent / "ebpf" / "build" / "connector.o"


def _port_arg(text: str) -> tuple[int, str, str]:
    num, sep, rest = text.partition("=")
    ifname, _, role = rest.partition(":")
    if not sep or not num.isdigit() or not ifname:
        raise argparse.ArgumentTypeError(f"expected N=IFNAME[:ROLE], got {text!r}")
    n = int(num)
    if not 0 < n < 512:
        raise argparse.ArgumentTypeError(f"P4 port {n} is not in 1..511")
    if role and role not in PORT_ROLES:
        raise argparse.ArgumentTypeError(f"role {role!r} is not one of {sorted(PORT_ROLES)}")
    try:
        return n, ifname, role or role_of_port(n)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}; give one as N=IFNAME:ROLE") from None


def _mac_arg(text: str) -> bytes:
    try:
        return parse_mac(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def resolve_port(ifname: str, role: str) -> tuple[str, int, str, str]:
    """(ifname, ifindex, mac, role) of an interface in this network namespace."""
    from connector_p4.ebpf_target import interface_mac

    # ioctl, not /sys/class/net: this process may see another namespace's sysfs
    return ifname, socket.if_nametoindex(ifname), format_mac(interface_mac(ifname)), role


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m connector_p4.p4rt_server",
        description="P4Runtime server for a dsfc connector (see connector_p4/PIPELINE.md).")
    p.add_argument("--socket", help="unix socket path to listen on (in the run folder)")
    p.add_argument("--grpc-addr", help="also (or instead) listen on HOST:PORT, e.g. "
                   "127.0.0.1:9559; keep it on loopback")
    p.add_argument("--device-id", type=int, default=DEFAULT_DEVICE_ID)
    p.add_argument("--p4info", default=str(P4INFO_PATH), help="P4Info text file")
    p.add_argument("--arbitration", choices=("live", "spec"), default="live",
                   help="live: highest live election id is primary (a backup takes over); "
                   "spec: highest election id ever seen (P4Runtime >= 1.3)")
    p.add_argument("--target", choices=("ebpf", "null"), default="ebpf")
    p.add_argument("--bpf-object", help="ebpf: compiled connector object (default: "
                   "connector_p4/ebpf/build/connector.o)")
    p.add_argument("--pin-dir", help="ebpf: bpffs folder of this connector's program and "
                   "maps; if a pipeline is pinned there already, the server takes it over "
                   "(and its tables) instead of loading a new one")
    p.add_argument("--port", type=_port_arg, action="append", default=[],
                   metavar="N=IFNAME[:ROLE]",
                   help="P4 port of an interface (repeat): 1=rtr 2=rtrh 16=v-fw1 64=h-h1; the "
                   "role (router, hostbridge, vnf, host) follows from N unless given")
    p.add_argument("--cache-timeout", type=int, default=30,
                   help="ebpf: flow-cache idle timeout in seconds")
    p.add_argument("--no-attach", dest="attach", action="store_false",
                   help="ebpf: do not attach the program to the ports (tc)")
    p.add_argument("--local-ip", type=IPv4Address,
                   help="start-up sff_config: NSH endpoint address of this connector")
    p.add_argument("--router-mac", type=_mac_arg, help="start-up sff_config: router MAC")
    p.add_argument("--local-mac", type=_mac_arg, help="start-up sff_config: MAC of port 1")
    p.add_argument("--log-level", default="INFO")
    return p


def make_target(args: argparse.Namespace) -> tuple[Target, TargetState | None]:
    """-> (target, state to restore or None)."""
    if args.target == "null":
        return NullTarget(), None
    # Lazy: the eBPF target needs root, bpffs and libbpf; run this in the connector's netns.
    from connector_p4.ebpf_target import PROG_PIN, EbpfTarget

    if not args.pin_dir or not args.port:
        raise SystemExit("--target ebpf needs --pin-dir and --port N=IFNAME")
    ports = {n: resolve_port(ifname, role) for n, ifname, role in args.port}
    pin_dir = Path(args.pin_dir)
    restore: TargetState | None = None
    if (pin_dir / PROG_PIN).exists():
        # A pipeline keeps forwarding while its server is down: take it over.
        target = EbpfTarget.open_pinned(pin_dir, ports)
        for n, spec in ports.items():
            target.add_port(n, spec)
        target.set_cache_timeout(int(args.cache_timeout))
        restore = target.read_state()
        log.info("took over the pipeline pinned at %s", pin_dir)
    else:
        obj = Path(args.bpf_object) if args.bpf_object else DEFAULT_BPF_OBJECT
        if not obj.exists():
            raise SystemExit(f"nothing pinned at {pin_dir} and no object {obj} "
                             "(python -m connector_p4.ebpf_build builds it)")
        target = EbpfTarget(obj, pin_dir, ports, cache_timeout_s=int(args.cache_timeout))
        target.load()
        log.info("loaded %s, pinned at %s", obj, pin_dir)
    if args.attach:
        target.attach()
    return target, restore


def _initial_config(args: argparse.Namespace) -> ConnectorConfig | None:
    """The start-up sff_config; ValueError if only some of its options are given."""
    cfg_args = (args.local_ip, args.router_mac, args.local_mac)
    if all(a is None for a in cfg_args):
        return None
    if any(a is None for a in cfg_args):
        raise ValueError("--local-ip, --router-mac and --local-mac go together")
    return ConnectorConfig(*cfg_args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.socket and not args.grpc_addr:
        log.error("give --socket PATH and/or --grpc-addr HOST:PORT")
        return 2
    try:
        initial = _initial_config(args)
    except ValueError as e:
        log.error("%s", e)
        return 2
    ports = [n for n, _, _ in args.port]
    if len(ports) != len(set(ports)):
        log.error("a P4 port number is given twice")
        return 2
    target, restore = make_target(args)
    server = None
    try:
        server = P4RuntimeServer(target, socket_path=args.socket, grpc_addr=args.grpc_addr,
                                 device_id=args.device_id, p4info=load_p4info(args.p4info),
                                 arbitration=args.arbitration, initial_config=initial,
                                 restore=restore)
        server.start()
        done = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        done.wait()
    finally:
        if server is not None:
            server.stop()
        target.close()
    return 0
