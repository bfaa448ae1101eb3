"""Process helpers shared by every package that starts processes: stop one politely
(SIGTERM, wait, then SIGKILL) and wait for a file or socket that a process creates
while making sure it is still alive."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ProcessDiedError(RuntimeError):
    """The process exited before it created what we waited for."""


def terminate(proc: subprocess.Popen, grace_s: float = 5.0,
              sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` (SIGTERM), wait ``grace_s``, then SIGKILL; reap it; return its exit
    code. Safe to call on a process that has already exited."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            proc.wait()
    return proc.returncode


def wait_for_path(path: Path, timeout_s: float, *, alive: Callable[[], bool] | None = None,
                  what: str = "", poll_s: float = 0.05) -> None:
    """Wait until ``path`` exists. Raise :class:`ProcessDiedError` as soon as ``alive()``
    says the creating process is gone, TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    label = what or str(path)
    while not path.exists():
        if alive is not None and not alive():
            raise ProcessDiedError(f"{label}: the process exited before {path} appeared")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: no {path} within {timeout_s:g} s")
        time.sleep(poll_s)


def popen_alive(proc: subprocess.Popen) -> Callable[[], bool]:
    """An ``alive`` callable for :func:`wait_for_path` (it also reaps the process)."""
    return lambda: proc.poll() is None
