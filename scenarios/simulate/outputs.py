"""The files of a simulated run: the emulated run's CSVs, plus the control plane's.

Same names, columns and meaning as :mod:`scenarios.outputs` (so :mod:`scenarios.report`
reads them unchanged), all times in scenario time:

* ``shares.csv`` every sample: each instance's packets per second over the sample (the
  flows whose packets reach it) and its share of its service;
* ``weights.csv`` every sample, and ``weight_changes.csv`` at every change (the time the
  node's D-MANO made it): the WCMP weights of the *watched* nodes (every node up to 250
  nodes, else the ingress nodes; ``--watch``);
* ``events.csv``: run_start, the events when done, notes (VNF cost changes, the ingress
  nodes' weight changes, events not simulated), run_end;
* ``flows.csv`` (``instance``: the instance of the chain's first service chosen at the
  flow's start), ``traffic.csv`` (sent / received per sample, by send time, all classes
  under the first class's name as the runner does), ``losses.csv`` (one row per stretch
  of packets a flow lost);
* ``meta.json`` with ``"simulated": true`` and the model's parameters;

and the control plane's own:

* ``controlplane.csv`` (:mod:`scenarios.simulate.stats`): per second of scenario time,
  LSAs originated (router, VNF, flushes), LSA transmissions and bytes, SPF runs;
* ``convergence.csv`` (:mod:`scenarios.simulate.convergence`): per event, the LSAs it
  caused and the time until every live node's tables (and routes) were final.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmano.atomicfile import write_text_atomic
from scenarios import figures
from scenarios.outputs import CsvWriter, write_rows
from scenarios.simulate.stats import COLUMNS as CONTROL_COLUMNS

if TYPE_CHECKING:
    from scenarios.simulate.sim import Simulation

log = logging.getLogger(__name__)

CONTROLPLANE_FILE = "controlplane.csv"
CONVERGENCE_FILE = "convergence.csv"
CONVERGENCE_COLUMNS = ("index", "t_s", "kind", "detail", "lsas", "tables_converged_s",
                       "tables_median_s", "routes_converged_s", "nodes", "never")


class RunOutput:
    """Writes one simulated run's folder (``folder`` None: keep nothing, for tests that
    look at the simulation's state instead)."""

    def __init__(self, sim: Simulation, folder: Path | None) -> None:
        self.sim = sim
        self.folder = folder
        self.prev_cum: dict[str, float] = {}
        self.prev_cost: dict[str, object] = {}
        self.prev_weights: dict[tuple[int, int, str], int] = {}
        self.notes: list[tuple[float, str, str]] = []  # (wall, kind, detail)
        self.ingress = sorted({sim.idx[h.node] for h in sim.topo.hosts if h.role != "sink"})
        self.shares: CsvWriter | None = None
        self.weights: CsvWriter | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.shares = CsvWriter(folder / figures.SHARES_FILE)
            self.weights = CsvWriter(folder / figures.WEIGHTS_FILE)
        self.last_t = 0.0

    # -- every sample ------------------------------------------------------------------------
    def sample(self, t_wall: float) -> None:
        sim = self.sim
        t_s = sim.scenario_time(t_wall)
        dt = t_wall - self.last_t
        self.last_t = t_wall
        by_service: dict[str, dict[str, float]] = {}
        for name, x in sim.instances.items():
            x.account(t_wall)
            rate = (x.cum_packets - self.prev_cum.get(name, 0.0)) / dt if dt > 0 else 0.0
            self.prev_cum[name] = x.cum_packets
            by_service.setdefault(x.spec.service, {})[name] = max(rate, 0.0)
            cost = x.announced_cost if x.running else None
            if cost != self.prev_cost.get(name, "unset"):
                what = f"VNF cost {cost}" if cost is not None else "withdrawn"
                self.notes.append((t_wall, "note", f"lsa {name}: {what}"))
                self.prev_cost[name] = cost
        if self.shares is not None:
            for svc, rates in by_service.items():
                total = sum(rates.values())
                for name, pps in sorted(rates.items()):
                    self.shares.row(t_s=t_s, service=svc, instance=name, packets_per_s=pps,
                                    share=(pps / total) if total > 0 else None)
        for node in sim.watched:
            for sid in sorted(sim.service_instances):
                tab = sim.tables.table(node, sid, t_wall)
                for c in tab or ():
                    if self.weights is not None:
                        self.weights.row(t_s=t_s, node=sim.names[node],
                                         service=sim.service_names.get(sid, str(sid)),
                                         instance=c.name, weight=c.weight)
                    key = (node, sid, c.name)
                    if self.prev_weights.get(key) != c.weight and node in self.ingress:
                        self.notes.append((t_wall, "note",
                                           f"weight {sim.names[node]}/{c.name} "
                                           f"{self.prev_weights.get(key)} -> {c.weight}"))
                    self.prev_weights[key] = c.weight

    # -- at the end ---------------------------------------------------------------------------
    def finish(self, started_utc: float) -> None:
        for w in (self.shares, self.weights):
            if w is not None:
                w.close()
        folder = self.folder
        if folder is None:
            return
        sim = self.sim
        s = sim.s
        end = s.wall_duration_s
        ev = [(0.0, "run_start", s.name)]
        ev += [(t, kind, detail) for t, kind, detail in sim.result.events_done]
        ev += [(t, "note", text) for t, text in sim.result.notes]
        ev += self.notes
        ev.sort(key=lambda r: r[0])
        ev.append((end, "run_end", ""))
        write_rows(folder / figures.EVENTS_FILE,
                   [{"t_s": sim.scenario_time(t), "kind": k, "detail": d} for t, k, d in ev])
        self._flows(folder)
        self._traffic(folder)
        write_rows(folder / figures.WEIGHT_CHANGES_FILE, [
            {"t_s": sim.scenario_time(r.t), "node": sim.names[r.node],
             "service": sim.service_names.get(r.sid, str(r.sid)), "instance": r.instance,
             "weight": r.weight}
            for r in sorted(sim.weight_rows, key=lambda r: (r.t, r.node, r.sid))])
        write_rows(folder / CONTROLPLANE_FILE, sim.stats.rows(s.duration_s), CONTROL_COLUMNS)
        k = s.time_scale
        conv = []
        for c in sim.conv.results():
            conv.append({"index": c.index, "t_s": sim.scenario_time(c.t_wall), "kind": c.kind,
                         "detail": c.detail, "lsas": c.lsas,
                         "tables_converged_s": _scaled(c.tables_s, k),
                         "tables_median_s": _scaled(c.tables_p50_s, k),
                         "routes_converged_s": _scaled(c.routes_s, k), "nodes": c.nodes,
                         "never": c.never})
        write_rows(folder / CONVERGENCE_FILE, conv, CONVERGENCE_COLUMNS)
        meta = {
            "scenario": s.name, "scenario_file": str(s.path), "topology": str(s.topology.path),
            "policy": s.policy_ref, "time_scale": s.time_scale, "seed": s.rep_seed(sim.rep),
            "control": s.control, "central": None, "repetition": sim.rep,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_utc)),
            "wall_duration_s": round(sim.result.wall_s, 3),
            "simulated": True,
            "simulation": {
                **sim.describe(), "options": asdict(sim.opts),
                "ospf": asdict(sim.params),
                "events_executed": sim.engine.executed,
                "lsa_instances": sim.store.versions_made,
                "tables_computed": sim.tables.computed,
                "flow_evaluations": sim.traffic.evaluations,
                "control_totals": sim.stats.totals(),
            },
        }
        write_text_atomic(folder / figures.META_FILE, json.dumps(meta, indent=1))

    def _flows(self, folder: Path) -> None:
        sim = self.sim
        rows = []
        losses = []
        for f in sim.traffic.flows:
            sent = f.sent
            lost = 0
            for a, b in f.losses:
                n = f.packets(a, b)
                if n <= 0:
                    continue
                lost += n
                step = 1.0 / f.pps
                first = f.first + math.ceil((max(a, f.first) - f.first) / step - 1e-9) * step
                last = first + (n - 1) * step
                losses.append({"t_s": round(sim.scenario_time(first), 6), "flow_id": f.fid,
                               "lost": n, "until_s": round(sim.scenario_time(last), 6)})
            rows.append({"flow_id": f.fid, "traffic": f.plan.traffic,
                         "src_port": f.plan.src_port, "dst_port": f.plan.dst_port,
                         "start_s": sim.scenario_time(f.first),
                         "end_s": sim.scenario_time(f.end), "sent": sent,
                         "received": sent - lost, "instance": f.first_instance})
        write_rows(folder / figures.FLOWS_FILE, rows)
        write_rows(folder / figures.LOSSES_FILE, sorted(losses, key=lambda r: (r["t_s"],
                                                                              r["flow_id"])))

    def _traffic(self, folder: Path) -> None:
        sim = self.sim
        s = sim.s
        sample = s.wall(s.measure.sample_period_s)
        nbins = max(math.floor(s.wall_duration_s / sample + 1e-9), 0)
        sent = [0] * nbins
        lost = [0] * nbins
        for f in sim.traffic.flows:
            lo = max(int(f.first // sample), 0)
            hi = min(int(f.end // sample) + 1, nbins)
            for b in range(lo, hi):
                sent[b] += f.packets(b * sample, (b + 1) * sample)
                for a, z in f.losses:
                    if z > b * sample and a < (b + 1) * sample:
                        lost[b] += f.packets(max(a, b * sample), min(z, (b + 1) * sample))
        name = s.traffic[0].name if s.traffic else ""
        write_rows(folder / figures.TRAFFIC_FILE, [
            {"t_s": s.scenario_time((b + 1) * sample), "traffic": name, "sent": sent[b],
             "received": sent[b] - lost[b]} for b in range(nbins)])


def _scaled(v: float | None, time_scale: float) -> float | None:
    """Wall-clock seconds -> scenario seconds."""
    return None if v is None else v / time_scale


def read_convergence(path: str | Path) -> list[dict[str, Any]]:
    """``convergence.csv`` rows (times None where empty)."""
    import csv

    out = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = dict(r)
            for c in ("t_s", "tables_converged_s", "tables_median_s", "routes_converged_s"):
                row[c] = float(r[c]) if r.get(c) else None
            for c in ("index", "lsas", "nodes", "never"):
                row[c] = int(float(r[c])) if r.get(c) else 0
            out.append(row)
    return out


__all__ = ["CONTROLPLANE_FILE", "CONVERGENCE_COLUMNS", "CONVERGENCE_FILE", "RunOutput",
           "read_convergence"]
