"""Loss events, weight changes and the per-event metrics, on synthetic values (no network)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dmano.yamlconf import loads_yaml
from scenarios import figures
from scenarios.losses import SinkLoss, net_gaps, read_sink_losses, run_losses
from scenarios.outputs import EventRow, LossRow, ShareRow, WeightRow
from scenarios.report import build_report, event_metrics, summarize_run
from scenarios.report.events import affected, avoidance, carries, readmission
from scenarios.spec import Scenario, parse_scenario
from scenarios.traffic import wire
from scenarios.traffic.sink import LOSS_FIELDS, Sink
from scenarios.watch import WeightWatcher, status_weights, weight_changes

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_PATH = ROOT / "scenarios" / "t.yaml"

SCENARIO = """\
topology: ../topologies/paper_eval.yaml
policy: paper
time_scale: 0.5
duration_s: 100
traffic:
  - {name: main, source: src, destination: sink, chain: 1, arrival: constant,
     flows_per_s: 1, flow_duration_s: 10, packets_per_s: 10}
events:
  - {at_s: 20, action: fail_instance, instance: svc_b}
  - {at_s: 40, action: restore_instance, instance: svc_b}
  - {at_s: 60, action: drain_instance, instance: svc_c}
  - {at_s: 70, action: fail_daemon, node: B, daemon: dmano}
  - {at_s: 80, action: restore_daemon, node: B, daemon: dmano}
measure:
  sample_period_s: 2
"""


def scenario() -> Scenario:
    return parse_scenario(loads_yaml(SCENARIO, SCENARIO_PATH), SCENARIO_PATH)


# -- the sink's loss events -------------------------------------------------------------------

def test_sink_writes_gaps_with_interpolated_send_times() -> None:
    out = io.StringIO()
    sink = Sink([0], bind="127.0.0.1", rcvbuf=None, epoch_ns=0, losses=out)
    try:
        sink._open_timeseries()
        ms = 1_000_000
        for seq in (0, 1, 5, 3, 6):  # 2, 3, 4 missing; 3 arrives late
            sink.handle(wire.encode(7, seq, 1000 * ms + seq * 100 * ms), 20,
                        ("10.0.0.1", 4242), 5000, 2000 * ms)
    finally:
        sink.close()
    rows = out.getvalue().splitlines()
    assert rows[0] == ",".join(LOSS_FIELDS)
    assert rows[1:] == ["1.2,7,4242,2,3,1.4", "1.3,7,4242,3,-1,1.3"]
    assert sink.lost_total == 2


def test_first_packets_lost_use_the_first_send_time(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    sink = Sink([0], bind="127.0.0.1", rcvbuf=None, epoch_ns=0, losses=path)
    try:
        sink._open_timeseries()
        sink.handle(wire.encode(1, 4, 3_000_000_000), 20, ("10.0.0.1", 1), 5000, 0)
        assert sink._loss_file is not None
        sink._loss_file.close()
    finally:
        sink.close()
    assert read_sink_losses(path) == [SinkLoss(3.0, 1, 1, 0, 4, 3.0)]


def test_net_gaps_takes_late_packets_off() -> None:
    rows = [SinkLoss(1.0, 1, 9, 10, 5, 1.4), SinkLoss(1.2, 1, 9, 12, -1, 1.2),
            SinkLoss(2.0, 2, 9, 3, 1, 2.0), SinkLoss(2.0, 2, 9, 3, -1, 2.0)]
    got = net_gaps(rows)
    assert got == [SinkLoss(1.0, 1, 9, 10, 2, pytest.approx(1.1)),
                   SinkLoss(pytest.approx(1.3), 1, 9, 13, 2, 1.4)]


def test_run_losses_uses_the_schedule_and_adds_tail_loss() -> None:
    epoch = 10_000_000_000
    logs = [  # 10 packets/s from 1 s after the epoch; 30 sent
        {"flow_id": 0, "src_port": 1000, "start_ns": epoch + 1_000_000_000, "rate_pps": 10,
         "packets_sent": 30, "last_send_ns": epoch + 3_900_000_000},
        # nothing of it arrived
        {"flow_id": 1, "src_port": 1001, "start_ns": epoch + 2_000_000_000, "rate_pps": 10,
         "packets_sent": 5, "last_send_ns": epoch + 2_400_000_000},
        {"flow_id": 2, "src_port": 1002, "start_ns": None, "rate_pps": 10,
         "packets_sent": 0, "status": "failed"},
    ]
    # flow 0: seqs 5..7 lost (sink's estimate a bit off), the last 10 never arrived
    sink_rows = [SinkLoss(1.49, 0, 1000, 5, 3, 1.71)]
    sink_flows = [{"flow_id": 0, "src_port": 1000, "unique": 17, "lost": 3, "max_seq": 19}]
    rows = run_losses(sink_rows, logs, sink_flows, epoch, time_scale=0.5)
    assert rows == [
        LossRow(pytest.approx(3.0), 0, 3, pytest.approx(3.4)),  # (1 + 0.5 .. 0.7) / 0.5
        LossRow(pytest.approx(4.0), 1, 5, pytest.approx(4.8)),
        LossRow(pytest.approx(6.0), 0, 10, pytest.approx(7.8)),
    ]
    assert sum(r.lost for r in rows) == (30 - 17) + 5


# -- weight changes ---------------------------------------------------------------------------

def _status(updated: float, weights: dict[str, int]) -> dict[str, object]:
    return {"updated": updated, "services": [{"service_id": 1, "candidates": [
        {"name": n, "weight": w} for n, w in weights.items()]}]}


def test_weight_changes() -> None:
    names = {1: "SVC"}
    a = status_weights(_status(0, {"x": 2, "y": 1}), names)
    b = status_weights(_status(0, {"x": 0, "y": 1}), names)
    c = status_weights(_status(0, {"y": 3}), names)
    assert weight_changes(None, a) == [("SVC", "x", 2), ("SVC", "y", 1)]
    assert weight_changes(a, a) == []
    assert weight_changes(a, b) == [("SVC", "x", 0)]
    assert weight_changes(a, c) == [("SVC", "x", 0), ("SVC", "y", 3)]


def test_watcher_records_changes_with_the_status_time(tmp_path: Path) -> None:
    st = tmp_path / "rA" / "dmano.json"
    st.parent.mkdir()
    out = tmp_path / figures.WEIGHT_CHANGES_FILE
    w = WeightWatcher({"A": st, "B": tmp_path / "rB" / "dmano.json"}, {1: "SVC"}, out,
                      lambda unix: (unix - 1000.0) / 0.5)
    st.write_text(json.dumps(_status(1000.5, {"x": 1, "y": 1})))
    assert w.poll_once() == 2
    assert w.poll_once() == 0  # unchanged file: not even read
    st.write_text(json.dumps(_status(1001.0, {"x": 1, "y": 1})))
    assert w.poll_once() == 0  # rewritten, same weights
    st.write_text(json.dumps(_status(1001.25, {"y": 2})))
    assert w.poll_once() == 2
    w.stop()  # never started: stops at once, polls a last time
    rows = figures.read_weight_changes(out)
    assert [(r.t_s, r.node, r.instance, r.weight) for r in rows] == [
        (1.0, "A", "x", 1), (1.0, "A", "y", 1), (2.5, "A", "x", 0), (2.5, "A", "y", 2)]


# -- per-event metrics ------------------------------------------------------------------------

def test_affected_instances() -> None:
    s = scenario()
    assert affected(s, 0) == (["svc_b"], [])
    assert affected(s, 1) == ([], ["svc_b"])
    assert affected(s, 2) == (["svc_c"], [])
    assert affected(s, 3) == (["svc_b"], [])  # the node's instances
    assert affected(s, 4) == ([], ["svc_b"])


def test_avoidance_readmission_carries() -> None:
    ch = [WeightRow(-1.0, "A", "SVC", "svc_b", 3), WeightRow(-1.0, "B", "SVC", "svc_b", 2),
          WeightRow(20.4, "A", "SVC", "svc_b", 0), WeightRow(45.0, "A", "SVC", "svc_b", 1),
          WeightRow(39.0, "C", "SVC", "svc_b", 0)]
    assert avoidance(ch, "svc_b", 20.0, 40.0) == {"A": pytest.approx(0.4), "B": None}
    assert readmission(ch, "svc_b", 40.0, 60.0) == {"A": pytest.approx(5.0), "C": None}
    sh = [ShareRow(42.0, "SVC", "svc_b", 0.0, 0.0), ShareRow(44.0, "SVC", "svc_b", 5.0, 0.1)]
    assert carries(sh, "svc_b", 40.0, 60.0, 2.0) == pytest.approx(4.0)
    assert carries(sh, "svc_b", 44.0, 60.0, 2.0) is None


def test_event_metrics_attribute_loss_to_the_event_before() -> None:
    s = scenario()
    events = [EventRow(0.0, "run_start", "t"), EventRow(20.02, "fail_instance", "svc_b"),
              EventRow(40.0, "restore_instance", "svc_b"), EventRow(60.0, "drain_instance",
                                                                     "svc_c"),
              EventRow(70.0, "fail_daemon", "B/dmano"), EventRow(80.0, "restore_daemon",
                                                                "B/dmano"),
              EventRow(100.1, "run_end", "")]
    losses = [LossRow(5.0, 9, 1, 5.0),  # before any event
              LossRow(19.95, 1, 2, 20.1),  # in flight when svc_b died (0.05 s wall = 0.1)
              LossRow(20.5, 2, 3, 21.3), LossRow(21.0, 1, 1, 21.0),
              LossRow(71.0, 4, 4, 72.5)]
    ch = [WeightRow(-1.0, "A", "SVC", "svc_b", 3), WeightRow(20.6, "A", "SVC", "svc_b", 0),
          WeightRow(40.5, "A", "SVC", "svc_b", 2), WeightRow(-1.0, "A", "SVC", "svc_c", 3),
          WeightRow(60.25, "A", "SVC", "svc_c", 0), WeightRow(70.5, "A", "SVC", "svc_b", 0)]
    sh = [ShareRow(42.0, "SVC", "svc_b", 9.0, 0.5)]
    ms = event_metrics(s, events, losses, ch, sh, end_s=100.1)
    fail, restore, drain, fdaemon, rdaemon = ms
    assert (fail.lost, fail.flows) == (6, 2)
    assert fail.recovery_s == pytest.approx(1.28)
    assert fail.avoidance_s == {"svc_b": {"A": pytest.approx(0.58)}}
    assert (restore.lost, restore.recovery_s) == (0, None)
    assert restore.readmission_s == {"svc_b": {"A": pytest.approx(0.5)}}
    assert restore.carries_s == {"svc_b": pytest.approx(2.0)}
    assert drain.avoidance_s == {"svc_c": {"A": pytest.approx(0.25)}}
    assert fdaemon.instances == ["svc_b"] and fdaemon.lost == 4
    assert fdaemon.avoidance_s == {"svc_b": {"A": pytest.approx(0.5)}}
    assert rdaemon.readmission_s == {"svc_b": {"A": None}}  # not readmitted by the end
    assert rdaemon.until_s == 100.1


def test_report_from_synthetic_run(tmp_path: Path) -> None:
    s = scenario()
    run = tmp_path / "run-01"
    figures.write_rows(run / figures.EVENTS_FILE, [
        EventRow(0.0, "run_start", "t"), EventRow(20.0, "fail_instance", "svc_b"),
        EventRow(40.0, "restore_instance", "svc_b"), EventRow(60.0, "drain_instance", "svc_c"),
        EventRow(70.0, "fail_daemon", "B/dmano"), EventRow(80.0, "restore_daemon", "B/dmano"),
        EventRow(100.0, "run_end", "")])
    figures.write_rows(run / figures.LOSSES_FILE, [LossRow(20.5, 1, 3, 21.0)])
    figures.write_rows(run / figures.WEIGHT_CHANGES_FILE, [
        WeightRow(-0.5, "A", "SVC", "svc_b", 2), WeightRow(20.75, "A", "SVC", "svc_b", 0)])
    summary = summarize_run(run, s, 1)
    assert summary.events[0].lost == 3 and summary.lost_before_events == 0
    summary.save(run / "summary.json")
    again = type(summary).load(run / "summary.json")
    assert again.events == summary.events
    text, js = build_report(s, [again])
    assert "t=20 s fail_instance svc_b: 3 packets lost in 1 flow(s); recovery 1 s" in text
    assert "svc_b avoided by A* 0.75 s; slowest 0.75 s" in text
    assert js["events"][0]["avoidance_s"]["svc_b"]["A"]["mean"] == pytest.approx(0.75)
    assert js["events"][0]["lost_per_run"] == [3]
    assert js["lost_before_events"] == 0


# -- the loss timeline ------------------------------------------------------------------------

def test_loss_per_period_spreads_runs_of_losses() -> None:
    rows = [LossRow(0.5, 1, 1, 0.5), LossRow(1.5, 2, 4, 4.5), LossRow(-0.2, 3, 1, -0.2),
            LossRow(9.0, 4, 0, 9.0)]
    assert figures.loss_per_period(rows, 2.0, 6.0) == [(2.0, 3), (4.0, 2), (6.0, 1)]


def test_loss_timeline_is_drawn(tmp_path: Path) -> None:
    run = tmp_path / "run"
    figures.write_rows(run / figures.LOSSES_FILE,
                       [LossRow(20.5, 1, 3, 21.0), LossRow(71.0, 2, 10, 72.0)])
    figures.write_rows(run / figures.EVENTS_FILE, [
        EventRow(0.0, "run_start", "t"), EventRow(20.0, "fail_instance", "svc_b"),
        EventRow(70.0, "fail_daemon", "B/dmano")])
    written = figures.plot_run(run, scenario())
    png = run / figures.LOSS_FIG_FILE
    assert png in written and png.stat().st_size > 1000
    empty = figures.plot_loss_timeline([], tmp_path / "empty.png", period_s=1.0,
                                       duration_s=10.0)
    assert empty.stat().st_size > 1000
