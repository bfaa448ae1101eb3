"""D-MANO node configurations generated from a topology (one per NFV node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from topologies import addressing as addr
from topologies.spec import PROTOCOLS, Topology

HEARTBEAT_S = 3.0


def vnf_stats_path(run_folder: Path, instance: str) -> Path:
    return run_folder / "vnf" / f"{instance}.json"


def node_config(topo: Topology, node: str, run_folder: Path, policy: Path,
                connector: dict[str, Any]) -> dict[str, Any]:
    spec = topo.node(node)
    n = spec.index
    service_ids = {s.name: s.id for s in topo.services}
    rules = []
    for r in topo.classifier:
        if r.node != node:
            continue
        rule: dict[str, Any] = {"chain": r.chain, "priority": r.priority, "src": str(r.src),
                                "dst": str(r.dst), "proto": r.proto}
        for key in ("sport", "dport"):
            rng = getattr(r, key)
            if rng is not None:
                rule[key] = f"{rng[0]}-{rng[1]}"
        rules.append(rule)
    assert all(r["proto"] in PROTOCOLS for r in rules)
    return {
        "node": node,
        "router_id": str(addr.router_id(n)),
        "area": "0.0.0.0",
        "ospf_api": "127.0.0.1",
        "nsh_endpoint": str(addr.nsh_endpoint(n).ip),
        "policy": str(policy),
        "status_file": str(run_folder / f"r{node}" / "dmano.json"),
        "control_socket": str(run_folder / f"r{node}" / "dmano.sock"),
        # VNFs rewrite their counters every 0.2 s (Network.start_vnf): one silent for 3 s
        # is hung (one that died is seen at once through its pidfd). 1 s was too tight
        # on a loaded 2-core machine: at 100 nodes, starved VNFs were declared hung,
        # withdrawn and re-announced over and over during bring-up (issue #13)
        "heartbeat_s": HEARTBEAT_S,
        "connector": {"router_mac": addr.mac(n, 0, 0, 1), "local_mac": addr.mac(n, 0, 0, 2),
                      **connector},
        "services": [{"name": s.name, "id": s.id, "anycast": str(s.anycast)}
                     for s in topo.services],
        "chains": [{"spi": c.spi, "services": [service_ids[x] for x in c.services]}
                   for c in topo.chains],
        "classifier": rules,
        "instances": [{
            "name": i.name, "id": i.id, "service": service_ids[i.service],
            "capacity": i.capacity, "stats": str(vnf_stats_path(run_folder, i.name)),
            "port": addr.vnf_port(i.id), "mac": addr.mac(n, 1, i.id, 1),
            **({"cost": i.cost} if i.cost is not None else {}),
            **({"cpu_cores": i.cpu_limit} if i.cpu_limit is not None else {}),
        } for i in topo.instances if i.node == node],
    }


def write_node_config(topo: Topology, node: str, run_folder: Path, policy: Path,
                      connector: dict[str, Any]) -> Path:
    path = run_folder / f"r{node}" / "dmano.yaml"
    path.write_text(yaml.safe_dump(node_config(topo, node, run_folder, policy, connector),
                                   sort_keys=False))
    return path
