"""dmano.throttle: topology churn delays recomputations like ospfd's SPF throttle."""

from __future__ import annotations

import pytest

from dmano.throttle import TopologyThrottle


def test_first_change_at_once_then_hold_doubles_to_max_and_resets_when_quiet() -> None:
    t = TopologyThrottle(hold_s=0.1, max_hold_s=0.4)
    assert t.wait_s(1, now=10.0) == 0.0  # first change: at once
    t.done(1, 10.0)
    assert t.wait_s(1, now=10.01) == 0.0  # no topology change (VNF costs only): at once
    assert t.wait_s(2, now=10.02) == pytest.approx(0.08)  # within hold: until 10.1
    t.done(2, 10.1)
    assert t.wait_s(3, now=10.15) == pytest.approx(0.15)  # hold now 0.2
    t.done(3, 10.3)
    assert t.wait_s(4, now=10.31) == pytest.approx(0.39)  # hold 0.4 (max)
    t.done(4, 10.7)
    assert t.wait_s(5, now=10.75) == pytest.approx(0.35)  # stays at max
    t.done(5, 11.1)
    assert t.throttled == 4
    assert t.wait_s(6, now=11.1 + 0.8) == 0.0  # quiet for 2 x max: back to the start
    t.done(6, 11.9)
    assert t.wait_s(7, now=11.95) == pytest.approx(0.05)  # hold 0.1 again


def test_a_change_after_the_hold_is_not_delayed() -> None:
    t = TopologyThrottle(hold_s=0.1, max_hold_s=1.0)
    t.done(1, 0.0)
    assert t.wait_s(2, now=0.5) == 0.0
    assert t.throttled == 0


def test_backoff_coalesces_writes_under_churn_and_not_after_quiet() -> None:
    from dmano.throttle import Backoff

    b = Backoff(hold_s=0.1, max_hold_s=0.4)
    assert b.wait_s(5.0) == 0.0  # quiet: at once
    b.done(5.0)
    assert b.wait_s(5.03) == pytest.approx(0.07)  # churn: until the hold has passed
    b.done(5.1)
    assert b.wait_s(5.12) == pytest.approx(0.18)  # hold doubled
    b.done(5.3)
    assert b.wait_s(5.3 + 0.9) == 0.0  # quiet for 2 x max: at once, hold reset
    b.done(6.2)
    assert b.wait_s(6.25) == pytest.approx(0.05)
    assert b.throttled == 3, b.throttled
