"""``python -m dmano drain|undrain INSTANCE``: finding the owning D-MANO by scanning a
temporary DSFC_RUN_ROOT, --socket and --config, and the messages and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dmano import cli
from dmano.control_server import ControlServer
from dmano.locate import LocateError, find_owner
from tests.unit.dmano_helpers import short_dir, start_child, stop_child


class Stub:
    def __init__(self, node: str, refuse: str = "") -> None:
        self.node = node
        self.refuse = refuse
        self.calls: list[tuple[str, str | None, bool]] = []

    async def control(self, cmd: str, instance: str | None, force: bool) -> dict[str, Any]:
        self.calls.append((cmd, instance, force))
        if self.refuse:
            return {"ok": False, "node": self.node, "error": self.refuse}
        return {"ok": True, "node": self.node, "instance": instance,
                "message": f"instance {instance} is {cmd}ed"}


@contextmanager
def serving(path: Path, handler: Stub) -> Iterator[None]:
    """A control server in its own thread and loop (the CLI blocks)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = ControlServer(path, handler)
    asyncio.run_coroutine_threadsafe(srv.start(), loop).result(5)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def status(root: Path, run: str, node: str, instances: list[str], sock: Path | None,
           pid: int | None = None, running: bool = True) -> Path:
    path = root / run / f"r{node}" / "dmano.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "node": node, "running": running, "pid": os.getpid() if pid is None else pid,
        "local_instances": {n: {"up": True} for n in instances},
        "control_socket": str(sock) if sock else None}))
    return path


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with short_dir() as d:
        monkeypatch.setenv("DSFC_RUN_ROOT", str(d))
        yield d


@pytest.fixture
def dead_pid() -> int:
    proc = start_child()
    stop_child(proc)
    return proc.pid


def test_drain_found_by_scanning_the_run_root(root: Path, dead_pid: int,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sock_b, sock_c = root / "b.sock", root / "c.sock"
    status(root, "run1", "B", ["fw_b"], sock_b)
    status(root, "run1", "C", ["fw_c"], sock_c)
    status(root, "old", "B", ["fw_b"], root / "old.sock", pid=dead_pid)  # dead: ignored
    status(root, "old2", "B", ["fw_b"], root / "old.sock", running=False)
    b, c = Stub("B"), Stub("C")
    with serving(sock_b, b), serving(sock_c, c):
        assert cli.main(["drain", "fw_b"]) == 0
        assert capsys.readouterr().out == "node B: instance fw_b is drained\n"
        assert cli.main(["drain", "fw_c", "--force"]) == 0
        assert cli.main(["undrain", "fw_c"]) == 0
        assert cli.main(["undrain", "fw_b", "--socket", str(sock_b)]) == 0
    assert b.calls == [("drain", "fw_b", False), ("undrain", "fw_b", False)]
    assert c.calls == [("drain", "fw_c", True), ("undrain", "fw_c", False)]


def test_unknown_instance_names_the_known_ones(root: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    status(root, "run1", "B", ["fw_b"], root / "b.sock")
    status(root, "run1", "C", ["fw_c", "ids_c"], root / "c.sock")
    assert cli.main(["drain", "nat_x"]) == 1
    err = capsys.readouterr().err
    assert "unknown instance 'nat_x'" in err and "fw_b, fw_c, ids_c" in err


def test_no_running_dmano(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drain", "fw_b"]) == 1
    assert f"no running D-MANO under {root}" in capsys.readouterr().err


def test_running_but_socket_gone(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status(root, "run1", "B", ["fw_b"], root / "b.sock")
    assert cli.main(["drain", "fw_b"]) == 1
    assert "no control socket" in capsys.readouterr().err


def test_refusal_is_printed_and_fails(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = root / "b.sock"
    status(root, "run1", "B", ["fw_b"], sock)
    msg = "instance fw_b is the last one of service FW serving new flows: use --force"
    with serving(sock, Stub("B", refuse=msg)):
        assert cli.main(["drain", "fw_b"]) == 1
    assert capsys.readouterr().err == f"error: node B: {msg}\n"


def test_ambiguous_owner(root: Path) -> None:
    status(root, "run1", "B", ["fw_b"], root / "b.sock")
    status(root, "run2", "B", ["fw_b"], root / "b2.sock")
    with pytest.raises(LocateError, match="several running D-MANOs"):
        find_owner("fw_b")


def test_owner_without_control_socket(root: Path) -> None:
    status(root, "run1", "B", ["fw_b"], None)
    with pytest.raises(LocateError, match="serves no control socket"):
        find_owner("fw_b")


def test_with_config(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = root / "ctl.sock"
    conf = root / "node.yaml"
    conf.write_text(f"""
node: B
router_id: 10.255.0.2
nsh_endpoint: 10.2.0.2
policy: policy.yaml
status_file: {root}/rB/dmano.json
control_socket: {sock}
instances:
  - {{name: fw_b, id: 1, service: 1, capacity: 150, stats: {root}/fw_b.json}}
""")
    stub = Stub("B")
    with serving(sock, stub):
        assert cli.main(["drain", "fw_b", "--config", str(conf)]) == 0
    assert stub.calls == [("drain", "fw_b", False)]
    assert cli.main(["drain", "fw_x", "--config", str(conf)]) == 1
    assert "unknown instance 'fw_x' in" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["drain"], ["undrain", "fw", "--force"],
                                  ["show", "fw", "--status", "x"]])
def test_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
