"""The pipeline the servicer talks to: one connector's P4Runtime state, its Write and Read
batches (one lock with each other) and the reset of a VERIFY_AND_COMMIT."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.profiles import write_group, write_member
from connector_p4.p4rt_server.reads import read_entity
from connector_p4.p4rt_server.restore import TargetState, restore_view
from connector_p4.p4rt_server.schema import Bindings
from connector_p4.p4rt_server.state import ForwardingState
from connector_p4.p4rt_server.tables import write_table_entry
from connector_p4.target import ConnectorConfig, Target

log = logging.getLogger("connector_p4.p4rt_server")
UPDATE = p4runtime_pb2.Update


class Pipeline:
    """The P4Runtime state of one connector and its translation into Target calls."""

    def __init__(self, target: Target, p4info: Any,
                 initial_config: ConnectorConfig | None = None,
                 restore: TargetState | None = None):
        self.target = target
        self.p4info = p4info
        self.ids = Bindings.of(p4info)
        self.state = ForwardingState(target, self.ids, initial_config)
        self.lock = self.state.lock
        if restore is not None:
            restore_view(self.state, restore)
        if initial_config is not None and (restore is None or restore.config is None):
            self.state.call(target.set_config, initial_config)

    # ---------------------------------------------------------------- write

    def write_batch(self, updates: Sequence[Any]) -> list[P4RTError | None]:
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

    def write(self, update: Any) -> None:
        if update.type not in (UPDATE.INSERT, UPDATE.MODIFY, UPDATE.DELETE):
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            "update type must be INSERT, MODIFY or DELETE")
        entity = update.entity
        which = entity.WhichOneof("entity")
        with self.lock:
            if which == "table_entry":
                write_table_entry(self.state, update.type, entity.table_entry)
            elif which == "action_profile_member":
                write_member(self.state, update.type, entity.action_profile_member)
            elif which == "action_profile_group":
                write_group(self.state, update.type, entity.action_profile_group)
            elif which == "counter_entry":
                if update.type != UPDATE.MODIFY:
                    raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                    "counter entries can only be modified")
                cid = entity.counter_entry.counter_id
                if cid not in self.ids.schema.counters:
                    raise P4RTError(code_pb2.NOT_FOUND, f"unknown counter id {cid:#x}")
                raise P4RTError(code_pb2.UNIMPLEMENTED,
                                "counters cannot be written on this target")
            elif which is None:
                raise P4RTError(code_pb2.INVALID_ARGUMENT, "update has no entity")
            else:
                raise P4RTError(code_pb2.UNIMPLEMENTED, f"{which} is not supported")

    def reset(self) -> None:
        """Clear all forwarding state (VERIFY_AND_COMMIT)."""
        fs = self.state
        with self.lock:
            for slot in sorted(fs.installed):
                fs.call(self.target.delete_group, slot)
            fs.installed.clear()
            fs.select.clear()
            fs.groups.clear()
            for mid in sorted(fs.members):
                fs.call(self.target.delete_member, mid)
            fs.members.clear()
            for spi, si in sorted(fs.sff):
                fs.call(self.target.delete_sff, spi, si)
            fs.sff.clear()
            if fs.classifier:
                fs.call(self.target.set_classifier, [])
            fs.classifier.clear()
            if fs.config != fs.initial_config:
                fs.call(self.target.set_config, fs.initial_config)
            fs.config = fs.initial_config
            fs.config_entry = fs.make_config_entry(fs.initial_config)

    # ---------------------------------------------------------------- read

    def read_batch(self, entities: Sequence[Any]) -> tuple[list[Any], list[P4RTError | None]]:
        """-> (entities read, one error or None per request)."""
        out: list[Any] = []
        errors: list[P4RTError | None] = []
        with self.lock:
            for ent in entities:
                try:
                    out.extend(read_entity(self.state, ent))
                    errors.append(None)
                except P4RTError as e:
                    errors.append(e)
        return out, errors

    def read(self, entity: Any) -> list[Any]:
        with self.lock:
            return read_entity(self.state, entity)
