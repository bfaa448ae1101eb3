"""The scenario runner: one emulated network, traffic and a timeline of events, measured.

For each repetition: bring the scenario's topology up with everything running (FRR,
connectors, VNFs, D-MANOs with the time-scaled policy), start a sink on every destination
host and one generator per source host with the run's flow schedule, play the events at
their (scaled) times, and sample every ``sample_period_s``:

- each VNF instance's processed packets (its counters) -> ``shares.csv``;
- every node's WCMP weights (its D-MANO's status) -> ``weights.csv``;
- packets sent / received -> ``traffic.csv``; events and weight changes -> ``events.csv``;

and, between samples, every change of a WCMP weight with the time the D-MANO made it
(:class:`scenarios.watch.WeightWatcher`, every ~25 ms) -> ``weight_changes.csv``. The sinks
write every sequence gap with the send times of the packets missing; at the end they and
the generators' flow logs become ``losses.csv`` (:mod:`scenarios.losses`).

At the end: per-flow results (``flows.csv``), every daemon's log (``logs/``), ``meta.json``,
figures and the report (``scenarios.report``). Ctrl-C stops the run cleanly (the network
is torn down and what was measured so far is kept).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dmano.atomicfile import write_text_atomic
from scenarios import figures
from scenarios.control_traffic import ControlRecorder, ControlSampler
from scenarios.losses import read_flow_logs, read_sink_flows, read_sink_losses, run_losses
from scenarios.outputs import CONTROL_FILE
from scenarios.report import RunSummary, report_run, report_set
from scenarios.spec import (
    Event,
    PlannedFlow,
    Scenario,
    flow_schedule,
    load_scenario,
    run_dir,
    run_set_dir,
)
from scenarios.watch import WeightWatcher
from topologies import addressing as addr
from topologies import central as central_mod
from topologies import frr
from topologies.network import Network
from topologies.nodeconf import vnf_stats_path

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
LEAD_S = 2.0  # time between starting the traffic tools and the scenario's t = 0
DRAIN_S = 1.5  # after the last flow: packets in flight reach the sink


class RunError(RuntimeError):
    pass


def central_params(s: Scenario) -> central_mod.CentralParams | None:
    """The orchestrator's wall-clock parameters for a ``control: centralized`` scenario
    (periods and the management RTT are scenario time, scaled like every duration)."""
    if not s.centralized:
        return None
    c = s.wall_central()
    return central_mod.CentralParams(objective=c.objective, poll_period_s=c.poll_period_s,
                                     mgmt_rtt_ms=c.mgmt_rtt_ms, router=c.router or None)


class Run:
    """One repetition of a scenario."""

    def __init__(self, scenario: Scenario, repetition: int, folder: Path):
        self.s = scenario
        self.rep = repetition
        self.folder = folder
        self.net: Network | None = None
        self.tools: dict[str, subprocess.Popen] = {}
        self.t0 = 0.0  # monotonic time of the scenario's t = 0
        self.epoch_ns = 0  # the traffic tools' epoch (= t0)
        self.prev_packets: dict[str, tuple[int, float, int]] = {}
        self.prev_rate: dict[str, float] = {}
        self.prev_traffic = (0.0, 0, 0)  # grid time, cumulative sent, received
        self.prev_costs: dict[str, object] = {}  # announced VNF cost per instance
        self.prev_weights: dict[tuple[str, int, str], int] = {}
        self.down: dict[str, list[str]] = {}  # failed node -> VNFs it had running
        self.flows: list[PlannedFlow] = []
        self._flow_ids: dict[int, PlannedFlow] = {}

    # -- life cycle --------------------------------------------------------------------
    def execute(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        policy = self.folder / "policy.yaml"
        self._write_policy(self.s.wall_policy(), policy)
        started = time.time()
        topo = self.s.topology
        central = central_params(self.s)
        with Network(topo, policy=policy, dmano=central is None, vnfs=True, connectors=True,
                     central=central) as net:
            self.net = net
            try:
                self._wait_ready()
                self._start_traffic()
                self._play()
                self._stop_traffic()
            finally:
                self._stop_tools()
                self._collect_logs()
        self._write_flows()
        self._write_losses()
        write_text_atomic(self.folder / figures.META_FILE, json.dumps({
            "scenario": self.s.name, "scenario_file": str(self.s.path),
            "topology": str(topo.path), "policy": self.s.policy_ref,
            "time_scale": self.s.time_scale, "seed": self.s.rep_seed(self.rep),
            "control": self.s.control,
            "central": dataclasses.asdict(central) if central is not None else None,
            "repetition": self.rep,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "wall_duration_s": round(time.time() - started, 1)}, indent=1))

    @staticmethod
    def _write_policy(policy: Any, path: Path) -> None:
        data = policy.to_dict()
        path.write_text(yaml.safe_dump({"version": 1, **data}, sort_keys=False))

    def _wait_ready(self) -> None:
        """Every ingress connector programmed with a candidate for each chained service."""
        net = self.net
        assert net is not None
        topo = self.s.topology
        nodes = {h.node for c in self.s.traffic for h in topo.hosts if h.name == c.source}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ok = True
            for node in nodes:
                st = net.dmano_status(node) or {}
                conn = st.get("connector", {})
                live = [s for s in st.get("services", []) if any(
                    c["weight"] > 0 for c in s["candidates"])]
                if not conn.get("writes") or conn.get("last_error") or not live:
                    ok = False
            if ok:
                return
            time.sleep(0.2)
        if net.central is not None:
            raise RunError(f"the orchestrator did not program the ingress connectors within "
                           f"{READY_TIMEOUT_S:.0f} s (see {net.run_folder}/central/"
                           f"central.log)")
        raise RunError(f"the ingress D-MANOs did not program their connectors within "
                       f"{READY_TIMEOUT_S:.0f} s (see {net.run_folder}/r*/dmano.log)")

    # -- traffic -----------------------------------------------------------------------
    def _start_traffic(self) -> None:
        net = self.net
        assert net is not None
        topo = self.s.topology
        hosts = addr.host_addresses(topo)
        flows = flow_schedule(self.s, self.rep)
        self.t0 = time.monotonic() + LEAD_S
        epoch = int(self.t0 * 1e9)
        self.epoch_ns = epoch
        if any(net.server_of_node(h.name) for h in topo.hosts):
            net.gather(self.folder)  # the results of traffic tools on other servers
        dests = {c.destination for c in self.s.traffic}
        for dst in sorted(dests):
            ports = sorted({c.dst_port for c in self.s.traffic if c.destination == dst})
            args = [sys.executable, "-m", "scenarios.traffic", "sink", "--epoch-ns", str(epoch),
                    "--interval", str(self.s.wall(self.s.measure.sample_period_s)),
                    "--timeseries", str(self.folder / f"sink-{dst}.csv"),
                    "--losses", str(self.folder / f"sink-{dst}-losses.csv"),
                    "--summary", str(self.folder / f"sink-{dst}.json")]
            for p in ports:
                args += ["--port", str(p)]
            self._tool(f"sink-{dst}", dst, args)
        for src in sorted({c.source for c in self.s.traffic}):
            plan = {"first_flow_id": 0, "flows": [
                {"start": round(f.first_packet_wall_s, 6),
                 "duration": round(f.duration_wall_s - f.phase_wall_s, 6),
                 "rate": f.packets_per_s, "size": f.payload_bytes, "sport": f.src_port,
                 "dst": f"{hosts[self.s.traffic_class(f.traffic).destination].ip}:"
                        f"{f.dst_port}"}
                for f in flows if self.s.traffic_class(f.traffic).source == src]}
            plan_path = self.folder / f"plan-{src}.json"
            write_text_atomic(plan_path, json.dumps(plan))
            if net.server_of_node(src):
                net.publish(plan_path)
            args = [sys.executable, "-m", "scenarios.traffic", "gen", "--plan", str(plan_path),
                    "--epoch-ns", str(epoch), "--quiet",
                    "--interval", str(self.s.wall(self.s.measure.sample_period_s)),
                    "--timeseries", str(self.folder / f"gen-{src}.csv"),
                    "--flow-log", str(self.folder / f"gen-{src}.jsonl"),
                    "--summary", str(self.folder / f"gen-{src}.json")]
            self._tool(f"gen-{src}", src, args)
        self.flows = flows
        self._flow_ids = {f.flow_id: f for f in flows}

    def _tool(self, name: str, host: str, args: list[str]) -> None:
        net = self.net
        assert net is not None
        net.start_process(name, host, args, self.folder / "logs" / f"{name}.log")
        self.tools[name] = net.processes[name]

    def _stop_traffic(self) -> None:
        for name in [n for n in self.tools if n.startswith("gen-")]:
            proc = self.tools[name]
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(DRAIN_S)

    def _stop_tools(self) -> None:
        net = self.net
        assert net is not None
        for name in list(self.tools):  # generators first, then sinks: SIGTERM writes results
            net.stop_process(name, signal.SIGTERM, timeout=30)
        net.sync()  # their results (and every log) from the other servers, if any

    # -- timeline ----------------------------------------------------------------------
    def _play(self) -> None:
        s = self.s
        shares = figures.CsvWriter(self.folder / figures.SHARES_FILE)
        weights = figures.CsvWriter(self.folder / figures.WEIGHTS_FILE)
        events = figures.CsvWriter(self.folder / figures.EVENTS_FILE)
        traffic = figures.CsvWriter(self.folder / figures.TRAFFIC_FILE)
        control = self._control_recorder()
        watcher = self._weight_watcher()
        try:
            watcher.start()
            self._sample_packets()  # baseline
            pending = list(s.events)
            sample = s.wall(s.measure.sample_period_s)
            next_sample = sample
            next_progress = 0.0
            while time.monotonic() < self.t0:
                time.sleep(0.01)
            events.row(t_s=0.0, kind="run_start", detail=s.name)
            control.start()
            end = s.wall_duration_s
            while True:
                now = time.monotonic() - self.t0
                while pending and s.wall(pending[0].at_s) <= now:
                    ev = pending.pop(0)
                    self._apply(ev)
                    events.row(t_s=s.scenario_time(now), kind=ev.action, detail=ev.target)
                    log.info("t=%.0f s: %s", ev.at_s, ev.describe())
                if now >= next_sample:
                    self._sample(s.scenario_time(next_sample), shares, weights, events, traffic)
                    next_sample += sample
                if now >= next_progress:
                    self._progress(now)
                    next_progress += max(end / 20, 1.0)
                if now >= end:
                    break
                wake = min(next_sample, s.wall(pending[0].at_s) if pending else end, end)
                time.sleep(max(0.0, min(0.05, wake - now)))
            events.row(t_s=s.scenario_time(time.monotonic() - self.t0), kind="run_end",
                       detail="")
        finally:
            watcher.stop()
            control.stop()
            for w in (shares, weights, events, traffic):
                w.close()

    def _weight_watcher(self) -> WeightWatcher:
        net = self.net
        assert net is not None
        s = self.s
        unix_t0 = time.time() - (time.monotonic() - self.t0)  # the unix time of t = 0
        return WeightWatcher(
            {n.name: net.status_path(n.name) for n in s.topology.nodes},
            {x.id: x.name for x in s.topology.services},
            self.folder / figures.WEIGHT_CHANGES_FILE,
            lambda unix: s.scenario_time(unix - unix_t0))

    def _control_recorder(self) -> ControlRecorder:
        """control.csv, every second of wall time (or sample period, if longer)."""
        net = self.net
        assert net is not None
        nodes = [n.name for n in self.s.topology.nodes]
        central = net.central is not None
        sampler = ControlSampler(
            {n: net.nodes[f"r{n}"].netns for n in nodes},
            {} if central else {n: net.status_path(n) for n in nodes},
            central_mod.status_file(net.run_folder) if central else None,
            net.placement)
        return ControlRecorder(
            sampler, self.folder / CONTROL_FILE,
            lambda mono: self.s.scenario_time(mono - self.t0),
            max(1.0, self.s.wall(self.s.measure.sample_period_s)))

    def _progress(self, now: float) -> None:
        s = self.s
        t = s.scenario_time(now)
        phase = next((w.name for w in s.measure.windows if w.start_s <= t <= w.end_s),
                     "warm-up" if t < s.measure.warmup_s else "transition")
        active = sum(1 for f in self.flows
                     if f.start_wall_s <= now < f.start_wall_s + f.duration_wall_s)
        live = sorted(s.state_at(t).live_instances(s.topology))
        print(f"  run {self.rep}: t = {t:5.0f}/{s.duration_s:.0f} s ({phase}), "
              f"{active} flows active, instances {', '.join(live)}", flush=True)

    def _apply(self, ev: Event) -> None:
        net = self.net
        assert net is not None
        topo = self.s.topology
        a = ev.action
        if a in ("start_instance", "restore_instance"):
            net.start_vnf(ev.instance)  # type: ignore[arg-type]
        elif a == "stop_instance":
            net.stop_vnf(ev.instance)  # type: ignore[arg-type]
        elif a == "fail_instance":
            net.stop_vnf(ev.instance, signal.SIGKILL)  # type: ignore[arg-type]
        elif a in ("fail_link", "restore_link"):
            x, y = ev.link  # type: ignore[misc]
            state = "down" if a == "fail_link" else "up"
            net.nodes[f"r{x}"].run(f"ip link set dev {frr.router_iface(y)} {state}")
            net.nodes[f"r{y}"].run(f"ip link set dev {frr.router_iface(x)} {state}")
        elif a == "fail_node":
            node = ev.node
            assert node is not None
            self.down[node] = [i.name for i in topo.instances if i.node == node
                               and f"vnf-{i.name}" in net.processes]
            for name in self.down[node]:
                net.stop_vnf(name, signal.SIGKILL)
            net.stop_process(f"dmano-{node}", signal.SIGKILL)
            for lk in topo.links:
                if node in (lk.a, lk.b):
                    peer = lk.b if lk.a == node else lk.a
                    net.nodes[f"r{node}"].run(f"ip link set dev {frr.router_iface(peer)} down")
        elif a == "restore_node":
            node = ev.node
            assert node is not None
            for lk in topo.links:
                if node in (lk.a, lk.b):
                    peer = lk.b if lk.a == node else lk.a
                    net.nodes[f"r{node}"].run(f"ip link set dev {frr.router_iface(peer)} up")
            for name in self.down.pop(node, []):
                net.start_vnf(name)
            if net.with_dmano:
                net.start_dmano(node)
        elif a in ("drain_instance", "undrain_instance"):
            assert ev.instance is not None
            if a == "drain_instance":
                net.drain_instance(ev.instance, force=ev.force)
            else:
                net.undrain_instance(ev.instance)
        elif a in ("fail_daemon", "restore_daemon"):
            assert ev.node is not None and ev.daemon is not None
            if a == "fail_daemon":
                net.fail_daemon(ev.node, ev.daemon)
            else:
                net.restore_daemon(ev.node, ev.daemon)
        elif a == "set_policy_param":
            assert ev.policy is not None
            self._write_policy(self.s.wall_policy(ev.policy), self.folder / "policy.yaml")
            net.publish(self.folder / "policy.yaml")  # to the D-MANOs of other servers
            for name, proc in net.processes.items():
                if (name.startswith("dmano-") or name == central_mod.PROCESS) \
                        and proc.poll() is None:
                    proc.send_signal(signal.SIGUSR1)
        elif a in ("fail_orchestrator", "restore_orchestrator"):
            if net.central is None:
                log.info("%s: no orchestrator in distributed mode (nothing to do)", a)
            elif a == "fail_orchestrator":
                net.stop_process(central_mod.PROCESS, signal.SIGKILL)
            else:
                net.start_central()
        elif a == "set_load":
            pass  # already in the flow schedule the generators were given
        else:
            raise RunError(f"unknown action {a}")

    # -- measurement -------------------------------------------------------------------
    def _sample_packets(self) -> dict[str, tuple[int, float, int]]:
        """Per instance: (packets processed, time of that count, VNF pid)."""
        net = self.net
        assert net is not None
        out = {}
        for inst in self.s.topology.instances:
            try:
                st = json.loads(vnf_stats_path(net.run_folder, inst.name).read_text())
                out[inst.name] = (int(st.get("packets_out", 0)), float(st["updated"]),
                                  int(st.get("pid", 0)))
            except (OSError, ValueError, KeyError):
                out[inst.name] = self.prev_packets.get(inst.name, (0, 0.0, 0))
        return out

    def _sample(self, t_s: float, shares: figures.CsvWriter, weights: figures.CsvWriter,
                events: figures.CsvWriter, traffic: figures.CsvWriter) -> None:
        net = self.net
        assert net is not None
        s = self.s
        now = self._sample_packets()
        by_service: dict[str, dict[str, float]] = {}
        for inst in s.topology.instances:
            packets, updated, pid = now[inst.name]
            p0, u0, pid0 = self.prev_packets.get(inst.name, (0, 0.0, 0))
            if not pid:
                rate = 0.0  # not running
            elif pid != pid0:  # (re)started: its counters began at 0 when it started
                rate = self.prev_rate.get(inst.name, 0.0) if updated <= u0 else 0.0
            elif updated > u0:
                rate = (packets - p0) / (updated - u0)  # the VNF's own clock: no aliasing
            else:
                rate = self.prev_rate.get(inst.name, 0.0)  # not rewritten since last sample
            self.prev_rate[inst.name] = rate
            by_service.setdefault(inst.service, {})[inst.name] = rate
        self.prev_packets = now
        for svc, rates in by_service.items():
            total = sum(rates.values())
            for name, pps in sorted(rates.items()):
                shares.row(t_s=t_s, service=svc, instance=name, packets_per_s=pps,
                           share=(pps / total) if total > 0 else None)
        names = {x.id: x.name for x in s.topology.services}
        for node in s.topology.nodes:
            st = net.dmano_status(node.name) or {}
            for inst, local in st.get("local_instances", {}).items():
                cost = local.get("cost") if local.get("up") else None
                if cost != self.prev_costs.get(inst, "unset"):
                    what = f"VNF cost {cost}" if cost is not None else "withdrawn"
                    events.row(t_s=t_s, kind="note", detail=f"lsa {inst}: {what}")
                    self.prev_costs[inst] = cost
            for svc in st.get("services", []):
                for c in svc["candidates"]:
                    key = (node.name, svc["service_id"], c["name"])
                    weights.row(t_s=t_s, node=node.name,
                                service=names.get(svc["service_id"], svc["service_id"]),
                                instance=c["name"], weight=c["weight"])
                    if self.prev_weights.get(key) != c["weight"] and node.name in \
                            {h.node for h in s.topology.hosts if h.role != "sink"}:
                        events.row(t_s=t_s, kind="note",
                                   detail=f"weight {node.name}/{c['name']} "
                                          f"{self.prev_weights.get(key)} -> {c['weight']}")
                    self.prev_weights[key] = c["weight"]
        # generators and sinks write a row per interval on the same time grid (--epoch-ns):
        # compare sent and received at the latest grid time that every one of them wrote
        series = {name: _csv_rows_by_t(self.folder / f"{name}.csv") for name in self.tools}
        common = set.intersection(*(set(rows) for rows in series.values())) if series else set()
        if common:
            t_grid = max(common)
            sent = sum(int(float(rows[t_grid]["sent_total"])) for name, rows in series.items()
                       if name.startswith("gen-"))
            received = sum(int(float(rows[t_grid]["received_total"]))
                           for name, rows in series.items() if name.startswith("sink-"))
            if t_grid > self.prev_traffic[0]:  # per-interval counts, as traffic.csv holds
                for cls in s.traffic[:1]:
                    traffic.row(t_s=s.scenario_time(t_grid), traffic=cls.name,
                                sent=sent - self.prev_traffic[1],
                                received=received - self.prev_traffic[2])
                self.prev_traffic = (t_grid, sent, received)

    # -- results -----------------------------------------------------------------------
    def _write_flows(self) -> None:
        """flows.csv: the generators' flow logs joined with the sinks' per-flow results."""
        received: dict[tuple[int, int], int] = {}
        for path in self.folder.glob("sink-*.json"):
            try:
                summary = json.loads(path.read_text())
            except ValueError:
                continue
            for f in summary.get("flows", []):
                key = (int(f.get("flow_id", -1)), int(f.get("src_port", 0)))
                received[key] = received.get(key, 0) + int(f.get("unique", f.get("packets", 0)))
        rows = []
        for path in self.folder.glob("gen-*.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    g = json.loads(line)
                except ValueError:
                    continue
                fid = int(g["flow_id"])
                plan = self._flow_ids.get(fid)
                rows.append(dict(
                    flow_id=fid, traffic=plan.traffic if plan else "",
                    src_port=g["src_port"], dst_port=g["dst_port"],
                    start_s=self.s.scenario_time(float(g.get("start_s") or 0.0)),
                    end_s=self.s.scenario_time(float(g.get("end_s") or 0.0)),
                    sent=int(g.get("packets_sent", 0)),
                    received=received.get((fid, int(g["src_port"])), 0), instance=""))
        writer = figures.CsvWriter(self.folder / figures.FLOWS_FILE)
        try:
            for row in sorted(rows, key=lambda r: r["flow_id"]):
                writer.row(**row)
        finally:
            writer.close()

    def _write_losses(self) -> None:
        """losses.csv: the sinks' gaps and the tail losses from the flow logs."""
        rows = run_losses(
            [r for p in sorted(self.folder.glob("sink-*-losses.csv"))
             for r in read_sink_losses(p)],
            read_flow_logs(sorted(self.folder.glob("gen-*.jsonl"))),
            read_sink_flows(sorted(self.folder.glob("sink-*.json"))),
            self.epoch_ns, self.s.time_scale)
        figures.write_rows(self.folder / figures.LOSSES_FILE,
                           [{**r.__dict__, "t_s": round(r.t_s, 6),
                             "until_s": round(r.until_s, 6)} for r in rows])

    def _collect_logs(self) -> None:
        net = self.net
        if net is None or net.registry is None:
            return
        dest = self.folder / "logs"
        dest.mkdir(parents=True, exist_ok=True)
        # logs, plus the final VNF counters and D-MANO status files
        finals = [*net.run_folder.glob("vnf/*.json"), *net.run_folder.glob("r*/dmano.json"),
                  *net.run_folder.glob("central/*.json")]
        for path in [*net.run_folder.rglob("*.log"), *finals]:
            rel = path.relative_to(net.run_folder)
            target = dest / str(rel).replace("/", "_")
            try:
                shutil.copyfile(path, target)
            except OSError as exc:
                log.warning("could not keep log %s: %s", path, exc)


def _csv_rows_by_t(path: Path) -> dict[float, dict[str, str]]:
    """Rows of a traffic tool's time series by their (wall-clock) t_s."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    if not lines:
        return {}
    header = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if len(row) == len(header):
            out[round(float(row["t_s"]), 6)] = row
    return out


def run_scenario(path: Path, repetitions: int | None = None, output: Path | None = None,
                 figures_too: bool = True, connector: str | None = None) -> Path:
    """Run every repetition of a scenario; return the folder with the report.

    ``connector`` overrides the topology's connector target (ebpf or bmv2)."""
    s = load_scenario(path)
    if connector and connector != s.topology.connector:
        s = dataclasses.replace(s, topology=dataclasses.replace(s.topology,
                                                                connector=connector))
        print(f"connector target: {connector} (the topology file says "
              f"{load_scenario(path).topology.connector})", flush=True)
    n = repetitions or s.repetitions
    stamp = time.strftime("%Y%m%d-%H%M%S")
    set_dir = run_set_dir(s, stamp, base=output)
    set_dir.mkdir(parents=True, exist_ok=True)
    print(f"scenario {s.name}: {n} run(s) of {s.duration_s:g} s scenario time "
          f"({s.wall_duration_s:g} s each); results in {set_dir}", flush=True)
    for line in s.scaling_summary().splitlines():
        print(f"  {line}")
    summaries: list[RunSummary] = []
    for rep in range(1, n + 1):
        folder = run_dir(set_dir, rep)
        print(f"run {rep}/{n} ...", flush=True)
        Run(s, rep, folder).execute()
        summaries.append(report_run(s, folder, rep, figures_too))
    report_set(s, summaries, set_dir, figures_too)
    return set_dir
