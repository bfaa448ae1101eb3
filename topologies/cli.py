"""``python -m topologies``: check, bring up, inspect and clean emulated networks, and
import real ones (Topology Zoo, SNDlib, GraphML, GML) as topology files."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dmano.yamlconf import ConfigError
from topologies import addressing as addr
from topologies import central, runstate
from topologies.frr import FrrError, RouterPaths
from topologies.importer import TopologyImportError
from topologies.spec import Topology, load_topology

log = logging.getLogger("topologies")


def summary(topo: Topology) -> str:
    lines = [f"topology {topo.name} ({topo.path}): {len(topo.nodes)} NFV nodes, "
             f"{len(topo.links)} links, {len(topo.instances)} VNF instances, "
             f"{len(topo.hosts)} hosts"]
    for n in topo.nodes:
        lines.append(f"  node {n.name}: router r{n.name} id {addr.router_id(n.index)}, "
                     f"connector c{n.name} NSH endpoint {addr.nsh_endpoint(n.index).ip}, "
                     f"hosts {addr.host_subnet(n.index)}")
    hosts = addr.host_addresses(topo)
    for h in topo.hosts:
        lines.append(f"  host {h.name} on {h.node}: {hosts[h.name]}")
    for lk in topo.links:
        la = addr.link_addressing(lk)
        lines.append(f"  link {lk.a}-{lk.b} cost {lk.cost}: {la.subnet}")
    for s in topo.servers:
        held = [n.name for n in topo.nodes if topo.placement[n.name] == s.name]
        lines.append(f"  server {s}: nodes {', '.join(held) or 'none'}")
    if topo.servers:
        cut = ", ".join(f"{lk.a}-{lk.b}" for lk in topo.cut_links())
        lines.append(f"  links between servers: {cut or 'none'}")
    return "\n".join(lines)


def _terminate_on_signals() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def cmd_up(args: argparse.Namespace) -> int:
    from dmano.policy import load_policy, resolve_policy
    from topologies.network import Network

    topo = load_topology(args.file)
    policy = None
    if args.policy is not None:
        policy = resolve_policy(args.policy)  # a name, or a path from the current folder
        load_policy(policy)  # a bad field fails here, naming file, line and field
    params = central_params(args, topo, policy)
    _terminate_on_signals()
    full = not args.bare
    net = Network(topo, policy=policy, dmano=full and params is None, vnfs=full,
                  connectors=full, central=params if full else None,
                  memory_check=not args.no_memory_check)
    try:
        t0 = time.monotonic()
        net.start(converge_timeout=args.timeout)
        print(summary(topo))
        control = "D-MANOs" if params is None else "the central orchestrator"
        what = ("routers only (--bare)" if args.bare else
                f"routers, {topo.connector} connectors, VNFs and {control}")
        print(f"{what} up in {time.monotonic() - t0:.1f} s; run folder {net.run_folder}")
        if full and params is not None:
            print(f"orchestrator: {central.status_file(net.run_folder)}, per-node tables "
                  f"{central.folder(net.run_folder)}/<node>.json")
        elif full:
            print(f"D-MANO state: {net.run_folder}/r<node>/dmano.json; connector logs: "
                  f"{net.run_folder}/c<node>/; VNF stats: {net.run_folder}/vnf/")
        print(f"router shell: python -m topologies vtysh <node>   "
              f"(or vtysh --vty_socket {net.run_folder}/r<node>)")
        if args.no_cli:
            print("running; Ctrl-C (or python -m topologies down) stops and cleans up")
            while True:
                time.sleep(3600)
        else:
            from topologies.mncli import DsfcCLI

            DsfcCLI(net)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        net.stop()
    return 0


def central_params(args: argparse.Namespace, topo: Topology,
                   policy: Path | None) -> central.CentralParams | None:
    """The orchestrator's parameters from ``up``'s options (None: distributed), checked
    before anything is created."""
    given = [o for o, v in (("--objective", args.objective), ("--poll-period",
             args.poll_period), ("--mgmt-rtt-ms", args.mgmt_rtt_ms),
             ("--central-router", args.central_router)) if v is not None]
    if args.control == "distributed":
        if given:
            raise ConfigError("<command line>", None, given[0],
                              "needs --control centralized")
        return None
    from dmano.policy import load_policy, shipped_policy

    period = args.poll_period
    if period is None:
        period = load_policy(policy or shipped_policy("paper")).period_s
    if not 0.05 <= period <= 3600:
        raise ConfigError("<command line>", None, "--poll-period",
                          f"expected seconds in 0.05..3600, got {period:g}")
    rtt = 0.0 if args.mgmt_rtt_ms is None else args.mgmt_rtt_ms
    if not 0 <= rtt <= 10_000:
        raise ConfigError("<command line>", None, "--mgmt-rtt-ms",
                          f"expected milliseconds in 0..10000, got {rtt:g}")
    names = [n.name for n in topo.nodes]
    if args.central_router is not None and args.central_router not in names:
        raise ConfigError("<command line>", None, "--central-router",
                          f"unknown node {args.central_router!r} (nodes: {', '.join(names)})")
    return central.CentralParams(objective=args.objective or "policy", poll_period_s=period,
                                 mgmt_rtt_ms=rtt, router=args.central_router)


def cmd_demo(args: argparse.Namespace) -> int:
    """Bring a topology up, show that it converged and carries traffic, tear it down."""
    from topologies.network import Network
    from topologies.readiness import ospf_route_costs

    topo = load_topology(args.file)
    _terminate_on_signals()
    t0 = time.monotonic()
    with Network(topo) as net:
        print(summary(topo))
        print(f"\nOSPF converged {time.monotonic() - t0:.1f} s after start "
              f"(run folder {net.run_folder})")
        print("\nOSPF cost from each router (rows) to each router's loopback (columns):")
        names = [n.name for n in topo.nodes]
        print("      " + "".join(f"{n:>7}" for n in names))
        for n in topo.nodes:
            costs = ospf_route_costs(net.routers[n.name])
            row = []
            for m in topo.nodes:
                c = 0 if m is n else costs.get(addr.loopback(m.index).network)
                row.append(f"{'-' if c is None else c:>7}")
            print(f"  r{n.name:<4}" + "".join(row))
        hosts = addr.host_addresses(topo)
        pairs = [(a, b) for a in topo.hosts for b in topo.hosts
                 if a.node != b.node and a.role != "sink" and b.role != "source"]
        if pairs:
            a, b = pairs[0]
            out = net.nodes[a.name].cmd(f"ping -c 3 -i 0.2 -W 2 {hosts[b.name].ip}")
            last = [ln for ln in out.splitlines() if "packets transmitted" in ln]
            print(f"\nping {a.name} ({hosts[a.name].ip}) -> {b.name} ({hosts[b.name].ip}): "
                  f"{last[0] if last else out.strip()}")
    print("stopped and cleaned up")
    return 0


def choose_run(run_id: str | None) -> runstate.Registry:
    """The run ``run_id``, or the only live run; several live runs: an error listing them."""
    runs = runstate.list_runs()
    if run_id is not None:
        for reg in runs:
            if reg.run_id == run_id:
                return reg
        known = ", ".join(r.run_id for r in runs) or "none"
        raise SystemExit(f"error: no run {run_id!r} (runs: {known})")
    live = [r for r in runs if r.owner_alive()]
    if not live:
        left = ", ".join(r.run_id for r in runs)
        raise SystemExit("error: no running topology" + (
            f" (left behind: {left}; make clean removes them)" if left else ""))
    if len(live) > 1:
        ids = "\n".join(f"  {r.run_id}: {r.topology} (PID {r.owner_pid})" for r in live)
        raise SystemExit(f"error: {len(live)} runs are up; say which one "
                         f"(python -m topologies down RUN_ID):\n{ids}")
    return live[0]


def cmd_down(args: argparse.Namespace) -> int:
    reg = choose_run(args.run_id)
    if reg.owner_alive() and reg.owner_pid != os.getpid():
        log.info("asking run %s (PID %d) to stop", reg.run_id, reg.owner_pid)
        os.kill(reg.owner_pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while reg.owner_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if reg.owner_alive():
            log.warning("run %s did not stop within %.0f s: cleaning it anyway",
                        reg.run_id, args.timeout)
    if reg.folder.exists():  # its builder cleans on SIGTERM; what is left goes here
        runstate.clean_run(reg)
    print(f"stopped run {reg.run_id}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    cleaned = runstate.clean(include_live=args.force)
    print(f"cleaned {len(cleaned)} run(s)" + (f": {', '.join(cleaned)}" if cleaned else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    runs = runstate.list_runs()
    if not runs:
        print("no runs")
    for reg in runs:
        state = "live" if reg.owner_alive() else "left behind (make clean removes it)"
        print(f"{reg.run_id}: {reg.topology} [{state}] folder {reg.folder}, "
              f"{len(reg.namespaces)} namespaces")
    return 0


def find_run(run_id: str | None = None) -> runstate.Registry:
    runs = [r for r in runstate.list_runs() if run_id in (None, r.run_id)]
    live = [r for r in runs if r.owner_alive()] or runs
    if not live:
        raise SystemExit("no running topology (start one with: python -m topologies up FILE)")
    if len(live) > 1:
        ids = ", ".join(r.run_id for r in live)
        raise SystemExit(f"several runs are up ({ids}): choose one with --run")
    return live[0]


def find_router(node: str, run_id: str | None = None) -> RouterPaths:
    run = find_run(run_id)
    name = node if node.startswith("r") and (run.folder / node).is_dir() else f"r{node}"
    folder = run.folder / name
    if not folder.is_dir():
        raise SystemExit(f"no router {name} in run {run.run_id}")
    return RouterPaths(folder)


def cmd_vtysh(args: argparse.Namespace) -> int:
    paths = find_router(args.node, args.run)
    argv = paths.vtysh_args(*args.command)
    server = find_run(args.run).server_of(paths.folder.name[1:])
    if server is not None:  # a router on another server: its vtysh there
        from topologies import servers

        spec = servers.ServerSpec(server["name"], server["address"], server.get("user", "root"))
        ssh = servers.ssh_argv(spec)
        os.execvp("ssh", [*ssh[:-1], "-t", ssh[-1], shlex.join(argv)])
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_check(args: argparse.Namespace) -> int:
    topo = load_topology(args.file)
    print(summary(topo))
    if topo.connector == "bmv2":
        from connector_p4.bmv2_build import missing_reason

        reason = missing_reason()
        print(f"connector: bmv2 cannot run on this machine: {reason}" if reason else
              "connector: bmv2 (p4c, simple_switch_grpc and simple_switch_CLI found)")
        return 1 if reason else 0
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    from topologies.version import version_line

    print(version_line())
    return 0


def cmd_servers_check(args: argparse.Namespace) -> int:
    """Check every server of a topology (this machine alone if it names none)."""
    from topologies.servercheck import check_servers, format_reports

    topo = load_topology(args.file)
    if not topo.servers:
        print(f"{topo.path} names no servers: checking this machine only")
    reports = check_servers(topo)
    print(format_reports(reports))
    return 0 if all(r.ok for r in reports) else 1


def cmd_import(args: argparse.Namespace) -> int:
    """Write a topology file (and with --scenario-out a scenario file) from a real network;
    a bad input is an error before anything is written."""
    from dmano.atomicfile import write_text_atomic
    from topologies import importer as imp

    out: Path = args.output
    scenario_out: Path | None = args.scenario_out
    if scenario_out is None:
        for opt, value in (("--demands", args.demands), ("--total-pps", args.total_pps)):
            if value is not None:
                raise TopologyImportError(f"{opt} applies to --scenario-out only")
    for path in (out, scenario_out):
        if path is not None and not path.absolute().parent.is_dir():
            raise TopologyImportError(f"{path}: no such folder {path.parent}")
    if scenario_out is not None and scenario_out.absolute() == out.absolute():
        raise TopologyImportError("--scenario-out must differ from -o")
    opts = imp.ImportOptions(
        cost=args.cost, length_unit_km=args.length_unit, reference_mbit=args.reference_bandwidth,
        cost_attribute=args.cost_attribute,
        services=tuple(imp.ServiceRequest.parse(s) for s in args.service),
        placement=args.placement, seed=args.seed, capacity=args.capacity,
        ingress=tuple(args.ingress), egress=tuple(args.egress),
        largest_component=args.largest_component,
        demands=None if scenario_out is None else (args.demands or imp.DEFAULT_DEMANDS),
        total_pps=args.total_pps or imp.DEFAULT_TOTAL_PPS,
        name=out.stem, command=_command(args.raw_argv),
        scenario_name=_scenario_name(scenario_out) if scenario_out else "",
        topology_ref=(Path(os.path.relpath(out.absolute(), scenario_out.absolute().parent))
                      .as_posix() if scenario_out else ""),
    )
    result = imp.import_topology(args.source, opts)
    warning = imp.memory_warning(len(result.nodes), imp.available_memory_mb())
    if warning:
        log.warning("%s", warning)
    write_text_atomic(out, result.topology_text)
    if scenario_out is not None and result.scenario_text is not None:
        write_text_atomic(scenario_out, result.scenario_text)
    per_service: dict[str, int] = {}
    for inst in result.instances:
        per_service[inst.service] = per_service.get(inst.service, 0) + 1
    services = ", ".join(f"{s} {n}" for s, n in per_service.items())
    hosts = ", ".join(f"{h} ({role} on {node})" for h, (node, role) in result.hosts.items())
    print(f"wrote {out}: {len(result.nodes)} NFV nodes, {len(result.links)} links, "
          f"{len(result.instances)} VNF instances ({services}), hosts {hosts}")
    if scenario_out is not None:
        print(f"wrote {scenario_out}: {len(result.demands)} traffic classes from the "
              "largest demands")
    print(f"validate it with: python -m topologies check {out}")
    return 0


def _scenario_name(path: Path) -> str:
    """The scenario file's stem if it is a valid scenario name, else a cleaned one."""
    from topologies.naming import clean_name

    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", path.stem):
        return path.stem
    return clean_name(path.stem, 32, prefix="S")


def _command(raw_argv: list[str]) -> str:
    """The import command as typed (without -v), for the generated file's header."""
    argv = list(raw_argv)
    if "import" in argv:
        argv = argv[argv.index("import"):]
    return "python -m topologies " + shlex.join(argv)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _int_in(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number in {lo}..{hi}, "
                                             f"got {text!r}")
        return value

    return parse


def _import_parser(sub: Any) -> None:
    from topologies import importer as imp

    im = sub.add_parser(
        "import", help="write a topology file from a real network (topohub key, GraphML "
                       "or GML file)",
        description="Convert a Topology Zoo / SNDlib / CAIDA network shipped with topohub "
                    "(e.g. topozoo/Abilene, sndlib/germany50) or a GraphML/GML file into a "
                    "topology file. Bad input exits 2 and writes nothing.")
    im.add_argument("source", help="topohub key group/name, or a .graphml/.gml file")
    im.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.yaml",
                    help="the topology file to write (its name is the topology's name)")
    im.add_argument("--cost", choices=imp.COST_RULES, default="length",
                    help="link cost: length (1 per --length-unit km; from the edge's dist/"
                         "length/distance, else great-circle from node coordinates), "
                         "capacity (--reference-bandwidth / capacity, as OSPF auto-cost), "
                         "unit (all 1); default length")
    im.add_argument("--length-unit", type=_positive, default=imp.DEFAULT_LENGTH_UNIT_KM,
                    metavar="KM", help="km per unit of cost for --cost length (default "
                                       f"{imp.DEFAULT_LENGTH_UNIT_KM:g})")
    im.add_argument("--reference-bandwidth", type=_positive,
                    default=imp.DEFAULT_REFERENCE_MBIT, metavar="MBIT",
                    help="reference bandwidth for --cost capacity in Mbit/s (default "
                         f"{imp.DEFAULT_REFERENCE_MBIT:g})")
    im.add_argument("--cost-attribute", metavar="NAME",
                    help="the edge attribute with the length (km) or capacity (Mbit/s)")
    im.add_argument("--service", action="append", default=[], metavar="NAME[:COUNT[:KIND]]",
                    help="a service, repeatable, in chain order (default FW and IDS; COUNT "
                         "default: one per 10 nodes, at least 2; KIND default from the "
                         "name: FW firewall, IDS ids, DPI dpi, else passthrough)")
    im.add_argument("--placement", choices=imp.PLACEMENTS, default="betweenness",
                    help="which nodes get the instances (default betweenness)")
    im.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=1,
                    help="seed of --placement random (default 1)")
    im.add_argument("--capacity", type=_int_in(1, 10_000_000), default=imp.DEFAULT_CAPACITY,
                    help=f"capacity of every instance (default {imp.DEFAULT_CAPACITY})")
    im.add_argument("--ingress", nargs="+", default=[], metavar="NODE",
                    help="ingress nodes (original or sanitised names; default: see --egress)")
    im.add_argument("--egress", nargs="+", default=[], metavar="NODE",
                    help="egress nodes (default: the two nodes farthest apart by link cost; "
                         "with one side given, the node farthest from it)")
    im.add_argument("--largest-component", action="store_true",
                    help="import the largest connected part of a disconnected graph")
    im.add_argument("--scenario-out", type=Path, metavar="FILE.yaml",
                    help="also write a scenario whose traffic is the largest demands of "
                         "the source's demand matrix (SNDlib)")
    im.add_argument("--demands", type=_int_in(1, 10_000), default=None, metavar="K",
                    help=f"how many demands (default {imp.DEFAULT_DEMANDS}); their end "
                         "nodes get hosts")
    im.add_argument("--total-pps", type=_positive, default=None, metavar="PPS",
                    help="packets/s of all demand traffic together (default "
                         f"{imp.DEFAULT_TOTAL_PPS:g})")
    im.set_defaults(func=cmd_import)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m topologies", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring up a topology (Mininet CLI unless --no-cli)")
    up.add_argument("file", type=Path)
    up.add_argument("--no-cli", action="store_true", help="run until Ctrl-C / SIGTERM")
    up.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for OSPF convergence (default 30 + 2/node)")
    up.add_argument("--bare", action="store_true",
                    help="routers, hosts and namespaces only: no connectors, VNFs, D-MANOs")
    up.add_argument("--no-memory-check", action="store_true",
                    help="bring it up even where the memory estimate says it does not fit")
    up.add_argument("--policy", default=None, metavar="NAME|FILE",
                    help="D-MANO policy: a shipped name (paper, inverse-cost, static) or "
                         "a policy file (default: paper)")
    up.add_argument("--control", choices=["distributed", "centralized"],
                    default="distributed",
                    help="distributed: a D-MANO per node (default); centralized: one "
                         "central orchestrator instead (the baseline, DESIGN §10)")
    up.add_argument("--objective", choices=list(central.OBJECTIVES), default=None,
                    help="centralized: the orchestrator's objective (default policy)")
    up.add_argument("--poll-period", type=float, default=None, metavar="S",
                    help="centralized: VNF poll period in seconds (default: the "
                         "policy's period)")
    up.add_argument("--mgmt-rtt-ms", type=float, default=None, metavar="MS",
                    help="centralized: management network round trip (default 0)")
    up.add_argument("--central-router", default=None, metavar="NODE",
                    help="centralized: the node whose router's LSDB it follows "
                         "(default: the first node)")
    up.set_defaults(func=cmd_up)
    dm = sub.add_parser("demo", help="bring up, show convergence and a ping, tear down")
    dm.add_argument("file", type=Path)
    dm.set_defaults(func=cmd_demo)
    dn = sub.add_parser("down", help="stop a running topology and clean up")
    dn.add_argument("run_id", nargs="?", default=None,
                    help="run id (python -m topologies status); default: the only live run")
    dn.add_argument("--timeout", type=float, default=60,
                    help="seconds to wait for the run to stop before cleaning it")
    dn.set_defaults(func=cmd_down)
    cl = sub.add_parser("clean", help="remove everything earlier runs left behind")
    cl.add_argument("--force", action="store_true", help="also runs whose builder still runs")
    cl.set_defaults(func=cmd_clean)
    sub.add_parser("status", help="list runs").set_defaults(func=cmd_status)
    vt = sub.add_parser("vtysh", help="open vtysh on a router of the running topology")
    vt.add_argument("node", help="NFV node name (A) or router name (rA)")
    vt.add_argument("command", nargs="*", help="vtysh commands (-c each); none: interactive")
    vt.add_argument("--run", help="run id, if several are up")
    vt.set_defaults(func=cmd_vtysh)
    ck = sub.add_parser("check", help="validate a topology file and print its address plan")
    ck.add_argument("file", type=Path)
    ck.set_defaults(func=cmd_check)
    _import_parser(sub)
    sub.add_parser("version", help="print 'dsfc VERSION TREE-HASH' (the hash of the source "
                                   "files: equal on servers running the same code)"
                   ).set_defaults(func=cmd_version)
    sv = sub.add_parser("servers", help="the servers a topology is spread over")
    svsub = sv.add_subparsers(dest="servers_cmd", required=True)
    sc = svsub.add_parser(
        "check", help="check that every server of a topology can run its nodes",
        description="For each server of the topology (this machine alone if it names "
                    "none): ssh without a password (remote ones), sudo, mnexec, FRR, the "
                    "connector's tools, iproute2, nftables, ethtool, this interpreter and "
                    "checkout at the same path and the same 'version' line. Exit 0 when "
                    "all are ready, 1 when one is not, 2 for a bad file.")
    sc.add_argument("file", type=Path)
    sc.set_defaults(func=cmd_servers_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, FrrError, TopologyImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
