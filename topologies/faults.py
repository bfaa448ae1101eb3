"""Daemon faults on a running network, as an operator or a failure would cause them.

``fail_daemon`` kills one daemon of a node with SIGKILL (no goodbye: a crash);
``restore_daemon`` starts it again the way the builder did. Daemons:

- ``ospfd``, ``bfdd``: the router's FRR daemons (by the PID in their pid file). While
  ospfd is down the D-MANO of that node keeps its connector's last weights and
  reconnects when it is back; its opaque LSAs are flushed with it.
- ``dmano``: the node's D-MANO. The connector keeps forwarding on its last weights;
  a restarted D-MANO resynchronises from the LSDB and the connector (DESIGN §6).
- ``connector``: the node's P4Runtime server. On the eBPF target the pipeline stays
  pinned and keeps forwarding; the restarted server takes it over and rebuilds its
  P4Runtime view from the maps. On BMv2 the switch *is* the data plane: failing it
  stops forwarding at that node until it is restored.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from topologies import health, servers
from topologies.runstate import alive, proc_start_time

if TYPE_CHECKING:
    from topologies.network import Network
    from topologies.servers import ServerSpec

DAEMONS = ("dmano", "ospfd", "bfdd", "connector")
CONTROL_TIMEOUT_S = 10.0


class FaultError(RuntimeError):
    pass


def _check(net: Network, node: str, daemon: str) -> None:
    if node not in net.routers:
        raise FaultError(f"unknown node {node!r} (known: {', '.join(net.routers)})")
    if daemon not in DAEMONS:
        raise FaultError(f"unknown daemon {daemon!r} (known: {', '.join(DAEMONS)})")
    if daemon == "bfdd" and net.topo.ospf.bfd is None:
        raise FaultError(f"{node}: no bfdd to fail: BFD is off in {net.topo.path}")


def kill_frr_daemon(net: Network, node: str, daemon: str, sig: int = signal.SIGKILL,
                    timeout: float = 10) -> None:
    """Signal one FRR daemon of a router by its PID and wait until it is gone (a zombie
    counts as gone: PID 1 reaps daemonized processes slowly)."""
    paths = net.routers[node].paths
    server = net.routers[node].server
    if server is not None:  # a router on another server: the same, there
        _kill_remote_frr_daemon(server, node, daemon, paths.pidfile(daemon), sig, timeout)
        return
    try:
        pid = int(paths.pidfile(daemon).read_text().strip())
    except (OSError, ValueError) as exc:
        raise FaultError(f"r{node}: {daemon} is not running (no pid file: {exc})") from None
    start = proc_start_time(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.01)
    if alive(pid, start):
        raise FaultError(f"r{node}: {daemon} (PID {pid}) still runs {timeout:g} s after "
                         f"signal {sig}")
    paths.pidfile(daemon).unlink(missing_ok=True)


def _kill_remote_frr_daemon(server: ServerSpec, node: str, daemon: str, pidfile: Path,
                            sig: int, timeout: float) -> None:
    """kill_frr_daemon for a router on another server (one command there)."""
    q = shlex.quote(str(pidfile))
    script = (f"pid=$(cat {q} 2>/dev/null) && [ -n \"$pid\" ] || exit 3; "
              f"kill -{int(sig)} $pid 2>/dev/null; end=$(( $(date +%s) + {int(timeout)} )); "
              "while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status "
              "2>/dev/null; do [ $(date +%s) -lt $end ] || exit 4; sleep 0.01; done; "
              f"rm -f {q}")
    proc = servers.run(server, script, timeout=timeout + 10, check=False)
    if proc.returncode == 3:
        raise FaultError(f"r{node}: {daemon} is not running (no pid file on {server})")
    if proc.returncode != 0:
        raise FaultError(f"r{node}: {daemon} on {server} still runs {timeout:g} s after "
                         f"signal {sig} {proc.stderr.strip()}")


def fail_daemon(net: Network, node: str, daemon: str) -> None:
    _check(net, node, daemon)
    if daemon in ("ospfd", "bfdd"):
        kill_frr_daemon(net, node, daemon)
    else:
        name = f"{daemon}-{node}"
        if name not in net.processes:
            raise FaultError(f"{name} is not running")
        net.stop_process(name, signal.SIGKILL)


def restore_daemon(net: Network, node: str, daemon: str,
                   ready_timeout: float = health.DEFAULT_TIMEOUT_S) -> None:
    """Start a failed daemon again; return when it is ready (like at bring-up)."""
    _check(net, node, daemon)
    if daemon in ("ospfd", "bfdd"):
        net.start_daemon(node, daemon)
        return
    name = f"{daemon}-{node}"
    if name in net.processes and net.processes[name].poll() is None:
        raise FaultError(f"{name} is already running")
    if daemon == "connector":
        net.start_connector(node)
    else:
        net.start_dmano(node)
    health.wait_ready([p for p in net.probes() if p.name == name], ready_timeout)


def dmano_request(net: Network, instance: str, cmd: str, force: bool = False) -> dict:
    """Ask the D-MANO of ``instance``'s node over its control socket; FaultError if it
    refuses (e.g. the last instance of a service) or does not answer."""
    from dmano.control import ControlError, request

    inst = next((i for i in net.topo.instances if i.name == instance), None)
    if inst is None:
        known = ", ".join(i.name for i in net.topo.instances)
        raise FaultError(f"unknown instance {instance!r} (known: {known})")
    sock = net.run_folder / f"r{inst.node}" / "dmano.sock"
    try:
        answer = request(sock, cmd, instance, force=force, timeout=CONTROL_TIMEOUT_S)
    except ControlError as exc:
        raise FaultError(f"{cmd} {instance}: {exc}") from None
    if not answer.get("ok"):
        raise FaultError(f"{cmd} {instance}: {answer.get('error', answer)}")
    return answer


def drain_instance(net: Network, instance: str, force: bool = False) -> None:
    """Announce ``instance`` as draining: no new flow goes to it from any node, its
    flows stay until they end (the D-MANO refuses the last instance of a service
    unless ``force``)."""
    dmano_request(net, instance, "drain", force)


def undrain_instance(net: Network, instance: str) -> None:
    dmano_request(net, instance, "undrain")

