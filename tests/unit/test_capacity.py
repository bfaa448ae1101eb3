"""topologies.capacity: each server's share of the NFV nodes against that server's
available memory (monkeypatched per server), and reading MemAvailable of a remote
server (its /proc/meminfo through a monkeypatched servers.read_file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmano.yamlconf import loads_yaml
from topologies import capacity, servers
from topologies.capacity import LOCAL, MemoryCheckError, check_memory, server_memory_mb, shares
from topologies.importer import MB_PER_NFV_NODE
from topologies.servers import ServerSpec
from topologies.spec import parse_topology

MAIN = ServerSpec("main", "localhost")
S2 = ServerSpec("s2", "10.99.0.2")
S3 = ServerSpec("s3", "node3.lab", "dsfc")
# A, C, E on main; B, D on s2; F on s3
SPREAD = """\
nodes: [{name: A}, {name: B}, {name: C}, {name: D}, {name: E}, {name: F}]
links:
  - {a: A, b: B, cost: 1}
  - {a: B, b: C, cost: 1}
  - {a: C, b: D, cost: 1}
  - {a: D, b: E, cost: 1}
  - {a: E, b: F, cost: 1}
servers:
  - {name: main, address: localhost}
  - {name: s2, address: 10.99.0.2}
  - {name: s3, address: node3.lab, user: dsfc}
placement:
  nodes: {A: main, B: s2, C: main, D: s2, E: main, F: s3}
"""
SINGLE = """\
nodes: [{name: A}, {name: B}, {name: C}, {name: D}]
links: [{a: A, b: B, cost: 1}, {a: B, b: C, cost: 1}, {a: C, b: D, cost: 1}]
"""
MEMINFO = """\
MemTotal:       16384000 kB
MemFree:         1000000 kB
MemAvailable:    8000000 kB
Buffers:          200000 kB
"""


def topo(text: str, name: str = "big.yaml"):
    return parse_topology(loads_yaml(text, name), Path("/some/where") / name)


def memory(monkeypatch: pytest.MonkeyPatch, mb: dict[str, int | None]) -> list[ServerSpec]:
    """Each server (by name) has ``mb[name]`` MB available; returns those asked."""
    asked: list[ServerSpec] = []

    def fake(spec: ServerSpec) -> int | None:
        asked.append(spec)
        return mb[spec.name]

    monkeypatch.setattr(capacity, "server_memory_mb", fake)
    return asked


def error_of(t) -> str:
    with pytest.raises(MemoryCheckError) as info:
        check_memory(t)
    return str(info.value)


def test_shares_per_server() -> None:
    assert shares(topo(SPREAD)) == {MAIN: 3, S2: 2, S3: 1}
    assert shares(topo(SINGLE)) == {LOCAL: 4}  # no servers: all on this machine
    assert LOCAL.local and str(LOCAL) == "this machine"


def test_every_share_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = memory(monkeypatch, {"main": 3 * MB_PER_NFV_NODE, "s2": 2 * MB_PER_NFV_NODE,
                                 "s3": 10_000})
    check_memory(topo(SPREAD))  # exactly enough is enough
    assert sorted(s.name for s in asked) == ["main", "s2", "s3"]  # each server once


def test_a_server_whose_share_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    memory(monkeypatch, {"main": 100_000, "s2": 2 * MB_PER_NFV_NODE - 1, "s3": 10_000})
    msg = error_of(topo(SPREAD))
    assert msg.startswith("/some/where/big.yaml: too large for the memory here: ")
    assert (f"2 NFV nodes on s2 (root@10.99.0.2) need about 0.2 GB ({MB_PER_NFV_NODE} MB "
            f"each) but 0.2 GB is available there.") in msg
    assert "main" not in msg and "s3" not in msg  # those fit
    assert msg.endswith("or use --no-memory-check to try anyway")
    assert "Running on several machines" in msg


def test_every_server_that_does_not_fit_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    memory(monkeypatch, {"main": 200, "s2": 100_000, "s3": 50})
    msg = error_of(topo(SPREAD))
    # in the order of the nodes (A on main comes first)
    assert "3 NFV nodes on main need about 0.3 GB (95 MB each) but 0.2 GB is available " \
           "there; 1 NFV nodes on s3 (dsfc@node3.lab) need about 0.1 GB (95 MB each) but " \
           "0.1 GB is available there. Spread it" in msg
    assert "s2" not in msg


def test_unknown_memory_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    memory(monkeypatch, {"main": 100_000, "s2": None, "s3": None})
    check_memory(topo(SPREAD))


def test_nodes_without_a_server_count_for_this_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = memory(monkeypatch, {"this machine": 4 * MB_PER_NFV_NODE - 1})
    msg = error_of(topo(SINGLE, "one.yaml"))
    assert asked == [LOCAL]
    assert msg.startswith("/some/where/one.yaml: too large for the memory here: 4 NFV nodes "
                          "on this machine need about 0.4 GB")
    assert "--no-memory-check" in msg
    memory(monkeypatch, {"this machine": 4 * MB_PER_NFV_NODE})
    check_memory(topo(SINGLE))


def test_memory_of_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "available_memory_mb", lambda: 1234)
    monkeypatch.setattr(servers, "read_file", lambda *a, **k: pytest.fail("no read"))
    assert server_memory_mb(LOCAL) == 1234
    assert server_memory_mb(MAIN) == 1234


def test_memory_of_a_remote_server(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[ServerSpec, Path]] = []
    texts = {"s2": MEMINFO, "s3": "MemTotal: 1 kB\n", "s4": None}

    def read_file(spec: ServerSpec, path: Path, timeout: float = 10) -> str | None:
        reads.append((spec, path))
        return texts[spec.name]

    monkeypatch.setattr(servers, "read_file", read_file)
    monkeypatch.setattr(capacity, "available_memory_mb", lambda: pytest.fail("not here"))
    assert server_memory_mb(S2) == 8000000 * 1024 // 1_000_000 == 8192  # kB -> MB
    assert reads == [(S2, Path("/proc/meminfo"))]
    assert server_memory_mb(S3) is None  # no MemAvailable line
    assert server_memory_mb(ServerSpec("s4", "10.99.0.4")) is None  # no file
