"""The numbers of one run: steady-state shares per window, flow shares, packet loss.

:func:`summarize_run` reads a run folder's CSV files (see :mod:`scenarios.figures`) into a
:class:`RunSummary`, which is saved as the run's ``summary.json`` and read back when a set
of runs is reported again.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dmano.atomicfile import write_json_atomic
from scenarios import figures
from scenarios.report.events import EventMetrics, event_metrics, unattributed_loss
from scenarios.spec import ACTIONS, Scenario


@dataclass
class ShareStats:
    """One instance's share (%) over the samples of one window of one run."""

    samples: list[float]  # per-sample shares, %
    pooled: float | None = None  # sum of its packets / sum of all packets, %

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "median": self.median, "pooled": self.pooled,
                "n": self.n, "samples": self.samples}


@dataclass
class EventLoss:
    """Packets sent/received in ``loss_window_s`` before and after one event."""

    t_s: float
    kind: str
    detail: str
    before_sent: int
    before_received: int
    after_sent: int
    after_received: int

    @property
    def before_lost(self) -> int:
        return max(self.before_sent - self.before_received, 0)

    @property
    def after_lost(self) -> int:
        return max(self.after_sent - self.after_received, 0)


@dataclass
class RunSummary:
    run: str  # the run folder
    repetition: int | None = None
    windows: dict[str, dict[str, ShareStats]] = field(default_factory=dict)
    flow_shares: dict[str, dict[str, float]] = field(default_factory=dict)  # %, new flows
    sent: int | None = None
    received: int | None = None
    event_losses: list[EventLoss] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    events: list[EventMetrics] = field(default_factory=list)  # from losses.csv & co
    lost_before_events: int | None = None  # losses.csv: sent before the first event

    @property
    def lost(self) -> int | None:
        if self.sent is None or self.received is None:
            return None
        return max(self.sent - self.received, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "repetition": self.repetition,
            "windows": {w: {i: s.to_dict() for i, s in per.items()}
                        for w, per in self.windows.items()},
            "flow_shares": self.flow_shares, "sent": self.sent, "received": self.received,
            "lost": self.lost, "event_losses": [asdict(e) for e in self.event_losses],
            "meta": self.meta, "events": [asdict(e) for e in self.events],
            "lost_before_events": self.lost_before_events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        return cls(
            run=data["run"], repetition=data.get("repetition"),
            windows={w: {i: ShareStats(list(s["samples"]), s.get("pooled"))
                         for i, s in per.items()} for w, per in data["windows"].items()},
            flow_shares=data.get("flow_shares", {}), sent=data.get("sent"),
            received=data.get("received"),
            event_losses=[EventLoss(**e) for e in data.get("event_losses", [])],
            meta=data.get("meta", {}),
            events=[EventMetrics.from_dict(e) for e in data.get("events", [])],
            lost_before_events=data.get("lost_before_events"),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_json_atomic(path, self.to_dict(), indent=1)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunSummary:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _instances_of(scenario: Scenario) -> dict[str, str]:
    """instance -> service."""
    return {i.name: i.service for i in scenario.topology.instances}


def window_shares(scenario: Scenario, rows: Sequence[figures.ShareRow]
                  ) -> dict[str, dict[str, ShareStats]]:
    """Per window and instance, the shares of the samples whose interval ends inside it.

    An instance is listed if it is live at the window's start (per the timeline) or
    carried traffic in the window.
    """
    out: dict[str, dict[str, ShareStats]] = {}
    for w in scenario.measure.windows:
        live = scenario.state_at(w.start_s).live_instances(scenario.topology)
        inside = [r for r in rows if w.contains(r.t_s)]
        carried = {r.instance for r in inside if r.packets_per_s > 0}
        per_service_total: dict[str, float] = {}
        for r in inside:
            per_service_total[r.service] = per_service_total.get(r.service, 0.0) \
                + r.packets_per_s
        stats: dict[str, ShareStats] = {}
        for inst in sorted({r.instance for r in inside} & (live | carried)):
            mine = [r for r in inside if r.instance == inst]
            samples = [100.0 * r.share for r in mine if r.share is not None]
            total = per_service_total.get(mine[0].service, 0.0)
            pooled = 100.0 * sum(r.packets_per_s for r in mine) / total if total > 0 else None
            stats[inst] = ShareStats(samples, pooled)
        out[w.name] = stats
    return out


def _flow_shares(scenario: Scenario, flows: Sequence[figures.FlowRow]
                 ) -> dict[str, dict[str, float]]:
    """% of the flows starting in each window per instance (flows with a known one)."""
    out: dict[str, dict[str, float]] = {}
    for w in scenario.measure.windows:
        starting = [f for f in flows if f.instance and w.contains(f.start_s)]
        if not starting:
            continue
        counts: dict[str, int] = {}
        for f in starting:
            counts[f.instance] = counts.get(f.instance, 0) + 1
        out[w.name] = {i: 100.0 * c / len(starting) for i, c in sorted(counts.items())}
    return out


def _event_times(scenario: Scenario, events: Sequence[figures.EventRow] | None
                 ) -> list[tuple[float, str, str]]:
    if events:
        done = [(e.t_s, e.kind, e.detail) for e in events if e.kind in ACTIONS]
        if done or not scenario.events:
            return done
    return [(e.at_s, e.action, e.target) for e in scenario.events]


def event_losses(scenario: Scenario, traffic: Sequence[figures.TrafficRow],
                 events: Sequence[figures.EventRow] | None = None) -> list[EventLoss]:
    """Sent/received in ``(t - w, t]`` and ``(t, t + w]`` around each event (samples by
    the end of their interval), ``w`` = ``measure.loss_window_s``."""
    w = scenario.measure.loss_window_s
    out = []
    for t, kind, detail in _event_times(scenario, events):
        before = [r for r in traffic if t - w < r.t_s <= t]
        after = [r for r in traffic if t < r.t_s <= t + w]
        out.append(EventLoss(t, kind, detail,
                             sum(r.sent for r in before), sum(r.received for r in before),
                             sum(r.sent for r in after), sum(r.received for r in after)))
    return out


def summarize_run(run: str | Path, scenario: Scenario, repetition: int | None = None
                  ) -> RunSummary:
    """Read one run folder's outputs (missing files give empty parts)."""
    run = Path(run)
    meta: dict[str, Any] = {}
    if (run / figures.META_FILE).is_file():
        meta = json.loads((run / figures.META_FILE).read_text(encoding="utf-8"))
    if repetition is None:
        repetition = meta.get("repetition")
    summary = RunSummary(run=str(run), repetition=repetition, meta=meta)
    shares = (figures.read_shares(run / figures.SHARES_FILE)
              if (run / figures.SHARES_FILE).is_file() else None)
    if shares is not None:
        summary.windows = window_shares(scenario, shares)
    events = (figures.read_events(run / figures.EVENTS_FILE)
              if (run / figures.EVENTS_FILE).is_file() else None)
    traffic = (figures.read_traffic(run / figures.TRAFFIC_FILE)
               if (run / figures.TRAFFIC_FILE).is_file() else None)
    if (run / figures.FLOWS_FILE).is_file():
        flows = figures.read_flows(run / figures.FLOWS_FILE)
        summary.sent = sum(f.sent for f in flows)
        summary.received = sum(f.received for f in flows)
        summary.flow_shares = _flow_shares(scenario, flows)
    elif traffic is not None:
        summary.sent = sum(r.sent for r in traffic)
        summary.received = sum(r.received for r in traffic)
    if traffic is not None:
        summary.event_losses = event_losses(scenario, traffic, events)
    if (run / figures.LOSSES_FILE).is_file():
        losses = figures.read_losses(run / figures.LOSSES_FILE)
        changes = (figures.read_weight_changes(run / figures.WEIGHT_CHANGES_FILE)
                   if (run / figures.WEIGHT_CHANGES_FILE).is_file() else [])
        end = next((e.t_s for e in events or [] if e.kind == "run_end"), None)
        summary.events = event_metrics(scenario, events or [], losses, changes,
                                       shares or [], end)
        summary.lost_before_events = unattributed_loss(summary.events, losses,
                                                       scenario.time_scale)
    return summary


__all__ = ["EventLoss", "RunSummary", "ShareStats", "event_losses", "summarize_run",
           "window_shares"]
