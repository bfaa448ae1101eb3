"""The P4Runtime state of one connector (entries, members, groups, select slots) and the
target calls that keep the target in step with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Generic, Literal, TypeVar

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError, code_from_name
from connector_p4.p4rt_server.schema import Bindings
from connector_p4.target import (
    ClassifierRule,
    ConnectorConfig,
    Member,
    SffAction,
    Target,
    TargetError,
)
from dmano.macaddr import mac_to_int
from dmano.p4info import TableInfo, encode_value

log = logging.getLogger("connector_p4.p4rt_server")

D = TypeVar("D")
R = TypeVar("R")
# what an instance_select entry points at: a group or a single member
SelectRef = tuple[Literal["group", "member"], int]


@dataclass
class StoredEntry(Generic[D]):
    msg: Any  # p4runtime_pb2.TableEntry, canonical form, returned by Read
    data: D  # what the target was given
    seq: int  # insertion order


@dataclass
class StoredGroup:
    msg: Any  # p4runtime_pb2.ActionProfileGroup
    members: list[tuple[int, int]]  # (member id, weight)
    max_size: int


@dataclass
class StoredMember:
    msg: Any  # p4runtime_pb2.ActionProfileMember
    member: Member


class ForwardingState:
    """Everything a Write changes, under one lock with the Reads."""

    def __init__(self, target: Target, ids: Bindings,
                 initial_config: ConnectorConfig | None = None):
        self.target = target
        self.ids = ids
        self.schema = ids.schema
        self.lock = threading.RLock()
        self._seq = 0
        self.classifier: dict[tuple[int, tuple[tuple[int, int], ...]],
                              StoredEntry[ClassifierRule]] = {}  # (priority, key) ->
        self.sff: dict[tuple[int, int], StoredEntry[SffAction]] = {}
        self.select: dict[tuple[int, int], StoredEntry[SelectRef]] = {}  # (sid, from_remote)
        self.members: dict[int, StoredMember] = {}
        self.groups: dict[int, StoredGroup] = {}
        self.installed: dict[int, list[tuple[int, int]]] = {}  # select slot -> members
        self.initial_config = initial_config or ConnectorConfig(
            IPv4Address(0), bytes(6), bytes(6))
        self.config = self.initial_config
        self.config_entry = self.make_config_entry(self.initial_config)

    def call(self, fn: Callable[..., R], *args: Any) -> R:
        """A target call; its failures become the P4RTError of the update."""
        try:
            return fn(*args)
        except TargetError as e:
            raise P4RTError(code_from_name(e.code), f"target: {e}") from None
        except P4RTError:
            raise
        except Exception as e:  # a target bug or an OS error: report, don't crash the RPC
            log.exception("target call %s failed", getattr(fn, "__name__", fn))
            raise P4RTError(code_pb2.INTERNAL, f"target: {type(e).__name__}: {e}") from None

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ---------------------------------------------------------------- entry builders

    @staticmethod
    def exact_entry(table: TableInfo, *values: int) -> Any:
        te = p4runtime_pb2.TableEntry(table_id=table.id)
        for f, v in zip(table.fields, values, strict=True):
            te.match.add(field_id=f.id, exact=p4runtime_pb2.FieldMatch.Exact(
                value=encode_value(v)))
        return te

    def make_action(self, action_id: int, *values: int) -> Any:
        """A canonical ``p4.v1.Action`` with its parameters in P4Info order."""
        action = p4runtime_pb2.Action(action_id=action_id)
        for p, v in zip(self.schema.actions[action_id].params, values, strict=True):
            action.params.add(param_id=p.id, value=encode_value(v))
        return action

    def set_direct_action(self, te: Any, action_id: int, *values: int) -> None:
        te.action.action.CopyFrom(self.make_action(action_id, *values))

    def make_config_entry(self, cfg: ConnectorConfig) -> Any:
        te = p4runtime_pb2.TableEntry(table_id=self.ids.t_config.id, is_default_action=True)
        self.set_direct_action(te, self.ids.a_set_config, int(cfg.local_ip),
                               mac_to_int(cfg.router_mac), mac_to_int(cfg.local_mac))
        return te

    # ---------------------------------------------------------------- select slots

    def service_members(self, ref: SelectRef) -> list[tuple[int, int]]:
        kind, ident = ref
        if kind == "member":
            return [(ident, 1)]
        return list(self.groups[ident].members)

    def install_slot(self, slot: int, members: list[tuple[int, int]]) -> None:
        """Make select slot ``slot`` hold ``members`` in the target (none: no group)."""
        if members:
            self.call(self.target.set_group, slot, list(members))
            self.installed[slot] = list(members)
        elif slot in self.installed:
            self.call(self.target.delete_group, slot)
            del self.installed[slot]

    def group_users(self, group_id: int) -> list[tuple[int, int]]:
        """The instance_select keys (sid, from_remote) whose entry points at the group."""
        return sorted(key for key, e in self.select.items() if e.data == ("group", group_id))

    def check_profile(self, profile_id: int) -> None:
        if profile_id == 0:
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "action_profile_id 0 is not valid")
        if profile_id != self.ids.profile_id:
            raise P4RTError(code_pb2.NOT_FOUND, f"unknown action profile id {profile_id:#x}")
