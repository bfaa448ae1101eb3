"""Test-suite wide rules.

Tests under ``tests/integration`` (decided by their path relative to this folder) need
root and real tools: network namespaces, FRR, nftables, tshark, nsenter, clang and
libbpf. Where one is missing they are skipped with the reason; with
``DSFC_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``) they fail instead, naming what is
missing, so a CI run cannot pass by skipping them. The BMv2 toolchain (p4c,
simple_switch_grpc) is optional everywhere: its tests stay skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REQUIRE_ENV = "DSFC_REQUIRE_INTEGRATION"

TOOLS = {
    "mnexec": "Debian package mininet",
    "vtysh": "Debian package frr",
    "ip": "Debian package iproute2",
    "tc": "Debian package iproute2",
    "nft": "Debian package nftables",
    "tshark": "Debian package tshark",
    "nsenter": "Debian package util-linux",
    "clang": "Debian package clang",
    "bpftool": "Debian package bpftool",
}
FILES = {
    "/usr/lib/frr/ospfd": "Debian package frr",
    "/usr/lib/frr/ospfclient.py": "Debian package frr-pythontools",
    "/usr/include/bpf/bpf_helpers.h": "Debian package libbpf-dev",
}


def integration_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing_prerequisites() -> list[str]:
    """What the integration tests need and this machine lacks (empty: all there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, FRR, BPF): run the tests as root")
    for tool, where in TOOLS.items():
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({where}; make setup installs it)")
    for path, where in FILES.items():
        if not Path(path).exists():
            missing.append(f"{path} ({where}; make setup installs it)")
    return missing


def skip_or_fail(reason: str) -> None:
    """Skip a test for a missing prerequisite, or fail it when CI requires integration."""
    if integration_required():
        pytest.fail(f"{REQUIRE_ENV} is set and a prerequisite is missing: {reason}",
                    pytrace=False)
    pytest.skip(reason)


def is_integration(item: pytest.Item) -> bool:
    try:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS)
    except ValueError:
        return False
    return rel.parts[:1] == ("integration",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_prerequisites()
    reason = "integration tests need " + "; ".join(missing) if missing else ""
    for item in items:
        if not is_integration(item):
            continue
        item.add_marker(pytest.mark.integration)
        if reason and not integration_required():
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if is_integration(item) and integration_required():
        missing = missing_prerequisites()
        if missing:
            pytest.fail(f"{REQUIRE_ENV} is set and the integration tests need: "
                        + "; ".join(missing), pytrace=False)
