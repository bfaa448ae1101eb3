"""The resource monitor never trusts a counters file: bad values make the instance down
with the reason, they are counted, and nothing raises (issue #10, defect 3)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import pytest

from dmano.config import InstanceConf
from dmano.monitor import Monitor
from dmano.policy import load_policy, shipped_policy


def _monitor(tmp_path: Path) -> tuple[Monitor, InstanceConf]:
    inst = InstanceConf(name="fw_b", id=1, service=1, capacity=150,
                        stats=tmp_path / "fw_b.json")
    return Monitor((inst,), stale_s=5.0), inst


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def good() -> dict[str, float | int]:
    return {"pid": os.getpid(), "rate_pps": 42.0, "capacity": 150, "updated": time.time()}


def test_good_file_is_up(tmp_path: Path) -> None:
    mon, inst = _monitor(tmp_path)
    _write(inst.stats, json.dumps(good()))
    st = mon.poll()["fw_b"]
    assert st.up and st.reason == "" and st.pid == os.getpid()
    assert st.measurement.load == 42.0 and st.measurement.capacity == 150.0


@pytest.mark.parametrize("field, raw, words", [
    ("capacity", "NaN", "capacity: expected a finite number"),
    ("rate_pps", "Infinity", "rate_pps: expected a finite number"),
    ("rate_pps", "-Infinity", "rate_pps: expected a finite number"),
    ("rate_pps", "-1", "rate_pps: expected a finite number in 0..4.29497e+09, got -1"),
    ("rate_pps", str(2**40), "rate_pps: expected a finite number"),
    ("capacity", "0", "capacity: expected a finite number in 1..1e+07, got 0"),
    ("capacity", str(2**40), "capacity"),
    ("rate_pps", '"fast"', "rate_pps: expected a number, got 'fast'"),
    ("rate_pps", "true", "rate_pps: expected a number, got True"),
    ("updated", "NaN", "updated: expected a finite number"),
    ("pid", "-1", "pid: expected a process id, got -1"),
    ("pid", str(2**40), "pid: expected a process id"),
    ("pid", "1.5", "pid: expected a process id"),
    ("pid", "null", "pid: expected a process id, got None"),
])
def test_bad_value_makes_instance_down(tmp_path: Path, field: str, raw: str,
                                       words: str) -> None:
    mon, inst = _monitor(tmp_path)
    body = json.dumps({k: v for k, v in good().items() if k != field})
    _write(inst.stats, body[:-1] + f', "{field}": {raw}}}')
    st = mon.poll()["fw_b"]
    assert not st.up
    assert words in st.reason and str(inst.stats) in st.reason
    assert mon.bad_files["fw_b"] == 1
    # the measurement handed to the policy is finite whatever the file said
    assert math.isfinite(st.measurement.load) and math.isfinite(st.measurement.capacity)
    policy = load_policy(shipped_policy("paper"))
    assert policy.vnf_cost(st.measurement) >= 0


def test_missing_pid_and_not_an_object(tmp_path: Path) -> None:
    mon, inst = _monitor(tmp_path)
    _write(inst.stats, json.dumps({"rate_pps": 1}))
    assert "pid: expected a process id, got None" in mon.poll()["fw_b"].reason
    _write(inst.stats, "[1, 2]")
    assert "not a JSON object" in mon.poll()["fw_b"].reason
    _write(inst.stats, "{")
    assert "unreadable counters file" in mon.poll()["fw_b"].reason
    assert mon.bad_files["fw_b"] == 2


def test_bad_file_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mon, inst = _monitor(tmp_path)
    _write(inst.stats, json.dumps({**good(), "rate_pps": None})[:-1] + ', "capacity": NaN}')
    with caplog.at_level(logging.WARNING, logger="dmano.monitor"):
        for _ in range(5):
            assert not mon.poll()["fw_b"].up
    assert len([r for r in caplog.records if "fw_b is down" in r.getMessage()]) == 1
    assert mon.bad_files["fw_b"] == 5
    _write(inst.stats, json.dumps({**good(), "updated": time.time()}))
    assert mon.poll()["fw_b"].up


def test_stale_reason_is_stable(tmp_path: Path) -> None:
    mon, inst = _monitor(tmp_path)
    _write(inst.stats, json.dumps({**good(), "updated": time.time() - 60}))
    first = mon.poll()["fw_b"].reason
    assert "counters not updated since" in first
    assert mon.poll(now=time.time() + 3)["fw_b"].reason == first
