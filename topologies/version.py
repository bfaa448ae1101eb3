"""``python -m topologies version``: the project's version and a hash of its source tree.

Every server of a spread network must run the same code; ``servers check`` compares
:func:`version_line` here and there. The tree hash is a sha256 over the sorted relative
paths and contents of the source files (:data:`SOURCE_DIRS`, :data:`SOURCE_SUFFIXES`),
leaving out caches, build outputs and hidden folders, so neither a compiled object nor a
``__pycache__`` makes two equal checkouts differ.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from importlib import metadata
from pathlib import Path

from topologies.servers import REPO

SOURCE_DIRS = ("dmano", "vnf", "vnfs", "connector_p4", "topologies", "scenarios")
SOURCE_SUFFIXES = frozenset({".py", ".p4", ".c", ".h", ".yaml"})
# folders never walked: caches, virtualenvs and build outputs (see .gitignore)
EXCLUDED_DIRS = frozenset({"__pycache__", ".venv", "build", "bmv2_build", "results"})
HASH_CHARS = 12


def source_files(root: Path) -> list[Path]:
    """The source files under ``root``, as sorted paths relative to it."""
    out: list[Path] = []
    for top in SOURCE_DIRS:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith(".")
                       and not d.endswith(".egg-info")]
            base = Path(folder)
            out.extend((base / f).relative_to(root) for f in files
                       if Path(f).suffix in SOURCE_SUFFIXES)
    return sorted(out, key=lambda p: p.as_posix())


def tree_hash(root: Path = REPO) -> str:
    """The first :data:`HASH_CHARS` hex digits of the sha256 of the source tree: each
    file's relative path, its length and its bytes, in path order."""
    h = hashlib.sha256()
    for rel in source_files(root):
        data = (root / rel).read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:HASH_CHARS]


def project_version(root: Path = REPO) -> str:
    """The version in ``root``'s pyproject.toml (else the installed package's)."""
    try:
        with open(root / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("dsfc")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line(root: Path = REPO) -> str:
    """``dsfc <version> <tree-hash>``."""
    return f"dsfc {project_version(root)} {tree_hash(root)}"
