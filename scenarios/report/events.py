"""Per event of a run: packets lost (and in how many flows), recovery and avoidance times.

All in scenario seconds, from a run's ``losses.csv``, ``weight_changes.csv`` and
``shares.csv`` (see :mod:`scenarios.outputs`) and the times ``events.csv`` gives the
events (when the runner did them):

* **lost / flows**: the packets of ``losses.csv`` *sent* from the event (less
  :data:`IN_FLIGHT_WALL_S` of wall time, packets already on their way to what failed)
  until the next event, and how many flows they belong to;
* **recovery**: from the event to the send time of the last of those packets (None
  when none was lost);
* **avoidance** (events that take instances away: ``fail/stop/drain_instance``,
  ``fail_node`` and ``fail_daemon`` for the node's instances): per node whose WCMP
  weights gave the instance new flows at the event, the time until its weight is 0 or
  the instance is no longer a candidate (``weight_changes.csv``); None when that did
  not happen before the next event;
* **readmission** (events that give instances back: ``start/restore/undrain_instance``,
  ``restore_node`` and ``restore_daemon``): per node, the time until its weight is > 0
  again; and **carries**: the time until ``shares.csv`` shows the instance processing
  packets again (an upper bound: the end of the first sample interval with traffic, so
  only as precise as ``sample_period_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios.outputs import EventRow, LossRow, ShareRow, WeightRow
from scenarios.spec import ACTIONS, Event, Scenario, TimelineState

IN_FLIGHT_WALL_S = 0.05  # losses sent this long before an event count as its own

Times = dict[str, dict[str, float | None]]  # instance -> node -> seconds


@dataclass
class EventMetrics:
    index: int  # position among the run's events
    t_s: float
    kind: str
    detail: str
    until_s: float  # the next event (or the end of the run)
    lost: int = 0
    flows: int = 0
    recovery_s: float | None = None
    instances: list[str] = field(default_factory=list)  # taken away or given back
    avoidance_s: Times = field(default_factory=dict)
    readmission_s: Times = field(default_factory=dict)
    carries_s: dict[str, float | None] = field(default_factory=dict)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> EventMetrics:
        return EventMetrics(**data)


def _taking(st: TimelineState, scenario: Scenario) -> set[str]:
    """Instances that take new flows: running, on a node that is up, not draining."""
    return set(st.live_instances(scenario.topology)) - set(st.drained)


def affected(scenario: Scenario, index: int) -> tuple[list[str], list[str]]:
    """(instances taken away, instances given back) by event ``index`` of the scenario."""
    ev: Event = scenario.events[index]
    before = _taking(scenario.states[index][1], scenario)
    after = _taking(scenario.states[index + 1][1], scenario)
    down, up = sorted(before - after), sorted(after - before)
    if ev.action in ("fail_daemon", "restore_daemon"):  # the timeline keeps them live
        on_node = sorted(i.name for i in scenario.topology.instances
                         if i.node == ev.node and i.name in before)
        if ev.action == "fail_daemon":
            down = on_node
        else:
            up = on_node
    return down, up


def _history(changes: Sequence[WeightRow], instance: str) -> dict[str, list[tuple[float, int]]]:
    out: dict[str, list[tuple[float, int]]] = {}
    for r in changes:
        if r.instance == instance:
            out.setdefault(r.node, []).append((r.t_s, r.weight))
    for rows in out.values():
        rows.sort()
    return out


def _weight_at(rows: list[tuple[float, int]], t: float) -> int:
    w = 0
    for ts, weight in rows:
        if ts > t:
            break
        w = weight
    return w


def avoidance(changes: Sequence[WeightRow], instance: str, t: float, until: float
              ) -> dict[str, float | None]:
    """Per node giving ``instance`` new flows at ``t``: seconds until its weight is 0."""
    out: dict[str, float | None] = {}
    for node, rows in sorted(_history(changes, instance).items()):
        if _weight_at(rows, t) <= 0:
            continue
        out[node] = next((ts - t for ts, w in rows if t < ts <= until and w <= 0), None)
    return out


def readmission(changes: Sequence[WeightRow], instance: str, t: float, until: float
                ) -> dict[str, float | None]:
    """Per node not giving ``instance`` new flows at ``t``: seconds until it does."""
    out: dict[str, float | None] = {}
    for node, rows in sorted(_history(changes, instance).items()):
        if _weight_at(rows, t) > 0:
            continue
        out[node] = next((ts - t for ts, w in rows if t < ts <= until and w > 0), None)
    return out


def carries(shares: Sequence[ShareRow], instance: str, t: float, until: float,
            sample_s: float) -> float | None:
    """Seconds until the first sample after ``t`` in which ``instance`` processed packets
    (the sample's end: an upper bound)."""
    return next((r.t_s - t for r in sorted(shares, key=lambda r: r.t_s)
                 if r.instance == instance and t < r.t_s <= until + sample_s
                 and r.packets_per_s > 0), None)


def event_metrics(scenario: Scenario, events: Sequence[EventRow], losses: Sequence[LossRow],
                  changes: Sequence[WeightRow] = (), shares: Sequence[ShareRow] = (),
                  end_s: float | None = None) -> list[EventMetrics]:
    """The metrics of every event the run did (``events``: ``events.csv``; the events of
    the scenario if it holds none)."""
    done = [(e.t_s, e.kind, e.detail) for e in events if e.kind in ACTIONS]
    if not done:
        done = [(e.at_s, e.action, e.target) for e in scenario.events]
    end = end_s if end_s is not None else scenario.duration_s
    in_flight = IN_FLIGHT_WALL_S / scenario.time_scale
    out = []
    for k, (t, kind, detail) in enumerate(done):
        until = done[k + 1][0] if k + 1 < len(done) else max(end, t)
        lo = t - in_flight
        hi = until - in_flight if k + 1 < len(done) else float("inf")
        mine = [r for r in losses if lo <= r.t_s < hi and r.lost > 0]
        m = EventMetrics(index=k, t_s=t, kind=kind, detail=detail, until_s=until,
                         lost=sum(r.lost for r in mine),
                         flows=len({r.flow_id for r in mine}),
                         recovery_s=max(max(r.until_s for r in mine) - t, 0.0)
                         if mine else None)
        if k < len(scenario.events) and scenario.events[k].action == kind:
            down, up = affected(scenario, k)
            m.instances = down or up
            for inst in down:
                m.avoidance_s[inst] = avoidance(changes, inst, t, until)
            for inst in up:
                m.readmission_s[inst] = readmission(changes, inst, t, until)
                m.carries_s[inst] = carries(shares, inst, t, until,
                                            scenario.measure.sample_period_s)
        out.append(m)
    return out


def unattributed_loss(events: Sequence[EventMetrics], losses: Sequence[LossRow],
                      time_scale: float) -> int:
    """Packets lost before the first event (none of the events' doing)."""
    first = events[0].t_s - IN_FLIGHT_WALL_S / time_scale if events else float("inf")
    return sum(r.lost for r in losses if r.t_s < first and r.lost > 0)


# -- the set's report -------------------------------------------------------------------------

def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _secs(v: float | None) -> str:
    return "never" if v is None else f"{v:.3g} s" if v < 10 else f"{v:.1f} s"


def _per_node(per_run: Sequence[Times], inst: str) -> dict[str, dict[str, Any]]:
    """node -> {mean (of the runs where it happened), max, runs, never (runs where not)}."""
    nodes = sorted({n for t in per_run for n in t.get(inst, {})})
    out = {}
    for node in nodes:
        vals = [t[inst][node] for t in per_run if node in t.get(inst, {})]
        got = [v for v in vals if v is not None]
        out[node] = {"mean": _mean(got), "max": max(got) if got else None,
                     "runs": len(vals), "never": len(vals) - len(got)}
    return out


def events_report(scenario: Scenario, per_run: Sequence[Sequence[EventMetrics]],
                  ingress: Sequence[str] = ()) -> tuple[list[str], list[dict[str, Any]]]:
    """Text lines and JSON of the events over the runs of a set (grouped by position)."""
    groups: dict[tuple[int, str, str], list[EventMetrics]] = {}
    for run in per_run:
        for m in run:
            groups.setdefault((m.index, m.kind, m.detail), []).append(m)
    if not groups:
        return [], []
    n = len(per_run)
    lines = ["", "Events: packets lost (by send time, from the event to the next one), "
                 "recovery (event -> last packet lost),",
             "avoidance (event -> the node's WCMP weight for the instance is 0) and "
             "readmission (-> > 0 again),",
             f"scenario seconds; mean over {n} run(s). '*' marks an ingress node."]
    out = []
    for (_, kind, detail), ms in sorted(groups.items()):
        t = _mean([m.t_s for m in ms]) or 0.0
        lost = [m.lost for m in ms]
        recov = [m.recovery_s for m in ms]
        if any(v is not None for v in recov):
            lines.append(f"  t={t:g} s {kind} {detail}: {sum(lost) / len(ms):g} packets lost "
                         f"in {sum(m.flows for m in ms) / len(ms):g} flow(s); recovery "
                         f"{_secs(_mean(recov))} (max "
                         f"{_secs(max(v for v in recov if v is not None))})")
        else:
            lines.append(f"  t={t:g} s {kind} {detail}: no packet lost")
        item: dict[str, Any] = {
            "index": ms[0].index, "t_s": t, "kind": kind, "detail": detail, "runs": len(ms),
            "lost_mean": sum(lost) / len(ms), "lost_per_run": lost,
            "flows_per_run": [m.flows for m in ms], "recovery_s_mean": _mean(recov),
            "recovery_s_max": max((v for v in recov if v is not None), default=None),
            "recovery_s_per_run": recov, "avoidance_s": {}, "readmission_s": {},
            "carries_s": {}}
        for key, verb in (("avoidance_s", "avoided"), ("readmission_s", "readmitted")):
            times = [getattr(m, key) for m in ms]
            for inst in sorted({i for tm in times for i in tm}):
                nodes = _per_node(times, inst)
                item[key][inst] = nodes
                cells = [f"{node}{'*' if node in ingress else ''} "
                         f"{_secs(v['mean']) if not v['never'] else 'never'}"
                         + (f" ({v['never']}/{v['runs']} never)" if v["never"] and
                            v["never"] < v["runs"] else "")
                         for node, v in nodes.items()]
                worst = [v["max"] for v in nodes.values() if v["max"] is not None]
                tail = f"; slowest {_secs(max(worst))}" if worst else ""
                lines.append(f"      {inst} {verb} by " + (", ".join(cells) or
                                                          "no node (no weight recorded)")
                             + tail)
        for inst in sorted({i for m in ms for i in m.carries_s}):
            vals = [m.carries_s.get(inst) for m in ms]
            item["carries_s"][inst] = {"mean": _mean(vals), "per_run": vals}
            if _mean(vals) is None:
                lines.append(f"      {inst} carries no traffic before the next event")
            else:
                lines.append(f"      {inst} carries traffic again within {_secs(_mean(vals))}"
                             f" (first sample with packets: up to "
                             f"{scenario.measure.sample_period_s:g} s late)")
        out.append(item)
    return lines, out


__all__ = ["IN_FLIGHT_WALL_S", "EventMetrics", "affected", "avoidance", "carries",
           "event_metrics", "events_report", "readmission", "unattributed_loss"]
