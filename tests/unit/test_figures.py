"""Run outputs, figures and reports from synthetic CSVs (no network, no root)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from dmano.yamlconf import loads_yaml
from scenarios import figures as fg
from scenarios import report as rp
from scenarios.spec import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "scenarios" / "paper_fig4.yaml"

# exact shares of the synthetic runs: phase 1 50/50, phase 2 the paper policy's fixed point
PHASE2 = {"svc_b": 0.3875, "svc_c": 0.3875, "svc_d": 0.225}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(PAPER)


def targets(t: float) -> dict[str, float]:
    if t <= 150:
        return {"svc_b": 0.5, "svc_c": 0.5, "svc_d": 0.0}
    a = min((t - 150) / 50, 1.0)
    return {k: 0.5 + a * (v - 0.5) if k != "svc_d" else a * v for k, v in PHASE2.items()}


def synth_run(run: Path, *, noise: float = 0.0, seed: int = 1, loss_after: int = 0) -> Path:
    """A run folder as the runner writes it: 2 s samples over 300 s of scenario time."""
    rng = random.Random(seed)
    run.mkdir(parents=True, exist_ok=True)
    with fg.CsvWriter(run / fg.SHARES_FILE) as shares, \
            fg.CsvWriter(run / fg.WEIGHTS_FILE) as weights, \
            fg.CsvWriter(run / fg.TRAFFIC_FILE) as traffic:
        for k in range(1, 151):
            t = 2.0 * k
            load = 200.0 * min(t, 50) / 50
            pps = {i: max(v * load + (rng.gauss(0, noise) if v else 0.0), 0.0)
                   for i, v in targets(t).items()}
            total = sum(pps.values())
            for inst, v in pps.items():
                shares.row(t_s=t, service="SVC", instance=inst, packets_per_s=v,
                           share=v / total if total else None)
            w = {"svc_b": 25, "svc_c": 25, "svc_d": 14} if t > 152 else \
                {"svc_b": 1, "svc_c": 1, "svc_d": 0}
            for inst, v in w.items():
                weights.row(t_s=t, node="A", service="SVC", instance=inst, weight=v)
            sent = int(load) * 2  # 2 s interval
            lost = loss_after if 150 < t <= 160 else 0
            traffic.row(t_s=t, traffic="flows", sent=sent, received=sent - lost)
    fg.write_rows(run / fg.EVENTS_FILE, [
        fg.EventRow(0.0, "run_start", ""),
        fg.EventRow(150.2, "start_instance", "svc_d"),
        fg.EventRow(300.0, "run_end", ""),
    ])
    flows = []
    for i in range(600):
        start = 0.5 * i
        inst = "svc_b" if i % 2 else "svc_c"
        if start >= 150 and i % 9 == 0:
            inst = "svc_d"
        flows.append(fg.FlowRow(i, "flows", 10000 + i, 5000, start, start + 50, 100,
                                100 - (1 if i == 7 else 0), inst))
    fg.write_rows(run / fg.FLOWS_FILE, flows)
    (run / fg.META_FILE).write_text(json.dumps({"scenario": "paper_fig4", "repetition": seed}))
    return run


def check_png(path: Path, width: int, height: int) -> None:
    assert path.is_file()
    assert path.stat().st_size > 10_000
    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    assert img.std() > 0  # not blank


# -- CSV files ------------------------------------------------------------------------------

def test_csv_round_trip(tmp_path: Path) -> None:
    run = synth_run(tmp_path / "run-01")
    shares = fg.read_shares(run / fg.SHARES_FILE)
    assert len(shares) == 150 * 3
    assert shares[0] == fg.ShareRow(2.0, "SVC", "svc_b", 4.0, 0.5)
    weights = fg.read_weights(run / fg.WEIGHTS_FILE)
    assert weights[-1] == fg.WeightRow(300.0, "A", "SVC", "svc_d", 14)
    events = fg.read_events(run / fg.EVENTS_FILE)
    assert events[1] == fg.EventRow(150.2, "start_instance", "svc_d")
    flows = fg.read_flows(run / fg.FLOWS_FILE)
    assert flows[7].received == 99 and flows[0].instance == "svc_c"
    traffic = fg.read_traffic(run / fg.TRAFFIC_FILE)
    assert traffic[-1] == fg.TrafficRow(300.0, "flows", 400, 400)
    header = (run / fg.SHARES_FILE).read_text().splitlines()[0]
    assert header == "t_s,service,instance,packets_per_s,share"


def test_csv_empty_share_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / fg.SHARES_FILE
    with fg.CsvWriter(path) as out:
        out.row(t_s=2, service="SVC", instance="a", packets_per_s=0.0, share=None)
        with pytest.raises(ValueError, match="missing: \\['share'\\]"):
            out.row(t_s=2, service="SVC", instance="a", packets_per_s=0.0)
    assert fg.read_shares(path)[0].share is None
    legacy = tmp_path / "old.csv"  # no service column: tolerated
    legacy.write_text("t_s,instance,packets_per_s,share\n2,a,10,1\n")
    assert fg.read_shares(legacy) == [fg.ShareRow(2.0, "", "a", 10.0, 1.0)]
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,instance\n2,a\n")
    with pytest.raises(ValueError, match="missing column\\(s\\) packets_per_s"):
        fg.read_shares(bad)
    with pytest.raises(ValueError, match="unknown output file"):
        fg.CsvWriter(tmp_path / "other.csv")


# -- figures --------------------------------------------------------------------------------

def test_fig4_and_weights(tmp_path: Path, scenario: Scenario) -> None:
    run = synth_run(tmp_path / "run-01", noise=3.0)
    written = fg.plot_run(run, scenario, expected={"phase2": {k: 100 * v
                                                                for k, v in PHASE2.items()}})
    assert written == [run / fg.FIG4_FILE, run / fg.WEIGHTS_FIG_FILE]
    check_png(run / fg.FIG4_FILE, 880, 462)  # 8 x 4.2 in at 110 dpi
    check_png(run / fg.WEIGHTS_FIG_FILE, 880, 352)  # one panel: node A


def test_figures_without_scenario_or_data(tmp_path: Path) -> None:
    out = fg.plot_traffic_distribution([], tmp_path / "empty.png")
    check_png(out, 880, 462)
    out = fg.plot_weights([], tmp_path / "w.png")
    assert out.stat().st_size > 5_000
    rows = [fg.ShareRow(t, "S1", "x", 10, 0.7) for t in (1, 2)] + \
        [fg.ShareRow(t, "S2", "y", 10, 1.0) for t in (1, 2)]
    out = fg.plot_traffic_distribution(rows, tmp_path / "two.png")
    check_png(out, 880, 924)  # one panel per service


def test_fig5_boxplot(tmp_path: Path, scenario: Scenario) -> None:
    summaries = [rp.summarize_run(synth_run(tmp_path / f"run-0{r}", noise=4.0, seed=r),
                                  scenario) for r in (1, 2, 3)]
    out = fg.plot_share_boxplot(
        summaries, tmp_path / fg.FIG5_FILE, scenario=scenario,
        reference={"phase2": {"svc_b": 40, "svc_c": 40, "svc_d": 20}},
        expected={"phase2": {k: 100 * v for k, v in PHASE2.items()}})
    check_png(out, 880, 506)  # 8 x 4.6 in at 110 dpi
    single = fg.plot_share_boxplot(summaries[:1], tmp_path / "one.png")
    check_png(single, 880, 506)
    empty = fg.plot_share_boxplot([], tmp_path / "none.png")
    assert empty.stat().st_size > 5_000


# -- report ---------------------------------------------------------------------------------

def test_summarize_run(tmp_path: Path, scenario: Scenario) -> None:
    s = rp.summarize_run(synth_run(tmp_path / "run-01", loss_after=5), scenario)
    assert s.repetition == 1
    assert set(s.windows) == {"phase1", "phase2"}
    assert set(s.windows["phase1"]) == {"svc_b", "svc_c"}  # svc_d not live, no traffic
    p1 = s.windows["phase1"]["svc_b"]
    assert p1.n == 25  # samples ending in (100, 150]
    assert p1.mean == pytest.approx(50.0) and p1.pooled == pytest.approx(50.0)
    for inst, v in PHASE2.items():
        assert s.windows["phase2"][inst].mean == pytest.approx(100 * v)
        assert s.windows["phase2"][inst].pooled == pytest.approx(100 * v)
    assert (s.sent, s.received, s.lost) == (60000, 59999, 1)  # from flows.csv
    assert s.flow_shares["phase1"] == {"svc_b": 50.0, "svc_c": 50.0}
    (ev,) = s.event_losses
    assert (ev.t_s, ev.kind, ev.detail) == (150.2, "start_instance", "svc_d")
    # before: samples ending in (140.2, 150.2]: t = 142 .. 150; after: 152 .. 160
    assert (ev.before_sent, ev.before_lost) == (5 * 400, 0)
    assert (ev.after_sent, ev.after_lost) == (5 * 400, 25)
    again = rp.RunSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.to_dict() == s.to_dict()


def test_prediction_paper_policy(scenario: Scenario) -> None:
    preds = rp.predict(scenario)
    (p1,) = preds["phase1"]
    (p2,) = preds["phase2"]
    assert (p2.service, p2.ingress, p2.policy) == ("SVC", "A", "paper")
    assert p2.total_load == 200 and p2.concurrent_flows == 100
    assert p1.shares == pytest.approx({"svc_b": 50.0, "svc_c": 50.0})
    assert p2.shares == pytest.approx({"svc_b": 38.75, "svc_c": 38.75, "svc_d": 22.5},
                                      abs=1e-6)
    assert p2.integer_shares == pytest.approx(
        {"svc_b": 39.0625, "svc_c": 39.0625, "svc_d": 21.875}, abs=0.01)
    assert p2.placement_sd["svc_d"] == pytest.approx(100 * (0.225 * 0.775 / 100) ** 0.5)
    assert p2.notes == ()


def scenario_with(**replace: str) -> Scenario:
    text = PAPER.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return parse_scenario(loads_yaml(text, PAPER), PAPER)


def test_prediction_follows_policy_and_timeline() -> None:
    inv = scenario_with(**{"policy: paper": "policy: inverse-cost"})
    (p2,) = rp.predict(inv)["phase2"]
    assert p2.shares == pytest.approx({"svc_b": 25.0, "svc_c": 25.0, "svc_d": 50.0},
                                      abs=1e-4)
    cut = scenario_with(**{
        'label: "instance on D starts"}':
            'label: "instance on D starts"}\n  - {at_s: 160, action: fail_link, link: A-D}'})
    (p2,) = rp.predict(cut)["phase2"]
    assert p2.shares == pytest.approx({"svc_b": 50.0, "svc_c": 50.0})  # D unreachable
    late = scenario_with(**{"{at_s: 150,": "{at_s: 230,"})
    (p2,) = rp.predict(late)["phase2"]
    assert any("less than one flow duration" in n for n in p2.notes)


def test_readings_and_note() -> None:
    r = rp.readings()
    assert r[rp.READING_FIGURE]["D"] == pytest.approx(20.0)
    assert r[rp.READING_PROPORTIONAL]["D"] == pytest.approx(22.5, abs=1e-6)
    assert r[rp.READING_INVERSE_STATIC]["D"] == pytest.approx(46.27, abs=0.01)
    assert r[rp.READING_INVERSE_UTIL]["D"] == pytest.approx(50.0, abs=1e-4)
    note = rp.reproduction_note()
    assert "46.3%" in note and "22.5%" in note and "20.0%" in note


def test_build_report(tmp_path: Path, scenario: Scenario) -> None:
    summaries = [rp.summarize_run(synth_run(tmp_path / f"run-0{r}", seed=r, loss_after=5),
                                  scenario) for r in (1, 2)]
    text, summary = rp.build_report(scenario, summaries)
    assert "dsfc scenario report: paper_fig4" in text
    assert "time_scale 0.5: 300 s of scenario time in 150 s" in text
    row = next(line for line in text.splitlines() if line.startswith("phase2   svc_d"))
    # measured 22.5 (sd 0 over 2 runs), paper 20 (+2.5), WCMP 22.5 [21.9] (+0.0)
    assert row.split()[2:11] == ["(D)", "22.5", "0.0", "20.0", "+2.5", "22.5", "[", "21.9]",
                                 "+0.0"]
    assert "Reproduction note: two readings of the paper" in text
    assert "total: 120000 sent, 119998 received, 2 lost (0.00 %) over 2 run(s)" in text
    assert ("t=150.2 s start_instance svc_d: before 4000 sent, 0 lost (0.00 %); after "
            "4000 sent, 50 lost (1.25 %)") in text
    d = summary["windows"]["phase2"]["instances"]["svc_d"]
    assert d["measured_mean"] == pytest.approx(22.5)
    assert d["paper"] == 20.0 and d["diff_paper_pts"] == pytest.approx(2.5)
    assert d["prediction"] == pytest.approx(22.5)
    assert d["diff_prediction_pts"] == pytest.approx(0.0, abs=1e-6)
    assert d["measured_sd"] == pytest.approx(0.0)
    assert summary["runs"] == 2 and summary["loss"]["lost"] == 2
    json.dumps(summary)  # serialisable


def test_report_measured_shares_with_noise(tmp_path: Path, scenario: Scenario) -> None:
    """Shares are computed per sample, so their mean follows the synthetic targets."""
    s = rp.summarize_run(synth_run(tmp_path / "run-01", noise=2.0, seed=5), scenario)
    assert s.windows["phase2"]["svc_d"].mean == pytest.approx(22.5, abs=1.0)
    assert s.windows["phase1"]["svc_b"].mean + s.windows["phase1"]["svc_c"].mean == \
        pytest.approx(100.0)


def test_report_run_and_set(tmp_path: Path, scenario: Scenario) -> None:
    runs = [synth_run(tmp_path / "set" / f"run-0{r}", noise=3.0, seed=r) for r in (1, 2)]
    summaries = [rp.report_run(scenario, run) for run in runs]
    for run in runs:
        assert (run / rp.SUMMARY_FILE).is_file()
        check_png(run / fg.FIG4_FILE, 880, 462)
    paths = rp.report_set(scenario, summaries, tmp_path / "set")
    assert paths["report"].read_text().startswith("dsfc scenario report")
    assert json.loads(paths["summary"].read_text())["runs"] == 2
    check_png(paths["fig5"], 880, 506)
    loaded = rp.RunSummary.load(runs[0] / rp.SUMMARY_FILE)
    assert loaded.windows["phase2"]["svc_d"].samples == \
        summaries[0].windows["phase2"]["svc_d"].samples


def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = synth_run(tmp_path / "set" / "run-01")
    assert rp.main([str(PAPER), str(run), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "phase2   svc_d" in out
    assert (tmp_path / "set" / rp.REPORT_FILE).is_file()
    assert not (run / fg.FIG4_FILE).exists()
    assert rp.main([str(PAPER), str(tmp_path / "nothere")]) == 2


def test_missing_outputs_give_empty_summary(tmp_path: Path, scenario: Scenario) -> None:
    run = tmp_path / "run-01"
    run.mkdir()
    s = rp.summarize_run(run, scenario, repetition=1)
    assert s.windows == {} and s.sent is None and s.event_losses == []
    text, summary = rp.build_report(scenario, [s])
    assert "total: n/a" in text and summary["loss"] is None
    assert "WCMP phase2: service SVC from node A" in text


def test_event_losses_grouped_over_runs(scenario: Scenario) -> None:
    runs = [rp.RunSummary(f"run-0{r}", r, sent=1000, received=990, event_losses=[
        rp.EventLoss(150.0 + 0.2 * r, "start_instance", "svc_d", 100, 100, 100, 95)])
        for r in (1, 2)]
    text, summary = rp.build_report(scenario, runs)
    assert ("t=150.3 s start_instance svc_d: before 200 sent, 0 lost (0.00 %); after 200 "
            "sent, 10 lost (5.00 %)") in text
    (ev,) = summary["loss"]["events"]
    assert ev["runs"] == 2 and ev["after_lost"] == 10
    assert summary["loss"]["loss_pct"] == pytest.approx(1.0)
