"""The central orchestrator's loop (DESIGN §10).

One process for the whole network:

* **topology**: the LSDB of one router, followed through its OSPF API with the D-MANO's
  own session and mirror (:mod:`dmano.ospf_api`, :mod:`dmano.lsdb`), as a controller
  learns the IGP through BGP-LS. A topology change (router or network LSA) triggers a
  recompute at once, as a BGP-LS update would. After the OSPF API reconnects (ospfd
  restarted), writes wait until the LSDB is re-learnt, as a D-MANO's do.
* **VNF state**: every ``poll_period_s``, one poll per node (:mod:`dmano.central.poller`),
  after the management round trip; a failed VNF is seen only there. The VNF cost is the
  policy's, with the policy's hysteresis (:class:`dmano.central.planner.CostBook`).
  With objective ``min-max-utilisation`` each poll also reads the node connector's
  ``Ingress.classified`` counter (one P4Runtime read, counted) for the demand.
* **decision**: every node's tables (:mod:`dmano.central.planner`).
* **action**: every connector written over P4Runtime with the orchestrator's own election
  id, differences only (:func:`dmano.connector_state.diff`), one management round trip
  before each node's batch, all nodes concurrently. A connector that fails is retried at
  the next recompute (it is read back first); the others are written.

Status: ``status_file`` (the orchestrator, with its control-traffic counters) and one
file per node in ``node_status_dir`` in the form of a D-MANO's status file (tables,
connector writes, instances), so ``dmano show`` and the scenario runner read both modes
alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import replace
from typing import Any

from dmano import lsa
from dmano.atomicfile import write_json_atomic
from dmano.central.config import CentralConfig
from dmano.central.demand import chain_demand
from dmano.central.planner import (
    CostBook,
    NodeTables,
    instance_view,
    min_max_tables,
    policy_tables,
)
from dmano.central.poller import NodePoll, NodePoller, PollCounters
from dmano.config import NodeConfig
from dmano.connector_client import ConnectorWriter, DryRunConnector
from dmano.connector_state import DesiredState, desired_state, diff
from dmano.lsdb import LsdbMirror
from dmano.monitor import InstanceStatus
from dmano.ospf_api import OspfApiSession
from dmano.pipeline_names import C_CLASSIFIED
from dmano.policy import Policy, reload_policy
from dmano.service_plane import tables_to_json

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.02
API_RESTART_MAX_S = 10.0
RESYNC_GRACE_S = 10.0  # as the D-MANO's (dmano.daemon)


def make_writers(cfg: CentralConfig) -> dict[str, ConnectorWriter]:
    """One P4Runtime writer per node's connector, with the orchestrator's election id."""
    out: dict[str, ConnectorWriter] = {}
    for n in cfg.nodes:
        if n.connector.kind == "p4runtime":
            from dmano.p4rt_client import P4RuntimeConnector

            out[n.node] = P4RuntimeConnector(replace(n.connector,
                                                     election_id=cfg.election_id))
        else:
            out[n.node] = DryRunConnector()
    return out


class Orchestrator:
    def __init__(self, cfg: CentralConfig, policy: Policy,
                 writers: dict[str, ConnectorWriter]):
        for n in cfg.nodes:
            desired_state(n, {})  # a classifier that does not fit: an error now
        self.cfg = cfg
        self.policy = policy
        self.nodes: dict[str, NodeConfig] = {n.node: n for n in cfg.nodes}
        self.writers = writers
        self.mirror = LsdbMirror()
        self.session = OspfApiSession(
            cfg.ospf_api, cfg.area, lsa.OPAQUE_TYPE, on_update=self._lsa_update,
            on_delete=self._lsa_delete, on_reset=self._reset, on_connected=self._changed)
        self.poll_counters = PollCounters()
        self.pollers = {name: NodePoller(n, self.poll_counters)
                        for name, n in self.nodes.items()}
        self.statuses: dict[str, dict[str, InstanceStatus]] = {}
        self.costs = CostBook()
        self.tables: NodeTables = {}
        self.have: dict[str, DesiredState] = {}
        self.need_resync: set[str] = set(self.nodes)
        self.last_error: dict[str, str] = {}
        self.written_at: dict[str, float] = {}
        self.table_changes: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.changed = asyncio.Event()
        self.lock = asyncio.Lock()
        self.started = time.time()
        self.poll_rounds = 0
        self.lsdb_feed = {"updates": 0, "deletes": 0, "bytes": 0}
        self.counter_reads = 0
        self.counter_read_errors = 0
        self.classified: dict[str, tuple[int, float]] = {}  # node -> (count, time)
        self.classified_pps: dict[str, float] = {}
        # (node, instance) -> ({spi: packets}, monotonic time) of the last poll, and rates
        self.spi_counts: dict[tuple[str, str], tuple[dict[int, int], float]] = {}
        self.spi_pps: dict[tuple[str, str], dict[int, float]] = {}
        self.demand: dict[tuple[str, int], float] = {}
        self.optimum: dict[str, Any] = {}
        self.api_restarts = 0
        self.reload_requested = False
        self.hold_until = 0.0  # after an OSPF API reconnect (see _reset)
        self.routers_before_reset = 0

    # -- OSPF API (the topology feed) ------------------------------------------------------
    def _lsa_update(self, raw: bytes) -> None:
        self.lsdb_feed["updates"] += 1
        self.lsdb_feed["bytes"] += len(raw)
        if self.mirror.apply_update(raw):
            self.changed.set()

    def _lsa_delete(self, raw: bytes) -> None:
        self.lsdb_feed["deletes"] += 1
        self.lsdb_feed["bytes"] += len(raw)
        if self.mirror.apply_delete(raw):
            self.changed.set()

    def _reset(self) -> None:
        """Connected again after a loss: drop the stale mirror and, as a D-MANO does,
        hold the writes until the LSDB is re-learnt (as many routers as before, or
        ``RESYNC_GRACE_S``): tables from a half-learnt LSDB would take every instance
        behind a missing router out of every connector."""
        self.routers_before_reset = max(self.routers_before_reset,
                                        len(self.mirror.view.routers))
        if self.session.connections > 1:
            self.hold_until = time.monotonic() + RESYNC_GRACE_S
        self.mirror.clear()

    def _changed(self) -> None:
        self.changed.set()

    async def supervise_api(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.session.run(stop)
                continue
            except Exception as exc:
                self.api_restarts += 1
                self.session.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("the OSPF API session ended with an error; restarting it "
                              "in %.1f s", backoff)
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                backoff = min(backoff * 2, API_RESTART_MAX_S)

    def reload_policy(self) -> None:
        """Re-read the policy file (SIGUSR1); a bad file is reported and ignored."""
        policy = reload_policy(self.cfg.policy, self.policy)
        if policy is None:
            return
        self.policy = policy
        self.costs.reset()
        # the last poll's measurements, costed by the new policy (an empty cost book
        # would leave every instance out of the next recompute's tables)
        for node, statuses in self.statuses.items():
            self._update_costs(node, statuses)
        self.reload_requested = True
        self.changed.set()

    # -- the loop --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        api = asyncio.ensure_future(self.supervise_api(stop))
        poller = asyncio.ensure_future(self.poll_loop(stop))
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(self.changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper, poller},
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                if self.changed.is_set() and not stop.is_set():
                    await asyncio.sleep(DEBOUNCE_S)
                    self.changed.clear()
                    await self.recompute()
                if poller.done():
                    poller.result()  # a bug in the poll loop is not to be hidden
        finally:
            stop.set()
            for task in (api, poller):
                try:
                    await asyncio.wait_for(task, 5)
                except (TimeoutError, asyncio.CancelledError):
                    log.warning("a task did not stop within 5 s")
                except Exception as exc:  # the poll loop's error, already raised above
                    log.debug("task ended with %s", exc)
            self.write_status(stopped=True)

    async def poll_loop(self, stop: asyncio.Event) -> None:
        next_poll = time.monotonic()
        while not stop.is_set():
            await self.poll_all()
            next_poll = max(next_poll + self.cfg.poll_period_s, time.monotonic())
            self.changed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_poll - time.monotonic()))

    async def poll_all(self) -> None:
        """One poll round: every node at once (each after the management RTT)."""
        rtt = self.cfg.rtt_s
        polls = await asyncio.gather(*(p.poll(rtt) for p in self.pollers.values()))
        if self.cfg.objective == "min-max-utilisation":
            await asyncio.gather(*(self._read_classified(n) for n in self.nodes))
        self.poll_rounds += 1
        self.reload_requested = False
        for poll in polls:
            self.statuses[poll.node] = poll.statuses
            self._update_costs(poll.node, poll.statuses)
            self._update_spi_rates(poll)

    def _update_spi_rates(self, poll: NodePoll) -> None:
        """Per instance and service path, packets/s since the previous poll (the demand
        of objective min-max-utilisation; a restarted VNF's counters start again)."""
        for name, counts in poll.by_spi.items():
            key = (poll.node, name)
            prev = self.spi_counts.get(key)
            self.spi_counts[key] = (counts, poll.mono)
            if prev is None or poll.mono <= prev[1]:
                continue
            dt = poll.mono - prev[1]
            self.spi_pps[key] = {spi: (n - prev[0].get(spi, 0)) / dt
                                 for spi, n in counts.items() if n >= prev[0].get(spi, 0)}
        for key in [k for k in self.spi_pps if k[0] == poll.node
                    and k[1] not in poll.by_spi]:
            self.spi_pps.pop(key)  # down: no traffic to pass on

    def _update_costs(self, node: str, statuses: dict[str, InstanceStatus]) -> None:
        """The VNF cost of every instance of ``node`` that is up, with the policy's
        hysteresis; an instance that is down has none (as a withdrawn LSA)."""
        for name, st in statuses.items():
            if st.up:
                cost = self.policy.vnf_cost(st.measurement)
                if self.costs.update(node, name, cost, self.policy):
                    log.info("instance %s@%s: VNF cost %d (load %.1f)", name, node, cost,
                             st.measurement.load)
            else:
                self.costs.forget(node, name)

    async def _read_classified(self, node: str) -> None:
        writer = self.writers[node]
        read = getattr(writer, "read_counter", None)
        if read is None:
            return
        if self.cfg.rtt_s > 0:
            await asyncio.sleep(self.cfg.rtt_s)
        try:
            cells = await asyncio.to_thread(read, C_CLASSIFIED)
        except Exception as exc:
            self.counter_read_errors += 1
            log.debug("reading %s of %s failed: %s", C_CLASSIFIED, node, exc)
            return
        self.counter_reads += 1
        now, count = time.monotonic(), sum(cells.values())
        prev = self.classified.get(node)
        if prev is not None and now > prev[1] and count >= prev[0]:
            self.classified_pps[node] = (count - prev[0]) / (now - prev[1])
        self.classified[node] = (count, now)

    async def recompute(self) -> None:
        async with self.lock:
            if not self.session.connected or not self.statuses or self._holding():
                self.write_status()
                return  # no topology or no poll yet: keep what the connectors hold
            view = instance_view(self.mirror.view, self.nodes.values(), self.statuses,
                                 self.costs)
            if self.cfg.objective == "min-max-utilisation":
                tables = self._min_max(view)
            else:
                tables = policy_tables(view, self.nodes.values(), self.policy)
            for node, t in tables.items():
                if t != self.tables.get(node):
                    self.table_changes[node] += 1
            self.tables = tables
            await asyncio.gather(*(self.push(node) for node in self.nodes))
            self.write_status()

    def _holding(self) -> bool:
        """Still re-learning the LSDB after an OSPF API reconnect (see _reset)."""
        if (self.hold_until and time.monotonic() < self.hold_until
                and len(self.mirror.view.routers) < self.routers_before_reset):
            return True
        self.hold_until = 0.0
        return False

    def _min_max(self, view: Any) -> NodeTables:
        rates = {(node, name): st.measurement.load
                 for node, per in self.statuses.items() for name, st in per.items() if st.up}
        self.demand = chain_demand(self.nodes.values(), self.classified_pps, rates,
                                   self.spi_pps)
        tables, solutions = min_max_tables(view, self.nodes.values(), self.policy,
                                           self.demand)
        self.optimum = {str(sid): {"status": sol.status,
                                   "max_utilisation": sol.max_utilisation,
                                   "message": sol.message}
                        for sid, sol in solutions.items()}
        return tables

    async def push(self, node: str) -> None:
        """Write the differences into one node's connector (after the management RTT)."""
        cfg = self.nodes[node]
        writer = self.writers[node]
        want = desired_state(cfg, self.tables.get(node, {}))
        try:
            if node in self.need_resync:
                self.have[node] = await asyncio.to_thread(writer.read_state)
                self.need_resync.discard(node)
            ops = diff(self.have.get(node, DesiredState()), want)
            if ops:
                if self.cfg.rtt_s > 0:
                    await asyncio.sleep(self.cfg.rtt_s)
                await asyncio.to_thread(writer.write, ops)
                self.have[node] = want
                self.written_at[node] = time.time()
            if self.last_error.get(node):
                log.info("connector of %s: writes work again", node)
            self.last_error[node] = ""
        except Exception as exc:  # the connector's: it may come back; others go on
            if str(exc) != self.last_error.get(node):
                log.error("writing the connector of %s failed: %s (will retry)", node, exc)
            self.last_error[node] = str(exc)
            self.need_resync.add(node)
        self.write_node_status(node)

    # -- status ----------------------------------------------------------------------------
    def node_status(self, node: str, stopped: bool = False) -> dict[str, Any]:
        cfg = self.nodes[node]
        writer = self.writers[node]
        statuses = self.statuses.get(node, {})
        return {
            "node": node, "router_id": str(cfg.router_id), "pid": os.getpid(),
            "updated": time.time(), "started": self.started, "running": not stopped,
            "control": "centralized", "orchestrator": str(self.cfg.status_file),
            "policy": self.policy.name, "period_s": self.cfg.poll_period_s,
            "objective": self.cfg.objective,
            "ospf_api": {"connected": self.session.connected,
                         "connections": self.session.connections,
                         "failures": self.session.failures,
                         "last_error": self.session.last_error},
            "lsdb": {"routers": len(self.mirror.view.routers),
                     "networks": len(self.mirror.view.networks),
                     "instances": sum(1 for per in self.statuses.values()
                                      for st in per.values() if st.up),
                     "malformed": self.mirror.stats.as_dict()},
            "local_instances": {
                name: {"up": st.up, "reason": st.reason, "pid": st.pid,
                       "load": st.measurement.load, "cpu": st.measurement.cpu_percent,
                       "cost": self.costs.costs.get((node, name))}
                for name, st in statuses.items()},
            "service_names": {str(k): v for k, v in cfg.service_names().items()},
            "table_changes": self.table_changes[node],
            "connector": {"kind": writer.kind, "writes": writer.writes,
                          "write_bytes": writer.write_bytes,
                          "last_error": self.last_error.get(node, "")},
            **tables_to_json(self.tables.get(node, {})),
        }

    def write_node_status(self, node: str, stopped: bool = False) -> None:
        path = self.cfg.node_status_file(node)
        try:
            write_json_atomic(path, self.node_status(node, stopped), sort_keys=True,
                              mkdir=True)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)

    def status(self, stopped: bool = False) -> dict[str, Any]:
        view = self.mirror.view
        writes = sum(w.writes for w in self.writers.values())
        write_bytes = sum(w.write_bytes for w in self.writers.values())
        return {
            "pid": os.getpid(), "updated": time.time(), "started": self.started,
            "running": not stopped, "control": "centralized",
            "objective": self.cfg.objective, "policy": self.policy.name,
            "poll_period_s": self.cfg.poll_period_s, "mgmt_rtt_ms": self.cfg.mgmt_rtt_ms,
            "election_id": self.cfg.election_id,
            "ospf_api": {"server": self.cfg.ospf_api, "connected": self.session.connected,
                         "connections": self.session.connections,
                         "failures": self.session.failures,
                         "session_restarts": self.api_restarts,
                         "last_error": self.session.last_error},
            "lsdb": {"routers": len(view.routers), "networks": len(view.networks),
                     "malformed": self.mirror.stats.as_dict()},
            "control_traffic": {
                "poll_rounds": self.poll_rounds, "polls": self.poll_counters.as_dict(),
                "lsdb_feed": dict(self.lsdb_feed),
                "p4runtime": {"write_ops": writes, "write_bytes": write_bytes,
                              "counter_reads": self.counter_reads,
                              "counter_read_errors": self.counter_read_errors}},
            "demand": [{"node": n, "service_id": s, "pps": round(v, 3)}
                       for (n, s), v in sorted(self.demand.items())],
            "optimum": self.optimum,
            "nodes": {n: {"writes": self.writers[n].writes,
                          "last_error": self.last_error.get(n, ""),
                          "written_at": self.written_at.get(n),
                          "instances_up": sum(1 for st in self.statuses.get(n, {}).values()
                                              if st.up)}
                      for n in self.nodes},
        }

    def write_status(self, stopped: bool = False) -> None:
        try:
            write_json_atomic(self.cfg.status_file, self.status(stopped), sort_keys=True,
                              mkdir=True)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", self.cfg.status_file, exc)
        if stopped:
            for node in self.nodes:
                self.write_node_status(node, stopped=True)
