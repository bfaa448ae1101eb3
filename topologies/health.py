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
import subprocess
import time
from collections.abc import Callable
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
