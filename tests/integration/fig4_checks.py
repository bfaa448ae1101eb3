"""What a run of scenarios/paper_fig4_short.yaml must show, wherever it ran (one box,
BMv2, two servers): the phase shares within the noise of 100 hashed flows, the new
instance idle before its start, and no packet lost."""

from __future__ import annotations

from pathlib import Path

from scenarios.figures import read_shares


def check_fig4_short(folder: Path) -> None:
    """Assert on the results folder of one run of paper_fig4_short."""
    run = folder / "run-01"
    shares = read_shares(run / "shares.csv")

    def mean_share(instance: str, lo: float, hi: float) -> float:
        xs = [r.share for r in shares
              if r.instance == instance and lo < r.t_s <= hi and r.share is not None]
        assert xs, f"no share samples of {instance} in ({lo}, {hi}]"
        return 100 * sum(xs) / len(xs)

    # phase 1: both instances carry load, close to 50/50 (hash placement of 100 flows
    # alone spreads a share by ~5 points)
    b1, c1 = mean_share("svc_b", 100, 150), mean_share("svc_c", 100, 150)
    assert abs(b1 - 50) <= 12 and abs(c1 - 50) <= 12, (b1, c1)
    # the new instance takes no load before it starts, and takes load after
    assert mean_share("svc_d", 50, 150) == 0
    d2 = mean_share("svc_d", 250, 300)
    assert 8 <= d2 <= 40, d2
    # no packet is lost, in particular not when the instance is added
    text = (folder / "report.txt").read_text()
    assert "0 lost (0.00 %)" in text, text
    flows = (run / "flows.csv").read_text().splitlines()[1:]
    lost = [ln for ln in flows if ln.split(",")[6] != ln.split(",")[7]]
    assert not lost, lost[:5]
