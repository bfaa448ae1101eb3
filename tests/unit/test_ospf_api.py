"""OspfApiSession against a stand-in for FRR's client (the real one runs in the
integration tests): unexpected errors end a session, never the supervision; a failed
withdrawal is retried; cancellation is not swallowed (issue #10, defects 4 and 6)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

import pytest

from dmano import ospf_api
from dmano.ospf_api import OspfApiSession


class FakeClient:
    """Just enough of ospfclient.OspfOpaqueClient; behaviour set per test."""

    connect_errors: list[BaseException] = []
    delete_errors: list[BaseException] = []
    instances: list[FakeClient] = []

    def __init__(self, server: str, wait_ready: bool = False) -> None:
        self.closed = True
        self.added: list[int] = []
        self.deleted: list[int] = []
        self.loop_ended = asyncio.Event()
        FakeClient.instances.append(self)

    async def connect(self) -> None:
        if FakeClient.connect_errors:
            raise FakeClient.connect_errors.pop(0)
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    async def _handle_msg_loop(self) -> None:
        await self.loop_ended.wait()
        raise EOFError("server closed")

    async def monitor_lsa(self, callback: Any) -> None:
        pass

    async def register_opaque_data(self, lsa_type: int, otype: int) -> None:
        pass

    async def add_opaque_data(self, area: int, lsa_type: int, otype: int, oid: int,
                              body: bytes) -> None:
        self.added.append(oid)

    async def delete_opaque_data(self, area: int, lsa_type: int, otype: int,
                                 oid: int) -> None:
        if FakeClient.delete_errors:
            raise FakeClient.delete_errors.pop(0)
        self.deleted.append(oid)


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> OspfApiSession:
    FakeClient.connect_errors, FakeClient.delete_errors, FakeClient.instances = [], [], []
    s = OspfApiSession("127.0.0.1", IPv4Address("0.0.0.0"), 230, on_update=lambda b: None,
                       on_delete=lambda b: None, on_reset=lambda: None,
                       on_connected=lambda: None)
    s.client_cls = FakeClient
    monkeypatch.setattr(ospf_api, "REFRESH_MIN_S", 0.0)
    return s


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_unexpected_error_ends_the_session_not_the_supervision(session) -> None:
    async def main() -> None:
        FakeClient.connect_errors = [RuntimeError("bug in a callback"), KeyError("x")]
        stop = asyncio.Event()
        task = asyncio.ensure_future(session.run(stop))
        await _until(lambda: session.connected)
        assert session.failures == 2 and session.connections == 1
        assert session.last_error == ""  # cleared by the successful connection
        assert not task.done()
        FakeClient.instances[-1].loop_ended.set()  # the server goes away: reconnect
        await _until(lambda: session.connections == 2 and session.connected)
        assert session.failures == 3
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_failed_withdrawal_is_retried(session) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(session.run(stop))
        await _until(lambda: session.connected)
        await session.announce(7, b"body")
        oid = session.announced[7][0]
        FakeClient.delete_errors = [session.oc.APIError("busy")]
        await session.withdraw(7)
        assert session.pending_withdrawals == {7: oid}
        assert 7 in session.announced  # still out there until ospfd accepts the delete
        await session.retry_pending()
        assert session.pending_withdrawals == {}
        assert 7 not in session.announced
        assert FakeClient.instances[-1].deleted == [oid]
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_reannounce_cancels_a_pending_withdrawal(session) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(session.run(stop))
        await _until(lambda: session.connected)
        await session.announce(3, b"one")
        FakeClient.delete_errors = [session.oc.APIError("busy")]
        await session.withdraw(3)
        await session.announce(3, b"two")
        assert session.pending_withdrawals == {}
        assert session.announced[3][1] == b"two"
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_cancellation_is_not_swallowed(session) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(session.run(stop))
        await _until(lambda: session.connected)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_reannounce_soon_after_a_withdrawal_uses_the_next_generation(
        session, monkeypatch) -> None:
    """A VNF restarted within ospfd's MinLSInterval of its withdrawal: the same opaque ID
    would be held back by ospfd for up to 5 s; the next generation goes out at once."""
    from dmano import lsa

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(session.run(stop))
        await _until(lambda: session.connected)
        monkeypatch.setattr(ospf_api, "REFRESH_MIN_S", 60.0)
        await session.announce(7, b"body")
        first = session.announced[7][0]
        await session.withdraw(7)
        await session.announce(7, b"body")
        second = session.announced[7][0]
        assert first == lsa.make_opaque_id(7, 0)
        assert second == lsa.make_opaque_id(7, 1)
        assert FakeClient.instances[-1].added == [first, second]
        # long after: the same generation again (nothing to wait for)
        await session.withdraw(7)
        monkeypatch.setattr(ospf_api, "REFRESH_MIN_S", 0.0)
        await session.announce(7, b"body")
        assert session.announced[7][0] == second
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
