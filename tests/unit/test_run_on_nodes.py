"""topologies.network.run_on_nodes: commands on several node shells at once."""

from __future__ import annotations

import subprocess

import pytest

from topologies.network import BuildError, NsNode, run_on_nodes


class FakeShell:
    """A node shell: sendCmd starts the command, waitOutput returns its output."""

    _checked = NsNode._checked
    running = 0
    most = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.sent: list[str] = []

    def sendCmd(self, cmd: str) -> None:  # noqa: N802 (Mininet API)
        assert self.proc is None, "a shell runs one command at a time"
        self.sent.append(cmd)
        self.proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, text=True)
        FakeShell.running += 1
        FakeShell.most = max(FakeShell.most, FakeShell.running)

    def waitOutput(self) -> str:  # noqa: N802
        assert self.proc is not None
        out, _ = self.proc.communicate()
        self.proc = None
        FakeShell.running -= 1
        return out


def test_all_run_width_at_a_time() -> None:
    FakeShell.running = FakeShell.most = 0
    nodes = [FakeShell(f"r{i}") for i in range(7)]
    run_on_nodes([(n, f"sleep 0.05; echo {n.name}") for n in nodes], width=3)
    assert [n.sent[0].split("; echo __rc")[0] for n in nodes] == \
        [f"sleep 0.05; echo r{i}" for i in range(7)]
    assert FakeShell.most == 3 and FakeShell.running == 0


def test_a_failure_is_raised_after_every_shell_was_read() -> None:
    FakeShell.running = FakeShell.most = 0
    nodes = [FakeShell(f"r{i}") for i in range(4)]
    cmds = [(n, "echo fine") for n in nodes]
    cmds[1] = (nodes[1], "echo 'ospfd: bad config' >&1; false")
    with pytest.raises(BuildError, match=r"r1: 'echo 'ospfd: bad config' >&1; false' "
                                         r"failed: ospfd: bad config"):
        run_on_nodes(cmds, width=4)
    assert FakeShell.running == 0  # the other shells were read: they are usable again
    assert all(n.proc is None for n in nodes)
