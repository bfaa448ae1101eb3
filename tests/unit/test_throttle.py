"""dmano.throttle: topology churn delays recomputations like ospfd's SPF throttle; a
churn of cost changes alone is coalesced the same way; instances that come, leave or
change state are never delayed."""

from __future__ import annotations

import pytest

from dmano.throttle import RecomputeThrottle


def test_first_change_at_once_then_hold_doubles_to_max_and_resets_when_quiet() -> None:
    t = RecomputeThrottle(hold_s=0.1, max_hold_s=0.4)
    assert t.wait_s(1, 0, now=10.0) == 0.0  # first change: at once
    t.done(1, 0, 10.0)
    assert t.wait_s(1, 1, now=10.01) == 0.0  # an instance came: at once
    assert t.wait_s(2, 0, now=10.02) == pytest.approx(0.08)  # within hold: until 10.1
    t.done(2, 0, 10.1)
    assert t.wait_s(3, 0, now=10.15) == pytest.approx(0.15)  # hold now 0.2
    t.done(3, 0, 10.3)
    assert t.wait_s(4, 0, now=10.31) == pytest.approx(0.39)  # hold 0.4 (max)
    t.done(4, 0, 10.7)
    assert t.wait_s(5, 0, now=10.75) == pytest.approx(0.35)  # stays at max
    t.done(5, 0, 11.1)
    assert t.throttled == 4
    assert t.wait_s(6, 0, now=11.1 + 0.8) == 0.0  # quiet for 2 x max: back to the start
    t.done(6, 0, 11.9)
    assert t.wait_s(7, 0, now=11.95) == pytest.approx(0.05)  # hold 0.1 again


def test_a_change_after_the_hold_is_not_delayed() -> None:
    t = RecomputeThrottle(hold_s=0.1, max_hold_s=1.0)
    t.done(1, 0, 0.0)
    assert t.wait_s(2, 0, now=0.5) == 0.0
    assert t.wait_s(1, 0, now=0.5) == 0.0  # costs only, after the hold
    assert t.throttled == 0 and t.costs_held == 0


def test_cost_changes_alone_are_coalesced_under_churn_never_a_membership_change() -> None:
    t = RecomputeThrottle(hold_s=0.1, max_hold_s=0.4)
    t.done(1, 1, 0.0)
    assert t.kind(1, 1) == "costs"
    assert t.wait_s(1, 1, now=0.04) == pytest.approx(0.06)  # an LSA every 40 ms
    t.done(1, 1, 0.1)
    assert t.wait_s(1, 1, now=0.14) == pytest.approx(0.16)  # hold 0.2
    t.done(1, 1, 0.3)
    assert t.wait_s(1, 1, now=0.34) == pytest.approx(0.36)  # hold 0.4 (max)
    t.done(1, 1, 0.7)
    assert t.wait_s(1, 1, now=0.74) == pytest.approx(0.36)  # at most one per 0.4 s
    assert t.costs_held == 4 and t.throttled == 0
    assert t.kind(1, 2) == "membership"
    assert t.wait_s(1, 2, now=0.75) == 0.0  # a withdrawal or a drain: at once
    t.done(1, 2, 0.75)
    assert t.wait_s(1, 2, now=0.75 + 0.8) == 0.0  # quiet for 2 x max: costs at once
    # a topology change has its own hold: a cost churn does not delay it
    assert t.kind(2, 2) == "topology"
    assert t.wait_s(2, 2, now=1.56) == 0.0
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
