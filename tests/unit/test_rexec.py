"""topologies.rexec with a local server (``sh -c``, no ssh) and no network namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from topologies import rexec, runstate, servers
from topologies.rexec import RemoteProcess
from topologies.servers import ServerError, ServerSpec

LOCAL = ServerSpec("local", "localhost")

Launch = Callable[..., RemoteProcess]


def _wait_until(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Launch on the local server; every program (and its waiter) is ended afterwards."""
    started: list[RemoteProcess] = []

    def run(args: list[str], name: str = "p", **kw) -> RemoteProcess:
        kw.setdefault("cwd", tmp_path)
        proc = RemoteProcess.launch(LOCAL, kw.pop("netns", None), args,
                                    tmp_path / f"{name}.log", **kw)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if runstate.alive(proc.pid, proc.start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    waiters = [p.waiter for p in started if p.waiter is not None]
    # the waiters end once they have collected their program
    assert _wait_until(lambda: not any(runstate.alive(w, None) for w in waiters))


def _log(proc: RemoteProcess) -> str:
    assert proc.logfile is not None
    try:
        return Path(proc.logfile).read_text()
    except FileNotFoundError:
        return ""


def test_terminate_gives_minus_signal(launch: Launch) -> None:
    proc = launch(["sleep", "30"])
    assert proc.start == runstate.proc_start_time(proc.pid)
    assert runstate.alive(proc.pid, proc.start)
    assert proc.poll() is None
    assert os.getsid(proc.pid) == proc.pid  # a session of its own
    assert Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1].split()[1] \
        == str(proc.waiter)  # the waiter is its parent
    proc.terminate()
    assert proc.wait(5) == -signal.SIGTERM
    assert proc.returncode == -15
    assert not runstate.alive(proc.pid, proc.start)


def test_exit_status(launch: Launch) -> None:
    proc = launch(["sh", "-c", "exit 3"])
    assert proc.wait(10) == 3
    assert proc.poll() == 3


def test_kill(launch: Launch) -> None:
    proc = launch(["sleep", "30"])
    proc.kill()
    assert proc.wait(5) == -signal.SIGKILL
    proc.kill()  # like Popen: nothing once it has exited


def test_wait_timeout(launch: Launch) -> None:
    proc = launch(["sleep", "30"])
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.3)
    assert 0.3 <= time.monotonic() - t0 < 3
    assert proc.returncode is None


def test_launch_returns_promptly_and_logs(launch: Launch) -> None:
    t0 = time.monotonic()
    proc = launch(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 30"])
    assert time.monotonic() - t0 < 1.5
    assert _wait_until(lambda: "to-stderr" in _log(proc))
    assert "to-stdout" in _log(proc)
    fds = {int(fd): os.readlink(f"/proc/{proc.pid}/fd/{fd}")
           for fd in os.listdir(f"/proc/{proc.pid}/fd")}
    assert fds == {0: "/dev/null", 1: proc.logfile, 2: proc.logfile}  # nothing of ssh's
    assert proc.poll() is None


def test_log_is_appended(launch: Launch, tmp_path: Path) -> None:
    (tmp_path / "p.log").write_text("earlier\n")
    proc = launch(["sh", "-c", "echo later"])
    assert proc.wait(10) == 0
    assert _log(proc) == "earlier\nlater\n"


def test_env_and_cwd(launch: Launch, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = launch(["sh", "-c", 'echo "$DSFC_X $(pwd)"'], cwd=work, env={"DSFC_X": "a b"})
    assert proc.wait(10) == 0
    assert _log(proc) == f"a b {work}\n"


def test_launch_failure_raises(launch: Launch) -> None:
    with pytest.raises(ServerError, match="no-such-program-dsfc"):
        launch(["no-such-program-dsfc"])


def test_nsenter_failure_is_the_exit_status(launch: Launch) -> None:
    if not any(Path(d, "nsenter").exists() for d in os.environ["PATH"].split(":")):
        pytest.skip("no nsenter")
    proc = launch(["true"], netns="dsfc-no-such-namespace-test")  # fails: none created
    assert proc.wait(10) != 0
    assert "dsfc-no-such-namespace-test" in _log(proc)


def test_pid_reuse_guard(launch: Launch) -> None:
    proc = launch(["sleep", "30"])
    impostor = RemoteProcess(LOCAL, proc.pid, proc.start + 1, proc.rc_path)
    assert RemoteProcess.signal_many([impostor], signal.SIGTERM) == [False]
    impostor.kill()
    time.sleep(0.1)
    assert runstate.alive(proc.pid, proc.start)
    assert proc.poll() is None
    assert RemoteProcess.signal_many([impostor, proc], signal.SIGTERM) == [False, True]
    assert proc.wait(5) == -15


def test_poll_many_is_one_round_trip(launch: Launch, monkeypatch: pytest.MonkeyPatch) -> None:
    procs = [launch(["sleep", "30"], "a"), launch(["sh", "-c", "exit 0"], "b"),
             launch(["sh", "-c", "exit 5"], "c"), launch(["sleep", "30"], "d")]
    assert _wait_until(lambda: all(Path(p.rc_path).exists() for p in procs[1:3]))
    calls: list[str] = []
    real_run = servers.run

    def counting(server: ServerSpec, cmd: str, *a, **kw):
        calls.append(cmd)
        return real_run(server, cmd, *a, **kw)

    monkeypatch.setattr(servers, "run", counting)
    assert RemoteProcess.poll_many(procs) == [None, 0, 5, None]
    assert len(calls) == 1
    assert RemoteProcess.poll_many(procs[1:3]) == [0, 5]  # known: no round trip
    assert len(calls) == 1
    RemoteProcess.signal_many(procs, signal.SIGTERM)  # only those running, one trip
    assert len(calls) == 2 and calls[1].count(str(procs[0].pid)) == 1
    assert RemoteProcess.wait_many(procs, 5) == [-15, 0, 5, -15]


def test_status_states(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = runstate.proc_start_time(child.pid)
    assert start is not None
    assert _wait_until(lambda: not runstate.alive(child.pid, start))  # a zombie
    rc = tmp_path / "x.rc"
    st = rexec.status(child.pid, start, str(rc), time.monotonic())
    assert st["state"] == "pending" and st["returncode"] is None
    child.wait()
    st = rexec.status(child.pid, start, str(rc), time.monotonic() + 0.05)
    assert st == {"pid": child.pid, "alive": False, "returncode": None, "state": "lost"}
    rc.write_text(f'{{"pid": {child.pid + 1}, "start": {start}, "returncode": 4}}')
    assert rexec.status(child.pid, start, str(rc), 0)["state"] == "lost"  # another's
    rc.write_text(f'{{"pid": {child.pid}, "start": {start}, "returncode": 4}}')
    assert rexec.status(child.pid, start, str(rc), 0)["returncode"] == 4
    me = rexec.status(os.getpid(), runstate.proc_start_time(os.getpid()), str(rc), 0)
    assert me["state"] == "running" and me["alive"]


def test_lost_status_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = RemoteProcess(LOCAL, 1, 0, "/nonexistent/x.rc", ["x"])

    def fake_run(server: ServerSpec, cmd: str, *a, **kw):
        out = '{"pid": 1, "alive": false, "returncode": null, "state": "lost"}\n'
        return subprocess.CompletedProcess([], 0, out, "")

    monkeypatch.setattr(servers, "run", fake_run)
    assert proc.poll() == rexec.LOST_RETURNCODE


def test_stale_rc_file_is_removed_at_launch(launch: Launch, tmp_path: Path) -> None:
    first = launch(["sh", "-c", "exit 7"])
    assert first.wait(10) == 7
    second = launch(["sleep", "30"])
    assert second.rc_path == first.rc_path
    assert not Path(second.rc_path).exists()
    assert second.poll() is None


def test_cli_parses_signals_and_arguments() -> None:
    assert rexec.parse_signal("TERM") == signal.SIGTERM
    assert rexec.parse_signal("SIGKILL") == signal.SIGKILL
    assert rexec.parse_signal("10") == 10
    with pytest.raises(SystemExit):
        rexec.main(["status", "1", "2"])
