"""Bring-up checks: every process a run starts is alive *and ready* before ``up`` (or a
scenario) says so, and one that dies during bring-up fails it with its own words.

Ready means, per kind (the probes below):

- connector: its P4Runtime server answers a ``Capabilities`` call on its unix socket;
- VNF: its counters file exists and names the process's PID (the VNF opened its port
  and counts packets);
- D-MANO: its status file names the process's PID, says ``running`` and the OSPF API
  connected.

A process that exits while we wait fails the bring-up with its exit code and the last
lines of its log; one that is still not ready at the deadline fails it with what is
missing. The caller (``Network.start``) then stops and cleans everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 30.0


class BringUpError(RuntimeError):
    """A started process died or did not become ready during bring-up."""


@dataclass
class Probe:
    name: str  # e.g. "dmano-A", "vnf-fw_b", "connector-A"
    proc: subprocess.Popen
    logfile: Path
    ready: Callable[[], str | None]  # None when ready, else what is still missing


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def died(probe: Probe, while_: str = "during bring-up") -> BringUpError:
    rc = probe.proc.returncode
    how = f"was killed by signal {-rc}" if rc is not None and rc < 0 else f"exited ({rc})"
    return BringUpError(f"{probe.name} {how} {while_}; the last lines of its log "
                        f"({probe.logfile}):\n{tail(probe.logfile)}")


def wait_ready(probes: list[Probe], timeout_s: float = DEFAULT_TIMEOUT_S,
               poll_s: float = 0.05) -> float:
    """Wait until every probe is ready; return the seconds it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    pending = list(probes)
    while True:
        for probe in list(pending):
            if probe.proc.poll() is not None:
                raise died(probe)
            if probe.ready() is None:
                pending.remove(probe)
        if not pending:
            break
        if time.monotonic() > deadline:
            lines = []
            for probe in pending:
                lines.append(f"{probe.name}: {probe.ready()}; the last lines of its log "
                             f"({probe.logfile}):\n{tail(probe.logfile, 8)}")
            raise BringUpError(f"{len(pending)} process(es) not ready within "
                               f"{timeout_s:g} s:\n" + "\n".join(lines))
        time.sleep(poll_s)
    # ready is not enough if something died meanwhile (a D-MANO that crashed after its
    # first status file)
    for probe in probes:
        if probe.proc.poll() is not None:
            raise died(probe)
    return time.monotonic() - t0


def start_window() -> int:
    """How many processes may be starting (started, not ready yet) at once: twice the
    cores (``DSFC_START_WINDOW`` overrides; see :func:`start_paced`)."""
    env = os.environ.get("DSFC_START_WINDOW", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return 2 * (os.cpu_count() or 1)


def start_paced(starts: Iterable[Callable[[], Probe]], window: int,
                timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = 0.02) -> float:
    """Call each of ``starts`` (it starts a process and returns its probe) so that at
    most ``window`` processes are starting at any time: the next one starts when one
    is ready. Each must be ready within ``timeout_s`` of its own start; one that dies
    first fails the bring-up with its log. Returns the seconds it took.

    Why (issue #13): a daemon is busy while it starts (connectors load and attach their
    eBPF program, D-MANOs learn the LSDB and compute). Started all at once, 200 of them
    on 2 cores kept hundreds of tasks runnable for minutes (load average above 1 000),
    contended for the kernel's locks (every netlink and tc call takes the same RTNL
    mutex) and used twice the CPU in all; a window of a few per core keeps the run
    queue short and the whole start faster."""
    t0 = time.monotonic()
    queue = iter(starts)
    starting: list[tuple[Probe, float]] = []
    more = True
    while more or starting:
        while more and len(starting) < window:
            start = next(queue, None)
            if start is None:
                more = False
                break
            starting.append((start(), time.monotonic()))
        now = time.monotonic()
        for item in list(starting):
            probe, started = item
            if probe.proc.poll() is not None:
                raise died(probe)
            missing = probe.ready()
            if missing is None:
                starting.remove(item)
            elif now - started > timeout_s:
                raise BringUpError(f"{probe.name} not ready within {timeout_s:g} s of its "
                                   f"start: {missing}; the last lines of its log "
                                   f"({probe.logfile}):\n{tail(probe.logfile, 8)}")
        if starting and (not more or len(starting) >= window):
            time.sleep(poll_s)
    return time.monotonic() - t0


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def vnf_ready(stats: Path, pid: int) -> Callable[[], str | None]:
    def check() -> str | None:
        data = read_json(stats)
        if data is None:
            return f"no counters file {stats} yet"
        if data.get("pid") != pid:
            return f"counters file {stats} names PID {data.get('pid')}, not {pid}"
        return None
    return check


def dmano_ready(status: Path, pid: int) -> Callable[[], str | None]:
    def check() -> str | None:
        data = read_json(status)
        if data is None:
            return f"no status file {status} yet"
        if data.get("pid") != pid:
            return f"status file {status} is from PID {data.get('pid')}, not {pid}"
        if not data.get("running"):
            return "status says not running"
        if not (data.get("ospf_api") or {}).get("connected"):
            return "OSPF API not connected"
        return None
    return check


def path_ready(path: Path, what: str) -> Callable[[], str | None]:
    """Ready when ``path`` exists (a server's socket)."""
    def check() -> str | None:
        return None if path.exists() else f"no {what} {path} yet"
    return check


def p4runtime_ready(socket_path: Path, timeout_s: float = 1.0) -> Callable[[], str | None]:
    """Ready when the P4Runtime server on ``socket_path`` answers Capabilities."""
    def check() -> str | None:
        if not socket_path.exists():
            return f"no P4Runtime socket {socket_path} yet"
        import grpc
        from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

        channel = grpc.insecure_channel(f"unix:{socket_path}")
        try:
            stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
            stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            return f"P4Runtime at {socket_path} does not answer: {exc.code().name}"
        finally:
            channel.close()
        return None
    return check
