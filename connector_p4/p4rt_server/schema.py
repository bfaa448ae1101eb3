"""The P4Info the server serves: loading it, what makes two P4Infos the same pipeline, and
the tables, actions, profile and counters the server binds its behaviour to (by name; the
ids come from the P4Info through :class:`dmano.p4info.P4InfoIndex`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from dmano.p4info import P4InfoIndex, TableInfo

P4INFO_PATH = Path(__file__).resolve().parent.parent / "connector.p4info.txtpb"
API_VERSION = "1.4.1"
DEFAULT_DEVICE_ID = 1

# Names the server binds its behaviour to (ids come from the P4Info).
from dmano.pipeline_names import (  # noqa: E402  (re-exported)
    A_DROP,
    A_END_OF_CHAIN,
    A_LOCAL,
    A_NOACTION,
    A_REMOTE,
    A_SET_CHAIN,
    A_SET_CONFIG,
    A_TO_SERVICE,
    C_CLASSIFIED,
    C_DROPS,
    C_EOC,
    C_MEMBERS,
    CLASSIFIER_FIELDS,
    P_SELECTOR,
    SELECT_FIELDS,
    SFF_FIELDS,
    T_CLASSIFIER,
    T_CONFIG,
    T_L2,
    T_SELECT,
    T_SFF,
)

_PRIORITY_MATCH_TYPES = (p4info_pb2.MatchField.TERNARY, p4info_pb2.MatchField.RANGE,
                         p4info_pb2.MatchField.OPTIONAL)


def load_p4info(path: str | os.PathLike[str] = P4INFO_PATH) -> p4info_pb2.P4Info:
    return text_format.Parse(Path(path).read_text(), p4info_pb2.P4Info(),
                             allow_unknown_field=True)


def p4info_fingerprint(p4info: p4info_pb2.P4Info) -> tuple[Any, ...]:
    """What makes two P4Infos the same pipeline for this server (see the package doc)."""

    def pre(obj: Any) -> tuple[int, str]:
        return (obj.preamble.id, obj.preamble.name)

    tables = sorted(
        (
            pre(t),
            tuple(sorted((f.id, f.name, f.bitwidth, f.match_type, f.other_match_type)
                         for f in t.match_fields)),
            tuple(sorted((a.id, a.scope) for a in t.action_refs)),
            t.const_default_action_id,
            t.implementation_id,
            tuple(sorted(t.direct_resource_ids)),
            t.size,
            t.is_const_table,
        )
        for t in p4info.tables
    )
    actions = sorted(
        (pre(a), tuple(sorted((p.id, p.name, p.bitwidth) for p in a.params)))
        for a in p4info.actions
    )
    profiles = sorted(
        (pre(p), tuple(sorted(p.table_ids)), p.with_selector, p.size, p.max_group_size)
        for p in p4info.action_profiles
    )
    counters = sorted((pre(c), c.spec.unit, c.size) for c in p4info.counters)
    direct_counters = sorted((pre(c), c.spec.unit, c.direct_table_id)
                             for c in p4info.direct_counters)
    meters = sorted((pre(m), m.spec.unit, m.size) for m in p4info.meters)
    direct_meters = sorted((pre(m), m.spec.unit, m.direct_table_id)
                           for m in p4info.direct_meters)
    registers = sorted(
        (pre(r), r.type_spec.SerializeToString(deterministic=True), r.size)
        for r in p4info.registers
    )
    others = sorted(
        [("cpm", *pre(x)) for x in p4info.controller_packet_metadata]
        + [("vs", *pre(x)) for x in p4info.value_sets]
        + [("digest", *pre(x)) for x in p4info.digests]
    )
    return (tables, actions, profiles, counters, direct_counters, meters, direct_meters,
            registers, others)


def p4info_cookie(p4info: p4info_pb2.P4Info) -> int:
    digest = hashlib.sha256(p4info.SerializeToString(deterministic=True)).digest()
    return int.from_bytes(digest[:8], "big")


def needs_priority(table: TableInfo) -> bool:
    """A table with a ternary, range or optional field orders its entries by priority."""
    return any(f.match_type in _PRIORITY_MATCH_TYPES for f in table.fields)


@dataclass(frozen=True)
class Bindings:
    """The P4Info objects the server's behaviour is bound to, resolved to ids."""

    schema: P4InfoIndex
    t_classifier: TableInfo
    t_sff: TableInfo
    t_select: TableInfo
    t_config: TableInfo
    t_l2: TableInfo
    a_set_chain: int
    a_to_service: int
    a_eoc: int
    a_drop: int
    a_local: int
    a_remote: int
    a_set_config: int
    a_noaction: int
    profile: Any  # p4info_pb2.ActionProfile of instance_selector
    max_group_size: int
    c_members: int
    c_drops: int
    c_classified: int
    c_eoc: int

    @classmethod
    def of(cls, p4info: p4info_pb2.P4Info) -> Bindings:
        """Resolve the names; ValueError if the P4Info is not the connector's."""
        s = P4InfoIndex(p4info)
        try:
            profile = s.profiles[s.id("profile", P_SELECTOR)]
            b = cls(
                schema=s, t_classifier=s.table(T_CLASSIFIER), t_sff=s.table(T_SFF),
                t_select=s.table(T_SELECT), t_config=s.table(T_CONFIG), t_l2=s.table(T_L2),
                a_set_chain=s.id("action", A_SET_CHAIN),
                a_to_service=s.id("action", A_TO_SERVICE),
                a_eoc=s.id("action", A_END_OF_CHAIN), a_drop=s.id("action", A_DROP),
                a_local=s.id("action", A_LOCAL), a_remote=s.id("action", A_REMOTE),
                a_set_config=s.id("action", A_SET_CONFIG),
                a_noaction=s.id("action", A_NOACTION),
                profile=profile, max_group_size=profile.max_group_size or 64,
                c_members=s.id("counter", C_MEMBERS), c_drops=s.id("counter", C_DROPS),
                c_classified=s.id("counter", C_CLASSIFIED), c_eoc=s.id("counter", C_EOC))
        except LookupError as e:
            raise ValueError(str(e)) from None
        for table, names in ((b.t_classifier, CLASSIFIER_FIELDS), (b.t_sff, SFF_FIELDS),
                             (b.t_select, SELECT_FIELDS)):
            if tuple(f.name for f in table.fields) != names:
                raise ValueError(f"P4Info: {table.name} must match on {names}")
        return b

    @property
    def profile_id(self) -> int:
        return int(self.profile.preamble.id)
