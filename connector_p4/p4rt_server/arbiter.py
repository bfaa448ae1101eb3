"""StreamChannel arbitration: primary/backup election for the default role of one device
(``live``: highest live election id; ``spec``: highest ever seen, P4Runtime >= 1.3)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from typing import Any

from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from connector_p4.p4rt_server.errors import P4RTError

log = logging.getLogger("connector_p4.p4rt_server")

MAX_STREAMS = 16
END = object()  # queued to end a stream's response loop


def election_of(msg: Any) -> int | None:
    """The 128-bit election id of a request or arbitration update (None if absent)."""
    if not msg.HasField("election_id"):
        return None
    return int((msg.election_id.high << 64) | msg.election_id.low)


def _uint128(v: int) -> Any:
    return p4runtime_pb2.Uint128(high=v >> 64, low=v & ((1 << 64) - 1))


class Stream:
    """One client's StreamChannel: what the server sends it goes through ``queue``."""

    def __init__(self, peer: str):
        self.peer = peer
        self.queue: queue.Queue[Any] = queue.Queue()
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
        self.streams: list[Stream] = []
        self.highest: int | None = None  # highest election id ever seen

    def primary(self) -> Stream | None:
        with self.lock:
            candidates = [(s.election_id, s) for s in self.streams if s.election_id is not None]
            if not candidates:
                return None
            eid, best = max(candidates, key=lambda c: c[0])
            if self.mode == "spec" and eid != self.highest:
                return None
            return best

    def primary_election(self) -> int | None:
        p = self.primary()
        return p.election_id if p else None

    def _notification(self, stream: Stream, primary: Stream | None) -> Any:
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

    def _notify(self, streams: Iterable[Stream]) -> None:
        primary = self.primary()
        for s in streams:
            s.queue.put(self._notification(s, primary))

    def handle(self, stream: Stream, msg: Any) -> None:
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

    def remove(self, stream: Stream) -> None:
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
