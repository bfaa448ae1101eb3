"""``python -m dmano``: run the D-MANO of one NFV node, or show its service tables.

    python -m dmano --config node.yaml            # run (until SIGTERM / Ctrl-C;
                                                  # SIGUSR1 reloads the policy file)
    python -m dmano show --config node.yaml       # service tables of the running daemon
    python -m dmano show --status dmano.json --json
    python -m dmano check --config node.yaml      # validate config + policy
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

    try:
        asyncio.run(main())
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
    head = (f"node {st['node']} (router id {st['router_id']}), policy {st['policy']}, "
            f"{'running' if st.get('running') else 'STOPPED'}, status {age:.1f} s old\n"
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
            + (f" load {i['load']:.0f} cost {i['cost']}" if i["up"] else "")
            + (f" [{i['bad_counters']} bad counters reads]" if i.get("bad_counters") else "")
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmano", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", default="run", choices=["run", "show", "check"])
    p.add_argument("--config", type=Path, help="node configuration (YAML)")
    p.add_argument("--status", type=Path, help="status file (show)")
    p.add_argument("--json", action="store_true", help="show: print the raw JSON status")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dmano").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
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
