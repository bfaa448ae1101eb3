"""The run folders' root (``/run/dsfc``) in memory.

Every daemon of a run writes small files there all the time, each as a new file renamed
over the old one (:mod:`dmano.atomicfile`): the D-MANO's status at every recomputation
and period, each VNF's counters five times a second, the logs. ``/run`` is a tmpfs on a
Debian system booted with systemd, but not on every machine (a container or VM image may
keep it on its root ext4): there one such write took 290 us instead of 66 us, and with
200 NFV nodes (about 550 writes a second) the journal's work was a third of the
D-MANOs' main-thread samples.

So when the default root is not on a tmpfs, :func:`ensure` mounts one there (source
name :data:`SOURCE`), but only while it holds no run (a live run's folder would be
hidden under it); :func:`release` unmounts it once the last run is cleaned. Both hold
an exclusive lock on the parent folder, so a bring-up and a cleanup never race. A root
chosen with ``DSFC_RUN_ROOT`` is used as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT = Path("/run/dsfc")
SOURCE = "dsfc-run"  # the tmpfs we mount, as /proc/mounts shows it


def _mounts() -> list[tuple[str, str, str]]:
    """(source, mount point, type) of every mount, in mount order."""
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[0], parts[1].replace("\\040", " "), parts[2]))
    return out


def fs_type(path: Path) -> str:
    """Type of the filesystem ``path`` is on (the last mount on its longest prefix)."""
    best, kind = -1, ""
    resolved = str(path.resolve())
    for _, point, typ in _mounts():
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:
            best, kind = len(point), typ
    return kind


def ours_mounted(root: Path) -> bool:
    """Whether our tmpfs is mounted on ``root``."""
    where = str(root.resolve())
    return any(src == SOURCE and point == where for src, point, _ in _mounts())


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """An exclusive lock on ``root``'s parent folder (flock; released on exit)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(root.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def wanted(root: Path) -> bool:
    """Only the default root, as root, and not when DSFC_RUN_ROOT chose one."""
    return root == DEFAULT and not os.environ.get("DSFC_RUN_ROOT") and os.geteuid() == 0


def ensure(root: Path) -> None:
    """Make ``root``; mount a tmpfs on it if it is not on one and holds nothing.
    Call with :func:`locked` held. A failed mount leaves the root where it is."""
    root.mkdir(parents=True, exist_ok=True)
    if not wanted(root) or fs_type(root) == "tmpfs":
        return
    if any(root.iterdir()):
        log.info("%s is on %s and holds runs: the new run goes there too", root,
                 fs_type(root))
        return
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", SOURCE, str(root)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log.warning("could not mount a tmpfs on %s (%s); run folders stay on %s", root,
                    proc.stderr.strip(), fs_type(root))


def release(root: Path) -> None:
    """Unmount our tmpfs from ``root`` once it holds nothing, then remove the folder.
    Call with :func:`locked` held."""
    with contextlib.suppress(OSError):
        if ours_mounted(root) and not any(root.iterdir()):
            proc = subprocess.run(["umount", str(root)], capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                log.warning("could not unmount %s: %s", root, proc.stderr.strip())
        root.rmdir()  # only if empty (and no longer a mount point)
