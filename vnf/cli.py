"""``python -m vnf``: one VNF instance on one interface.

Started by the topology builder inside the instance's namespace::

    python -m vnf --name fw1 --iface eth0 --service firewall \\
        --stats /run/dsfc/<run>/vnf/fw1.json [--capacity PPS] [--rule ...] [--config f.yaml]
    python -m vnf --name ids1 --iface eth0 --service ids --stats ... \\
        --threshold-pps 500 --reclassify-to 20
    python -m vnf --name dpi1 --iface eth0 --service dpi --stats ... \\
        --rule "drop hex=deadbeef" --rule "count payload=/etc/passwd"
    python -m vnf --name mark1 --iface eth0 --service scapy --stats ... \\
        --module /path/to/vnfs/dscp_marker.py --params-json '{"dscp": 46}'

Runs until SIGTERM, SIGINT or SIGHUP, then writes its final stats and exits 0. Exit
status 2: bad options or configuration file; 3: the scapy service's module cannot be
used (does not import, has no process(pkt, ctx), setup(params) raised; checked before
the interface is opened); 1: the interface cannot be opened (missing, no CAP_NET_RAW) or
the stats file cannot be written at start. Every failure is logged on stderr first.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from dmano.macaddr import format_mac
from dmano.yamlconf import ConfigError
from vnf.config import VnfConfig, parse_args
from vnf.dpi import Dpi
from vnf.fastpath import Processor
from vnf.packetio import PacketIO, make_io, open_packet_socket
from vnf.services import AnyService, Firewall, Ids, make_service
from vnf.stats import StatsWriter
from vnf.usermodule import ModuleError

if TYPE_CHECKING:
    from vnf.scapy_service import ScapyService

log = logging.getLogger("vnf")


class VnfRunner:
    """The receive/process/send loop plus periodic stats; stops on :meth:`request_stop`."""

    def __init__(self, io: PacketIO, processor: Processor, writer: StatsWriter, *,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.io = io
        self.processor = processor
        self.writer = writer
        self.interval = interval
        self.clock = clock
        self._stop = False
        self._write_failed = False

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def run(self, max_polls: int | None = None) -> None:
        """Loop until stopped (or ``max_polls`` receive calls, for tests); final stats."""
        clock, poll, interval = self.clock, self.io.poll, self.interval
        next_tick = clock() + interval
        polls = 0
        try:
            while not self._stop:
                poll()
                now = clock()
                if now >= next_tick:
                    self.tick(now)
                    next_tick = now + interval
                polls += 1
                if max_polls is not None and polls >= max_polls:
                    break
        finally:
            self.tick(clock())

    def tick(self, now: float) -> None:
        self.processor.service.tick(now, self.processor.flows)
        try:
            self.writer.write()
        except OSError as exc:
            if not self._write_failed:  # log once until it works again
                log.error("cannot write stats to %s: %s", self.writer.path, exc)
            self._write_failed = True
        else:
            if self._write_failed:
                log.info("stats written to %s again", self.writer.path)
            self._write_failed = False


def build_service(cfg: VnfConfig) -> AnyService | ScapyService:
    """The configured service; :class:`ModuleError` when a scapy module is unusable."""
    return make_service(cfg.service, rules=cfg.rules, default_action=cfg.default_action,
                        ids_threshold_pps=cfg.ids_threshold, reclassify_to=cfg.reclassify_to,
                        reclassify_idle_s=cfg.reclassify_idle, dpi_rules=cfg.dpi_rules,
                        flows_max=cfg.flows_max, module=cfg.module, params=cfg.params,
                        room=cfg.slot)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:
        logging.basicConfig(format="vnf: %(levelname)s %(message)s")
        log.error("%s", exc)
        return 2
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format=f"%(asctime)s vnf[{cfg.name}] %(levelname)s %(name)s: %(message)s",
    )
    try:
        service = build_service(cfg)
    except ModuleError as exc:
        log.error("cannot use the VNF module: %s", exc)
        return 3
    try:
        sock, mac = open_packet_socket(cfg.iface, cfg.rcvbuf)
    except OSError as exc:
        log.error("cannot open AF_PACKET socket on %s: %s%s", cfg.iface, exc,
                  " (needs root or CAP_NET_RAW)" if isinstance(exc, PermissionError) else "")
        return 1
    with sock:
        return serve(cfg, sock, mac, service)


def serve(cfg: VnfConfig, sock: socket.socket, mac: bytes,
          service: AnyService | ScapyService | None = None) -> int:
    """Run the VNF on an opened socket until a signal; 0 on a clean stop."""
    if service is None:
        service = build_service(cfg)
    processor = Processor(mac, service, capacity=cfg.capacity, burst=cfg.burst,
                          work_us=cfg.work_us, flows_max=cfg.flows_max)
    writer = StatsWriter(cfg.stats, processor, name=cfg.name, iface=cfg.iface)
    try:
        cfg.stats.parent.mkdir(parents=True, exist_ok=True)
        writer.write()
    except OSError as exc:
        log.error("cannot write stats file %s: %s", cfg.stats, exc)
        return 1
    io = make_io(cfg.io, sock, processor, batch=cfg.batch, slot=cfg.slot)
    runner = VnfRunner(io, processor, writer, interval=cfg.stats_interval)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        runner.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    limit = (f"capacity {cfg.capacity:g} packets/s (burst {processor.burst:g})"
             if cfg.capacity is not None else "no capacity limit")
    log.info("%s on %s (%s), %s, %s I/O, stats %s", cfg.service, cfg.iface,
             format_mac(mac), limit, type(io).__name__, cfg.stats)
    if cfg.service == "scapy":
        from vnf.scapy_service import ScapyService  # already imported by then

        assert isinstance(service, ScapyService)
        log.info("scapy: module %s (%s), params %s", service.path,
                 ", ".join(service.module.hooks), json.dumps(service.params))
    if isinstance(service, Firewall | Dpi):
        for rule in service.rules:
            log.info("rule: %s", rule)
    if isinstance(service, Firewall):
        log.info("default: %s", service.default_action)
    if isinstance(service, Ids):
        log.info("ids: threshold %g packets/s%s", service.threshold_pps,
                 f", flows above it reclassified to spi {service.reclassify_to} (idle "
                 f"{service.idle_s:g} s)" if service.reclassify_to is not None else "")
    runner.run()
    log.info("stopped: %d packets in, %d out, %d dropped", processor.packets_in,
             processor.packets_out, sum(processor.drops))
    return 0
