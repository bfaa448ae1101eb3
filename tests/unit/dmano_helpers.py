"""Shared helpers of the D-MANO unit tests: real child processes standing in for VNFs,
their counters files, a short folder for unix sockets, and a fake OSPF API session that
echoes announcements into the daemon's LSDB mirror like ospfd does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmano import lsa
from dmano.lsdb import build_opaque_lsa
from dmano.model import VnfAnnouncement

ROUTER_ID = IPv4Address("10.255.0.2")


def start_child() -> subprocess.Popen[bytes]:
    """A process we own and may kill (stands in for a VNF)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            stdin=subprocess.DEVNULL)


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def write_counters(path: Path, pid: int, updated: float | None = None,
                   rate: float = 10.0) -> None:
    data = {"pid": pid, "rate_pps": rate, "capacity": 150,
            "updated": time.time() if updated is None else updated}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


@contextmanager
def short_dir() -> Iterator[Path]:
    """A folder with a short path (unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="dm", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class FakeSession:
    """Stands in for dmano.ospf_api.OspfApiSession: records what the daemon announces
    and withdraws and, like ospfd, reports our own LSAs back (on_update)."""

    instances: list[FakeSession] = []

    def __init__(self, server: str, area: IPv4Address, opaque_type: int,
                 on_update: Callable[[bytes], None], on_delete: Callable[[bytes], None],
                 on_reset: Callable[[], None], on_connected: Callable[[], None]) -> None:
        self.on_update = on_update
        self.on_connected = on_connected
        self.connected = True
        self.connections = 1
        self.failures = 0
        self.last_error = ""
        self.desired: dict[int, bytes] = {}
        self.announced: dict[int, Any] = {}
        self.pending_withdrawals: dict[int, int] = {}
        self.log: list[tuple[str, int, VnfAnnouncement | None]] = []
        self.seq = 0x80000001
        self.echo = True
        FakeSession.instances.append(self)

    async def announce(self, instance_id: int, body: bytes) -> None:
        self.desired[instance_id] = body
        self.announced[instance_id] = body
        ann = lsa.decode(body, instance_id)
        self.log.append(("announce", instance_id, ann))
        if self.echo:
            self.seq += 1
            self.on_update(build_opaque_lsa(lsa.OPAQUE_TYPE, instance_id, ROUTER_ID, body,
                                            seq=self.seq))

    async def withdraw(self, instance_id: int) -> None:
        self.desired.pop(instance_id, None)
        self.announced.pop(instance_id, None)
        self.log.append(("withdraw", instance_id, None))

    async def retry_pending(self) -> None:
        pass

    async def run(self, stop: Any) -> None:
        self.on_connected()
        await stop.wait()

    def last(self, instance_id: int) -> tuple[str, VnfAnnouncement | None]:
        for what, iid, ann in reversed(self.log):
            if iid == instance_id:
                return what, ann
        raise KeyError(instance_id)
