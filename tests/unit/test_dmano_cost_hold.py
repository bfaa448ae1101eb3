"""The daemon's main loop under a churn of cost announcements (issue #13): remote VNF
costs re-announced every few ms are taken a batch at a time (dmano.throttle
.RecomputeThrottle), while an instance that leaves is acted on at once, even in the
middle of such a hold. Real main loop, fake OSPF API session, dry-run connector."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import dmano.daemon
from dmano import lsa
from dmano.config import ChainConf, NodeConfig, ServiceConf
from dmano.connector_client import DryRunConnector
from dmano.daemon import Dmano
from dmano.lsdb import build_opaque_lsa, build_router_lsa
from dmano.model import RouterLink, VnfAnnouncement
from dmano.policy import load_policy, shipped_policy
from dmano.throttle import RecomputeThrottle
from tests.unit.dmano_helpers import ROUTER_ID, FakeSession, short_dir

REMOTE = IPv4Address("10.255.0.1")
ANYCAST = IPv4Address("10.254.1.1")


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_dir() as d:
        yield d


def make_daemon(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Dmano:
    monkeypatch.setattr(dmano.daemon, "OspfApiSession", FakeSession)
    cfg = NodeConfig(
        node="B", router_id=ROUTER_ID, nsh_endpoint=IPv4Address("10.2.0.2"),
        policy=shipped_policy("paper"), status_file=folder / "rB" / "dmano.json",
        services=(ServiceConf("FW", 1, ANYCAST),), chains=(ChainConf(1, (1,)),),
        control_socket=folder / "c.sock")
    policy = replace(load_policy(cfg.policy), period_s=3600.0)  # no period in the test
    d = Dmano(cfg, policy, DryRunConnector())
    link = IPv4Address("10.0.0.1")
    d.mirror.apply_update(build_router_lsa(ROUTER_ID, [RouterLink(1, REMOTE, link, 10)]))
    d.mirror.apply_update(build_router_lsa(REMOTE, [RouterLink(1, ROUTER_ID, link, 10)]))
    return d


def announcement(instance_id: int, cost: int, seq: int, age: int = 0) -> bytes:
    ann = VnfAnnouncement(instance_id=instance_id, service_id=1, anycast=ANYCAST, cost=cost,
                          endpoint=IPv4Address("10.1.0.2"), sequence=seq)
    return build_opaque_lsa(lsa.OPAQUE_TYPE, lsa.make_opaque_id(instance_id, 0), REMOTE,
                            lsa.encode(ann), seq=-0x7FFFFFFF + seq, age=age)


def members(d: Dmano) -> set[int]:
    return {c.instance_id for rows in d.tables.values() for c in rows if c.weight > 0}


def test_a_cost_churn_is_taken_in_batches_and_a_withdrawal_at_once(
        monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    d = make_daemon(monkeypatch, folder)
    d.throttle = RecomputeThrottle(hold_s=0.1, max_hold_s=2.0)
    recomputes: list[tuple[float, set[int]]] = []
    real = d._recompute

    async def counting(urgent: bool = False) -> None:
        await real(urgent)
        recomputes.append((asyncio.get_running_loop().time(), members(d)))

    monkeypatch.setattr(d, "_recompute", counting)

    async def main() -> tuple[int, float, int]:
        stop = asyncio.Event()
        task = asyncio.ensure_future(d.run(stop))
        loop = asyncio.get_running_loop()
        try:
            seq = 1
            for iid in (1, 2):
                d._lsa_update(announcement(iid, 20, seq))
            await asyncio.sleep(0.2)
            assert members(d) == {1, 2}
            # 3 s of cost changes, one LSA every 10 ms (300 LSAs)
            start = len(recomputes)
            t_end = loop.time() + 3.0
            while loop.time() < t_end:
                seq += 1
                d._lsa_update(announcement(1 + seq % 2, 20 + seq % 7, seq))
                await asyncio.sleep(0.01)
            churn = len(recomputes) - start
            # right after a recomputation, one more cost change starts a hold of 2 s;
            # instance 2 leaves (its LSA at MaxAge) 0.1 s into it
            done = len(recomputes)
            while len(recomputes) == done:
                await asyncio.sleep(0.001)
            seq += 1
            d._lsa_update(announcement(1, 33, seq))
            await asyncio.sleep(0.1)
            assert len(recomputes) == done + 1  # held
            t_gone = loop.time()
            d._lsa_update(announcement(2, 20, seq, age=3600))
            while members(d) != {1}:
                assert loop.time() - t_gone < 5.0, "the withdrawal was never acted on"
                await asyncio.sleep(0.005)
            return churn, loop.time() - t_gone, seq
        finally:
            stop.set()
            await task

    churn, reaction, seq_end = asyncio.run(main())
    # hold 0.1, 0.2, 0.4, 0.8, 1.6, 2 s: about 7 recomputations instead of 300
    assert 3 <= churn <= 15, churn
    assert d.throttle.costs_held >= 3
    assert reaction < 0.5, f"the withdrawal waited {reaction:.2f} s for the cost hold"
    status = d.status()
    assert status["cost_recomputes_held"] == d.throttle.costs_held
    # every LSA the OSPF API reported is counted: 2, the churn, 1 more, the withdrawal
    assert status["lsdb"]["notifications"] == 2 + (seq_end - 1) + 1, seq_end


def test_on_a_quiet_network_a_cost_change_is_taken_at_once(
        monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    d = make_daemon(monkeypatch, folder)
    d.throttle = RecomputeThrottle(hold_s=0.1, max_hold_s=2.0)

    async def main() -> list[float]:
        stop = asyncio.Event()
        task = asyncio.ensure_future(d.run(stop))
        loop = asyncio.get_running_loop()
        delays = []
        try:
            d._lsa_update(announcement(1, 20, 1))
            d._lsa_update(announcement(2, 20, 1))
            await asyncio.sleep(0.3)
            for seq, cost in ((2, 40), (3, 60)):  # one change every 0.5 s: no churn
                t0 = loop.time()
                d._lsa_update(announcement(1, cost, seq))
                while not any(c.instance_id == 1 and c.path_cost == 10 + cost
                              for rows in d.tables.values() for c in rows):
                    assert loop.time() - t0 < 5.0
                    await asyncio.sleep(0.005)
                delays.append(loop.time() - t0)
                await asyncio.sleep(0.5)
            return delays
        finally:
            stop.set()
            await task

    delays = asyncio.run(main())
    assert max(delays) < 0.09, delays  # the debounce only (20 ms), no hold
    assert d.throttle.costs_held == 0
