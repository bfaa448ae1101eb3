"""``servers check``: the probe script, its parsing and the reports, with a fake runner
(no ssh); plus the real probe script run on this machine with ``sh -c``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dmano.yamlconf import loads_yaml
from topologies import cli, servercheck
from topologies.servercheck import (
    LOCAL,
    check_servers,
    format_reports,
    parse_probe_output,
    probe_script,
    probes,
    problems_text,
)
from topologies.servers import REPO, ServerError, ServerSpec
from topologies.spec import parse_topology
from topologies.version import version_line

NODES = """\
nodes: [{name: A}, {name: B}]
links: [{a: A, b: B, cost: 1}]
"""
SERVERS = """\
servers:
  - {name: main, address: localhost}
  - {name: s2, address: 10.99.0.2}
"""
MAIN = ServerSpec("main", "localhost")
S2 = ServerSpec("s2", "10.99.0.2")


def topo(text: str = NODES + SERVERS):
    return parse_topology(loads_yaml(text, "t.yaml"), Path("t.yaml"))


def proc(stdout: str = "", stderr: str = "", rc: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], rc, stdout, stderr)


class FakeRunner:
    """Answers the probe script with every tool found except ``missing`` (per server
    name), and the version command with ``versions[name]`` (default: ours)."""

    def __init__(self, t, missing: dict[str, set[str]] | None = None,
                 versions: dict[str, str] | None = None,
                 special: dict[str, subprocess.CompletedProcess[str]] | None = None):
        self.topo = t
        self.missing = missing or {}
        self.versions = versions or {}
        self.special = special or {}
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, server: ServerSpec, cmd: str, timeout: float = 30,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append((server.name, cmd, check))
        if server.name in self.special:
            return self.special[server.name]
        if cmd.endswith("topologies version"):
            return proc(self.versions.get(server.name, version_line()) + "\n")
        lines = []
        for p in probes(self.topo, server):
            gone = p.name in self.missing.get(server.name, set())
            lines.append(f"{p.name}=missing" if gone else f"{p.name}=ok /usr/bin/{p.name}")
        return proc("\n".join(lines) + "\n")


def by_name(reports):
    return {r.server.name: r for r in reports}


def test_all_ready():
    t = topo()
    runner = FakeRunner(t)
    reports = check_servers(t, runner=runner)
    assert [r.server for r in reports] == [MAIN, S2]
    assert all(r.ok for r in reports)
    assert all(not check for _, _, check in runner.calls)
    # one probe per server, plus the version on the remote one only
    assert sorted(name for name, _, _ in runner.calls) == ["main", "s2", "s2"]
    s2 = by_name(reports)["s2"]
    names = [c.name for c in s2.checks]
    assert names[0] == "ssh" and names[-1] == "version"
    assert {"sudo", "mnexec", "zebra", "ospfd", "bfdd", "vtysh", "clang", "bpftool", "ip",
            "tc", "nft", "ethtool", "python", "checkout"} <= set(names)
    assert "ssh" not in [c.name for c in by_name(reports)["main"].checks]
    text = format_reports(reports)
    assert "server s2 (root@10.99.0.2)\n" in text
    assert "server main (this machine)\n" in text
    assert "  sudo      ok /usr/bin/sudo" in text
    assert text.endswith("all 2 server(s) ready")


def test_missing_sudo_is_named_with_the_reason():
    t = topo()
    reports = check_servers(t, runner=FakeRunner(t, missing={"s2": {"sudo", "nft"}}))
    main, s2 = reports
    assert main.ok
    assert s2.problems == [
        "sudo: not on PATH (Mininet Cluster Edition runs 'sudo -E mnexec' there; "
        "apt install sudo)",
        "nft: not on PATH (the routers' and connectors' filters; apt install nftables)",
    ]
    text = format_reports(reports)
    assert "  sudo      MISSING not on PATH (Mininet Cluster Edition" in text
    assert text.endswith("1 of 2 server(s) not ready: s2")
    assert problems_text(reports).startswith("server s2 (root@10.99.0.2): sudo: not on PATH")


def test_missing_frr_daemon_and_python():
    t = topo()
    reports = check_servers(t, runner=FakeRunner(t, missing={"s2": {"bfdd", "python"}}))
    problems = by_name(reports)["s2"].problems
    assert problems[0] == ("bfdd: FRR daemon not in /usr/lib/frr or /usr/sbin "
                           "(apt install frr frr-pythontools)")
    assert problems[1].startswith(f"python: {sys.executable} not found")
    assert len(problems) == 2  # no version check without the interpreter


def test_bfdd_only_with_bfd_and_bmv2_tools():
    t = topo(NODES + SERVERS + "ospf: {bfd: off}\nconnector: bmv2\n")
    names = [p.name for p in probes(t, S2)]
    assert "bfdd" not in names and "clang" not in names
    assert "simple_switch_grpc" in names


def test_unreachable_server_is_one_problem():
    t = topo()
    ssh_said = "ssh: connect to host 10.99.0.2 port 22: No route to host"
    runner = FakeRunner(t, special={"s2": proc("", ssh_said + "\r\n", 255)})
    main, s2 = check_servers(t, runner=runner)
    assert main.ok
    assert s2.problems == [f"ssh: cannot connect to root@10.99.0.2: {ssh_said}"]
    assert [n for n, _, _ in runner.calls].count("s2") == 1  # nothing else tried


def test_server_that_does_not_answer_in_time():
    t = topo()

    def runner(server, cmd, timeout=30, check=True):
        if server.name == "s2":
            raise ServerError(f"server {server}: '{cmd}' did not finish within 30 s")
        return FakeRunner(t)(server, cmd, timeout, check)

    s2 = check_servers(t, runner=runner)[1]
    assert s2.problems == [f"ssh: cannot connect to root@10.99.0.2: no answer within "
                           f"{servercheck.PROBE_TIMEOUT_S} s"]


def test_sudo_password_needed_for_a_non_root_user():
    t = topo(NODES + "servers:\n  - {name: s3, address: 10.99.0.3, user: dsfc}\n")
    msg = "sudo: a password is required"
    [r] = check_servers(t, runner=FakeRunner(t, special={"s3": proc("", msg, 1)}))
    assert len(r.problems) == 1
    assert r.problems[0].startswith(f"sudo: dsfc cannot run commands as root there with "
                                    f"'sudo -n' ({msg}); dsfc runs everything there as root")


def test_version_mismatch_reports_both_lines():
    t = topo()
    here = version_line()
    there = "dsfc 0.1.0 000000000000"
    reports = check_servers(t, runner=FakeRunner(t, versions={"s2": there}))
    assert by_name(reports)["s2"].problems == [
        f"version: differs: here '{here}', there '{there}' (run the same checkout at "
        f"{REPO} on every server)"]


def test_version_command_failing():
    t = topo()

    def runner(server, cmd, timeout=30, check=True):
        if cmd.endswith("topologies version"):
            return proc("", "ModuleNotFoundError: No module named 'yaml'\n", 1)
        return FakeRunner(t)(server, cmd, timeout, check)

    [problem] = check_servers(t, runner=runner)[1].problems
    assert problem == ("version: 'python -m topologies version' failed there (exit 1): "
                       "ModuleNotFoundError: No module named 'yaml'")


def test_no_servers_checks_this_machine_without_sudo():
    t = topo(NODES)
    runner = FakeRunner(t)
    [r] = check_servers(t, runner=runner)
    assert r.server == LOCAL and r.server.local and r.ok
    assert "sudo" not in [c.name for c in r.checks]
    assert "version" not in [c.name for c in r.checks]
    assert len(runner.calls) == 1
    # with remote servers the local one needs sudo too (Mininet CE's ssh runs under it)
    assert "sudo" in [p.name for p in probes(topo(), MAIN)]


def test_parse_probe_output():
    plist = probes(topo(), S2)
    out = "junk\nsudo=ok /usr/bin/sudo\nmnexec=missing\n"
    results = {r.name: r for r in parse_probe_output(out, plist)}
    assert results["sudo"].ok and results["sudo"].detail == "/usr/bin/sudo"
    assert not results["mnexec"].ok
    assert results["mnexec"].detail.startswith("not on PATH (Mininet starts")
    assert not results["zebra"].ok
    assert results["zebra"].detail.startswith("no answer from the probe script")
    assert [r.name for r in parse_probe_output(out, plist)] == [p.name for p in plist]


def test_the_probe_script_runs_here():
    """The real script through sh -c on this machine: harmless (command -v and test)."""
    t = topo()
    plist = probes(t, S2)
    script = probe_script(plist)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == len(plist)
    results = {r.name: r for r in parse_probe_output(done.stdout, plist)}
    assert all("no answer" not in r.detail for r in results.values())
    assert results["python"].ok and results["python"].detail == sys.executable
    assert results["checkout"].ok
    # a tool that certainly is not there is reported missing
    fake = servercheck.Probe("nosuch", ("command", "-v", "dsfc-no-such-tool"), "gone")
    out = subprocess.run(["sh", "-c", probe_script([fake])], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    assert out == "nosuch=missing\n"


def test_local_check_through_servers_run():
    """check_servers with the real runner on a topology without servers: sh -c here."""
    [r] = check_servers(topo(NODES))
    assert {c.name for c in r.checks} >= {"mnexec", "python", "checkout"}
    assert all("no answer" not in c.detail for c in r.checks)


def test_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]):
    good = tmp_path / "good.yaml"
    good.write_text(NODES + SERVERS)
    t = topo(NODES + SERVERS)
    fake = FakeRunner(t)
    real = servercheck.check_servers
    monkeypatch.setattr(servercheck, "check_servers", lambda tp: real(tp, runner=fake))
    assert cli.main(["servers", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith("all 2 server(s) ready")
    fake.missing = {"main": {"mnexec"}}
    assert cli.main(["servers", "check", str(good)]) == 1
    out = capsys.readouterr().out
    assert "  mnexec    MISSING not on PATH" in out
    assert out.strip().endswith("1 of 2 server(s) not ready: main")
    bad = tmp_path / "bad.yaml"
    bad.write_text(NODES + "placement: {rule: min-cut}\n")
    assert cli.main(["servers", "check", str(bad)]) == 2
    assert "placement needs a 'servers' list" in capsys.readouterr().err
    alone = tmp_path / "alone.yaml"
    alone.write_text(NODES)
    fake.topo = topo(NODES)
    fake.missing = {}
    assert cli.main(["servers", "check", str(alone)]) == 0
    assert "names no servers: checking this machine only" in capsys.readouterr().out
