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
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from ipaddress import IPv4Address
from typing import Any

from dmano import lsa
from dmano.atomicfile import write_json_atomic
from dmano.config import NodeConfig
from dmano.connector_client import ConnectorWriter
from dmano.connector_state import DesiredState, desired_state, diff
from dmano.lsdb import LsdbMirror
from dmano.model import InstanceState, VnfAnnouncement
from dmano.monitor import InstanceStatus, Monitor
from dmano.ospf_api import OspfApiSession
from dmano.policy import Policy
from dmano.service_plane import ServiceTable, compute_tables, tables_to_json
from dmano.yamlconf import ConfigError

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.02
RESYNC_GRACE_S = 10.0
SEQUENCE_EPOCH = 1735689600  # 2025-01-01T00:00:00Z
U32_MAX = 2**32 - 1
API_RESTART_MAX_S = 10.0


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
        self.monitor = Monitor(cfg.instances, stale_s=max(5.0, 3 * policy.period_s))
        self.session = OspfApiSession(
            cfg.ospf_api, cfg.area, lsa.OPAQUE_TYPE, on_update=self._lsa_update,
            on_delete=self._lsa_delete, on_reset=self._reset, on_connected=self._connected)
        self.anycast = {s.id: s.anycast for s in cfg.services}
        self.lsdb_changed = asyncio.Event()
        self.tables: dict[int, ServiceTable] = {}
        self.statuses: dict[str, InstanceStatus] = {}
        self.announced_cost: dict[str, int] = {}
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

    def reload_policy(self) -> None:
        """Re-read the policy file (SIGUSR1); a bad file is reported and ignored."""
        from dmano.policy import load_policy
        from dmano.yamlconf import ConfigError

        try:
            policy = load_policy(self.cfg.policy)
        except ConfigError as exc:
            log.error("policy not reloaded, keeping %s: %s", self.policy.name, exc)
            return
        log.info("policy reloaded from %s: %s", self.cfg.policy, policy.to_dict())
        self.policy = policy
        self.announced_cost.clear()  # re-announce with the new cost function
        self.reload_requested = True
        self.lsdb_changed.set()

    # -- OSPF API callbacks ------------------------------------------------------------
    def _lsa_update(self, raw: bytes) -> None:
        if self.mirror.apply_update(raw):
            self.lsdb_changed.set()

    def _lsa_delete(self, raw: bytes) -> None:
        if self.mirror.apply_delete(raw):
            self.lsdb_changed.set()

    def _reset(self) -> None:
        """Connected again after a loss: drop the stale mirror, hold writes a while."""
        self.routers_before_reset = max(self.routers_before_reset,
                                        len(self.mirror.view.routers))
        if self.session.connections > 1:
            self.hold_until = time.monotonic() + RESYNC_GRACE_S
        self.mirror.clear()
        self.announced_cost.clear()

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

    async def run(self, stop: asyncio.Event) -> None:
        api = asyncio.ensure_future(self.supervise_api(stop))
        next_period = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if self.reload_requested:
                    self.reload_requested = False
                    next_period = now  # measure and announce with the new policy now
                if now >= next_period:
                    await self.measure_and_announce()
                    next_period = max(next_period + self.policy.period_s, now)
                    self.lsdb_changed.set()  # recompute with the new costs
                timeout = max(0.0, next_period - time.monotonic())
                waiter = asyncio.ensure_future(self.lsdb_changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                if self.lsdb_changed.is_set():
                    await asyncio.sleep(DEBOUNCE_S)  # a burst of LSAs: compute once
                    self.lsdb_changed.clear()
                    await self.recompute()
        finally:
            stop.set()
            try:
                await asyncio.wait_for(api, 5)
            except TimeoutError:
                log.warning("the OSPF API session did not stop within 5 s")
            self.write_status(stopped=True)

    async def measure_and_announce(self) -> None:
        self.statuses = self.monitor.poll()
        for inst in self.cfg.instances:
            st = self.statuses[inst.name]
            if not st.up:
                if inst.name in self.announced_cost or inst.id in self.session.desired:
                    self.announced_cost.pop(inst.name, None)
                    await self.session.withdraw(inst.id)
                if self.mirror.forget_instance(self.cfg.router_id, inst.id):
                    self.lsdb_changed.set()
                continue
            cost = self.policy.vnf_cost(st.measurement)
            last = self.announced_cost.get(inst.name)
            if last is not None and not self.policy.should_announce(cost, last):
                continue
            ann = VnfAnnouncement(
                instance_id=inst.id, service_id=inst.service,
                anycast=self.anycast.get(inst.service, IPv4Address("0.0.0.0")),
                cost=cost, endpoint=self.cfg.nsh_endpoint, capacity=inst.capacity,
                load=min(max(round(st.measurement.load), 0), U32_MAX),
                state=InstanceState.UP, name=inst.name,
                sequence=self._next_sequence())
            if last != cost:
                log.info("instance %s: VNF cost %s -> %d (load %.1f/%d)", inst.name,
                         last, cost, st.measurement.load, inst.capacity)
            self.announced_cost[inst.name] = cost
            await self.session.announce(inst.id, lsa.encode(ann))
        await self.session.retry_pending()

    def _next_sequence(self) -> int:
        """Increasing announcement sequence: tenths of a second since 2025 (so a restarted
        D-MANO continues above its predecessor; fits 32 bits until 2038), +1 per call."""
        now = int((time.time() - SEQUENCE_EPOCH) * 10)
        self.sequence = min(max(self.sequence + 1, now), 0xFFFFFFFF)
        return self.sequence

    async def recompute(self) -> None:
        tables = compute_tables(self.mirror.view, self.cfg.router_id, self.policy)
        if tables != self.tables:
            self.table_changes += 1
            for sid, rows in tables.items():
                if rows != self.tables.get(sid):
                    desc = ", ".join(f"{c.name or c.instance_id}@{c.adv_router} "
                                     f"cost {c.path_cost} w {c.weight}" for c in rows)
                    log.info("service %d: %s", sid, desc or "no instance")
            self.tables = tables
        await self.push_to_connector()
        self.write_status()

    async def push_to_connector(self) -> None:
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
            "ospf_api": {"connected": self.session.connected,
                         "connections": self.session.connections,
                         "failures": self.session.failures,
                         "session_restarts": self.api_restarts,
                         "last_error": self.session.last_error,
                         "announced": sorted(self.session.announced),
                         "pending_withdrawals": sorted(self.session.pending_withdrawals)},
            "lsdb": {"routers": len(view.routers), "networks": len(view.networks),
                     "instances": len(view.instances),
                     "malformed": self.mirror.stats.as_dict()},
            "local_instances": {
                name: {"up": st.up, "reason": st.reason, "pid": st.pid,
                       "load": st.measurement.load, "cpu": st.measurement.cpu_percent,
                       "cost": self.announced_cost.get(name),
                       "bad_counters": self.monitor.bad_files.get(name, 0)}
                for name, st in self.statuses.items()},
            "service_names": {str(k): v for k, v in self.cfg.service_names().items()},
            "table_changes": self.table_changes,
            "connector": {"kind": self.writer.kind, "writes": self.writer.writes,
                          "last_error": self.last_error},
            **tables_to_json(self.tables),
        }

    def write_status(self, stopped: bool = False) -> None:
        path = self.cfg.status_file
        try:
            write_json_atomic(path, self.status(stopped), sort_keys=True, mkdir=True)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)
