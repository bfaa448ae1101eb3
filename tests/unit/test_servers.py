"""topologies.servers: the argv of local and remote commands, ssh options, errors, files
and copies. Real commands run with a local server (``sh -c``); remote ones go through
a fake ``ssh`` first on PATH (tests/unit/ssh_helpers.py) that records its argv and
runs the command here, so the remote code paths run for real."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from pathlib import Path

import pytest

from tests.unit.ssh_helpers import FakeSsh
from topologies import servers
from topologies.servers import (
    REPO,
    ServerError,
    ServerSpec,
    clean_remote,
    close_master,
    command_argv,
    forward_socket,
    push,
    python_cmd,
    read_file,
    run,
    ssh_options,
    write_file,
)

LOCAL = ServerSpec("local", "localhost")
S2 = ServerSpec("s2", "10.99.0.2")
S3 = ServerSpec("s3", "node3.lab", "dsfc")  # not root: sudo there
TRICKY = """printf '%s|%s\\n' "it's" '$HOME "x"'"""  # quotes of both kinds and a $
TRICKY_OUT = """it's|$HOME "x"\n"""


@pytest.fixture
def ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSsh:
    return FakeSsh(tmp_path / "fake", monkeypatch)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- argv ----------------------------------------------------------------------------------
def test_local_server_runs_sh_c(ssh: FakeSsh) -> None:
    assert LOCAL.local and ServerSpec("x", "127.0.0.1").local and not S2.local
    assert command_argv(LOCAL, "echo hi; exit 2") == ["sh", "-c", "echo hi; exit 2"]
    assert not ssh.control_dir.exists()  # no ssh: no control folder either
    assert str(LOCAL) == "local" and str(S3) == "s3 (dsfc@node3.lab)"


def test_remote_root_is_ssh_options_destination_command(ssh: FakeSsh) -> None:
    argv = command_argv(S2, TRICKY)
    assert argv == ["ssh", *ssh_options(), "root@10.99.0.2", TRICKY]  # the command as is
    assert mode_of(ssh.control_dir) == 0o700  # made for the ControlPath sockets


def test_remote_user_runs_the_command_under_sudo(ssh: FakeSsh) -> None:
    argv = command_argv(S3, TRICKY)
    assert argv[:-1] == ["ssh", *ssh_options(), "dsfc@node3.lab"]
    assert argv[-1].startswith("sudo -n sh -c '")
    assert shlex.split(argv[-1]) == ["sudo", "-n", "sh", "-c", TRICKY]


def test_ssh_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(servers, "CONTROL_DIR", tmp_path / "ctl")
    monkeypatch.delenv(servers.SSH_CONFIG_ENV, raising=False)
    plain = ssh_options()
    assert "-F" not in plain
    assert plain[::2] == ["-o"] * (len(plain) // 2)  # -o KEY=VALUE pairs only
    opts = dict(o.split("=", 1) for o in plain[1::2])
    assert opts["BatchMode"] == "yes"  # never a password prompt
    assert opts["ControlMaster"] == "auto"
    assert opts["ControlPath"] == f"{tmp_path / 'ctl'}/%C"
    assert opts["ConnectTimeout"] == str(servers.CONNECT_TIMEOUT_S)
    monkeypatch.setenv(servers.SSH_CONFIG_ENV, "/etc/emu ssh/config")
    assert ssh_options() == ["-F", "/etc/emu ssh/config", *plain]  # -F first
    monkeypatch.setenv(servers.SSH_CONFIG_ENV, "")
    assert ssh_options() == plain


def test_python_cmd_quotes_every_word(tmp_path: Path) -> None:
    cmd = python_cmd("json.tool", "--sort-keys", "a b", "it's")
    assert shlex.split(cmd) == ["cd", str(REPO), "&&", sys.executable, "-m", "json.tool",
                                "--sort-keys", "a b", "it's"]
    data = tmp_path / "a b'c $d.json"
    data.write_text('{"b": 1, "a": "x"}')
    out = run(LOCAL, python_cmd("json.tool", "--sort-keys", "--compact", str(data))).stdout
    assert out == '{"a":"x","b":1}\n'


# -- run ------------------------------------------------------------------------------------
def test_run_local() -> None:
    assert run(LOCAL, "echo out; echo err >&2").stdout == "out\n"
    assert run(LOCAL, "cat", input="given\n").stdout == "given\n"
    assert run(LOCAL, "cat").stdout == ""  # no input: stdin is /dev/null, no hang
    assert run(LOCAL, "exit 4", check=False).returncode == 4


def test_run_failure_names_server_command_and_output() -> None:
    with pytest.raises(ServerError) as info:
        run(LOCAL, "echo why >&2; exit 3")
    assert str(info.value) == "server local: 'echo why >&2; exit 3' failed (exit 3): why"
    with pytest.raises(ServerError, match=r"'exit 255' failed \(exit 255\): no output"):
        run(LOCAL, "exit 255")  # here, 255 is not ssh's


def test_run_timeout_is_a_server_error() -> None:
    with pytest.raises(ServerError, match=r"server local: .sleep 5. did not finish within 1 s"):
        run(LOCAL, "sleep 5", timeout=1)


def test_run_remote_through_ssh(ssh: FakeSsh) -> None:
    proc = run(S2, TRICKY)
    assert proc.stdout == TRICKY_OUT
    assert ssh.calls == [command_argv(S2, TRICKY)[1:]]
    assert run(S2, "cat", input="stdin there\n").stdout == "stdin there\n"
    with pytest.raises(ServerError) as info:
        run(S2, "echo no >&2; exit 4")
    assert str(info.value) == ("server s2 (root@10.99.0.2): 'echo no >&2; exit 4' failed "
                               "(exit 4): no")


def test_run_remote_user_through_sudo(ssh: FakeSsh) -> None:
    assert run(S3, TRICKY).stdout == TRICKY_OUT  # quoted right for the shell there
    assert ssh.calls[0][-2] == "dsfc@node3.lab"
    assert ssh.sudo_calls == [f"-n sh -c {TRICKY}"]


def test_run_ssh_not_connecting(ssh: FakeSsh) -> None:
    ssh.fail(255)
    with pytest.raises(ServerError) as info:
        run(S2, "true")
    assert str(info.value) == ("server s2 (root@10.99.0.2): ssh failed: ssh: connect to "
                               "host 10.99.0.2 port 22: Connection refused")
    assert run(S2, "true", check=False).returncode == 255


# -- files ----------------------------------------------------------------------------------
def test_write_file_local_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "f.json"
    write_file(LOCAL, path, "one", mode=0o640)
    assert path.read_text() == "one" and mode_of(path) == 0o640
    with path.open() as old:
        write_file(LOCAL, path, "two", mode=0o600)
        assert old.read() == "one"  # replaced, not rewritten in place
    assert path.read_text() == "two" and mode_of(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]  # no .tmp left


def test_read_file_local(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("text\n")
    assert read_file(LOCAL, tmp_path / "f") == "text\n"
    assert read_file(LOCAL, tmp_path / "missing") is None
    assert read_file(LOCAL, tmp_path) is None  # a folder


def test_write_and_read_file_through_ssh(ssh: FakeSsh, tmp_path: Path) -> None:
    path = tmp_path / "there dir" / "it's.json"
    text = 'a "quoted" $VAR\nand \'single\'\n'
    write_file(S2, path, text, mode=0o604)
    assert path.read_text() == text and mode_of(path) == 0o604
    assert ssh.calls[-1][-2] == "root@10.99.0.2"
    write_file(S2, path, "again")
    assert path.read_text() == "again"
    assert sorted(p.name for p in path.parent.iterdir()) == ["it's.json"]
    assert read_file(S2, path) == "again"
    assert read_file(S2, tmp_path / "missing") is None
    assert read_file(S2, tmp_path) is None  # a folder is not a file
    assert len(ssh.calls) == 5


def test_files_through_ssh_not_connecting(ssh: FakeSsh, tmp_path: Path) -> None:
    ssh.fail(255)
    with pytest.raises(ServerError, match=r"^server s2 \(root@10.99.0.2\): ssh failed"):
        write_file(S2, tmp_path / "f", "x")
    with pytest.raises(ServerError, match=rf"^server s2 .*: cannot read {tmp_path}/f: ssh:"):
        read_file(S2, tmp_path / "f")
    assert not (tmp_path / "f").exists()


# -- push -----------------------------------------------------------------------------------
def _tree(root: Path) -> None:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "a.txt").chmod(0o600)
    (root / "dir" / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (root / "dir" / "sub" / "run.sh").chmod(0o751)
    (root / "dir" / "sub").chmod(0o750)
    (root / "dir" / "c").write_text("c")
    (root / "not pushed").write_text("n")


def test_push_copies_files_and_folders_with_modes(ssh: FakeSsh, tmp_path: Path) -> None:
    root, there = tmp_path / "run", tmp_path / "server" / "run"
    _tree(root)
    ssh.map(root, there)
    push(S2, root, ["a.txt", "dir"])
    assert sorted(str(p.relative_to(there)) for p in there.rglob("*")) == [
        "a.txt", "dir", "dir/c", "dir/sub", "dir/sub/run.sh"]
    assert (there / "a.txt").read_text() == "a"
    assert (there / "dir" / "c").read_text() == "c"
    assert mode_of(there / "a.txt") == 0o600
    assert mode_of(there / "dir" / "sub" / "run.sh") == 0o751
    assert mode_of(there / "dir" / "sub") == 0o750
    # one ssh call, to the same path there
    [call] = ssh.calls
    assert call[-2:] == ["root@10.99.0.2",
                         f"mkdir -p {shlex.quote(str(root))} && "
                         f"tar -C {shlex.quote(str(root))} -xpf -"]


def test_push_nothing_or_to_this_machine_runs_nothing(ssh: FakeSsh, tmp_path: Path) -> None:
    push(S2, tmp_path, [])
    push(LOCAL, tmp_path, ["missing"])
    assert ssh.calls == []


def test_push_failing_there_is_a_server_error(ssh: FakeSsh, tmp_path: Path) -> None:
    root, there = tmp_path / "run", tmp_path / "server" / "run"
    _tree(root)
    there.parent.mkdir()
    there.write_text("a file where the folder should be")
    ssh.map(root, there)
    with pytest.raises(ServerError) as info:
        push(S2, root, ["a.txt", "dir"])
    assert str(info.value).startswith("server s2 (root@10.99.0.2): copying a.txt, dir "
                                      "failed: ")
    assert "File exists" in str(info.value)  # mkdir's, from there


def test_push_missing_file_here_is_a_server_error(ssh: FakeSsh, tmp_path: Path) -> None:
    root = tmp_path / "run"
    _tree(root)
    ssh.map(root, tmp_path / "server")
    with pytest.raises(ServerError, match=r"copying a.txt, nope failed: tar: nope: "):
        push(S2, root, ["a.txt", "nope"])


def test_push_ssh_not_connecting(ssh: FakeSsh, tmp_path: Path) -> None:
    root = tmp_path / "run"
    _tree(root)
    ssh.fail(255)
    with pytest.raises(ServerError, match=r"copying a.txt failed: .*Connection refused"):
        push(S2, root, ["a.txt"])


# -- ssh master: forwards and exit ------------------------------------------------------------
def test_forward_socket(ssh: FakeSsh, tmp_path: Path) -> None:
    local, remote = tmp_path / "here" / "p4rt.sock", Path("/run/dsfc/r1/p4rt-B.sock")
    forward_socket(S2, local, remote)
    assert ssh.calls == [[*ssh_options(), "-O", "forward", "-L", f"{local}:{remote}",
                          "root@10.99.0.2"]]
    assert local.parent.is_dir()  # ssh makes the socket, in an existing folder
    forward_socket(LOCAL, local, remote)
    assert len(ssh.calls) == 1
    ssh.fail(255)
    with pytest.raises(ServerError, match=rf"server s2 .*: forwarding {remote}: ssh: connect"):
        forward_socket(S2, local, remote)


def test_close_master(ssh: FakeSsh) -> None:
    close_master(LOCAL)
    close_master(S3)
    assert ssh.calls == [[*ssh_options(), "-O", "exit", "dsfc@node3.lab"]]
    ssh.fail(255)
    close_master(S3)  # nothing to close: no error


# -- clean_remote -----------------------------------------------------------------------------
def test_clean_remote_runs_runstate_there(ssh: FakeSsh, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # "there" has an empty run root: the real command runs and cleans nothing
    monkeypatch.setenv("DSFC_RUN_ROOT", str(tmp_path / "runs"))
    assert clean_remote(S2, "0101000000beef") is None
    [call] = ssh.calls
    assert call[-1] == python_cmd("topologies.runstate", "--run", "0101000000beef", "--force")


def test_clean_remote_returns_what_went_wrong(ssh: FakeSsh, tmp_path: Path) -> None:
    ssh.map(REPO, tmp_path / "no_checkout_there")
    problem = clean_remote(S2, "r1")
    assert problem is not None
    assert problem.startswith("server s2 (root@10.99.0.2): 'cd ")
    assert "--run r1 --force' failed (exit " in problem
    assert "no_checkout_there" in problem  # what cd said
    ssh.fail(255)
    problem = clean_remote(S2, "r1")
    assert problem is not None and "ssh failed" in problem


def test_fake_ssh_records_json_argv(ssh: FakeSsh, monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper itself: one JSON argv a line, environment passed to the command."""
    monkeypatch.setenv("FAKE_X", "y")
    assert run(S2, "echo $FAKE_X").stdout == "y\n"
    assert json.loads(ssh.log.read_text().splitlines()[0])[-1] == "echo $FAKE_X"
