"""Find the control socket of the D-MANO that owns a VNF instance (for the CLI).

With neither ``--config`` nor ``--socket``, the status files under the run root
(``DSFC_RUN_ROOT``, default ``/run/dsfc``) are scanned: ``<run>/r<N>/dmano.json``, whose
``local_instances`` name the instances of that D-MANO and whose ``control_socket`` says
where it listens. Only D-MANOs that are running (``running`` true, their process alive)
count; an instance on several of them (two runs of one topology) is ambiguous.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_RUN_ROOT = Path("/run/dsfc")
STATUS_GLOB = "*/r*/dmano.json"


class LocateError(LookupError):
    pass


@dataclass(frozen=True)
class Owner:
    node: str
    status_file: Path
    socket: Path


def run_root() -> Path:
    return Path(os.environ.get("DSFC_RUN_ROOT") or DEFAULT_RUN_ROOT)


def _alive(pid: Any) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def running_dmanos(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(status file, its content) of every running D-MANO under ``root``."""
    out = []
    for path in sorted(root.glob(STATUS_GLOB)):
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(st, dict) and st.get("running") and _alive(st.get("pid")):
            out.append((path, st))
    return out


def find_owner(instance: str, root: Path | None = None) -> Owner:
    """The running D-MANO whose ``local_instances`` list ``instance``."""
    root = run_root() if root is None else root
    running = running_dmanos(root)
    if not running:
        raise LocateError(f"no running D-MANO under {root} (no {STATUS_GLOB} of a live "
                          f"process; set DSFC_RUN_ROOT or use --config / --socket)")
    owners: list[Owner] = []
    known: set[str] = set()
    for path, st in running:
        local = st.get("local_instances")
        names = set(local) if isinstance(local, dict) else set()
        known |= {n for n in names if isinstance(n, str)}
        if instance not in names:
            continue
        sock = st.get("control_socket")
        if not isinstance(sock, str) or not sock:
            raise LocateError(f"the D-MANO of node {st.get('node')} ({path}) owns {instance} "
                              f"but serves no control socket (see its log)")
        owners.append(Owner(str(st.get("node", "?")), path, Path(sock)))
    if not owners:
        raise LocateError(f"unknown instance {instance!r}: the running D-MANOs under "
                          f"{root} have {', '.join(sorted(known)) or 'no instances'}")
    if len(owners) > 1:
        where = ", ".join(str(o.status_file) for o in owners)
        raise LocateError(f"instance {instance} is on several running D-MANOs ({where}): "
                          f"choose one with --socket or --config")
    return owners[0]
