"""Long-running processes on a server of a spread network (issue #15).

The builder starts the project's daemons (P4Runtime servers, VNFs, D-MANOs) inside the
network namespaces of their nodes. On a remote server they must run *there*, outlive the
ssh command that started them, and still be controllable like a local
:class:`subprocess.Popen`. This module is both sides of that:

On the server, ``python -m topologies.rexec``::

    launch [--netns NS] --log FILE --cwd DIR [--rc RCFILE] [--env K=V ...] -- ARGS...
    status PID START RCFILE [PID START RCFILE ...]
    signal SIG PID START [PID START ...]

``launch`` starts ARGS (through ``nsenter --net=/run/netns/NS`` with ``--netns``) in a new
session, stdin from /dev/null, stdout and stderr appended to FILE, and prints one JSON line
``{"pid": P, "start": S, "waiter": W}``: P is the program's PID (nsenter execs it), S its
start time (/proc/P/stat field 22). The program's parent is a small waiter
(:mod:`topologies.rexec_waiter` in a fresh ``python -I -S``: ~3 MB) in a session of its
own, which collects the exit status and writes ``{"pid": P, "start": S, "returncode": R}``
to RCFILE (default: FILE + ".rc"), R as
:attr:`subprocess.Popen.returncode` has it (negative signal number when killed by one).
``launch`` keeps none of the ssh session's file descriptors, so it returns at once.

``status`` prints one JSON line per triple: ``{"pid", "alive", "returncode", "state"}``,
state ``running``, ``exited`` (returncode known), ``pending`` (exited, the waiter has not
written the status yet) or ``lost`` (exited, no status: the waiter was killed).

``signal`` signals each PID that still has that start time (a reused PID is never
signalled) and prints ``{"sent": [true|false, ...]}``.

On the builder, :class:`RemoteProcess` runs these through :func:`topologies.servers.run`
and gives the :class:`subprocess.Popen` interface the builder uses.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from topologies import servers
from topologies.runstate import NETNS_DIR, alive, proc_start_time
from topologies.servers import ServerError, ServerSpec

log = logging.getLogger(__name__)

MODULE = "topologies.rexec"
# exit status of a process whose waiter was killed before it could record it (the value
# ssh gives when the remote side is lost)
LOST_RETURNCODE = 255
PENDING_WAIT_S = 0.5  # how long ``status`` waits for a waiter that has just reaped

# the waiter: parent of the program, run as ``python -I -S WAITER PID START RCFILE``
WAITER = str(Path(__file__).with_name("rexec_waiter.py"))


def default_rc_path(logfile: str | os.PathLike[str]) -> str:
    return f"{os.fspath(logfile)}.rc"


# -- server side ------------------------------------------------------------------------
class LaunchError(RuntimeError):
    pass


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _program(argv: list[str], cwd: str, env: dict[str, str], errpipe: int) -> None:
    """In the forked program: a session of its own, then exec (errors to ``errpipe``)."""
    try:
        os.setsid()
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                    signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:  # reported to the launcher, then _exit
        with contextlib.suppress(OSError):
            os.write(errpipe, f"{argv[0]}: {exc}".encode())
    os._exit(127)


def _waiter_side(argv: list[str], logfile: str, cwd: str, env: dict[str, str],
                 rc_path: str, report: int) -> None:
    """In the first child: detach, fork the program, report it, become its waiter."""
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        keep = sorted({0, 1, 2, report})
        for lo, hi in zip(keep, [*keep[1:], _max_fd()], strict=True):
            os.closerange(lo + 1, hi)  # nothing of the ssh session stays open
        err_r, err_w = os.pipe()  # close-on-exec: EOF once the program has exec'd
        pid = os.fork()
        if pid == 0:
            os.close(report)
            os.close(err_r)
            _program(argv, cwd, env, err_w)
        os.close(err_w)
        chunks = []
        while chunk := os.read(err_r, 4096):
            chunks.append(chunk)
        os.close(err_r)
        if chunks:
            os.waitpid(pid, 0)
            msg = b"".join(chunks).decode(errors="replace")
            os.write(report, json.dumps({"error": msg}).encode())
            os._exit(1)
        start = proc_start_time(pid)  # not reaped yet: /proc/PID is there
        os.write(report, json.dumps({"pid": pid, "start": start,
                                     "waiter": os.getpid()}).encode())
        os.close(report)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # after the fork: the program keeps defaults
        os.execv(sys.executable, [sys.executable, "-I", "-S", WAITER, str(pid),
                                  "null" if start is None else str(start), rc_path])
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report, json.dumps({"error": f"launch: {exc}"}).encode())
    os._exit(1)


def launch(argv: list[str], logfile: str, cwd: str, rc_path: str,
           env: dict[str, str] | None = None, netns: str | None = None) -> dict:
    """Start ``argv`` detached (see the module doc); return ``{"pid", "start", "waiter"}``."""
    if not argv:
        raise LaunchError("nothing to launch")
    if netns is not None:
        argv = ["nsenter", f"--net={NETNS_DIR / netns}", *argv]
    for path in (logfile, rc_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(rc_path)  # the status of an earlier process with the same log
    full_env = {**os.environ, **(env or {})}
    report_r, report_w = os.pipe()
    if report_w < 3:  # kept above stdin/stdout/stderr, which the child replaces
        moved = fcntl.fcntl(report_w, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(report_w)
        report_w = moved
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _waiter_side(argv, logfile, cwd, full_env, rc_path, report_w)
    os.close(report_w)
    chunks = []
    while chunk := os.read(report_r, 4096):
        chunks.append(chunk)
    os.close(report_r)
    try:
        result = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        result = {}
    if "error" in result or "pid" not in result:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # the waiter side gave up: collect it
        raise LaunchError(result.get("error", "launch failed (no report)"))
    return result


def _read_rc(rc_path: str, pid: int, start: int | None) -> int | None:
    try:
        data = json.loads(Path(rc_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("pid") != pid:
        return None
    if start is not None and data.get("start") not in (None, start):
        return None
    rc = data.get("returncode")
    return rc if isinstance(rc, int) else None


def status(pid: int, start: int | None, rc_path: str, deadline: float) -> dict:
    """The state of a launched process (``deadline``: until when to wait for a waiter
    that has just reaped it to write its status)."""
    state, rc = "running", None
    if not alive(pid, start):
        while True:
            rc = _read_rc(rc_path, pid, start)
            if rc is not None:
                state = "exited"
                break
            if start is not None and proc_start_time(pid) == start:
                state = "pending"  # a zombie: its waiter reaps it and writes the status
                break
            if time.monotonic() >= deadline:
                state = "lost"
                break
            time.sleep(0.01)
    return {"pid": pid, "alive": state == "running", "returncode": rc, "state": state}


def send_signal(sig: int, pid: int, start: int) -> bool:
    """Signal ``pid`` if it still runs and started at ``start``; whether it was sent."""
    if not alive(pid, start):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def parse_signal(text: str) -> int:
    if text.lstrip("-").isdigit():
        return abs(int(text))
    name = text.upper()
    return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])


def _start_arg(text: str) -> int | None:
    return None if text in ("-", "None", "null") else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "--" in args:
        i = args.index("--")
        args, program = args[:i], args[i + 1:]
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                description="start and control detached processes")
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("launch", help="start a detached process (program after --)")
    lp.add_argument("--netns", help="network namespace (/run/netns/NETNS)")
    lp.add_argument("--log", required=True, help="stdout and stderr are appended here")
    lp.add_argument("--cwd", required=True)
    lp.add_argument("--rc", help="exit status file (default: LOG.rc)")
    lp.add_argument("--env", action="append", default=[], metavar="K=V")
    sp = sub.add_parser("status", help="state of processes: PID START RCFILE ...")
    sp.add_argument("triples", nargs="+")
    gp = sub.add_parser("signal", help="signal processes: SIG PID START ...")
    gp.add_argument("sig")
    gp.add_argument("pairs", nargs="+")
    ns = p.parse_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if ns.cmd == "launch":
        env = dict(kv.split("=", 1) for kv in ns.env if "=" in kv)
        try:
            result = launch(program, ns.log, ns.cwd, ns.rc or default_rc_path(ns.log),
                            env, ns.netns)
        except (LaunchError, OSError) as exc:
            print(f"launch failed: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result), flush=True)
        return 0
    if program:
        p.error("'--' only with launch")
    if ns.cmd == "status":
        if len(ns.triples) % 3:
            p.error("status takes PID START RCFILE triples")
        deadline = time.monotonic() + PENDING_WAIT_S
        t = ns.triples
        for i in range(0, len(t), 3):
            print(json.dumps(status(int(t[i]), _start_arg(t[i + 1]), t[i + 2], deadline)))
        return 0
    if len(ns.pairs) % 2:
        p.error("signal takes PID START pairs")
    sig = parse_signal(ns.sig)
    q = ns.pairs
    sent = [send_signal(sig, int(q[i]), int(q[i + 1])) for i in range(0, len(q), 2)]
    print(json.dumps({"sent": sent}))
    return 0


# -- builder side -----------------------------------------------------------------------
def _json_lines(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]


class RemoteProcess:
    """A process started by ``launch`` on a server, with the parts of the
    :class:`subprocess.Popen` interface the builder uses. Every call that asks the
    server is one round trip (:func:`topologies.servers.run`); a failing server raises
    :class:`~topologies.servers.ServerError`."""

    def __init__(self, server: ServerSpec, pid: int, start: int, rc_path: str,
                 args: Sequence[str] = (), logfile: str | None = None,
                 waiter: int | None = None, timeout: float = 30):
        self.server = server
        self.pid = pid
        self.start = start
        self.rc_path = rc_path
        self.args = list(args)
        self.logfile = logfile
        self.waiter = waiter
        self.timeout = timeout  # of each command on the server
        self.returncode: int | None = None

    def __repr__(self) -> str:
        return (f"RemoteProcess({self.server.name}, pid={self.pid}, "
                f"returncode={self.returncode})")

    @classmethod
    def launch(cls, server: ServerSpec, netns: str | None, args: Sequence[str],
               logfile: str | os.PathLike[str], cwd: str | os.PathLike[str],
               rc_path: str | os.PathLike[str] | None = None,
               env: dict[str, str] | None = None, timeout: float = 30) -> RemoteProcess:
        """Start ``args`` on ``server`` in namespace ``netns`` (None: the server's own),
        logged to ``logfile`` (appended), in ``cwd``; paths are the server's."""
        rc = os.fspath(rc_path) if rc_path is not None else default_rc_path(logfile)
        words = ["launch", "--log", os.fspath(logfile), "--cwd", os.fspath(cwd), "--rc", rc]
        if netns is not None:
            words += ["--netns", netns]
        for k, v in (env or {}).items():
            words += ["--env", f"{k}={v}"]
        cmd = servers.python_cmd(MODULE, *words, "--", *args)
        out = servers.run(server, cmd, timeout=timeout).stdout
        try:
            info = _json_lines(out)[-1]
            pid, start = int(info["pid"]), int(info["start"])
        except (ValueError, IndexError, KeyError, TypeError):
            raise ServerError(f"server {server}: launch of {list(args)!r} printed no "
                              f"process: {out.strip()!r}") from None
        log.debug("started %s on %s: pid %d", args, server, pid)
        return cls(server, pid, start, rc, args, os.fspath(logfile), info.get("waiter"),
                   timeout)

    # -- exit status -------------------------------------------------------------------
    def _apply(self, st: dict) -> None:
        if st.get("state") == "exited" and isinstance(st.get("returncode"), int):
            self.returncode = st["returncode"]
        elif st.get("state") == "lost":
            log.warning("%s on %s (pid %d) exited and its exit status is lost",
                        self.args[:4], self.server, self.pid)
            self.returncode = LOST_RETURNCODE

    @classmethod
    def poll_many(cls, procs: Sequence[RemoteProcess]) -> list[int | None]:
        """Poll all of ``procs``: one round trip per server (for those still running)."""
        by_server: dict[ServerSpec, list[RemoteProcess]] = {}
        for pr in procs:
            if pr.returncode is None:
                by_server.setdefault(pr.server, []).append(pr)
        for server, group in by_server.items():
            words = [w for pr in group for w in (str(pr.pid), str(pr.start), pr.rc_path)]
            timeout = max(pr.timeout for pr in group)
            out = servers.run(server, servers.python_cmd(MODULE, "status", *words),
                              timeout=timeout).stdout
            states = _json_lines(out)
            if [st.get("pid") for st in states] != [pr.pid for pr in group]:
                raise ServerError(f"server {server}: status printed {out.strip()!r}")
            for pr, st in zip(group, states, strict=True):
                pr._apply(st)
        return [pr.returncode for pr in procs]

    @classmethod
    def wait_many(cls, procs: Sequence[RemoteProcess],
                  timeout: float | None = None) -> list[int | None]:
        """Wait until all of ``procs`` have exited or ``timeout`` has passed; their
        returncodes (None: still running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            codes = cls.poll_many(procs)
            if all(c is not None for c in codes):
                return codes
            if deadline is not None and time.monotonic() >= deadline:
                return codes
            pause = delay if deadline is None else min(delay, deadline - time.monotonic())
            time.sleep(max(0.0, pause))
            delay = min(0.5, delay * 1.5)

    def poll(self) -> int | None:
        return self.poll_many([self])[0]

    def wait(self, timeout: float | None = None) -> int:
        rc = self.wait_many([self], timeout)[0]
        if rc is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return rc

    # -- signals -----------------------------------------------------------------------
    @classmethod
    def signal_many(cls, procs: Sequence[RemoteProcess], sig: int) -> list[bool]:
        """Send ``sig`` to those of ``procs`` still running (one round trip per server);
        whether each was sent."""
        sent = dict.fromkeys(range(len(procs)), False)
        by_server: dict[ServerSpec, list[int]] = {}
        for i, pr in enumerate(procs):
            if pr.returncode is None:
                by_server.setdefault(pr.server, []).append(i)
        for server, idx in by_server.items():
            words = [w for i in idx for w in (str(procs[i].pid), str(procs[i].start))]
            out = servers.run(server, servers.python_cmd(MODULE, "signal", str(int(sig)),
                                                         *words)).stdout
            try:
                flags = _json_lines(out)[-1]["sent"]
            except (ValueError, IndexError, KeyError):
                raise ServerError(f"server {server}: signal printed {out.strip()!r}") \
                    from None
            for i, flag in zip(idx, flags, strict=False):
                sent[i] = bool(flag)
        return [sent[i] for i in range(len(procs))]

    def send_signal(self, sig: int) -> None:
        """Like Popen: nothing happens once the process has exited."""
        self.signal_many([self], sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main())
