"""Fast detection of a local VNF's death (pidfd) and hang (heartbeat), with real child
processes that the tests start and kill (dmano/liveness.py)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from dmano.config import InstanceConf
from dmano.liveness import Liveness, tick_for
from tests.unit.dmano_helpers import start_child, stop_child, write_counters
from tests.unit.starve_helpers import Procs

DEADLINE_S = 10.0  # only a bound for a broken test; nothing asserts speed


def inst(tmp_path: Path, name: str = "fw_a", iid: int = 1) -> InstanceConf:
    return InstanceConf(name=name, id=iid, service=1, capacity=150,
                        stats=tmp_path / f"{name}.json")


class Recorder:
    def __init__(self) -> None:
        self.downs: list[tuple[str, str]] = []
        self.event = asyncio.Event()

    def __call__(self, name: str, reason: str) -> None:
        self.downs.append((name, reason))
        self.event.set()


def test_pidfd_reports_a_killed_vnf_without_any_timer(tmp_path: Path) -> None:
    """No heartbeat task and no period run: only the pidfd in the loop can notice."""
    conf = inst(tmp_path)
    proc = start_child()

    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        live = Liveness([conf], heartbeat_s=3600.0, on_down=rec)
        write_counters(conf.stats, proc.pid)
        live.watch(conf.name, proc.pid)
        assert live.armed_pid(conf.name) == proc.pid
        proc.kill()
        await asyncio.wait_for(rec.event.wait(), DEADLINE_S)
        assert not live.watching(conf.name) and live.armed_pid(conf.name) is None
        live.close()
        return rec.downs

    try:
        downs = asyncio.run(main())
    finally:
        stop_child(proc)
    assert downs == [(conf.name, f"VNF process {proc.pid} exited")]


def test_process_already_gone_is_down_at_once(tmp_path: Path) -> None:
    conf = inst(tmp_path)
    proc = start_child()
    stop_child(proc)  # reaped: the pid no longer exists

    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        live = Liveness([conf], heartbeat_s=1.0, on_down=rec)
        live.watch(conf.name, proc.pid)
        return rec.downs

    assert asyncio.run(main()) == [(conf.name, f"VNF process {proc.pid} is gone")]


def test_unwatched_instance_is_not_reported(tmp_path: Path) -> None:
    conf = inst(tmp_path)
    proc = start_child()

    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        live = Liveness([conf], heartbeat_s=3600.0, on_down=rec)
        live.watch(conf.name, proc.pid)
        live.unwatch(conf.name)
        proc.kill()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait)
        await asyncio.sleep(0)  # a readable pidfd would run its callback now
        return rec.downs

    try:
        assert asyncio.run(main()) == []
    finally:
        stop_child(proc)


def test_heartbeat_declares_a_hung_vnf_down(tmp_path: Path, procs: Procs) -> None:
    """The VNF sleeps without writing its counters: hung (a runnable one might only be
    starved of CPU: test_starvation_procs.py)."""
    conf = inst(tmp_path)
    vnf = procs.sleeper().pid
    rec_downs: list[tuple[str, str]] = []
    live = Liveness([conf], heartbeat_s=1.0, on_down=lambda n, r: rec_downs.append((n, r)))
    now = time.time()
    write_counters(conf.stats, vnf, updated=now - 0.5)

    async def main() -> None:
        live.watch(conf.name, vnf)
        live.check(now)
        assert rec_downs == []  # fresh enough
        write_counters(conf.stats, vnf, updated=now - 1.5)
        live.check(now)
        live.check(now)  # reported once
        live.close()

    asyncio.run(main())
    assert len(rec_downs) == 1
    name, reason = rec_downs[0]
    assert name == conf.name and "VNF hung" in reason and "heartbeat 1 s" in reason


@pytest.mark.parametrize("content, words", [
    (None, "no counters file"),
    ('{"pid": -3, "updated": 1}', "pid: expected a process id"),
    ('{"pid": 5, "updated": NaN}', "updated: expected a finite number"),
    ("{not json", "unreadable counters file"),
])
def test_heartbeat_missing_or_bad_file_is_down(tmp_path: Path, content: str | None,
                                                words: str) -> None:
    conf = inst(tmp_path)
    downs: list[tuple[str, str]] = []
    bad: list[str] = []
    live = Liveness([conf], heartbeat_s=1.0, on_down=lambda n, r: downs.append((n, r)),
                    on_bad_file=bad.append)

    async def main() -> None:
        write_counters(conf.stats, os.getpid())
        live.watch(conf.name, os.getpid())
        if content is None:
            conf.stats.unlink()
        else:
            conf.stats.write_text(content)
        live.check()
        live.close()

    asyncio.run(main())
    assert len(downs) == 1 and words in downs[0][1]
    # a bad value (not a missing or unreadable file) is counted for the status
    assert bad == ([conf.name] if content and "expected" in words else [])


def test_new_pid_rearms_and_the_old_one_no_longer_counts(tmp_path: Path) -> None:
    conf = inst(tmp_path)
    old, new = start_child(), start_child()

    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        live = Liveness([conf], heartbeat_s=3600.0, on_down=rec)
        write_counters(conf.stats, old.pid)
        live.watch(conf.name, old.pid)
        write_counters(conf.stats, new.pid)  # the VNF restarted under a new pid
        live.check()
        assert live.armed_pid(conf.name) == new.pid
        old.kill()
        await asyncio.get_running_loop().run_in_executor(None, old.wait)
        await asyncio.sleep(0)
        assert rec.downs == []  # the old process is not watched any more
        new.kill()
        await asyncio.wait_for(rec.event.wait(), DEADLINE_S)
        live.close()
        return rec.downs

    try:
        downs = asyncio.run(main())
    finally:
        stop_child(old)
        stop_child(new)
    assert downs == [(conf.name, f"VNF process {new.pid} exited")]


def test_a_failing_callback_does_not_stop_detection(tmp_path: Path, procs: Procs) -> None:
    a, b = inst(tmp_path, "a", 1), inst(tmp_path, "b", 2)
    vnf = procs.sleeper().pid  # hung: asleep, its counters stale
    seen: list[str] = []

    def on_down(name: str, reason: str) -> None:
        seen.append(name)
        raise RuntimeError("bug in the daemon")

    live = Liveness([a, b], heartbeat_s=1.0, on_down=on_down)

    async def main() -> None:
        for c in (a, b):
            write_counters(c.stats, vnf, updated=time.time() - 10)
            live.watch(c.name, vnf)
        live.check()
        live.close()

    asyncio.run(main())
    assert seen == ["a", "b"]


def test_run_stops_and_releases_pidfds(tmp_path: Path) -> None:
    conf = inst(tmp_path)
    proc = start_child()

    async def main() -> None:
        live = Liveness([conf], heartbeat_s=1.0, on_down=lambda n, r: None, tick_s=0.01)
        write_counters(conf.stats, proc.pid)
        stop = asyncio.Event()
        task = asyncio.ensure_future(live.run(stop))
        await asyncio.sleep(0)
        live.watch(conf.name, proc.pid)
        assert live.armed_pid(conf.name) == proc.pid
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
        assert live.armed_pid(conf.name) is None

    try:
        asyncio.run(main())
    finally:
        stop_child(proc)


def test_tick_bounds() -> None:
    assert tick_for(1.0) == 0.25 and tick_for(0.1) == 0.05 and tick_for(0.6) == 0.15
