"""Integration tests: real namespaces and FRR daemons. They need root and the Debian
packages that `make setup` installs; elsewhere they are skipped with the reason, or
fail with it under DSFC_REQUIRE_INTEGRATION=1 (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPO_DIR = ROOT / "topologies"


def wait_for(what: str, check: Callable[[], object], timeout: float) -> object:
    """Poll ``check`` until it returns something true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not true within {timeout} s (last: {last!r})")


def our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.startswith("dsfc-")]


def root_veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"],
                         capture_output=True, text=True).stdout
    return {ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()}


def bpf_pins() -> set[str]:
    root = Path("/sys/fs/bpf/dsfc")
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture(scope="module", autouse=True)
def leaves_nothing_behind():
    """Every test module must leave no namespace, veth, bpffs pin or run folder of ours."""
    before = (set(our_namespaces()), root_veths(), bpf_pins())
    yield
    assert set(our_namespaces()) - before[0] == set(), "namespaces left behind"
    assert root_veths() - before[1] == set(), "veths left behind"
    assert bpf_pins() - before[2] == set(), "bpffs pins left behind"
