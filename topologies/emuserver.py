"""A second server emulated on this machine, for trying and testing spread networks.

The emulated server is a network namespace ``dsfcsrv-<name>`` with a veth to this
machine (``srv-<name>`` here, ``eth0`` there; 10.99.<k>.1/24 here, 10.99.<k>.2/24
there; MTU 9000 so that cross-server VXLAN tunnels carry full inner frames) and its
own ``sshd`` (Debian ``openssh-server``: own host key, own client key,
``PermitTunnel yes``, ``UsePAM no``, root login by key only, listening on the
namespace's address only).

It shares this machine's files (the dsfc checkout, FRR, Python) but not dsfc's state:
sshd runs in a private mount namespace with a fresh ``/run`` (so its own run root
``/run/dsfc`` and ``/run/netns``) and bpffs, so what dsfc creates "there" is
invisible here and must be reached over ssh, as on a real second machine.

``python -m topologies.emuserver start NAME [--index K]`` prints the address and the
ssh configuration file to use (``DSFC_SSH_CONFIG``); ``stop NAME`` removes all of it
(its sshd by PID, the namespace, the files). State lives in ``/var/lib/dsfc-emu/<name>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from topologies.runstate import NETNS_DIR, RUN_ROOT, alive, proc_start_time

log = logging.getLogger(__name__)

STATE_ROOT = Path("/var/lib/dsfc-emu")
SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it (made "there")


class EmuServerError(RuntimeError):
    pass


@dataclass
class EmuServer:
    name: str
    index: int
    folder: Path

    @property
    def netns(self) -> str:
        return f"dsfcsrv-{self.name}"

    @property
    def host_iface(self) -> str:
        return f"srv-{self.name}"[:15]

    @property
    def host_address(self) -> str:
        return f"10.99.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.99.{self.index}.2"

    @property
    def ssh_config(self) -> Path:
        return self.folder / "ssh_config"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise EmuServerError(f"'{' '.join(args)}' failed: {(proc.stdout + proc.stderr).strip()}")
    return proc


def _sshd_config(srv: EmuServer) -> str:
    f = srv.folder
    return "\n".join([
        f"ListenAddress {srv.address}", "Port 22",
        f"HostKey {f / 'host_key'}", f"PidFile {f / 'sshd.pid'}",
        f"AuthorizedKeysFile {f / 'authorized_keys'}",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "PermitTunnel yes", "StrictModes no", "UseDNS no", "MaxSessions 200",
        "MaxStartups 200", "AcceptEnv LANG LC_*", "Subsystem sftp internal-sftp", ""])


def _client_config(srv: EmuServer) -> str:
    f = srv.folder
    return "\n".join([
        f"Host {srv.address}", "  User root", f"  IdentityFile {f / 'client_key'}",
        "  IdentitiesOnly yes", f"  UserKnownHostsFile {f / 'known_hosts'}",
        "  StrictHostKeyChecking yes", "  LogLevel ERROR", ""])


def start(name: str, index: int = 1, timeout: float = 10,
          hide: tuple[str, ...] = ()) -> EmuServer:
    """Create the emulated server ``name`` (10.99.<index>.2); EmuServerError if it
    cannot (everything made so far is removed again). ``hide``: programs (``sudo``)
    that the server lacks (an empty, non-executable file over each, there only)."""
    if os.geteuid() != 0:
        raise EmuServerError("emulating a server needs root")
    if not SSHD.exists():
        raise EmuServerError(f"{SSHD} missing: apt install openssh-server (make setup)")
    srv = EmuServer(name, index, STATE_ROOT / name)
    if srv.folder.exists():
        raise EmuServerError(f"emulated server {name} exists ({srv.folder}); "
                             f"python -m topologies.emuserver stop {name}")
    srv.folder.mkdir(parents=True, mode=0o700)
    state: dict[str, object] = {"name": name, "index": index, "netns": srv.netns,
                                "host_iface": srv.host_iface}
    srv.state_file.write_text(json.dumps(state))
    try:
        f = srv.folder
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(f / "host_key"))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(f / "client_key"))
        shutil.copy(f / "client_key.pub", f / "authorized_keys")
        host_pub = (f / "host_key.pub").read_text().split()
        (f / "known_hosts").write_text(f"{srv.address} {host_pub[0]} {host_pub[1]}\n")
        (f / "sshd_config").write_text(_sshd_config(srv))
        srv.ssh_config.write_text(_client_config(srv))
        _run("ip", "netns", "add", srv.netns)
        _run("ip", "link", "add", srv.host_iface, "mtu", "9000", "type", "veth", "peer",
             "name", "eth0", "mtu", "9000", "netns", srv.netns)
        _run("ip", "addr", "add", f"{srv.host_address}/24", "dev", srv.host_iface)
        _run("ip", "link", "set", srv.host_iface, "up")
        ns = ["ip", "netns", "exec", srv.netns]
        _run(*ns, "ip", "addr", "add", f"{srv.address}/24", "dev", "eth0")
        _run(*ns, "ip", "link", "set", "eth0", "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        # sshd in a private mount namespace with its own dsfc state folders
        # (a fresh /run, not tmpfs mounts on /run/dsfc and /run/netns: this machine
        # removing its own empty /run/dsfc would detach a mount there)
        hidden = ""
        if hide:
            (f / "hidden").write_text("")
            (f / "hidden").chmod(0o644)
        for prog in hide:
            path = shutil.which(prog)
            if path is None:
                raise EmuServerError(f"cannot hide {prog}: not on this machine's PATH")
            hidden += f"mount --bind {f / 'hidden'} {Path(path).resolve()} && "
        script = (f"{hidden}mount -t tmpfs -o mode=755 dsfc-emu /run && mkdir -p {PRIVSEP_DIR} "
                  f"{RUN_ROOT} {NETNS_DIR} && mount -t bpf bpf /sys/fs/bpf && "
                  f"exec {SSHD} -D -f {f / 'sshd_config'} -E {f / 'sshd.log'}")
        with open(f / "sshd.out", "ab") as out:
            proc = subprocess.Popen(
                [*ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        state["pid"], state["start"] = proc.pid, proc_start_time(proc.pid)
        srv.state_file.write_text(json.dumps(state))
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                ["ssh", "-F", str(srv.ssh_config), "-o", "BatchMode=yes",
                 "-o", "ConnectTimeout=2", srv.address, "true"],
                capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out_text = (f / "sshd.out").read_text() + _tail(f / "sshd.log")
                raise EmuServerError(f"sshd of emulated server {name} did not answer: "
                                     f"{probe.stderr.strip()} {out_text.strip()}")
            time.sleep(0.1)
    except BaseException:
        stop(name)
        raise
    log.info("emulated server %s at %s (ssh config %s)", name, srv.address, srv.ssh_config)
    return srv


def _tail(path: Path, n: int = 10) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-n:])
    except OSError:
        return ""


def stop(name: str) -> bool:
    """Remove emulated server ``name`` (its sshd and every process in its namespace,
    the namespace, its files). False if there was none."""
    folder = STATE_ROOT / name
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        state = None
    if state is None and not folder.exists():
        return False
    netns = (state or {}).get("netns", f"dsfcsrv-{name}")
    pids: list[int] = []
    if state and state.get("pid") and alive(state["pid"], state.get("start")):
        pids.append(int(state["pid"]))
    if (NETNS_DIR / netns).exists():  # everything still running "on" the server
        out = _run("ip", "netns", "pids", netns, check=False).stdout.split()
        pids += [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while any(alive(p, None) for p in pids) and time.monotonic() < deadline:
            for p in pids:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(p, os.WNOHANG)
            time.sleep(0.05)
    _run("ip", "netns", "del", netns, check=False)
    _run("ip", "link", "del", (state or {}).get("host_iface", f"srv-{name}"[:15]),
         check=False)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        STATE_ROOT.rmdir()
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m topologies.emuserver",
                                description="emulate a second server on this machine")
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start", help="create an emulated server")
    st.add_argument("name")
    st.add_argument("--index", type=int, default=1, help="its address is 10.99.INDEX.2")
    st.add_argument("--hide", action="append", default=[], metavar="PROGRAM",
                    help="a program the server lacks (to try 'servers check')")
    sp = sub.add_parser("stop", help="remove an emulated server")
    sp.add_argument("name")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.cmd == "start":
            srv = start(args.name, args.index, hide=tuple(args.hide))
            print(f"server {srv.name}: address {srv.address}; export "
                  f"DSFC_SSH_CONFIG={srv.ssh_config}")
        elif not stop(args.name):
            print(f"no emulated server {args.name}")
            return 1
    except EmuServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
