"""Scheduling a scenario's traffic: the flows of one run and the arrival stretches.

Arrival times come from :func:`scenarios.arrivals.arrival_times`, the generator the
traffic tools' plans use too.
"""

from __future__ import annotations

import heapq
import itertools
import random

from scenarios.arrivals import arrival_times
from scenarios.spec.model import _EPS, ArrivalSegment, PlannedFlow, Scenario, TrafficClass


def _segments(scenario: Scenario, cls: TrafficClass) -> list[tuple[float, float, float, float]]:
    """(start, end, flows_per_s, packets_per_s) in scenario time, split at set_load."""
    cuts = [e.at_s for e in scenario.events if e.action == "set_load"
            and e.traffic == cls.name and cls.start_s < e.at_s < cls.end_s]
    bounds = [cls.start_s, *cuts, cls.end_s]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        flows, pps = scenario.state_at(lo).rate(cls.name)  # a set_load at lo counts
        if hi > lo:
            out.append((lo, hi, flows, pps))
    return out


def arrival_segments(scenario: Scenario) -> list[ArrivalSegment]:
    """Each class's arrival process as stretches of constant rate, already scaled to the
    wall clock (times x time_scale, arrival rates / time_scale), ordered by start: what an
    arrival-process generator needs. Stretches with rate 0 are left out. Note that a
    generator running constant arrivals with constant-rate flows sends the packets of all
    flows in step (bursts); :func:`flow_schedule` gives each flow a random phase."""
    out = []
    for cls in scenario.traffic:
        for lo, hi, flows, pps in _segments(scenario, cls):
            if flows > 0:
                out.append(ArrivalSegment(
                    traffic=cls.name, arrival=cls.arrival, start_wall_s=scenario.wall(lo),
                    until_wall_s=scenario.wall(hi),
                    flows_per_wall_s=scenario.wall_rate(flows),
                    flow_duration_wall_s=scenario.wall(cls.flow_duration_s),
                    packets_per_s=pps, payload_bytes=cls.payload_bytes,
                    dst_port=cls.dst_port))
    return sorted(out, key=lambda a: (a.start_wall_s, a.traffic))


def flow_schedule(scenario: Scenario, repetition: int = 1) -> list[PlannedFlow]:
    """Every flow of run ``repetition``, ordered by start time.

    Arrivals follow each class's process (``constant``: at ``start + j / rate``;
    ``poisson``: exponential gaps) within each stretch of constant rate, which ends at
    a ``set_load`` for the class; a new stretch starts its own sequence at the event.
    Source ports are drawn at random from ``src_ports`` among the ports not used by a
    flow still alive, so the flow hashes, and thus the WCMP choices, differ between
    repetitions even with constant arrivals. Each flow's first packet is sent
    ``phase_wall_s`` (uniform in one packet interval) after its start, so constant
    arrivals do not synchronise the packets of all flows into bursts (the VNFs' token
    buckets hold only 50 ms of capacity): hand a generator the flows as explicit flows
    starting at :attr:`PlannedFlow.first_packet_wall_s`. Deterministic for a given
    scenario and repetition (seeded with :meth:`Scenario.rep_seed`).
    """
    rng = random.Random(scenario.rep_seed(repetition))
    raw: list[tuple[float, int, TrafficClass, float]] = []  # (start, class idx, cls, pps)
    for cls in scenario.traffic:
        for lo, hi, flows, pps in _segments(scenario, cls):
            if flows <= 0:
                continue
            raw.extend((t, cls.index, cls, pps)
                       for t in arrival_times(cls.arrival, flows, rng, lo, until=hi))
    raw.sort(key=lambda r: (r[0], r[1]))
    free: dict[str, list[int]] = {c.name: list(range(c.src_ports[0], c.src_ports[1] + 1))
                                  for c in scenario.traffic}
    busy: dict[str, list[tuple[float, int]]] = {c.name: [] for c in scenario.traffic}
    plans: list[PlannedFlow] = []
    for fid, (start, _, cls, pps) in enumerate(raw):
        heap = busy[cls.name]
        while heap and heap[0][0] <= start + _EPS:
            free[cls.name].append(heapq.heappop(heap)[1])
        pool = free[cls.name]
        if not pool:
            raise ValueError(f"traffic {cls.name}: no free source port at {start:g} s "
                             f"(src_ports {cls.src_ports[0]}-{cls.src_ports[1]})")
        k = rng.randrange(len(pool))
        pool[k], pool[-1] = pool[-1], pool[k]
        port = pool.pop()
        heapq.heappush(heap, (start + cls.flow_duration_s, port))
        plans.append(PlannedFlow(
            flow_id=fid, traffic=cls.name, start_s=start, duration_s=cls.flow_duration_s,
            start_wall_s=scenario.wall(start),
            duration_wall_s=scenario.wall(cls.flow_duration_s), packets_per_s=pps,
            phase_wall_s=rng.uniform(0.0, 1.0 / pps), src_port=port,
            dst_port=cls.dst_port, payload_bytes=cls.payload_bytes,
        ))
    return plans
