"""Gathering the run folder of a remote server into the builder's (issue #15).

The servers of a spread network share nothing: each writes its nodes' logs, stats and
status files into its own run folder, and the builder gathers them. On the server,
``python -m topologies.mirror serve ROOT`` walks ROOT every ``--interval`` and writes the
changes to stdout as a stream of frames; on the builder, :class:`Mirror` runs it (through
ssh, :func:`topologies.servers.command_argv`) and applies the frames under a local folder.

A frame is a JSON header line (``k``: the kind, ``p``: the path relative to ROOT, ``n``:
the length of the payload) followed by ``n`` raw bytes:

- ``full`` (payload: the whole file; ``m``: its mtime in ns): written to a temporary file
  and renamed, so a reader never sees half a file;
- ``append`` (``o``: offset, payload: the bytes from there): a file that only grew, as
  logs do (same inode, larger, the bytes before the old end unchanged);
- ``big`` (``size``, ``limit``; no payload): a file over ``--max-full`` is not copied
  whole: the local file says so and later ``append`` frames continue it;
- ``delete``: the file is gone;
- ``hello`` (``pid`` of the server process), first; ``hb`` (``round``, ``sync``), the
  heartbeat that ends every round.

Sockets, fifos and symbolic links are skipped, and so is whatever matches an
``--exclude`` glob (matched against the relative path and against the name; a matching
folder is skipped whole). A line ``sync N`` on the server's stdin starts a round at once
whose heartbeat carries ``"sync": N`` (:meth:`Mirror.wait_synced`); EOF on stdin, a closed
stdout or SIGTERM end the server.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from topologies import servers
from topologies.servers import ServerSpec

log = logging.getLogger(__name__)

MODULE = "topologies.mirror"
MAX_FULL = 8 << 20  # bytes: larger files are not sent whole
APPEND_CHUNK = 1 << 20  # bytes per append frame
TAIL = 256  # bytes before the old end compared before appending
MAX_HEADER = 64 << 10
MAX_PAYLOAD = 64 << 20


# -- server side ------------------------------------------------------------------------
@dataclass
class _Sent:
    ino: int
    size: int
    mtime_ns: int
    tail: bytes  # the last TAIL bytes sent


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.pread(fd, size - got, offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class Scanner:
    """The server: sends what changed under ``root`` since the last round to ``out``."""

    def __init__(self, root: Path, out: BinaryIO, excludes: Sequence[str] = (),
                 max_full: int = MAX_FULL):
        self.root = root
        self.out = out
        self.excludes = list(excludes)
        self.max_full = max_full
        self.sent: dict[str, _Sent] = {}
        self.rounds = 0
        self._warned: set[str] = set()

    def emit(self, header: dict, data: bytes = b"") -> None:
        header["n"] = len(data)
        self.out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
        if data:
            self.out.write(data)

    def excluded(self, rel: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, g) or fnmatch.fnmatchcase(name, g)
                   for g in self.excludes)

    def walk(self, folder: Path | None = None, prefix: str = "") -> Iterator[
            tuple[str, str, os.stat_result]]:
        """(relative path, path, lstat) of the regular files under ``root``."""
        try:
            entries = list(os.scandir(folder or self.root))
        except OSError:
            return
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if self.excluded(rel, entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(Path(entry.path), f"{rel}/")
            elif stat.S_ISREG(st.st_mode):
                yield rel, entry.path, st

    def send_file(self, rel: str, path: str, prev: _Sent | None) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            if prev is not None and prev.ino == st.st_ino and st.st_size > prev.size and \
                    _pread_all(fd, len(prev.tail), prev.size - len(prev.tail)) == prev.tail:
                size, tail = prev.size, prev.tail
                while size < st.st_size:
                    data = _pread_all(fd, min(APPEND_CHUNK, st.st_size - size), size)
                    if not data:
                        break
                    self.emit({"k": "append", "p": rel, "o": size, "m": st.st_mtime_ns},
                              data)
                    size += len(data)
                    tail = (tail + data)[-TAIL:]
            elif st.st_size > self.max_full:
                self.emit({"k": "big", "p": rel, "size": st.st_size, "limit": self.max_full})
                size = st.st_size
                tail = _pread_all(fd, min(TAIL, size), size - min(TAIL, size))
            else:
                data = _pread_all(fd, st.st_size, 0)
                self.emit({"k": "full", "p": rel, "m": st.st_mtime_ns}, data)
                size, tail = len(data), data[-TAIL:]
            self.sent[rel] = _Sent(st.st_ino, size, st.st_mtime_ns, tail)
        finally:
            os.close(fd)

    def round(self, sync: int | None = None) -> None:
        seen: set[str] = set()
        for rel, path, st in self.walk():
            seen.add(rel)
            prev = self.sent.get(rel)
            if prev is not None and (prev.ino, prev.size, prev.mtime_ns) == (
                    st.st_ino, st.st_size, st.st_mtime_ns):
                continue
            try:
                self.send_file(rel, path, prev)
            except FileNotFoundError:
                seen.discard(rel)
            except OSError as exc:
                if rel not in self._warned:
                    self._warned.add(rel)
                    log.warning("cannot read %s: %s", path, exc)
        for rel in sorted(set(self.sent) - seen):
            del self.sent[rel]
            self.emit({"k": "delete", "p": rel})
        self.rounds += 1
        self.emit({"k": "hb", "round": self.rounds, "sync": sync, "t": time.time(),
                   "files": len(self.sent)})
        self.out.flush()


def _read_requests(buf: bytearray, data: bytes) -> int | None:
    """Add ``data`` from stdin to ``buf``; the highest ``sync N`` of its whole lines."""
    buf += data
    *lines, rest = bytes(buf).split(b"\n")
    buf[:] = rest
    syncs = [int(w[1]) for ln in lines if len(w := ln.split()) == 2 and w[0] == b"sync"
             and w[1].isdigit()]
    return max(syncs) if syncs else None


def serve(root: Path, interval: float, excludes: Sequence[str], max_full: int) -> int:
    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    scanner = Scanner(root, sys.stdout.buffer, excludes, max_full)
    inbuf = bytearray()
    sync: int | None = None
    try:
        scanner.emit({"k": "hello", "pid": os.getpid(), "root": str(root)})
        while True:
            scanner.round(sync)
            sync = None
            deadline = time.monotonic() + interval
            while sync is None and (left := deadline - time.monotonic()) > 0:
                if not select.select([0], [], [], left)[0]:
                    continue
                data = os.read(0, 4096)
                if not data:
                    return 0  # the client has gone
                sync = _read_requests(inbuf, data)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        # nothing more may reach a closed stdout (not even the flush at exit)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    return 0


# -- client side ------------------------------------------------------------------------
class FrameError(ValueError):
    """A frame that cannot be applied (malformed, or a path outside the local root)."""


@dataclass
class MirrorStats:
    frames: int = 0  # frames applied
    bytes: int = 0  # payload bytes applied
    errors: int = 0  # frames dropped (malformed, bad path, write failed)
    rounds: int = 0  # heartbeats received
    big: int = 0  # files not copied whole (over the size limit)
    last_heartbeat: float | None = None  # time.monotonic() of the last heartbeat
    last_error: str = ""
    server_pid: int | None = None
    _sync: int = field(default=0, repr=False)


class Applier:
    """Applies frames under ``root``; never writes outside it."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.stats = MirrorStats()
        self.cond = threading.Condition()
        self.reading = False
        self._base: dict[str, int] = {}  # files not copied from the start: skipped bytes

    def target(self, rel: object) -> Path:
        if not isinstance(rel, str) or not rel or "\0" in rel:
            raise FrameError(f"bad path {rel!r}")
        parts = rel.split("/")
        if PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
            raise FrameError(f"path outside the mirror: {rel!r}")
        path = self.root.joinpath(*parts)
        real = os.path.realpath(path.parent)  # a symbolic link must not lead out
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise FrameError(f"path outside the mirror: {rel!r}")
        return path

    def _replace(self, path: Path, data: bytes, mtime_ns: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.mirror.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            if isinstance(mtime_ns, int):
                os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def apply(self, h: dict, data: bytes) -> None:
        """Apply one frame (header ``h``, payload ``data``); FrameError or OSError if it
        cannot be."""
        kind = h.get("k")
        if kind == "hb":
            with self.cond:
                self.stats.rounds += 1
                self.stats.last_heartbeat = time.monotonic()
                if isinstance(h.get("sync"), int):
                    self.stats._sync = max(self.stats._sync, h["sync"])
                self.cond.notify_all()
        elif kind == "hello":
            self.stats.server_pid = h.get("pid") if isinstance(h.get("pid"), int) else None
        elif kind == "full":
            path = self.target(h.get("p"))
            self._replace(path, data, h.get("m"))
            self._base.pop(h["p"], None)
        elif kind == "append":
            path, off = self.target(h.get("p")), h.get("o")
            if not isinstance(off, int) or off - self._base.get(h["p"], 0) < 0:
                raise FrameError(f"bad offset {off!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
            try:
                os.pwrite(fd, data, off - self._base.get(h["p"], 0))
            finally:
                os.close(fd)
            if isinstance(h.get("m"), int):
                os.utime(path, ns=(h["m"], h["m"]))
        elif kind == "big":
            path, size = self.target(h.get("p")), h.get("size")
            if not isinstance(size, int) or size < 0:
                raise FrameError(f"bad size {size!r}")
            note = (f"[dsfc mirror: the first {size} bytes of this file were not copied "
                    f"(over the limit of {h.get('limit')} bytes)]\n").encode()
            self._replace(path, note, None)
            self._base[h["p"]] = size - len(note)
            self.stats.big += 1
        elif kind == "delete":
            path = self.target(h.get("p"))
            path.unlink(missing_ok=True)
            self._base.pop(h["p"], None)
        else:
            raise FrameError(f"unknown frame kind {kind!r}")
        self.stats.frames += 1
        self.stats.bytes += len(data)

    def _error(self, msg: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = msg
        log.debug("mirror into %s: dropped a frame: %s", self.root, msg)

    def feed(self, stream: BinaryIO) -> None:
        """Read and apply frames from ``stream`` until its end (bad frames are dropped
        and counted)."""
        self.reading = True
        try:
            while True:
                line = stream.readline(MAX_HEADER)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    self._error("header without end of line")
                    continue
                try:
                    h = json.loads(line)
                    if not isinstance(h, dict):
                        raise ValueError("not an object")
                    n = h.get("n", 0)
                    if not isinstance(n, int) or not 0 <= n <= MAX_PAYLOAD:
                        raise ValueError(f"bad length {n!r}")
                except ValueError as exc:
                    self._error(f"malformed header {line[:80]!r}: {exc}")
                    continue
                data = stream.read(n) if n else b""
                if len(data) != n:
                    self._error("stream ended inside a frame")
                    return
                try:
                    self.apply(h, data)
                except (FrameError, OSError) as exc:
                    self._error(str(exc))
        finally:
            with self.cond:
                self.reading = False
                self.cond.notify_all()

    def wait_sync(self, sync: int, timeout: float) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.stats._sync >= sync or not self.reading,
                               timeout)
            return self.stats._sync >= sync


class Mirror:
    """A running ``serve`` on ``server`` and the thread applying its frames."""

    def __init__(self, server: ServerSpec, remote_root: Path, local_root: Path,
                 proc: subprocess.Popen[bytes], applier: Applier):
        self.server = server
        self.remote_root = remote_root
        self.local_root = local_root
        self.proc = proc
        self.applier = applier
        self._sync = 0
        self._lock = threading.Lock()
        assert proc.stdout is not None and proc.stderr is not None
        self._reader = threading.Thread(target=applier.feed, args=(proc.stdout,),
                                        name=f"mirror-{server.name}", daemon=True)
        self._errors = threading.Thread(target=self._log_stderr, args=(proc.stderr,),
                                        name=f"mirror-{server.name}-stderr", daemon=True)
        applier.reading = True  # before the thread runs: wait_synced must not see "ended"
        self._reader.start()
        self._errors.start()

    @classmethod
    def start(cls, server: ServerSpec, remote_root: str | os.PathLike[str],
              local_root: str | os.PathLike[str], interval: float = 0.2,
              excludes: Sequence[str] = (), max_full: int = MAX_FULL) -> Mirror:
        """Mirror ``remote_root`` of ``server`` into ``local_root`` (created)."""
        remote, local = Path(remote_root), Path(local_root)
        if server.local:
            r, lo = remote.resolve(), local.resolve()
            if r == lo or r in lo.parents or lo in r.parents:
                raise ValueError(f"mirror of {remote} into {local}: the folders overlap")
        applier = Applier(local)
        words = ["serve", str(remote), "--interval", f"{interval:g}",
                 "--max-full", str(max_full)]
        for g in excludes:
            words += ["--exclude", g]
        argv = servers.command_argv(server, servers.python_cmd(MODULE, *words))
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        return cls(server, remote, local, proc, applier)

    def _log_stderr(self, stream: BinaryIO) -> None:
        for line in stream:
            text = line.decode(errors="replace").rstrip()
            if text:
                log.warning("mirror of %s on %s: %s", self.remote_root, self.server, text)

    @property
    def stats(self) -> MirrorStats:
        return self.applier.stats

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self._reader.is_alive()

    def wait_synced(self, timeout: float = 10) -> bool:
        """Wait until a round that started after this call has been applied (the local
        folder then has every change made on the server before the call); False if the
        mirror has ended or ``timeout`` passed first."""
        with self._lock:
            self._sync += 1
            sync = self._sync
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(f"sync {sync}\n".encode())
                self.proc.stdin.flush()
            except (OSError, ValueError):
                return False
        return self.applier.wait_sync(sync, timeout)

    def stop(self, timeout: float = 5) -> int | None:
        """End the server (EOF on its stdin, then SIGTERM, then SIGKILL) and the reader;
        the exit status of the local process (ssh, or the shell of a local server)."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self._signal(sig)
            try:
                self.proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(timeout)
        self._errors.join(timeout)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.server.local:  # the shell and the server: a session of their own
                os.killpg(self.proc.pid, sig)
            else:  # ssh only (never its multiplexing master)
                self.proc.send_signal(sig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                description="stream the changes of a folder (server side)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve", help="write the changes under ROOT to stdout as frames")
    sp.add_argument("root", type=Path)
    sp.add_argument("--interval", type=float, default=0.2, help="seconds between rounds")
    sp.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    sp.add_argument("--max-full", type=int, default=MAX_FULL,
                    help="larger files are not sent whole (only what is appended)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    return serve(args.root, args.interval, args.exclude, args.max_full)


if __name__ == "__main__":
    raise SystemExit(main())
