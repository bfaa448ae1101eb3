"""A fake ``ssh`` (and ``sudo``) first on PATH, for the tests of code that reaches other
servers: it records every argv it is given and runs the remote command with ``sh -c``
on this machine, so the real argv and the real remote command lines are exercised
without a network, an sshd or a second machine.

* ``fail(rc)``: every later ssh call prints an ssh-like error and exits ``rc`` (255:
  ssh could not connect) without running anything;
* ``map(a, b)``: "the other server" keeps path ``a`` at ``b`` here (the fake replaces
  ``a`` by ``b`` in the command before running it), to copy between two folders;
* ``-O`` (master control) calls are only recorded (exit 0).

The fake ``sudo`` drops ``-n`` and runs the rest (the tests run as root already).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from topologies import servers

SSH = """\
#!{python}
import json, os, subprocess, sys
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
rc = os.environ.get("FAKE_SSH_RC")
if rc:
    sys.stderr.write("ssh: connect to host 10.99.0.2 port 22: Connection refused\\n")
    sys.exit(int(rc))
if "-O" in sys.argv:
    sys.exit(0)
cmd = sys.argv[-1]
for a, b in json.loads(os.environ.get("FAKE_SSH_MAP", "{{}}")).items():
    cmd = cmd.replace(a, b)
sys.exit(subprocess.run(["sh", "-c", cmd]).returncode)
"""

SUDO = """\
#!/bin/sh
printf "%s\\n" "$*" >> "$FAKE_SUDO_LOG"
[ "$1" = -n ] && shift
exec "$@"
"""


class FakeSsh:
    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch):
        self.folder = folder
        self.monkeypatch = monkeypatch
        self.log = folder / "ssh.log"
        self.sudo_log = folder / "sudo.log"
        self.control_dir = folder / "ctl"
        bin_dir = folder / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "ssh").write_text(SSH.format(python=sys.executable))
        (bin_dir / "sudo").write_text(SUDO)
        for prog in ("ssh", "sudo"):
            (bin_dir / prog).chmod(0o755)
        self.log.touch()
        self.sudo_log.touch()
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_SSH_LOG", str(self.log))
        monkeypatch.setenv("FAKE_SUDO_LOG", str(self.sudo_log))
        monkeypatch.delenv("FAKE_SSH_RC", raising=False)
        monkeypatch.delenv("FAKE_SSH_MAP", raising=False)
        monkeypatch.delenv(servers.SSH_CONFIG_ENV, raising=False)
        monkeypatch.setattr(servers, "CONTROL_DIR", self.control_dir)
        self._map: dict[str, str] = {}

    @property
    def calls(self) -> list[list[str]]:
        """The argv (without ``ssh``) of every ssh call so far."""
        return [json.loads(ln) for ln in self.log.read_text().splitlines()]

    @property
    def sudo_calls(self) -> list[str]:
        return self.sudo_log.read_text().splitlines()

    def fail(self, rc: int = 255) -> None:
        self.monkeypatch.setenv("FAKE_SSH_RC", str(rc))

    def map(self, there: Path, here: Path) -> None:
        self._map[str(there)] = str(here)
        self.monkeypatch.setenv("FAKE_SSH_MAP", json.dumps(self._map))
