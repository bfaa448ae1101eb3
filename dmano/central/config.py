"""The central orchestrator's configuration (``python -m dmano.central --config FILE``).

Example::

    ospf_api: 127.0.0.1          # the one router whose LSDB it follows (its OSPF API)
    area: 0.0.0.0
    policy: /path/to/paper.yaml  # objective policy: the D-MANOs' policy file
    objective: policy            # policy | min-max-utilisation
    poll_period_s: 2.0           # every node's VNF counters are polled this often
    mgmt_rtt_ms: 0               # management network round trip, added to every poll
                                 # and every batch of connector writes (no netem here)
    election_id: 20              # its P4Runtime election id on every connector
    status_file: /run/dsfc/x/central/central.json
    node_status_dir: /run/dsfc/x/central   # one <node>.json per node (D-MANO status form)
    nodes:                       # the inventory: every NFV node's configuration, in the
      - /run/dsfc/x/rA/dmano.yaml          # D-MANO's format (dmano.config): router id,
      - /run/dsfc/x/rB/dmano.yaml          # connector, services, chains, classifier,
                                           # instances and their counters files

The node files are read with :func:`dmano.config.load_node_config`, so a mistake in one
is reported with that file's name, line and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano.config import NodeConfig, load_node_config
from dmano.yamlconf import ConfigError, Fields, load_yaml

OBJECTIVES = ("policy", "min-max-utilisation")
POLL_MIN_S = 0.05
POLL_MAX_S = 3600.0
RTT_MAX_MS = 10_000.0
ELECTION_DEFAULT = 20  # above the D-MANOs' 10: it wins arbitration if both ever meet


@dataclass(frozen=True)
class CentralConfig:
    policy: Path
    status_file: Path
    node_status_dir: Path
    nodes: tuple[NodeConfig, ...]
    objective: str = "policy"
    poll_period_s: float = 2.0
    mgmt_rtt_ms: float = 0.0
    election_id: int = ELECTION_DEFAULT
    ospf_api: str = "127.0.0.1"
    area: IPv4Address = field(default_factory=lambda: IPv4Address("0.0.0.0"))
    path: Path = Path("<config>")

    @property
    def rtt_s(self) -> float:
        return self.mgmt_rtt_ms / 1000.0

    def node_status_file(self, node: str) -> Path:
        return self.node_status_dir / f"{node}.json"


def load_central_config(path: str | Path) -> CentralConfig:
    path = Path(path)
    return parse_central_config(load_yaml(path), path)


def _path(f: Fields, key: str, base: Path) -> Path:
    p = Path(f.str(key))
    return p if p.is_absolute() else base / p


def parse_central_config(data: Any, path: Path) -> CentralConfig:
    base = path.parent
    with Fields(data, path, "") as f:
        policy = _path(f, "policy", base)
        status_file = _path(f, "status_file", base)
        status_dir = (_path(f, "node_status_dir", base) if f.raw("node_status_dir", None)
                      is not None else status_file.parent)
        objective = f.choice("objective", OBJECTIVES, default="policy")
        poll = f.number("poll_period_s", default=2.0, lo=POLL_MIN_S, hi=POLL_MAX_S)
        rtt = f.number("mgmt_rtt_ms", default=0.0, lo=0.0, hi=RTT_MAX_MS)
        for key, value in (("poll_period_s", poll), ("mgmt_rtt_ms", rtt)):
            if not math.isfinite(value):
                raise f.error(key, f"expected a finite number, got {value}")
        election = f.int("election_id", default=ELECTION_DEFAULT, lo=1, hi=2**63 - 1)
        ospf_api = f.str("ospf_api", default="127.0.0.1")
        area = f.ipv4("area", default=IPv4Address("0.0.0.0"))
        files = f.list("nodes", min_len=1)
        nodes = []
        for i, item in enumerate(files):
            if not isinstance(item, str) or not item:
                raise f.error("nodes", f"item {i}: expected the path of a node "
                                       f"configuration file, got {item!r}")
            p = Path(item) if Path(item).is_absolute() else base / item
            nodes.append(load_node_config(p))
        _check_unique(path, nodes)
        _check_status_files(path, nodes, status_file, status_dir)
    return CentralConfig(
        policy=policy, status_file=status_file, node_status_dir=status_dir,
        nodes=tuple(nodes), objective=objective, poll_period_s=poll, mgmt_rtt_ms=rtt,
        election_id=election, ospf_api=ospf_api, area=area, path=path)


def _check_unique(path: Path, nodes: list[NodeConfig]) -> None:
    for attr in ("node", "router_id", "nsh_endpoint"):
        seen: dict[object, Path] = {}
        for n in nodes:
            value = getattr(n, attr)
            if value in seen:
                raise ConfigError(path, None, "nodes",
                                  f"{n.path} and {seen[value]} have the same {attr} {value}")
            seen[value] = n.path


def _check_status_files(path: Path, nodes: list[NodeConfig], status_file: Path,
                        status_dir: Path) -> None:
    """Each node's status file (``<node_status_dir>/<node>.json``) must be a file of its
    own in that folder: not the orchestrator's status file (a node named like it, e.g.
    ``central`` with the default folder), nor outside the folder (a ``/`` in the name)."""
    for n in nodes:
        if "/" in n.node or n.node in (".", ".."):
            raise ConfigError(path, None, "nodes",
                              f"{n.path}: node name {n.node!r} cannot name its status "
                              f"file in node_status_dir {status_dir}")
        if status_dir / f"{n.node}.json" == status_file:
            raise ConfigError(path, None, "nodes",
                              f"{n.path}: the status file of node {n.node} would be the "
                              f"orchestrator's status_file {status_file}: rename the "
                              f"node, the status_file or node_status_dir")
