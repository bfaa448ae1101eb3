"""The interactive Mininet CLI, with a few dsfc commands added."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from mininet.cli import CLI


class DsfcCLI(CLI):
    """Mininet's CLI (``rA ping 10.2.100.10``, ``h1 ip addr``, ...) plus:

    - ``vtysh <node> [command]``: FRR shell of node's router (interactive without a command)
    - ``routers``: one line per router with its OSPF neighbours
    - ``dmano [node]``: the service tables of the node's D-MANO (every node without one)
    """

    prompt = "dsfc> "

    def __init__(self, network: Any, **kwargs: Any):
        from mininet.log import setLogLevel

        self.network = network
        setLogLevel("output")  # the CLI prints node output at Mininet's "output" level
        super().__init__(network.net, **kwargs)

    def do_vtysh(self, line: str) -> None:
        """vtysh <node> [command...]: run vtysh on a router (interactive if no command)."""
        node, _, command = line.strip().partition(" ")
        handle = self.network.routers.get(node.removeprefix("r")) if node else None
        if handle is None:
            self.stdout.write(f"usage: vtysh <node> [command]; nodes: "
                              f"{' '.join(self.network.routers)}\n")
            return
        args = handle.paths.vtysh_args(command) if command else handle.paths.vtysh_args()
        subprocess.run(args, check=False)

    def do_routers(self, _line: str) -> None:
        """routers: OSPF neighbour summary of every router."""
        for node, handle in self.network.routers.items():
            self.stdout.write(f"--- r{node}\n")
            self.stdout.write(handle.vtysh("show ip ospf neighbor"))

    def do_dmano(self, line: str) -> None:
        """dmano [node]: service tables (candidates, costs, WCMP weights) of D-MANOs."""
        names = line.split() or [n.name for n in self.network.topo.nodes]
        for node in names:
            status = self.network.run_folder / f"r{node}" / "dmano.json"
            self.stdout.write(f"--- D-MANO of {node}\n")
            if not status.exists():
                self.stdout.write(f"no status file {status} (is its D-MANO running?)\n")
                continue
            out = subprocess.run([sys.executable, "-m", "dmano", "show", "--status",
                                  str(status)], capture_output=True, text=True, check=False)
            self.stdout.write(out.stdout + out.stderr)
