"""Glue to FRR's OSPF API through FRR's own client, ``ospfclient.py``.

The ``frr-pythontools`` package ships ``/usr/lib/frr/ospfclient.py``; it is found at run
time (``DSFC_OSPFCLIENT`` overrides the path) and loaded as a module. Through it the
D-MANO registers its opaque type (area-scope, type 10), originates / refreshes / deletes
one LSA per local VNF instance, and follows every LSA update and deletion of the area to
keep its LSDB mirror.

:class:`OspfApiSession` survives ``ospfd`` restarts: when the API connection drops it
reconnects with exponential backoff, re-registers, re-originates every announcement it
owns and resynchronises the mirror (``on_reset`` is called first so the caller can drop
its stale view).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from types import ModuleType
from typing import Any

from dmano import lsa

log = logging.getLogger(__name__)

OSPFCLIENT_PATHS = (Path("/usr/lib/frr/ospfclient.py"),
                    Path("/usr/local/lib/frr/ospfclient.py"))
LSA_TYPE_OPAQUE_AREA = 10
NOT_READY = "OSPF_API_NOTREADY"
REFRESH_MIN_S = 5.5  # FRR 8.4's fixed MinLSInterval (5 s) for one LSA, plus a margin


def choose_opaque_id(instance_id: int, generation: int,
                     current: tuple[int, float] | None, last: tuple[int, float] | None,
                     now: float) -> tuple[int, int, int | None]:
    """The opaque ID a (re-)origination of ``instance_id``'s LSA goes out under.

    ``generation``: the instance's current opaque-ID generation; ``current``: (opaque ID,
    time) of the LSA ospfd holds for it, if any; ``last``: (opaque ID, time) of its last
    origination, kept after a withdrawal; ``now``: the same clock. FRR 8.4 delays a
    refresh of one LSA until 5 s after its previous origination, so a change sooner than
    :data:`REFRESH_MIN_S` goes out at once under the next generation's opaque ID (the
    previous LSA is then deleted), and so does an announcement soon after a withdrawal
    (a VNF restarted). Returns (opaque ID, generation, opaque ID to delete or None).
    Also used by the control-plane simulation (``scenarios.simulate``)."""
    previous = None
    if current is not None and now - current[1] < REFRESH_MIN_S:
        previous = current[0]
        generation = (generation + 1) % (lsa.MAX_GENERATION + 1)
    elif (current is None and last is not None
          and last[0] == lsa.make_opaque_id(instance_id, generation)
          and now - last[1] < REFRESH_MIN_S):
        generation = (generation + 1) % (lsa.MAX_GENERATION + 1)
    opaque_id = lsa.make_opaque_id(instance_id, generation)
    if previous == opaque_id:
        previous = None
    return opaque_id, generation, previous


class OspfApiUnavailableError(RuntimeError):
    pass


def load_ospfclient() -> ModuleType:
    """Import FRR's ospfclient.py from where the frr-pythontools package puts it."""
    if "ospfclient" in sys.modules:
        return sys.modules["ospfclient"]
    env = os.environ.get("DSFC_OSPFCLIENT")
    candidates = [Path(env)] if env else list(OSPFCLIENT_PATHS)
    for path in candidates:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("ospfclient", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["ospfclient"] = module
            spec.loader.exec_module(module)
            # ospfclient logs every message at INFO on the root logger: keep it quiet
            return module
    raise OspfApiUnavailableError(
        "FRR's OSPF API client ospfclient.py was not found (looked in "
        f"{', '.join(map(str, candidates))}): install the Debian package "
        "'frr-pythontools' or set DSFC_OSPFCLIENT to its path")


LsaCallback = Callable[[bytes], None]


def client_class(oc: ModuleType) -> type:
    """FRR's OspfOpaqueClient with its connect step fixed for Python >= 3.11.5.

    FRR 8.4's ``_connect_locked`` drops the StreamWriter of the async notify socket; since
    CPython gh-107650 a garbage-collected StreamWriter closes its socket, so the client
    sees EOF on the notify channel right after connecting (FRR PR #17700). This keeps a
    reference to that writer; everything else is FRR's client.
    """

    class OpaqueClient(oc.OspfOpaqueClient):  # type: ignore[name-defined]
        _aw: asyncio.StreamWriter | None = None

        async def _connect_locked(self) -> None:
            loop = asyncio.get_running_loop()
            self._ls.listen()
            try:
                await loop.sock_connect(self._s, (self.server, 2607))
                self._as, _ = await loop.sock_accept(self._ls)
            except Exception:
                await self._close_locked()
                raise
            self._r, self._w = await asyncio.open_connection(sock=self._s)
            self._ar, self._aw = await asyncio.open_connection(sock=self._as)
            self._seq = 1

    return OpaqueClient


class OspfApiSession:
    """One D-MANO's connection to its router's OSPF API, kept alive across restarts."""

    def __init__(self, server: str, area: IPv4Address, opaque_type: int,
                 on_update: LsaCallback, on_delete: LsaCallback,
                 on_reset: Callable[[], None], on_connected: Callable[[], None]) -> None:
        self.oc = load_ospfclient()
        self.client_cls = client_class(self.oc)
        self.server = server
        self.area = area
        self.opaque_type = opaque_type
        self.on_update = on_update
        self.on_delete = on_delete
        self.on_reset = on_reset
        self.on_connected = on_connected
        self.client: Any = None  # the connected ospfclient.OspfOpaqueClient, if any
        self.desired: dict[int, bytes] = {}  # instance id -> body we want announced
        # instance id -> (opaque id, body, monotonic time) of what ospfd accepted
        self.announced: dict[int, tuple[int, bytes, float]] = {}
        self.generation: dict[int, int] = {}  # instance id -> generation of its opaque ID
        # instance id -> (opaque id, monotonic time) of its last origination, kept after a
        # withdrawal: ospfd delays a new origination of the same LSA within MinLSInterval
        self.originated: dict[int, tuple[int, float]] = {}
        self.pending_withdrawals: dict[int, int] = {}  # instance id -> opaque id to delete
        self.connections = 0
        self.failures = 0  # sessions that ended in an error
        self.last_error = ""
        self.registered = False
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    # -- announcements -----------------------------------------------------------------
    async def announce(self, instance_id: int, body: bytes) -> None:
        """Originate or update the LSA of one local instance (``body`` from lsa.encode)."""
        self.desired[instance_id] = body
        await self._push(instance_id)

    async def withdraw(self, instance_id: int) -> None:
        """Delete the LSA of one local instance. A delete that fails (or cannot be sent
        now) stays pending and is retried by :meth:`retry_pending`; the instance counts
        as announced until ospfd has accepted the delete."""
        self.desired.pop(instance_id, None)
        current = self.announced.get(instance_id)
        if current is None:
            return
        self.pending_withdrawals[instance_id] = current[0]
        await self._delete(instance_id)

    async def _delete(self, instance_id: int) -> None:
        opaque_id = self.pending_withdrawals.get(instance_id)
        if opaque_id is None or not self.connected:
            return
        async with self._lock:
            try:
                await self.client.delete_opaque_data(
                    int(self.area), LSA_TYPE_OPAQUE_AREA, self.opaque_type, opaque_id)
            except self.oc.APIError as exc:
                log.warning("withdrawing the LSA of instance %d failed: %s (will retry)",
                            instance_id, exc)
                return
        self.pending_withdrawals.pop(instance_id, None)
        if instance_id not in self.desired:
            self.announced.pop(instance_id, None)
        log.info("withdrew the LSA of instance %d", instance_id)

    async def retry_pending(self) -> None:
        """Withdraw and announce what ospfd refused so far (e.g. not ready before the
        first adjacency, or a delete that failed)."""
        for instance_id in list(self.pending_withdrawals):
            await self._delete(instance_id)
        for instance_id, body in list(self.desired.items()):
            current = self.announced.get(instance_id)
            if current is None or current[1] != body:
                await self._push(instance_id)

    async def _push(self, instance_id: int) -> None:
        """Originate the desired body. FRR 8.4 delays a refresh of one LSA until 5 s after
        its previous origination; a change sooner than that goes out at once under the
        next generation's opaque ID (lsa.make_opaque_id), and the previous LSA is then
        deleted. Receivers keep the copy with the highest SEQUENCE."""
        body = self.desired.get(instance_id)
        if body is None or not self.connected:
            return
        current = self.announced.get(instance_id)
        if current is not None and current[1] == body:
            return
        opaque_id, generation, previous = choose_opaque_id(
            instance_id, self.generation.get(instance_id, 0),
            (current[0], current[2]) if current is not None else None,
            self.originated.get(instance_id), time.monotonic())
        self.pending_withdrawals.pop(instance_id, None)  # announced again: not withdrawn
        async with self._lock:
            try:
                if not self.registered:
                    # registered only when there is something to announce: a node with no
                    # VNF leaves the opaque type free on its router
                    await self.client.register_opaque_data(LSA_TYPE_OPAQUE_AREA,
                                                           self.opaque_type)
                    self.registered = True
                await self.client.add_opaque_data(
                    int(self.area), LSA_TYPE_OPAQUE_AREA, self.opaque_type, opaque_id, body)
                self.generation[instance_id] = generation
                self.announced[instance_id] = (opaque_id, body, time.monotonic())
                self.originated[instance_id] = (opaque_id, time.monotonic())
                if previous is not None:
                    await self.client.delete_opaque_data(
                        int(self.area), LSA_TYPE_OPAQUE_AREA, self.opaque_type, previous)
            except self.oc.APIError as exc:
                level = logging.DEBUG if NOT_READY in str(exc) else logging.WARNING
                log.log(level, "announcing instance %d: %s (will retry)", instance_id, exc)

    # -- connection --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect, follow the LSDB, reconnect on loss; return when ``stop`` is set.

        Every error of a session (an expected connection loss, or anything else: a bug
        here or in ospfclient.py) ends that session only: it is logged, counted in
        ``failures`` / ``last_error``, and a new session starts after a backoff.
        Cancellation is never swallowed."""
        backoff = 0.25
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.25
            except (OSError, EOFError, asyncio.IncompleteReadError,
                    self.oc.APIError, self.oc.MsgTypeError, self.oc.SeqNumError) as exc:
                self._failed(exc)
                log.warning("OSPF API at %s:2607: %s; reconnecting in %.2f s",
                            self.server, self.last_error, backoff)
            except Exception as exc:
                self._failed(exc)
                log.exception("OSPF API session failed unexpectedly; reconnecting in "
                              "%.2f s", backoff)
            finally:
                await self._close()
            if stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 5.0)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _session(self, stop: asyncio.Event) -> None:
        client = self.client_cls(self.server, wait_ready=False)
        self.client = client
        await client.connect()
        self.connections += 1
        log.info("connected to the OSPF API at %s:2607 (connection %d)",
                 self.server, self.connections)
        self.last_error = ""
        self.announced.clear()  # ospfd flushed a lost client's LSAs
        self.pending_withdrawals.clear()
        self.registered = False
        self.on_reset()
        reader = asyncio.ensure_future(client._handle_msg_loop())
        try:
            await client.monitor_lsa(self._lsa_changed)
            await self.retry_pending()
            self.on_connected()
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({reader, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if reader in done:
                exc = reader.exception()
                if exc is not None:
                    raise exc
                raise EOFError("the OSPF API server closed the connection")
        finally:
            await _cancel_and_wait(reader)

    async def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # the connection is already broken
                log.debug("closing the OSPF API client: %s", exc)

    def _lsa_changed(self, mt: int, ifaddr: int, aid: int, header: tuple, extra: bytes,
                     lsa: bytes) -> None:
        lsa_type = header[2]
        if lsa_type in (1, 2, 10) and aid != int(self.area):
            return
        try:
            if mt == self.oc.MSG_LSA_DELETE_NOTIFY:
                self.on_delete(lsa)
            else:
                self.on_update(lsa)
        except Exception:  # a bug must not kill the API session
            log.exception("handling an LSA notification failed")


async def _cancel_and_wait(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait for it to end; its own error or cancellation is not ours
    to raise, but the cancellation of the caller is propagated."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception as exc:
        log.debug("OSPF API reader ended with %s", exc)
