"""``python -m dmano.central``: run the centralized baseline orchestrator, or check its
configuration.

    python -m dmano.central --config central.yaml          # run (SIGTERM / Ctrl-C stop,
                                                           # SIGUSR1 reloads the policy)
    python -m dmano.central check --config central.yaml    # validate, print a summary

It follows the LSDB of the router whose OSPF API is ``ospf_api`` (TCP 2607): start it
where that address reaches ospfd (in an emulated run, the router's network namespace;
ospfd's API answers on loopback only). Everything else (polls, P4Runtime on unix
sockets) goes through the management plane, not the emulated network.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from dmano.yamlconf import ConfigError

log = logging.getLogger("dmano.central")


def run(config: Path) -> int:
    from dmano.central.config import load_central_config
    from dmano.central.orchestrator import Orchestrator, make_writers
    from dmano.ospf_api import OspfApiUnavailableError
    from dmano.policy import load_policy

    cfg = load_central_config(config)
    policy = load_policy(cfg.policy)
    writers = make_writers(cfg)
    try:
        orch = Orchestrator(cfg, policy, writers)
    except OspfApiUnavailableError as exc:
        log.error("%s", exc)
        return 1
    except ValueError as exc:  # a node's classifier does not fit its connector
        raise ConfigError(cfg.path, None, "nodes", str(exc)) from None
    log.info("central orchestrator: %d node(s), objective %s, policy %s, poll period "
             "%.2f s, management RTT %.0f ms, LSDB from %s", len(cfg.nodes), cfg.objective,
             policy.name, cfg.poll_period_s, cfg.mgmt_rtt_ms, cfg.ospf_api)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, orch.reload_policy)
        await orch.run(stop)

    try:
        asyncio.run(main())
    finally:
        for w in writers.values():
            try:
                w.close()
            except Exception as exc:  # the channel may be broken already
                log.debug("closing a connector client: %s", exc)
    log.info("central orchestrator stopped")
    return 0


def check(config: Path) -> int:
    from dmano.central.config import load_central_config
    from dmano.connector_state import desired_state
    from dmano.policy import load_policy

    cfg = load_central_config(config)
    policy = load_policy(cfg.policy)
    for n in cfg.nodes:
        try:
            desired_state(n, {})
        except ValueError as exc:
            raise ConfigError(n.path, None, "classifier", str(exc)) from None
    instances = sum(len(n.instances) for n in cfg.nodes)
    print(f"{config}: {len(cfg.nodes)} node(s), {instances} instance(s), objective "
          f"{cfg.objective}, policy {policy.name}, poll period {cfg.poll_period_s:g} s, "
          f"management RTT {cfg.mgmt_rtt_ms:g} ms OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmano.central", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", default="run", choices=["run", "check"])
    p.add_argument("--config", type=Path, required=True,
                   help="orchestrator configuration (YAML)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dmano").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return check(args.config) if args.action == "check" else run(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
