"""topologies.emuserver without emulating a server (no namespace, veth or sshd): the
sshd and client configuration files, and stopping a server that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from topologies import emuserver
from topologies.emuserver import EmuServer, _client_config, _sshd_config

SRV = EmuServer("s2", 7, Path("/var/lib/dsfc-emu/s2"))


def options(text: str) -> dict[str, str]:
    """``Keyword value`` lines (each keyword once)."""
    pairs = [ln.strip().split(None, 1) for ln in text.splitlines() if ln.strip()]
    assert len({k for k, _ in pairs}) == len(pairs), "a keyword twice"
    return dict(pairs)


def test_names_and_addresses() -> None:
    assert (SRV.netns, SRV.host_iface) == ("dsfcsrv-s2", "srv-s2")
    assert (SRV.host_address, SRV.address) == ("10.99.7.1", "10.99.7.2")
    assert SRV.ssh_config == Path("/var/lib/dsfc-emu/s2/ssh_config")
    assert EmuServer("a-very-long-name", 1, Path("/x")).host_iface == "srv-a-very-long"  # 15


def test_sshd_config() -> None:
    text = _sshd_config(SRV)
    assert text.endswith("\n")
    o = options(text)
    assert o["ListenAddress"] == "10.99.7.2"  # the namespace's address only
    assert o["Port"] == "22"
    assert o["PermitTunnel"] == "yes"
    assert o["UsePAM"] == "no"
    assert o["PermitRootLogin"] == "prohibit-password"  # root, by key only
    assert o["PubkeyAuthentication"] == "yes"
    assert o["PasswordAuthentication"] == "no"
    assert o["KbdInteractiveAuthentication"] == "no"
    assert o["HostKey"] == "/var/lib/dsfc-emu/s2/host_key"
    assert o["AuthorizedKeysFile"] == "/var/lib/dsfc-emu/s2/authorized_keys"
    assert o["PidFile"] == "/var/lib/dsfc-emu/s2/sshd.pid"
    assert int(o["MaxSessions"]) >= 100  # many node shells over one master connection


def test_client_config() -> None:
    text = _client_config(SRV)
    lines = text.splitlines()
    assert lines[0] == "Host 10.99.7.2"  # only for the emulated server
    assert all(ln.startswith("  ") for ln in lines[1:])
    o = options("\n".join(lines[1:]))
    assert o["User"] == "root"
    assert o["IdentityFile"] == "/var/lib/dsfc-emu/s2/client_key"
    assert o["IdentitiesOnly"] == "yes"
    assert o["UserKnownHostsFile"] == "/var/lib/dsfc-emu/s2/known_hosts"
    assert o["StrictHostKeyChecking"] == "yes"  # its host key is known, never trusted blindly


def test_stop_of_a_server_that_does_not_exist(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emuserver, "STATE_ROOT", tmp_path / "emu")

    def no_command(*args: str, check: bool = True):
        pytest.fail(f"ran {args}")

    monkeypatch.setattr(emuserver, "_run", no_command)
    assert emuserver.stop("no-such-unit-test-server") is False
    assert not (tmp_path / "emu").exists()
    assert emuserver.main(["stop", "no-such-unit-test-server"]) == 1
