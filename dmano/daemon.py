"""The D-MANO main loop (DESIGN.md §6).

Every ``period_s`` (from the policy), and at once when the LSDB changes:

1. read each local VNF's load (monitor) -> VNF cost (policy cost function);
2. originate / refresh its opaque LSA when the cost moved beyond the hysteresis, withdraw
   it at once when the VNF is gone;
3. from the mirrored LSDB, build the service plane topology, shortest paths from this
   router, candidates and WCMP weights per service (policy weight function);
4. write only the differences to the connector; write the status file; log changes.

While the OSPF API is down (ospfd restarting) the connector keeps its last weights; after
reconnecting, writes wait until the LSDB has been re-learnt (as many routers as before,
or ``resync_grace_s``).

Between periods (DESIGN.md §9): a local VNF's death (pidfd) or hang (heartbeat), from
:mod:`dmano.liveness`, takes it out of the local connector and flushes its LSA at once
(a VNF only starved of CPU is not hung: :mod:`dmano.starvation`, one tracker shared by
the liveness watcher and the monitor);
a drain / undrain on the control socket (:mod:`dmano.control_server`, semantics in
:mod:`dmano.drain`) re-announces the instance at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano import lsa
from dmano.atomicfile import write_json_atomic
from dmano.config import InstanceConf, NodeConfig
from dmano.connector_client import ConnectorWriter
from dmano.connector_state import DesiredState, desired_state, diff
from dmano.control_server import ControlServer, SocketInUseError
from dmano.drain import DrainBook, DrainError, DrainResult
from dmano.liveness import Liveness
from dmano.lsdb import LsdbMirror
from dmano.model import InstanceState, VnfAnnouncement
from dmano.monitor import InstanceStatus, Monitor
from dmano.ospf_api import OspfApiSession
from dmano.policy import Measurement, Policy, reload_policy
from dmano.service_plane import (
    ServiceTable,
    candidate_tables,
    network_costs,
    tables_to_json,
)
from dmano.starvation import HangTracker
from dmano.throttle import Backoff, RecomputeThrottle
from dmano.yamlconf import ConfigError

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.02
RESYNC_GRACE_S = 10.0
SEQUENCE_EPOCH = 1735689600  # 2025-01-01T00:00:00Z
U32_MAX = 2**32 - 1
API_RESTART_MAX_S = 10.0


def announcement_due(policy: Policy, cost: int, last_cost: int | None,
                     state: InstanceState, last_state: InstanceState | None) -> bool:
    """Whether a running local instance's LSA must be originated at a period: it has
    none yet, its state changed, or its VNF ``cost`` moved beyond the policy's
    hysteresis from the ``last_cost`` announced (also used by the control-plane
    simulation, ``scenarios.simulate``)."""
    return not (last_cost is not None and last_state == state
                and not policy.should_announce(cost, last_cost))


def next_sequence(previous: int, now: float) -> int:
    """The announcement SEQUENCE after ``previous`` at unix time ``now``: tenths of a
    second since 2025 (so a restarted D-MANO continues above its predecessor; fits 32
    bits until 2038), at least ``previous + 1``."""
    tenths = int((now - SEQUENCE_EPOCH) * 10)
    return min(max(previous + 1, tenths), 0xFFFFFFFF)


def check_connector_config(cfg: NodeConfig) -> None:
    """What the node configuration asks of the connector must fit in it (e.g. the
    classifier's port ranges expand to ternary entries): a ConfigError at start, never
    a connector error retried every period."""
    try:
        desired_state(cfg, {})
    except ValueError as exc:
        raise ConfigError(cfg.path, None, "classifier",
                          str(exc).removeprefix(f"{cfg.path}: ")) from None


class Dmano:
    def __init__(self, cfg: NodeConfig, policy: Policy, writer: ConnectorWriter):
        check_connector_config(cfg)
        self.cfg = cfg
        self.policy = policy
        self.writer = writer
        self.mirror = LsdbMirror()
        self.hangs = HangTracker(cfg.heartbeat_s)  # stale counters: hung or starved?
        self.monitor = Monitor(cfg.instances, stale_s=cfg.heartbeat_s, tracker=self.hangs)
        self.liveness = Liveness(cfg.instances, cfg.heartbeat_s, self._instance_died,
                                 on_bad_file=self.monitor.count_bad, tracker=self.hangs)
        self.drains = DrainBook(cfg.instances, cfg.router_id, cfg.service_names())
        self.drains.restore(cfg.status_file, _read_json(cfg.status_file, cfg.node))
        self.control_server = ControlServer(cfg.control_path, self)
        self.control_up = False
        self.session = OspfApiSession(
            cfg.ospf_api, cfg.area, lsa.OPAQUE_TYPE, on_update=self._lsa_update,
            on_delete=self._lsa_delete, on_reset=self._reset, on_connected=self._connected)
        self.anycast = {s.id: s.anycast for s in cfg.services}
        self.lsdb_changed = asyncio.Event()
        self.tables: dict[int, ServiceTable] = {}
        self.statuses: dict[str, InstanceStatus] = {}
        self.announced_cost: dict[str, int] = {}
        self.announced_state: dict[str, InstanceState] = {}
        self.fast_withdrawals = 0  # instances withdrawn between periods (liveness)
        self.notifications = 0  # LSA updates and deletes the OSPF API reported
        self._status_dir_made = False
        self._tables_json: tuple[dict[int, ServiceTable], dict[str, Any]] | None = None
        self._compute_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.have = DesiredState()
        self.need_resync = True  # read what the connector holds before the first write
        self.hold_until = 0.0
        self.routers_before_reset = 0
        self.last_error = ""
        self.started = time.time()
        self.table_changes = 0
        self.reload_requested = False
        self.sequence = 0
        self.api_restarts = 0  # times the OSPF API session task itself died
        self.throttle = RecomputeThrottle()
        # an instance came, left or changed state: ends a hold of cost-only changes
        self.membership_changed = asyncio.Event()
        self.write_backoff = Backoff()
        self._push_pending = False  # a deferred connector write is scheduled
        # the network part of the tables, cached per LSDB topology version
        self._costs: dict[IPv4Address, int] = {}
        self._costs_of: tuple[LsdbMirror, int] | None = None

    def reload_policy(self) -> None:
        """Re-read the policy file (SIGUSR1); a bad file is reported and ignored."""
        policy = reload_policy(self.cfg.policy, self.policy)
        if policy is None:
            return
        self.policy = policy
        self.announced_cost.clear()  # re-announce with the new cost function
        self.reload_requested = True
        self.lsdb_changed.set()

    # -- OSPF API callbacks ------------------------------------------------------------
    def _lsa_update(self, raw: bytes) -> None:
        self.notifications += 1
        membership = self.mirror.membership_version
        if self.mirror.apply_update(raw):
            self._lsdb_changed(membership)

    def _lsa_delete(self, raw: bytes) -> None:
        self.notifications += 1
        membership = self.mirror.membership_version
        if self.mirror.apply_delete(raw):
            self._lsdb_changed(membership)

    def _lsdb_changed(self, membership_before: int) -> None:
        self.lsdb_changed.set()
        if self.mirror.membership_version != membership_before:
            self.membership_changed.set()

    def _reset(self) -> None:
        """Connected again after a loss: drop the stale mirror, hold writes a while."""
        self.routers_before_reset = max(self.routers_before_reset,
                                        len(self.mirror.view.routers))
        if self.session.connections > 1:
            self.hold_until = time.monotonic() + RESYNC_GRACE_S
        self.mirror.clear()
        self.announced_cost.clear()
        self.announced_state.clear()

    def _connected(self) -> None:
        self.lsdb_changed.set()

    # -- the loop ----------------------------------------------------------------------
    async def supervise_api(self, stop: asyncio.Event) -> None:
        """Keep the OSPF API session running: if its task ends with an error (it handles
        connection losses itself; this is for anything it did not expect), log it,
        count it in the status and start it again with backoff."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.session.run(stop)
                continue  # returns only when stop is set
            except Exception as exc:
                self.api_restarts += 1
                self.session.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("the OSPF API session ended with an error; restarting it "
                              "in %.1f s", backoff)
            self.write_status()
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                backoff = min(backoff * 2, API_RESTART_MAX_S)

    async def start_control(self) -> None:
        """Serve the control socket; a socket another D-MANO answers on is fatal, any
        other failure only disables drain / undrain (logged, shown in the status)."""
        try:
            await self.control_server.start()
            self.control_up = True
        except SocketInUseError:
            raise
        except OSError as exc:
            log.error("no control socket (drain / undrain unavailable): %s: %s",
                      self.cfg.control_path, exc)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start_control()
        api = asyncio.ensure_future(self.supervise_api(stop))
        watcher = asyncio.ensure_future(self.liveness.run(stop))
        next_period = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if self.reload_requested:
                    self.reload_requested = False
                    next_period = now  # measure and announce with the new policy now
                if now >= next_period:
                    changed = await self.measure_and_announce()
                    next_period = max(next_period + self.policy.period_s, now)
                    if changed or self.last_error or self.need_resync or not self.tables:
                        self.lsdb_changed.set()  # recompute with the new costs
                    else:
                        self.write_status()  # nothing to recompute: the loads only
                timeout = max(0.0, next_period - time.monotonic())
                waiter = asyncio.ensure_future(self.lsdb_changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                if self.lsdb_changed.is_set():
                    await asyncio.sleep(DEBOUNCE_S)  # a burst of LSAs: compute once
                    await self._hold(stop)
                    self.lsdb_changed.clear()
                    versions = self.mirror.topology_version, self.mirror.membership_version
                    await self.recompute()
                    self.throttle.done(*versions, time.monotonic())
        finally:
            stop.set()
            await self.control_server.close()
            self.control_up = False
            try:
                await asyncio.wait_for(asyncio.gather(api, watcher), 5)
            except TimeoutError:
                log.warning("the OSPF API session did not stop within 5 s")
            for task in list(self._tasks):
                task.cancel()
            self.write_status(stopped=True)

    async def _hold(self, stop: asyncio.Event) -> None:
        """Wait as :class:`dmano.throttle.RecomputeThrottle` says under churn: after a
        topology change as ospfd's SPF throttle; after cost changes only, until the hold
        has passed or an instance comes, leaves or changes state."""
        versions = self.mirror.topology_version, self.mirror.membership_version
        wait = self.throttle.wait_s(*versions, time.monotonic())
        if wait <= 0:
            return
        wake = {asyncio.ensure_future(stop.wait())}
        if self.throttle.kind(*versions) == "costs":
            self.membership_changed.clear()
            wake.add(asyncio.ensure_future(self.membership_changed.wait()))
        await asyncio.wait(wake, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        for task in wake:
            task.cancel()

    async def measure_and_announce(self) -> bool:
        """Measure every local instance, announce / withdraw what changed; True when
        something did (an announcement, a withdrawal, an instance up or down), i.e. the
        tables may change (a remote change arrives as an LSA and triggers its own)."""
        before = {n: st.up for n, st in self.statuses.items()}
        announced = len(self.session.announced), dict(self.announced_cost)
        self.statuses = self.monitor.poll()
        changed = before != {n: st.up for n, st in self.statuses.items()}
        for inst in self.cfg.instances:
            st = self.statuses[inst.name]
            if not st.up:
                self.liveness.unwatch(inst.name)
                await self._withdraw(inst)
                continue
            self.liveness.watch(inst.name, st.pid)
            cost = self.policy.vnf_cost(st.measurement)
            last = self.announced_cost.get(inst.name)
            state = self.drains.state(inst.name)
            if not announcement_due(self.policy, cost, last, state,
                                    self.announced_state.get(inst.name)):
                continue
            if last != cost:
                log.info("instance %s: VNF cost %s -> %d (load %.1f/%d)", inst.name,
                         last, cost, st.measurement.load, inst.capacity)
            await self._announce(inst, st, cost, state)
            changed = True
        await self.session.retry_pending()
        return changed or announced != (len(self.session.announced),
                                        dict(self.announced_cost))

    async def _announce(self, inst: InstanceConf, st: InstanceStatus, cost: int,
                        state: InstanceState) -> VnfAnnouncement:
        ann = VnfAnnouncement(
            instance_id=inst.id, service_id=inst.service,
            anycast=self.anycast.get(inst.service, IPv4Address("0.0.0.0")),
            cost=cost, endpoint=self.cfg.nsh_endpoint, capacity=inst.capacity,
            load=min(max(round(st.measurement.load), 0), U32_MAX),
            state=state, name=inst.name, sequence=self._next_sequence())
        self.announced_cost[inst.name] = cost
        self.announced_state[inst.name] = state
        await self.session.announce(inst.id, lsa.encode(ann))
        return ann

    async def _withdraw(self, inst: InstanceConf) -> None:
        if inst.name in self.announced_cost or inst.id in self.session.desired:
            self.announced_cost.pop(inst.name, None)
            self.announced_state.pop(inst.name, None)
            await self.session.withdraw(inst.id)
        if self.mirror.forget_instance(self.cfg.router_id, inst.id):
            self.lsdb_changed.set()

    # -- between periods: a VNF died or hung (liveness) ----------------------------------
    def _instance_died(self, name: str, reason: str) -> None:
        """Liveness callback (in the loop): mark it down and withdraw it now."""
        inst = self.drains.instance(name)
        old = self.statuses.get(name)
        self.statuses[name] = InstanceStatus(False, reason, Measurement(
            capacity=inst.capacity, load=0.0, configured_cost=inst.cost),
            old.pid if old else 0)
        task = asyncio.ensure_future(self.withdraw_now(inst))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def withdraw_now(self, inst: InstanceConf) -> None:
        """Take ``inst`` out of the local connector's groups, then flush its LSA."""
        try:
            self.fast_withdrawals += 1
            self.mirror.forget_instance(self.cfg.router_id, inst.id)
            await self.recompute(urgent=True)
            self.announced_cost.pop(inst.name, None)
            self.announced_state.pop(inst.name, None)
            await self.session.withdraw(inst.id)
        except Exception:  # a bug here must not go unnoticed, nor kill the loop
            log.exception("withdrawing instance %s at once failed (the next period will)",
                          inst.name)

    # -- control socket: drain / undrain / status ---------------------------------------
    async def control(self, cmd: str, instance: str | None, force: bool) -> dict[str, Any]:
        """Answer one control request (protocol: dmano.control)."""
        if cmd == "status":
            return self._control_status(instance)
        assert instance is not None  # parse_request requires it for drain / undrain
        try:
            if cmd == "drain":
                result = self.drains.drain(instance, self.tables, force)
            else:
                result = self.drains.undrain(instance)
        except DrainError as exc:
            return {"ok": False, "error": str(exc), "node": self.cfg.node,
                    "known": sorted(self.drains.instances)}
        if result.changed:
            await self._state_changed(result)
        return {"ok": True, "node": self.cfg.node, "instance": result.instance,
                "state": result.state.name.lower(), "changed": result.changed,
                "message": result.message}

    async def _state_changed(self, result: DrainResult) -> None:
        """Announce the new state now (not at the next period) if the instance is up,
        and recompute the local tables with it."""
        inst = self.drains.instance(result.instance)
        st = self.statuses.get(inst.name)
        cost = self.announced_cost.get(inst.name)
        if st is not None and st.up and cost is not None:
            ann = await self._announce(inst, st, cost, result.state)
            self.mirror.note_own(self.cfg.router_id, ann)
            await self.recompute(urgent=True)  # an operator's drain: written at once
        else:
            self.write_status()

    def _control_status(self, instance: str | None) -> dict[str, Any]:
        if instance is not None and instance not in self.drains.instances:
            known = ", ".join(sorted(self.drains.instances)) or "none"
            return {"ok": False, "node": self.cfg.node, "known": sorted(self.drains.instances),
                    "error": f"unknown instance {instance!r} on this node (known: {known})"}
        names = [instance] if instance is not None else sorted(self.drains.instances)
        return {"ok": True, "node": self.cfg.node,
                "instances": {n: self._instance_json(n) for n in names}}

    def _instance_json(self, name: str) -> dict[str, Any]:
        st = self.statuses.get(name)
        return {"up": bool(st and st.up), "reason": st.reason if st else "not polled yet",
                "pid": st.pid if st else 0, "state": self.drains.state(name).name.lower(),
                "drained": name in self.drains.drained}

    def _next_sequence(self) -> int:
        """Increasing announcement sequence (:func:`next_sequence`), +1 per call."""
        self.sequence = next_sequence(self.sequence, time.time())
        return self.sequence

    async def recompute(self, urgent: bool = False) -> None:
        """``urgent``: write the connector now even under churn (a local VNF died)."""
        async with self._compute_lock:  # the period loop and the fast paths take turns
            await self._recompute(urgent)

    def network_costs(self) -> dict[IPv4Address, int]:
        """The network part of the tables (:func:`dmano.service_plane.network_costs`),
        recomputed only when the mirror's router or network LSAs changed."""
        key = (self.mirror, self.mirror.topology_version)
        if self._costs_of is None or self._costs_of[0] is not key[0] \
                or self._costs_of[1] != key[1]:
            self._costs = network_costs(self.mirror.view, self.cfg.router_id)
            self._costs_of = key
        return self._costs

    async def _recompute(self, urgent: bool = False) -> None:
        # compute_tables, with its network part cached per topology version
        tables = candidate_tables(self.mirror.view.instances, self.network_costs(),
                                  self.cfg.router_id, self.policy)
        if tables != self.tables:
            self.table_changes += 1
            for sid, rows in tables.items():
                if rows != self.tables.get(sid):
                    desc = ", ".join(f"{c.name or c.instance_id}@{c.adv_router} "
                                     f"cost {c.path_cost} w {c.weight}" for c in rows)
                    log.info("service %d: %s", sid, desc or "no instance")
            self.tables = tables
        await self.push_to_connector(urgent)
        self.write_status()

    async def push_to_connector(self, urgent: bool = False) -> None:
        """Write the differences now, or, under churn (dmano.throttle.Backoff), once the
        write hold has passed: a deferred write takes the tables of that moment."""
        if urgent:
            await self._push_now()
            return
        if self._push_pending:
            return  # a deferred write will take these tables
        wait = self.write_backoff.wait_s(time.monotonic())
        if wait <= 0:
            await self._push_now()
            return
        self._push_pending = True
        task = asyncio.ensure_future(self._deferred_push(wait))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deferred_push(self, wait: float) -> None:
        await asyncio.sleep(wait)
        async with self._compute_lock:
            self._push_pending = False
            await self._push_now()
            self.write_status()

    async def _push_now(self) -> None:
        """Write the differences; connector calls run in a thread (gRPC blocks)."""
        if not self.session.connected:
            return
        if time.monotonic() < self.hold_until:
            if len(self.mirror.view.routers) < self.routers_before_reset:
                return  # still re-learning the LSDB after an ospfd restart
            self.hold_until = 0.0
        # the configuration was checked at start (check_connector_config): an error here
        # is a bug and must not pass for a connector error
        want = desired_state(self.cfg, self.tables)
        try:
            if self.need_resync:
                self.have = await asyncio.to_thread(self.writer.read_state)
                self.need_resync = False
            ops = diff(self.have, want)
            if ops:
                self.write_backoff.done(time.monotonic())
                await asyncio.to_thread(self.writer.write, ops)
                self.have = want
            if self.last_error:
                log.info("connector writes work again")
            self.last_error = ""
        except Exception as exc:  # the connector's (gRPC, P4Runtime): it may come back
            if str(exc) != self.last_error:
                log.error("writing to the connector failed: %s (will retry)", exc)
            self.last_error = str(exc)
            self.need_resync = True

    # -- status ------------------------------------------------------------------------
    def status(self, stopped: bool = False) -> dict[str, Any]:
        view = self.mirror.view
        return {
            "node": self.cfg.node,
            "router_id": str(self.cfg.router_id),
            "pid": os.getpid(),
            "updated": time.time(),
            "started": self.started,
            "running": not stopped,
            "policy": self.policy.name,
            "period_s": self.policy.period_s,
            "heartbeat_s": self.cfg.heartbeat_s,
            "control_socket": str(self.cfg.control_path) if self.control_up else None,
            "drained": sorted(self.drains.drained),
            "fast_withdrawals": self.fast_withdrawals,
            "ospf_api": {"connected": self.session.connected,
                         "connections": self.session.connections,
                         "failures": self.session.failures,
                         "session_restarts": self.api_restarts,
                         "last_error": self.session.last_error,
                         "announced": sorted(self.session.announced),
                         "pending_withdrawals": sorted(self.session.pending_withdrawals)},
            "lsdb": {"routers": len(view.routers), "networks": len(view.networks),
                     "instances": len(view.instances), "notifications": self.notifications,
                     "malformed": self.mirror.stats.as_dict(),
                     "replacement_deletes_ignored": self.mirror.replaced_ignored},
            "local_instances": {
                name: {"up": st.up, "reason": st.reason, "pid": st.pid,
                       "load": st.measurement.load, "cpu": st.measurement.cpu_percent,
                       "cost": self.announced_cost.get(name),
                       "state": self.drains.state(name).name.lower(),
                       "drained": name in self.drains.drained,
                       "bad_counters": self.monitor.bad_files.get(name, 0),
                       "starving": self.hangs.starving(name),  # up, counters stale
                       "starved": self.hangs.starved.get(name, 0)}  # episodes
                for name, st in self.statuses.items()},
            "service_names": {str(k): v for k, v in self.cfg.service_names().items()},
            "table_changes": self.table_changes,
            "topology_recomputes_throttled": self.throttle.throttled,
            "cost_recomputes_held": self.throttle.costs_held,
            "connector_writes_deferred": self.write_backoff.throttled,
            "connector_write_pending": self._push_pending,
            "connector": {"kind": self.writer.kind, "writes": self.writer.writes,
                          "write_bytes": self.writer.write_bytes,
                          "last_error": self.last_error},
            **self._tables_as_json(),
        }

    def _tables_as_json(self) -> dict[str, Any]:
        """:func:`tables_to_json` of the current tables, kept until they change."""
        if self._tables_json is None or self._tables_json[0] is not self.tables:
            self._tables_json = (self.tables, tables_to_json(self.tables))
        return self._tables_json[1]

    def write_status(self, stopped: bool = False) -> None:
        """Write :meth:`status` to the status file: compact JSON (the C encoder; with
        ``indent`` Python's own encoder took most of an idle D-MANO's CPU at 200
        nodes), its folder made on the first write; ``dmano show`` prints it for
        people."""
        path = self.cfg.status_file
        try:
            write_json_atomic(path, self.status(stopped), indent=None, sort_keys=True,
                              mkdir=not self._status_dir_made)
            self._status_dir_made = True
        except OSError as exc:
            self._status_dir_made = False
            log.warning("cannot write status file %s: %s", path, exc)


def _read_json(path: os.PathLike[str], node: str) -> dict[str, Any] | None:
    """A previous status file of this node's D-MANO, if any (None when absent or odd)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("node") != node:
        return None
    return data
