"""Spread networks on Mininet Cluster Edition (``mininet.examples.cluster``).

A node on another server is Cluster Edition's ``RemoteMixin`` over our named-namespace
node (:class:`RemoteNsNode`): its shell is ``ssh user@server sudo -E mnexec ... bash``,
so every ``node.cmd`` runs in its namespace there, and links between two nodes of one
server are veths made by that shell (Mininet's ``Link`` through the node). A router
link between two servers is a VXLAN tunnel (:class:`VxlanTunnelLink`, Cluster
Edition's ``RemoteLink`` with our ``makeTunnel``: this kernel has no GRE, so its
``RemoteGRELink`` cannot be used).

Fixes for Cluster Edition 2.3.0.dev6 under Python 3, made here and not in the
installed package:

- ``RemoteMixin.rpopen`` opens pipes in binary mode, so ``rcmd`` adds bytes to a str
  (TypeError) and ``makeTunnel`` compares ``read(1)`` (bytes) with ``'@'``: our
  :meth:`RemoteNsNode.rpopen` opens them as UTF-8 text, which fixes both;
- ``HostSwitchBinPlacer`` divides with ``/`` (a float count): we do not use its
  placers (placement is :mod:`topologies.placement`).

``ClusterCleanup`` (``mn -c`` on every server, which ends every Mininet process of
every user there) is never called: each server's part of a run has its own registry
(:class:`RemoteRegistry`, in the run folder at the same path there) and is cleaned
by ``python -m topologies.runstate --run ID`` on that server.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininet.examples.cluster import RemoteLink, RemoteMixin

from topologies import servers
from topologies.runstate import Registry
from topologies.servers import ServerSpec

log = logging.getLogger(__name__)

# on a server, before its part of a run: the bpffs (for the connectors' pins) and the
# pin folder of the run
PREPARE = ("grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf; "
           "mkdir -p {pins}")
# not gathered from a server's run folder: its registry (this machine has its own),
# files being written
NOT_MIRRORED = ("registry.json", "*.tmp")
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


@dataclass
class RemoteRegistry(Registry):
    """The registry of one server's part of a run, kept in the run folder there
    (written over ssh before each resource is created, like the local one)."""

    server: ServerSpec | None = None

    def save(self) -> None:
        assert self.server is not None
        data = {
            "run_id": self.run_id, "owner_pid": 0, "owner_start": None,
            "owner": self.topology, "topology": self.topology,
            "namespaces": self.namespaces, "bpf_dirs": self.bpf_dirs,
            "processes": self.processes, "cgroup_dirs": self.cgroup_dirs,
        }
        servers.write_file(self.server, self.path, json.dumps(data, indent=1))

    def add_process(self, pid: int, name: str, start: int | None = None) -> None:
        self.processes.append({"pid": pid, "start": start, "name": name})
        self.save()


def remote_registry(server: ServerSpec, local: Registry) -> RemoteRegistry:
    reg = RemoteRegistry(run_id=local.run_id, folder=local.folder,
                         topology=local.topology, server=server)
    servers.run(server, f"mkdir -p -m 755 {shlex.quote(str(local.folder))}")
    reg.save()
    return reg


# -- nodes ------------------------------------------------------------------------------
def make_remote_node_class(base: type) -> type:
    """Cluster Edition's RemoteMixin over ``base`` (topologies.network.NsNode)."""

    class RemoteNsNode(RemoteMixin, base):  # type: ignore[misc, valid-type]
        """A named-namespace node on another server (its shell runs there)."""

        def __init__(self, name: str, registry: RemoteRegistry, spec: ServerSpec,
                     **params: Any):
            self.spec = spec
            # RemoteMixin builds its ssh command from sshbase: add ours (batch mode,
            # multiplexing, DSFC_SSH_CONFIG); -tt stays (the shell needs a terminal)
            self.sshbase = ["ssh", "-q", *servers.ssh_options(), "-tt"]
            servers.CONTROL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            super().__init__(name, registry=registry, server=spec.address,
                             user=spec.user, controlPath=False, **params)

        def _attach_netns(self) -> None:
            """Deferred: the remote shell's PID is only known after RemoteMixin's
            ``echo $$`` (startShell below)."""

        def startShell(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
            if self.isRemote:
                # ssh as root here (Cluster Edition runs it as the server's user here,
                # 'sudo -E -u USER ssh', which needs that account on this machine too):
                # like every other ssh of dsfc; 'sudo -E mnexec' runs there as before
                self.sshcmd = [*self.sshbase, self.dest]
            super().startShell(*args, **kwargs)
            servers.run(self.spec, f"ip netns attach {self.netns} {self.pid}")

        def rpopen(self, *cmd: Any, **opts: Any) -> Any:
            opts.setdefault("encoding", "utf-8")  # Cluster Edition's rcmd adds str
            if cmd and isinstance(cmd[0], list) and cmd[0][:1] == ["ssh"]:
                # the ssh of its tunnel link: with our options (DSFC_SSH_CONFIG, ...) but
                # its own connection (a multiplexed one does not carry the tap; the first
                # value of an ssh option wins)
                cmd = (["ssh", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                        *servers.ssh_options(), *cmd[0][1:]], *cmd[1:])
            return super().rpopen(*cmd, **opts)

    return RemoteNsNode


def node_server(node: Any) -> str:
    return getattr(node, "server", "localhost")


def tunnel_endpoints(node1: Any, node2: Any) -> tuple[str, str]:
    """The underlay addresses of a tunnel between the servers of two nodes: a remote
    server's address, or for this machine its source address toward the other one."""
    def ip_of(node: Any, peer: Any) -> str:
        if node_server(node) != "localhost":
            return str(node.serverIP)
        route = subprocess.run(["ip", "route", "get", str(peer.serverIP)],
                               capture_output=True, text=True, check=True).stdout
        return route.split(" src ")[1].split()[0]
    return ip_of(node1, node2), ip_of(node2, node1)


def underlay_mtu(spec: ServerSpec | None, peer_ip: str) -> int | None:
    """The MTU of the device a server uses toward ``peer_ip``."""
    cmd = (f"dev=$(ip route get {shlex.quote(peer_ip)} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'"
           f" | head -1); cat /sys/class/net/$dev/mtu")
    proc = servers.run(spec or ServerSpec("local", "localhost"), cmd, check=False)
    try:
        return int(proc.stdout.strip())
    except ValueError:
        return None


class VxlanTunnelLink(RemoteLink):
    """A router link: a veth on one server, a VXLAN tunnel between two servers.

    Each end is a VXLAN device (``id vni``, UDP ``VXLAN_PORT``) created in the
    server's root namespace, moved into the router's namespace and renamed there;
    its MTU is the topology's link MTU, so inner packets are the same as on one
    machine (outer packets are fragmented when the servers' own MTU is below
    MTU + 50, with a warning)."""

    def __init__(self, node1: Any, node2: Any, vni: int = 0, mtu: int = 1600,
                 specs: tuple[ServerSpec | None, ServerSpec | None] = (None, None),
                 **kwargs: Any):
        self.vni, self.mtu, self.specs = vni, mtu, specs
        super().__init__(node1, node2, **kwargs)

    def makeTunnel(self, node1: Any, node2: Any, intfname1: str,  # noqa: N802
                   intfname2: str, addr1: str | None = None,
                   addr2: str | None = None) -> bool:
        ip1, ip2 = tunnel_endpoints(node1, node2)
        tmp = f"dsfcvx{self.vni:06x}"
        for node, spec, intf, local, remote in ((node1, self.specs[0], intfname1, ip1, ip2),
                                                (node2, self.specs[1], intfname2, ip2, ip1)):
            where = spec or ServerSpec("local", "localhost")
            under = underlay_mtu(spec, remote)
            if under is not None and under - VXLAN_OVERHEAD < self.mtu:
                log.warning("server %s: MTU %d toward %s carries at most %d-byte tunnel "
                            "frames; link %s (MTU %d) will fragment outer packets",
                            where, under, remote, under - VXLAN_OVERHEAD, intf, self.mtu)
            servers.run(where, f"ip link add {tmp} mtu {self.mtu} type vxlan id {self.vni} "
                               f"local {local} remote {remote} dstport {VXLAN_PORT} df unset "
                               f"&& ip link set {tmp} netns {node.pid}")
            out = node.cmd(f"ip link set {tmp} name {intf}")
            if out.strip():
                raise RuntimeError(f"{node.name}: renaming {tmp} to {intf}: {out.strip()}")
        self.tunnel = True  # type: ignore[assignment]
        return True

    def stop(self) -> None:
        """The tunnel ends go with the routers' namespaces."""
        self.tunnel = None


class SshTunnelLink(RemoteLink):
    """Cluster Edition's own tunnel between two servers: a tap device at each end joined
    by ``ssh -w`` (Ethernet over the ssh connection; ``PermitTunnel yes`` on the far
    server). Slower than VXLAN, but it needs nothing but ssh between the servers.

    Its tap is always ``tap9``: tunnels are made one at a time on this machine (a lock
    file), and both ends get the topology's link MTU after the rename. The ssh process
    runs here (or on the first server); the builder records it for the cleanup."""

    LOCK = Path("/run/dsfc-ssh/tap9.lock")

    def __init__(self, node1: Any, node2: Any, mtu: int = 1600, **kwargs: Any):
        self.mtu = mtu
        super().__init__(node1, node2, **kwargs)

    def makeTunnel(self, node1: Any, node2: Any, intfname1: str,  # noqa: N802
                   intfname2: str, addr1: str | None = None,
                   addr2: str | None = None) -> Any:
        self.LOCK.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tunnel = super().makeTunnel(node1, node2, intfname1, intfname2, addr1, addr2)
        for node, intf in ((node1, intfname1), (node2, intfname2)):
            out = node.cmd(f"ip link set {intf} mtu {self.mtu}")
            if out.strip():
                raise RuntimeError(f"{node.name}: MTU of {intf}: {out.strip()}")
        return tunnel

    def stop(self) -> None:
        """The tunnel's ssh ends with the run (by PID); its taps with the namespaces."""
        self.tunnel = None
