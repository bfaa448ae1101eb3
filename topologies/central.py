"""The centralized baseline in an emulated run: its configuration, process and probe.

In ``control: centralized`` no D-MANO runs. The builder writes every node's configuration
as for a D-MANO (:mod:`topologies.nodeconf`: the orchestrator's inventory), then one
orchestrator configuration (``<run>/central/central.yaml``) and starts
``python -m dmano.central`` in the network namespace of one router (``router``, default
the first node): ospfd's OSPF API answers only on that namespace's loopback, and the
orchestrator follows that one router's LSDB, as a controller follows one BGP-LS
speaker. Its polls (counters files) and P4Runtime sessions (unix sockets) go through the
run folder, not through the emulated network: that is the "management network", and its
round trip is the explicit ``mgmt_rtt_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from topologies import health

OBJECTIVES = ("policy", "min-max-utilisation")
PROCESS = "central"


@dataclass(frozen=True)
class CentralParams:
    """What the builder needs to run the orchestrator (wall-clock values)."""

    objective: str = "policy"
    poll_period_s: float = 2.0
    mgmt_rtt_ms: float = 0.0
    router: str | None = None  # node whose LSDB it follows; None: the first node
    election_id: int = 20


def folder(run_folder: Path) -> Path:
    return run_folder / "central"


def status_file(run_folder: Path) -> Path:
    return folder(run_folder) / "central.json"


def node_status_file(run_folder: Path, node: str) -> Path:
    """Per-node status written by the orchestrator, in the D-MANO status form."""
    return folder(run_folder) / f"{node}.json"


def write_config(run_folder: Path, params: CentralParams, policy: Path,
                 node_configs: list[Path]) -> Path:
    path = folder(run_folder) / "central.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "ospf_api": "127.0.0.1", "area": "0.0.0.0", "policy": str(policy),
        "objective": params.objective, "poll_period_s": params.poll_period_s,
        "mgmt_rtt_ms": params.mgmt_rtt_ms, "election_id": params.election_id,
        "status_file": str(status_file(run_folder)),
        "node_status_dir": str(folder(run_folder)),
        "nodes": [str(p) for p in node_configs],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ready(status: Path, pid: int) -> Callable[[], str | None]:
    """As a D-MANO's status (running, from this PID, OSPF API connected), and one poll
    round done."""
    base = health.dmano_ready(status, pid)

    def check() -> str | None:
        problem = base()
        if problem is not None:
            return problem
        data = health.read_json(status) or {}
        if not data.get("control_traffic", {}).get("poll_rounds"):
            return "no poll round done yet"
        return None
    return check
