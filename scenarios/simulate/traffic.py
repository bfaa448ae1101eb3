"""The flow model: the scenario's flows, placed as the connectors place them.

Flows are the run's :func:`scenarios.spec.flow_schedule` (same seed, same source ports,
same phases as the emulated run's generators). A flow is decided when its first packet
reaches its ingress connector and re-decided only where the connector would:

* **instance selection**, at each connector on the way: the select entry (service,
  from_remote) of the node's D-MANO tables at that time
  (:func:`dmano.connector_state.groups_from_tables`) gives a group; the flow's hash
  (:func:`connector_p4.flowhash.flow_hash` of its 5-tuple, the NSH context header)
  picks slot ``hash % n_slots`` of the group's members expanded by weight, in the order
  the D-MANO writes them (``connector_p4/ebpf/connector.c`` ``select_member``);
* **flow cache**: the choice is kept, per (connector, service, from_remote), while the
  member stays in the group (with any weight, 0 for a draining one); a member that
  leaves the group (its instances withdrawn or unreachable) sends the flow through
  selection again at that connector;
* **chains**: service k+1 is chosen at the node that hosts the instance chosen for
  service k; a packet that arrives from a remote connector (from_remote 1) goes to the
  node's local-only group if it has a local instance taking new flows, else to the
  group of all candidates (it may then bounce to another node, at most
  ``max_bounces`` times); after the last service the packet goes to the destination
  host's node;
* **forwarding**: between connectors (and to the destination) a packet follows each
  router's routes, i.e. the next hop of the router's shortest-path tree at its last SPF
  run (:mod:`scenarios.simulate.paths`); it is lost on a link that is down, at a
  router that is down, in a loop or where there is no route.

A flow is *broken* while its packets are lost: its chosen instance is not running (a
VNF killed, until the local D-MANO takes it out of its connector), a group is empty,
forwarding fails, or its ingress node is down. Packets sent while broken are lost
(``losses.csv``, ``received`` = sent - lost in ``flows.csv`` and ``traffic.csv``);
otherwise every packet arrives (no queueing, no overload drops: a VNF beyond its
capacity still forwards everything). The load of an instance is the packets per
second of the flows that reach it; the D-MANOs measure it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from connector_p4.flowhash import flow_hash
from dmano.connector_state import MemberKey
from dmano.daemon import DEBOUNCE_S
from scenarios.simulate.dmano_node import LocalInstance
from scenarios.simulate.paths import NO_HOP
from scenarios.simulate.store import Version
from scenarios.spec import PlannedFlow, flow_schedule

if TYPE_CHECKING:
    from scenarios.simulate.sim import Simulation

log = logging.getLogger(__name__)

UDP = 17


@dataclass(eq=False)
class Flow:
    fid: int
    plan: PlannedFlow
    chain: tuple[int, ...]  # service ids
    ingress: int
    egress: int
    hash: int
    first: float  # wall time of its first packet
    end: float  # wall time after its last packet
    pps: float
    cache: dict[tuple[int, int, int], MemberKey] = field(default_factory=dict)
    reached: list[LocalInstance] = field(default_factory=list)  # process its packets
    on: list[LocalInstance] = field(default_factory=list)  # chosen (even if dead)
    at: set[tuple[int, int]] = field(default_factory=set)  # (node, service) decisions
    # routers its packets cross -> the routers they forward them to (segment ends)
    via: dict[int, set[int]] = field(default_factory=dict)
    broken: str | None = None
    since: float = 0.0
    losses: list[tuple[float, float]] = field(default_factory=list)  # wall intervals
    first_instance: str = ""
    alive: bool = False

    def packets(self, a: float, b: float) -> int:
        """Packets it sends in [a, b) (wall clock)."""
        a, b = max(a, self.first), min(b, self.end)
        if b <= a:
            return 0
        step = 1.0 / self.pps

        def upto(t: float) -> int:  # packets sent before t
            return max(0, math.ceil((t - self.first) / step - 1e-9))

        return upto(b) - upto(a)

    @property
    def sent(self) -> int:
        return self.packets(self.first, self.end)


class Traffic:
    """All flows of a run (see the module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        s = sim.s
        topo = s.topology
        self.host_node = {h.name: sim.idx[h.node] for h in topo.hosts}
        self.chains = {c.spi: tuple(sim.service_ids[x] for x in c.services)
                       for c in topo.chains}
        self.ingress_nodes = {self.host_node[c.source] for c in s.traffic
                              if c.chain is not None}
        self.flows: list[Flow] = []
        self.live: set[Flow] = set()
        self.at_index: dict[int, dict[int, set[Flow]]] = {}  # service -> node -> flows
        self.via_index: dict[int, set[Flow]] = {}
        self.on_index: dict[str, set[Flow]] = {}
        self.evaluations = 0
        self._members: dict[tuple[int, int], tuple[frozenset[MemberKey], ...]] = {}

    # -- life of a flow -------------------------------------------------------------------
    def schedule_flows(self) -> None:
        sim = self.sim
        s = sim.s
        hosts = sim.addr.hosts
        for p in flow_schedule(s, sim.rep):
            cls = s.traffic_class(p.traffic)
            chain = self.chains[cls.chain] if cls.chain is not None else ()
            f = Flow(
                fid=p.flow_id, plan=p, chain=chain, ingress=self.host_node[cls.source],
                egress=self.host_node[cls.destination],
                hash=flow_hash(hosts[cls.source], hosts[cls.destination], UDP,
                               p.src_port, p.dst_port),
                first=p.first_packet_wall_s, end=p.start_wall_s + p.duration_wall_s,
                pps=p.packets_per_s)
            self.flows.append(f)
            if f.first < f.end:
                sim.engine.at(f.first, self._start, f)

    def _start(self, f: Flow) -> None:
        f.alive = True
        self.live.add(f)
        self.evaluate(f)
        f.first_instance = f.on[0].spec.name if f.on else ""
        self.sim.engine.at(f.end, self._end, f)

    def _end(self, f: Flow) -> None:
        now = self.sim.engine.now
        if f.broken is not None:
            f.losses.append((f.since, now))
        f.broken = None
        self._set_reached(f, [], now)
        self._unindex(f)
        f.alive = False
        self.live.discard(f)

    def finish(self, end: float) -> None:
        """Close the flows still running at the end of the run."""
        for f in list(self.live):
            if f.broken is not None:
                f.losses.append((f.since, end))
                f.broken = None
        now = self.sim.engine.now
        for x in self.sim.instances.values():
            x.account(now)

    # -- placing ------------------------------------------------------------------------------
    def evaluate(self, f: Flow) -> None:
        """(Re)place flow ``f`` now, keeping what the flow caches keep."""
        if not f.alive:
            return
        now = self.sim.engine.now
        self.evaluations += 1
        reached, on, at, via, broken = self._path(f, now)
        self._unindex(f)
        f.on, f.at, f.via = on, at, via
        self._index(f)
        self._set_reached(f, reached, now)
        if f.broken is not None and broken is None:
            f.losses.append((f.since, now))
        elif f.broken is None and broken is not None:
            f.since = now
        f.broken = broken

    def _set_reached(self, f: Flow, reached: list[LocalInstance], now: float) -> None:
        old = {id(x): x for x in f.reached}
        new = {id(x): x for x in reached}
        for k, x in old.items():
            if k not in new:
                x.set_load(now, x.load - f.pps)
        for k, x in new.items():
            if k not in old:
                x.set_load(now, x.load + f.pps)
        f.reached = reached

    def _path(self, f: Flow, t: float) -> tuple[list[LocalInstance], list[LocalInstance],
                                                set[tuple[int, int]], dict[int, set[int]],
                                                str | None]:
        sim = self.sim
        up = sim.adj.node_up
        reached: list[LocalInstance] = []
        on: list[LocalInstance] = []
        at: set[tuple[int, int]] = set()
        via: dict[int, set[int]] = {f.ingress: set()}
        node = f.ingress
        if not up[node]:
            return reached, on, at, via, "ingress node down"
        for sid in f.chain:
            fr = 0
            hops = 0
            while True:
                at.add((node, sid))
                via.setdefault(node, set())
                if not up[node]:
                    return reached, on, at, via, "node down"
                groups, selects, slots = sim.tables.groups(node, sid, t)
                gid = selects.get((sid, fr))
                members = groups.get(gid) if gid is not None else None
                if not members:
                    return reached, on, at, via, "no instance"
                ck = (node, sid, fr)
                m = f.cache.get(ck)
                if m is None or m not in members:
                    sl = slots[gid]  # type: ignore[index]
                    if not sl:
                        f.cache.pop(ck, None)
                        return reached, on, at, via, "no instance"
                    m = sl[f.hash % len(sl)]
                    f.cache[ck] = m
                if m.kind == "local":
                    x = sim.dmano[node].instance_by_port(m.port)
                    if x is None:
                        return reached, on, at, via, "no instance"
                    on.append(x)
                    if not x.running:
                        return reached, on, at, via, "vnf down"
                    reached.append(x)
                    break
                dest = sim.node_of_endpoint.get(m.endpoint)
                if dest is None:
                    return reached, on, at, via, "unknown endpoint"
                if not self._walk(node, dest, via):
                    return reached, on, at, via, "unreachable"
                node, fr = dest, 1
                hops += 1
                if hops > sim.opts.max_bounces:
                    return reached, on, at, via, "loop"
        if not self._walk(node, f.egress, via):
            return reached, on, at, via, "unreachable"
        return reached, on, at, via, None

    def _walk(self, u: int, v: int, via: dict[int, set[int]]) -> bool:
        """Forward from router ``u`` to router ``v`` hop by hop with each router's routes;
        each router crossed goes to ``via`` with ``v`` (where it forwards to)."""
        sim = self.sim
        up = sim.adj.node_up
        phys = sim.adj.phys_up
        x = u
        seen = {u}
        n = sim.n
        while x != v:
            via.setdefault(x, set()).add(v)
            if not up[x]:
                return False
            nh = int(sim.paths.next_hops(int(sim.fib_sig[x]), v)[x])
            if nh == NO_HOP or nh < 0 or nh >= n:
                return False  # no route (transit networks are not simulated)
            k = sim.link_of.get((min(x, nh), max(x, nh)))
            via.setdefault(nh, set())
            if k is None or not phys[k] or nh in seen:
                return False
            seen.add(nh)
            x = nh
        return bool(up[v])

    # -- indexes ------------------------------------------------------------------------------
    def _index(self, f: Flow) -> None:
        for node, sid in f.at:
            self.at_index.setdefault(sid, {}).setdefault(node, set()).add(f)
        for r in f.via:
            self.via_index.setdefault(r, set()).add(f)
        for x in f.on:
            self.on_index.setdefault(x.spec.name, set()).add(f)

    def _unindex(self, f: Flow) -> None:
        for node, sid in f.at:
            per = self.at_index.get(sid, {})
            got = per.get(node)
            if got is not None:
                got.discard(f)
                if not got:
                    del per[node]
        for r in f.via:
            got = self.via_index.get(r)
            if got is not None:
                got.discard(f)
                if not got:
                    del self.via_index[r]
        for x in f.on:
            got = self.on_index.get(x.spec.name)
            if got is not None:
                got.discard(f)

    def _reevaluate(self, flows: Iterable[Flow]) -> None:
        for f in sorted(set(flows), key=lambda g: g.fid):
            self.evaluate(f)

    # -- what changes placements --------------------------------------------------------------
    def instance_down(self, x: LocalInstance) -> None:
        self._reevaluate(self.on_index.get(x.spec.name, ()))

    def node_down(self, i: int) -> None:
        self._reevaluate(self.via_index.get(i, ()))

    def links_down(self, routers: list[int]) -> None:
        flows: set[Flow] = set()
        for r in routers:
            flows |= self.via_index.get(r, set())
        self._reevaluate(flows)

    def routes_changed(self, routers: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Routers ran SPF and changed routes (signature ``old`` -> ``new``): re-decide
        the flows whose packets one of them now forwards elsewhere."""
        paths = self.sim.paths
        flows: set[Flow] = set()
        for r, so, sn in zip(routers.tolist(), old.tolist(), new.tolist(), strict=True):
            for f in self.via_index.get(r, ()):
                if f in flows:
                    continue
                for dest in f.via.get(r, ()):
                    if paths.next_hops(so, dest)[r] != paths.next_hops(sn, dest)[r]:
                        flows.add(f)
                        break
        if flows:
            self._reevaluate(flows)

    def _check_later(self, arr: np.ndarray, nodes: Iterable[int], sid: int | None) -> None:
        for node in nodes:
            t = float(arr[node])
            if math.isfinite(t):
                self.sim.engine.at(t + DEBOUNCE_S, self._check, node, sid)

    def _check(self, node: int, sid: int | None) -> None:
        """The node's tables may have changed its groups' members: re-decide its flows
        of the services whose members changed since the last check."""
        sids = [sid] if sid is not None else [s for s, per in self.at_index.items()
                                              if node in per]
        now = self.sim.engine.now
        flows: set[Flow] = set()
        for s in sids:
            here = self.at_index.get(s, {}).get(node)
            if not here:
                continue
            groups, selects, _ = self.sim.tables.groups(node, s, now)
            members = tuple(frozenset(groups.get(selects.get((s, fr), -1), {}))
                            for fr in (0, 1))
            if self._members.get((node, s)) == members:
                continue
            self._members[(node, s)] = members
            flows |= here
        if flows:
            self._reevaluate(flows)

    def instance_changed(self, v: Version) -> None:
        """An announcement that may change group membership (new, state, withdrawn)."""
        sid = None
        for h in reversed(self.sim.store.history(v.key)):
            if h.content is not None:
                sid = h.content.service_id  # type: ignore[union-attr]
                break
        if sid is None or v.arr is None:
            return
        self._check_later(v.arr, list(self.at_index.get(sid, {})), sid)

    def network_changed(self, v: Version) -> None:
        """A router LSA changed: reachability (membership) may change everywhere."""
        if v.arr is None:
            return
        nodes = set()
        for per in self.at_index.values():
            nodes |= set(per)
        self._check_later(v.arr, sorted(nodes), None)

    def policy_changed(self) -> None:
        nodes = set()
        for per in self.at_index.values():
            nodes |= set(per)
        now = self.sim.engine.now
        for node in sorted(nodes):
            self.sim.engine.at(now + DEBOUNCE_S, self._check, node, None)


__all__ = ["Flow", "Traffic"]
