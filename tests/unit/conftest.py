"""Fixtures of the P4Runtime server tests (``test_p4rt_server*.py``): a recording fake
target, a server on a unix socket in the test's tmp_path, and p4runtime-shell clients;
``procs``: real processes a test starts, killed and reaped after it (starve_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from p4runtime_sh.p4runtime import P4RuntimeClient

from connector_p4.p4rt_server import P4RuntimeServer
from tests.unit.p4rt_helpers import FakeTarget
from tests.unit.starve_helpers import Procs


@pytest.fixture
def procs() -> Iterator[Procs]:
    started = Procs()
    yield started
    started.close()


@pytest.fixture
def fake():
    return FakeTarget()


@pytest.fixture
def server(tmp_path, fake):
    srv = P4RuntimeServer(fake, socket_path=tmp_path / "p4rt.sock").start()
    yield srv
    srv.stop(grace=None)


@pytest.fixture
def connect(server):
    clients = []

    def make(election=(0, 1), addr=None):
        c = P4RuntimeClient(1, addr or f"unix:{server.socket_path}", election)
        clients.append(c)
        return c

    yield make
    for c in clients:
        if getattr(c, "channel", None) is not None:
            c.tear_down()


@pytest.fixture
def client(connect):
    return connect()
