"""Run-state liveness and process ending (no root: only this test's own processes);
registries with servers and cleaning one run, in a tmp run root."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topologies import runstate, servers
from topologies.servers import ServerSpec


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2:].split()[0]


def test_zombie_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = runstate.proc_start_time(proc.pid)
    assert start is not None
    deadline = time.monotonic() + 10
    while _state(proc.pid) != "Z" and time.monotonic() < deadline:  # exited, not reaped
        time.sleep(0.01)
    assert _state(proc.pid) == "Z"
    assert runstate.proc_start_time(proc.pid) == start  # /proc still lists it
    assert not runstate.alive(proc.pid, start)
    assert not runstate.alive(proc.pid, None)
    proc.wait()
    assert not runstate.alive(proc.pid, start)


def test_process_whose_first_thread_exited_is_alive_while_another_runs() -> None:
    """/proc shows Z for a process whose first thread has exited (pthread_exit) while
    another thread still runs and can write files: it is not dead yet."""
    code = ("import ctypes, sys, threading, time\n"
            "t = threading.Thread(target=lambda: (sys.stdin.readline(), time.sleep(0.1)))\n"
            "t.start()\n"
            "ctypes.CDLL(None).pthread_exit(None)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while _state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(proc.pid) == "Z"
        assert runstate.alive(proc.pid, None)
        assert runstate.alive(proc.pid, runstate.proc_start_time(proc.pid))
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 10
        while runstate.alive(proc.pid, None) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not runstate.alive(proc.pid, None)  # the last thread ended: dead, not reaped
        assert Path(f"/proc/{proc.pid}").exists()
    finally:
        proc.kill()
        proc.wait()


def test_crashlog_folder_removed_once_its_daemon_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder of a daemon still exiting is removed after it is gone, even if the
    daemon adds a file meanwhile; a dead daemon's folder at once."""
    monkeypatch.setattr(runstate, "CRASHLOG_ROOT", tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    (tmp_path / f"ospfd.{proc.pid}").mkdir()
    (tmp_path / f"ospfd.{proc.pid}" / "logbuf.1").write_text("x")
    (tmp_path / "zebra.999999").mkdir()  # no such process
    (tmp_path / "zebra.1").mkdir()  # not ours: untouched
    try:
        runstate.remove_crashlog_dirs({(tmp_path / f"ospfd.{proc.pid}", proc.pid),
                                       (tmp_path / "zebra.999999", 999999)}, wait_s=30)
        assert proc.poll() is not None or not runstate.alive(proc.pid, None)
    finally:
        proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zebra.1"]


def test_alive_checks_start_time() -> None:
    me = os.getpid()
    assert runstate.alive(me, runstate.proc_start_time(me))
    assert runstate.alive(me, None)
    assert not runstate.alive(me, (runstate.proc_start_time(me) or 0) + 1)  # a reused PID


def test_end_processes_reaps_children_without_waiting_the_grace() -> None:
    """Our own children exit at SIGTERM: ended and reaped well before a 30 s grace."""
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(5)]
    t0 = time.monotonic()
    ended = runstate.end_processes([p.pid for p in procs], grace_s=30)
    assert time.monotonic() - t0 < 10
    assert sorted(pid for pid, _ in ended) == sorted(p.pid for p in procs)
    for p in procs:  # reaped by end_processes: no zombie left
        assert not Path(f"/proc/{p.pid}").exists()


def test_end_processes_kills_after_grace() -> None:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                             "print('ready', flush=True)\n"
                             "time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    reaped = []
    real_waitpid = os.waitpid

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        out = real_waitpid(pid, options)
        if out[0]:
            reaped.append(out)
        return out

    os.waitpid = waitpid  # type: ignore[assignment]
    try:
        runstate.end_processes([proc.pid], grace_s=0.3)
    finally:
        os.waitpid = real_waitpid  # type: ignore[assignment]
    proc.stdout.close()
    assert [(pid, os.WTERMSIG(status)) for pid, status in reaped] == [
        (proc.pid, signal.SIGKILL)]


# -- registries of spread networks, and cleaning one run (a tmp run root, nothing real) ------
@pytest.fixture
def run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RUN_ROOT, BPF_ROOT and NETNS_DIR under tmp_path: cleaning touches nothing else."""
    root = tmp_path / "run" / "dsfc"
    root.mkdir(parents=True)
    monkeypatch.setattr(runstate, "RUN_ROOT", root)
    monkeypatch.setattr(runstate, "BPF_ROOT", tmp_path / "bpf" / "dsfc")
    monkeypatch.setattr(runstate, "NETNS_DIR", tmp_path / "netns")
    return root


def _registry(root: Path, run_id: str, **fields) -> runstate.Registry:
    """A left-behind run (no owner) without namespaces or processes."""
    folder = root / run_id
    folder.mkdir()
    (folder / "vnf.log").write_text("a file of the run\n")
    reg = runstate.Registry(run_id=run_id, folder=folder, topology=f"{run_id}.yaml", **fields)
    reg.save()
    return reg


def test_servers_round_trip_through_the_registry_file(run_root: Path) -> None:
    reg = _registry(run_root, "r1")
    reg.add_server("s2", "10.99.0.2", "root", ["B", "D"])
    reg.add_server("s3", "node3.lab", "dsfc")
    loaded = runstate.Registry.load(reg.folder)
    assert loaded.servers == [
        {"name": "s2", "address": "10.99.0.2", "user": "root", "nodes": ["B", "D"]},
        {"name": "s3", "address": "node3.lab", "user": "dsfc", "nodes": []}]
    assert loaded.server_of("D") == loaded.servers[0]
    assert loaded.server_of("A") is None  # on this machine
    assert loaded == reg


def test_old_registry_without_servers(run_root: Path) -> None:
    folder = run_root / "old"
    folder.mkdir()
    (folder / "registry.json").write_text('{"run_id": "old", "namespaces": []}')
    reg = runstate.Registry.load(folder)
    assert reg.servers == [] and reg.server_of("A") is None


def test_clean_one_run_only(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "clean_remote", lambda *a: pytest.fail("no server"))
    for run_id in ("r1", "r2", "r3"):
        _registry(run_root, run_id)
    assert runstate.clean(run_id="r2") == ["r2"]
    assert sorted(p.name for p in run_root.iterdir()) == ["r1", "r3"]
    assert runstate.clean(run_id="nope") == []
    assert sorted(p.name for p in run_root.iterdir()) == ["r1", "r3"]
    assert sorted(runstate.clean()) == ["r1", "r3"]
    assert not run_root.exists()  # the empty run root goes too


def test_clean_one_run_keeps_it_while_its_builder_lives(run_root: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _registry(run_root, "r1", owner_pid=owner.pid,
                  owner_start=runstate.proc_start_time(owner.pid))
        assert runstate.clean(run_id="r1") == []
        assert (run_root / "r1" / "registry.json").exists()
        assert runstate.clean(include_live=True, run_id="r1") == ["r1"]
        assert owner.poll() is None  # its resources went, the builder was not signalled
    finally:
        owner.kill()
        owner.wait()


def test_clean_run_cleans_its_servers_first(run_root: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[ServerSpec, str, bool]] = []
    reg = _registry(run_root, "r1")

    def clean_remote(spec: ServerSpec, run_id: str) -> str | None:
        calls.append((spec, run_id, reg.folder.exists()))
        return None if spec.name == "s2" else "server s3 (dsfc@node3.lab): ssh failed: no"

    monkeypatch.setattr(servers, "clean_remote", clean_remote)
    reg.add_server("s2", "10.99.0.2", "root", ["B"])
    reg.add_server("s3", "node3.lab", "dsfc", ["C"])
    with caplog.at_level(logging.WARNING, logger="topologies.runstate"):
        assert runstate.clean(run_id="r1") == ["r1"]
    assert calls == [(ServerSpec("s2", "10.99.0.2"), "r1", True),
                     (ServerSpec("s3", "node3.lab", "dsfc"), "r1", True)]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("run r1: its part on server s3 (dsfc@node3.lab) was not "
                              "cleaned (server s3 (dsfc@node3.lab): ssh failed: no)")
    assert "s2" not in warning
    assert not reg.folder.exists()  # the local part is cleaned all the same


def test_clean_run_user_defaults_to_root(run_root: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry entry without a user (hand-written, older): root, like topologies."""
    folder = run_root / "r1"
    folder.mkdir()
    (folder / "registry.json").write_text(
        '{"run_id": "r1", "servers": [{"name": "s2", "address": "10.99.0.2"}]}')
    calls: list[ServerSpec] = []
    monkeypatch.setattr(servers, "clean_remote", lambda spec, run_id: calls.append(spec))
    runstate.clean_run(runstate.Registry.load(folder))
    assert calls == [ServerSpec("s2", "10.99.0.2", "root")]
    assert not folder.exists()


def test_crashlog_dir_is_the_folder_the_daemon_holds_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FRR names the folder after its PID before it daemonized: the folder is found by
    what the daemon holds open, not by its PID."""
    monkeypatch.setattr(runstate, "CRASHLOG_ROOT", tmp_path)
    folder = tmp_path / "zebra.123"  # another PID than the process's
    folder.mkdir()
    (folder / "logbuf.124").write_text("")
    code = ("import os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "print('ok', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", code, str(folder / "logbuf.124")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ok\n"
        assert other.stdout is not None and other.stdout.readline() == "ok\n"
        assert runstate.frr_crashlog_dir(proc.pid) == folder
        assert runstate.frr_crashlog_dir(other.pid) == folder  # through a file in it
        assert runstate.frr_crashlog_dir(os.getpid(), wait_s=0) is None
        # not held open: found by the log buffer of its main thread
        assert runstate.frr_crashlog_dir(os.getpid(), "zebra", wait_s=0) is None
        (folder / f"logbuf.{os.getpid()}").write_text("")
        assert runstate.frr_crashlog_dir(os.getpid(), "zebra", wait_s=0) == folder
        assert runstate.frr_crashlog_dir(os.getpid(), "ospfd", wait_s=0) is None
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
            assert p.stdout is not None
            p.stdout.close()


def test_clean_run_removes_the_recorded_crashlog_folder(
        run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = tmp_path / "crash"
    crash.mkdir()
    monkeypatch.setattr(runstate, "CRASHLOG_ROOT", crash)
    (crash / "ospfd.4000").mkdir()  # recorded for the dead daemon 4001
    (crash / "ospfd.4001").mkdir()  # another daemon's, whose PID before -d was 4001
    (crash / "ospfd.5000").mkdir()  # someone else's
    (crash / "zebra.3999").mkdir()  # not recorded: found by its main thread's buffer
    (crash / "zebra.3999" / "logbuf.4003").write_text("")
    (crash / "zebra.100").mkdir()  # an older daemon 4003, before the PIDs wrapped around
    (crash / "zebra.100" / "logbuf.4003").write_text("")
    os.utime(crash / "zebra.100" / "logbuf.4003", (1, 1))
    (crash / "elsewhere").mkdir()
    reg = _registry(run_root, "r1", processes=[
        {"pid": 4001, "start": 1, "name": "rA:ospfd", "crashlog": str(crash / "ospfd.4000")},
        {"pid": 4002, "start": 1, "name": "rB:ospfd", "crashlog": "/etc"},  # not FRR's
        {"pid": 4003, "start": 1, "name": "rC:zebra"},
    ])
    runstate.clean_run(reg)
    assert sorted(p.name for p in crash.iterdir()) == ["elsewhere", "ospfd.4001",
                                                       "ospfd.5000", "zebra.100"]
    assert Path("/etc").is_dir()


def test_no_crashlog_folder_root_means_no_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An FRR keeping its crash logs elsewhere must not cost every daemon start a wait."""
    monkeypatch.setattr(runstate, "CRASHLOG_ROOT", tmp_path / "absent")
    t0 = time.monotonic()
    assert runstate.frr_crashlog_dir(os.getpid(), "zebra", wait_s=30) is None
    assert time.monotonic() - t0 < 5


def test_dry_run_crashlog_folder_removed_but_not_another_daemons(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config dry run (no -d) leaves an empty /var/tmp/frr/<daemon>.<pid>; after the
    PIDs wrapped around, a folder of that name may be a running daemon's."""
    monkeypatch.setattr(runstate, "CRASHLOG_ROOT", tmp_path)
    (tmp_path / "zebra.10").mkdir()
    (tmp_path / "ospfd.11").mkdir()
    (tmp_path / "ospfd.11" / "logbuf.11").write_text("")
    (tmp_path / "ospfd.12").mkdir()
    (tmp_path / "ospfd.12" / "logbuf.13").write_text("")  # forked daemon 13's folder
    for daemon, pid in (("zebra", 10), ("ospfd", 11), ("ospfd", 12), ("ospfd", 14)):
        runstate.remove_crashlog_dir(daemon, pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ospfd.12"]
