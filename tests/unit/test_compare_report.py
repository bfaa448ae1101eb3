"""The distributed-vs-centralized comparison and its control-traffic inputs, no network.

* :mod:`scenarios.report.compare` on synthetic run folders (CSV files written here,
  summarised by :func:`summarize_run`) of a small scenario with hand-checked numbers:
  reaction (every-node avoidance, "never", readmission, the load step's first change
  and every-ingress time, means over runs), balance against the per-service LP optimum,
  control-traffic rates after the warm-up, the single point of failure, the text, the
  JSON and the figures; then on a real ``scenarios compare`` result
  (``tests/unit/data/compare``, trimmed, see its README);
* :mod:`topologies.ctrlstats` (``nft -j`` output) and :mod:`scenarios.control_traffic`
  (accumulator, sampler from status files, recorder thread);
* ``python -m topologies up``'s centralized options, refused before anything is built.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scenarios.control_traffic import COLUMNS, Accumulator, ControlRecorder, ControlSampler
from scenarios.outputs import (
    CONTROL_FILE,
    EVENTS_FILE,
    FLOWS_FILE,
    LOSSES_FILE,
    SHARES_FILE,
    WEIGHT_CHANGES_FILE,
    CsvWriter,
    EventRow,
    LossRow,
    ShareRow,
    WeightRow,
    read_control,
    write_rows,
)
from scenarios.report.compare import (
    COMPARISON_JSON,
    COMPARISON_TEXT,
    FIG_BALANCE,
    FIG_CONTROL,
    FIG_REACTION,
    FIG_UTIL,
    ModeResult,
    balance,
    compare,
    control_rates,
    orchestrator_outages,
    plot,
    reaction,
    render,
    spof,
    window_balance,
    write_comparison,
)
from scenarios.report.events import EventMetrics
from scenarios.report.summary import RunSummary, summarize_run
from scenarios.spec import Scenario, load_scenario
from topologies import cli as topo_cli
from topologies import ctrlstats, runstate, servers

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "compare"

# -- a small scenario ---------------------------------------------------------------------------
# Ring A-B-C-D; service S: s1 (100/s, on B), s2 (300/s, on C); service T: t1, t2 (200/s).
# Chained traffic enters at A (src_a) and D (src_d): the ingress nodes; src_b on B sends
# plain IP (B is no ingress).

TOPOLOGY = """\
name: cmp4
nodes: [{name: A}, {name: B}, {name: C}, {name: D}]
links:
  - {a: A, b: B, cost: 10}
  - {a: B, b: C, cost: 10}
  - {a: C, b: D, cost: 10}
  - {a: D, b: A, cost: 10}
services:
  - {name: S, id: 1, anycast: 10.254.1.1}
  - {name: T, id: 2, anycast: 10.254.2.1}
instances:
  - {name: s1, service: S, node: B, capacity: 100}
  - {name: s2, service: S, node: C, capacity: 300}
  - {name: t1, service: T, node: B, capacity: 200}
  - {name: t2, service: T, node: D, capacity: 200}
hosts:
  - {name: src_a, node: A, role: source}
  - {name: src_b, node: B, role: source}
  - {name: src_d, node: D, role: source}
  - {name: sink, node: C, role: sink}
chains:
  - {spi: 1, name: st, services: [S, T]}
  - {spi: 2, name: ts, services: [T, S]}
classifier:
  - {node: A, chain: 1, priority: 100, src: 10.1.100.0/24, proto: udp}
  - {node: D, chain: 2, priority: 100, src: 10.4.100.0/24, proto: udp}
"""

SCENARIO = """\
name: cmp
topology: topo.yaml
policy: paper
dmano_period_s: 1
control: centralized
central: {poll_period_s: 2, mgmt_rtt_ms: 10, objective: policy, router: A}
time_scale: 1
duration_s: 100
seed: 7
traffic:
  - {name: a, source: src_a, destination: sink, chain: 1, arrival: constant,
     flows_per_s: 1, flow_duration_s: 10, packets_per_s: 10}
  - {name: b, source: src_b, destination: sink, chain: none, arrival: constant,
     flows_per_s: 1, flow_duration_s: 10, packets_per_s: 10}
  - {name: d, source: src_d, destination: sink, chain: 2, arrival: constant,
     flows_per_s: 1, flow_duration_s: 10, packets_per_s: 10}
events:
  - {at_s: 20, action: fail_instance, instance: s1, label: "s1 crashes"}
  - {at_s: 30, action: restore_instance, instance: s1}
  - {at_s: 40, action: set_load, traffic: a, flows_per_s: 2, label: "a doubles"}
  - {at_s: 50, action: fail_orchestrator}
  - {at_s: 55, action: fail_instance, instance: t1, label: "t1 crashes (orchestrator down)"}
  - {at_s: 60, action: restore_orchestrator}
  - {at_s: 70, action: restore_instance, instance: t1}
  - {at_s: 80, action: fail_link, link: B-C}
  - {at_s: 90, action: restore_link, link: B-C}
measure:
  sample_period_s: 1
  warmup_s: 5
  loss_window_s: 5
  windows:
    - {name: before, start_s: 10, end_s: 20}    # s1 fails at its end: still counted
    - {name: degraded, start_s: 22, end_s: 30}  # s1 down (back at its end)
    - {name: mixed, start_s: 50, end_s: 62}     # t1 fails inside it: left out
"""

SERVICE = {"s1": "S", "s2": "S", "t1": "T", "t2": "T"}
CAPACITY = {"s1": 100, "s2": 300, "t1": 200, "t2": 200}
NODES = ("A", "B", "C", "D")
# event index -> (at_s, kind, detail) as events.csv writes them
EVENTS = [(20, "fail_instance", "s1"), (30, "restore_instance", "s1"),
          (40, "set_load", "a flows_per_s=2"), (50, "fail_orchestrator", "orchestrator"),
          (55, "fail_instance", "t1"), (60, "restore_orchestrator", "orchestrator"),
          (70, "restore_instance", "t1"), (80, "fail_link", "B-C"),
          (90, "restore_link", "B-C")]
CONTROL_RATES = {  # per scenario second, run factor 1
    "ospf_packets": 10, "ospf_bytes": 1000, "lsu_packets": 2, "lsu_bytes": 300,
    "p4rt_write_ops": 4, "p4rt_write_bytes": 120, "poll_messages": 6, "poll_bytes": 900,
    "lsdb_feed_messages": 0.5, "lsdb_feed_bytes": 50, "counter_reads": 1}


def _write_scenario(folder: Path, text: str = SCENARIO) -> Scenario:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "topo.yaml").write_text(TOPOLOGY)
    (folder / "scen.yaml").write_text(text)
    return load_scenario(folder / "scen.yaml")


def _rates_r1(t: float) -> dict[str, float]:
    if t <= 20:
        return {"s1": 100, "s2": 100, "t1": 0, "t2": 0}
    if t <= 30:
        return {"s1": 3, "s2": 200, "t1": 180, "t2": 120}  # s1's 3/s: it is down
    return {"s1": 100, "s2": 100, "t1": 100, "t2": 100}


def _rates_r2(t: float) -> dict[str, float]:
    return {"s1": 80, "s2": 120, "t1": 0, "t2": 0} if t <= 20 else _rates_r1(t)


def _initial_weights() -> list[WeightRow]:
    w0 = {"s1": 10, "s2": 30, "t1": 20, "t2": 20}
    return [WeightRow(-1.0, n, SERVICE[i], i, w) for n in NODES for i, w in w0.items()]


def _changes(spec: dict[str, list[tuple[float, str, int]]]) -> list[WeightRow]:
    """{instance: [(t_s, node, weight), ...]} -> weight_changes rows."""
    return _initial_weights() + [WeightRow(t, n, SERVICE[i], i, w)
                                 for i, rows in spec.items() for t, n, w in rows]


# Run 1 (centralized): D keeps giving s1 flows after its crash (never avoids it before
# the next event); s1 readmitted by A, B, C in 1.0, 2.0, 0.5 s; the load step changes C
# first (0.3 s), then ingress A (0.8 s) and D (1.5 s), B (no ingress) at 5 s; t1 avoided
# by all within 1.0 s, readmitted within 2.0 s.
R1_CHANGES = _changes({
    "s1": [(20.5, "A", 0), (21.0, "B", 0), (20.2, "C", 0),
           (31.0, "A", 10), (32.0, "B", 10), (30.5, "C", 10), (40.8, "A", 15)],
    "s2": [(40.3, "C", 35)],
    "t1": [(45.0, "B", 25), (55.4, "A", 0), (55.2, "B", 0), (56.0, "C", 0), (55.5, "D", 0),
           (71.0, "A", 20), (71.0, "B", 20), (72.0, "C", 20), (70.5, "D", 20)],
    "t2": [(41.5, "D", 25)],
})
# Run 2 (centralized): s1 avoided within 1.0 s, readmitted within 3.0 s; load step: C
# 0.1 s, A 0.4 s, D 0.9 s; D drops t1 only at 63 s, after the orchestrator's return
# (never before the next event; 8 s to the end of the run); t1 readmitted in 0.5 s.
R2_CHANGES = _changes({
    "s1": [(20.4, "A", 0), (20.6, "B", 0), (20.3, "C", 0), (21.0, "D", 0),
           (30.5, "A", 10), (31.5, "B", 10), (30.2, "C", 10), (33.0, "D", 10),
           (40.4, "A", 15)],
    "s2": [(40.1, "C", 35)],
    "t1": [(55.4, "A", 0), (55.2, "B", 0), (56.0, "C", 0), (63.0, "D", 0),
           *[(70.5, n, 20) for n in NODES]],
    "t2": [(40.9, "D", 25)],
})
# Run 3 (distributed): every node reacts 0.2 s after every event.
R3_CHANGES = _changes({
    "s1": [*[(20.2, n, 0) for n in NODES], *[(30.2, n, 10) for n in NODES]],
    "s2": [(40.2, n, 35) for n in NODES],
    "t1": [*[(55.2, n, 0) for n in NODES], *[(70.2, n, 20) for n in NODES]],
})
R1_LOSSES = [LossRow(20.1, 1, 3, 20.4), LossRow(20.2, 2, 2, 20.9), LossRow(55.1, 3, 10, 56.0),
             LossRow(60.5, 4, 6, 61.0), LossRow(70.2, 9, 100, 70.3)]
R2_LOSSES = [LossRow(20.05, 7, 4, 20.5), LossRow(55.3, 8, 20, 57.5)]
R3_LOSSES = [LossRow(20.1, 1, 2, 20.15)]


def write_run(folder: Path, changes: list[WeightRow], losses: list[LossRow],
              rates: Callable[[float], dict[str, float]], control_factor: float,
              sent: int, received: int, central: bool = True) -> Path:
    """A run folder as the runner writes it (the files the comparison reads)."""
    folder.mkdir(parents=True)
    write_rows(folder / EVENTS_FILE, [EventRow(0.0, "run_start", "cmp"),
                                      *(EventRow(float(t), k, d) for t, k, d in EVENTS),
                                      EventRow(100.0, "run_end", "")])
    write_rows(folder / WEIGHT_CHANGES_FILE, changes)
    write_rows(folder / LOSSES_FILE, losses)
    shares = []
    for t in range(1, 101):
        r = rates(float(t))
        for inst, pps in r.items():
            total = sum(v for i, v in r.items() if SERVICE[i] == SERVICE[inst])
            shares.append(ShareRow(float(t), SERVICE[inst], inst, pps,
                                   pps / total if total else None))
    write_rows(folder / SHARES_FILE, shares)
    with CsvWriter(folder / FLOWS_FILE) as fw:
        fw.row(flow_id=1, traffic="a", src_port=1000, dst_port=5000, start_s=1.0,
               end_s=99.0, sent=sent, received=received, instance="")
    with CsvWriter(folder / CONTROL_FILE) as cw:
        # before the warm-up (5 s): counters that moved differently, to be ignored
        cw.row(t_s=0.0, **dict.fromkeys(COLUMNS[1:], 0))
        cw.row(t_s=3.0, **dict.fromkeys(COLUMNS[1:], 5000))
        for t in range(5, 100, 5):
            cw.row(t_s=float(t), **{
                c: 10_000 + control_factor * rate * (t - 5)
                * (1 if central or c not in ("poll_messages", "poll_bytes",
                                             "lsdb_feed_messages", "lsdb_feed_bytes",
                                             "counter_reads") else 0)
                for c, rate in CONTROL_RATES.items()})
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("cmp")
    s = _write_scenario(base / "scenario")
    r1 = write_run(base / "central" / "run-01", R1_CHANGES, R1_LOSSES, _rates_r1, 1, 1000, 879)
    r2 = write_run(base / "central" / "run-02", R2_CHANGES, R2_LOSSES, _rates_r2, 2, 1000, 976)
    r3 = write_run(base / "dist" / "run-01", R3_CHANGES, R3_LOSSES, _rates_r1, 0.5, 1000, 998,
                   central=False)
    cen = s.with_control("centralized")
    dist = s.with_control("distributed")
    central = ModeResult("centralized", cen, [summarize_run(r1, cen), summarize_run(r2, cen)])
    distributed = ModeResult("distributed", dist, [summarize_run(r3, dist)])
    return {"scenario": s, "central": central, "distributed": distributed, "base": base}


def _row(rows: list[dict[str, Any]], index: int) -> dict[str, Any]:
    return next(r for r in rows if r["index"] == index)


# -- reaction -----------------------------------------------------------------------------------

def test_reaction_avoidance_is_the_slowest_node_and_never_counts_runs(setup: dict[str, Any]
                                                                       ) -> None:
    rows = reaction(setup["central"])
    assert [r["action"] for r in rows] == [k for _, k, _ in EVENTS]
    crash = _row(rows, 0)
    assert crash["label"] == "s1 crashes" and crash["at_s"] == 20
    # run 1: D never dropped s1 before the next event -> no mean, one "never" run
    assert crash["avoid_s"] is None and crash["avoid_s_never_runs"] == 1
    assert crash["lost"] == pytest.approx(4.5)  # (5 + 4) / 2
    assert crash["flows"] == pytest.approx(1.5)  # (2 + 1) / 2
    assert crash["recovery_s"] == pytest.approx(0.7)  # (0.9 + 0.5) / 2
    # t1: run 1 every node within 1.0 s, run 2 D only after the next event
    t1 = _row(rows, 4)
    assert t1["avoid_s"] is None and t1["avoid_s_never_runs"] == 1
    # distributed: everybody within 0.2 s, a mean and no "never"
    drows = reaction(setup["distributed"])
    assert _row(drows, 0)["avoid_s"] == pytest.approx(0.2)
    assert "avoid_s_never_runs" not in _row(drows, 0)
    assert _row(drows, 0)["lost"] == 2


def test_reaction_readmission_is_the_slowest_node_mean_over_runs(setup: dict[str, Any]
                                                                  ) -> None:
    rows = reaction(setup["central"])
    assert _row(rows, 1)["readmit_s"] == pytest.approx(2.5)  # max 2.0 (run 1), 3.0 (run 2)
    assert _row(rows, 6)["readmit_s"] == pytest.approx(1.25)  # 2.0 and 0.5
    assert "readmit_s_never_runs" not in _row(rows, 1)
    assert _row(rows, 1)["avoid_s"] is None and _row(rows, 1)["lost"] == 0
    assert _row(rows, 6)["lost"] == 50  # run 1's 100 packets after t1's return
    assert _row(rows, 5)["lost"] == 3  # (6 + 0) / 2 at the orchestrator's return


def test_reaction_load_step_first_change_and_every_ingress(setup: dict[str, Any],
                                                           tmp_path: Path) -> None:
    step = _row(reaction(setup["central"]), 2)
    assert step["first_change_s"] == pytest.approx(0.2)  # C: 0.3 and 0.1
    assert step["ingress_s"] == pytest.approx(1.2)  # D last of A, D: 1.5 and 0.9 (not B)
    assert step["avoid_s"] is None and step["readmit_s"] is None
    # a run where ingress D never changed before the next event: "never", not the mean
    # of the runs where it did
    s = setup["central"].scenario
    changes = [r for r in R2_CHANGES if not (r.node == "D" and 40 < r.t_s < 50)]
    r4 = write_run(tmp_path / "run-04", changes, R2_LOSSES, _rates_r2, 1, 10, 10)
    mixed = ModeResult("centralized", s, [setup["central"].summaries[0],
                                          summarize_run(r4, s)])
    step = _row(reaction(mixed), 2)
    assert step["first_change_s"] == pytest.approx(0.2)
    assert step["ingress_s"] is None and step["ingress_s_never_runs"] == 1


def test_reaction_without_an_instance_to_avoid_is_not_never(setup: dict[str, Any],
                                                            tmp_path: Path) -> None:
    # a link failure takes no instance away: nothing to avoid, nothing reported
    rows = reaction(setup["central"])
    for k in (7, 8):
        assert _row(rows, k)["avoid_s"] is None and _row(rows, k)["readmit_s"] is None
        assert not any(key.endswith("_never_runs") for key in _row(rows, k))
    # an instance no node was giving flows (no weight recorded at all): no measurement,
    # not "never"
    s = setup["central"].scenario
    summary = RunSummary(run=str(tmp_path), events=[
        EventMetrics(index=0, t_s=20, kind="fail_instance", detail="s1", until_s=30,
                     instances=["s1"], avoidance_s={"s1": {}}),
        EventMetrics(index=1, t_s=30, kind="restore_instance", detail="s1", until_s=40,
                     instances=["s1"], readmission_s={"s1": {}})])
    rows = reaction(ModeResult("centralized", s, [summary]))
    assert rows[0]["avoid_s"] is None and "avoid_s_never_runs" not in rows[0]
    assert rows[1]["readmit_s"] is None and "readmit_s_never_runs" not in rows[1]


def test_reaction_from_hand_made_event_metrics(setup: dict[str, Any], tmp_path: Path) -> None:
    s = setup["central"].scenario
    a = RunSummary(run=str(tmp_path), events=[EventMetrics(
        index=0, t_s=20, kind="fail_instance", detail="s1", until_s=30, lost=7, flows=3,
        recovery_s=1.5, instances=["s1"],
        avoidance_s={"s1": {"A": 0.5, "B": 2.5, "C": 1.0}})])
    b = RunSummary(run=str(tmp_path), events=[EventMetrics(
        index=0, t_s=20, kind="fail_instance", detail="s1", until_s=30, lost=1, flows=1,
        recovery_s=None, instances=["s1"], avoidance_s={"s1": {"A": 0.1, "D": 0.5}})])
    row = reaction(ModeResult("centralized", s, [a, b]))[0]
    assert row["avoid_s"] == pytest.approx((2.5 + 0.5) / 2)
    assert row["lost"] == 4 and row["flows"] == 2
    assert row["recovery_s"] == 1.5  # the run without loss has no recovery time
    # the event of another kind at that position (a run that did not play it) is skipped
    c = RunSummary(run=str(tmp_path), events=[EventMetrics(
        index=0, t_s=20, kind="fail_link", detail="B-C", until_s=30, lost=100)])
    assert reaction(ModeResult("centralized", s, [a, c]))[0]["lost"] == 7


# -- balance ------------------------------------------------------------------------------------

def _shares(setup: dict[str, Any], run: int) -> list[ShareRow]:
    from scenarios.outputs import read_shares

    return read_shares(Path(setup["central"].summaries[run].run) / SHARES_FILE)


def test_window_balance_against_the_per_service_optimum(setup: dict[str, Any]) -> None:
    s = setup["central"].scenario
    before = next(w for w in s.measure.windows if w.name == "before")
    b = window_balance(s, _shares(setup, 0), before)
    # S: s1 100/100, s2 100/300; T carries nothing. s1 fails at the window's end: it
    # was up during the whole window, so it counts.
    assert b["utilisation"] == pytest.approx({"s1": 1.0, "s2": 1 / 3, "t1": 0.0, "t2": 0.0})
    assert b["demand"] == pytest.approx({"S": 200.0, "T": 0.0})
    assert b["highest"] == pytest.approx(1.0)
    assert b["optimum"] == pytest.approx(0.5)  # 200 / (100 + 300)
    assert b["ratio"] == pytest.approx(2.0)
    # shares 0.5 / 0.5 vs the optimum's 0.25 / 0.75: 25 points each
    assert b["share_error_pts"] == pytest.approx(25.0)
    assert b["optimum_status"] == "optimal"


def test_window_balance_leaves_out_instances_down_in_the_window(setup: dict[str, Any]
                                                                ) -> None:
    s = setup["central"].scenario
    windows = {w.name: w for w in s.measure.windows}
    # degraded (22..30]: s1 down (its 3/s left over ignored), back only at the end
    b = window_balance(s, _shares(setup, 0), windows["degraded"])
    assert b["utilisation"] == pytest.approx({"s2": 2 / 3, "t1": 0.9, "t2": 0.6})
    assert b["demand"] == pytest.approx({"S": 200.0, "T": 300.0})
    assert b["highest"] == pytest.approx(0.9)
    assert b["optimum"] == pytest.approx(0.75)  # T: 300 / 400; S alone on s2: 2/3
    assert b["ratio"] == pytest.approx(1.2)
    assert b["share_error_pts"] == pytest.approx(20 / 3)  # s2 0, t1 and t2 10 points
    # mixed (50..62]: t1 fails at 55, inside the window
    b = window_balance(s, _shares(setup, 0), windows["mixed"])
    assert set(b["utilisation"]) == {"s1", "s2", "t2"}
    assert b["optimum"] == pytest.approx(0.5)
    assert b["share_error_pts"] == pytest.approx(50 / 3)  # 25, 25 and t2 alone 0


def test_balance_means_over_the_runs(setup: dict[str, Any]) -> None:
    rows = {b["window"]: b for b in balance(setup["central"])}
    assert list(rows) == ["before", "degraded", "mixed"]
    before = rows["before"]
    assert (before["start_s"], before["end_s"]) == (10, 20)
    # run 2: s1 80/100, s2 120/300: highest 0.8, optimum 0.5, shares 0.4/0.6 -> 15 points
    assert before["highest"] == pytest.approx(0.9)
    assert before["optimum"] == pytest.approx(0.5)
    assert before["ratio"] == pytest.approx(1.8)
    assert before["share_error_pts"] == pytest.approx(20.0)
    assert before["utilisation"]["s1"] == pytest.approx(0.9)
    assert before["utilisation"]["s2"] == pytest.approx((1 / 3 + 0.4) / 2)
    assert rows["degraded"]["ratio"] == pytest.approx(1.2)


# -- control traffic ----------------------------------------------------------------------------

def test_control_rates_after_the_warm_up_and_decision_totals(setup: dict[str, Any]) -> None:
    c = control_rates(setup["central"])  # runs with factors 1 and 2: mean 1.5
    for col, rate in CONTROL_RATES.items():
        assert c[col] == pytest.approx(1.5 * rate), col
    assert c["decision_messages"] == pytest.approx(1.5 * (2 + 4 + 6 + 0.5 + 1))
    assert c["decision_bytes"] == pytest.approx(1.5 * (300 + 120 + 900 + 50))
    d = control_rates(setup["distributed"])  # factor 0.5, no orchestrator traffic
    assert d["ospf_packets"] == pytest.approx(5.0)
    assert d["poll_messages"] == 0 and d["counter_reads"] == 0
    assert d["decision_messages"] == pytest.approx(0.5 * (2 + 4))
    assert d["decision_bytes"] == pytest.approx(0.5 * (300 + 120))


def test_control_rates_need_two_rows_after_the_warm_up(setup: dict[str, Any],
                                                       tmp_path: Path) -> None:
    s = setup["central"].scenario
    with CsvWriter(tmp_path / "one" / CONTROL_FILE) as cw:
        cw.row(t_s=1.0, **dict.fromkeys(COLUMNS[1:], 0))
        cw.row(t_s=6.0, **dict.fromkeys(COLUMNS[1:], 50))
    (tmp_path / "none").mkdir()
    runs = [RunSummary(run=str(tmp_path / "one")), RunSummary(run=str(tmp_path / "none"))]
    assert control_rates(ModeResult("centralized", s, runs)) == {}


# -- single point of failure --------------------------------------------------------------------

def test_spof_loss_up_to_the_restore_and_avoidance_to_the_end(setup: dict[str, Any]) -> None:
    s = setup["central"].scenario
    assert orchestrator_outages(s) == [(3, 5)]
    (row,) = spof(setup["central"])
    assert row["index"] == 4 and row["at_s"] == 55
    assert row["label"] == "t1 crashes (orchestrator down)"
    assert (row["orchestrator_down_s"], row["orchestrator_back_s"]) == (50, 60)
    # run 1: 10 (the crash) + 6 (at the return), not the 100 after t1's restart; run 2: 20
    assert row["lost"] == pytest.approx(18.0)
    assert row["flows"] == pytest.approx(1.5)
    # run 1: every node within 1.0 s; run 2: D only at 63 s, after the return -> 8.0 s
    assert row["avoid_s"] == pytest.approx(4.5)
    (drow,) = spof(setup["distributed"])
    assert drow["lost"] == 0 and drow["avoid_s"] == pytest.approx(0.2)


def test_spof_without_a_restore_runs_to_the_end(setup: dict[str, Any], tmp_path: Path) -> None:
    text = SCENARIO.replace("  - {at_s: 60, action: restore_orchestrator}\n", "")
    s = _write_scenario(tmp_path / "s", text)
    assert orchestrator_outages(s) == [(3, None)]
    # the events are one fewer: write runs whose events.csv matches
    runs = []
    for k, (changes, losses) in enumerate(((R1_CHANGES, R1_LOSSES), (R2_CHANGES, R2_LOSSES))):
        folder = write_run(tmp_path / f"run-{k}", changes, losses, _rates_r1, 1, 1, 1)
        write_rows(folder / EVENTS_FILE, [
            EventRow(float(t), kind, d) for t, kind, d in EVENTS if kind !=
            "restore_orchestrator"] + [EventRow(100.0, "run_end", "")])
        runs.append(summarize_run(folder, s))
    # t1's crash only: the link failure after it takes no instance away
    (row,) = spof(ModeResult("centralized", s, runs))
    assert row["orchestrator_back_s"] is None
    assert row["lost"] == pytest.approx((10 + 6 + 100 + 20) / 2)  # everything from 55 s
    assert row["avoid_s"] == pytest.approx(4.5)
    text_out = render(compare([ModeResult("centralized", s, runs)]))
    assert "(orchestrator down 50..end s)" in text_out


# -- text, JSON and figures ---------------------------------------------------------------------

def _line(text: str, needle: str) -> str:
    return next(ln for ln in text.splitlines() if needle in ln)


def _cells(line: str) -> list[list[str]]:
    return [c.split() for c in line.split("|")[1:]]


def test_render_and_write_comparison(setup: dict[str, Any], tmp_path: Path) -> None:
    results = [setup["distributed"], setup["central"]]
    data = compare(results)
    assert list(data["modes"]) == ["distributed", "centralized"]
    assert data["central"] == {"objective": "policy", "poll_period_s": 2.0,
                               "mgmt_rtt_ms": 10.0, "router": "A"}
    assert data["modes"]["centralized"]["sent"] == 2000
    assert data["modes"]["centralized"]["lost"] == 121 + 24
    assert data["dmano_period_s"] == 1 and data["seed"] == 7
    text = render(data)
    for title in ("1. Reaction per event", "2. Balance per steady window",
                  "3. Control traffic after the warm-up", "4. Single point of failure"):
        assert title in text
    assert "distributed: 1000 packets sent, 2 lost; centralized: 2000 packets sent, 145 lost" \
        in text
    assert "objective policy, poll period 2.0 s, management RTT 10.0 ms" in text
    # reaction: lost, flows, recovery, reaction per mode
    assert _cells(_line(text, "s1 crashes")) == [["2", "1", "0.15", "0.200"],
                                                 ["4", "2", "0.70", "never"]]
    assert _cells(_line(text, "restore_instance s1")) == [["0", "0", "-", "0.200"],
                                                          ["0", "0", "-", "2.500"]]
    assert _cells(_line(text, "a doubles")) == [["0", "0", "-", "0.2/0.2"],
                                                ["0", "0", "-", "0.2/1.2"]]
    assert _cells(_line(text, "fail_link B-C")) == [["0", "0", "-", "-"],
                                                    ["0", "0", "-", "-"]]
    assert _cells(_line(text, "restore_link B-C")) == [["0", "0", "-", "-"],
                                                       ["0", "0", "-", "-"]]
    # balance: highest %, ratio, error; the optimum
    before = _line(text, "   before  ")
    assert _cells(before)[1] == ["90.0", "1.80", "20.0"]
    assert _cells(before)[2] == ["50.0"]
    assert "before centralized: s1 90%, s2 37%, t1 0%, t2 0%" in text
    assert "degraded centralized: s2 67%, t1 90%, t2 60%" in text
    # control: messages and bytes per second
    assert _cells(_line(text, "P4Runtime writes")) == [["2.0", "msg", "60", "B"],
                                                       ["6.0", "msg", "180", "B"]]
    assert _cells(_line(text, "orchestrator counter reads")) == [["0.0", "msg", "-", "B"],
                                                                 ["1.5", "msg", "-", "B"]]
    assert _cells(_line(text, "decision traffic")) == [["3.0", "msg", "210", "B"],
                                                       ["20.2", "msg", "2055", "B"]]
    # single point of failure
    assert ("centralized  t1 crashes (orchestrator down) at 55 s (orchestrator down "
            "50..60 s): lost 18 in 2 flows, every node avoids it after 4.50 s") in text
    assert "distributed  t1 crashes (orchestrator down) at 55 s" in text

    out = tmp_path / "out"
    paths = write_comparison(results, out)
    assert (out / COMPARISON_TEXT).read_text() == text
    assert json.loads((out / COMPARISON_JSON).read_text()) == json.loads(json.dumps(data))
    for name in (FIG_REACTION, FIG_BALANCE, FIG_CONTROL, FIG_UTIL):
        png = out / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert paths[png.stem] == png
    assert paths["text"] == out / COMPARISON_TEXT


def test_plot_marks_never_only_where_a_node_never_reacted(setup: dict[str, Any],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from scenarios import figures

    texts: list[str] = []
    real = figures._save

    def save(fig: Any, out: Path) -> Path:
        if Path(out).name == FIG_REACTION:
            texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        return real(fig, out)

    monkeypatch.setattr(figures, "_save", save)
    results = [setup["distributed"], setup["central"]]
    paths = plot(compare(results), results, tmp_path)
    assert [p.name for p in paths] == [FIG_REACTION, FIG_BALANCE, FIG_CONTROL, FIG_UTIL]
    # centralized: s1 and t1 crashes; not the link events (nothing to avoid)
    assert texts.count("never") == 2


# -- a real comparison (trimmed copy) -----------------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> list[ModeResult]:
    """``tests/unit/data/compare`` unpacked; the scenario named in meta.json."""
    base = tmp_path_factory.mktemp("real")
    results = []
    for mode in ("distributed", "centralized"):
        src = DATA / mode / "run-01"
        run = base / mode / "run-01"
        run.mkdir(parents=True)
        shutil.copy(src / "meta.json", run / "meta.json")
        for gz in src.glob("*.csv.gz"):
            with gzip.open(gz, "rb") as fin, (run / gz.name[:-3]).open("wb") as fout:
                shutil.copyfileobj(fin, fout)
        meta = json.loads((run / "meta.json").read_text())
        assert meta["control"] == mode
        s = load_scenario(ROOT / meta["scenario_file"]).with_control(mode)
        results.append(ModeResult(mode, s, [summarize_run(run, s)]))
    return results


def test_real_comparison(real: list[ModeResult], tmp_path: Path) -> None:
    data = compare(real)
    dist, cen = data["modes"]["distributed"], data["modes"]["centralized"]
    assert data["scenario"] == "central_vs_distributed_short"
    assert (dist["sent"], dist["lost"], cen["sent"], cen["lost"]) == (51000, 38, 51000, 1236)
    labels = [r["label"] for r in dist["reaction"]]
    assert labels[0] == "fw2 crashes" and labels[4] == "ids1 crashes (orchestrator down)"
    # fw2's crash: every node avoided it (distributed 0.63 s, centralized 2.28 s)
    assert dist["reaction"][0]["avoid_s"] == pytest.approx(0.626, abs=5e-4)
    assert cen["reaction"][0]["avoid_s"] == pytest.approx(2.277, abs=5e-4)
    assert (dist["reaction"][0]["lost"], cen["reaction"][0]["lost"]) == (21, 160)
    # ids1 with the orchestrator down: some node never avoided it before its return
    assert cen["reaction"][4]["avoid_s"] is None
    assert cen["reaction"][4]["avoid_s_never_runs"] == 1
    assert dist["reaction"][4]["avoid_s"] == pytest.approx(0.521, abs=5e-4)
    assert cen["reaction"][1]["readmit_s"] == pytest.approx(1.384, abs=5e-4)
    assert dist["reaction"][2]["first_change_s"] == pytest.approx(0.1, abs=0.05)
    assert cen["reaction"][2]["ingress_s"] == pytest.approx(1.3, abs=0.05)
    # balance: fw2 was up during "before" (it fails at the window's end)
    assert dist["balance"][0]["share_error_pts"] == pytest.approx(1.94, abs=5e-3)
    assert cen["balance"][0]["share_error_pts"] == pytest.approx(0.96, abs=5e-3)
    assert dist["balance"][0]["optimum"] == pytest.approx(0.416, abs=5e-4)
    for mode in (dist, cen):
        before = mode["balance"][0]
        assert before["window"] == "before"
        assert set(before["utilisation"]) == {"fw1", "fw2", "fw3", "ids1", "ids2", "ids3"}
        for b in mode["balance"]:
            assert 0.3 < b["optimum"] < 0.65 and 1.0 <= b["ratio"] < 1.2
            assert b["share_error_pts"] < 5
    stepped = {b["window"]: b for b in cen["balance"]}["stepped"]
    assert stepped["highest"] == pytest.approx(0.600, abs=5e-4)
    assert stepped["ratio"] == pytest.approx(1.03, abs=5e-3)
    # control traffic: the distributed mode floods, the centralized one polls
    assert dist["control"]["lsu_packets"] == pytest.approx(110.2, abs=0.05)
    assert cen["control"]["poll_bytes"] == pytest.approx(13284, abs=0.5)
    assert dist["control"]["poll_messages"] == 0
    assert dist["control"]["decision_messages"] == pytest.approx(133.2, abs=0.05)
    assert cen["control"]["decision_bytes"] == pytest.approx(14192, abs=0.5)
    # single point of failure
    (d_spof,), (c_spof,) = dist["spof"], cen["spof"]
    assert (d_spof["lost"], c_spof["lost"]) == (17, 1076)
    assert d_spof["avoid_s"] == pytest.approx(0.52, abs=5e-3)
    assert c_spof["avoid_s"] == pytest.approx(13.97, abs=5e-3)
    text = render(data)
    assert ("centralized  ids1 crashes (orchestrator down) at 125 s (orchestrator down "
            "120..135 s): lost 1076 in 73 flows, every node avoids it after 13.97 s") in text
    assert _cells(_line(text, "ids1 crashes"))[1] == ["1008", "61", "13.73", "never"]
    assert _cells(_line(text, "class b doubles")) == [["0", "0", "-", "0.1/0.2"],
                                                      ["0", "0", "-", "1.2/1.3"]]
    assert _line(text, "before distributed:").startswith("   before distributed: fw1 ")
    assert " fw2 " in _line(text, "before distributed:")


# -- topologies.ctrlstats -----------------------------------------------------------------------

NFT_JSON = {"nftables": [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5",
                  "json_schema_version": 1}},
    {"counter": {"family": "inet", "name": "ospf_tx", "table": "dsfc", "handle": 3,
                 "packets": 5, "bytes": 400}},
    {"counter": {"family": "inet", "name": "ospf_lsu_tx", "table": "dsfc", "handle": 4,
                 "packets": 2, "bytes": 200}},
    {"counter": {"family": "inet", "name": "other", "table": "dsfc", "handle": 5,
                 "packets": 99, "bytes": 9900}},
]}


def test_parse_counters_of_nft_json() -> None:
    assert ctrlstats.parse_counters(json.dumps(NFT_JSON)) == ctrlstats.OspfTx(5, 400, 2, 200)
    only_tx = {"nftables": NFT_JSON["nftables"][:2]}
    assert ctrlstats.parse_counters(json.dumps(only_tx)) == ctrlstats.OspfTx(5, 400, 0, 0)
    assert ctrlstats.parse_counters('{"nftables": [{"metainfo": {}}]}') == ctrlstats.OspfTx()
    assert ctrlstats.OspfTx(1, 2, 3, 4) + ctrlstats.OspfTx(10, 20, 30, 40) \
        == ctrlstats.OspfTx(11, 22, 33, 44)


@pytest.mark.parametrize("text", [
    "", "not json", '{"nftables": [', "[]", '"nftables"', '{"nftables": 3}', '{"x": []}',
    '{"nftables": [3]}',
    '{"nftables": [{"counter": {"name": "ospf_tx", "packets": "many", "bytes": 1}}]}',
    '{"nftables": [{"counter": {"name": "ospf_tx", "packets": null, "bytes": 1}}]}',
])
def test_parse_counters_refuses_what_nft_does_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        ctrlstats.parse_counters(text)


def test_read_router_without_the_namespace_is_none() -> None:
    assert ctrlstats.read_router("no-such-netns-of-a-unit-test", timeout=5) is None


def test_read_router_on_another_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A router of a spread network: nft runs there (servers.run), its JSON parsed here."""
    s2 = servers.ServerSpec("s2", "10.99.0.2")
    calls: list[tuple[servers.ServerSpec, str, float]] = []
    answers: list[Any] = [json.dumps(NFT_JSON), "nft: not json",
                          servers.ServerError("server s2 (root@10.99.0.2): ssh failed: no")]

    def run(server: servers.ServerSpec, cmd: str, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        calls.append((server, cmd, timeout))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return subprocess.CompletedProcess([], 0, answer, "")

    monkeypatch.setattr(servers, "run", run)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran here"))
    assert ctrlstats.read_router("dsfc-r1-B", timeout=2, server=s2) \
        == ctrlstats.OspfTx(5, 400, 2, 200)
    assert calls == [(s2, "nsenter --net=/run/netns/dsfc-r1-B nft -j list counters table "
                          "inet dsfc", 2)]
    assert ctrlstats.read_router("dsfc-r1-B", server=s2) is None  # not nft's JSON
    assert ctrlstats.read_router("dsfc-r1-B", server=s2) is None  # the server unreachable
    assert calls[2][2] == 5.0  # the default timeout


# -- scenarios.control_traffic ------------------------------------------------------------------

def test_accumulator_sums_increases_and_restarts_from_zero() -> None:
    a = Accumulator()
    assert a.get("x") == 0
    for v in (5, 8, 8, 3, 10):  # restart after 8: 3 counts in full
        a.add("n1", "x", v)
    assert a.get("x") == 5 + 3 + 0 + 3 + 7
    a.add("n2", "x", 100)  # another source: its own history
    a.add("n2", "x", 150)
    assert a.get("x") == 18 + 150
    a.add("n1", "y", 1)
    assert a.get("y") == 1 and a.get("x") == 168


def _central_status(started: float, requests: int, write_ops: int) -> dict[str, Any]:
    return {"control": "centralized", "started": started, "control_traffic": {
        "lsdb_feed": {"bytes": 10 * requests, "deletes": 1, "updates": requests},
        "p4runtime": {"counter_read_errors": 0, "counter_reads": 2 * requests,
                      "write_bytes": 30 * write_ops, "write_ops": write_ops},
        "poll_rounds": requests, "polls": {"replies": requests, "reply_bytes": 500 * requests,
                                           "request_bytes": 40 * requests,
                                           "requests": requests}}}


def _dmano_status(started: float, writes: int) -> dict[str, Any]:
    return {"node": "A", "started": started,
            "connector": {"kind": "p4runtime", "last_error": "", "writes": writes,
                          "write_bytes": 25 * writes}}


def test_sampler_from_central_status(tmp_path: Path) -> None:
    path = tmp_path / "central.json"
    sampler = ControlSampler({}, {}, path)
    row = sampler.sample(0.0)  # no file yet: nothing counted
    assert list(row) == list(COLUMNS) and all(row[c] == 0 for c in COLUMNS)
    path.write_text(json.dumps(_central_status(1000.0, 10, 20)))
    row = sampler.sample(1.5)
    assert row == {"t_s": 1.5, "ospf_packets": 0, "ospf_bytes": 0, "lsu_packets": 0,
                   "lsu_bytes": 0, "p4rt_write_ops": 20, "p4rt_write_bytes": 600,
                   "poll_messages": 20, "poll_bytes": 5400, "lsdb_feed_messages": 11,
                   "lsdb_feed_bytes": 100, "counter_reads": 20}
    path.write_text(json.dumps(_central_status(1000.0, 15, 26)))
    row = sampler.sample(2.5)
    assert (row["poll_messages"], row["p4rt_write_ops"], row["poll_bytes"]) == (30, 26, 8100)
    # the file unreadable for a moment: the columns stay, and the next reading of the
    # same process counts only its increase
    path.write_text("{")
    row = sampler.sample(3.0)
    assert (row["poll_messages"], row["p4rt_write_ops"]) == (30, 26)
    path.unlink()
    assert sampler.sample(3.5)["poll_messages"] == 30
    path.write_text(json.dumps(_central_status(1000.0, 16, 27)))
    row = sampler.sample(4.0)
    assert (row["poll_messages"], row["p4rt_write_ops"]) == (32, 27)
    # the orchestrator restarted (fail/restore_orchestrator): its counters begin at 0,
    # even when they are already past the old ones at the first sample
    path.write_text(json.dumps(_central_status(2000.0, 40, 5)))
    row = sampler.sample(5.0)
    assert (row["poll_messages"], row["p4rt_write_ops"]) == (32 + 80, 27 + 5)


def test_sampler_from_dmano_status_files(tmp_path: Path) -> None:
    files = {n: tmp_path / f"r{n}" / "dmano.json" for n in ("A", "B")}
    for p in files.values():
        p.parent.mkdir()
    files["A"].write_text(json.dumps(_dmano_status(1.0, 4)))
    sampler = ControlSampler({}, files, None)
    row = sampler.sample(0.5)  # B has not written its status yet
    assert (row["p4rt_write_ops"], row["p4rt_write_bytes"]) == (4, 100)
    assert row["poll_messages"] == 0 and row["lsu_packets"] == 0
    files["B"].write_text(json.dumps(_dmano_status(2.0, 10)))
    files["A"].write_text(json.dumps(_dmano_status(1.0, 6)))
    row = sampler.sample(1.0)
    assert (row["p4rt_write_ops"], row["p4rt_write_bytes"]) == (16, 400)
    # B's D-MANO restarted (fail/restore_daemon): counted from 0
    files["B"].write_text(json.dumps(_dmano_status(3.0, 3)))
    assert sampler.sample(2.0)["p4rt_write_ops"] == 19
    # its connector client reconnected in the same process: a drop, counted from 0
    files["B"].write_text(json.dumps(_dmano_status(3.0, 1)))
    assert sampler.sample(3.0)["p4rt_write_ops"] == 20


class FakeSampler:
    """Counts its calls; fails on the calls listed in ``fail``."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        self.calls: list[float] = []
        self.fail = fail
        self.enough = threading.Event()

    def sample(self, t_s: float) -> dict[str, float]:
        self.calls.append(t_s)
        n = len(self.calls)
        if n >= 5:
            self.enough.set()
        if n in self.fail:
            raise RuntimeError("cannot read")
        return {"t_s": t_s, **{c: float(n) for c in COLUMNS[1:]}}


def test_recorder_writes_a_row_at_start_and_a_last_one_at_stop(tmp_path: Path) -> None:
    sampler = FakeSampler()
    out = tmp_path / CONTROL_FILE
    clock = iter([10.0, 12.34567])
    rec = ControlRecorder(sampler, out, lambda mono: next(clock), period_s=3600)  # type: ignore[arg-type]
    rec.start()
    assert len(read_control(out)) == 1  # written at once (flushed)
    rec.stop()
    rows = read_control(out)
    assert [r["t_s"] for r in rows] == [10.0, 12.346]  # scenario time, rounded to ms
    assert [r["ospf_packets"] for r in rows] == [1.0, 2.0]
    assert not rec._thread.is_alive()


def test_recorder_thread_samples_and_survives_a_failing_sample(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    sampler = FakeSampler(fail=(2,))
    out = tmp_path / CONTROL_FILE
    rec = ControlRecorder(sampler, out, float, period_s=0.001)  # type: ignore[arg-type]
    rec.start()
    try:
        assert sampler.enough.wait(10), "the recorder thread did not sample"
    finally:
        rec.stop()
    rows = read_control(out)
    assert len(rows) == len(sampler.calls) - 1  # all but the failed one, the last at stop
    assert [r["ospf_packets"] for r in rows][:2] == [1.0, 3.0]
    assert "control traffic: sample failed" in caplog.text


# -- topologies up: the centralized options -----------------------------------------------------

FAULTS8 = ROOT / "topologies" / "faults8.yaml"


@pytest.fixture
def nothing_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Trip wires: building the network (or installing signal handlers, the step just
    before) fails the test; runs go to a folder of this test."""
    import topologies.network

    def trip(*_a: object, **_k: object) -> None:
        raise AssertionError("the network was about to be built")

    monkeypatch.setattr(topologies.network, "Network", trip)
    monkeypatch.setattr(topo_cli, "_terminate_on_signals", trip)
    root = tmp_path / "run-root"
    monkeypatch.setattr(runstate, "RUN_ROOT", root)
    assert runstate.list_runs() == []
    yield root
    assert runstate.list_runs() == []
    assert not root.exists()


@pytest.mark.parametrize(("extra", "words"), [
    (["--objective", "policy"], "--objective: needs --control centralized"),
    (["--poll-period", "2"], "--poll-period: needs --control centralized"),
    (["--control", "centralized", "--poll-period", "0.01"],
     "--poll-period: expected seconds in 0.05..3600, got 0.01"),
    (["--control", "centralized", "--poll-period", "nan"], "--poll-period: expected seconds"),
    (["--control", "centralized", "--mgmt-rtt-ms", "-1"],
     "--mgmt-rtt-ms: expected milliseconds in 0..10000, got -1"),
    (["--control", "centralized", "--central-router", "ZZ"],
     "--central-router: unknown node 'ZZ' (nodes: N1, N2, N3, N4, N5, N6, N7, N8)"),
])
def test_up_refuses_bad_central_options_before_building(
        nothing_built: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
        words: str) -> None:
    rc = topo_cli.main(["up", str(FAULTS8), "--no-cli", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: <command line>: ")
    assert words in err


def test_central_params_from_the_options() -> None:
    from topologies.spec import load_topology

    topo = load_topology(FAULTS8)

    def params(*extra: str) -> Any:
        args = topo_cli.parser().parse_args(["up", str(FAULTS8), *extra])
        return topo_cli.central_params(args, topo, None)

    assert params() is None
    p = params("--control", "centralized")
    assert (p.objective, p.poll_period_s, p.mgmt_rtt_ms, p.router) == ("policy", 2.0, 0.0, None)
    p = params("--control", "centralized", "--objective", "min-max-utilisation",
               "--poll-period", "0.05", "--mgmt-rtt-ms", "10000", "--central-router", "N3")
    assert (p.objective, p.poll_period_s, p.mgmt_rtt_ms, p.router) == (
        "min-max-utilisation", 0.05, 10000.0, "N3")
