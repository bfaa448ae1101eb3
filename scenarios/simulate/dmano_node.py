"""The D-MANO of one simulated NFV node: what it announces, and the tables it computes.

Announcing (nodes that host instances), every period of the policy (each node at its own
phase, as D-MANOs started one by one are) and between periods as the daemon does:

* measure each local VNF's load: the packets per second the flow model sends through
  it (the VNF's counters report its rate over the last second; here the current rate);
  CPU is modelled as ``100 x load / capacity`` (as :func:`dmano.policy.fixed_point_shares`
  does), for the ``utilisation`` cost with ``source: cpu``;
* VNF cost by the policy (:meth:`dmano.policy.Policy.vnf_cost`), whether to announce by
  the daemon's own rule (:func:`dmano.daemon.announcement_due`: first, state change,
  hysteresis), the announcement's SEQUENCE by :func:`dmano.daemon.next_sequence`, its
  body by :func:`dmano.lsa.encode`, the opaque ID by the OSPF API session's own rule
  (:func:`dmano.ospf_api.choose_opaque_id`: a refresh within FRR's 5 s MinLSInterval
  goes out under the next generation and the previous LSA is flushed), the LSA by
  :func:`dmano.lsdb.build_opaque_lsa`;
* a VNF that dies is withdrawn ``local_reaction_s`` later (pidfd -> withdraw_now: the
  local tables first, then the flush), a drain is announced at once (control socket),
  a policy reload (``set_policy_param``) re-announces every instance at once.

Tables (any node whose tables matter: traffic passes through it, or its weights are
written): :func:`dmano.service_plane.candidate_tables` (the real candidates part) on the
instances the node holds and the network costs of its router-LSA signature
(:mod:`scenarios.simulate.paths`), one service at a time, cached by its inputs. The
tables at time t are those of the LSDB the node held at ``t - DEBOUNCE_S`` (the
daemon's 20 ms debounce after an LSA arrives; its own withdrawals count at once).
Connector groups come from :func:`dmano.connector_state.groups_from_tables`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING

from dmano import lsa
from dmano.config import InstanceConf, NodeConfig
from dmano.connector_state import MemberKey, groups_from_tables
from dmano.daemon import DEBOUNCE_S, U32_MAX, announcement_due, next_sequence
from dmano.model import InstanceState, VnfAnnouncement
from dmano.ospf_api import choose_opaque_id
from dmano.policy import Measurement, Policy
from dmano.service_plane import ServiceTable, candidate_tables
from topologies.addressing import vnf_port
from topologies.spec import InstanceSpec

if TYPE_CHECKING:
    from scenarios.simulate.sim import Simulation

log = logging.getLogger(__name__)

Groups = tuple[dict[int, dict[MemberKey, int]], dict[tuple[int, int], int],
               dict[int, list[MemberKey]]]

SIM_EPOCH = 1767225600.0  # unix time of the simulation's t = 0 (2026-01-01), for SEQUENCE


@dataclass
class LocalInstance:
    """One VNF instance of a node, as its D-MANO and the flow model see it."""

    spec: InstanceSpec
    service_id: int
    anycast: IPv4Address
    key: tuple[IPv4Address, int]  # the D-MANO's (advertising router, instance id)
    running: bool  # the VNF process is up
    load: float = 0.0  # packets/s going through it now
    cum_packets: float = 0.0  # packets processed since t = 0
    cum_t: float = 0.0
    announced_cost: int | None = None
    announced_state: InstanceState | None = None
    generation: int = 0
    announced: tuple[int, float] | None = None  # (opaque id, time) ospfd holds
    body: bytes = b""
    originated: tuple[int, float] | None = None  # kept after a withdrawal
    draining: bool = False
    cause: int = -1  # event whose consequence the next announcement is

    def account(self, t: float) -> None:
        if t > self.cum_t:
            self.cum_packets += self.load * (t - self.cum_t)
            self.cum_t = t

    def set_load(self, t: float, load: float) -> None:
        self.account(t)
        self.load = max(load, 0.0)

    @property
    def state(self) -> InstanceState:
        return InstanceState.DRAINING if self.draining else InstanceState.UP


@dataclass
class Origination:
    """What a D-MANO hands ospfd: a body under an opaque ID, or a delete of one."""

    instance_id: int
    opaque_id: int
    body: bytes | None  # None: delete (flush)
    cause: int = -1
    withdrawal: bool = False  # the instance leaves (not a generation switch)


@dataclass
class DmanoNode:
    """The D-MANO of node ``index`` (see the module docstring)."""

    index: int
    name: str
    router_id: IPv4Address
    endpoint: IPv4Address
    instances: list[LocalInstance] = field(default_factory=list)
    phase: float = 0.0  # first period tick
    alive: bool = True  # the daemon runs
    since: float = -math.inf  # its tables exist from then on (after a restart)
    frozen_at: float | None = None  # died then: the connector keeps those tables
    sequence: int = 0
    cfg: NodeConfig | None = None

    def config(self) -> NodeConfig:
        """A node configuration for :func:`dmano.connector_state.groups_from_tables`
        (local instances by P4 port and a made-up MAC)."""
        if self.cfg is None:
            i = self.index
            self.cfg = NodeConfig(
                node=self.name, router_id=self.router_id, nsh_endpoint=self.endpoint,
                policy=Path("/dev/null"), status_file=Path("/dev/null"),
                instances=tuple(InstanceConf(
                    name=x.spec.name, id=x.spec.id, service=x.service_id,
                    capacity=x.spec.capacity, stats=Path("/dev/null"),
                    port=vnf_port(x.spec.id),
                    mac=f"02:5d:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}:"
                        f"{x.spec.id & 255:02x}", cost=x.spec.cost)
                    for x in self.instances))
        return self.cfg

    def instance_by_port(self, port: int) -> LocalInstance | None:
        for x in self.instances:
            if vnf_port(x.spec.id) == port:
                return x
        return None

    # -- announcing -----------------------------------------------------------------------
    def _next_sequence(self, t: float) -> int:
        self.sequence = next_sequence(self.sequence, SIM_EPOCH + t)
        return self.sequence

    def announcement(self, x: LocalInstance, cost: int, t: float) -> VnfAnnouncement:
        return VnfAnnouncement(
            instance_id=x.spec.id, service_id=x.service_id, anycast=x.anycast, cost=cost,
            endpoint=self.endpoint, capacity=x.spec.capacity,
            load=min(max(round(x.load), 0), U32_MAX), state=x.state, name=x.spec.name,
            sequence=self._next_sequence(t))

    def measurement(self, x: LocalInstance) -> Measurement:
        cap = float(x.spec.capacity)
        cores = x.spec.cpu_limit if x.spec.cpu_limit is not None else 1.0
        return Measurement(capacity=cap, load=x.load,
                           cpu_percent=100.0 * cores * x.load / cap if cap > 0 else 100.0,
                           cpu_cores=cores, configured_cost=x.spec.cost)

    def announce(self, x: LocalInstance, cost: int, t: float, cause: int = -1
                 ) -> list[Origination]:
        """Originate ``x``'s LSA with ``cost`` (as Dmano._announce + the session's _push)."""
        body = lsa.encode(self.announcement(x, cost, t))
        x.announced_cost = cost
        x.announced_state = x.state
        if x.announced is not None and x.body == body:
            return []
        opaque_id, generation, previous = choose_opaque_id(
            x.spec.id, x.generation, x.announced, x.originated, t)
        x.generation = generation
        x.announced = (opaque_id, t)
        x.originated = (opaque_id, t)
        x.body = body
        out = [Origination(x.spec.id, opaque_id, body, cause)]
        if previous is not None:
            out.append(Origination(x.spec.id, previous, None, cause))
        return out

    def withdraw(self, x: LocalInstance, cause: int = -1) -> list[Origination]:
        """Flush ``x``'s LSA (Dmano._withdraw / withdraw_now + the session's withdraw)."""
        x.announced_cost = None
        x.announced_state = None
        if x.announced is None:
            return []
        opaque_id = x.announced[0]
        x.announced = None
        x.body = b""
        return [Origination(x.spec.id, opaque_id, None, cause, withdrawal=True)]

    def period(self, policy: Policy, t: float) -> list[Origination]:
        """One measure_and_announce step."""
        out: list[Origination] = []
        for x in self.instances:
            if not x.running:
                if x.announced is not None:
                    out += self.withdraw(x, x.cause)
                    x.cause = -1
                continue
            cost = policy.vnf_cost(self.measurement(x))
            if not announcement_due(policy, cost, x.announced_cost, x.state,
                                    x.announced_state):
                continue
            out += self.announce(x, cost, t, x.cause)
            x.cause = -1
        return out


class Tables:
    """Every node's D-MANO tables, computed on demand (see the module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self._cache: dict[tuple[int, int], list[tuple[object, ServiceTable | None]]] = {}
        self._groups: dict[tuple[int, int], tuple[ServiceTable | None, Groups]] = {}
        self.computed = 0

    def view_time(self, node: int, t: float) -> float | None:
        """The LSDB time a node's tables at ``t`` reflect (None: it has no tables)."""
        d = self.sim.dmano[node]
        if t < d.since:
            return None
        if d.frozen_at is not None:
            t = min(t, d.frozen_at)
        return t - DEBOUNCE_S

    def table(self, node: int, sid: int, t: float) -> ServiceTable | None:
        """Node ``node``'s table of service ``sid`` at ``t`` (None: no entry at all)."""
        tv = self.view_time(node, t)
        if tv is None:
            return None
        sim = self.sim
        store = sim.store
        sig = store.router_signature(node, tv)
        keys = sim.service_instances.get(sid, ())
        pidx = sim.policy_index(tv)
        ck = (sig, store.group_state(sid, node, tv), pidx)
        entries = self._cache.setdefault((node, sid), [])
        for key, tab in entries:
            if key == ck:
                return tab
        instances = {}
        for k in keys:
            ann = store.instance(k, node, tv)
            if ann is not None:
                instances[k] = ann
        self.computed += 1
        tables = candidate_tables(instances, sim.paths.costs(sig, node),
                                  sim.router_ids[node], sim.policy_at_index(pidx))
        tab = tables.get(sid)
        entries.insert(0, (ck, tab))
        del entries[4:]
        return tab

    def groups(self, node: int, sid: int, t: float) -> Groups:
        """The connector's groups, select entries and each group's slots (its members in
        the order the D-MANO writes them, each ``weight`` times: the eBPF connector picks
        slot ``hash % n_slots``) for ``sid`` at ``node``."""
        tab = self.table(node, sid, t)
        key = (node, sid)
        got = self._groups.get(key)
        if got is not None and got[0] is tab:
            return got[1]
        groups, selects = groups_from_tables(self.sim.dmano[node].config(),
                                             {sid: tab} if tab is not None else {})
        # the writer sends a group's members sorted (connector_state.diff), the target
        # expands them in that order (connector_p4/ebpf_maps.pack_group)
        slots = {gid: [m for m, w in sorted(members.items()) for _ in range(w)]
                 for gid, members in groups.items()}
        result = (groups, selects, slots)
        self._groups[key] = (tab, result)
        return result


__all__ = ["SIM_EPOCH", "DmanoNode", "Groups", "LocalInstance", "Origination", "Tables"]
