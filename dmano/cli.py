"""``python -m dmano``: run the D-MANO of one NFV node, or show its service tables.

    python -m dmano --config node.yaml            # run (until SIGTERM / Ctrl-C;
                                                  # SIGUSR1 reloads the policy file)
    python -m dmano show --config node.yaml       # service tables of the running daemon
    python -m dmano show --status dmano.json --json
    python -m dmano check --config node.yaml      # validate config + policy
    python -m dmano drain INSTANCE [--force]      # no new flows to INSTANCE; its
                                                  # existing flows stay
    python -m dmano undrain INSTANCE              # INSTANCE takes new flows again

drain / undrain find the D-MANO owning INSTANCE with --config node.yaml or --socket
PATH, or else by scanning the status files under $DSFC_RUN_ROOT (default /run/dsfc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dmano.config import load_node_config
from dmano.yamlconf import ConfigError

log = logging.getLogger("dmano")


def run(config: Path, verbose: bool) -> int:
    from dmano.connector_client import make_writer
    from dmano.daemon import Dmano, check_connector_config
    from dmano.ospf_api import OspfApiUnavailableError
    from dmano.policy import load_policy

    cfg = load_node_config(config)
    policy = load_policy(cfg.policy)
    check_connector_config(cfg)  # a config error stops here, never retried as a write
    try:
        writer = make_writer(cfg.connector)
        daemon = Dmano(cfg, policy, writer)
    except OspfApiUnavailableError as exc:
        log.error("%s", exc)
        return 1
    log.info("D-MANO of node %s (router id %s), policy %s, period %.1f s, connector %s",
             cfg.node, cfg.router_id, policy.name, policy.period_s, writer.kind)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, daemon.reload_policy)
        await daemon.run(stop)

    from dmano.control_server import SocketInUseError

    try:
        asyncio.run(main())
    except SocketInUseError as exc:
        log.error("%s", exc)
        return 1
    finally:
        writer.close()
    log.info("D-MANO of node %s stopped", cfg.node)
    return 0


def load_status(args: argparse.Namespace) -> dict[str, Any]:
    path = args.status
    if path is None:
        path = load_node_config(args.config).status_file
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"no status file {path}: is the D-MANO running?") from None


def render_status(st: dict[str, Any]) -> str:
    from ipaddress import IPv4Address

    from dmano.model import InstanceState
    from dmano.service_plane import Candidate, render_tables

    tables = {}
    for svc in st.get("services", []):
        rows = []
        for c in svc["candidates"]:
            rows.append(Candidate(
                adv_router=IPv4Address(c["adv_router"]), instance_id=c["instance_id"],
                name=c["name"], endpoint=IPv4Address(c["endpoint"]),
                network_cost=c["network_cost"], vnf_cost=c["vnf_cost"],
                path_cost=c["path_cost"], weight=c["weight"], local=c["local"],
                state=InstanceState[c["state"].upper()], share=c["share"],
                anycast=IPv4Address(c["anycast"]) if c.get("anycast") else None))
        tables[svc["service_id"]] = rows
    names = {int(k): v for k, v in st.get("service_names", {}).items()}
    age = time.time() - st.get("updated", 0)
    api = st.get("ospf_api", {})
    conn = st["connector"]
    who = ("" if st.get("control") != "centralized" else
           f" [centralized: tables from the orchestrator {st.get('orchestrator', '')}, "
           f"objective {st.get('objective')}]")
    head = (f"node {st['node']} (router id {st['router_id']}), policy {st['policy']}, "
            f"{'running' if st.get('running') else 'STOPPED'}, status {age:.1f} s old"
            f"{who}\n"
            f"OSPF API {'connected' if api.get('connected') else 'DISCONNECTED'}"
            f"{_api_trouble(api)}, "
            f"LSDB: {st['lsdb']['routers']} routers, {st['lsdb']['instances']} VNF "
            f"announcements, malformed {st['lsdb']['malformed'] or 'none'}; connector "
            f"{conn['kind']} ({conn['writes']} writes"
            f"{', error: ' + conn['last_error'] if conn['last_error'] else ''})\n")
    local = st.get("local_instances", {})
    if local:
        head += "local instances: " + ", ".join(
            f"{n} {'up' if i['up'] else 'DOWN (' + i['reason'] + ')'}"
            + (" DRAINING" if i.get("drained") else "")
            + (f" load {i['load']:.0f} cost {i['cost']}" if i["up"] else "")
            + (f" [{i['bad_counters']} bad counters reads]" if i.get("bad_counters") else "")
            + (" STARVING" if i.get("starving") else "")
            + (f" [starved {i['starved']}x]" if i.get("starved") else "")
            for n, i in sorted(local.items())) + "\n"
    return head + "\n" + render_tables(tables, names)


def _api_trouble(api: dict[str, Any]) -> str:
    """What went wrong with the OSPF API session, if anything ("" when all is well)."""
    parts = []
    if api.get("failures"):
        parts.append(f"{api['failures']} session failure(s)")
    if api.get("session_restarts"):
        parts.append(f"{api['session_restarts']} session restart(s)")
    if api.get("last_error"):
        parts.append(f"last error: {api['last_error']}")
    if api.get("pending_withdrawals"):
        parts.append(f"withdrawals pending for instance(s) {api['pending_withdrawals']}")
    return f" ({'; '.join(parts)})" if parts else ""


def control_command(args: argparse.Namespace) -> int:
    """drain / undrain INSTANCE on the D-MANO that owns it (see the module docstring)."""
    from dmano.control import ControlError, request
    from dmano.locate import LocateError, find_owner

    instance: str = args.instance
    try:
        if args.socket is not None:
            sock = args.socket
        elif args.config is not None:
            cfg = load_node_config(args.config)
            names = sorted(inst.name for inst in cfg.instances)
            if instance not in names:
                print(f"error: unknown instance {instance!r} in {args.config} (known: "
                      f"{', '.join(names) or 'none'})", file=sys.stderr)
                return 1
            sock = cfg.control_path
        else:
            sock = find_owner(instance).socket
        answer = request(sock, args.action, instance, force=args.force,
                         timeout=args.timeout)
    except (ControlError, LocateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    node = answer.get("node", "?")
    if not answer["ok"]:
        print(f"error: node {node}: {answer.get('error', 'refused')}", file=sys.stderr)
        return 1
    print(f"node {node}: {answer.get('message', answer.get('state', 'done'))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmano", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", default="run",
                   choices=["run", "show", "check", "drain", "undrain"])
    p.add_argument("instance", nargs="?", help="drain / undrain: the instance's name")
    p.add_argument("--config", type=Path, help="node configuration (YAML)")
    p.add_argument("--status", type=Path, help="status file (show)")
    p.add_argument("--json", action="store_true", help="show: print the raw JSON status")
    p.add_argument("--socket", type=Path, help="drain / undrain: the D-MANO's control socket")
    p.add_argument("--force", action="store_true",
                   help="drain even the last instance of a service taking new flows")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="drain / undrain: seconds to wait for the answer (5)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dmano").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.instance is not None and args.action not in ("drain", "undrain"):
        p.error(f"{args.action} takes no instance name")
    try:
        if args.action in ("drain", "undrain"):
            if args.instance is None:
                p.error(f"{args.action} needs an instance name")
            if args.force and args.action == "undrain":
                p.error("--force is for drain")
            return control_command(args)
        if args.action == "show":
            if args.config is None and args.status is None:
                p.error("show needs --config or --status")
            st = load_status(args)
            print(json.dumps(st, indent=1) if args.json else render_status(st))
            return 0
        if args.config is None:
            p.error("--config is required")
        if args.action == "check":
            from dmano.daemon import check_connector_config
            from dmano.policy import load_policy

            cfg = load_node_config(args.config)
            pol = load_policy(cfg.policy)
            check_connector_config(cfg)
            print(f"{args.config}: node {cfg.node}, {len(cfg.instances)} instance(s), "
                  f"policy {pol.name} OK")
            return 0
        return run(args.config, args.verbose)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
