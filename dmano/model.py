"""Plain data types shared by the D-MANO modules (LSDB view, announcements).

Nothing here talks to FRR or the connector: these are the values that flow between
the LSA codec (``dmano.lsa``), the LSDB mirror (``dmano.lsdb``), the service-plane
computation (``dmano.service_plane``) and the connector writer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address


class InstanceState(enum.IntEnum):
    """Administrative state announced for a VNF instance."""

    UP = 1
    DRAINING = 2  # keeps its existing flows, takes no new ones


@dataclass(frozen=True)
class VnfAnnouncement:
    """Body of one VNF-announcement opaque LSA (one per VNF instance).

    ``cost`` is the VNF cost in the same range as OSPF link costs; ``capacity`` and
    ``load`` are in processing units per second (the VNF's own unit, e.g. packets/s).
    """

    instance_id: int  # 1..255, unique per originating router (low 8 bits of the opaque ID)
    service_id: int  # 32-bit
    anycast: IPv4Address  # the service's anycast address
    cost: int  # 32-bit VNF cost
    endpoint: IPv4Address  # NSH endpoint (connector address) of the hosting node
    capacity: int = 0
    load: int = 0
    state: InstanceState = InstanceState.UP
    name: str = ""  # human-readable instance name (optional, <= 64 bytes UTF-8)
    sequence: int = 0  # increases with every announcement of the instance (u32)


@dataclass(frozen=True)
class RouterLink:
    """One link of a router LSA (RFC 2328 A.4.2)."""

    kind: int  # 1 point-to-point, 2 transit, 3 stub, 4 virtual link
    link_id: IPv4Address
    link_data: IPv4Address
    metric: int


@dataclass(frozen=True)
class RouterLsa:
    adv_router: IPv4Address
    links: tuple[RouterLink, ...]


@dataclass(frozen=True)
class NetworkLsa:
    """Network LSA (RFC 2328 A.4.3): originated by the DR of a transit network."""

    link_state_id: IPv4Address  # the DR's interface address
    adv_router: IPv4Address
    mask: IPv4Address
    attached: tuple[IPv4Address, ...]  # router ids


@dataclass
class LsdbView:
    """The parts of one OSPF area's LSDB that the D-MANO uses."""

    routers: dict[IPv4Address, RouterLsa] = field(default_factory=dict)
    networks: dict[IPv4Address, NetworkLsa] = field(default_factory=dict)
    # (advertising router id, opaque id) -> decoded announcement
    instances: dict[tuple[IPv4Address, int], VnfAnnouncement] = field(default_factory=dict)
