"""Run folders and the registry of everything a run creates, and the cleanup.

Every bring-up gets a run folder ``/run/dsfc/<run id>/`` with ``registry.json``. A
resource is recorded *before* it is created (an intent log), so a builder killed at
any point (even with SIGKILL) leaves a registry that names everything it may have
made. :func:`clean` reads the registries and removes exactly those things:

- network namespaces (named ``dsfc-<run id>-<node>``): every process inside them is
  ended by PID (these are processes this project started in its own namespaces),
  then the namespace is deleted, which also deletes its veths;
- bpffs pin folders (``/sys/fs/bpf/dsfc/<run id>``);
- processes recorded by PID (checked against their recorded start time, so a reused
  PID is never touched);
- FRR crash-log folders of the daemons that were ended (``/var/tmp/frr/<d>.<pid>``);
- the run folder itself, and after the last run the tmpfs mounted for the run folders
  (:mod:`topologies.runroot`).

Nothing else on the host is touched: no other namespace, bridge or process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topologies import runroot

log = logging.getLogger(__name__)

RUN_ROOT = Path(os.environ.get("DSFC_RUN_ROOT", "/run/dsfc"))
BPF_ROOT = Path("/sys/fs/bpf/dsfc")
NETNS_DIR = Path("/run/netns")
NS_PREFIX = "dsfc-"
CRASHLOG_ROOT = Path("/var/tmp/frr")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (/proc/PID/stat field 22)."""
    rest = _stat(pid)
    return int(rest[19]) if rest else None


DEAD_STATES = ("Z", "X", "x")  # zombie (exited, not reaped yet), dead


def alive(pid: int, start_time: int | None) -> bool:
    """The process ``pid`` (started at ``start_time``, if given) still runs.

    A zombie is dead: it has exited and only waits for its parent (or PID 1, which
    reaps orphans slowly on these machines) to collect its exit status."""
    rest = _stat(pid)
    if rest is None or (rest[0] in DEAD_STATES and not _threads_running(pid)):
        return False
    return start_time is None or int(rest[19]) == start_time


def _threads_running(pid: int) -> bool:
    """Another thread of ``pid`` still runs. The first thread of a process shows Z as
    soon as it has exited on its own (pthread_exit, or first in a group exit) while the
    others still run: such a process can still write files (FRR's crash-log folder)."""
    try:
        tasks = [t.name for t in Path(f"/proc/{pid}/task").iterdir() if t.name != str(pid)]
    except OSError:
        return False
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:][:1] not in DEAD_STATES:
            return True
    return False


@dataclass
class Registry:
    run_id: str
    folder: Path
    owner_pid: int = 0
    owner_start: int | None = None
    topology: str = ""
    namespaces: list[str] = field(default_factory=list)
    bpf_dirs: list[str] = field(default_factory=list)
    processes: list[dict] = field(default_factory=list)  # {pid, start, name}
    cgroup_dirs: list[str] = field(default_factory=list)  # CPU limits (topologies.cgroups)
    # other servers with a part of this run (spread networks): {name, address, user}
    servers: list[dict] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder / "registry.json"

    def save(self) -> None:
        data = {
            "run_id": self.run_id, "owner_pid": self.owner_pid,
            "owner_start": self.owner_start, "topology": self.topology,
            "namespaces": self.namespaces, "bpf_dirs": self.bpf_dirs,
            "processes": self.processes, "cgroup_dirs": self.cgroup_dirs,
            "servers": self.servers,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, folder: Path) -> Registry:
        try:
            data = json.loads((folder / "registry.json").read_text())
        except (OSError, ValueError):
            data = {}
        return cls(
            run_id=data.get("run_id", folder.name), folder=folder,
            owner_pid=data.get("owner_pid", 0), owner_start=data.get("owner_start"),
            topology=data.get("topology", ""), namespaces=data.get("namespaces", []),
            bpf_dirs=data.get("bpf_dirs", []), processes=data.get("processes", []),
            cgroup_dirs=data.get("cgroup_dirs", []), servers=data.get("servers", []),
        )

    # -- recording -------------------------------------------------------------------
    def namespace_name(self, node: str) -> str:
        return f"{NS_PREFIX}{self.run_id}-{node}"

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def add_bpf_dir(self, path: Path) -> None:
        self.bpf_dirs.append(str(path))
        self.save()

    def add_cgroup_dir(self, path: Path) -> None:
        self.cgroup_dirs.append(str(path))
        self.save()

    def add_process(self, pid: int, name: str, crashlog: Path | None = None) -> None:
        """``crashlog``: an FRR daemon's crash-log folder (:func:`frr_crashlog_dir`)."""
        entry: dict[str, Any] = {"pid": pid, "start": proc_start_time(pid), "name": name}
        if crashlog is not None:
            entry["crashlog"] = str(crashlog)
        self.processes.append(entry)
        self.save()

    def add_server(self, name: str, address: str, user: str,
                   nodes: list[str] | None = None) -> None:
        self.servers.append({"name": name, "address": address, "user": user,
                             "nodes": list(nodes or [])})
        self.save()

    def server_of(self, node: str) -> dict | None:
        """The other server (its entry) that holds NFV node ``node``, if any."""
        return next((s for s in self.servers if node in s.get("nodes", [])), None)

    def owner_alive(self) -> bool:
        return bool(self.owner_pid) and alive(self.owner_pid, self.owner_start)


def ensure_bpffs() -> None:
    """Mount the BPF filesystem on /sys/fs/bpf if it is not mounted yet."""
    mounts = Path("/proc/mounts").read_text().split("\n")
    if any(ln.split()[1:3] == ["/sys/fs/bpf", "bpf"] for ln in mounts if ln):
        return
    subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True,
                   capture_output=True)


def new_run(topology: str = "") -> Registry:
    """Create a run folder and its registry, owned by this process (the root in memory:
    :mod:`topologies.runroot`)."""
    run_id = time.strftime("%m%d%H%M%S") + secrets.token_hex(2)
    folder = RUN_ROOT / run_id
    with runroot.locked(RUN_ROOT):
        runroot.ensure(RUN_ROOT)
        folder.mkdir(mode=0o755)
    reg = Registry(run_id=run_id, folder=folder, owner_pid=os.getpid(),
                   owner_start=proc_start_time(os.getpid()), topology=topology)
    reg.save()
    return reg


def list_runs() -> list[Registry]:
    if not RUN_ROOT.is_dir():
        return []
    return [Registry.load(p) for p in sorted(RUN_ROOT.iterdir()) if p.is_dir()]


def frr_crashlog_dir(pid: int, daemon: str = "", wait_s: float = 1.0) -> Path | None:
    """The crash-log folder of FRR daemon ``pid`` (/var/tmp/frr/<daemon>.<pid0>/).

    Its name has the PID the daemon had before it daemonized (``-d`` forks), not the one
    in its pid file: the folder is the one the daemon holds open or, failing that (seen
    just after a start), the one of ``daemon``'s with a log buffer of its main thread
    (``logbuf.<pid>``)."""
    if not CRASHLOG_ROOT.is_dir():
        return None  # an FRR that keeps its crash logs elsewhere: nothing to wait for
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = Path(os.readlink(fd))
            except OSError:
                continue
            if target.parent == CRASHLOG_ROOT:
                return target
            if target.parent.parent == CRASHLOG_ROOT:  # a log buffer file in it
                return target.parent
        if daemon:
            found = crashlog_dir_by_buffer(daemon, pid)
            if found is not None:
                return found
        if time.monotonic() >= deadline or not alive(pid, None):
            return None
        time.sleep(0.02)


def crashlog_dir_by_buffer(daemon: str, pid: int) -> Path | None:
    """The folder of ``daemon`` that holds the log buffer of thread ``pid`` (PIDs wrap
    around: of several, the one written last)."""
    found: tuple[float, Path] | None = None
    for buf in CRASHLOG_ROOT.glob(f"{daemon}.*/logbuf.{pid}"):
        try:
            mtime = buf.stat().st_mtime
        except OSError:
            continue
        if found is None or mtime > found[0]:
            found = (mtime, buf.parent)
    return found[1] if found else None


def remove_crashlog_dir(daemon: str, pid: int) -> None:
    """Remove the crash-log folder of an FRR process that ran without ``-d`` (a config dry
    run): /var/tmp/frr/<daemon>.<pid>/, empty or with its own log buffers only. A folder
    of that name holding anything else is another daemon's (PIDs wrap around; a daemon's
    folder has its PID before it forked): left alone."""
    folder = CRASHLOG_ROOT / f"{daemon}.{pid}"
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    if any(e.name != f"logbuf.{pid}" for e in entries):
        return
    shutil.rmtree(folder, ignore_errors=True)


def remove_crashlog_dirs(folders: set[tuple[Path, int]], wait_s: float = 5.0) -> None:
    """Remove the crash-log folders of these ended FRR daemons (folder, daemon PID). A
    daemon still finishing its exit (a thread writing its log buffer) could add a file
    while the folder is removed, so wait until each is gone and retry until the folder
    is."""
    deadline = time.monotonic() + wait_s
    left = set(folders)
    while left:
        for folder, pid in sorted(left):
            if alive(pid, None) and time.monotonic() < deadline:
                continue  # a SIGKILL not yet delivered, or an exit in progress
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                left.discard((folder, pid))
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    for folder, _ in sorted(left):
        log.warning("FRR crash-log folder %s could not be removed", folder)


# -- removal -----------------------------------------------------------------------------
def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def namespace_pids(ns: str) -> list[int]:
    proc = _ip("netns", "pids", ns)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def end_processes(pids: list[int], grace_s: float = 3.0) -> list[tuple[int, str]]:
    """SIGTERM, wait up to grace_s, then SIGKILL. Returns (pid, comm) of those ended."""
    ended = [(p, _comm(p)) for p in pids]
    starts = {p: proc_start_time(p) for p in pids}
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(alive(p, starts[p]) for p in pids):
            break
        time.sleep(0.02)
    for p in pids:
        if alive(p, starts[p]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + grace_s  # SIGKILL is not instant for a busy process
    while any(alive(p, starts[p]) for p in pids) and time.monotonic() < deadline:
        _reap(pids)
        time.sleep(0.02)
    _reap(pids)
    return ended


def _reap(pids: list[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our own children."""
    for p in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p, os.WNOHANG)


def remove_namespaces(names: list[str]) -> list[tuple[int, str]]:
    """End every process in our namespaces ``names`` (all of them together: one grace
    period, not one per namespace), then delete them (and their veths)."""
    ended: list[tuple[int, str]] = []
    present = [ns for ns in dict.fromkeys(names) if (NETNS_DIR / ns).exists()]
    for _ in range(3):  # a dying process may have forked
        pids = sorted({p for ns in present for p in namespace_pids(ns)
                       if p != os.getpid() and alive(p, None)})
        if not pids:
            break
        ended += end_processes(pids)
    for ns in present:
        proc = _ip("netns", "del", ns)
        if proc.returncode != 0 and (NETNS_DIR / ns).exists():
            log.warning("could not delete namespace %s: %s", ns, proc.stderr.strip())
    return ended


def clean_run(reg: Registry) -> None:
    log.info("cleaning run %s (%s)", reg.run_id, reg.topology or "unknown topology")
    for srv in reg.servers:  # the parts on other servers first (each has its registry)
        from topologies.servers import ServerSpec, clean_remote

        spec = ServerSpec(srv["name"], srv["address"], srv.get("user", "root"))
        problem = clean_remote(spec, reg.run_id)
        if problem:
            log.warning("run %s: its part on server %s was not cleaned (%s); run "
                        "'make clean' there", reg.run_id, spec, problem)
    procs = [p for p in reg.processes if alive(p["pid"], p.get("start"))]
    ended = end_processes([p["pid"] for p in procs])
    # with the namespaces of this run that the registry may have missed (crash mid-write)
    names = list(reg.namespaces)
    if NETNS_DIR.is_dir():
        names += [p.name for p in NETNS_DIR.glob(f"{NS_PREFIX}{reg.run_id}-*")]
    ended += remove_namespaces(names)
    frr_daemons = ("zebra", "ospfd", "bfdd", "staticd")
    # the folder each daemon held open (recorded at its start), or the one with its main
    # thread's log buffer (not recorded: found in a namespace, or an older registry). Not
    # /var/tmp/frr/<daemon>.<pid>: the name has the PID before -d forked, and after the
    # PIDs wrapped around it may be another daemon's folder.
    crashlogs: set[tuple[Path, int]] = set()
    recorded = {p["pid"] for p in reg.processes}
    for pid, comm in ended:
        if comm in frr_daemons and pid not in recorded:
            found = crashlog_dir_by_buffer(comm, pid)
            if found is not None:
                crashlogs.add((found, pid))
    for p in reg.processes:  # also those that died before (killed by a test or a scenario)
        daemon = str(p.get("name", "")).rpartition(":")[2]
        if daemon in frr_daemons and not alive(p["pid"], p.get("start")):
            if p.get("crashlog") and Path(p["crashlog"]).parent == CRASHLOG_ROOT:
                crashlogs.add((Path(p["crashlog"]), p["pid"]))
            else:  # not recorded: the folder with its main thread's log buffer
                found = crashlog_dir_by_buffer(daemon, p["pid"])
                if found is not None:
                    crashlogs.add((found, p["pid"]))
    remove_crashlog_dirs(crashlogs)
    if reg.cgroup_dirs:  # after the processes in them have ended
        from topologies.cgroups import remove_cgroup_dirs

        remove_cgroup_dirs(reg.cgroup_dirs)
    for d in [*reg.bpf_dirs, str(BPF_ROOT / reg.run_id)]:
        shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(OSError):
        BPF_ROOT.rmdir()  # only if empty
    shutil.rmtree(reg.folder, ignore_errors=True)
    with runroot.locked(RUN_ROOT):
        runroot.release(RUN_ROOT)  # the last run: unmount our tmpfs, remove the folder


def clean(include_live: bool = False, run_id: str | None = None) -> list[str]:
    """Clean every run left behind (or only run ``run_id``). Runs whose builder still
    lives are kept unless include_live (then their builder is not signalled, only
    their resources go)."""
    cleaned = []
    for reg in list_runs():
        if run_id is not None and reg.run_id != run_id:
            continue
        if reg.owner_alive() and reg.owner_pid != os.getpid() and not include_live:
            log.warning("run %s is still in use by PID %d: not cleaned "
                        "(stop it, or use --force)", reg.run_id, reg.owner_pid)
            continue
        clean_run(reg)
        cleaned.append(reg.run_id)
    if run_id is None:
        with runroot.locked(RUN_ROOT):
            runroot.release(RUN_ROOT)  # also one no run was cleaned from (a crash)
    return cleaned


def main() -> int:
    """``python -m topologies.runstate``: what ``make clean`` runs (stdlib only)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m topologies.runstate",
                                description="remove everything earlier dsfc runs left")
    p.add_argument("--force", action="store_true",
                   help="also clean runs whose builder is still running")
    p.add_argument("--run", metavar="ID",
                   help="only this run (a spread network's builder cleans each server so)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cleaned = clean(include_live=args.force, run_id=args.run)
    print(f"cleaned {len(cleaned)} run(s)" + (f": {', '.join(cleaned)}" if cleaned else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
