"""``python -m topologies``: check, bring up, inspect and clean emulated networks."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from dmano.yamlconf import ConfigError
from topologies import addressing as addr
from topologies import central, runstate
from topologies.frr import FrrError, RouterPaths
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
                  connectors=full, central=params if full else None)
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


def find_router(node: str, run_id: str | None = None) -> RouterPaths:
    runs = [r for r in runstate.list_runs() if run_id in (None, r.run_id)]
    live = [r for r in runs if r.owner_alive()] or runs
    if not live:
        raise SystemExit("no running topology (start one with: python -m topologies up FILE)")
    if len(live) > 1:
        ids = ", ".join(r.run_id for r in live)
        raise SystemExit(f"several runs are up ({ids}): choose one with --run")
    name = node if node.startswith("r") and (live[0].folder / node).is_dir() else f"r{node}"
    folder = live[0].folder / name
    if not folder.is_dir():
        raise SystemExit(f"no router {name} in run {live[0].run_id}")
    return RouterPaths(folder)


def cmd_vtysh(args: argparse.Namespace) -> int:
    paths = find_router(args.node, args.run)
    argv = paths.vtysh_args(*args.command)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, FrrError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
