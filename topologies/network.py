"""The Mininet builder: one emulated network from a topology file.

Per NFV node N: a router namespace ``rN`` (FRR zebra + ospfd with the OSPF API), a
connector namespace ``cN``, one namespace per VNF instance and one per host. No
OpenFlow switch, no controller. Every namespace is a named one
(``ip netns`` lists them as ``dsfc-<run id>-<node>``), every resource is recorded in
the run registry first, and :meth:`Network.stop` / ``python -m topologies clean``
remove all of it (see :mod:`topologies.runstate`).

Wiring (interface names are per namespace)::

    rN  lo 10.255.0.N/32   to-<peer> /30 per router link   conn 10.N.0.1/24   hosts 10.N.100.1/24
    cN  rtr 10.N.0.2/24 (NSH endpoint, default via 10.N.0.1)
        hbr: bridge of rtrh (peer of rN:hosts) and h-<host> (one per host)
        v-<instance> (one per local VNF instance, Ethernet/NSH only)
    <host>      eth0 10.N.100.x/24, default via 10.N.100.1
    <instance>  eth0 (no IP: NSH over Ethernet with the connector)
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininet import log as mnlog
from mininet.link import Link
from mininet.net import Mininet
from mininet.node import Node

from connector_p4 import bmv2_build, bmv2_target
from dmano.policy import load_policy, shipped_policy
from dmano.procutil import ProcessDiedError, terminate, wait_for_path
from topologies import addressing as addr
from topologies import (
    capacity,
    cgroups,
    cluster,
    ctrlstats,
    faults,
    frr,
    health,
    rexec,
    servers,
    spawn,
)
from topologies import central as central_mod
from topologies.health import tail as _tail
from topologies.mirror import Mirror
from topologies.nodeconf import vnf_stats_path, write_node_config
from topologies.readiness import wait_converged
from topologies.runstate import (
    BPF_ROOT,
    Registry,
    clean_run,
    ensure_bpffs,
    frr_crashlog_dir,
    new_run,
)
from topologies.servers import ServerSpec
from topologies.spec import Topology

log = logging.getLogger(__name__)

REQUIRED_TOOLS = ("mnexec", "ip", "tc", "nft", "sysctl", "ethtool")


def offloads_off(dev: str) -> str:
    """Full packets on a port: AF_PACKET VNFs and NSH encapsulation need real checksums
    and no GSO/GRO super-packets (DESIGN §7)."""
    return f"ethtool -K {dev} tx off tso off gso off gro off"


DEFAULT_POLICY = shipped_policy("paper")


class Phases:
    """Wall-clock time of each named phase of a bring-up (logged, and kept in
    :attr:`Network.bringup_phases` for the benchmarks)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = time.monotonic() - t0

    @property
    def total(self) -> float:
        return sum(self.times.values())

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.times.items())


class BuildError(RuntimeError):
    pass


def check_host() -> None:
    if os.geteuid() != 0:
        raise BuildError("bringing up a topology needs root (network namespaces, FRR)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise BuildError(f"missing tools: {', '.join(missing)}; run 'make setup' "
                         "(Debian packages mininet, iproute2, nftables, procps)")
    frr.find_daemon("zebra")
    frr.find_daemon("ospfd")
    frr.find_vtysh()


class NsNode(Node):
    """A Mininet node whose namespace is also named (visible to ``ip netns``).

    The name is recorded in the run registry before the namespace exists.
    """

    def __init__(self, name: str, registry: Registry, **params: Any):
        self.netns = registry.namespace_name(name)
        registry.add_namespace(self.netns)
        super().__init__(name, inNamespace=True, **params)

    def startShell(self, mnopts: str | None = None) -> None:  # noqa: N802 (Mininet API)
        super().startShell(mnopts)
        self._attach_netns()

    def _attach_netns(self) -> None:
        subprocess.run(["ip", "netns", "attach", self.netns, str(self.pid)],
                       check=True, capture_output=True)

    def run(self, cmd: str) -> str:
        """Run a shell command in this namespace; raise with its output on failure."""
        out = self.cmd(f"{cmd}; echo __rc=$?")
        body, _, rc = out.rpartition("__rc=")
        if rc.strip() != "0":
            raise BuildError(f"{self.name}: '{cmd}' failed: {body.strip()}")
        return body


RemoteNsNode = cluster.make_remote_node_class(NsNode)
LOCAL_SERVER = ServerSpec("local", "localhost")


@dataclass
class RouterHandle:
    node: str
    mn: Any  # the Mininet node
    paths: frr.RouterPaths
    server: ServerSpec | None = None  # None: this machine

    def vtysh(self, *commands: str, timeout: float = 10) -> str:
        if self.server is not None:
            proc = servers.run(self.server, shlex.join(self.paths.vtysh_args(*commands)),
                               timeout=timeout, check=False)
        else:
            proc = subprocess.run(self.paths.vtysh_args(*commands), capture_output=True,
                                  text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise BuildError(f"vtysh on r{self.node} failed: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout


class Network:
    """A running (or about to run) emulation of one topology.

    Use as a context manager: the network is stopped and cleaned on exit, also on
    exceptions and Ctrl-C.
    """

    def __init__(self, topo: Topology, policy: Path | None = None, dmano: bool = False,
                 vnfs: bool = False, connectors: bool = False,
                 central: central_mod.CentralParams | None = None,
                 memory_check: bool = True):
        """``central``: run the centralized orchestrator (topologies.central) instead of
        the D-MANOs (``dmano`` must then be False)."""
        if central is not None and dmano:
            raise ValueError("a network runs either the D-MANOs or the central orchestrator")
        self.topo = topo
        self.policy = policy or DEFAULT_POLICY
        self.with_dmano = dmano
        self.central = central
        self.with_vnfs = vnfs
        self.with_connectors = connectors
        self.memory_check = memory_check
        self.processes: dict[str, subprocess.Popen | spawn.SpawnedProcess] = {}
        self.logs: dict[str, Path] = {}  # process name -> its log file
        self.registry: Registry | None = None
        self.net: Any = None
        self.routers: dict[str, RouterHandle] = {}
        self.nodes: dict[str, Any] = {}
        self._home: dict[str, str] = {}  # Mininet node -> its NFV node
        self.bmv2 = connectors and topo.connector == "bmv2"
        self._bmv2: tuple[bmv2_build.Tools, bmv2_build.Artifacts] | None = None
        self.bringup_phases: dict[str, float] = {}
        # spread networks (topology servers:): NFV node -> its server when that is not
        # this machine, and each such server's registry of its part of the run
        self.placement: dict[str, ServerSpec] = {
            n.name: spec for n in topo.nodes
            if (spec := topo.server_of(n.name)) is not None and not spec.local}
        self.remote: dict[str, cluster.RemoteRegistry] = {}
        self.mirrors: dict[str, Mirror] = {}

    # -- life cycle --------------------------------------------------------------------
    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def run_folder(self) -> Path:
        assert self.registry is not None
        return self.registry.folder

    def start(self, converge_timeout: float | None = None,
              ready_timeout: float = health.DEFAULT_TIMEOUT_S) -> None:
        check_host()
        if self.placement:  # every server reachable and ready, before anything exists
            from topologies.servercheck import check_servers, problems_text

            problems = problems_text(check_servers(self.topo))
            if problems:
                raise BuildError(f"{self.topo.path}: a server is not ready (python -m "
                                 f"topologies servers check):\n{problems}")
        if self.memory_check:
            try:
                capacity.check_memory(self.topo)
            except capacity.MemoryCheckError as exc:
                raise BuildError(str(exc)) from None
        if self.with_dmano or self.central is not None:
            load_policy(self.policy)  # a bad policy file fails before anything exists
        if self.central is not None and self.placement:
            raise BuildError(f"{self.topo.path}: the central orchestrator on a network "
                             "spread over several servers is not supported yet (control: "
                             "distributed, the default, is)")
        if self.with_connectors and self.bmv2 and self.placement:
            raise BuildError(f"{self.topo.path}: connector: bmv2 on nodes of other servers "
                             "is not supported yet (use the eBPF connector, the default)")
        if self.with_connectors and self.bmv2:
            self._bmv2_toolchain()  # before any namespace exists
        self.registry = new_run(str(self.topo.path))
        log.info("run %s: folder %s", self.registry.run_id, self.registry.folder)
        try:
            ensure_bpffs()
            pins = BPF_ROOT / self.registry.run_id
            self.registry.add_bpf_dir(pins)
            pins.mkdir(parents=True)
            for spec in self.remote_servers():
                self.registry.add_server(spec.name, spec.address, spec.user,
                                         [n for n, s in self.placement.items() if s == spec])
                reg = self.remote[spec.name] = cluster.remote_registry(spec, self.registry)
                reg.add_bpf_dir(pins)
                servers.run(spec, cluster.PREPARE.format(pins=shlex.quote(str(pins))))
                # what the processes there write (status, counters, logs) comes here
                self.mirrors[spec.name] = Mirror.start(
                    spec, self.run_folder, self.run_folder, excludes=cluster.NOT_MIRRORED)
            phases = Phases()
            with phases("namespaces and links"):
                self._build()
            with phases("routers"):
                self._start_routers()
            with phases("OSPF convergence"):
                self.wait_converged(converge_timeout)
            if self.with_connectors:
                with phases("connectors"):
                    self.start_connectors([n.name for n in self.topo.nodes])
            with phases("VNFs, D-MANOs / orchestrator"):
                if not self.placement:  # one machine: a few at a time
                    self.start_daemons_paced(ready_timeout)
                elif self.with_vnfs:
                    for inst in self.topo.instances:
                        if inst.start:
                            self.start_vnf(inst.name)
                if self.with_dmano and self.placement:
                    for n in self.topo.nodes:
                        self.start_dmano(n.name)
                if self.central is not None:
                    self.start_central()
            with phases("readiness"):
                self.wait_ready(ready_timeout)
            log.info("up in %.1f s: %s", phases.total, phases.summary())
            self.bringup_phases = dict(phases.times)
        except BaseException:
            self.stop()
            raise

    # -- spread networks: files to and from the other servers ---------------------------
    def publish(self, path: Path) -> None:
        """Copy file ``path`` to the same path on every other server (a file the
        processes there read: a policy, a traffic plan)."""
        text = path.read_text()
        for spec in self.remote_servers():
            servers.write_file(spec, path.resolve(), text)

    def gather(self, folder: Path) -> None:
        """Mirror ``folder`` of every other server here from now until stop (what the
        processes there write into it: traffic tools' results)."""
        for spec in self.remote_servers():
            key = f"{spec.name}:{folder}"
            if key not in self.mirrors:
                servers.run(spec, f"mkdir -p {shlex.quote(str(folder))}")
                self.mirrors[key] = Mirror.start(spec, folder, folder,
                                                 excludes=cluster.NOT_MIRRORED)

    def sync(self, timeout: float = 10) -> None:
        """Until everything the other servers wrote so far is here (a no-op on one
        machine); a warning names a server that does not answer."""
        for key, mirror in self.mirrors.items():
            if not mirror.wait_synced(timeout):
                log.warning("files from %s are not complete here (its mirror: %s)",
                            key, mirror.stats.last_error or "no answer")

    def remote_servers(self) -> list[ServerSpec]:
        """The other servers with a part of this network (none on one machine)."""
        return list({spec.name: spec for spec in self.placement.values()}.values())

    def server_of_node(self, mn_name: str) -> ServerSpec | None:
        """The server of a Mininet node (r<N>, c<N>, an instance or a host), None for
        this machine."""
        return self.placement.get(self._home[mn_name]) if self.placement else None

    def probes(self) -> list[health.Probe]:
        """A readiness probe for every process this network started and still runs."""
        return [p for p in map(self.probe, self.processes) if p is not None]

    def probe(self, name: str) -> health.Probe | None:
        """The readiness probe of process ``name`` (None for those without one)."""
        proc = self.processes[name]
        kind, _, what = name.partition("-")
        if kind == "vnf":
            ready = health.vnf_ready(vnf_stats_path(self.run_folder, what), proc.pid)
        elif kind == "dmano":
            ready = health.dmano_ready(self.run_folder / f"r{what}" / "dmano.json", proc.pid)
        elif kind == "connector":
            ready = health.p4runtime_ready(self.p4rt_socket(what))
        elif name == central_mod.PROCESS:
            ready = central_mod.ready(central_mod.status_file(self.run_folder), proc.pid)
        else:
            return None
        return health.Probe(name, proc, self.logs[name], ready)

    def _paced(self, name: str, start: Callable[[], None],
               ready: Callable[[], str | None] | None = None) -> Callable[[], health.Probe]:
        """For :func:`topologies.health.start_paced`: call ``start``, return the probe of
        process ``name`` (with ``ready`` instead of its own check, if given)."""
        def go() -> health.Probe:
            start()
            probe = self.probe(name)
            assert probe is not None
            return probe if ready is None else health.Probe(name, probe.proc, probe.logfile,
                                                            ready)
        return go

    def start_daemons_paced(self, ready_timeout: float) -> None:
        """The VNFs, then the D-MANOs (those of nodes with VNF instances first: they
        announce them, so the others start with a complete LSDB), a few at a time
        (:func:`topologies.health.start_paced`)."""
        window = health.start_window()
        if self.with_vnfs:
            health.start_paced(
                [self._paced(f"vnf-{i.name}", functools.partial(self.start_vnf, i.name))
                 for i in self.topo.instances if i.start], window, ready_timeout)
        if self.with_dmano:
            hosts = {i.node for i in self.topo.instances if i.start}
            order = sorted(self.topo.nodes, key=lambda n: n.name not in hosts)
            health.start_paced(
                [self._paced(f"dmano-{n.name}", functools.partial(self.start_dmano, n.name))
                 for n in order], window, ready_timeout)

    def wait_ready(self, timeout: float = health.DEFAULT_TIMEOUT_S) -> float:
        """Every started process alive and ready (topologies.health), or BringUpError
        naming the process with the last lines of its log."""
        took = health.wait_ready(self.probes(), timeout)
        log.info("%d processes ready in %.2f s", len(self.processes), took)
        return took

    def wait_converged(self, timeout: float | None = None) -> float:
        if timeout is None:
            timeout = 30 + 2 * len(self.topo.nodes)
        return wait_converged(self.topo, self.routers, timeout)

    def stop(self) -> None:
        if self.registry is None:
            return
        t0 = time.monotonic()
        self.stop_processes(list(self.processes))
        t1 = time.monotonic()
        if self.net is not None:
            # only the node shells: the links (veths) go with the namespaces below, which
            # is much faster than Mininet deleting them one by one
            for host in self.net.hosts:
                try:
                    host.terminate()
                except Exception as exc:  # keep cleaning: the namespaces go anyway
                    log.warning("mininet: stopping %s: %s", host.name, exc)
            self.net = None
        t2 = time.monotonic()
        self.sync(5)  # the last status files, counters and logs
        for mirror in self.mirrors.values():
            mirror.stop()
        self.mirrors.clear()
        clean_run(self.registry)
        for spec in self.remote_servers():
            servers.close_master(spec)
        if self.placement:
            with contextlib.suppress(OSError):
                servers.CONTROL_DIR.rmdir()  # only if empty
        log.info("run %s stopped and cleaned in %.1f s (processes %.1f s, node shells "
                 "%.1f s, namespaces and daemons %.1f s)", self.registry.run_id,
                 time.monotonic() - t0, t1 - t0, t2 - t1, time.monotonic() - t2)
        self.registry = None

    def stop_processes(self, names: list[str], grace_s: float = 10) -> None:
        """Stop several processes started by start_process at once: SIGTERM to all, then
        wait for each (one grace period in all, not one per process), SIGKILL the rest."""
        procs = [(n, p) for n in names if (p := self.processes.pop(n, None)) is not None]
        remote = [p for _, p in procs if isinstance(p, rexec.RemoteProcess)]
        if remote:  # one round trip per server to signal, then to wait for, all of them
            rexec.RemoteProcess.signal_many(remote, signal.SIGTERM)
            rexec.RemoteProcess.wait_many(remote, grace_s)
            left = [p for p in remote if p.returncode is None]
            if left:
                log.warning("%d process(es) on other servers did not stop within %.0f s "
                            "of SIGTERM: killed", len(left), grace_s)
                rexec.RemoteProcess.signal_many(left, signal.SIGKILL)
            procs = [(n, p) for n, p in procs if not isinstance(p, rexec.RemoteProcess)]
        for _, proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s of SIGTERM: killed", name, grace_s)
                terminate(proc, 0)

    # -- construction ------------------------------------------------------------------
    def _build(self) -> None:
        mnlog.setLogLevel("warning")
        Mininet.inited = True  # skip Mininet's host-wide sysctl/rlimit changes
        assert self.registry is not None
        net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                      waitConnected=False)
        self.net = net
        topo = self.topo

        # Cluster Edition's ssh links need Cluster Edition nodes at both ends: with
        # tunnel: ssh, the nodes of this machine are such nodes too (server localhost)
        ce_local = bool(self.placement) and topo.tunnel == "ssh"

        def add(name: str, home: str) -> Any:
            self._home[name] = home
            spec = self.placement.get(home)
            if spec is None and ce_local:
                node = net.addHost(name, cls=RemoteNsNode, registry=self.registry,
                                   spec=LOCAL_SERVER, ip=None)
            elif spec is None:
                node = net.addHost(name, cls=NsNode, registry=self.registry, ip=None)
            else:  # Cluster Edition's remote node: its shell runs on that server
                node = net.addHost(name, cls=RemoteNsNode, registry=self.remote[spec.name],
                                   spec=spec, ip=None)
            self.nodes[name] = node
            return node

        for n in topo.nodes:
            add(f"r{n.name}", n.name)
            add(f"c{n.name}", n.name)
        for inst in topo.instances:
            add(inst.name, inst.node)
        for h in topo.hosts:
            add(h.name, h.node)

        def link(a: str, ia: str, b: str, ib: str) -> None:
            net.addLink(self.nodes[a], self.nodes[b], intfName1=ia, intfName2=ib, cls=Link)

        vni_base = (int(self.registry.run_id[-4:], 16) & 0xFFF) << 12  # unique per run
        for lk in topo.links:
            sa, sb = self.placement.get(lk.a), self.placement.get(lk.b)
            if sa != sb and topo.tunnel == "ssh":  # Cluster Edition's ssh tunnel
                link_ = net.addLink(self.nodes[f"r{lk.a}"], self.nodes[f"r{lk.b}"],
                                    intfName1=frr.router_iface(lk.b),
                                    intfName2=frr.router_iface(lk.a),
                                    cls=cluster.SshTunnelLink, mtu=topo.link_mtu)
                self.registry.add_process(link_.tunnel.pid, f"tunnel-{lk.a}-{lk.b}")
                continue
            if sa != sb:  # a router link between two servers: a VXLAN tunnel
                net.addLink(self.nodes[f"r{lk.a}"], self.nodes[f"r{lk.b}"],
                            intfName1=frr.router_iface(lk.b), intfName2=frr.router_iface(lk.a),
                            cls=cluster.VxlanTunnelLink, vni=vni_base + lk.index + 1,
                            mtu=topo.link_mtu, specs=(sa, sb))
                continue
            link(f"r{lk.a}", frr.router_iface(lk.b), f"r{lk.b}", frr.router_iface(lk.a))
        for n in topo.nodes:
            link(f"r{n.name}", frr.CONNECTOR_IFACE, f"c{n.name}", "rtr")
            link(f"r{n.name}", frr.HOSTS_IFACE, f"c{n.name}", "rtrh")
        for inst in topo.instances:
            link(f"c{inst.node}", f"v-{inst.name}", inst.name, "eth0")
        for h in topo.hosts:
            link(f"c{h.node}", f"h-{h.name}", h.name, "eth0")
        net.build()
        self._configure()

    def _configure(self) -> None:
        topo, nodes, mtu = self.topo, self.nodes, self.topo.link_mtu
        common = ("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                  "net.ipv6.conf.default.disable_ipv6=1; ip link set lo up")
        for node in nodes.values():
            node.run(common)
        for n in topo.nodes:
            r, c = nodes[f"r{n.name}"], nodes[f"c{n.name}"]
            r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0")
            r.run(f"ip addr add {addr.loopback(n.index)} dev lo")
            r.run(f"ip link set {frr.CONNECTOR_IFACE} address {addr.mac(n.index, 0, 0, 1)}")
            c.run(f"ip link set rtr address {addr.mac(n.index, 0, 0, 2)}")
            r.run(f"ip link set {frr.CONNECTOR_IFACE} mtu {mtu} up && ip addr add "
                  f"{addr.router_connector_addr(n.index)} dev {frr.CONNECTOR_IFACE}")
            r.run(f"ip link set {frr.HOSTS_IFACE} up && ip addr add "
                  f"{addr.host_gateway(n.index)} dev {frr.HOSTS_IFACE}")
            r.run(f"nft -f {self._api_filter()}")
            c.run(f"ip link set rtr mtu {mtu} up && ip addr add "
                  f"{addr.nsh_endpoint(n.index)} dev rtr && "
                  f"ip route add default via {addr.router_connector_addr(n.index).ip}")
            r.run(f"ip link set {frr.HOSTS_IFACE} address {addr.mac(n.index, 2, 0, 1)}")
            c.run(f"ip link set rtrh address {addr.mac(n.index, 2, 0, 2)}")
            if self.bmv2:
                # BMv2 owns the ports: its l2_forward table does the bridge's job
                c.run("ip link set rtrh up")
                for dev in ("rtr", "rtrh"):
                    c.run(offloads_off(dev))
                c.run(f"nft -f {self._connector_filter()}")
            else:
                c.run("ip link add hbr type bridge && ip link set hbr up && "
                      "ip link set rtrh master hbr up")
        for lk in topo.links:
            la = addr.link_addressing(lk)
            for node, peer, ip in ((lk.a, lk.b, la.a_addr), (lk.b, lk.a, la.b_addr)):
                r, dev = nodes[f"r{node}"], frr.router_iface(peer)
                r.run(f"ip link set {dev} mtu {mtu} up && ip addr add {ip} dev {dev}")
                if lk.bandwidth_mbit:
                    rate = f"{lk.bandwidth_mbit}mbit"
                    r.run(f"tc qdisc add dev {dev} root handle 1: htb default 1 && "
                          f"tc class add dev {dev} parent 1: classid 1:1 htb rate {rate} "
                          f"ceil {rate}")
        for inst in topo.instances:
            idx = topo.node(inst.node).index
            nodes[f"c{inst.node}"].run(f"ip link set v-{inst.name} address "
                                      f"{addr.mac(idx, 1, inst.id, 2)} mtu {mtu} up")
            nodes[inst.name].run(f"ip link set eth0 address {addr.mac(idx, 1, inst.id, 1)} "
                                 f"mtu {mtu} up")
            nodes[inst.name].run(offloads_off("eth0"))
            nodes[f"c{inst.node}"].run(offloads_off(f"v-{inst.name}"))
        hosts = addr.host_addresses(topo)
        for h in topo.hosts:
            idx = topo.node(h.node).index
            nodes[f"c{h.node}"].run(f"ip link set h-{h.name} address "
                                    f"{addr.host_mac(topo, h, 2)}")
            nodes[h.name].run(f"ip link set eth0 address {addr.host_mac(topo, h, 1)}")
            master = "" if self.bmv2 else " master hbr"
            nodes[f"c{h.node}"].run(f"ip link set h-{h.name}{master} up")
            nodes[f"c{h.node}"].run(offloads_off(f"h-{h.name}"))
            nodes[h.name].run(offloads_off("eth0"))
            nodes[h.name].run(f"ip link set eth0 up && ip addr add {hosts[h.name]} dev eth0 "
                              f"&& ip route add default via {addr.host_gateway(idx).ip}")

    def _input_filter(self, name: str, rules: list[str], extra: str = "") -> Path:
        """An nftables file (written once per run) dropping ``rules`` on input, plus
        ``extra`` (more of the table's body)."""
        path = self.run_folder / f"{name}-input.nft"
        if not path.exists():
            body = "".join(f"    {rule} counter drop\n" for rule in rules)
            path.write_text("table inet dsfc {\n  chain input {\n"
                            "    type filter hook input priority 0; policy accept;\n"
                            f"{body}  }}\n{extra}}}\n")
            for spec in self.remote_servers():
                servers.write_file(spec, path, path.read_text())
        return path

    def _api_filter(self) -> Path:
        """Only loopback may reach the OSPF API (TCP 2607/2608): no LSA injection. Also
        counts the OSPF packets the router sends (topologies.ctrlstats)."""
        ports = ", ".join(str(p) for p in frr.OSPF_API_PORTS)
        return self._input_filter("router", [f'iifname != "lo" tcp dport {{ {ports} }}'],
                                  ctrlstats.NFT_OUTPUT)

    def _connector_filter(self) -> Path:
        """BMv2 connectors: the switch's Thrift port only from loopback, and no kernel
        answer (ICMP port unreachable) to the VXLAN-GPE packets that BMv2 handles."""
        return self._input_filter("connector", [
            f'iifname != "lo" tcp dport {bmv2_target.THRIFT_PORT}', "udp dport 4790"])

    def _start_routers(self) -> None:
        assert self.registry is not None
        for n in self.topo.nodes:
            paths = frr.RouterPaths(self.registry.folder / f"r{n.name}")
            frr.write_configs(self.topo, n.name, paths)
            shutil.chown(paths.folder, "frr", "frr")
            for f in paths.folder.iterdir():
                shutil.chown(f, "frr", "frr")
            self.routers[n.name] = RouterHandle(n.name, self.nodes[f"r{n.name}"], paths,
                                                self.placement.get(n.name))
        for spec in self.remote_servers():  # their configurations, to their servers
            servers.push(spec, self.run_folder, [f"r{n}" for n, s in self.placement.items()
                                                 if s == spec])
        # every daemon's dry run on its generated config, a few at a time (processes)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in pool.map(lambda h: frr.check_configs(h.paths, frr.daemons(self.topo)),
                              self.routers.values()):
                pass
        for daemon in frr.daemons(self.topo):  # each kind on every router, then wait
            for handle in self.routers.values():
                self._launch_daemon(handle, daemon)
            timeout = 10 + 0.1 * len(self.routers)
            for handle in self.routers.values():
                if handle.server is None:
                    self._await_daemon(handle, daemon, timeout)
            for spec in self.remote_servers():
                self._await_remote_daemons(spec, [h for h in self.routers.values()
                                                  if h.server == spec], daemon, timeout)

    def _start_daemon(self, handle: RouterHandle, daemon: str) -> None:
        self._launch_daemon(handle, daemon)
        if handle.server is not None:
            self._await_remote_daemons(handle.server, [handle], daemon, 10)
        else:
            self._await_daemon(handle, daemon, 10)

    @staticmethod
    def _launch_daemon(handle: RouterHandle, daemon: str) -> None:
        args = " ".join(handle.paths.daemon_args(daemon))
        handle.mn.run(f"{args} -d")

    def _await_daemon(self, handle: RouterHandle, daemon: str, timeout: float) -> None:
        """Until the daemon's vty socket, pid file (and zebra's zserv socket) exist."""
        assert self.registry is not None
        pidfile = handle.paths.pidfile(daemon)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vty = handle.paths.folder / f"{daemon}.vty"
            zserv_ok = daemon != "zebra" or handle.paths.zserv.exists()
            if vty.exists() and zserv_ok and pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.02)
        else:
            tail = _tail(handle.paths.log(daemon))
            raise BuildError(f"r{handle.node}: {daemon} did not start within {timeout:.0f} s;"
                             f" its log ({handle.paths.log(daemon)}):\n{tail}")
        pid = int(pidfile.read_text().strip())
        self.registry.add_process(pid, f"r{handle.node}:{daemon}",
                                  crashlog=frr_crashlog_dir(pid, daemon))


    def _await_remote_daemons(self, spec: ServerSpec, handles: list[RouterHandle],
                              daemon: str, timeout: float) -> None:
        """_await_daemon for the routers of another server, in one command there."""
        waits = []
        for h in handles:
            f = h.paths.folder
            ready = [f"test -S {f / (daemon + '.vty')}", f"test -s {h.paths.pidfile(daemon)}"]
            if daemon == "zebra":
                ready.append(f"test -S {h.paths.zserv}")
            pidfile = h.paths.pidfile(daemon)
            waits.append(
                f"while ! {{ {' && '.join(ready)}; }}; do "
                f"[ $(date +%s) -lt $end ] || {{ echo timeout r{h.node}; exit 3; }}; "
                f"sleep 0.02; done; p=$(cat {pidfile}); "
                f"echo r{h.node} $p $(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f20)")
        script = f"end=$(( $(date +%s) + {int(timeout) + 1} )); " + "; ".join(waits)
        proc = servers.run(spec, script, timeout=timeout + 30, check=False)
        for line in proc.stdout.split("\n"):
            words = line.split()
            if len(words) == 3 and words[0] != "timeout":
                self.remote[spec.name].add_process(int(words[1]), f"{words[0]}:{daemon}",
                                                   int(words[2]))
        if proc.returncode != 0:
            bad = proc.stdout.split("timeout ")[-1].strip() or "?"
            log_path = self.routers[bad[1:]].paths.log(daemon) if bad[1:] in self.routers \
                else None
            tail = servers.read_file(spec, log_path) if log_path else None
            raise BuildError(f"{bad}: {daemon} did not start within {timeout:.0f} s on "
                             f"server {spec}; its log ({log_path}):\n"
                             f"{(tail or proc.stderr).strip()[-2000:]}")

    def stop_daemon(self, node: str, daemon: str) -> None:
        """Stop one FRR daemon of a router (SIGTERM by its PID, as an operator would)."""
        faults.kill_frr_daemon(self, node, daemon, signal.SIGTERM)

    def start_daemon(self, node: str, daemon: str) -> None:
        self._start_daemon(self.routers[node], daemon)

    def fail_daemon(self, node: str, daemon: str) -> None:
        """Crash one daemon of a node (topologies.faults: dmano, ospfd, bfdd, connector)."""
        faults.fail_daemon(self, node, daemon)

    def restore_daemon(self, node: str, daemon: str) -> None:
        faults.restore_daemon(self, node, daemon)

    def drain_instance(self, name: str, force: bool = False) -> None:
        """Drain a VNF instance through its D-MANO (topologies.faults)."""
        faults.drain_instance(self, name, force)

    def undrain_instance(self, name: str) -> None:
        faults.undrain_instance(self, name)

    # -- processes of the project inside the namespaces ---------------------------------
    def start_process(self, name: str, node: str, args: list[str], logfile: Path,
                      prefix: Sequence[str] = ()) -> None:
        """Start a long-running process inside ``node``'s namespace, logged and registered."""
        assert self.registry is not None
        if name in self.processes and self.processes[name].poll() is None:
            raise BuildError(f"{name} is already running")
        logfile.parent.mkdir(parents=True, exist_ok=True)
        # nsenter --net only: Mininet's node shells have their own mount namespace (a
        # private /sys without the bpffs pins); our processes keep the host's mounts
        netns = self.nodes[node].netns
        spec = self.server_of_node(node)
        if spec is not None:  # on another server: launched and watched there
            if prefix:
                raise BuildError(f"{name}: a CPU limit (cpu_limit) on a node of another "
                                 f"server ({spec}) is not supported yet")
            rproc = rexec.RemoteProcess.launch(spec, netns, args, logfile, self.run_folder)
            self.processes[name] = rproc  # type: ignore[assignment]
            self.logs[name] = logfile
            self.remote[spec.name].add_process(rproc.pid, name, rproc.start)
            return
        module = spawn.module_of(args)
        proc: subprocess.Popen | spawn.SpawnedProcess
        if module is not None and not prefix and spawn.enabled():
            # forked from the preloaded fork server (topologies.spawn): shared pages,
            # no interpreter start-up
            # (the fork server itself is not in the run's registry: it serves every run of
            # this builder process and ends with it)
            proc = spawn.spawn(module, list(args[3:]), f"/run/netns/{netns}", logfile,
                               self.run_folder)
        else:
            with open(logfile, "ab") as out:
                proc = subprocess.Popen(
                    [*prefix, "nsenter", f"--net=/run/netns/{netns}", *args], stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=str(self.run_folder), start_new_session=True)
        self.processes[name] = proc
        self.logs[name] = logfile
        self.registry.add_process(proc.pid, name)

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Stop a process started by start_process (by PID); return its exit code."""
        proc = self.processes.pop(name, None)
        if proc is None:
            return None
        return terminate(proc, timeout, sig)

    def start_vnf(self, name: str) -> None:
        """Start the VNF process of an instance in its namespace (python -m vnf)."""
        inst = next(i for i in self.topo.instances if i.name == name)
        svc = self.topo.service(inst.service)
        # a capacity of C packets/s with a quarter second of queue: random packet phases
        # of many flows make short bursts that a real VNF would queue, not drop
        args = [sys.executable, "-m", "vnf", "--name", name, "--iface", "eth0",
                "--service", svc.kind, "--capacity", str(inst.capacity),
                "--burst", str(max(1, inst.capacity // 4)), "--stats-interval", "0.2",
                "--stats", str(vnf_stats_path(self.run_folder, name))]
        for rule in svc.rules:
            args += ["--rule", rule]
        if svc.threshold_pps is not None:
            args += ["--threshold-pps", f"{svc.threshold_pps:g}"]
        if svc.reclassify_to is not None:
            args += ["--reclassify-to", str(svc.reclassify_to)]
        if svc.module is not None:
            args += ["--module", str(svc.module), "--params-json", json.dumps(svc.params)]
            if self.placement.get(inst.node) is not None:
                self.publish(svc.module)  # the user's module, at the same path there
        prefix = [] if inst.cpu_limit is None else cgroups.limit_cpu(
            self.registry, f"vnf-{name}", inst.cpu_limit)  # type: ignore[arg-type]
        self.start_process(f"vnf-{name}", name, args, self.run_folder / "vnf" / f"{name}.log",
                           prefix)

    def stop_vnf(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        return self.stop_process(f"vnf-{name}", sig)

    # -- connectors ----------------------------------------------------------------------
    def p4rt_socket(self, node: str) -> Path:
        return self.run_folder / f"c{node}" / "p4rt.sock"

    def connector_ports(self, node: str) -> dict[int, str]:
        """P4 port -> interface in c<node> (connector_p4/PIPELINE.md)."""
        ports = {1: "rtr", 2: "rtrh"}
        for inst in self.topo.instances:
            if inst.node == node:
                ports[addr.vnf_port(inst.id)] = f"v-{inst.name}"
        for h in addr.node_hosts(self.topo, node):
            ports[addr.host_port(self.topo, h)] = f"h-{h.name}"
        return ports

    def start_connectors(self, nodes: Sequence[str]) -> None:
        """Start several nodes' connectors at once, then wait for each one's P4Runtime
        socket (BMv2 ones one by one: each is configured after it starts)."""
        if self.bmv2:
            for node in nodes:
                self._start_bmv2_connector(node)
            return
        if not self.placement:  # one machine: a few at a time
            health.start_paced(
                [self._paced(f"connector-{n}",
                             functools.partial(self.start_connector, n, wait=False),
                             health.path_ready(self.p4rt_socket(n), "P4Runtime socket"))
                 for n in nodes], health.start_window(), 20)
            return
        for node in nodes:
            self.start_connector(node, wait=False)
        for node in nodes:
            sock = self.p4rt_socket(node)
            self._wait_socket(f"connector-{node}", sock, sock.parent / "p4rt.log",
                              20 + 0.2 * len(nodes))

    def start_connector(self, node: str, wait: bool = True) -> None:
        """The connector of a node in c<node>: the eBPF pipeline behind our P4Runtime
        server, or BMv2 (``connector: bmv2``); ``wait``: until its socket answers."""
        if self.bmv2:
            self._start_bmv2_connector(node)
            return
        from connector_p4.ebpf_build import build

        assert self.registry is not None
        idx = self.topo.node(node).index
        sock = self.p4rt_socket(node)
        sock.parent.mkdir(parents=True, exist_ok=True)
        pins = BPF_ROOT / self.registry.run_id / f"c{node}"
        args = [sys.executable, "-m", "connector_p4.p4rt_server", "--socket", str(sock),
                "--target", "ebpf", "--bpf-object", str(build()), "--pin-dir", str(pins),
                "--local-ip", str(addr.nsh_endpoint(idx).ip),
                "--router-mac", addr.mac(idx, 0, 0, 1), "--local-mac", addr.mac(idx, 0, 0, 2)]
        for port, ifname in self.connector_ports(node).items():
            args += ["--port", f"{port}={ifname}"]
        name, logfile = f"connector-{node}", sock.parent / "p4rt.log"
        spec = self.placement.get(node)
        if spec is not None:
            obj = build()
            servers.push(spec, obj.parent, [obj.name])  # the same object there
        self.start_process(name, f"c{node}", args, logfile)
        if spec is not None:  # its socket, here at the same path (ssh forwards it)
            servers.forward_socket(spec, sock, sock)
        if wait:
            self._wait_socket(name, sock, logfile, 20)

    def _wait_socket(self, name: str, sock: Path, logfile: Path, timeout: float) -> None:
        """Wait for a connector's P4Runtime socket; fail with its log if it dies first."""
        proc = self.processes[name]
        try:
            wait_for_path(sock, timeout, alive=lambda: proc.poll() is None, what=name)
        except ProcessDiedError:
            raise health.died(health.Probe(name, proc, logfile, lambda: None),
                              "before it opened its P4Runtime socket") from None
        except TimeoutError:
            raise BuildError(f"{name} did not start (no {sock.name} within "
                             f"{timeout:.0f} s); its log ({logfile}):\n{_tail(logfile)}"
                             ) from None

    def _bmv2_toolchain(self) -> tuple[bmv2_build.Tools, bmv2_build.Artifacts]:
        """The BMv2 tools and compiled connector.p4, looked up and built once per run."""
        if self._bmv2 is None:
            try:
                self._bmv2 = (bmv2_build.find_tools(), bmv2_build.build())
            except (bmv2_build.Bmv2UnavailableError, bmv2_build.CompileError) as exc:
                raise BuildError(f"connector: bmv2 in {self.topo.path}: {exc}") from exc
        return self._bmv2

    def _start_bmv2_connector(self, node: str) -> None:
        """simple_switch_grpc with connector.p4, configured like the eBPF server starts."""
        tools, art = self._bmv2_toolchain()
        idx = self.topo.node(node).index
        sock = self.p4rt_socket(node)
        sock.parent.mkdir(parents=True, exist_ok=True)
        name, logfile = f"connector-{node}", sock.parent / "bmv2.log"
        args = bmv2_target.switch_command(tools.switch, self.connector_ports(node),
                                          f"unix:{sock}")
        self.start_process(name, f"c{node}", args, logfile)
        self._wait_socket(name, sock, logfile, 30)
        conn = bmv2_target.Bmv2Connector(
            ports=self.connector_ports(node), local_ip=addr.nsh_endpoint(idx).ip,
            router_mac=addr.mac(idx, 0, 0, 1), local_mac=addr.mac(idx, 0, 0, 2),
            hostbridge_mac=addr.mac(idx, 2, 0, 1),
            host_macs={addr.host_port(self.topo, h): addr.host_mac(self.topo, h, 1)
                       for h in addr.node_hosts(self.topo, node)})
        cli = ["nsenter", f"--net=/run/netns/{self.nodes[f'c{node}'].netns}"]
        try:
            bmv2_target.push_pipeline(f"unix:{sock}", art, conn)
            bmv2_target.wait_thrift(cli)
            bmv2_target.thrift_setup(cli, art.json)
        except bmv2_target.Bmv2SetupError as exc:
            raise BuildError(f"BMv2 connector of {node}: {exc}; its log ({logfile}):\n"
                             f"{_tail(logfile)}") from exc

    def dmano_config(self, node: str) -> Path:
        return self.run_folder / f"r{node}" / "dmano.yaml"

    def _connector_conf(self, node: str) -> dict[str, Any]:
        """The connector section of ``node``'s configuration."""
        if not self.with_connectors:
            return {"kind": "dry-run"}
        return {"kind": "p4runtime", "address": f"unix:{self.p4rt_socket(node)}"}

    def start_dmano(self, node: str) -> None:
        path = write_node_config(self.topo, node, self.run_folder, self.policy,
                                 self._connector_conf(node))
        spec = self.placement.get(node)
        if spec is not None:  # its configuration and policy file there
            self._push_policy(spec)
            servers.push(spec, self.run_folder, [str(path.relative_to(self.run_folder))])
        self.start_process(f"dmano-{node}", f"r{node}",
                           [sys.executable, "-m", "dmano", "--config", str(path)],
                           self.run_folder / f"r{node}" / "dmano.log")
        if spec is not None:  # its control socket (drain, dmano show) here too
            sock = self.run_folder / f"r{node}" / "dmano.sock"
            servers.forward_socket(spec, sock, sock)

    def _push_policy(self, spec: ServerSpec) -> None:
        """The policy file at the same path on ``spec`` (the checkout's own policies
        are there already)."""
        if not self.policy.resolve().is_relative_to(servers.REPO):
            self.publish(self.policy)

    def start_central(self) -> None:
        """The central orchestrator (topologies.central), inventory = every node's
        configuration, in the namespace of the router whose LSDB it follows."""
        params = self.central
        assert params is not None
        configs = [write_node_config(self.topo, n.name, self.run_folder, self.policy,
                                     self._connector_conf(n.name)) for n in self.topo.nodes]
        path = central_mod.write_config(self.run_folder, params, self.policy, configs)
        router = params.router or self.topo.nodes[0].name
        self.start_process(central_mod.PROCESS, f"r{router}",
                           [sys.executable, "-m", "dmano.central", "--config", str(path)],
                           central_mod.folder(self.run_folder) / "central.log")

    def status_path(self, node: str) -> Path:
        """The file with ``node``'s tables: its D-MANO's status, or the orchestrator's
        per-node status in central mode (same form)."""
        if self.central is not None:
            return central_mod.node_status_file(self.run_folder, node)
        return self.run_folder / f"r{node}" / "dmano.json"

    def dmano_status(self, node: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_path(node).read_text())
        except (OSError, ValueError):
            return None
