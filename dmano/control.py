"""The D-MANO's control protocol, client side (the scenario runner and the CLI use it).

The daemon serves a unix stream socket (mode 0600; ``control_socket`` in the node
configuration, default ``dmano.sock`` beside the status file). One request per line,
one JSON object each, answered by one JSON line; a connection may carry several::

    -> {"cmd": "drain", "instance": "fw_b", "force": false}
    <- {"ok": true, "node": "B", "instance": "fw_b", "state": "draining",
        "changed": true, "message": "instance fw_b is draining: ..."}
    -> {"cmd": "drain", "instance": "fw_x"}
    <- {"ok": false, "error": "unknown instance 'fw_x' on this node (known: fw_b)",
        "known": ["fw_b"]}

``cmd`` is ``drain`` | ``undrain`` | ``status``; ``instance`` is required for drain and
undrain and optional for status (which then answers for every local instance:
``{"ok": true, "node", "instances": {name: {"up", "state", "reason", "pid"}}}``);
``force`` (drain only) drains the last instance of a service taking new flows. Any
malformed request gets ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

COMMANDS = ("drain", "undrain", "status")
MAX_LINE = 64 * 1024


class ControlError(RuntimeError):
    """No answer from the D-MANO's control socket (not running, timeout, garbage)."""


class RequestError(ValueError):
    """A malformed control request (the server answers it with ``ok: false``)."""


def parse_request(line: bytes) -> tuple[str, str | None, bool]:
    """(cmd, instance, force) of one request line; RequestError if it is malformed."""
    try:
        req = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"not JSON: {exc}") from None
    if not isinstance(req, dict):
        raise RequestError("a request is a JSON object {\"cmd\": ..., \"instance\": ...}")
    unknown = sorted(set(req) - {"cmd", "instance", "force"})
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(str, unknown))} "
                           f"(allowed: cmd, instance, force)")
    cmd = req.get("cmd")
    if cmd not in COMMANDS:
        raise RequestError(f"cmd: expected one of {', '.join(COMMANDS)}, got {cmd!r}")
    instance = req.get("instance")
    if instance is not None and (not isinstance(instance, str) or not instance):
        raise RequestError(f"instance: expected a name, got {instance!r}")
    if instance is None and cmd != "status":
        raise RequestError(f"{cmd}: instance is required")
    force = req.get("force", False)
    if not isinstance(force, bool):
        raise RequestError(f"force: expected true or false, got {force!r}")
    return cmd, instance, force


def request(socket_path: str | Path, cmd: str, instance: str | None = None,
            force: bool = False, timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the D-MANO at ``socket_path`` and return its answer (a dict
    with ``ok``; ``error`` when not ok). Raises ControlError when nobody answers."""
    msg: dict[str, Any] = {"cmd": cmd}
    if instance is not None:
        msg["instance"] = instance
    if force:
        msg["force"] = True
    path = str(socket_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_LINE:
                    raise ControlError(f"{path}: answer longer than {MAX_LINE} bytes")
    except FileNotFoundError:
        raise ControlError(f"no control socket {path}: is the D-MANO running?") from None
    except ConnectionRefusedError:
        raise ControlError(f"nobody listens on {path}: the D-MANO is not running "
                           f"(stale socket)") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: not a JSON answer: {data[:200]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise ControlError(f"{path}: unexpected answer {answer!r}")
    return answer
