"""Starting the project's Python daemons from a preloaded fork server (issue #13).

Every NFV node runs three Python processes of ours (D-MANO, P4Runtime server, VNFs).
Started as ``python -m ...`` each imports its libraries again (grpc, protobuf,
p4runtime, networkx, psutil, yaml: 30-40 MB of private memory per process, ~0.5 s of CPU
each) and the builder waited for each in turn. Here they are forked instead from
Python's own fork server (:mod:`multiprocessing`, start method ``forkserver``), which
imports those modules once (:data:`PRELOAD`) and then freezes them out of the garbage
collector (:mod:`topologies.spawn_preload`: ``gc.freeze()``), so the children share the
pages copy-on-write and nothing touches them again.

Each child does what ``nsenter --net=/run/netns/NS python -m MODULE ARGS`` did: a new
session, the node's network namespace (``setns``), stdout and stderr to the log file,
stdin from /dev/null, the run folder as working directory, then the module's
``__main__`` through :func:`runpy.run_module` with ``sys.argv`` set. The mount namespace
stays the builder's (the bpffs pins stay visible), as with ``nsenter --net``.

:class:`SpawnedProcess` gives the caller the :class:`subprocess.Popen` interface the
builder uses (``pid``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``,
``returncode``): the children are the fork server's, which reaps them and reports their
exit status. The fork server serves every network of the builder process and ends with it
(it exits when the builder's end of its pipe closes, also when the builder is killed);
it is never in a run's registry, so stopping one network does not stop it. The children
live on in their own sessions until they are stopped (by PID, as before, also by
``make clean``).

``DSFC_SPAWN=exec`` turns it off (every process through ``nsenter`` + a new interpreter).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
# imported once by the fork server; the last one freezes them (gc.freeze)
PRELOAD = ["dmano.cli", "dmano.daemon", "dmano.p4rt_client", "dmano.central.cli",
           "connector_p4.p4rt_server.cli", "connector_p4.p4rt_server.server", "vnf.cli",
           "scenarios.traffic.cli", "topologies.spawn_preload"]
MODULES = {"dmano", "dmano.central", "connector_p4.p4rt_server", "vnf", "scenarios.traffic"}

_ctx: multiprocessing.context.ForkServerContext | None = None
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("DSFC_SPAWN", "fork") != "exec"


def module_of(args: Sequence[str]) -> str | None:
    """``[sys.executable, "-m", MODULE, ...]`` with a module we preload -> MODULE."""
    if len(args) >= 3 and args[0] == sys.executable and args[1] == "-m" \
            and args[2] in MODULES:
        return args[2]
    return None


def context() -> multiprocessing.context.ForkServerContext:
    global _ctx
    with _lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _ctx = ctx
        return _ctx


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(module: str, argv: list[str], netns: str, logfile: str, cwd: str) -> None:
    """In the forked child: become what ``nsenter --net=NS python -m MODULE`` was."""
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    _setns(netns)
    out = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    os.chdir(cwd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's own stdin)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class SpawnedProcess:
    """A forked child with the parts of the :class:`subprocess.Popen` interface we use."""

    def __init__(self, proc: multiprocessing.process.BaseProcess, args: list[str]):
        self._proc = proc
        self.args = args
        self.pid: int = proc.pid  # type: ignore[assignment]
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._proc.is_alive():
            self.returncode = self._proc.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def spawn(module: str, argv: list[str], netns_path: str, logfile: Path,
          cwd: Path) -> SpawnedProcess:
    """Fork ``python -m module *argv`` from the fork server into ``netns_path``."""
    ctx = context()
    proc = ctx.Process(target=_child, args=(module, list(argv), netns_path, str(logfile),
                                            str(cwd)),
                       name=f"{module} {' '.join(argv[:2])}", daemon=False)
    with _lock:
        # multiprocessing would make the child re-import the builder's own main module
        # (a script, pytest, `python -m topologies`): show it a main module without a
        # file or spec while starting, so the child only runs _child
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            sys.modules["__main__"] = main
    return SpawnedProcess(proc, [sys.executable, "-m", module, *argv])
