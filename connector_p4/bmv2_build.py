"""Compile ``connector.p4`` for BMv2 with p4c (the P4 reference compiler).

p4c and BMv2 are in no package registry here: they build from source on a developer
machine (DESIGN.md section 7). Where they are absent, :func:`find_tools` raises
:class:`Bmv2UnavailableError` with what is missing, and the BMv2 connector cannot start.

:func:`build` compiles only when the source or the compiler changed: the output (the
BMv2 JSON and p4c's own P4Info) goes to ``connector_p4/bmv2_build/<key>/``, where the key
hashes the P4 source and the compiler's version. ``python -m connector_p4.bmv2_build``
does the same from a shell and prints the two paths.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from connector_p4.build_output import replaced_on_success

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "connector.p4"
BUILD_DIR = HERE / "bmv2_build"
SWITCH = "simple_switch_grpc"
CLI = "simple_switch_CLI"
HOW_TO_GET = ("p4c and BMv2 are in no package registry: build p4c (tag v1.2.4.8, bmv2 "
              "backend), PI (--with-proto) and behavioral-model (--with-pi --with-thrift) "
              "from source, see DESIGN.md section 7")


class Bmv2UnavailableError(RuntimeError):
    """The BMv2 toolchain (p4c, simple_switch_grpc, simple_switch_CLI) is not installed."""


class CompileError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tools:
    compiler: str      # p4c-bm2-ss, or the p4c driver
    switch: str        # simple_switch_grpc
    cli: str           # simple_switch_CLI (Thrift): sets the CRC-32C parameters


@dataclass(frozen=True)
class Artifacts:
    json: Path         # BMv2 JSON: the device config of SetForwardingPipelineConfig
    p4info: Path       # p4c's P4Info (text format) for the same program


def find_tools() -> Tools:
    compiler = shutil.which("p4c-bm2-ss") or shutil.which("p4c")
    switch, cli = shutil.which(SWITCH), shutil.which(CLI)
    missing = [name for name, path in (("p4c", compiler), (SWITCH, switch), (CLI, cli))
               if path is None]
    if missing:
        raise Bmv2UnavailableError(f"not on PATH: {', '.join(missing)}; {HOW_TO_GET}")
    assert compiler and switch and cli
    return Tools(compiler, switch, cli)


def find_compiler() -> str:
    compiler = shutil.which("p4c-bm2-ss") or shutil.which("p4c")
    if compiler is None:
        raise Bmv2UnavailableError(f"not on PATH: p4c; {HOW_TO_GET}")
    return compiler


def missing_reason() -> str | None:
    """Why the BMv2 connector cannot run here, or None when it can."""
    try:
        find_tools()
    except Bmv2UnavailableError as exc:
        return str(exc)
    return None


def compile_command(compiler: str, src: Path, json_out: Path, p4info_out: Path) -> list[str]:
    cmd = [compiler]
    if Path(compiler).name == "p4c":
        cmd += ["--target", "bmv2", "--arch", "v1model"]
    return [*cmd, "--p4runtime-files", str(p4info_out), "-o", str(json_out), str(src)]


def _compiler_version(compiler: str) -> str:
    proc = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    return (proc.stdout + proc.stderr).strip()


def build_key(compiler: str, src: Path = SOURCE) -> str:
    h = hashlib.sha256(src.read_bytes())
    h.update(_compiler_version(compiler).encode())
    return h.hexdigest()[:16]


def build(force: bool = False, src: Path = SOURCE, out_root: Path = BUILD_DIR) -> Artifacts:
    """Return the BMv2 JSON and P4Info of ``src``, compiling first if needed."""
    compiler = find_compiler()
    out = out_root / build_key(compiler, src)
    art = Artifacts(out / "connector.json", out / "connector.p4info.txtpb")
    if not force and art.json.exists() and art.p4info.exists():
        return art
    # compile into a temporary folder and rename it: concurrent builds never see half
    with replaced_on_success(out, directory=True) as tmp:
        cmd = compile_command(compiler, src, tmp / art.json.name, tmp / art.p4info.name)
        log.info("compiling %s: %s", src, " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise CompileError(f"p4c failed on {src}:\n{(proc.stdout + proc.stderr).strip()}")
    return art


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m connector_p4.bmv2_build",
                                 description="compile connector.p4 for BMv2 with p4c")
    ap.add_argument("--force", action="store_true", help="compile even if up to date")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        art = build(force=args.force)
    except (Bmv2UnavailableError, CompileError) as e:
        log.error("error: %s", e)
        return 1
    sys.stdout.write(f"{art.json}\n{art.p4info}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
