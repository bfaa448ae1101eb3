"""One simulated run of a scenario: routers, D-MANOs, traffic and the timeline.

:class:`Simulation` wires the parts together on the discrete-event engine:

* every router originates a router LSA (point-to-point links of its full adjacencies,
  stubs for its subnets, ``dmano.lsdb.build_router_lsa``), re-originated after an
  adjacency change no sooner than the LSA throttle allows, flooded
  (:mod:`~scenarios.simulate.flooding`) into the shared LSDB
  (:mod:`~scenarios.simulate.store`); SPF runs follow FRR's throttle and set each
  router's routes (its router-LSA signature at the run);
* every node hosting instances runs its D-MANO's period
  (:mod:`~scenarios.simulate.dmano_node`) and floods what it announces;
* the flow model (:mod:`~scenarios.simulate.traffic`) places the scenario's flows;
* the scenario's events act on all of it with the emulation's semantics
  (:meth:`Simulation._apply`).

At t = 0 the network is converged, as the runner waits for the ingress D-MANOs to have
programmed their connectors: every router holds every router LSA and the announcement of
every running instance at load 0.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

import numpy as np

from dmano import lsa
from dmano.daemon import DEBOUNCE_S
from dmano.lsdb import INITIAL_SEQ, MAX_AGE, build_opaque_lsa, build_router_lsa
from dmano.model import RouterLink, VnfAnnouncement
from dmano.policy import Policy
from dmano.service_plane import LINK_P2P, LINK_STUB
from scenarios.simulate.addressing import Addressing, plan
from scenarios.simulate.convergence import Convergence
from scenarios.simulate.dmano_node import DmanoNode, LocalInstance, Origination, Tables
from scenarios.simulate.engine import Engine, Timer
from scenarios.simulate.flooding import Adjacencies, OspfParams, SpfThrottle, flood, resync
from scenarios.simulate.outputs import RunOutput
from scenarios.simulate.paths import Paths
from scenarios.simulate.stats import ControlStats
from scenarios.simulate.store import LsaStore, Version
from scenarios.simulate.traffic import Traffic
from scenarios.spec import Event, Scenario

log = logging.getLogger(__name__)

WATCH_ALL_UP_TO = 250  # watch="auto": every node's weights up to this many nodes


@dataclass(frozen=True)
class SimOptions:
    """What the model does not take from the scenario and topology files."""

    hop_delay_s: float = 0.001  # per flooding hop (veth + ospfd): see flooding.py
    adjacency_s: float | None = None  # link/node up -> full adjacency (None: hello / 2)
    local_reaction_s: float = 0.02  # VNF death -> local connector rewritten, LSA flushed
    vnf_start_s: float = 0.5  # start_instance -> the VNF runs (its counters are written)
    dmano_start_s: float = 1.0  # a (re)started D-MANO's first period
    node_detection: str = "bfd"  # bfd | carrier: how neighbours notice a failed node
    watch: str = "auto"  # whose weights are written: auto | all | ingress | none
    time_scale: float | None = None  # override the scenario's time_scale
    max_bounces: int = 8  # connector-to-connector hops of one service before a drop
    record_tables: bool = False  # keep (time, node) of every change of a watched table

    def __post_init__(self) -> None:
        if self.node_detection not in ("bfd", "carrier"):
            raise ValueError(f"node_detection: bfd or carrier, got {self.node_detection!r}")
        if self.watch not in ("auto", "all", "ingress", "none"):
            raise ValueError(f"watch: auto, all, ingress or none, got {self.watch!r}")


@dataclass
class _RouterOrig:
    last: float = -math.inf
    timer: Timer | None = None
    cause: int = -1


@dataclass
class WeightRow:
    t: float  # wall
    node: int
    sid: int
    instance: str
    weight: int


@dataclass
class SimResult:
    """What a run produced (the files are written by :mod:`scenarios.simulate.outputs`)."""

    wall_s: float = 0.0
    events_done: list[tuple[float, str, str]] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)


class Simulation:
    """A simulated run of ``scenario`` (repetition ``repetition``, its seed)."""

    def __init__(self, scenario: Scenario, repetition: int = 1,
                 options: SimOptions | None = None) -> None:
        self.opts = options or SimOptions()
        if self.opts.time_scale is not None:
            scenario = replace(scenario, time_scale=self.opts.time_scale)
        if scenario.centralized:
            raise ValueError("the simulation models the distributed control plane "
                             "(control: distributed) only")
        self.s = scenario
        self.rep = repetition
        self.rng = random.Random(scenario.rep_seed(repetition) * 7919 + 17)
        topo = scenario.topology
        self.topo = topo
        self.n = len(topo.nodes)
        self.names = [x.name for x in topo.nodes]
        self.idx = {name: i for i, name in enumerate(self.names)}
        self.addr: Addressing = plan(topo)
        self.router_ids: list[IPv4Address] = list(self.addr.router_ids)
        self.node_of_endpoint = {str(e): i for i, e in enumerate(self.addr.endpoints)}
        links = [(self.idx[lk.a], self.idx[lk.b], lk.cost) for lk in topo.links]
        self.link_of = {(min(a, b), max(a, b)): k for k, (a, b, _) in enumerate(links)}
        self.adj = Adjacencies(self.n, links)
        self.params = OspfParams.from_timers(topo.ospf, self.opts.hop_delay_s,
                                             self.opts.adjacency_s)
        self.engine = Engine()
        self.store = LsaStore(self.n)
        self.stats = ControlStats(scenario.time_scale, scenario.duration_s)
        self.result = SimResult()
        self.failed_links: set[int] = set()
        self.link_gen = [0] * len(links)  # bumps when a link changes (stale timers)

        # services, instances, D-MANOs
        self.service_ids = {svc.name: svc.id for svc in topo.services}
        self.service_names = {svc.id: svc.name for svc in topo.services}
        self.dmano = [DmanoNode(i, self.names[i], self.router_ids[i], self.addr.endpoints[i])
                      for i in range(self.n)]
        self.instances: dict[str, LocalInstance] = {}
        for spec in topo.instances:
            svc = topo.service(spec.service)
            i = self.idx[spec.node]
            x = LocalInstance(spec, svc.id, svc.anycast, (self.router_ids[i], spec.id),
                              running=spec.start)
            self.instances[spec.name] = x
            self.dmano[i].instances.append(x)
        self.instance_node = {name: self.idx[x.spec.node] for name, x in self.instances.items()}
        svc_inst: dict[int, list[tuple[IPv4Address, int]]] = {}
        for x in self.instances.values():
            svc_inst.setdefault(x.service_id, []).append(x.key)
        self.service_instances = {sid: tuple(keys) for sid, keys in svc_inst.items()}
        for sid, keys in self.service_instances.items():
            for key in keys:
                self.store.group_of[key] = sid
        self.hosting = [i for i in range(self.n) if self.dmano[i].instances]

        # policies over (wall) time: scenario policies with period_s on the wall clock
        self._policy_t: list[float] = [-math.inf]
        self._policies: list[Policy] = [scenario.wall_policy()]

        self.paths = Paths(self.store, self.router_ids, self.hosting)
        self.tables = Tables(self)
        self.spf = SpfThrottle(self.n, self.params)
        self._rorig = [_RouterOrig() for _ in range(self.n)]
        self.spf_runs: dict[int, list[float]] = {}  # router -> SPF run times
        self.conv = Convergence(self)
        self.traffic = Traffic(self)
        self.watched = self._watched()
        self._ticks: dict[int, Timer] = {}
        self._install_initial()
        base = self.store.router_signature(0, 0.0)
        self.fib_sig = np.full(self.n, base, dtype=np.int64)
        self.weight_rows: list[WeightRow] = []
        self._last_weights: dict[tuple[int, int], dict[str, int]] = {}
        self._down_vnfs: dict[int, list[LocalInstance]] = {}  # failed node -> its VNFs
        self.table_changes: list[tuple[float, int]] = []  # with options.record_tables
        self._last_tables: dict[tuple[int, int], object] = {}

    # -- set-up ----------------------------------------------------------------------------
    def _watched(self) -> list[int]:
        mode = self.opts.watch
        if mode == "auto":
            mode = "all" if self.n <= WATCH_ALL_UP_TO else "ingress"
        if mode == "all":
            return list(range(self.n))
        if mode == "none":
            return []
        return sorted(self.traffic.ingress_nodes)

    def _install_initial(self) -> None:
        for i in range(self.n):
            raw = self.router_lsa(i, INITIAL_SEQ)
            self.store.install_base(self.store.make(raw, i, 0.0))
            self._rorig[i].last = -math.inf
        policy = self.policy_at(0.0)
        for d in self.dmano:
            d.phase = self.rng.uniform(0.0, policy.period_s)
            for x in d.instances:
                if not x.running:
                    continue
                cost = policy.vnf_cost(d.measurement(x))
                for o in d.announce(x, cost, -60.0):
                    raw = self._opaque_raw(d, o, base=True)
                    self.store.install_base(self.store.make(raw, d.index, -60.0))

    def router_lsa(self, i: int, seq: int) -> bytes:
        """Router ``i``'s router LSA: a point-to-point link and a stub per full
        adjacency, its loopback (cost 0) and connector / host subnets (cost 10)."""
        links: list[RouterLink] = []
        for peer, k in self.adj.by_node[i]:
            if not self.adj.full[k]:
                continue
            a_end, b_end = self.addr.link_ends[k]
            mine = a_end if int(self.adj.a[k]) == i else b_end
            cost = int(self.adj.cost[k])
            links.append(RouterLink(LINK_P2P, self.router_ids[peer], mine, cost))
            net = self.addr.link_nets[k]
            links.append(RouterLink(LINK_STUB, net.network_address, net.netmask, cost))
        for net, mask in self.addr.stubs[i]:
            links.append(RouterLink(LINK_STUB, net, mask,
                                    0 if mask == IPv4Address("255.255.255.255") else 10))
        return build_router_lsa(self.router_ids[i], links, seq=seq)

    # -- policies ----------------------------------------------------------------------------
    def policy_index(self, t: float) -> int:
        return bisect.bisect_right(self._policy_t, t) - 1

    def policy_at_index(self, i: int) -> Policy:
        return self._policies[i]

    def policy_at(self, t: float) -> Policy:
        return self._policies[self.policy_index(t)]

    # -- originating and flooding ----------------------------------------------------------
    def _opaque_raw(self, d: DmanoNode, o: Origination, base: bool = False) -> bytes:
        ls_id = (lsa.OPAQUE_TYPE << 24) | o.opaque_id
        key = (10, ls_id, int(d.router_id))
        held = self.store.latest(key)
        if o.body is None:
            if held is None:
                raise ValueError("flushing an LSA that was never originated")
            return build_opaque_lsa(lsa.OPAQUE_TYPE, o.opaque_id, d.router_id,
                                    held.raw[20:], seq=held.seq, age=MAX_AGE)
        seq = INITIAL_SEQ if held is None else held.seq + 1
        return build_opaque_lsa(lsa.OPAQUE_TYPE, o.opaque_id, d.router_id, o.body, seq=seq)

    def emit(self, d: DmanoNode, origs: list[Origination], local: bool = False) -> None:
        """Hand ``origs`` to the node's ospfd. ``local``: the D-MANO changed its own view
        at once (withdraw_now, note_own), not after ospfd's echo and the debounce."""
        now = self.engine.now
        for o in origs:
            raw = self._opaque_raw(d, o)
            self.originate(raw, d.index, now, o.cause,
                           local_effect=now - DEBOUNCE_S if local else None,
                           structural=o.withdrawal)

    def originate(self, raw: bytes, origin: int, t0: float, cause: int = -1,
                  local_effect: float | None = None, structural: bool = False) -> Version:
        """Flood a new LSA instance from ``origin`` at ``t0`` into the shared LSDB."""
        v = self.store.make(raw, origin, t0, cause)
        prev = self.store.latest(v.key)
        before = (self.store.instance(v.instance, origin, t0)
                  if v.instance is not None and not structural else None)
        fl = flood(self.adj, self.params, origin, t0, self.store.recent_arrays(v.key))
        v.arr = fl.arr
        if local_effect is not None:
            v.arr = v.arr.copy()
            v.arr[origin] = local_effect
        if v.instance is not None and not structural:
            structural = self._structural(v, before)
        if cause >= 0:
            self.conv.record(cause, v, prev)  # before it is in the store
        self.store.add(v)
        self.stats.flood(t0, fl, self.adj, origin, len(raw), v.is_router, v.content is None)
        if v.is_router:
            self._schedule_spf(v.arr)
            self.traffic.network_changed(v)
        elif structural:
            self.traffic.instance_changed(v)
        self._watch(v)
        return v

    def _structural(self, v: Version, old: VnfAnnouncement | None) -> bool:
        """Whether an announcement can change connector group membership somewhere (a
        new instance, a state change, a service with more live candidates than the
        group budget); a cost change cannot (every live candidate keeps weight >= 1).
        ``old``: the instance's announcement the origin held before."""
        if not isinstance(v.content, VnfAnnouncement):
            return False
        if old is None or old.state != v.content.state:
            return True
        keys = self.service_instances.get(v.content.service_id, ())
        return len(keys) > self.policy_at(v.t0).max_group_size

    def _schedule_spf(self, arr: np.ndarray) -> None:
        reached = np.flatnonzero(np.isfinite(arr))
        if len(reached) == 0:
            return
        times, inverse = np.unique(arr[reached], return_inverse=True)
        for j, t in enumerate(times):
            self.engine.at(float(t), self._router_lsa_arrived, reached[inverse == j])

    def _router_lsa_arrived(self, nodes: np.ndarray) -> None:
        nodes = nodes[self.adj.node_up[nodes]]
        sched, when = self.spf.schedule(nodes, self.engine.now)
        if len(sched) == 0:
            return
        times, inverse = np.unique(when, return_inverse=True)
        for j, t in enumerate(times):
            self.engine.at(float(t), self._spf_run, sched[inverse == j])

    def _spf_run(self, nodes: np.ndarray) -> None:
        now = self.engine.now
        nodes = nodes[self.adj.node_up[nodes]]
        self.spf.ran(nodes, now)
        if len(nodes) == 0:
            return
        self.stats.spf(now, len(nodes))
        for r in nodes.tolist():
            self.spf_runs.setdefault(r, []).append(now)
        sigs = self.store.router_signatures(nodes, now)
        differ = self.fib_sig[nodes] != sigs
        changed, old, new = nodes[differ], self.fib_sig[nodes][differ], sigs[differ]
        self.fib_sig[nodes] = sigs
        if len(changed):
            self.traffic.routes_changed(changed, old, new)

    def request_router_lsa(self, i: int, cause: int = -1) -> None:
        """Re-originate router ``i``'s LSA (its adjacencies changed), throttled."""
        st = self._rorig[i]
        if cause >= 0:
            st.cause = cause
        if st.timer is not None:
            return  # the pending origination will carry the change
        when = max(self.engine.now, st.last + self.params.lsa_throttle_s)
        st.timer = self.engine.at(when, self._originate_router, i)

    def _originate_router(self, i: int) -> None:
        st = self._rorig[i]
        st.timer = None
        if not self.adj.node_up[i]:
            return
        now = self.engine.now
        key = (1, int(self.router_ids[i]), int(self.router_ids[i]))
        held = self.store.latest(key)
        raw = self.router_lsa(i, held.seq + 1 if held is not None else INITIAL_SEQ)
        if held is not None and held.raw[20:] == raw[20:]:
            return  # same links: nothing to announce
        st.last = now
        cause, st.cause = st.cause, -1
        self.originate(raw, i, now, cause)

    # -- the weights of watched nodes ------------------------------------------------------
    def _watch(self, v: Version) -> None:
        if not self.watched or v.arr is None:
            return
        if v.is_router:
            sids = sorted(self.service_instances)
        elif isinstance(v.content, VnfAnnouncement):
            sids = [v.content.service_id]
        else:
            held = self.store.history(v.key)
            ann = next((h.content for h in held if isinstance(h.content, VnfAnnouncement)),
                       None)
            if ann is None:
                return
            sids = [ann.service_id]
        for node in self.watched:
            t = float(v.arr[node])
            if math.isfinite(t):
                self.engine.at(t + DEBOUNCE_S, self._record_weights, node, sids)

    def _record_weights(self, node: int, sids: list[int]) -> None:
        """A weight-change row (weight_changes.csv) per candidate whose weight at
        ``node`` differs from the last one recorded (0: no longer a candidate)."""
        now = self.engine.now
        for sid in sids:
            tab = self.tables.table(node, sid, now)
            if self.opts.record_tables:
                if (node, sid) in self._last_tables and self._last_tables[(node, sid)] != tab:
                    self.table_changes.append((now, node))
                self._last_tables[(node, sid)] = tab
            weights = {c.name: c.weight for c in tab} if tab else {}
            key = (node, sid)
            last = self._last_weights.get(key)
            if last is not None and all(last.get(n, 0) == w for n, w in weights.items()) \
                    and all(weights.get(n, 0) == w for n, w in last.items()):
                continue
            for name in sorted(set(weights) | set(last or {})):
                w = weights.get(name, 0)
                if last is None or name not in last or last[name] != w:
                    self.weight_rows.append(WeightRow(now, node, sid, name, w))
            self._last_weights[key] = {**{n: 0 for n in last or {}}, **weights}

    # -- D-MANO periods -----------------------------------------------------------------------
    def _start_ticks(self) -> None:
        for i in self.hosting:
            self._ticks[i] = self.engine.at(self.dmano[i].phase, self._tick, i)

    def _tick(self, i: int) -> None:
        d = self.dmano[i]
        now = self.engine.now
        policy = self.policy_at(now)
        if d.alive and self.adj.node_up[i] and now >= d.since:
            self.emit(d, d.period(policy, now))
        self._ticks[i] = self.engine.at(now + policy.period_s, self._tick, i)

    def _restart_ticks(self, i: int, at: float) -> None:
        old = self._ticks.get(i)
        if old is not None:
            old.cancel()
        self._ticks[i] = self.engine.at(at, self._tick, i)

    # -- running ------------------------------------------------------------------------------
    def run(self, output: RunOutput | None = None) -> SimResult:
        """Play the whole run; ``output`` gets every sample (and writes the folder when
        the caller calls its ``finish``)."""
        import time

        wall0 = time.monotonic()
        self.output = output if output is not None else RunOutput(self, None)
        s = self.s
        end = s.wall_duration_s
        self._start_ticks()
        self.traffic.schedule_flows()
        for k, ev in enumerate(s.events):
            self.engine.at(s.wall(ev.at_s), self._apply, k, ev)
        sample = s.wall(s.measure.sample_period_s)
        j = 1
        while j * sample <= end + 1e-9:
            self.engine.at(j * sample, self._sample, j * sample)
            j += 1
        step = 1.0
        t = step
        while t < end + step:
            self.engine.at(min(t, end), self._compact)
            t += step
        if self.watched:
            for node in self.watched:
                self._record_weights(node, sorted(self.service_instances))
        self.engine.run(end)
        self.traffic.finish(end)
        self.result.wall_s = time.monotonic() - wall0
        return self.result

    def _compact(self) -> None:
        margin = max(self.params.lsa_min_arrival_s, DEBOUNCE_S) + 0.05
        self.store.compact(self.engine.now, self.adj.node_up, margin)

    def _sample(self, t_wall: float) -> None:
        self.output.sample(t_wall)

    # -- events -------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.result.notes.append((self.engine.now, text))

    def _apply(self, k: int, ev: Event) -> None:
        now = self.engine.now
        self.result.events_done.append((now, ev.action, ev.target))
        self.conv.event(k, ev, now)
        a = ev.action
        if a in ("fail_instance", "stop_instance"):
            self._vnf_down(self.instances[ev.instance or ""], k)
        elif a in ("start_instance", "restore_instance"):
            x = self.instances[ev.instance or ""]
            self.engine.at(now + self.opts.vnf_start_s, self._vnf_up, x, k)
        elif a in ("drain_instance", "undrain_instance"):
            x = self.instances[ev.instance or ""]
            x.draining = a == "drain_instance"
            d = self.dmano[self.instance_node[x.spec.name]]
            if x.running and x.announced_cost is not None and d.alive:
                self.emit(d, d.announce(x, x.announced_cost, now, k), local=True)
        elif a in ("fail_link", "restore_link"):
            x, y = ev.link or ("", "")
            i, j = self.idx[x], self.idx[y]
            link = self.link_of[(min(i, j), max(i, j))]
            if a == "fail_link":
                self._link_down(link, k)
            else:
                self._link_up(link, k)
        elif a == "fail_node":
            self._node_down(self.idx[ev.node or ""], k)
        elif a == "restore_node":
            self._node_up(self.idx[ev.node or ""], k)
        elif a in ("fail_daemon", "restore_daemon"):
            self._daemon(ev, k)
        elif a == "set_policy_param":
            assert ev.policy is not None
            self._set_policy(self.s.wall_policy(ev.policy), k)
        elif a in ("set_load", "fail_orchestrator", "restore_orchestrator"):
            pass  # set_load is in the flow schedule; no orchestrator in distributed mode
        else:
            raise ValueError(f"unknown action {a}")

    def _vnf_down(self, x: LocalInstance, cause: int) -> None:
        now = self.engine.now
        x.running = False
        self.traffic.instance_down(x)
        i = self.instance_node[x.spec.name]
        self.engine.at(now + self.opts.local_reaction_s, self._withdraw_now, i, x, cause)

    def _withdraw_now(self, i: int, x: LocalInstance, cause: int) -> None:
        d = self.dmano[i]
        if d.alive and self.adj.node_up[i] and not x.running:
            self.emit(d, d.withdraw(x, cause), local=True)

    def _vnf_up(self, x: LocalInstance, cause: int) -> None:
        i = self.instance_node[x.spec.name]
        if not self.adj.node_up[i]:
            return
        x.running = True
        x.cum_t = self.engine.now
        x.cause = cause  # announced at the D-MANO's next period

    def _link_down(self, k: int, cause: int) -> None:
        self.failed_links.add(k)
        self.link_gen[k] += 1
        self.adj.phys_up[k] = False
        self.adj.full[k] = False
        self.adj.exchange[k] = False
        self.adj.changed()
        a, b = int(self.adj.a[k]), int(self.adj.b[k])
        for r in (a, b):  # carrier loss: both ends at once
            if self.adj.node_up[r]:
                self.request_router_lsa(r, cause)
        self.traffic.links_down([a, b])

    def _link_up(self, k: int, cause: int) -> None:
        self.failed_links.discard(k)
        self.link_gen[k] += 1
        a, b = int(self.adj.a[k]), int(self.adj.b[k])
        if self.adj.node_up[a] and self.adj.node_up[b]:
            self.adj.phys_up[k] = True
            self.adj.changed()
            self.engine.at(self.engine.now + self.params.adjacency_s, self._adjacency_exchange,
                           k, self.link_gen[k], cause)

    def _adjacency_exchange(self, k: int, gen: int, cause: int) -> None:
        """Hellos seen both ways: the routers exchange databases (flooding starts)."""
        if gen != self.link_gen[k] or not self.adj.phys_up[k]:
            return
        now = self.engine.now
        self.adj.exchange[k] = True
        self.adj.changed()
        a, b = int(self.adj.a[k]), int(self.adj.b[k])
        for key in list(self.store.flux):
            for v in self.store.history(key):
                if v.arr is not None:
                    v.arr, tx = resync(self.adj, self.params, v.arr, a, b, now)
                    if tx:
                        self.stats.transmissions(now, tx, len(v.raw))
        self.engine.at(now + self.params.exchange_s, self._adjacency_full, k, gen, cause)

    def _adjacency_full(self, k: int, gen: int, cause: int) -> None:
        if gen != self.link_gen[k] or not self.adj.phys_up[k]:
            return
        self.adj.full[k] = True
        self.adj.exchange[k] = False
        self.adj.changed()
        for r in (int(self.adj.a[k]), int(self.adj.b[k])):
            self.request_router_lsa(r, cause)

    def _node_down(self, i: int, cause: int) -> None:
        now = self.engine.now
        self.adj.node_up[i] = False
        for _, k in self.adj.by_node[i]:
            self.adj.phys_up[k] = False
            self.adj.exchange[k] = False
            self.link_gen[k] += 1
        self.adj.changed()
        d = self.dmano[i]
        d.alive = False
        d.frozen_at = now
        self._down_vnfs[i] = [x for x in d.instances if x.running]
        for x in d.instances:
            if x.running:
                x.running = False
                self.traffic.instance_down(x)
        self.traffic.node_down(i)
        detect = 0.0 if self.opts.node_detection == "carrier" else \
            self.params.neighbour_detect_s
        for _, k in self.adj.by_node[i]:
            self.engine.at(now + detect, self._neighbour_lost, k, self.link_gen[k], cause)

    def _neighbour_lost(self, k: int, gen: int, cause: int) -> None:
        if gen != self.link_gen[k] or not self.adj.full[k]:
            return
        self.adj.full[k] = False
        self.adj.exchange[k] = False
        self.adj.changed()
        for r in (int(self.adj.a[k]), int(self.adj.b[k])):
            if self.adj.node_up[r]:
                self.request_router_lsa(r, cause)

    def _node_up(self, i: int, cause: int) -> None:
        now = self.engine.now
        self.adj.node_up[i] = True
        for peer, k in self.adj.by_node[i]:
            self.link_gen[k] += 1
            self.adj.full[k] = False
            self.adj.exchange[k] = False
            if self.adj.node_up[peer] and k not in self.failed_links:
                self.adj.phys_up[k] = True
        self.adj.changed()
        sync = now + self.params.adjacency_s
        for _peer, k in self.adj.by_node[i]:
            if self.adj.phys_up[k]:
                self.engine.at(sync, self._adjacency_exchange, k, self.link_gen[k], cause)
        self.engine.at(sync, self._flush_stale_own, i, cause)  # after the exchanges start
        self._fresh_dmano(self.dmano[i], cause=-1)
        for x in self._down_vnfs.pop(i, []):
            self.engine.at(now + self.opts.vnf_start_s, self._vnf_up, x, cause)
        start = max(now + self.opts.dmano_start_s, sync)
        self.engine.at(start, self._dmano_started, i)

    def _flush_stale_own(self, i: int, cause: int) -> None:
        """A restarted router receives its own opaque LSAs back from its neighbours and
        flushes those no client owns any more (FRR)."""
        d = self.dmano[i]
        now = self.engine.now
        rid = int(d.router_id)
        for x in d.instances:
            for key in list(self.store.instance_keys.get(x.key, ())):
                held = self.store.latest(key)
                if held is None or held.content is None or key[2] != rid:
                    continue
                raw = build_opaque_lsa(lsa.OPAQUE_TYPE, held.opaque_id, d.router_id,
                                       held.raw[20:], seq=held.seq, age=MAX_AGE)
                self.originate(raw, i, now, cause, structural=True)

    def _dmano_started(self, i: int) -> None:
        d = self.dmano[i]
        now = self.engine.now
        if not self.adj.node_up[i]:
            return
        d.alive = True
        d.frozen_at = None
        d.since = now
        self._restart_ticks(i, now)

    def _daemon(self, ev: Event, cause: int) -> None:
        i = self.idx[ev.node or ""]
        d = self.dmano[i]
        now = self.engine.now
        if ev.daemon != "dmano":
            log.warning("%s %s/%s is not modelled: ignored", ev.action, ev.node, ev.daemon)
            self.note(f"not simulated: {ev.action} {ev.node}/{ev.daemon}")
            return
        if ev.action == "fail_daemon":
            d.alive = False
            d.frozen_at = now
            origs: list[Origination] = []
            for x in d.instances:  # ospfd flushes a lost API client's LSAs
                origs += d.withdraw(x, cause)
            self.emit(d, origs)
            return
        self._fresh_dmano(d, cause)
        self.engine.at(now + self.opts.dmano_start_s, self._dmano_started, i)

    @staticmethod
    def _fresh_dmano(d: DmanoNode, cause: int) -> None:
        """A new D-MANO process: nothing announced, generations and sequence anew (its
        first announcements carry ``cause``)."""
        d.sequence = 0
        for x in d.instances:
            x.announced = None
            x.announced_cost = None
            x.announced_state = None
            x.originated = None
            x.generation = 0
            x.body = b""
            if cause >= 0:
                x.cause = cause

    def _set_policy(self, policy: Policy, cause: int) -> None:
        now = self.engine.now
        self._policy_t.append(now)
        self._policies.append(policy)
        for i in self.hosting:
            d = self.dmano[i]
            for x in d.instances:
                x.announced_cost = None  # Dmano.reload_policy: re-announce with it
                x.cause = cause
            if d.alive and self.adj.node_up[i]:
                self._restart_ticks(i, now)
        for node in self.watched:
            self.engine.at(now + DEBOUNCE_S, self._record_weights, node,
                           sorted(self.service_instances))
        self.traffic.policy_changed()

    # -- for the outputs ----------------------------------------------------------------------
    def tables_json(self, node: str, t_wall: float | None = None) -> dict[str, Any]:
        """Node ``node``'s tables at ``t_wall`` (default: now) in the form ``python -m
        dmano show --json`` prints them (``services``), to compare with an emulation."""
        from dmano.service_plane import tables_to_json

        i = self.idx[node]
        t = self.engine.now if t_wall is None else t_wall
        tables = {}
        for sid in sorted(self.service_instances):
            tab = self.tables.table(i, sid, t)
            if tab is not None:
                tables[sid] = tab
        return tables_to_json(tables)

    def scenario_time(self, t_wall: float) -> float:
        return self.s.scenario_time(t_wall)

    def describe(self) -> dict[str, Any]:
        return {"nodes": self.n, "links": len(self.topo.links),
                "instances": len(self.instances), "address_plan":
                    "emulation" if self.addr.emulation_plan else "simulation (100.64.0.0/10)",
                "watched_nodes": len(self.watched)}


__all__ = ["SimOptions", "SimResult", "Simulation", "WeightRow"]
