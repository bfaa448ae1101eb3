"""The servers of a spread network (topology ``servers:``) and how dsfc reaches them.

A server is a machine that holds some NFV nodes. The one at ``localhost`` is the
machine running the builder; every other one is reached with ``ssh`` as its ``user``
(root by default, key-based, no password: ``BatchMode``). dsfc runs the same
checkout at the same absolute path on every server (``python -m topologies servers
check`` verifies it), so a remote command is this interpreter (:data:`sys.executable`)
with ``-m`` and a module of ours, run from :data:`REPO`.

ssh options come from the user's ssh configuration (``~/.ssh/config`` of root), or
from the file named by ``DSFC_SSH_CONFIG`` (given to every ssh as ``-F``: the tests
use it for their emulated servers). Connections to a server are multiplexed over one
master connection (``ControlMaster``) whose socket lives in :data:`CONTROL_DIR`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SSH_CONFIG_ENV = "DSFC_SSH_CONFIG"
CONTROL_DIR = Path("/run/dsfc-ssh")
LOCAL_ADDRESSES = ("localhost", "127.0.0.1")
CONNECT_TIMEOUT_S = 5


class ServerError(RuntimeError):
    """A server cannot be reached or a command on it failed (the message names it)."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    address: str  # host name or IPv4 address; "localhost": the builder's machine
    user: str = "root"

    @property
    def local(self) -> bool:
        return self.address in LOCAL_ADDRESSES

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.address}"

    def __str__(self) -> str:
        return self.name if self.local else f"{self.name} ({self.destination})"


def ssh_config() -> Path | None:
    value = os.environ.get(SSH_CONFIG_ENV)
    return Path(value) if value else None


def ssh_options() -> list[str]:
    """ssh options (before the destination) shared by every connection of dsfc."""
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={CONTROL_DIR}/%C",
            "-o", "ControlPersist=60", "-o", "LogLevel=ERROR",
            "-o", "StreamLocalBindUnlink=yes"]
    cfg = ssh_config()
    if cfg is not None:
        opts = ["-F", str(cfg), *opts]
    return opts


def ssh_argv(server: ServerSpec) -> list[str]:
    """``ssh ... user@address`` (a command string follows as its last argument)."""
    CONTROL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ["ssh", *ssh_options(), server.destination]


def command_argv(server: ServerSpec, cmd: str) -> list[str]:
    """The argv that runs shell command ``cmd`` on ``server`` (as root there)."""
    if server.local:
        return ["sh", "-c", cmd]
    if server.user != "root":
        cmd = f"sudo -n sh -c {shlex.quote(cmd)}"
    return [*ssh_argv(server), cmd]


def python_cmd(module: str, *args: str) -> str:
    """Shell command running ``python -m module args`` of this checkout on a server."""
    words = [sys.executable, "-m", module, *args]
    return f"cd {shlex.quote(str(REPO))} && " + " ".join(shlex.quote(w) for w in words)


def run(server: ServerSpec, cmd: str, timeout: float = 30, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run shell command ``cmd`` on ``server``; with ``check``, a failure (or ssh not
    connecting) raises :class:`ServerError` naming the server, the command and its
    output."""
    argv = command_argv(server, cmd)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None
                              else subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise ServerError(f"server {server}: '{cmd}' did not finish within "
                          f"{timeout:g} s") from None
    if check and proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode == 255 and not server.local:
            raise ServerError(f"server {server}: ssh failed: {out or 'no output'}")
        raise ServerError(f"server {server}: '{cmd}' failed (exit {proc.returncode}): "
                          f"{out or 'no output'}")
    return proc


def write_file(server: ServerSpec, path: Path, text: str, mode: int | None = None) -> None:
    """Write ``path`` on ``server`` atomically (its folder is created)."""
    if server.local:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
        return
    p, tmp = shlex.quote(str(path)), shlex.quote(str(path) + ".tmp")
    chmod = f" && chmod {mode:o} {tmp}" if mode is not None else ""
    run(server, f"mkdir -p {shlex.quote(str(path.parent))} && cat > {tmp}{chmod} && "
                f"mv -f {tmp} {p}", input=text)


def read_file(server: ServerSpec, path: Path, timeout: float = 10) -> str | None:
    """The text of ``path`` on ``server``, or None if it does not exist."""
    if server.local:
        try:
            return path.read_text()
        except OSError:
            return None
    q = shlex.quote(str(path))
    proc = run(server, f"test -f {q} || exit 3; cat {q}", timeout, check=False)
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        raise ServerError(f"server {server}: cannot read {path}: "
                          f"{(proc.stdout + proc.stderr).strip()}")
    return proc.stdout


def close_master(server: ServerSpec) -> None:
    """End the multiplexing master connection to ``server`` (if one runs)."""
    if server.local:
        return
    subprocess.run(["ssh", *ssh_options(), "-O", "exit", server.destination],
                   capture_output=True, timeout=10, check=False)


def clean_remote(server: ServerSpec, run_id: str, timeout: float = 120) -> str | None:
    """Clean run ``run_id``'s part on ``server`` (its own registry there); None, or
    what went wrong."""
    try:
        run(server, python_cmd("topologies.runstate", "--run", run_id, "--force"),
            timeout=timeout)
    except ServerError as exc:
        return str(exc)
    return None


def push(server: ServerSpec, root: Path, relpaths: list[str], timeout: float = 60) -> None:
    """Copy files or folders ``relpaths`` under ``root`` to the same paths on
    ``server`` (tar over ssh; owners and modes kept)."""
    if server.local or not relpaths:
        return
    tar = subprocess.Popen(["tar", "-C", str(root), "-cf", "-", "--", *relpaths],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    q = shlex.quote(str(root))
    try:
        proc = subprocess.run(command_argv(server, f"mkdir -p {q} && tar -C {q} -xpf -"),
                              stdin=tar.stdout, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        tar.kill()
        raise ServerError(f"server {server}: copying {', '.join(relpaths)} did not finish "
                          f"within {timeout:g} s") from None
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar_err = tar.communicate(timeout=timeout)[1]
    if tar.returncode != 0 or proc.returncode != 0:
        raise ServerError(f"server {server}: copying {', '.join(relpaths)} failed: "
                          f"{tar_err.decode(errors='replace').strip()} "
                          f"{(proc.stdout + proc.stderr).strip()}")


def forward_socket(server: ServerSpec, local: Path, remote: Path) -> None:
    """Make unix socket ``remote`` on ``server`` reachable at ``local`` here, through
    the master connection (it ends with it)."""
    if server.local:
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["ssh", *ssh_options(), "-O", "forward", "-L",
                           f"{local}:{remote}", server.destination],
                          capture_output=True, text=True, timeout=15, check=False)
    if proc.returncode != 0:
        raise ServerError(f"server {server}: forwarding {remote}: "
                          f"{(proc.stdout + proc.stderr).strip()}")
