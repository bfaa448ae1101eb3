"""The BMv2 connector target: ``simple_switch_grpc`` running ``connector.p4``.

What the eBPF target's P4Runtime server does at start-up is done here over the switch's
own P4Runtime server (PI) and its Thrift runtime CLI:

1. :func:`switch_command`: ``simple_switch_grpc --no-p4`` with the connector's ports
   (``-i P4PORT@IFNAME``), its P4Runtime server on a unix socket;
2. :func:`push_pipeline`: push the pipeline (p4c's BMv2 JSON + P4Info, from
   :mod:`connector_p4.bmv2_build`), write the start-up ``sff_config`` and what the kernel
   bridge does on the eBPF target: ``l2_forward`` entries between the hosts and the
   router's host interface, and a multicast group that floods broadcasts among them
   (PIPELINE.md table 6);
3. :func:`thrift_setup`: set the flow hash to CRC-32C (``crc32_custom`` parameters,
   PIPELINE.md "Flow hash") and deepen the egress queues.

The setup client uses election id 1 and disconnects, so the D-MANO (election id 10)
becomes the primary client afterwards, as with the eBPF server.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from connector_p4.bmv2_build import Artifacts
from dmano.macaddr import mac_to_int
from dmano.p4info import P4InfoIndex, encode_value
from dmano.pipeline_names import A_L2_MULTICAST, A_L2_OUT, A_SET_CONFIG, T_CONFIG, T_L2

log = logging.getLogger(__name__)

DEVICE_ID = 1
THRIFT_PORT = 9090
SETUP_ELECTION_ID = (0, 1)
FLOOD_GROUP = 1
QUEUE_DEPTH = 1024  # egress queue depth in packets (BMv2's default is 64)
PORT_ROUTER = 1
PORT_HOSTBRIDGE = 2
BROADCAST = "ff:ff:ff:ff:ff:ff"
PRIO_FLOOD = 20
PRIO_UNICAST = 10
# CRC-32C (Castagnoli): polynomial, initial remainder, final XOR, reflect data/remainder
CRC32C_PARAMS = ("0x1edc6f41", "0xffffffff", "0xffffffff", "true", "true")


class Bmv2SetupError(RuntimeError):
    pass


@dataclass
class Bmv2Connector:
    """What one BMv2 connector needs to know at start (PIPELINE.md "Ports")."""

    ports: dict[int, str]                 # P4 port -> interface name
    local_ip: IPv4Address                 # NSH endpoint of this connector
    router_mac: str                       # router's MAC on the conn link (behind port 1)
    local_mac: str                        # MAC of port 1
    hostbridge_mac: str                   # router's MAC on the hosts link (behind port 2)
    host_macs: dict[int, str] = field(default_factory=dict)  # host port -> host MAC


def switch_command(switch: str, ports: dict[int, str], grpc_addr: str,
                   device_id: int = DEVICE_ID, thrift_port: int = THRIFT_PORT) -> list[str]:
    """The switch's command line, to run inside the connector's network namespace.

    It runs in a mount namespace of its own with a sysfs of that network namespace: BMv2
    watches its ports in /sys/class/net/<port>/operstate, which the host's /sys (what
    ``nsenter --net`` keeps) does not have.
    """
    cmd = [switch, "--device-id", str(device_id), "--thrift-port", str(thrift_port),
           "--no-p4"]
    for port, ifname in sorted(ports.items()):
        cmd += ["-i", f"{port}@{ifname}"]
    own_sysfs = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -t sysfs sysfs /sys && exec "$@"', "bmv2"]
    return [*own_sysfs, *cmd, "--", "--grpc-server-addr", grpc_addr]


def l2_entries(conn: Bmv2Connector) -> list[tuple[int, str, str, int, int]]:
    """(ingress port, destination MAC, action, its parameter, priority) of ``l2_forward``.

    Between the hosts and the router's host interface: broadcast floods (group
    :data:`FLOOD_GROUP`), unicast goes to the port of its MAC. The router port and the VNF
    ports get nothing here (their non-NSH traffic is the kernel's: BMv2 drops its copy).
    """
    owners = {conn.hostbridge_mac: PORT_HOSTBRIDGE,
              **{mac: port for port, mac in conn.host_macs.items()}}
    out = []
    for ingress in [PORT_HOSTBRIDGE, *sorted(conn.host_macs)]:
        out.append((ingress, BROADCAST, A_L2_MULTICAST, FLOOD_GROUP, PRIO_FLOOD))
        for mac, port in owners.items():
            if port != ingress:
                out.append((ingress, mac, A_L2_OUT, port, PRIO_UNICAST))
    return out


def flood_ports(conn: Bmv2Connector) -> list[int]:
    return [PORT_HOSTBRIDGE, *sorted(conn.host_macs)]


def crc32_calculations(bmv2_json: Path) -> list[str]:
    """Names of the ``crc32_custom`` calculations in a compiled BMv2 JSON."""
    doc = json.loads(bmv2_json.read_text())
    return [c["name"] for c in doc.get("calculations", []) if c.get("algo") == "crc32_custom"]


# -- P4Runtime -----------------------------------------------------------------------------

def _action(ids: P4InfoIndex, target: Any, name: str, *values: int) -> None:
    a = ids.action(name)
    target.action_id = a.id
    for p, v in zip(a.params, values, strict=True):
        target.params.add(param_id=p.id, value=encode_value(v, p.bitwidth))


def _config_update(ids: P4InfoIndex, conn: Bmv2Connector) -> Any:
    from p4.v1 import p4runtime_pb2

    up = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY)
    te = up.entity.table_entry
    te.table_id = ids.id("table", T_CONFIG)
    te.is_default_action = True
    _action(ids, te.action.action, A_SET_CONFIG, int(conn.local_ip),
            mac_to_int(conn.router_mac), mac_to_int(conn.local_mac))
    return up


def _l2_update(ids: P4InfoIndex, entry: tuple[int, str, str, int, int]) -> Any:
    from p4.v1 import p4runtime_pb2

    ingress, mac, action, param, prio = entry
    table = ids.table(T_L2)
    up = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
    te = up.entity.table_entry
    te.table_id = table.id
    te.priority = prio
    for name, value in (("standard_metadata.ingress_port", ingress),
                        ("hdr.ethernet.dstAddr", mac_to_int(mac))):
        f = table.field(name)
        m = te.match.add(field_id=f.id)
        m.ternary.value = encode_value(value, f.bitwidth)
        m.ternary.mask = encode_value((1 << f.bitwidth) - 1)
    _action(ids, te.action.action, action, param)
    return up


def _flood_update(ports: list[int]) -> Any:
    from p4.v1 import p4runtime_pb2

    up = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
    group = up.entity.packet_replication_engine_entry.multicast_group_entry
    group.multicast_group_id = FLOOD_GROUP
    for port in ports:
        r = group.replicas.add()
        r.egress_port = port
        r.instance = 1
    return up


def push_pipeline(grpc_addr: str, art: Artifacts, conn: Bmv2Connector,
                  device_id: int = DEVICE_ID) -> int:
    """Set the pipeline and write the start-up entries; return the number of writes."""
    from p4runtime_sh.p4runtime import P4RuntimeClient

    try:
        client = P4RuntimeClient(device_id, grpc_addr, SETUP_ELECTION_ID)
    except SystemExit:  # p4runtime-shell exits when arbitration gets no answer
        raise Bmv2SetupError(f"no P4Runtime server answering at {grpc_addr}") from None
    try:
        client.set_fwd_pipe_config(str(art.p4info), str(art.json))
        ids = P4InfoIndex(client.get_p4info())
        updates = [_config_update(ids, conn), _flood_update(flood_ports(conn))]
        updates += [_l2_update(ids, e) for e in l2_entries(conn)]
        for up in updates:
            client.write_update(up)
        return len(updates)
    except Exception as exc:
        raise Bmv2SetupError(f"P4Runtime setup of {grpc_addr} failed: {exc}") from exc
    finally:
        client.tear_down()


# -- Thrift runtime CLI --------------------------------------------------------------------

def thrift_setup(cli_prefix: list[str], bmv2_json: Path, thrift_port: int = THRIFT_PORT,
                 queue_depth: int = QUEUE_DEPTH) -> list[str]:
    """Through the switch's runtime CLI: make every ``crc32_custom`` calculation CRC-32C
    and deepen the egress queues (BMv2's default, 64 packets, drops the short bursts a
    Linux qdisc absorbs). Returns the commands sent.

    ``cli_prefix`` runs a command where the switch's Thrift port is reachable (e.g.
    ``nsenter --net=...`` for a switch in a network namespace).
    """
    commands = [f"set_crc32_parameters {n} {' '.join(CRC32C_PARAMS)}"
                for n in crc32_calculations(bmv2_json)]
    commands.append(f"set_queue_depth {queue_depth}")
    proc = subprocess.run([*cli_prefix, "simple_switch_CLI", "--thrift-port", str(thrift_port)],
                          input="".join(c + "\n" for c in commands), capture_output=True,
                          text=True, timeout=60, check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Error" in out or "Invalid" in out:
        raise Bmv2SetupError(f"simple_switch_CLI ({'; '.join(commands)}) failed: "
                             f"{out.strip()}")
    return commands


def wait_thrift(cli_prefix: list[str], thrift_port: int = THRIFT_PORT,
                timeout: float = 20) -> None:
    """Wait until the switch answers on its Thrift port."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run([*cli_prefix, "simple_switch_CLI", "--thrift-port",
                               str(thrift_port)], input="show_ports\n", capture_output=True,
                              text=True, timeout=30, check=False)
        last = proc.stdout + proc.stderr
        if proc.returncode == 0 and "port #" in last:
            return
        time.sleep(0.2)
    raise Bmv2SetupError(f"the switch's Thrift port {thrift_port} did not answer within "
                         f"{timeout:.0f} s: {last.strip()[-400:]}")


# -- counters ------------------------------------------------------------------------------

def crc16(data: bytes) -> int:
    """BMv2's ``crc16`` (CRC-16/ARC: polynomial 0x8005 reflected, initial 0, no XOR)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def member_counter_index(port: int | None = None, endpoint: IPv4Address | None = None) -> int:
    """Index of ``Ingress.member_pkts`` that BMv2 counts a member at (it cannot see member
    ids, PIPELINE.md "Counters"): the P4 port of a local VNF, 512 + crc16(endpoint) % 512
    for a remote connector."""
    if (port is None) == (endpoint is None):
        raise ValueError("give exactly one of port and endpoint")
    if port is not None:
        return port
    assert endpoint is not None
    return 512 + crc16(endpoint.packed) % 512
