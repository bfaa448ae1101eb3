"""The D-MANO's control socket, server side (protocol: :mod:`dmano.control`).

:class:`ControlServer` listens on a unix socket (mode 0600), reads one JSON request per
line and hands it to a :class:`ControlHandler` (the daemon). A malformed request, a
line too long or a handler error is answered with ``{"ok": false, "error": ...}``; the
server itself never stops on one. The socket file is removed when the server closes. A
socket file left by a dead D-MANO is replaced; one that answers is another D-MANO's and
the server refuses to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Protocol

from dmano.control import MAX_LINE, RequestError, parse_request

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 60.0


class ControlHandler(Protocol):
    async def control(self, cmd: str, instance: str | None, force: bool) -> dict[str, Any]:
        """Do one request; return the answer (with ``ok``)."""
        ...


class SocketInUseError(RuntimeError):
    pass


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class ControlServer:
    def __init__(self, path: Path, handler: ControlHandler) -> None:
        self.path = path
        self.handler = handler
        self.requests = 0
        self.errors = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if _in_use(self.path):
                raise SocketInUseError(f"{self.path}: another D-MANO answers on this "
                                       f"control socket")
            log.info("removing the stale control socket %s", self.path)
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("control socket %s", self.path)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
                except (ValueError, asyncio.LimitOverrunError):
                    await self._send(writer, self._error(
                        f"request longer than {MAX_LINE} bytes"))
                    break
                except TimeoutError:
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await self._send(writer, await self.answer(line))
        except (ConnectionError, OSError) as exc:
            log.debug("control client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line (never raises)."""
        self.requests += 1
        try:
            cmd, instance, force = parse_request(line)
        except RequestError as exc:
            return self._error(f"bad request: {exc}")
        try:
            return await self.handler.control(cmd, instance, force)
        except Exception as exc:
            log.exception("control request %s %s failed", cmd, instance)
            return self._error(f"{cmd} failed: {type(exc).__name__}: {exc}")

    def _error(self, message: str) -> dict[str, Any]:
        self.errors += 1
        return {"ok": False, "error": message}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        writer.write(json.dumps(answer, sort_keys=True).encode() + b"\n")
        await writer.drain()
