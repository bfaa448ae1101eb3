"""The control protocol (dmano/control.py) and its server (dmano/control_server.py)
with a stub handler: good and malformed requests, socket mode and cleanup, stale and
busy sockets, and the client's errors."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dmano.control import ControlError, RequestError, parse_request, request
from dmano.control_server import ControlServer, SocketInUseError
from tests.unit.dmano_helpers import short_dir


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_dir() as d:
        yield d


class Stub:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, bool]] = []

    async def control(self, cmd: str, instance: str | None, force: bool) -> dict[str, Any]:
        self.calls.append((cmd, instance, force))
        if instance == "boom":
            raise RuntimeError("handler bug")
        return {"ok": True, "node": "B", "instance": instance, "state": "draining"}


@pytest.mark.parametrize("line, expected", [
    (b'{"cmd": "drain", "instance": "fw", "force": true}', ("drain", "fw", True)),
    (b'{"cmd": "undrain", "instance": "fw"}', ("undrain", "fw", False)),
    (b'{"cmd": "status"}', ("status", None, False)),
])
def test_parse_good(line: bytes, expected: tuple[str, str | None, bool]) -> None:
    assert parse_request(line) == expected


@pytest.mark.parametrize("line, words", [
    (b"", "not JSON"),
    (b"\xff", "not JSON"),
    (b"42", "a request is a JSON object"),
    (b'{"cmd": "kill", "instance": "x"}', "cmd: expected one of"),
    (b'{"cmd": null}', "cmd: expected one of"),
    (b'{"cmd": "drain"}', "drain: instance is required"),
    (b'{"cmd": "drain", "instance": ""}', "instance: expected a name"),
    (b'{"cmd": "drain", "instance": 7}', "instance: expected a name"),
    (b'{"cmd": "drain", "instance": "x", "force": 1}', "force: expected true or false"),
    (b'{"cmd": "status", "what": 1}', "unknown field(s) what"),
])
def test_parse_malformed(line: bytes, words: str) -> None:
    with pytest.raises(RequestError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_request(line)


def test_server_answers_and_cleans_up(folder: Path) -> None:
    path = folder / "dmano.sock"
    stub = Stub()

    async def main() -> None:
        srv = ControlServer(path, stub)
        await srv.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        ans = await asyncio.to_thread(request, path, "drain", "fw", True)
        assert ans == {"ok": True, "node": "B", "instance": "fw", "state": "draining"}
        bug = await asyncio.to_thread(request, path, "undrain", "boom")
        assert not bug["ok"] and "handler bug" in bug["error"]
        bad = await asyncio.to_thread(_raw, path, b'{"cmd": 1}\n')
        assert bad.startswith(b'{"error": "bad request: cmd: expected one of')
        # a busy socket is refused, not stolen
        with pytest.raises(SocketInUseError):
            await ControlServer(path, stub).start()
        await srv.close()
        assert srv.requests == 3 and srv.errors == 2

    asyncio.run(main())
    assert stub.calls == [("drain", "fw", True), ("undrain", "boom", False)]
    assert not path.exists()


def _raw(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def test_stale_socket_is_replaced(folder: Path) -> None:
    path = folder / "dmano.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens

    async def main() -> None:
        srv = ControlServer(path, Stub())
        await srv.start()
        ans = await asyncio.to_thread(request, path, "status")
        assert ans["ok"]
        await srv.close()

    asyncio.run(main())


def test_client_errors(folder: Path) -> None:
    with pytest.raises(ControlError, match=r"no control socket .* is the D-MANO running"):
        request(folder / "none.sock", "status")
    stale = folder / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    with pytest.raises(ControlError, match="nobody listens"):
        request(stale, "status")
    # a server that accepts and never answers
    mute = folder / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(str(mute))
        srv.listen()
        with pytest.raises(ControlError, match=r"no answer within 0\.1 s"):
            request(mute, "status", timeout=0.1)
