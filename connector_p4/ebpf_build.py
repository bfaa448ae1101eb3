"""Compile ``ebpf/connector.c`` into ``ebpf/build/connector.o`` with clang.

``build()`` compiles only when the object is missing or older than the source (or
``force``). ``python -m connector_p4.ebpf_build [--force]`` does the same from a shell.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from connector_p4.build_output import replaced_on_success

log = logging.getLogger(__name__)

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
    # compile next to the target and rename: concurrent builds never see half an object
    with replaced_on_success(OBJECT) as tmp:
        proc = subprocess.run(command(out=tmp, clang=clang), capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise BuildError(f"clang failed on {SOURCE}:\n{proc.stderr.strip()}")
    return OBJECT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m connector_p4.ebpf_build",
                                 description="compile the eBPF connector pipeline")
    ap.add_argument("--force", action="store_true", help="compile even if up to date")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        obj = build(force=args.force)
    except BuildError as e:
        log.error("error: %s", e)
        return 1
    sys.stdout.write(f"{obj}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
