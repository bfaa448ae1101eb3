"""Control traffic of a run, sampled: ``control.csv`` (cumulative since the run began).

Both control modes run OSPF (routers and their hellos are the same); what differs is
what carries the decisions:

* **OSPF on the wire** (both modes): packets and bytes every router sent, and of those
  the LS Updates (flooding), from the nftables counters of each router namespace
  (:mod:`topologies.ctrlstats`);
* **P4Runtime writes** (both modes): Update messages written to the connectors and their
  serialized bytes: the D-MANOs' (sum of their status files) or the orchestrator's;
* **polls** (central only): requests and replies, and their bytes
  (:mod:`dmano.central.poller`), plus the connector counter reads of objective
  ``min-max-utilisation``;
* **LSDB feed** (central only): the LSAs the orchestrator's router reported to it over
  the OSPF API (its BGP-LS equivalent), and their bytes.

Counters of a process that restarted begin again at 0: each source's increase is summed
(a drop counts as a restart from 0), so the columns only grow. A status file names its
process's start time (``started``): a new one is a new source, counted from 0 even when
its counters are already past the old process's at the first sample. A source that
cannot be read (no file yet, a namespace gone) adds nothing to that sample.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scenarios.outputs import CONTROL_COLUMNS, CsvWriter
from topologies import ctrlstats
from topologies.servers import ServerSpec

log = logging.getLogger(__name__)

COLUMNS = CONTROL_COLUMNS


class Accumulator:
    """Sums the increases of counters that may restart from 0."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], float] = {}
        self.total: dict[str, float] = {}

    def add(self, source: str, name: str, value: float) -> None:
        key = (source, name)
        prev = self.last.get(key)
        inc = value if prev is None or value < prev else value - prev
        self.last[key] = value
        self.total[name] = self.total.get(name, 0.0) + inc

    def get(self, name: str) -> float:
        return self.total.get(name, 0.0)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _source(name: str, status: Mapping[str, Any]) -> str:
    """The counters' source: the process behind a status file (its start time)."""
    started = status.get("started")
    return name if started is None else f"{name}@{started}"


def _num(value: Any) -> float:
    try:
        out = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


class ControlSampler:
    """One row of ``control.csv`` per call (see the module docstring).

    ``routers``: node -> router namespace name; ``dmano_status``: node -> status file
    (distributed mode); ``central_status``: the orchestrator's status file (central);
    ``servers``: node -> its server for nodes on another server (spread networks)."""

    def __init__(self, routers: Mapping[str, str], dmano_status: Mapping[str, Path],
                 central_status: Path | None,
                 servers: Mapping[str, ServerSpec] | None = None) -> None:
        self.routers = dict(routers)
        self.servers = dict(servers or {})  # node -> its server, if not this machine
        self.dmano_status = dict(dmano_status)
        self.central_status = central_status
        self.acc = Accumulator()

    def sample(self, t_s: float) -> dict[str, float]:
        a = self.acc
        for node, netns in self.routers.items():
            tx = ctrlstats.read_router(netns, server=self.servers.get(node))
            if tx is not None:
                a.add(node, "ospf_packets", tx.packets)
                a.add(node, "ospf_bytes", tx.bytes)
                a.add(node, "lsu_packets", tx.lsu_packets)
                a.add(node, "lsu_bytes", tx.lsu_bytes)
        # a status file not written yet (or unreadable) adds nothing: counting it as 0
        # would take the next reading for a restart and count it all again
        for node, path in self.dmano_status.items():
            status = _json(path)
            conn = status.get("connector")
            if isinstance(conn, dict):
                src = _source(node, status)
                a.add(src, "p4rt_write_ops", _num(conn.get("writes")))
                a.add(src, "p4rt_write_bytes", _num(conn.get("write_bytes")))
        if self.central_status is not None:
            status = _json(self.central_status)
            ct = status.get("control_traffic")
            if isinstance(ct, dict):
                polls, feed = ct.get("polls") or {}, ct.get("lsdb_feed") or {}
                p4 = ct.get("p4runtime") or {}
                values = {
                    "p4rt_write_ops": _num(p4.get("write_ops")),
                    "p4rt_write_bytes": _num(p4.get("write_bytes")),
                    "poll_messages": _num(polls.get("requests")) + _num(polls.get("replies")),
                    "poll_bytes": _num(polls.get("request_bytes"))
                    + _num(polls.get("reply_bytes")),
                    "lsdb_feed_messages": _num(feed.get("updates"))
                    + _num(feed.get("deletes")),
                    "lsdb_feed_bytes": _num(feed.get("bytes")),
                    "counter_reads": _num(p4.get("counter_reads")),
                }
                src = _source("central", status)
                for name, value in values.items():
                    a.add(src, name, value)
        return {"t_s": t_s, **{c: a.get(c) for c in COLUMNS[1:]}}


class ControlRecorder:
    """A thread writing one :class:`ControlSampler` row every ``period_s`` of wall time
    (reading the routers' counters takes a process per router: kept off the runner's
    sampling loop, which must keep its pace), and a last one at :meth:`stop`.

    ``to_scenario``: monotonic time -> scenario time."""

    def __init__(self, sampler: ControlSampler, out: Path,
                 to_scenario: Callable[[float], float], period_s: float = 1.0) -> None:
        self.sampler = sampler
        self.writer = CsvWriter(out, COLUMNS)
        self.to_scenario = to_scenario
        self.period_s = period_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="control-traffic",
                                        daemon=True)

    def start(self) -> None:
        self.record()
        self._thread.start()

    def record(self) -> None:
        with self._lock:
            t = self.to_scenario(time.monotonic())
            self.writer.row(**self.sampler.sample(round(t, 3)))

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.record()
            except Exception:  # never let the measurement kill the run
                log.exception("control traffic: sample failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        try:
            self.record()
        finally:
            self.writer.close()
