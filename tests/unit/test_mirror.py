"""topologies.mirror with a local server (``sh -c``, no ssh): the served folder and the
mirror are two folders of the test's tmp_path."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from topologies import mirror, runstate, servers
from topologies.mirror import Applier, Mirror
from topologies.servers import ServerSpec

LOCAL = ServerSpec("local", "localhost")

Start = Callable[..., Mirror]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    return path


@pytest.fixture
def local(tmp_path: Path) -> Path:
    return tmp_path / "local"


@pytest.fixture
def start(remote: Path, local: Path) -> Iterator[Start]:
    started: list[Mirror] = []

    def run(**kw) -> Mirror:
        kw.setdefault("interval", 0.05)
        m = Mirror.start(LOCAL, remote, local, **kw)
        started.append(m)
        return m

    yield run
    for m in started:
        m.stop()
        assert m.proc.returncode is not None


def _frame(header: dict, data: bytes = b"") -> bytes:
    return json.dumps({**header, "n": len(data)}).encode() + b"\n" + data


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_full_copy(start: Start, remote: Path, local: Path) -> None:
    (remote / "a" / "b").mkdir(parents=True)
    (remote / "top.json").write_text('{"x": 1}\n')
    (remote / "a" / "b" / "bin").write_bytes(bytes(range(256)) * 10)
    (remote / "a" / "empty").write_bytes(b"")
    os.utime(remote / "top.json", ns=(1_000_000_000, 1_500_000_000))
    m = start()
    assert m.wait_synced(10)
    assert _tree(local) == _tree(remote)
    assert (local / "top.json").stat().st_mtime_ns == 1_500_000_000
    assert m.stats.errors == 0 and m.stats.rounds >= 1
    assert m.stats.last_heartbeat is not None and m.alive


def test_growing_log_is_appended(start: Start, remote: Path, local: Path) -> None:
    logf = remote / "vnf" / "v1.log"
    logf.parent.mkdir()
    logf.write_text("x" * 1000 + "\n")
    m = start()
    assert m.wait_synced(10)
    sent = m.stats.bytes
    for i in range(5):
        with logf.open("a") as fh:
            fh.write(f"line {i}\n")
        assert m.wait_synced(10)
    assert (local / "vnf" / "v1.log").read_text() == logf.read_text()
    assert m.stats.bytes - sent == 5 * len("line 0\n")  # only what was appended


def test_rewritten_in_place_is_sent_whole(start: Start, remote: Path, local: Path) -> None:
    f = remote / "state.txt"
    f.write_text("a" * 300)
    m = start()
    assert m.wait_synced(10)
    with f.open("r+") as fh:  # same inode, larger, earlier bytes changed
        fh.write("b" * 400)
    assert m.wait_synced(10)
    assert (local / "state.txt").read_text() == "b" * 400


def test_json_rewritten_atomically_is_never_seen_partial(
        start: Start, remote: Path, local: Path) -> None:
    path = remote / "status.json"
    path.write_text(json.dumps({"i": -1}))
    m = start(interval=0.01, excludes=["*.tmp"])
    assert m.wait_synced(10)
    stop = threading.Event()
    seen: list[int] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                text = (local / "status.json").read_text()
            except FileNotFoundError:
                bad.append("missing")
                continue
            try:
                seen.append(json.loads(text)["i"])
            except ValueError:
                bad.append(text)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):  # different sizes: a partial file would not parse
            tmp = path.with_name(f".status.json.{i}.tmp")
            tmp.write_text(json.dumps({"i": i, "pad": "p" * (i * 7 % 500)}))
            os.replace(tmp, path)
            if i % 30 == 0:
                time.sleep(0.02)
        assert m.wait_synced(10)
    finally:
        stop.set()
        t.join()
    assert bad == []
    assert json.loads((local / "status.json").read_text())["i"] == 299
    assert len(set(seen)) > 2  # the reader saw it change
    assert not list(local.glob("*.tmp")) and m.stats.errors == 0


def test_deletion(start: Start, remote: Path, local: Path) -> None:
    (remote / "d").mkdir()
    (remote / "d" / "gone").write_text("x")
    (remote / "kept").write_text("y")
    m = start()
    assert m.wait_synced(10)
    assert (local / "d" / "gone").exists()
    (remote / "d" / "gone").unlink()
    assert m.wait_synced(10)
    assert not (local / "d" / "gone").exists()
    assert (local / "kept").read_text() == "y"


def test_exclusions_and_special_files(start: Start, remote: Path, local: Path) -> None:
    (remote / "private").mkdir()
    (remote / "private" / "secret").write_text("s")
    (remote / "c1").mkdir()
    (remote / "c1" / "x.tmp").write_text("t")
    (remote / "c1" / "kept.log").write_text("k")
    os.mkfifo(remote / "c1" / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(remote / "c1" / "p4rt.sock"))
    os.symlink("/etc/hostname", remote / "c1" / "link")
    try:
        m = start(excludes=["private", "*.tmp"])
        assert m.wait_synced(10)
    finally:
        sock.close()
    assert _tree(local) == {"c1/kept.log": b"k"}
    assert m.stats.errors == 0


def test_big_file_is_not_sent_whole(start: Start, remote: Path, local: Path) -> None:
    big = remote / "big.log"
    big.write_bytes(b"z" * 5000)
    m = start(max_full=1000)
    assert m.wait_synced(10)
    assert m.stats.big == 1
    note = (local / "big.log").read_text()
    assert "5000 bytes" in note and "z" not in note
    with big.open("ab") as fh:  # a log over the limit: what it appends still comes
        fh.write(b"tail line\n")
    assert m.wait_synced(10)
    assert (local / "big.log").read_text() == note + "tail line\n"


def test_malformed_frames_are_counted_not_fatal(tmp_path: Path) -> None:
    ap = Applier(tmp_path / "m")
    stream = b"".join([
        b"not json at all\n",
        _frame({"k": "full", "p": "ok.txt"}, b"good"),
        b'{"k": "full", "p": "x", "n": "five"}\n',
        b"[1, 2]\n",
        _frame({"k": "nonsense", "p": "y"}),
        _frame({"k": "append", "p": "ok.txt", "o": "zero"}, b"!"),
        _frame({"k": "full", "p": 7}, b"abc"),
        b'{"k": "full", "p": "huge", "n": 999999999999}\n',
        b"\xff\xfe\n",
        _frame({"k": "append", "p": "ok.txt", "o": 4}, b" more"),
        _frame({"k": "hb", "round": 1, "sync": 3}),
    ])
    ap.feed(io.BytesIO(stream))
    assert (tmp_path / "m" / "ok.txt").read_bytes() == b"good more"
    assert ap.stats.errors == 8
    assert ap.stats.frames == 3 and ap.stats.rounds == 1
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["ok.txt"]
    ap.feed(io.BytesIO(_frame({"k": "full", "p": "cut"}, b"0123456789")[:-4]))
    assert ap.stats.errors == 9 and not (tmp_path / "m" / "cut").exists()
    assert ap.wait_sync(3, 0) and not ap.wait_sync(4, 0)


def test_paths_outside_the_mirror_are_rejected(tmp_path: Path) -> None:
    root, outside = tmp_path / "m", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "link").symlink_to(outside)
    (outside / "victim").write_text("keep")
    ap = Applier(root)
    bad = ["../escape", "/abs/olute", "a/../../escape", "", ".", "a//b", "a/./b",
           "link/victim", "link/new", "x\0y"]
    for p in bad:
        ap.feed(io.BytesIO(_frame({"k": "full", "p": p}, b"evil")))
        ap.feed(io.BytesIO(_frame({"k": "append", "p": p, "o": 0}, b"evil")))
        ap.feed(io.BytesIO(_frame({"k": "delete", "p": p})))
    assert ap.stats.errors == 3 * len(bad) and ap.stats.frames == 0
    assert [p.name for p in outside.iterdir()] == ["victim"]
    assert (outside / "victim").read_text() == "keep"
    assert not (tmp_path / "escape").exists() and not Path("/abs/olute").exists()
    assert sorted(p.name for p in root.iterdir()) == ["link"]


def test_stop_ends_every_process(start: Start, remote: Path) -> None:
    (remote / "f").write_text("x")
    m = start()
    assert m.wait_synced(10)
    server_pid = m.stats.server_pid
    assert server_pid is not None and server_pid != m.proc.pid
    server_start = runstate.proc_start_time(server_pid)
    assert runstate.alive(server_pid, server_start)
    assert m.stop() is not None
    assert not m.alive
    assert not runstate.alive(server_pid, server_start)
    assert not runstate.alive(m.proc.pid, None)
    assert not m.wait_synced(1)  # ended: returns at once
    m.stop()  # twice is fine


def test_overlapping_folders_are_refused(remote: Path) -> None:
    with pytest.raises(ValueError, match="overlap"):
        Mirror.start(LOCAL, remote, remote / "sub")


def _serve(root: Path) -> subprocess.Popen[bytes]:
    argv = servers.command_argv(LOCAL, servers.python_cmd(
        "topologies.mirror", "serve", str(root), "--interval", "0.05"))
    argv[-1] = argv[-1].replace(" && ", " && exec ", 1)  # signal the server itself
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_server_ends_cleanly_on_sigterm(remote: Path) -> None:
    proc = _serve(remote)
    assert proc.stdout is not None and b'"hello"' in proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == b""


def test_server_ends_cleanly_when_stdout_closes(remote: Path) -> None:
    proc = _serve(remote)
    assert proc.stdout is not None and proc.stderr is not None
    assert b'"hello"' in proc.stdout.readline()
    proc.stdout.close()  # stdin stays open: the broken pipe ends it
    assert proc.wait(10) == 0
    assert proc.stderr.read() == b""
    assert proc.stdin is not None
    proc.stdin.close()


def test_request_parsing() -> None:
    buf = bytearray()
    assert mirror._read_requests(buf, b"sync 3\nsync 1") == 3
    assert mirror._read_requests(buf, b"2\njunk\n") == 12
    assert mirror._read_requests(buf, b"sync x\n") is None and buf == b""


def test_module_runs_as_server(remote: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "topologies.mirror", "serve", str(remote)],
                         input=b"", capture_output=True, timeout=30,
                         cwd=servers.REPO, check=True).stdout
    assert out.startswith(b'{"k":"hello"') and b'"k":"hb"' in out  # stdin EOF: it ends
