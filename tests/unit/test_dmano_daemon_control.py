"""The daemon's between-period paths with a fake OSPF API session and the dry-run
connector: a killed VNF leaves the connector and the LSDB at once (pidfd), a hung one
too but not a starved one (issue #13), and drain / undrain over the control socket
re-announce at once and keep draining members defined."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

import dmano.daemon
from dmano.cli import render_status
from dmano.config import ChainConf, InstanceConf, NodeConfig, ServiceConf
from dmano.connector_client import DryRunConnector
from dmano.connector_state import MemberKey
from dmano.control import request
from dmano.daemon import Dmano
from dmano.model import InstanceState
from dmano.policy import load_policy, shipped_policy
from tests.unit.dmano_helpers import (
    ROUTER_ID,
    FakeSession,
    short_dir,
    start_child,
    stop_child,
    write_counters,
)
from tests.unit.starve_helpers import Procs, starve

DEADLINE_S = 10.0
MEMBER_A = MemberKey("local", port=16, mac="02:00:00:01:10:01")
MEMBER_B = MemberKey("local", port=17, mac="02:00:00:01:10:02")


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_dir() as d:
        yield d


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [start_child(), start_child()]
    yield procs
    for p in procs:
        stop_child(p)


def node_config(folder: Path, heartbeat_s: float = 3600.0) -> NodeConfig:
    return NodeConfig(
        node="B", router_id=ROUTER_ID, nsh_endpoint=IPv4Address("10.2.0.2"),
        policy=shipped_policy("paper"), status_file=folder / "rB" / "dmano.json",
        services=(ServiceConf("FW", 1, IPv4Address("10.254.1.1")),),
        chains=(ChainConf(1, (1,)),),
        instances=(
            InstanceConf("fw_a", 1, 1, 150, folder / "fw_a.json", 16, "02:00:00:01:10:01"),
            InstanceConf("fw_b", 2, 1, 150, folder / "fw_b.json", 17, "02:00:00:01:10:02"),
        ),
        heartbeat_s=heartbeat_s)


def make_daemon(monkeypatch: pytest.MonkeyPatch, cfg: NodeConfig) -> Dmano:
    monkeypatch.setattr(dmano.daemon, "OspfApiSession", FakeSession)
    # a period of an hour: anything that happens within the test is not the period
    policy = replace(load_policy(cfg.policy), period_s=3600.0)
    return Dmano(cfg, policy, DryRunConnector())


async def until(cond: Callable[[], object], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def groups(d: Dmano) -> dict[int, dict[MemberKey, int]]:
    writer = d.writer
    assert isinstance(writer, DryRunConnector)
    return writer.state.groups


def session(d: Dmano) -> FakeSession:
    assert isinstance(d.session, FakeSession)
    return d.session


async def running(d: Dmano, body: Callable[[], Awaitable[None]]) -> None:
    """Run the daemon, wait until both instances are in the connector, run ``body``."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(d.run(stop))
    try:
        await until(lambda: set(groups(d).get(1, {})) == {MEMBER_A, MEMBER_B},
                    "both instances in the connector")
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


def ask(d: Dmano, cmd: str, instance: str | None = None,
        force: bool = False) -> Awaitable[dict[str, Any]]:
    return asyncio.to_thread(request, d.cfg.control_path, cmd, instance, force)


def test_killed_vnf_leaves_connector_and_lsdb_before_the_next_period(
        monkeypatch: pytest.MonkeyPatch, folder: Path,
        children: list[subprocess.Popen[bytes]]) -> None:
    cfg = node_config(folder)
    for inst, proc in zip(cfg.instances, children, strict=True):
        write_counters(inst.stats, proc.pid)
    d = make_daemon(monkeypatch, cfg)
    polls = 0
    poll = d.monitor.poll

    def counting_poll(now: float | None = None) -> Any:
        nonlocal polls
        polls += 1
        return poll(now)

    d.monitor.poll = counting_poll  # type: ignore[method-assign]

    async def body() -> None:
        children[0].kill()
        await until(lambda: MEMBER_A not in groups(d).get(1, {}), "fw_a out of the group")
        await until(lambda: session(d).last(1)[0] == "withdraw", "fw_a withdrawn")
        assert groups(d)[1] == {MEMBER_B: 1}
        assert (ROUTER_ID, 1) not in d.mirror.view.instances
        assert polls == 1  # the period never came back: it was the pidfd
        st = json.loads(cfg.status_file.read_text())
        fw_a = st["local_instances"]["fw_a"]
        assert not fw_a["up"] and fw_a["reason"] == f"VNF process {children[0].pid} exited"
        assert st["fast_withdrawals"] == 1

    asyncio.run(running(d, body))


def test_hung_vnf_is_withdrawn_a_starved_one_stays(
        monkeypatch: pytest.MonkeyPatch, folder: Path, procs: Procs) -> None:
    """Both stop writing their counters: fw_b sleeps (hung: withdrawn between periods),
    fw_a is runnable but gets no CPU (starved: it stays in the connector and announced,
    counted in the status). One tracker serves the liveness watcher and the monitor."""
    cfg = node_config(folder, heartbeat_s=2.0)  # a loaded machine may delay our writer
    competitor, starved = procs.busy(), procs.busy()
    starve(starved, competitor)
    pids = {"fw_a": starved.pid, "fw_b": procs.sleeper().pid}
    stop_writing = threading.Event()

    def write_once() -> None:
        for inst in cfg.instances:
            write_counters(inst.stats, pids[inst.name])

    def keep_writing() -> None:  # as the VNFs do, until they stop making progress
        while not stop_writing.wait(0.1):
            write_once()

    write_once()  # before the daemon's first poll
    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    d = make_daemon(monkeypatch, cfg)
    assert d.liveness.tracker is d.monitor.tracker is d.hangs

    async def body() -> None:
        stop_writing.set()
        await asyncio.to_thread(writer.join)
        await until(lambda: MEMBER_B not in groups(d).get(1, {}), "fw_b out of the group")
        await until(lambda: session(d).last(2)[0] == "withdraw", "fw_b withdrawn")
        await until(lambda: d.hangs.starved.get("fw_a") == 1, "fw_a judged starved")
        assert groups(d)[1] == {MEMBER_A: 1}
        assert session(d).last(1)[0] == "announce"
        st = d.status()
        fw_a, fw_b = st["local_instances"]["fw_a"], st["local_instances"]["fw_b"]
        assert fw_a["up"] and fw_a["starving"] and fw_a["starved"] == 1
        assert not fw_b["up"] and "no runnable thread" in fw_b["reason"]
        assert fw_b["starved"] == 0 and not fw_b["starving"]
        assert "STARVING [starved 1x]" in render_status(st)
        assert st["fast_withdrawals"] == 1

    try:
        asyncio.run(running(d, body))
    finally:
        stop_writing.set()
        writer.join(DEADLINE_S)


def test_drain_refuse_force_undrain_over_the_socket(
        monkeypatch: pytest.MonkeyPatch, folder: Path,
        children: list[subprocess.Popen[bytes]]) -> None:
    cfg = node_config(folder)
    for inst, proc in zip(cfg.instances, children, strict=True):
        write_counters(inst.stats, proc.pid)
    d = make_daemon(monkeypatch, cfg)

    async def body() -> None:
        sock = cfg.control_path
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        ans = await ask(d, "drain", "fw_a")
        assert ans["ok"] and ans["state"] == "draining" and ans["changed"], ans
        # at once: announced DRAINING and out of the group for new flows, member kept
        what, ann = session(d).last(1)
        assert what == "announce" and ann is not None and ann.state == InstanceState.DRAINING
        assert groups(d)[1][MEMBER_A] == 0 and groups(d)[1][MEMBER_B] > 0
        assert d.mirror.view.instances[(ROUTER_ID, 1)].state == InstanceState.DRAINING

        ans = await ask(d, "drain", "fw_a")
        assert ans["ok"] and not ans["changed"]
        ans = await ask(d, "drain", "fw_b")
        assert not ans["ok"]
        assert ans["error"] == ("instance fw_b is the last one of service FW serving new "
                                "flows: use --force")
        assert groups(d)[1][MEMBER_B] > 0

        # the period loop does not flip it back to UP
        await d.measure_and_announce()
        assert d.announced_state["fw_a"] == InstanceState.DRAINING
        ann = session(d).last(1)[1]
        assert ann is not None and ann.state == InstanceState.DRAINING
        st = json.loads(cfg.status_file.read_text())
        assert st["drained"] == ["fw_a"] and st["control_socket"] == str(sock)
        assert st["local_instances"]["fw_a"]["state"] == "draining"
        assert "fw_a up DRAINING" in render_status(st)

        ans = await ask(d, "status")
        assert ans["instances"]["fw_a"]["state"] == "draining"
        assert ans["instances"]["fw_b"] == {"up": True, "reason": "", "pid": children[1].pid,
                                            "state": "up", "drained": False}

        ans = await ask(d, "drain", "fw_b", force=True)
        assert ans["ok"] and "forced" in ans["message"]
        assert groups(d)[1] == {MEMBER_A: 0, MEMBER_B: 0}  # both kept for their flows

        ans = await ask(d, "undrain", "fw_a")
        assert ans["ok"] and ans["state"] == "up"
        ann = session(d).last(1)[1]
        assert ann is not None and ann.state == InstanceState.UP
        assert groups(d)[1][MEMBER_A] > 0 and groups(d)[1][MEMBER_B] == 0

        # a draining instance that dies is withdrawn, and only then its member goes
        children[1].kill()
        await until(lambda: MEMBER_B not in groups(d).get(1, {}), "fw_b deleted")

        ans = await ask(d, "undrain", "fw_x")
        assert not ans["ok"] and ans["known"] == ["fw_a", "fw_b"]
        assert "unknown instance 'fw_x' on this node (known: fw_a, fw_b)" in ans["error"]

    asyncio.run(running(d, body))
    assert not cfg.control_path.exists()  # removed on exit
    # a restarted D-MANO keeps the drained set (read back from its status file)
    again = make_daemon(monkeypatch, cfg)
    assert again.drains.drained == {"fw_b"}


def _raw(path: Path, payload: bytes) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE_S)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_malformed_requests_get_errors_and_the_daemon_goes_on(
        monkeypatch: pytest.MonkeyPatch, folder: Path,
        children: list[subprocess.Popen[bytes]]) -> None:
    cfg = node_config(folder)
    for inst, proc in zip(cfg.instances, children, strict=True):
        write_counters(inst.stats, proc.pid)
    d = make_daemon(monkeypatch, cfg)

    async def body() -> None:
        lines = (b"not json\n[1, 2]\n{\"cmd\": \"reboot\"}\n{\"cmd\": \"drain\"}\n"
                 b"{\"cmd\": \"drain\", \"instance\": \"fw_a\", \"force\": \"yes\"}\n"
                 b"{\"cmd\": \"status\", \"extra\": 1}\n\xff\xfe\n"
                 b"{\"cmd\": \"status\", \"instance\": \"fw_b\"}\n")
        answers = await asyncio.to_thread(_raw, cfg.control_path, lines)
        assert [a["ok"] for a in answers] == [False] * 7 + [True]
        assert "not JSON" in answers[0]["error"]
        assert "cmd: expected one of drain, undrain, status" in answers[2]["error"]
        assert "drain: instance is required" in answers[3]["error"]
        assert "force: expected true or false" in answers[4]["error"]
        assert "unknown field(s) extra" in answers[5]["error"]
        assert answers[7]["instances"]["fw_b"]["up"]
        too_long = await asyncio.to_thread(_raw, cfg.control_path, b"x" * 70000 + b"\n")
        assert not too_long[0]["ok"] and "longer than" in too_long[0]["error"]
        assert (await ask(d, "status"))["ok"]

    asyncio.run(running(d, body))
