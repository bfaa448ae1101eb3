"""Atomic file writes: the one helper every writer of state files uses.

Readers (the D-MANO reading VNF counters, ``show`` reading a status file, the scenario
runner reading both) must never see half a file: the content goes to a temporary file in
the same folder (``.<name>.<pid>.tmp``), which is then renamed over the target.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mkdir: bool = False) -> None:
    """Replace ``path`` by ``text`` in one rename; the temporary file never stays behind."""
    p = Path(path)
    if mkdir:
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1,
                      sort_keys: bool = False, mkdir: bool = False) -> None:
    """Write ``data`` as JSON (``indent=None``: compact, one line) atomically."""
    if indent is None:
        text = json.dumps(data, separators=(",", ":"), sort_keys=sort_keys)
    else:
        text = json.dumps(data, indent=indent, sort_keys=sort_keys)
    write_text_atomic(path, text + "\n", mkdir=mkdir)
