"""Will a network fit? The memory estimate checked before anything is built.

Each server's share (the nodes placed on it; all of them on one machine) is compared
with that server's ``MemAvailable``; a share that does not fit stops the bring-up with
the numbers, before any namespace exists. The estimate per NFV node is the importer's
(:data:`topologies.importer.MB_PER_NFV_NODE`, measured with a router, a connector, a
D-MANO and a VNF or two), deliberately on the safe side: ``up --no-memory-check``
skips the check.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from topologies import servers
from topologies.importer import MB_PER_NFV_NODE, available_memory_mb
from topologies.servers import ServerSpec
from topologies.spec import Topology

LOCAL = ServerSpec("this machine", "localhost")


class MemoryCheckError(RuntimeError):
    pass


def server_memory_mb(spec: ServerSpec) -> int | None:
    if spec.local:
        return available_memory_mb()
    for line in (servers.read_file(spec, Path("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemAvailable:"):  # kB (KiB) there, MB (10^6 bytes) here
            return int(line.split()[1]) * 1024 // 1_000_000
    return None


def shares(topo: Topology) -> Counter[ServerSpec]:
    """NFV nodes per server (this machine for nodes without a server)."""
    return Counter((topo.server_of(n.name) or LOCAL) for n in topo.nodes)


def check_memory(topo: Topology) -> None:
    """MemoryCheckError naming every server whose share would not fit."""
    problems = []
    for spec, count in shares(topo).items():
        need = MB_PER_NFV_NODE * count
        have = server_memory_mb(spec)
        if have is not None and need > have:
            problems.append(
                f"{count} NFV nodes on {spec} need about {need / 1000:.1f} GB "
                f"({MB_PER_NFV_NODE} MB each) but {have / 1000:.1f} GB is available there")
    if problems:
        raise MemoryCheckError(
            f"{topo.path}: too large for the memory here: " + "; ".join(problems) +
            ". Spread it over more servers (servers: in the topology file, README "
            "'Running on several machines'), or use --no-memory-check to try anyway")
