"""The node configuration's fields for fast detection and the control socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dmano.config import parse_node_config
from dmano.yamlconf import ConfigError, loads_yaml

BASE = """
node: B
router_id: 10.255.0.2
nsh_endpoint: 10.2.0.2
policy: policy.yaml
status_file: /run/dsfc/x/rB/dmano.json
"""


def parse(extra: str = "") -> Any:
    path = Path("/etc/dsfc/node.yaml")
    return parse_node_config(loads_yaml(BASE + extra, path), path)


def test_defaults() -> None:
    cfg = parse()
    assert cfg.heartbeat_s == 1.0 and cfg.control_socket is None
    assert cfg.control_path == Path("/run/dsfc/x/rB/dmano.sock")


def test_explicit_values() -> None:
    cfg = parse("heartbeat_s: 0.5\ncontrol_socket: /tmp/b.sock\n")
    assert cfg.heartbeat_s == 0.5 and cfg.control_path == Path("/tmp/b.sock")
    assert parse("control_socket: ctl.sock\n").control_path == Path("/etc/dsfc/ctl.sock")
    assert parse("heartbeat_s: 2\n").heartbeat_s == 2.0


@pytest.mark.parametrize("extra, words", [
    ("heartbeat_s: 0\n", "heartbeat_s: expected a number >= 0.05"),
    ("heartbeat_s: -1\n", "heartbeat_s: expected a number >= 0.05"),
    ("heartbeat_s: 99999\n", "heartbeat_s: expected a number <= 3600"),
    ("heartbeat_s: fast\n", "heartbeat_s: expected a number"),
    ("heartbeat_s: true\n", "heartbeat_s: expected a number"),
    ("heartbeat_s: .nan\n", "heartbeat_s: expected a finite number"),
    ("control_socket: 3\n", "control_socket: expected a non-empty string"),
    ("control_socket: /" + "x" * 120 + "\n", "longer than a unix socket path"),
])
def test_bad_values(extra: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(extra)
    assert words in str(err.value)
