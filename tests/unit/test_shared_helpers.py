"""The shared helpers: MAC conversion, atomic writes, terminate and wait-for-path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dmano.atomicfile import write_json_atomic, write_text_atomic
from dmano.macaddr import format_mac, mac_to_int, parse_mac
from dmano.procutil import ProcessDiedError, popen_alive, terminate, wait_for_path


@pytest.mark.parametrize("text", ["02:dc:01:00:00:01", "02-DC-01-00-00-01", "2:dc:1:0:0:1"])
def test_mac_text_forms(text: str) -> None:
    assert parse_mac(text) == bytes([2, 0xdc, 1, 0, 0, 1])
    assert format_mac(text) == "02:dc:01:00:00:01"
    assert mac_to_int(text) == 0x02dc01000001


def test_mac_round_trips() -> None:
    assert format_mac(0x02dc01000001) == "02:dc:01:00:00:01"
    assert parse_mac(b"\x02\xdc\x01\x00\x00\x01") == b"\x02\xdc\x01\x00\x00\x01"
    assert parse_mac(mac_to_int("ff:ff:ff:ff:ff:ff")) == b"\xff" * 6


@pytest.mark.parametrize("bad", ["02:dc:01:00:00", "02:dc:01:00:00:01:02", "zz:dc:01:00:00:01",
                                 "02:dc:01:00:00:100", "", b"\x01\x02", 1 << 48, -1])
def test_mac_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        parse_mac(bad)  # type: ignore[arg-type]


def test_write_json_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]}, sort_keys=True, mkdir=True)
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    write_json_atomic(target, {"x": 1}, indent=None)
    assert target.read_text() == '{"x":1}\n'
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_write_atomic_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"x": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_terminate_polite_and_forced() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert terminate(polite, grace_s=5) == -signal.SIGTERM
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "print('ready', flush=True)\n"
                                 "time.sleep(60)"], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    assert terminate(stubborn, grace_s=0.3) == -signal.SIGKILL
    stubborn.stdout.close()
    assert terminate(stubborn) == -signal.SIGKILL  # already gone: just the code


def test_wait_for_path(tmp_path: Path) -> None:
    target = tmp_path / "sock"
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import time, pathlib; time.sleep(0.2); "
                             f"pathlib.Path({str(target)!r}).touch(); time.sleep(30)"])
    try:
        wait_for_path(target, 10, alive=popen_alive(proc))
    finally:
        terminate(proc)
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ProcessDiedError, match="exited before"):
        wait_for_path(tmp_path / "never", 10, alive=popen_alive(dead), what="conn-A")
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        wait_for_path(tmp_path / "never", 0.2)
