"""Draining: the administrative state of the local instances (DESIGN.md §9).

A drained instance is announced with state DRAINING: every node (this one included)
stops sending it new flows, while the flows the connectors' flow caches pinned to it
keep going (the member stays defined with weight 0, :mod:`dmano.connector_state`).
Undrain returns it to UP. The drained set survives the period loop (the monitor never
flips an instance back to UP) and a D-MANO restart (it is read back from the status
file).

:class:`DrainBook` holds the set and decides; the daemon announces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano.config import InstanceConf
from dmano.model import InstanceState
from dmano.service_plane import ServiceTable

log = logging.getLogger(__name__)


class DrainError(ValueError):
    """A drain or undrain request that cannot be done (the message says why)."""


@dataclass(frozen=True)
class DrainResult:
    instance: str
    state: InstanceState
    changed: bool
    message: str


def serving_new_flows(tables: Mapping[int, ServiceTable], service: int,
                      exclude: tuple[IPv4Address, int] | None = None) -> list[str]:
    """Names (or router/id) of the reachable UP instances of ``service`` in this node's
    view, except ``exclude`` = (advertising router, instance id)."""
    out = []
    for c in tables.get(service, []):
        if c.state != InstanceState.UP or (c.adv_router, c.instance_id) == exclude:
            continue
        out.append(c.name or f"{c.adv_router}/{c.instance_id}")
    return out


class DrainBook:
    """The drained local instances of one node."""

    def __init__(self, instances: Iterable[InstanceConf], router_id: IPv4Address,
                 service_names: Mapping[int, str] | None = None) -> None:
        self.instances = {inst.name: inst for inst in instances}
        self.router_id = router_id
        self.service_names = dict(service_names or {})
        self.drained: set[str] = set()

    def state(self, name: str) -> InstanceState:
        return InstanceState.DRAINING if name in self.drained else InstanceState.UP

    def instance(self, name: str) -> InstanceConf:
        inst = self.instances.get(name)
        if inst is None:
            known = ", ".join(sorted(self.instances)) or "none"
            raise DrainError(f"unknown instance {name!r} on this node (known: {known})")
        return inst

    def drain(self, name: str, tables: Mapping[int, ServiceTable], force: bool = False
              ) -> DrainResult:
        """Mark ``name`` draining. Refused (DrainError) when, in this node's view, it is
        the last instance of its service taking new flows, unless ``force``."""
        inst = self.instance(name)
        if name in self.drained:
            return DrainResult(name, InstanceState.DRAINING, False,
                               f"instance {name} is already draining")
        svc = self.service_names.get(inst.service, str(inst.service))
        me = (self.router_id, inst.id)
        mine_up = any((c.adv_router, c.instance_id) == me and c.state == InstanceState.UP
                      for c in tables.get(inst.service, []))
        last = mine_up and not serving_new_flows(tables, inst.service, exclude=me)
        if last and not force:
            raise DrainError(f"instance {name} is the last one of service {svc} serving "
                             f"new flows: use --force")
        self.drained.add(name)
        note = f" (forced: service {svc} has no other instance for new flows)" if last else ""
        log.info("instance %s: draining%s", name, note)
        return DrainResult(name, InstanceState.DRAINING, True,
                           f"instance {name} is draining: no new flows, existing flows "
                           f"stay{note}")

    def undrain(self, name: str) -> DrainResult:
        self.instance(name)
        if name not in self.drained:
            return DrainResult(name, InstanceState.UP, False,
                               f"instance {name} is not draining")
        self.drained.discard(name)
        log.info("instance %s: undrained, takes new flows again", name)
        return DrainResult(name, InstanceState.UP, True,
                           f"instance {name} is up: takes new flows again")

    def restore(self, status_file: Path, status: Mapping[str, Any] | None) -> None:
        """Take back the drained set of a previous run of this D-MANO (its status file),
        keeping only instances still configured."""
        if not status:
            return
        names = status.get("drained")
        if not isinstance(names, list):
            return
        kept = {n for n in names if isinstance(n, str) and n in self.instances}
        if kept:
            log.info("instances still drained from %s: %s", status_file,
                     ", ".join(sorted(kept)))
        self.drained |= kept
