"""The interface between the P4Runtime server and a forwarding target.

The P4Runtime server (``connector_p4.p4rt_server``) owns the P4Runtime state (entries,
members, groups, arbitration) and translates every accepted change into calls on a
:class:`Target`. The eBPF target (``connector_p4.ebpf_target``) implements it with BPF
maps. See ``PIPELINE.md`` for the semantics every target must follow.

Select slots: ``Ingress.instance_select`` is keyed by (service id, from_remote), where
from_remote is 1 for a packet decapsulated from VXLAN-GPE on the router port (it came from
another connector) and 0 otherwise (classified here, or back from a local VNF). Each key
has its own WCMP group in the target, addressed by its *select slot*
``slot = service_id + MAX_SERVICES * from_remote`` (0..SELECT_SLOTS-1): slots 0..255 are
the groups for local arrivals, 256..511 those for remote arrivals (:func:`select_slot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

DROP_REASONS = (
    "truncated", "bad_version", "bad_md_type", "ttl_expired", "si_zero", "unknown_path",
    "no_instance", "not_nsh", "bad_gpe", "too_big", "policy_drop",
)
MAX_CLASSIFIER_RULES = 64
MAX_SFF_ENTRIES = 4096
MAX_SERVICES = 256
SELECT_SLOTS = 2 * MAX_SERVICES  # one group per (service id, from_remote)
MAX_MEMBERS = 1024
GROUP_SLOTS = 64
MAX_PORTS = 512
PORT_ROLES = ("router", "hostbridge", "vnf", "host")  # PIPELINE.md "Ports"


def role_of_port(p4port: int) -> str:
    """The role PIPELINE.md gives a P4 port number: 1 router, 2 hostbridge, 16..63 VNF,
    64..511 host."""
    if p4port == 1:
        return "router"
    if p4port == 2:
        return "hostbridge"
    if 16 <= p4port < 64:
        return "vnf"
    if 64 <= p4port < MAX_PORTS:
        return "host"
    raise ValueError(f"P4 port {p4port} has no role in PIPELINE.md's numbering "
                     "(1, 2, 16..63, 64..511)")


def select_slot(service_id: int, from_remote: int) -> int:
    """The select slot of the instance_select key (service id, from_remote)."""
    if not (0 <= service_id < MAX_SERVICES and from_remote in (0, 1)):
        raise ValueError(f"bad instance_select key ({service_id}, {from_remote})")
    return service_id + MAX_SERVICES * from_remote


def slot_key(slot: int) -> tuple[int, int]:
    """(service id, from_remote) of a select slot."""
    if not 0 <= slot < SELECT_SLOTS:
        raise ValueError(f"bad select slot {slot}")
    return slot % MAX_SERVICES, slot // MAX_SERVICES


class TargetError(RuntimeError):
    """A write the target cannot do; ``code`` is a gRPC status name (e.g.
    RESOURCE_EXHAUSTED, INVALID_ARGUMENT, NOT_FOUND)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ConnectorConfig:
    local_ip: IPv4Address
    router_mac: bytes  # 6 bytes
    local_mac: bytes  # 6 bytes


@dataclass(frozen=True)
class Ternary:
    value: int
    mask: int


@dataclass(frozen=True)
class ClassifierRule:
    priority: int
    src: Ternary  # 32 bit
    dst: Ternary  # 32 bit
    proto: Ternary  # 8 bit
    l4_src: Ternary  # 16 bit
    l4_dst: Ternary  # 16 bit
    spi: int  # action set_chain(spi)


@dataclass(frozen=True)
class SffAction:
    kind: str  # "to_service" | "end_of_chain" | "drop"
    service_id: int = 0


@dataclass(frozen=True)
class Member:
    kind: str  # "local" | "remote"
    port: int = 0  # P4 port (local)
    dmac: bytes = b""  # VNF MAC (local)
    endpoint: IPv4Address | None = None  # remote connector (remote)


@dataclass(frozen=True)
class Counter:
    packets: int = 0
    bytes: int = 0


class Target(Protocol):
    """What the P4Runtime server needs from a forwarding target."""

    def set_config(self, cfg: ConnectorConfig) -> None: ...

    def set_classifier(self, rules: list[ClassifierRule]) -> None:
        """Replace the whole rule set (already sorted, highest priority first)."""

    def set_sff(self, spi: int, si: int, action: SffAction) -> None: ...

    def delete_sff(self, spi: int, si: int) -> None: ...

    def set_member(self, member_id: int, member: Member) -> None: ...

    def delete_member(self, member_id: int) -> None: ...

    def set_group(self, slot: int, members: list[tuple[int, int]]) -> None:
        """The WCMP group of select slot ``slot`` (service id + 256 * from_remote, see the
        module doc): (member id, weight) pairs; weights >= 1, sum <= GROUP_SLOTS."""

    def delete_group(self, slot: int) -> None:
        """Remove the group of select slot ``slot``: its packets drop as no_instance."""

    def member_counters(self) -> dict[int, Counter]: ...

    def drop_counters(self) -> dict[str, Counter]: ...

    def misc_counters(self) -> dict[str, Counter]:
        """'classified' and 'end_of_chain'."""

    def close(self) -> None: ...
