"""P4Runtime server for the dsfc connector, in front of any :class:`~connector_p4.target.Target`.

The server owns the P4Runtime state (table entries, action-profile members and groups,
arbitration) for the fixed pipeline described by ``connector.p4info.txtpb`` and turns every
accepted change into calls on a target (the eBPF maps, or a test double). See PIPELINE.md.

Run it inside the connector's network namespace (one server per connector; the socket
lives in the run folder, so it is not reachable from the emulated network)::

    python -m connector_p4.p4rt_server --socket /run/dsfc/<run>/cA/p4rt.sock \\
        --target ebpf --bpf-object connector_p4/ebpf/build/connector.o \\
        --pin-dir /sys/fs/bpf/dsfc/<run>/cA \\
        --port 1=rtr --port 2=rtrh --port 16=v-fw1 --port 64=h-h1 \\
        [--local-ip 10.1.0.2 --router-mac 02:.. --local-mac 02:..]

``--port N=IFNAME[:ROLE]``: the role follows from N (1 router, 2 hostbridge, 16..63 vnf,
64..511 host); ifindex and MAC are read in the current namespace. With nothing pinned at
``--pin-dir`` the object is loaded (``EbpfTarget.load``) and attached to the ports with tc
(``--no-attach`` to skip); with a pipeline already pinned there the server takes it over
(``EbpfTarget.open_pinned``) and rebuilds its P4Runtime view from the maps (see
"Restart takeover" below). Stopping the server (SIGTERM) closes its descriptors
only: the pinned pipeline keeps forwarding; detaching and unpinning is the builder's
cleanup. ``--target null`` runs without a data plane (demos, dry runs). ``--grpc-addr
127.0.0.1:9559`` adds (or replaces) a TCP listener.

Talk to it with p4runtime-shell (it accepts any gRPC target string, ``unix:`` included)::

    python -m p4runtime_sh --grpc-addr unix:/run/dsfc/<run>/cA/p4rt.sock \\
        --device-id 1 --election-id 0,1

What it implements (P4Runtime 1.4 semantics unless noted):

* StreamChannel arbitration for the default role. Every MasterArbitrationUpdate is answered
  at once. ``--arbitration live`` (default): the primary is the live client with the highest
  election id, so a backup takes over when the primary disconnects (how PI/BMv2 behaved
  before P4Runtime 1.3). ``--arbitration spec``: P4Runtime >= 1.3, the primary must hold the
  highest election id ever seen; after it leaves, a client has to re-arbitrate with an
  election id at least as high.
* SetForwardingPipelineConfig: the pipeline is fixed, so a config is accepted only if its
  P4Info equals ours (ids, names, match fields, action parameters, scopes, sizes, counters,
  profiles, registers; pkg_info, aliases, annotations and docs are ignored), otherwise
  INVALID_ARGUMENT. VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT (clears the forwarding state),
  COMMIT (after a save) and RECONCILE_AND_COMMIT (keeps the state) are supported. The
  pipeline is installed from the start, so Write works without it.
* GetForwardingPipelineConfig: our P4Info and a cookie (the client's, after a Set with a
  cookie; otherwise derived from the P4Info digest).
* Write: TableEntry for classifier (ternary, priority > 0), sff_next (exact), the default
  entry of sff_config (MODIFY; no action = back to the start-up value) and instance_select
  (group or member reference); ActionProfileMember / ActionProfileGroup (weights 1..64, sum
  <= max_group_size 64, max_size 0 meaning 64) of instance_selector. Updates are applied in
  order, each validated on its own (CONTINUE_ON_ERROR); a failed batch is gRPC UNKNOWN with
  ``grpc-status-details-bin`` = google.rpc.Status holding one p4.v1.Error per update (OK for
  those that succeeded). Byte strings may carry leading zero bytes; values wider than the
  bitwidth or empty are OUT_OF_RANGE. Unknown table/profile/counter ids are NOT_FOUND. Only
  the primary may write (PERMISSION_DENIED otherwise).
* Read: wildcards on tables (all tables, one table, default entry, match/priority/action/
  metadata filters), members, groups, and CounterEntry (one index or all) from the
  target's counters. Reads go through a single lock with writes, so they are consistent.
* Not supported: l2_forward (BMv2 only; the kernel does it on eBPF) and register entries
  (the BMv2 flow cache): UNIMPLEMENTED; one-shot selector programming, watch ports,
  counter writes, packet I/O, digests, meters, PRE entries, non-default roles,
  ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC batches: UNIMPLEMENTED.

Translation to the target: classifier -> ``set_classifier`` with the whole rule set sorted
by priority (highest first, ties in insertion order) on every change; sff_next ->
``set_sff``/``delete_sff``; members -> ``set_member``/``delete_member``. instance_select
is keyed by (service id, from_remote); each entry (sid, fr) owns the target's *select slot*
sid + 256 * fr (``target.select_slot``): the members of the group the entry points to (or
a single member of weight 1) -> ``set_group(slot, ...)``. Several entries may point at one
group (the D-MANO points (sid, 0) and (sid, 1) at the same group when the node has no
instance of sid): a change of the group's members or weights is re-sent to every slot
that uses it; an empty group is ``delete_group(slot)`` (packets dropped as no_instance);
deleting the entry deletes its slot. Target errors (:class:`TargetError`) become the
per-update error with the target's code. Classifier capacity is the P4Info table size
(64), sff_next 4096, instance_select 512 (256 services x from_remote), members 1024 (the
action-profile size).

Restart takeover: a server started over a running target (``restore``, e.g. pinned eBPF
maps) rebuilds its view from them. The target knows slots, not P4Runtime groups, so the
server invents the group ids, the same way the D-MANO numbers its groups (so a D-MANO that
resyncs after a server restart finds its own ids): the group of slot S (entry (S, 0))
becomes group S (group 512 for service 0, which P4Runtime cannot number 0); the group of
slot 256 + S (entry (S, 1)) becomes that same group when both slots hold the same members
and weights in the same order (one group shared by both entries), else its own group
256 + S (= the slot). Restored groups have max_size 0.

Note: P4Runtime 1.4 asks that all members of a group use the same action; this server
deliberately accepts groups mixing to_local_vnf and to_remote members (a service's local
and remote instances share one group).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import queue
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import grpc
from google.protobuf import any_pb2, text_format
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from connector_p4.target import (
    DROP_REASONS,
    ClassifierRule,
    ConnectorConfig,
    Counter,
    Member,
    SffAction,
    Target,
    TargetError,
    Ternary,
    encode_value,
    select_slot,
    slot_key,
)

log = logging.getLogger("connector_p4.p4rt_server")

P4INFO_PATH = Path(__file__).with_name("connector.p4info.txtpb")
DEFAULT_BPF_OBJECT = Path(__file__).with_name("ebpf") / "build" / "connector.o"
API_VERSION = "1.4.1"
DEFAULT_DEVICE_ID = 1
MAX_STREAMS = 16
READ_CHUNK = 512

# Names the server binds its behaviour to (ids come from the P4Info).
T_CLASSIFIER = "Ingress.classifier"
T_SFF = "Ingress.sff_next"
T_SELECT = "Ingress.instance_select"
T_CONFIG = "Ingress.sff_config"
T_L2 = "Ingress.l2_forward"
A_SET_CHAIN = "Ingress.set_chain"
A_TO_SERVICE = "Ingress.to_service"
A_END_OF_CHAIN = "Ingress.end_of_chain"
A_DROP = "Ingress.drop_packet"
A_LOCAL = "Ingress.to_local_vnf"
A_REMOTE = "Ingress.to_remote"
A_SET_CONFIG = "Ingress.set_config"
A_NOACTION = "NoAction"
P_SELECTOR = "Ingress.instance_selector"
C_MEMBERS = "Ingress.member_pkts"
C_DROPS = "Ingress.drops"
C_CLASSIFIED = "Ingress.classified"
C_EOC = "Ingress.end_of_chain"
CLASSIFIER_FIELDS = ("hdr.ipv4.srcAddr", "hdr.ipv4.dstAddr", "hdr.ipv4.protocol",
                     "meta.l4_src", "meta.l4_dst")
SFF_FIELDS = ("meta.spi", "meta.si")
SELECT_FIELDS = ("meta.service_id", "meta.from_remote")

_GRPC_BY_CODE = {sc.value[0]: sc for sc in grpc.StatusCode}


class P4RTError(Exception):
    """A P4Runtime error: ``code`` is a google.rpc code (int)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_BY_CODE.get(self.code, grpc.StatusCode.UNKNOWN)

    def to_p4_error(self) -> p4runtime_pb2.Error:
        return p4runtime_pb2.Error(canonical_code=self.code, message=self.message)


def _code_from_name(name: str) -> int:
    try:
        return code_pb2.Code.Value(name)
    except ValueError:
        return code_pb2.UNKNOWN


# --------------------------------------------------------------------------- P4Info


def load_p4info(path: str | os.PathLike = P4INFO_PATH) -> p4info_pb2.P4Info:
    return text_format.Parse(Path(path).read_text(), p4info_pb2.P4Info(),
                             allow_unknown_field=True)


def p4info_fingerprint(p4info: p4info_pb2.P4Info) -> tuple:
    """What makes two P4Infos the same pipeline for this server (see module docstring)."""

    def pre(obj) -> tuple:
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


@dataclass(frozen=True)
class FieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: int


@dataclass(frozen=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    params: tuple[ParamInfo, ...]


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    fields: tuple[FieldInfo, ...]
    scopes: dict[int, int]  # action id -> ActionRef scope
    const_default_action_id: int
    implementation_id: int
    size: int

    @property
    def needs_priority(self) -> bool:
        return any(f.match_type in (p4info_pb2.MatchField.TERNARY, p4info_pb2.MatchField.RANGE,
                                    p4info_pb2.MatchField.OPTIONAL) for f in self.fields)


class Schema:
    """Lookups over a P4Info."""

    def __init__(self, p4info: p4info_pb2.P4Info):
        self.p4info = p4info
        self.tables: dict[int, TableInfo] = {}
        self.actions: dict[int, ActionInfo] = {}
        self.counters: dict[int, p4info_pb2.Counter] = {}
        self.profiles: dict[int, p4info_pb2.ActionProfile] = {}
        self._ids: dict[tuple[str, str], int] = {}
        for t in p4info.tables:
            self.tables[t.preamble.id] = TableInfo(
                id=t.preamble.id,
                name=t.preamble.name,
                fields=tuple(FieldInfo(f.id, f.name, f.bitwidth, f.match_type)
                             for f in sorted(t.match_fields, key=lambda f: f.id)),
                scopes={a.id: a.scope for a in t.action_refs},
                const_default_action_id=t.const_default_action_id,
                implementation_id=t.implementation_id,
                size=t.size,
            )
            self._ids[("table", t.preamble.name)] = t.preamble.id
        for a in p4info.actions:
            self.actions[a.preamble.id] = ActionInfo(
                a.preamble.id, a.preamble.name,
                tuple(ParamInfo(p.id, p.name, p.bitwidth)
                      for p in sorted(a.params, key=lambda p: p.id)))
            self._ids[("action", a.preamble.name)] = a.preamble.id
        for c in p4info.counters:
            self.counters[c.preamble.id] = c
            self._ids[("counter", c.preamble.name)] = c.preamble.id
        for p in p4info.action_profiles:
            self.profiles[p.preamble.id] = p
            self._ids[("profile", p.preamble.name)] = p.preamble.id

    def id(self, kind: str, name: str) -> int:
        try:
            return self._ids[(kind, name)]
        except KeyError:
            raise ValueError(f"P4Info has no {kind} {name!r}") from None


# --------------------------------------------------------------------------- byte strings


def decode_value(value: bytes, bitwidth: int, what: str) -> int:
    """P4Runtime byte string -> int (leading zero bytes accepted)."""
    if len(value) == 0:
        raise P4RTError(code_pb2.OUT_OF_RANGE, f"{what}: empty byte string")
    v = int.from_bytes(value, "big")
    if v >> bitwidth:
        raise P4RTError(code_pb2.OUT_OF_RANGE,
                        f"{what}: value 0x{v:x} does not fit in {bitwidth} bits")
    return v


def election_of(msg) -> int | None:
    if not msg.HasField("election_id"):
        return None
    return (msg.election_id.high << 64) | msg.election_id.low


def _uint128(v: int) -> p4runtime_pb2.Uint128:
    return p4runtime_pb2.Uint128(high=v >> 64, low=v & ((1 << 64) - 1))


# --------------------------------------------------------------------------- state


@dataclass
class _TableEntry:
    msg: p4runtime_pb2.TableEntry  # canonical form, returned by Read
    data: object
    seq: int


@dataclass
class _Group:
    msg: p4runtime_pb2.ActionProfileGroup
    members: list[tuple[int, int]]  # (member id, weight)
    max_size: int


@dataclass
class _Member:
    msg: p4runtime_pb2.ActionProfileMember
    member: Member


class Pipeline:
    """The P4Runtime state of one connector and its translation into Target calls."""

    def __init__(self, target: Target, p4info: p4info_pb2.P4Info,
                 initial_config: ConnectorConfig | None = None, restore=None):
        self.target = target
        self.p4info = p4info
        self.schema = Schema(p4info)
        s = self.schema
        self.t_classifier = s.tables[s.id("table", T_CLASSIFIER)]
        self.t_sff = s.tables[s.id("table", T_SFF)]
        self.t_select = s.tables[s.id("table", T_SELECT)]
        self.t_config = s.tables[s.id("table", T_CONFIG)]
        self.t_l2 = s.tables[s.id("table", T_L2)]
        self.a_set_chain = s.id("action", A_SET_CHAIN)
        self.a_to_service = s.id("action", A_TO_SERVICE)
        self.a_eoc = s.id("action", A_END_OF_CHAIN)
        self.a_drop = s.id("action", A_DROP)
        self.a_local = s.id("action", A_LOCAL)
        self.a_remote = s.id("action", A_REMOTE)
        self.a_set_config = s.id("action", A_SET_CONFIG)
        self.a_noaction = s.id("action", A_NOACTION)
        self.profile = s.profiles[s.id("profile", P_SELECTOR)]
        self.max_group_size = self.profile.max_group_size or 64
        self.c_members = s.id("counter", C_MEMBERS)
        self.c_drops = s.id("counter", C_DROPS)
        self.c_classified = s.id("counter", C_CLASSIFIED)
        self.c_eoc = s.id("counter", C_EOC)
        for table, names in ((self.t_classifier, CLASSIFIER_FIELDS), (self.t_sff, SFF_FIELDS),
                             (self.t_select, SELECT_FIELDS)):
            if tuple(f.name for f in table.fields) != names:
                raise ValueError(f"P4Info: {table.name} must match on {names}")

        self.lock = threading.RLock()
        self._seq = 0
        self.classifier: dict[tuple, _TableEntry] = {}
        self.sff: dict[tuple[int, int], _TableEntry] = {}
        self.select: dict[tuple[int, int], _TableEntry] = {}  # (sid, from_remote) -> entry
        self.members: dict[int, _Member] = {}
        self.groups: dict[int, _Group] = {}
        self.installed: dict[int, list[tuple[int, int]]] = {}  # select slot -> members
        self.initial_config = initial_config or ConnectorConfig(
            IPv4Address(0), bytes(6), bytes(6))
        self.config = self.initial_config
        self.config_entry = self._config_entry(self.initial_config)
        if restore is not None:
            self._restore(restore)
        if initial_config is not None and (restore is None or restore.config is None):
            self._call(self.target.set_config, initial_config)

    def _restore(self, st) -> None:
        """Rebuild the P4Runtime view from what a running target holds (a restarted
        server over pinned eBPF maps). ``st`` has config, rules, sff, members and groups
        (``ebpf_target.PipelineState``; its groups are keyed by select slot). Group ids
        are invented as the module doc says ("Restart takeover"): slot S -> group S (512
        for S = 0), slot 256 + S -> that group if it holds the same members as slot S,
        else group 256 + S; each slot gets its instance_select entry (S, from_remote)."""
        if st.config is not None:
            self.config = st.config
            self.config_entry = self._config_entry(st.config)
        tc = self.t_classifier
        for rule in st.rules:
            key = tuple((t.value, t.mask) for t in (rule.src, rule.dst, rule.proto,
                                                    rule.l4_src, rule.l4_dst))
            te = p4runtime_pb2.TableEntry(table_id=tc.id, priority=rule.priority)
            for f, (v, m) in zip(tc.fields, key, strict=True):
                if m:
                    te.match.add(field_id=f.id, ternary=p4runtime_pb2.FieldMatch.Ternary(
                        value=encode_value(v), mask=encode_value(m)))
            self._direct(te, self.a_set_chain, rule.spi)
            self.classifier[(rule.priority, key)] = _TableEntry(te, rule, self._next_seq())
        for (spi, si), act in sorted(st.sff.items()):
            te = self._exact_entry(self.t_sff, spi, si)
            if act.kind == "to_service":
                self._direct(te, self.a_to_service, act.service_id)
            else:
                self._direct(te, self.a_eoc if act.kind == "end_of_chain" else self.a_drop)
            self.sff[(spi, si)] = _TableEntry(te, act, self._next_seq())
        for mid, m in sorted(st.members.items()):
            if mid == 0:
                log.warning("restore: member id 0 cannot be shown in P4Runtime, skipped")
                continue
            msg = p4runtime_pb2.ActionProfileMember(action_profile_id=self.profile.preamble.id,
                                                    member_id=mid)
            if m.kind == "local":
                msg.action.action_id = self.a_local
                msg.action.params.add(param_id=1, value=encode_value(m.port))
                msg.action.params.add(param_id=2, value=encode_value(
                    int.from_bytes(m.dmac, "big")))
            else:
                msg.action.action_id = self.a_remote
                msg.action.params.add(param_id=1, value=encode_value(int(m.endpoint)))
            self.members[mid] = _Member(msg, m)
        for slot, members in sorted(st.groups.items()):  # slots S before 256 + S
            sid, from_remote = slot_key(slot)
            members = list(members)
            shared = sid or 512  # P4Runtime group ids start at 1
            if from_remote and shared in self.groups and \
                    list(st.groups.get(sid, ())) == members:
                gid = shared  # one group for both entries of the service
            else:
                gid = slot or 512
                msg = p4runtime_pb2.ActionProfileGroup(
                    action_profile_id=self.profile.preamble.id, group_id=gid)
                for mid, w in members:
                    msg.members.add(member_id=mid, weight=w)
                self.groups[gid] = _Group(msg, members, 0)
            te = self._exact_entry(self.t_select, sid, from_remote)
            te.action.action_profile_group_id = gid
            self.select[(sid, from_remote)] = _TableEntry(te, ("group", gid), self._next_seq())
            self.installed[slot] = list(members)
        log.info("restored %d rules, %d sff entries, %d members, %d groups from the target",
                 len(self.classifier), len(self.sff), len(self.members), len(self.groups))

    @staticmethod
    def _exact_entry(table: TableInfo, *values: int) -> p4runtime_pb2.TableEntry:
        te = p4runtime_pb2.TableEntry(table_id=table.id)
        for f, v in zip(table.fields, values, strict=True):
            te.match.add(field_id=f.id, exact=p4runtime_pb2.FieldMatch.Exact(
                value=encode_value(v)))
        return te

    def _direct(self, te: p4runtime_pb2.TableEntry, action_id: int, *values: int) -> None:
        te.action.action.action_id = action_id
        for p, v in zip(self.schema.actions[action_id].params, values, strict=True):
            te.action.action.params.add(param_id=p.id, value=encode_value(v))

    # ---------------------------------------------------------------- helpers

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except TargetError as e:
            raise P4RTError(_code_from_name(e.code), f"target: {e}") from None
        except P4RTError:
            raise
        except Exception as e:  # a target bug or an OS error: report, don't crash the RPC
            log.exception("target call %s failed", getattr(fn, "__name__", fn))
            raise P4RTError(code_pb2.INTERNAL, f"target: {type(e).__name__}: {e}") from None

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _config_entry(self, cfg: ConnectorConfig) -> p4runtime_pb2.TableEntry:
        te = p4runtime_pb2.TableEntry(table_id=self.t_config.id, is_default_action=True)
        te.action.action.action_id = self.a_set_config
        values = (int(cfg.local_ip), int.from_bytes(cfg.router_mac, "big"),
                  int.from_bytes(cfg.local_mac, "big"))
        for p, v in zip(self.schema.actions[self.a_set_config].params, values, strict=True):
            te.action.action.params.add(param_id=p.id, value=encode_value(v))
        return te

    def _table(self, table_id: int) -> TableInfo:
        if table_id == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "table_id 0 is not a table")
        t = self.schema.tables.get(table_id)
        if t is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown table id {table_id:#x}")
        return t

    def _parse_match(self, table: TableInfo, entry: p4runtime_pb2.TableEntry):
        """-> (key tuple in P4Info field order, canonical FieldMatch list)."""
        by_id = {f.id: f for f in table.fields}
        got: dict[int, tuple[int, ...]] = {}
        for fm in entry.match:
            f = by_id.get(fm.field_id)
            if f is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{table.name}: unknown match field id {fm.field_id}")
            if fm.field_id in got:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{table.name}: match field {f.name} given twice")
            kind = fm.WhichOneof("field_match_type")
            what = f"{table.name} {f.name}"
            if f.match_type == p4info_pb2.MatchField.EXACT:
                if kind != "exact":
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    f"{what}: expected an exact match, got {kind}")
                got[f.id] = (decode_value(fm.exact.value, f.bitwidth, what),)
            elif f.match_type == p4info_pb2.MatchField.TERNARY:
                if kind != "ternary":
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    f"{what}: expected a ternary match, got {kind}")
                value = decode_value(fm.ternary.value, f.bitwidth, what + " value")
                mask = decode_value(fm.ternary.mask, f.bitwidth, what + " mask")
                if mask == 0:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    f"{what}: a don't-care (mask 0) match must be omitted")
                if value & ~mask:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    f"{what}: value 0x{value:x} has bits outside mask "
                                    f"0x{mask:x}")
                got[f.id] = (value, mask)
            else:
                raise P4RTError(code_pb2.UNIMPLEMENTED, f"{what}: match type not supported")
        key = []
        canon = []
        for f in table.fields:
            v = got.get(f.id)
            if f.match_type == p4info_pb2.MatchField.EXACT:
                if v is None:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    f"{table.name}: exact match field {f.name} is missing")
                key.append(v[0])
                fm = p4runtime_pb2.FieldMatch(field_id=f.id)
                fm.exact.value = encode_value(v[0])
                canon.append(fm)
            else:
                if v is None:
                    key.append((0, 0))
                    continue
                key.append(v)
                fm = p4runtime_pb2.FieldMatch(field_id=f.id)
                fm.ternary.value = encode_value(v[0])
                fm.ternary.mask = encode_value(v[1])
                canon.append(fm)
        return tuple(key), canon

    def _parse_action(self, action: p4runtime_pb2.Action, allowed: Iterable[int],
                      where: str, scopes: dict[int, int] | None = None,
                      default: bool = False):
        """-> (action id, {param name: value}, canonical Action)."""
        info = self.schema.actions.get(action.action_id)
        if info is None or action.action_id not in allowed:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{where}: action id {action.action_id:#x} is not an action of "
                            "this table")
        if scopes is not None:
            scope = scopes.get(action.action_id, p4info_pb2.ActionRef.TABLE_AND_DEFAULT)
            if not default and scope == p4info_pb2.ActionRef.DEFAULT_ONLY:
                raise P4RTError(code_pb2.PERMISSION_DENIED,
                                f"{where}: {info.name} is a default-only action")
            if default and scope == p4info_pb2.ActionRef.TABLE_ONLY:
                raise P4RTError(code_pb2.PERMISSION_DENIED,
                                f"{where}: {info.name} cannot be the default action")
        by_id = {p.id: p for p in info.params}
        values: dict[int, int] = {}
        for prm in action.params:
            p = by_id.get(prm.param_id)
            if p is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{where}: {info.name} has no parameter id {prm.param_id}")
            if prm.param_id in values:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{where}: {info.name} parameter {p.name} given twice")
            values[p.id] = decode_value(prm.value, p.bitwidth, f"{info.name} {p.name}")
        missing = [p.name for p in info.params if p.id not in values]
        if missing:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{where}: {info.name} is missing parameter(s) {', '.join(missing)}")
        canon = p4runtime_pb2.Action(action_id=info.id)
        for p in info.params:
            canon.params.add(param_id=p.id, value=encode_value(values[p.id]))
        return info.id, {p.name: values[p.id] for p in info.params}, canon

    @staticmethod
    def _check_entry_common(entry: p4runtime_pb2.TableEntry, table: TableInfo) -> None:
        if entry.is_const:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "is_const must be false in a write")
        for f in ("counter_data", "meter_config", "meter_counter_data"):
            if entry.HasField(f):
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{table.name} has no direct resources ({f})")
        if entry.idle_timeout_ns:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name} does not support idle timeouts")

    def _check_priority(self, table: TableInfo, priority: int) -> None:
        if table.needs_priority and priority <= 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name}: priority must be > 0 (higher wins)")
        if not table.needs_priority and priority != 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name}: priority must be 0 (no ternary field)")

    def _sorted_rules(self, entries: dict[tuple, _TableEntry]) -> list[ClassifierRule]:
        ordered = sorted(entries.values(), key=lambda e: (-e.msg.priority, e.seq))
        return [e.data for e in ordered]

    def _service_members(self, ref: tuple[str, int]) -> list[tuple[int, int]]:
        kind, ident = ref
        if kind == "member":
            return [(ident, 1)]
        return list(self.groups[ident].members)

    def _install_slot(self, slot: int, members: list[tuple[int, int]]) -> None:
        """Make select slot ``slot`` hold ``members`` in the target (none: no group)."""
        if members:
            self._call(self.target.set_group, slot, list(members))
            self.installed[slot] = list(members)
        elif slot in self.installed:
            self._call(self.target.delete_group, slot)
            del self.installed[slot]

    def _group_users(self, group_id: int) -> list[tuple[int, int]]:
        """The instance_select keys (sid, from_remote) whose entry points at the group."""
        return sorted(key for key, e in self.select.items() if e.data == ("group", group_id))

    # ---------------------------------------------------------------- write

    def write_batch(self, updates: Sequence[p4runtime_pb2.Update]) -> list[P4RTError | None]:
        results: list[P4RTError | None] = []
        with self.lock:
            for i, u in enumerate(updates):
                try:
                    self.write(u)
                    results.append(None)
                except P4RTError as e:
                    log.info("write %d/%d rejected: %s %s", i + 1, len(updates),
                             code_pb2.Code.Name(e.code), e.message)
                    results.append(e)
        return results

    def write(self, update: p4runtime_pb2.Update) -> None:
        if update.type not in (p4runtime_pb2.Update.INSERT, p4runtime_pb2.Update.MODIFY,
                               p4runtime_pb2.Update.DELETE):
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "update type must be INSERT, MODIFY or "
                            "DELETE")
        which = update.entity.WhichOneof("entity")
        with self.lock:
            if which == "table_entry":
                self._write_table_entry(update.type, update.entity.table_entry)
            elif which == "action_profile_member":
                self._write_member(update.type, update.entity.action_profile_member)
            elif which == "action_profile_group":
                self._write_group(update.type, update.entity.action_profile_group)
            elif which == "counter_entry":
                if update.type != p4runtime_pb2.Update.MODIFY:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    "counter entries can only be modified")
                cid = update.entity.counter_entry.counter_id
                if cid not in self.schema.counters:
                    raise P4RTError(code_pb2.NOT_FOUND, f"unknown counter id {cid:#x}")
                raise P4RTError(code_pb2.UNIMPLEMENTED,
                                "counters cannot be written on this target")
            elif which is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "update has no entity")
            else:
                raise P4RTError(code_pb2.UNIMPLEMENTED, f"{which} is not supported")

    def _write_table_entry(self, utype: int, entry: p4runtime_pb2.TableEntry) -> None:
        table = self._table(entry.table_id)
        self._check_entry_common(entry, table)
        if table.id == self.t_l2.id:
            raise P4RTError(code_pb2.UNIMPLEMENTED,
                            f"{table.name} is BMv2-only; the kernel forwards non-chain traffic "
                            "on this target")
        if entry.is_default_action:
            self._write_default(utype, table, entry)
            return
        if not table.fields:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name} is keyless: only its default entry can be modified")
        self._check_priority(table, entry.priority)
        key, canon_match = self._parse_match(table, entry)
        if table.id == self.t_classifier.id:
            self._write_classifier(utype, table, entry, key, canon_match)
        elif table.id == self.t_sff.id:
            self._write_sff(utype, table, entry, key, canon_match)
        elif table.id == self.t_select.id:
            self._write_select(utype, table, entry, key, canon_match)
        else:  # pragma: no cover - every table of the P4Info is handled above
            raise P4RTError(code_pb2.UNIMPLEMENTED, f"{table.name} cannot be written")

    def _canon_entry(self, table: TableInfo, entry: p4runtime_pb2.TableEntry, canon_match,
                     action: p4runtime_pb2.TableAction) -> p4runtime_pb2.TableEntry:
        te = p4runtime_pb2.TableEntry(table_id=table.id, priority=entry.priority,
                                      metadata=entry.metadata,
                                      controller_metadata=entry.controller_metadata)
        te.match.extend(canon_match)
        te.action.CopyFrom(action)
        return te

    def _direct_action(self, table: TableInfo, entry: p4runtime_pb2.TableEntry):
        kind = entry.action.WhichOneof("type")
        if kind != "action":
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name} is a direct table: the entry needs an action, "
                            f"not {kind}")
        aid, params, canon = self._parse_action(entry.action.action, table.scopes,
                                                table.name, table.scopes)
        ta = p4runtime_pb2.TableAction()
        ta.action.CopyFrom(canon)
        return aid, params, ta

    def _lookup_for_write(self, utype: int, store: dict, key, table: TableInfo,
                          entry: p4runtime_pb2.TableEntry):
        old = store.get(key)
        if utype == p4runtime_pb2.Update.INSERT:
            if old is not None:
                raise P4RTError(code_pb2.ALREADY_EXISTS, f"{table.name}: entry already exists")
            if len(store) >= table.size:
                raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                                f"{table.name} is full ({table.size} entries)")
            if not entry.HasField("action"):
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"{table.name}: INSERT needs an action")
        elif old is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"{table.name}: no such entry")
        return old

    def _write_classifier(self, utype, table, entry, key, canon_match) -> None:
        store_key = (entry.priority, key)
        old = self._lookup_for_write(utype, self.classifier, store_key, table, entry)
        new = dict(self.classifier)
        if utype == p4runtime_pb2.Update.DELETE:
            del new[store_key]
        else:
            if entry.HasField("action"):
                _, params, ta = self._direct_action(table, entry)
                spi = params["spi"]
            else:  # MODIFY without an action keeps the action
                ta = old.msg.action
                spi = old.data.spi
            src, dst, proto, l4s, l4d = (Ternary(*v) for v in key)
            rule = ClassifierRule(priority=entry.priority, src=src, dst=dst, proto=proto,
                                  l4_src=l4s, l4_dst=l4d, spi=spi)
            seq = old.seq if old is not None else self._next_seq()
            new[store_key] = _TableEntry(self._canon_entry(table, entry, canon_match, ta),
                                         rule, seq)
        self._call(self.target.set_classifier, self._sorted_rules(new))
        self.classifier = new

    def _write_sff(self, utype, table, entry, key, canon_match) -> None:
        spi, si = key
        old = self._lookup_for_write(utype, self.sff, key, table, entry)
        if utype == p4runtime_pb2.Update.DELETE:
            self._call(self.target.delete_sff, spi, si)
            del self.sff[key]
            return
        if not entry.HasField("action"):
            old.msg.metadata = entry.metadata
            old.msg.controller_metadata = entry.controller_metadata
            return
        aid, params, ta = self._direct_action(table, entry)
        if aid == self.a_to_service:
            action = SffAction("to_service", params["service_id"])
        elif aid == self.a_eoc:
            action = SffAction("end_of_chain")
        else:
            action = SffAction("drop")
        self._call(self.target.set_sff, spi, si, action)
        seq = old.seq if old is not None else self._next_seq()
        self.sff[key] = _TableEntry(self._canon_entry(table, entry, canon_match, ta), action, seq)

    def _write_select(self, utype, table, entry, key, canon_match) -> None:
        slot = select_slot(*key)  # (service id, from_remote); both fit their bitwidths
        old = self._lookup_for_write(utype, self.select, key, table, entry)
        if utype == p4runtime_pb2.Update.DELETE:
            if slot in self.installed:
                self._call(self.target.delete_group, slot)
                del self.installed[slot]
            del self.select[key]
            return
        if not entry.HasField("action"):
            old.msg.metadata = entry.metadata
            old.msg.controller_metadata = entry.controller_metadata
            return
        kind = entry.action.WhichOneof("type")
        ta = p4runtime_pb2.TableAction()
        if kind == "action_profile_group_id":
            gid = entry.action.action_profile_group_id
            if gid == 0:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "group id 0 is not valid")
            if gid not in self.groups:
                raise P4RTError(code_pb2.NOT_FOUND, f"{P_SELECTOR}: no group {gid}")
            ref = ("group", gid)
            ta.action_profile_group_id = gid
        elif kind == "action_profile_member_id":
            mid = entry.action.action_profile_member_id
            if mid == 0:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "member id 0 is not valid")
            if mid not in self.members:
                raise P4RTError(code_pb2.NOT_FOUND, f"{P_SELECTOR}: no member {mid}")
            ref = ("member", mid)
            ta.action_profile_member_id = mid
        elif kind == "action_profile_action_set":
            raise P4RTError(code_pb2.UNIMPLEMENTED,
                            "one-shot action selector programming is not supported")
        else:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"{table.name} is indirect: use a group or member id, not {kind}")
        self._install_slot(slot, self._service_members(ref))
        seq = old.seq if old is not None else self._next_seq()
        self.select[key] = _TableEntry(self._canon_entry(table, entry, canon_match, ta), ref,
                                       seq)

    def _write_default(self, utype: int, table: TableInfo,
                       entry: p4runtime_pb2.TableEntry) -> None:
        if utype != p4runtime_pb2.Update.MODIFY:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            "the default entry can only be modified (not inserted or deleted)")
        if len(entry.match) or entry.priority:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            "a default entry has no match and priority 0")
        if table.const_default_action_id:
            raise P4RTError(code_pb2.PERMISSION_DENIED,
                            f"{table.name} has a constant default action")
        if table.id != self.t_config.id:  # pragma: no cover - only sff_config has one
            raise P4RTError(code_pb2.UNIMPLEMENTED, f"{table.name}: default entry not supported")
        if not entry.HasField("action"):
            cfg = self.initial_config
        else:
            kind = entry.action.WhichOneof("type")
            if kind != "action":
                raise P4RTError(code_pb2.INVALID_ARGUMENT, f"{table.name} needs an action")
            _, params, _ = self._parse_action(entry.action.action, table.scopes, table.name,
                                              table.scopes, default=True)
            cfg = ConnectorConfig(IPv4Address(params["local_ip"]),
                                  params["router_mac"].to_bytes(6, "big"),
                                  params["local_mac"].to_bytes(6, "big"))
        self._call(self.target.set_config, cfg)
        self.config = cfg
        te = self._config_entry(cfg)
        te.metadata = entry.metadata
        te.controller_metadata = entry.controller_metadata
        self.config_entry = te

    def _check_profile(self, profile_id: int) -> None:
        if profile_id == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "action_profile_id 0 is not valid")
        if profile_id != self.profile.preamble.id:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown action profile id {profile_id:#x}")

    def _write_member(self, utype: int, m: p4runtime_pb2.ActionProfileMember) -> None:
        self._check_profile(m.action_profile_id)
        if m.member_id == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "member id 0 is not valid")
        old = self.members.get(m.member_id)
        if utype == p4runtime_pb2.Update.DELETE:
            if old is None:
                raise P4RTError(code_pb2.NOT_FOUND, f"no member {m.member_id}")
            users = sorted(g for g, grp in self.groups.items()
                           if any(mid == m.member_id for mid, _ in grp.members))
            if users:
                raise P4RTError(code_pb2.FAILED_PRECONDITION,
                                f"member {m.member_id} is in group(s) {users}")
            if any(e.data == ("member", m.member_id) for e in self.select.values()):
                raise P4RTError(code_pb2.FAILED_PRECONDITION,
                                f"member {m.member_id} is used by a {T_SELECT} entry")
            self._call(self.target.delete_member, m.member_id)
            del self.members[m.member_id]
            return
        if utype == p4runtime_pb2.Update.INSERT:
            if old is not None:
                raise P4RTError(code_pb2.ALREADY_EXISTS, f"member {m.member_id} exists")
            if len(self.members) >= self.profile.size:
                raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                                f"{P_SELECTOR} is full ({self.profile.size} members)")
        elif old is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"no member {m.member_id}")
        if not m.HasField("action"):
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "a member needs an action")
        allowed = (self.a_local, self.a_remote)
        aid, params, canon = self._parse_action(m.action, allowed, P_SELECTOR)
        if aid == self.a_local:
            member = Member("local", port=params["port"],
                            dmac=params["dmac"].to_bytes(6, "big"))
        else:
            member = Member("remote", endpoint=IPv4Address(params["endpoint"]))
        self._call(self.target.set_member, m.member_id, member)
        msg = p4runtime_pb2.ActionProfileMember(action_profile_id=m.action_profile_id,
                                                member_id=m.member_id)
        msg.action.CopyFrom(canon)
        self.members[m.member_id] = _Member(msg, member)

    def _write_group(self, utype: int, g: p4runtime_pb2.ActionProfileGroup) -> None:
        self._check_profile(g.action_profile_id)
        if g.group_id == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "group id 0 is not valid")
        old = self.groups.get(g.group_id)
        users = self._group_users(g.group_id)
        if utype == p4runtime_pb2.Update.DELETE:
            if old is None:
                raise P4RTError(code_pb2.NOT_FOUND, f"no group {g.group_id}")
            if users:
                raise P4RTError(code_pb2.FAILED_PRECONDITION,
                                f"group {g.group_id} is used by {T_SELECT} entries {users}")
            del self.groups[g.group_id]
            return
        if utype == p4runtime_pb2.Update.INSERT:
            if old is not None:
                raise P4RTError(code_pb2.ALREADY_EXISTS, f"group {g.group_id} exists")
            if len(self.groups) >= self.profile.size:
                raise P4RTError(code_pb2.RESOURCE_EXHAUSTED, "too many groups")
        elif old is None:
            raise P4RTError(code_pb2.NOT_FOUND, f"no group {g.group_id}")
        if g.max_size < 0 or g.max_size > self.max_group_size:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"max_size {g.max_size} is not in 0..{self.max_group_size}")
        if old is not None and g.max_size != old.max_size:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"max_size cannot change ({old.max_size} -> {g.max_size})")
        limit = g.max_size or self.max_group_size
        members: list[tuple[int, int]] = []
        seen: set[int] = set()
        for gm in g.members:
            if gm.member_id in seen:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"member {gm.member_id} is listed twice (use its weight)")
            seen.add(gm.member_id)
            if gm.member_id not in self.members:
                raise P4RTError(code_pb2.NOT_FOUND, f"no member {gm.member_id}")
            if gm.weight < 1:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"member {gm.member_id}: weight {gm.weight} (must be >= 1)")
            if gm.WhichOneof("watch_kind") is not None:
                raise P4RTError(code_pb2.UNIMPLEMENTED, "watch ports are not supported")
            members.append((gm.member_id, gm.weight))
        total = sum(w for _, w in members)
        if total > self.max_group_size:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            f"group {g.group_id}: sum of weights {total} > max_group_size "
                            f"{self.max_group_size}")
        if total > limit:
            raise P4RTError(code_pb2.RESOURCE_EXHAUSTED,
                            f"group {g.group_id}: sum of weights {total} > max_size {limit}")
        msg = p4runtime_pb2.ActionProfileGroup(action_profile_id=g.action_profile_id,
                                               group_id=g.group_id, max_size=g.max_size)
        for mid, w in members:
            msg.members.add(member_id=mid, weight=w)
        group = _Group(msg, members, g.max_size)
        # Re-send every select slot that uses this group; undo on a target error.
        done: list[tuple[int, list[tuple[int, int]] | None]] = []
        try:
            for key in users:
                slot = select_slot(*key)
                done.append((slot, self.installed.get(slot)))
                self._install_slot(slot, members)
        except P4RTError:
            for slot, before in reversed(done):
                try:
                    self._install_slot(slot, before or [])
                except P4RTError:
                    log.error("could not restore the group of select slot %d", slot)
            raise
        self.groups[g.group_id] = group

    def reset(self) -> None:
        """Clear all forwarding state (VERIFY_AND_COMMIT)."""
        with self.lock:
            for slot in sorted(self.installed):
                self._call(self.target.delete_group, slot)
            self.installed.clear()
            self.select.clear()
            self.groups.clear()
            for mid in sorted(self.members):
                self._call(self.target.delete_member, mid)
            self.members.clear()
            for spi, si in sorted(self.sff):
                self._call(self.target.delete_sff, spi, si)
            self.sff.clear()
            if self.classifier:
                self._call(self.target.set_classifier, [])
            self.classifier.clear()
            if self.config != self.initial_config:
                self._call(self.target.set_config, self.initial_config)
            self.config = self.initial_config
            self.config_entry = self._config_entry(self.initial_config)

    # ---------------------------------------------------------------- read

    def read_batch(self, entities: Sequence[p4runtime_pb2.Entity]):
        """-> (entities read, one error or None per request)."""
        out: list[p4runtime_pb2.Entity] = []
        errors: list[P4RTError | None] = []
        with self.lock:
            for ent in entities:
                try:
                    out.extend(self.read(ent))
                    errors.append(None)
                except P4RTError as e:
                    errors.append(e)
        return out, errors

    def read(self, entity: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
        which = entity.WhichOneof("entity")
        with self.lock:
            if which == "table_entry":
                return [p4runtime_pb2.Entity(table_entry=t)
                        for t in self._read_table_entries(entity.table_entry)]
            if which == "action_profile_member":
                return [p4runtime_pb2.Entity(action_profile_member=m)
                        for m in self._read_members(entity.action_profile_member)]
            if which == "action_profile_group":
                return [p4runtime_pb2.Entity(action_profile_group=g)
                        for g in self._read_groups(entity.action_profile_group)]
            if which == "counter_entry":
                return [p4runtime_pb2.Entity(counter_entry=c)
                        for c in self._read_counters(entity.counter_entry)]
            if which is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "read request has no entity")
            raise P4RTError(code_pb2.UNIMPLEMENTED, f"reading {which} is not supported")

    def _default_entry(self, table: TableInfo) -> p4runtime_pb2.TableEntry:
        if table.id == self.t_config.id:
            return self.config_entry
        te = p4runtime_pb2.TableEntry(table_id=table.id, is_default_action=True)
        te.action.action.action_id = table.const_default_action_id or self.a_noaction
        return te

    def _entries_of(self, table: TableInfo) -> list[_TableEntry]:
        store = {self.t_classifier.id: self.classifier, self.t_sff.id: self.sff,
                 self.t_select.id: self.select}.get(table.id, {})
        return sorted(store.values(), key=lambda e: e.seq)

    def _read_table_entries(self, q: p4runtime_pb2.TableEntry) -> list:
        if q.table_id == 0:
            if len(q.match) or q.is_default_action:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                "a read of all tables (table_id 0) takes no other filter")
            res = []
            for t in self.schema.tables.values():
                res.extend(e.msg for e in self._entries_of(t))
            return res
        table = self._table(q.table_id)
        if q.is_default_action:
            return [self._default_entry(table)]
        entries = [e.msg for e in self._entries_of(table)]
        if len(q.match):
            _, canon = self._parse_match(table, q)
            entries = [e for e in entries if list(e.match) == canon]
        if q.priority:
            entries = [e for e in entries if e.priority == q.priority]
        if q.HasField("action") and q.action.WhichOneof("type") == "action":
            aid = q.action.action.action_id
            entries = [e for e in entries if e.action.action.action_id == aid]
        if q.metadata:
            entries = [e for e in entries if e.metadata == q.metadata]
        if q.controller_metadata:
            entries = [e for e in entries if e.controller_metadata == q.controller_metadata]
        return entries

    def _read_members(self, q: p4runtime_pb2.ActionProfileMember) -> list:
        if q.action_profile_id:
            self._check_profile(q.action_profile_id)
        if q.member_id:
            m = self.members.get(q.member_id)
            return [m.msg] if m else []
        return [self.members[k].msg for k in sorted(self.members)]

    def _read_groups(self, q: p4runtime_pb2.ActionProfileGroup) -> list:
        if q.action_profile_id:
            self._check_profile(q.action_profile_id)
        if q.group_id:
            g = self.groups.get(q.group_id)
            return [g.msg] if g else []
        return [self.groups[k].msg for k in sorted(self.groups)]

    def _counter_cells(self, counter_id: int) -> list[Counter]:
        size = self.schema.counters[counter_id].size
        zero = Counter()
        if counter_id == self.c_members:
            got = self._call(self.target.member_counters)
            return [got.get(i, zero) for i in range(size)]
        if counter_id == self.c_drops:
            got = self._call(self.target.drop_counters)
            return [got.get(DROP_REASONS[i], zero) if i < len(DROP_REASONS) else zero
                    for i in range(size)]
        misc = self._call(self.target.misc_counters)
        if counter_id == self.c_classified:
            return [misc.get("classified", zero)] + [zero] * (size - 1)
        if counter_id == self.c_eoc:
            return [misc.get("end_of_chain", zero)] + [zero] * (size - 1)
        return [zero] * size  # pragma: no cover - a counter of another P4Info

    def _read_counters(self, q: p4runtime_pb2.CounterEntry) -> list:
        if q.counter_id == 0:
            ids = list(self.schema.counters)
        elif q.counter_id in self.schema.counters:
            ids = [q.counter_id]
        else:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown counter id {q.counter_id:#x}")
        res = []
        for cid in ids:
            cells = self._counter_cells(cid)
            if q.counter_id and q.HasField("index"):
                i = q.index.index
                if i < 0:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT, f"negative index {i}")
                if i >= len(cells):
                    raise P4RTError(code_pb2.OUT_OF_RANGE,
                                    f"index {i} >= size {len(cells)} of the counter")
                indices = [i]
            else:
                indices = list(range(len(cells)))
            for i in indices:
                ce = p4runtime_pb2.CounterEntry(counter_id=cid)
                ce.index.index = i
                ce.data.packet_count = cells[i].packets
                ce.data.byte_count = cells[i].bytes
                res.append(ce)
        return res


# --------------------------------------------------------------------------- arbitration

_END = object()


class _Stream:
    def __init__(self, peer: str):
        self.peer = peer
        self.queue: queue.Queue = queue.Queue()
        self.arbitrated = False
        self.election_id: int | None = None


class Arbiter:
    """Primary/backup election for the default role of one device."""

    def __init__(self, device_id: int, mode: str = "live", max_streams: int = MAX_STREAMS):
        if mode not in ("live", "spec"):
            raise ValueError(f"arbitration mode {mode!r}")
        self.device_id = device_id
        self.mode = mode
        self.max_streams = max_streams
        self.lock = threading.RLock()
        self.streams: list[_Stream] = []
        self.highest: int | None = None  # highest election id ever seen

    def primary(self) -> _Stream | None:
        with self.lock:
            candidates = [s for s in self.streams if s.election_id is not None]
            if not candidates:
                return None
            best = max(candidates, key=lambda s: s.election_id)
            if self.mode == "spec" and best.election_id != self.highest:
                return None
            return best

    def primary_election(self) -> int | None:
        p = self.primary()
        return p.election_id if p else None

    def _notification(self, stream: _Stream, primary: _Stream | None):
        upd = p4runtime_pb2.MasterArbitrationUpdate(device_id=self.device_id)
        shown = self.highest if self.mode == "spec" else (primary.election_id if primary
                                                           else None)
        if shown is not None:
            upd.election_id.CopyFrom(_uint128(shown))
        if primary is None:
            upd.status.code = code_pb2.NOT_FOUND
            upd.status.message = "no primary client"
        elif primary is stream:
            upd.status.code = code_pb2.OK
            upd.status.message = "primary"
        else:
            upd.status.code = code_pb2.ALREADY_EXISTS
            upd.status.message = "backup: another client is primary"
        return p4runtime_pb2.StreamMessageResponse(arbitration=upd)

    def _notify(self, streams: Iterable[_Stream]) -> None:
        primary = self.primary()
        for s in streams:
            s.queue.put(self._notification(s, primary))

    def handle(self, stream: _Stream, msg: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        """Apply one MasterArbitrationUpdate; P4RTError = terminate the stream."""
        with self.lock:
            if msg.device_id != self.device_id:
                code = code_pb2.FAILED_PRECONDITION if stream.arbitrated else code_pb2.NOT_FOUND
                raise P4RTError(code, f"unknown device id {msg.device_id} "
                                      f"(this is device {self.device_id})")
            if msg.role.name:
                code = (code_pb2.FAILED_PRECONDITION if stream.arbitrated
                        else code_pb2.NOT_FOUND)
                raise P4RTError(code, f"role {msg.role.name!r}: only the default role exists")
            if msg.role.HasField("config"):
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "role config is not supported")
            eid = election_of(msg)
            if eid is not None and any(s is not stream and s.election_id == eid
                                       for s in self.streams):
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                f"election id {eid} is used by another client")
            if not stream.arbitrated and len(self.streams) >= self.max_streams:
                raise P4RTError(code_pb2.RESOURCE_EXHAUSTED, "too many clients")
            before = self.primary()
            before_eid = before.election_id if before else None
            stream.election_id = eid
            if not stream.arbitrated:
                stream.arbitrated = True
                self.streams.append(stream)
            if eid is not None and (self.highest is None or eid > self.highest):
                self.highest = eid
            after = self.primary()
            changed = after is not before or (after is not None
                                              and after.election_id != before_eid)
            log.info("arbitration from %s: election id %s -> %s", stream.peer, eid,
                     "primary" if after is stream else "backup")
            self._notify(self.streams if changed else [stream])

    def remove(self, stream: _Stream) -> None:
        with self.lock:
            if stream not in self.streams:
                return
            was_primary = self.primary() is stream
            self.streams.remove(stream)
            log.info("client %s left%s", stream.peer, " (was primary)" if was_primary else "")
            if was_primary:
                self._notify(self.streams)

    def check_writer(self, device_id: int, role: str, election: int | None) -> None:
        if device_id != self.device_id:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown device id {device_id}")
        if role:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown role {role!r}")
        primary = self.primary_election()
        if primary is None or election is None or election != primary:
            raise P4RTError(code_pb2.PERMISSION_DENIED,
                            "not the primary client (election id "
                            f"{election} is not the primary's)")


# --------------------------------------------------------------------------- gRPC service


def _status_details(code: int, message: str, errors: Sequence[P4RTError | None]) -> bytes:
    st = status_pb2.Status(code=code, message=message)
    for e in errors:
        err = e.to_p4_error() if e is not None else p4runtime_pb2.Error(
            canonical_code=code_pb2.OK)
        a = any_pb2.Any()
        a.Pack(err)
        st.details.append(a)
    return st.SerializeToString()


class P4RuntimeServicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, pipeline: Pipeline, arbiter: Arbiter, cookie: int | None = None):
        self.pipeline = pipeline
        self.arbiter = arbiter
        self.device_config = b""
        self.cookie = cookie if cookie is not None else p4info_cookie(pipeline.p4info)
        self.saved: p4runtime_pb2.ForwardingPipelineConfig | None = None
        self.fingerprint = p4info_fingerprint(pipeline.p4info)
        self.config_lock = threading.Lock()

    @staticmethod
    def _abort(context, e: P4RTError):
        context.abort(e.grpc_code, e.message)

    def _fail_batch(self, context, errors: Sequence[P4RTError | None], what: str) -> None:
        bad = [(i, e) for i, e in enumerate(errors) if e is not None]
        i, first = bad[0]
        msg = (f"{what}: {len(bad)} of {len(errors)} failed; first at index {i}: "
               f"{code_pb2.Code.Name(first.code)}: {first.message}")
        context.set_trailing_metadata(
            (("grpc-status-details-bin", _status_details(code_pb2.UNKNOWN, msg, errors)),))
        context.set_code(grpc.StatusCode.UNKNOWN)
        context.set_details(msg)

    def Write(self, request, context):  # noqa: N802 (gRPC names)
        try:
            self.arbiter.check_writer(request.device_id, request.role, election_of(request))
            if request.atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR:
                raise P4RTError(code_pb2.UNIMPLEMENTED,
                                "only CONTINUE_ON_ERROR batches are supported")
        except P4RTError as e:
            self._abort(context, e)
        errors = self.pipeline.write_batch(request.updates)
        if any(e is not None for e in errors):
            self._fail_batch(context, errors, "write")
        return p4runtime_pb2.WriteResponse()

    def Read(self, request, context):  # noqa: N802 (gRPC names)
        if request.device_id != self.arbiter.device_id:
            self._abort(context, P4RTError(code_pb2.NOT_FOUND,
                                           f"unknown device id {request.device_id}"))
        if request.role:
            self._abort(context, P4RTError(code_pb2.NOT_FOUND, f"unknown role {request.role!r}"))
        entities, errors = self.pipeline.read_batch(request.entities)
        for i in range(0, len(entities), READ_CHUNK):
            yield p4runtime_pb2.ReadResponse(entities=entities[i:i + READ_CHUNK])
        if any(e is not None for e in errors):
            self._fail_batch(context, errors, "read")

    def SetForwardingPipelineConfig(self, request, context):  # noqa: N802 (gRPC names)
        act = p4runtime_pb2.SetForwardingPipelineConfigRequest
        try:
            self.arbiter.check_writer(request.device_id, request.role, election_of(request))
            with self.config_lock:
                action = request.action
                has_config = request.HasField("config")
                if action == act.COMMIT:
                    if has_config:
                        raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                        "COMMIT takes no config (it commits the saved one)")
                    if self.saved is None:
                        raise P4RTError(code_pb2.NOT_FOUND, "no saved config to commit")
                    self._adopt(self.saved)
                    self.saved = None
                    return p4runtime_pb2.SetForwardingPipelineConfigResponse()
                if action not in (act.VERIFY, act.VERIFY_AND_SAVE, act.VERIFY_AND_COMMIT,
                                  act.RECONCILE_AND_COMMIT):
                    raise P4RTError(code_pb2.INVALID_ARGUMENT, "unspecified config action")
                if not has_config or not request.config.HasField("p4info"):
                    raise P4RTError(code_pb2.INVALID_ARGUMENT, "a config with a P4Info is "
                                    "required")
                if p4info_fingerprint(request.config.p4info) != self.fingerprint:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    "this P4Info is not the connector pipeline "
                                    "(connector.p4info.txtpb); the pipeline is fixed")
                if action == act.VERIFY_AND_SAVE:
                    self.saved = p4runtime_pb2.ForwardingPipelineConfig()
                    self.saved.CopyFrom(request.config)
                elif action == act.VERIFY_AND_COMMIT:
                    self.pipeline.reset()
                    self._adopt(request.config)
                elif action == act.RECONCILE_AND_COMMIT:
                    self._adopt(request.config)
        except P4RTError as e:
            self._abort(context, e)
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def _adopt(self, config: p4runtime_pb2.ForwardingPipelineConfig) -> None:
        self.device_config = config.p4_device_config
        if config.HasField("cookie"):
            self.cookie = config.cookie.cookie
        else:
            self.cookie = p4info_cookie(self.pipeline.p4info)
        log.info("pipeline config committed (cookie %#x)", self.cookie)

    def GetForwardingPipelineConfig(self, request, context):  # noqa: N802 (gRPC names)
        if request.device_id != self.arbiter.device_id:
            self._abort(context, P4RTError(code_pb2.NOT_FOUND,
                                           f"unknown device id {request.device_id}"))
        rt = p4runtime_pb2.GetForwardingPipelineConfigRequest
        cfg = p4runtime_pb2.ForwardingPipelineConfig()
        cfg.cookie.cookie = self.cookie
        if request.response_type in (rt.ALL, rt.P4INFO_AND_COOKIE):
            cfg.p4info.CopyFrom(self.pipeline.p4info)
        if request.response_type in (rt.ALL, rt.DEVICE_CONFIG_AND_COOKIE):
            cfg.p4_device_config = self.device_config
        return p4runtime_pb2.GetForwardingPipelineConfigResponse(config=cfg)

    def Capabilities(self, request, context):  # noqa: N802 (gRPC names)
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    def StreamChannel(self, request_iterator, context):  # noqa: N802 (gRPC names)
        stream = _Stream(context.peer())

        def stream_error(code: int, message: str, req) -> p4runtime_pb2.StreamMessageResponse:
            err = p4runtime_pb2.StreamError(canonical_code=code, message=message)
            kind = req.WhichOneof("update")
            if kind == "packet":
                err.packet_out.packet_out.CopyFrom(req.packet)
            elif kind == "digest_ack":
                err.digest_list_ack.digest_list_ack.CopyFrom(req.digest_ack)
            else:
                err.other.SetInParent()
            return p4runtime_pb2.StreamMessageResponse(error=err)

        def reader():
            try:
                for req in request_iterator:
                    kind = req.WhichOneof("update")
                    if kind == "arbitration":
                        try:
                            self.arbiter.handle(stream, req.arbitration)
                        except P4RTError as e:
                            stream.queue.put(e)
                            return
                    elif not stream.arbitrated:
                        stream.queue.put(stream_error(
                            code_pb2.FAILED_PRECONDITION,
                            "send a MasterArbitrationUpdate first", req))
                    else:
                        stream.queue.put(stream_error(
                            code_pb2.UNIMPLEMENTED,
                            f"{kind} is not supported (no packet I/O or digests)", req))
            except Exception as e:  # the client went away (cancelled RPC)
                log.debug("stream %s reader ended: %s", stream.peer, e)
            finally:
                stream.queue.put(_END)

        context.add_callback(lambda: stream.queue.put(_END))
        threading.Thread(target=reader, name="p4rt-stream", daemon=True).start()
        try:
            while True:
                item = stream.queue.get()
                if item is _END:
                    break
                if isinstance(item, P4RTError):
                    self._abort(context, item)
                yield item
        finally:
            self.arbiter.remove(stream)


# --------------------------------------------------------------------------- server


class P4RuntimeServer:
    """A P4Runtime server for one connector, listening on a unix socket and/or TCP."""

    def __init__(self, target: Target, *, socket_path: str | os.PathLike | None = None,
                 grpc_addr: str | None = None, device_id: int = DEFAULT_DEVICE_ID,
                 p4info: p4info_pb2.P4Info | None = None, arbitration: str = "live",
                 initial_config: ConnectorConfig | None = None, restore=None,
                 max_workers: int = 32):
        if socket_path is None and grpc_addr is None:
            raise ValueError("give a unix socket path and/or a host:port")
        self.target = target
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.grpc_addr = grpc_addr
        self.port: int | None = None
        self.pipeline = Pipeline(target, p4info if p4info is not None else load_p4info(),
                                 initial_config, restore)
        self.arbiter = Arbiter(device_id, arbitration)
        self.servicer = P4RuntimeServicer(self.pipeline, self.arbiter)
        self._server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="p4rt"))
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(self.servicer, self._server)
        self._stopped = threading.Event()

    @property
    def addresses(self) -> list[str]:
        out = []
        if self.socket_path is not None:
            out.append(f"unix:{self.socket_path}")
        if self.grpc_addr is not None:
            host = self.grpc_addr.rsplit(":", 1)[0]
            out.append(f"{host}:{self.port}")
        return out

    def start(self) -> P4RuntimeServer:
        if self.socket_path is not None:
            path = self.socket_path.absolute()
            if len(os.fsencode(path)) > 107:
                raise ValueError(f"unix socket path too long for sun_path: {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                if not stat.S_ISSOCK(path.lstat().st_mode):
                    raise FileExistsError(f"{path} exists and is not a socket")
                path.unlink()
            self.socket_path = path
            self._server.add_insecure_port(f"unix:{path}")
        if self.grpc_addr is not None:
            self.port = self._server.add_insecure_port(self.grpc_addr)
            if not self.port:
                raise OSError(f"cannot listen on {self.grpc_addr}")
        self._server.start()
        if self.socket_path is not None:
            os.chmod(self.socket_path, 0o660)
        log.info("P4Runtime server for device %d on %s", self.arbiter.device_id,
                 ", ".join(self.addresses))
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait()
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def wait(self) -> None:
        self._server.wait_for_termination()


# --------------------------------------------------------------------------- targets


class NullTarget:
    """Accepts every write and counts nothing (``--target null``: dry runs, demos)."""

    def __getattr__(self, name):
        if name in ("set_config", "set_classifier", "set_sff", "delete_sff", "set_member",
                    "delete_member", "set_group", "delete_group", "close"):
            return lambda *args: log.debug("null target: %s%s", name, args)
        raise AttributeError(name)

    def member_counters(self) -> dict[int, Counter]:
        return {}

    def drop_counters(self) -> dict[str, Counter]:
        return {}

    def misc_counters(self) -> dict[str, Counter]:
        return {}


PORT_ROLES = {"router", "hostbridge", "vnf", "host"}


def port_role(p4port: int) -> str:
    """The role PIPELINE.md gives a P4 port number."""
    if p4port == 1:
        return "router"
    if p4port == 2:
        return "hostbridge"
    if 16 <= p4port < 64:
        return "vnf"
    if 64 <= p4port < 512:
        return "host"
    raise ValueError(f"P4 port {p4port} has no role (1, 2, 16..63, 64..511); "
                     "give one as N=IFNAME:ROLE")


def _port_arg(text: str) -> tuple[int, str, str]:
    num, sep, rest = text.partition("=")
    ifname, _, role = rest.partition(":")
    if not sep or not num.isdigit() or not ifname:
        raise argparse.ArgumentTypeError(f"expected N=IFNAME[:ROLE], got {text!r}")
    n = int(num)
    if not 0 < n < 512:
        raise argparse.ArgumentTypeError(f"P4 port {n} is not in 1..511")
    if role and role not in PORT_ROLES:
        raise argparse.ArgumentTypeError(f"role {role!r} is not one of {sorted(PORT_ROLES)}")
    try:
        return n, ifname, role or port_role(n)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def resolve_port(ifname: str, role: str) -> tuple[str, int, str, str]:
    """(ifname, ifindex, mac, role) of an interface in this network namespace."""
    from connector_p4.ebpf_target import interface_mac

    # ioctl, not /sys/class/net: this process may see another namespace's sysfs
    ifindex = socket.if_nametoindex(ifname)
    mac = ":".join(f"{b:02x}" for b in interface_mac(ifname))
    return ifname, ifindex, mac, role


def _mac_arg(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        raise argparse.ArgumentTypeError(f"not a MAC address: {text!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a MAC address: {text!r}") from None


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m connector_p4.p4rt_server",
        description="P4Runtime server for a dsfc connector (see connector_p4/PIPELINE.md).")
    p.add_argument("--socket", help="unix socket path to listen on (in the run folder)")
    p.add_argument("--grpc-addr", help="also (or instead) listen on HOST:PORT, e.g. "
                   "127.0.0.1:9559; keep it on loopback")
    p.add_argument("--device-id", type=int, default=DEFAULT_DEVICE_ID)
    p.add_argument("--p4info", default=str(P4INFO_PATH), help="P4Info text file")
    p.add_argument("--arbitration", choices=("live", "spec"), default="live",
                   help="live: highest live election id is primary (a backup takes over); "
                   "spec: highest election id ever seen (P4Runtime >= 1.3)")
    p.add_argument("--target", choices=("ebpf", "null"), default="ebpf")
    p.add_argument("--bpf-object", help="ebpf: compiled connector object (default: "
                   "connector_p4/ebpf/build/connector.o)")
    p.add_argument("--pin-dir", help="ebpf: bpffs folder of this connector's program and "
                   "maps; if a pipeline is pinned there already, the server takes it over "
                   "(and its tables) instead of loading a new one")
    p.add_argument("--port", type=_port_arg, action="append", default=[],
                   metavar="N=IFNAME[:ROLE]",
                   help="P4 port of an interface (repeat): 1=rtr 2=rtrh 16=v-fw1 64=h-h1; the "
                   "role (router, hostbridge, vnf, host) follows from N unless given")
    p.add_argument("--cache-timeout", type=int, default=30,
                   help="ebpf: flow-cache idle timeout in seconds")
    p.add_argument("--no-attach", dest="attach", action="store_false",
                   help="ebpf: do not attach the program to the ports (tc)")
    p.add_argument("--local-ip", type=IPv4Address,
                   help="start-up sff_config: NSH endpoint address of this connector")
    p.add_argument("--router-mac", type=_mac_arg, help="start-up sff_config: router MAC")
    p.add_argument("--local-mac", type=_mac_arg, help="start-up sff_config: MAC of port 1")
    p.add_argument("--log-level", default="INFO")
    return p


def make_target(args: argparse.Namespace):
    """-> (target, state to restore or None)."""
    if args.target == "null":
        return NullTarget(), None
    # Lazy: the eBPF target needs root, bpffs and libbpf; run this in the connector's netns.
    from connector_p4.ebpf_target import PROG_PIN, EbpfTarget

    if not args.pin_dir or not args.port:
        raise SystemExit("--target ebpf needs --pin-dir and --port N=IFNAME")
    ports = {n: resolve_port(ifname, role) for n, ifname, role in args.port}
    pin_dir = Path(args.pin_dir)
    if (pin_dir / PROG_PIN).exists():
        # A pipeline keeps forwarding while its server is down: take it over.
        target = EbpfTarget.open_pinned(pin_dir, ports)
        for n, spec in ports.items():
            target.add_port(n, spec)
        target.set_cache_timeout(int(args.cache_timeout))
        restore = target.read_state()
        log.info("took over the pipeline pinned at %s", pin_dir)
    else:
        obj = Path(args.bpf_object) if args.bpf_object else DEFAULT_BPF_OBJECT
        if not obj.exists():
            raise SystemExit(f"nothing pinned at {pin_dir} and no object {obj} "
                             "(python -m connector_p4.ebpf_build builds it)")
        target = EbpfTarget(obj, pin_dir, ports, cache_timeout_s=int(args.cache_timeout))
        target.load()
        restore = None
        log.info("loaded %s, pinned at %s", obj, pin_dir)
    if args.attach:
        target.attach()
    return target, restore


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.socket and not args.grpc_addr:
        print("give --socket PATH and/or --grpc-addr HOST:PORT", file=sys.stderr)
        return 2
    cfg_args = (args.local_ip, args.router_mac, args.local_mac)
    if any(a is not None for a in cfg_args) and not all(a is not None for a in cfg_args):
        print("--local-ip, --router-mac and --local-mac go together", file=sys.stderr)
        return 2
    initial = ConnectorConfig(*cfg_args) if all(a is not None for a in cfg_args) else None
    ports = [n for n, _, _ in args.port]
    if len(ports) != len(set(ports)):
        print("a P4 port number is given twice", file=sys.stderr)
        return 2
    target, restore = make_target(args)
    server = None
    try:
        server = P4RuntimeServer(target, socket_path=args.socket, grpc_addr=args.grpc_addr,
                                 device_id=args.device_id, p4info=load_p4info(args.p4info),
                                 arbitration=args.arbitration, initial_config=initial,
                                 restore=restore)
        server.start()
        done = threading.Event()

        def on_signal(signum, frame):
            log.info("signal %d: stopping", signum)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        done.wait()
    finally:
        if server is not None:
            server.stop()
        target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
