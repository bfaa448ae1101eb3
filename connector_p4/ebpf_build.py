"""Compile ``ebpf/connector.c`` into ``ebpf/build/connector.o`` with clang.

``build()`` compiles only when the object is missing or older than the source (or
``force``). ``python -m connector_p4.ebpf_build [--force]`` does the same from a shell.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

EBPF_DIR = Path(__file__).resolve().parent / "ebpf"
SOURCE = EBPF_DIR / "connector.c"
OBJECT = EBPF_DIR / "build" / "connector.o"


class BuildError(RuntimeError):
    pass


def _include_dirs() -> list[str]:
    # <asm/types.h> lives in the multiarch folder on Debian; -target bpf does not look there
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/include/{multiarch}"] if multiarch else []
    return [d for d in dirs if Path(d).is_dir()]


def command(src: Path = SOURCE, out: Path = OBJECT, clang: str = "clang") -> list[str]:
    return [clang, "-O2", "-g", "-Wall", "-target", "bpf",
            *(f"-I{d}" for d in _include_dirs()), "-c", str(src), "-o", str(out)]


def needs_build(src: Path = SOURCE, out: Path = OBJECT) -> bool:
    return not out.exists() or out.stat().st_mtime < src.stat().st_mtime


def build(force: bool = False) -> Path:
    """Return the path of the compiled object, compiling it first if needed."""
    if not force and not needs_build():
        return OBJECT
    clang = shutil.which("clang")
    if clang is None:
        raise BuildError("clang not found: the eBPF connector needs clang, llvm and libbpf-dev "
                         "(Debian: apt-get install clang llvm libbpf-dev, or make setup)")
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        raise BuildError("bpf/bpf_helpers.h not found: install libbpf-dev (make setup)")
    OBJECT.parent.mkdir(parents=True, exist_ok=True)
    # compile next to the target and rename: concurrent builds never see half an object
    fd, tmp = tempfile.mkstemp(prefix=".connector-", suffix=".o", dir=OBJECT.parent)
    os.close(fd)
    try:
        proc = subprocess.run(command(out=Path(tmp), clang=clang), capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise BuildError(f"clang failed on {SOURCE}:\n{proc.stderr.strip()}")
        os.replace(tmp, OBJECT)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return OBJECT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m connector_p4.ebpf_build",
                                 description="compile the eBPF connector pipeline")
    ap.add_argument("--force", action="store_true", help="compile even if up to date")
    args = ap.parse_args(argv)
    try:
        print(build(force=args.force))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
