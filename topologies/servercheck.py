"""``python -m topologies servers check FILE``: can every server of a topology run its
share of the network?

Per server, one shell command (:func:`probe_script`: a ``NAME=ok PATH`` or
``NAME=missing`` line per tool) finds what a node needs there: sudo, mnexec, the FRR
daemons and vtysh, the connector's tools, iproute2, nftables, ethtool, sysctl, this
interpreter at the same path and the checkout at the same path. A remote server is
reached with ssh (``BatchMode``: a key, no password); the local one with ``sh -c``. A
second command compares ``python -m topologies version`` there with this machine's line
(for remote servers; the local one is the reference). The checks run in parallel, one
thread per server.

A topology without ``servers`` is checked as one local server named ``local``: the
command then tells whether this machine has what a single-machine run needs.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from topologies import servers as srv
from topologies.frr import FRR_DIRS
from topologies.servers import REPO, ServerError, ServerSpec
from topologies.spec import Topology
from topologies.version import version_line

log = logging.getLogger(__name__)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
PROBE_TIMEOUT_S = 30
VERSION_TIMEOUT_S = 60
LOCAL = ServerSpec("local", "localhost")
_LINE = re.compile(r"([a-z_0-9]+)=(ok|missing)(?: (.*))?")


@dataclass(frozen=True)
class Probe:
    """One thing a server needs: ``test`` (shell words: ``command -v NAME``, ``found
    EXECUTABLE...`` or ``exists FILE``) prints where it is found and succeeds, or fails;
    ``missing`` says what is wrong and how to fix it."""

    name: str
    test: tuple[str, ...]
    missing: str


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str  # where it was found, or what is wrong and how to fix it


@dataclass
class ServerReport:
    server: ServerSpec
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """``"NAME: what is missing and why"`` for every failed check."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.problems


def _on_path(name: str, why: str) -> Probe:
    return Probe(name, ("command", "-v", name), f"not on PATH ({why})")


def _frr_daemon(name: str) -> Probe:
    dirs = [str(d) for d in FRR_DIRS]
    return Probe(name, ("found", *(f"{d}/{name}" for d in dirs)),
                 f"FRR daemon not in {' or '.join(dirs)} (apt install frr frr-pythontools)")


def probes(topo: Topology, server: ServerSpec) -> list[Probe]:
    """What ``server`` needs to hold nodes of ``topo``."""
    out: list[Probe] = []
    remote_servers = any(not s.local for s in topo.servers)
    if not server.local:
        out.append(_on_path("sudo", "Mininet Cluster Edition runs 'sudo -E mnexec' there; "
                                    "apt install sudo"))
    elif remote_servers:
        out.append(_on_path("sudo", "Mininet Cluster Edition runs its ssh to the other "
                                    "servers as 'sudo -E -u USER ssh' here; apt install sudo"))
    out.append(_on_path("mnexec", "Mininet starts every node's shell with it; "
                                  "apt install mininet"))
    daemons = ["zebra", "ospfd"] + (["bfdd"] if topo.ospf.bfd is not None else [])
    out.extend(_frr_daemon(d) for d in daemons)
    out.append(_on_path("vtysh", "FRR's shell, used to configure and read the routers; "
                                 "apt install frr"))
    if topo.connector == "bmv2":
        out.append(_on_path("simple_switch_grpc", "the BMv2 connector's switch; see README "
                                                  "'The BMv2 target'"))
    else:
        out.append(_on_path("clang", "compiles the eBPF connector; "
                                     "apt install clang llvm libbpf-dev"))
        out.append(_on_path("bpftool", "inspects the eBPF connector's programs and maps; "
                                       "apt install bpftool"))
    out += [
        _on_path("ip", "apt install iproute2"),
        _on_path("tc", "link shaping and the eBPF connector's hooks; apt install iproute2"),
        _on_path("nft", "the routers' and connectors' filters; apt install nftables"),
        _on_path("ethtool", "turns off offloads on NSH links; apt install ethtool"),
        _on_path("sysctl", "apt install procps"),
        Probe("python", ("found", sys.executable),
              f"{sys.executable} not found: dsfc runs this interpreter at the same path on "
              f"every server (the same checkout and virtualenv at {REPO})"),
        Probe("checkout", ("exists", str(REPO / "topologies" / "cli.py")),
              f"no dsfc checkout at {REPO}: copy this one to the same path there"),
    ]
    return out


def _executable(test: tuple[str, ...]) -> tuple[str, ...]:
    return ("onpath", *test[2:]) if test[:2] == ("command", "-v") else test


def probe_script(probe_list: Sequence[Probe]) -> str:
    """A POSIX shell script printing ``NAME=ok WHERE`` or ``NAME=missing`` per probe."""
    lines = [
        'found() { for f in "$@"; do if [ -x "$f" ]; then echo "$f"; return 0; fi; done; '
        "return 1; }",
        'exists() { if [ -f "$1" ]; then echo "$1"; else return 1; fi; }',
        # command -v alone also names a file that is not executable (dash)
        'onpath() { p=$(command -v "$1") && [ -x "$p" ] && echo "$p"; }',
        'check() { n=$1; shift; if r=$("$@" 2>/dev/null); then echo "$n=ok $r"; '
        'else echo "$n=missing"; fi; }',
    ]
    lines += [f"check {p.name} {shlex.join(_executable(p.test))}" for p in probe_list]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def parse_probe_output(output: str, probe_list: Sequence[Probe]) -> list[CheckResult]:
    """The probe script's output -> one result per probe (in order); a probe without an
    answer line is a failed check saying so."""
    answers: dict[str, tuple[bool, str]] = {}
    for line in output.splitlines():
        m = _LINE.fullmatch(line.strip())
        if m:
            answers[m.group(1)] = (m.group(2) == "ok", (m.group(3) or "").strip())
    out = []
    for p in probe_list:
        if p.name not in answers:
            out.append(CheckResult(p.name, False, "no answer from the probe script "
                                                  f"(output: {_last_line(output)})"))
            continue
        ok, where = answers[p.name]
        out.append(CheckResult(p.name, ok, where if ok else p.missing))
    return out


def check_server(topo: Topology, server: ServerSpec, local_version: str,
                 runner: Runner = srv.run) -> ServerReport:
    """Probe ``server``; an unreachable remote server gives one ``ssh`` problem only."""
    report = ServerReport(server)
    probe_list = probes(topo, server)
    try:
        proc = runner(server, probe_script(probe_list), timeout=PROBE_TIMEOUT_S, check=False)
    except (ServerError, OSError) as exc:  # a timeout; or ssh's control folder (not root)
        why = (f"no answer within {PROBE_TIMEOUT_S} s" if isinstance(exc, ServerError)
               else str(exc))
        report.checks.append(
            CheckResult("probe", False, f"the probe script failed here: {why}") if server.local
            else CheckResult("ssh", False, f"cannot connect to {server.destination}: {why}"))
        return report
    output = (proc.stdout or "") + (proc.stderr or "")
    if not server.local:
        if proc.returncode == 255:
            report.checks.append(CheckResult(
                "ssh", False, f"cannot connect to {server.destination}: "
                              f"{_last_line(proc.stderr or proc.stdout)}"))
            return report
        if proc.returncode != 0 and server.user != "root":  # 'sudo -n sh -c' failed
            report.checks.append(CheckResult(
                "sudo", False, f"{server.user} cannot run commands as root there with "
                               f"'sudo -n' ({_last_line(output)}); dsfc runs everything "
                               "there as root: install sudo and add a NOPASSWD sudoers "
                               "rule, or use user root"))
            return report
        report.checks.append(CheckResult("ssh", True, f"{server.destination} (BatchMode)"))
    results = parse_probe_output(proc.stdout or "", probe_list)
    if proc.returncode != 0:
        results = [r if r.ok else CheckResult(r.name, False, f"{r.detail}; the probe "
                   f"exited {proc.returncode}: {_last_line(output)}") for r in results]
    report.checks.extend(results)
    usable = {r.name for r in results if r.ok} >= {"python", "checkout"}
    if not server.local and usable:
        report.checks.append(_check_version(server, local_version, runner))
    return report


def _check_version(server: ServerSpec, local_version: str, runner: Runner) -> CheckResult:
    cmd = srv.python_cmd("topologies", "version")
    try:
        proc = runner(server, cmd, timeout=VERSION_TIMEOUT_S, check=False)
    except (ServerError, OSError) as exc:
        return CheckResult("version", False, f"'python -m topologies version' there: {exc}")
    there = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0:
        return CheckResult("version", False, f"'python -m topologies version' failed there "
                                             f"(exit {proc.returncode}): "
                                             f"{_last_line(proc.stdout + proc.stderr)}")
    if there != local_version:
        return CheckResult("version", False, f"differs: here '{local_version}', there "
                                             f"'{there}' (run the same checkout at {REPO} "
                                             "on every server)")
    return CheckResult("version", True, there)


def servers_of(topo: Topology) -> tuple[ServerSpec, ...]:
    """The servers to check: the topology's, or this machine alone (:data:`LOCAL`)."""
    return topo.servers or (LOCAL,)


def check_servers(topo: Topology, runner: Runner = srv.run) -> list[ServerReport]:
    """Check every server of ``topo`` (in parallel; reports in the file's order)."""
    here = version_line()
    targets = servers_of(topo)
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        reports = list(pool.map(lambda s: check_server(topo, s, here, runner), targets))
    for r in reports:
        log.debug("server %s: %d problem(s)", r.server, len(r.problems))
    return reports


def problems_text(reports: Sequence[ServerReport]) -> str:
    """The problems of all servers, one line each naming the server (for an error)."""
    return "\n".join(f"server {r.server}: {p}" for r in reports for p in r.problems)


def format_reports(reports: Sequence[ServerReport]) -> str:
    """A table per server (``ok WHERE`` or ``MISSING what and why``) and a final line."""
    lines: list[str] = []
    for r in reports:
        lines.append(f"server {r.server}" + (" (this machine)" if r.server.local else ""))
        width = max((len(c.name) for c in r.checks), default=0)
        for c in r.checks:
            state = f"ok {c.detail}".rstrip() if c.ok else f"MISSING {c.detail}"
            lines.append(f"  {c.name:<{width}}  {state}")
    bad = [r for r in reports if not r.ok]
    if bad:
        names = ", ".join(r.server.name for r in bad)
        lines.append(f"{len(bad)} of {len(reports)} server(s) not ready: {names}")
    else:
        lines.append(f"all {len(reports)} server(s) ready")
    return "\n".join(lines)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"
