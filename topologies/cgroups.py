"""CPU limits for VNF processes (an instance's ``cpu_limit`` in the topology).

A limited VNF runs in its own cgroup of the ``cpu`` controller with a CFS quota of
``cpu_limit`` cores (cgroup v2 ``cpu.max`` where the unified hierarchy has the cpu
controller, else cgroup v1 ``cpu.cfs_quota_us``). The folder is recorded in the run
registry before it is created and removed by the cleanup (topologies.runstate), like
every other resource of a run. The process is put in the cgroup by a tiny shell that
writes its own PID to ``cgroup.procs`` and then execs the VNF, so it never runs
unlimited and keeps its PID.
"""

from __future__ import annotations

from pathlib import Path

from topologies.runstate import Registry

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CgroupError(RuntimeError):
    pass


def cpu_controller_root() -> tuple[Path, str]:
    """(folder under which to make cgroups, "v1" | "v2"); CgroupError if none."""
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        return v1, "v1"
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return CGROUP_ROOT, "v2"
    raise CgroupError("an instance has a cpu_limit, but no cgroup cpu controller is mounted "
                      f"under {CGROUP_ROOT}")


def limit_cpu(registry: Registry, name: str, cores: float) -> list[str]:
    """Make the cgroup of ``name`` with a quota of ``cores``; return the command prefix
    that starts a process inside it."""
    root, version = cpu_controller_root()
    folder = root / "dsfc" / registry.run_id / name
    registry.add_cgroup_dir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    quota = max(1000, round(cores * PERIOD_US))
    try:
        if version == "v1":
            (folder / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (folder / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}")
    except OSError as exc:
        raise CgroupError(f"{name}: cannot set a CPU limit of {cores:g} cores in {folder}: "
                          f"{exc}") from exc
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(folder)]


def remove_cgroup_dirs(dirs: list[str]) -> None:
    """Remove recorded cgroup folders (deepest first; a cgroup goes only when empty)."""
    for d in sorted(dirs, key=len, reverse=True):
        path = Path(d)
        for p in (path, path.parent, path.parent.parent):
            if p.name in ("", "cpu") or p == CGROUP_ROOT:
                break
            try:
                p.rmdir()
            except OSError:
                break
