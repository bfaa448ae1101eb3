"""Readiness: poll the routers until OSPF has converged, with a deadline.

Converged means: on every router, every OSPF neighbour of the topology is Full, and
the routing table has a selected route to every loopback, connector subnet, host
subnet and router link of the topology. Never a fixed sleep.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network
from typing import Any, Protocol

from topologies import addressing as addr
from topologies.spec import Topology

log = logging.getLogger(__name__)

POLL_S = 0.25
WORKERS = 4  # vtysh processes at a time


class ConvergenceError(TimeoutError):
    pass


class Vtysh(Protocol):
    def vtysh(self, *commands: str, timeout: float = 10) -> str: ...


def expected_prefixes(topo: Topology) -> set[IPv4Network]:
    out: set[IPv4Network] = set()
    for n in topo.nodes:
        out.add(addr.loopback(n.index).network)
        out.add(addr.connector_subnet(n.index))
        out.add(addr.host_subnet(n.index))
    for lk in topo.links:
        out.add(addr.link_addressing(lk).subnet)
    return out


def expected_neighbors(topo: Topology, node: str) -> set[str]:
    rids = set()
    for lk in topo.links:
        if node in (lk.a, lk.b):
            peer = lk.b if lk.a == node else lk.a
            rids.add(str(addr.router_id(topo.node(peer).index)))
    return rids


def neighbor_states(router: Vtysh) -> dict[str, str]:
    data = _json(router.vtysh("show ip ospf neighbor json"))
    states: dict[str, str] = {}
    for rid, entries in data.get("neighbors", {}).items():
        for e in entries if isinstance(entries, list) else [entries]:
            states[rid] = str(e.get("nbrState", e.get("state", "?")))
    return states


def bfd_peers(router: Vtysh) -> dict[str, str]:
    """BFD peer address -> session status (up, down, init) of one router's bfdd."""
    data = _json(router.vtysh("show bfd peers json"))
    return {str(p.get("peer")): str(p.get("status", "?"))
            for p in (data if isinstance(data, list) else [])}


def expected_bfd_peers(topo: Topology, node: str) -> set[str]:
    """The neighbours' link addresses: OSPF asks bfdd for one session each."""
    out = set()
    for lk in topo.links:
        if node in (lk.a, lk.b):
            la = addr.link_addressing(lk)
            out.add(str((la.b_addr if lk.a == node else la.a_addr).ip))
    return out


def routes(router: Vtysh, protocol: str = "") -> dict[str, list[dict[str, Any]]]:
    cmd = f"show ip route {protocol} json" if protocol else "show ip route json"
    return _json(router.vtysh(cmd))


def ospf_route_costs(router: Vtysh) -> dict[IPv4Network, int]:
    """Prefix -> metric of the selected OSPF route installed by zebra."""
    out = {}
    for prefix, entries in routes(router, "ospf").items():
        for e in entries:
            if e.get("protocol") == "ospf" and e.get("selected"):
                out[IPv4Network(prefix)] = int(e["metric"])
    return out


def router_problems(topo: Topology, node: str, router: Vtysh,
                    want: set[IPv4Network]) -> list[str]:
    """What keeps one router from being converged (one vtysh process for all of it)."""
    cmds = ["show ip ospf neighbor json", "show ip route json"]
    if topo.ospf.bfd is not None:
        cmds.append("show bfd peers json")
    docs = _json_docs(router.vtysh(*cmds), len(cmds))
    issues: list[str] = []
    states: dict[str, str] = {}
    for rid, entries in docs[0].get("neighbors", {}).items():
        for e in entries if isinstance(entries, list) else [entries]:
            states[rid] = str(e.get("nbrState", e.get("state", "?")))
    for rid in sorted(expected_neighbors(topo, node)):
        st = states.get(rid)
        if st is None or not st.startswith("Full"):
            issues.append(f"r{node}: neighbour {rid} is {st or 'absent'}")
    if topo.ospf.bfd is not None:
        data = docs[2]
        peers = {str(p.get("peer")): str(p.get("status", "?"))
                 for p in (data if isinstance(data, list) else [])}
        for peer in sorted(expected_bfd_peers(topo, node)):
            if peers.get(peer) != "up":
                issues.append(f"r{node}: BFD session to {peer} is "
                              f"{peers.get(peer, 'absent')}")
    table = docs[1]
    have = {IPv4Network(p) for p, es in table.items() if any(e.get("selected") for e in es)}
    missing = sorted(want - have)
    if missing:
        shown = ", ".join(str(p) for p in missing[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        issues.append(f"r{node}: no route to {shown}{more}")
    return issues


def problems(topo: Topology, routers: Mapping[str, Vtysh]) -> list[str]:
    """What still keeps the network from being converged (empty list when it is): every
    router asked at once, a few vtysh processes at a time."""
    want = expected_prefixes(topo)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        per = pool.map(lambda item: router_problems(topo, item[0], item[1], want),
                       routers.items())
        return [issue for issues in per for issue in issues]


def wait_converged(topo: Topology, routers: Mapping[str, Vtysh], timeout: float) -> float:
    """Block until converged; return the seconds it took. Raise ConvergenceError.

    Routers found converged are not asked again until every one has been; then all are
    asked once more, so the result is one consistent look at the whole network."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    issues: list[str] = ["not polled yet"]
    pending = dict(routers)
    while time.monotonic() < deadline:
        issues = problems(topo, pending)
        if not issues and len(pending) == len(routers):
            took = time.monotonic() - t0
            log.info("OSPF converged in %.1f s (%d routers)", took, len(routers))
            return took
        if not issues:
            pending = dict(routers)  # the confirming look at every router
            continue
        failing = {i.split(":", 1)[0][1:] for i in issues}
        pending = {n: r for n, r in routers.items() if n in failing}
        time.sleep(POLL_S)
    raise ConvergenceError(f"OSPF did not converge within {timeout:.0f} s: " + "; ".join(issues))


def _json_docs(text: str, n: int) -> list[Any]:
    """The ``n`` JSON documents vtysh printed one after the other ({} for empty ones)."""
    dec = json.JSONDecoder()
    docs: list[Any] = []
    pos = 0
    while len(docs) < n:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            docs.append({})
            continue
        try:
            doc, pos = dec.raw_decode(text, pos)
        except ValueError as exc:
            raise ConvergenceError(f"unexpected vtysh output: {text[pos:pos + 200]!r}"
                                   ) from exc
        docs.append(doc)
    return docs


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConvergenceError(f"unexpected vtysh output: {text[:200]!r}") from exc
