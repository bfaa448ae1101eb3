"""Build outputs that appear in one step: a compiler writes into a temporary sibling of
the output, which is renamed over it only when the build succeeds, so a concurrent build
or reader never sees half an object (``dmano.atomicfile`` does the same for text written
by Python; here a subprocess writes the file or folder)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_on_success(target: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` (a file, or with ``directory`` a folder
    that exists); if the block returns, it replaces ``target``; it never stays behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix,
                                    dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if directory and tmp.exists():
            shutil.rmtree(tmp)
        elif not directory:
            tmp.unlink(missing_ok=True)
