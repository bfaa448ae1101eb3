"""The orchestrator's view of every node's VNFs: one poll per node per period.

A real orchestrator asks an agent on each NFV node for its VNFs' state over the
management network. Here the agent's answer is what the D-MANO itself would read: the
node's VNF counters files, checked by the same :class:`dmano.monitor.Monitor` (process
alive, counters fresh, values sane). Each poll

* waits the management round trip (``mgmt_rtt_ms``: the request out and the answer back;
  this kernel has no netem, so the delay is explicit in the orchestrator's I/O), then
* reads that node's counters, so what it sees is as old as a real answer would be;
* counts one request and one reply: request bytes = a small JSON request naming the node,
  reply bytes = the counters files' sizes (what an agent would send back).

A dead VNF is therefore seen at the first poll after its death (plus the RTT), never
sooner: that is the orchestrator's detection path (DESIGN §10).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from dmano.config import NodeConfig
from dmano.monitor import InstanceStatus, Monitor


@dataclass
class PollCounters:
    """Management traffic of the polls, in messages and bytes."""

    requests: int = 0
    replies: int = 0
    request_bytes: int = 0
    reply_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "replies": self.replies,
                "request_bytes": self.request_bytes, "reply_bytes": self.reply_bytes}


@dataclass
class NodePoll:
    """What one poll of one node returned: each instance's status and, from its counters
    file, its packets per service path (``packets_by_spi``; absent for an old VNF)."""

    node: str
    statuses: dict[str, InstanceStatus]
    at: float = field(default_factory=time.time)
    by_spi: dict[str, dict[int, int]] = field(default_factory=dict)
    mono: float = field(default_factory=time.monotonic)


class NodePoller:
    """Polls one node (see the module docstring)."""

    def __init__(self, cfg: NodeConfig, counters: PollCounters):
        self.cfg = cfg
        self.monitor = Monitor(cfg.instances, stale_s=cfg.heartbeat_s)
        self.counters = counters
        self.request = json.dumps({"get": "vnf_counters", "node": cfg.node}).encode()

    async def poll(self, rtt_s: float) -> NodePoll:
        self.counters.requests += 1
        self.counters.request_bytes += len(self.request)
        if rtt_s > 0:
            await asyncio.sleep(rtt_s)
        statuses = self.monitor.poll()
        self.counters.replies += 1
        self.counters.reply_bytes += self._reply_size()
        return NodePoll(self.cfg.node, statuses, by_spi=self._by_spi(statuses))

    def _by_spi(self, statuses: dict[str, InstanceStatus]) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for inst in self.cfg.instances:
            st = statuses.get(inst.name)
            if st is None or not st.up:
                continue
            try:
                raw = json.loads(inst.stats.read_text()).get("packets_by_spi")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(raw, dict):
                try:
                    out[inst.name] = {int(k): int(v) for k, v in raw.items()
                                      if int(v) >= 0}
                except (TypeError, ValueError):
                    continue  # a bad value: this instance falls back to the even split
        return out

    def _reply_size(self) -> int:
        size = 2  # the enclosing JSON object
        for inst in self.cfg.instances:
            try:
                size += inst.stats.stat().st_size + 1
            except OSError:
                size += len(inst.name) + 16  # "name": null
        return size
