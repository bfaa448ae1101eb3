"""One LSDB for all simulated routers: the instances of every LSA, and who holds which.

Most of the time every router holds the same LSDB, so it is stored once. Per LSA (key:
type, link state id, advertising router) the store keeps the instances that are still
spreading or recent, oldest first: the first one may be the *base* (``arr`` None: held
by every router), each later one carries its arrival time at every router (a numpy
array, :mod:`scenarios.simulate.flooding`). A router holds, at time t, the newest
instance it has received by then. When the newest instance has reached every live
router long enough ago (min-arrival and the D-MANO's debounce), it becomes the base and
the older ones are forgotten (:meth:`LsaStore.compact`); so memory grows with the LSAs
in flight, not with routers x LSAs.

Every instance is the real thing: the raw LSA (``dmano.lsdb.build_router_lsa`` /
``build_opaque_lsa`` with a body from ``dmano.lsa.encode``), decoded once by the real
parsers (``dmano.lsdb.parse_router_lsa``, ``dmano.lsa.decode``); a router's view of an
instance's announcement is the newest of its opaque-ID generations by the mirror's own
rule (``dmano.lsdb.newest_generation``).

The router LSAs a router holds are summarised by a *signature* (an int): routers with
the same signature have the same router LSAs, hence the same service-plane graph, so
shortest paths are computed once per signature (``scenarios.simulate.paths``). A
signature names the router LSAs that differ from those of t = 0, so it survives the
forgetting above (a router holding the newest instances keeps its signature when they
become the base).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import numpy as np

from dmano import lsa
from dmano.lsdb import (
    OPAQUE_AREA_LSA,
    ROUTER_LSA,
    newest_generation,
    opaque_type_id,
    parse_lsa_header,
    parse_router_lsa,
)
from dmano.model import RouterLsa, VnfAnnouncement

log = logging.getLogger(__name__)

INF = math.inf
LsaKey = tuple[int, int, int]  # (type, link state id, advertising router) as ints
InstanceKey = tuple[IPv4Address, int]  # (advertising router, instance id): the D-MANO's


def lsa_key(raw: bytes) -> LsaKey:
    hdr = parse_lsa_header(raw, whole=False)
    return (hdr.type, int(hdr.ls_id), int(hdr.adv_router))


@dataclass(eq=False)
class Version:
    """One instance of an LSA (or its flush: ``content`` None)."""

    vid: int
    key: LsaKey
    seq: int
    origin: int  # node index of the originating router
    t0: float  # origination time
    raw: bytes
    content: RouterLsa | VnfAnnouncement | None
    arr: np.ndarray | None = None  # arrival per router; None: held by every router
    cause: int = -1  # index of the scenario event that caused it (-1: none / periodic)
    opaque_id: int = 0
    instance: InstanceKey | None = None
    tag: int = 0  # random 64 bits: sums of tags stand for sets of instances

    @property
    def is_router(self) -> bool:
        return self.key[0] == ROUTER_LSA

    def held_by(self, node: int, t: float) -> bool:
        return self.arr is None or self.arr[node] <= t


def decode(raw: bytes) -> tuple[LsaKey, RouterLsa | VnfAnnouncement | None, int,
                                InstanceKey | None]:
    """(key, content, opaque id, instance key) of a raw LSA, by the D-MANO's parsers; a
    MaxAge LSA (a flush) has content None."""
    hdr = parse_lsa_header(raw)
    key = (hdr.type, int(hdr.ls_id), int(hdr.adv_router))
    if hdr.type == ROUTER_LSA:
        return key, (None if hdr.is_max_age else parse_router_lsa(raw)), 0, None
    if hdr.type != OPAQUE_AREA_LSA:
        raise ValueError(f"the simulation originates router and opaque LSAs, not type "
                         f"{hdr.type}")
    _, opaque_id = opaque_type_id(hdr.ls_id)
    iid, _ = lsa.split_opaque_id(opaque_id)
    content = None if hdr.is_max_age else lsa.decode(raw[20:], iid)
    return key, content, opaque_id, (hdr.adv_router, iid)


@dataclass
class SignatureInfo:
    """The router LSAs of one signature: those of t = 0 with ``overrides`` (router id ->
    its router LSA, None: none)."""

    sid: int
    overrides: dict[IPv4Address, RouterLsa | None]
    initial: dict[IPv4Address, RouterLsa] = field(repr=False, default_factory=dict)

    @property
    def routers(self) -> dict[IPv4Address, RouterLsa]:
        out = dict(self.initial)
        for r, lsa_ in self.overrides.items():
            if lsa_ is None:
                out.pop(r, None)
            else:
                out[r] = lsa_
        return out


class LsaStore:
    """The shared LSDB (see the module docstring)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.histories: dict[LsaKey, list[Version]] = {}
        self.flux: set[LsaKey] = set()  # keys with more than the base
        self.router_flux: set[LsaKey] = set()
        self.instance_keys: dict[InstanceKey, list[LsaKey]] = {}
        self.base_routers: dict[IPv4Address, RouterLsa] = {}  # what every router holds
        self.initial_routers: dict[IPv4Address, RouterLsa] = {}  # at t = 0
        # router id -> the base version of its router LSA where it is not the initial one
        self.base_override: dict[IPv4Address, Version] = {}
        self._vid = itertools.count(1)
        self._sigs: dict[tuple[tuple[int, int], ...], SignatureInfo] = {}
        self._sig_by_id: dict[int, SignatureInfo] = {}
        self._sid = itertools.count()
        self.versions_made = 0
        # instances grouped (by service, set by the simulation): what a router holds of a
        # group is the shared base plus the group's instances in flight it has received
        self.group_of: dict[InstanceKey, int] = {}
        self.group_flux: dict[int, set[LsaKey]] = {}  # keys with instances in flight
        self.group_base: dict[int, int] = {}  # sum of the tags of the base instances
        self._tags = random.Random(20260101)

    # -- adding -----------------------------------------------------------------------
    def make(self, raw: bytes, origin: int, t0: float, cause: int = -1) -> Version:
        """A new instance from its raw bytes (decoded once, by the D-MANO's parsers)."""
        key, content, opaque_id, inst = decode(raw)
        hdr = parse_lsa_header(raw, whole=False)
        self.versions_made += 1
        return Version(next(self._vid), key, hdr.seq, origin, t0, raw, content,
                       cause=cause, opaque_id=opaque_id, instance=inst,
                       tag=self._tags.getrandbits(64))

    def install_base(self, v: Version) -> None:
        """An instance every router holds from the start (the converged network)."""
        v.arr = None
        self.histories[v.key] = [v]
        self._index(v)
        g = self.group_of.get(v.instance) if v.instance is not None else None
        if g is not None:
            self.group_base[g] = self.group_base.get(g, 0) + v.tag
        if v.is_router and isinstance(v.content, RouterLsa):
            self.base_routers[v.content.adv_router] = v.content
            self.initial_routers[v.content.adv_router] = v.content

    def add(self, v: Version) -> None:
        """An instance being flooded (``v.arr`` set)."""
        hist = self.histories.setdefault(v.key, [])
        hist.append(v)
        self._index(v)
        if v.instance is not None and v.arr is not None:
            g = self.group_of.get(v.instance)
            if g is not None:
                self.group_flux.setdefault(g, set()).add(v.key)
        if len(hist) > 1 or v.arr is not None:
            self.flux.add(v.key)
            if v.is_router:
                self.router_flux.add(v.key)

    def _index(self, v: Version) -> None:
        if v.instance is not None:
            keys = self.instance_keys.setdefault(v.instance, [])
            if v.key not in keys:
                keys.append(v.key)

    def history(self, key: LsaKey) -> list[Version]:
        return self.histories.get(key, [])

    def latest(self, key: LsaKey) -> Version | None:
        hist = self.histories.get(key)
        return hist[-1] if hist else None

    def recent_arrays(self, key: LsaKey) -> list[np.ndarray]:
        return [v.arr for v in self.histories.get(key, []) if v.arr is not None]

    # -- what a router holds --------------------------------------------------------------
    def held(self, key: LsaKey, node: int, t: float) -> Version | None:
        for v in reversed(self.histories.get(key, ())):
            if v.arr is None or v.arr[node] <= t:
                return v
        return None

    def instance(self, inst: InstanceKey, node: int, t: float) -> VnfAnnouncement | None:
        """The announcement of ``inst`` router ``node``'s D-MANO sees at ``t``: the newest
        generation (``dmano.lsdb.newest_generation``) among those it holds."""
        keys = self.instance_keys.get(inst)
        if not keys:
            return None
        gens: dict[int, VnfAnnouncement] = {}
        for key in keys:
            v = self.held(key, node, t)
            if v is not None and isinstance(v.content, VnfAnnouncement):
                gens[v.opaque_id] = v.content
        return newest_generation(gens)

    def instance_versions(self, inst: InstanceKey, node: int, t: float) -> tuple[int, ...]:
        """The instances (vids) of ``inst``'s LSAs ``node`` holds at ``t`` (a cheap
        signature of its inputs)."""
        out = []
        for key in self.instance_keys.get(inst, ()):
            v = self.held(key, node, t)
            out.append(v.vid if v is not None else 0)
        return tuple(out)

    def group_state(self, group: int, node: int, t: float) -> int:
        """What ``node`` holds at ``t`` of the announcements of ``group`` (a service), as
        a value that is equal when the holdings are (the sum of the random tags of the
        instances held: the base's, with those of the LSAs in flight replaced by what the
        node holds of them). Unchanged when instances become the base."""
        total = self.group_base.get(group, 0)
        for key in self.group_flux.get(group, ()):
            hist = self.histories[key]
            if hist[0].arr is None:
                total -= hist[0].tag
            held = self.held(key, node, t)
            if held is not None:
                total += held.tag
        return total

    # -- router LSAs by signature --------------------------------------------------------
    # A signature is the set of (router, instance) pairs where what a router holds differs
    # from the router LSAs of t = 0; it does not change when an instance becomes the base.
    def router_signature(self, node: int, t: float) -> int:
        merged = {r: v.vid for r, v in self.base_override.items()}
        versions = dict(self.base_override)
        for key in self.router_flux:
            v = self.held(key, node, t)
            if v is not None and v.arr is not None:
                r = IPv4Address(key[2])
                merged[r] = v.vid
                versions[r] = v
        return self._signature(merged, versions)

    def router_signatures(self, nodes: np.ndarray, t: float) -> np.ndarray:
        """:meth:`router_signature` of many routers at once."""
        keys = sorted(self.router_flux)
        if not keys:
            sid = self.router_signature(0, t)
            return np.full(len(nodes), sid, dtype=np.int64)
        cols = []
        for key in keys:
            hist = self.histories[key]
            idx = np.full(len(nodes), -1, dtype=np.int64)  # -1: the base
            for j, v in enumerate(hist):
                if v.arr is not None:
                    idx = np.where(v.arr[nodes] <= t, j, idx)
            cols.append(idx)
        mat = np.stack(cols, axis=1)
        uniq, inverse = np.unique(mat, axis=0, return_inverse=True)
        sids = np.empty(len(uniq), dtype=np.int64)
        for r, row in enumerate(uniq):
            merged = {a: v.vid for a, v in self.base_override.items()}
            versions = dict(self.base_override)
            for k, j in zip(keys, row, strict=True):
                if j >= 0:
                    v = self.histories[k][j]
                    merged[IPv4Address(k[2])] = v.vid
                    versions[IPv4Address(k[2])] = v
            sids[r] = self._signature(merged, versions)
        return sids[np.asarray(inverse).reshape(-1)]

    def _signature(self, merged: dict[IPv4Address, int],
                   versions: dict[IPv4Address, Version]) -> int:
        tag = tuple(sorted((int(r), vid) for r, vid in merged.items()
                           if vid != self._initial_vid.get(r)))
        info = self._sigs.get(tag)
        if info is None:
            overrides: dict[IPv4Address, RouterLsa | None] = {}
            for r, vid in merged.items():
                if vid == self._initial_vid.get(r):
                    continue
                content = versions[r].content
                overrides[r] = content if isinstance(content, RouterLsa) else None
            info = SignatureInfo(next(self._sid), overrides, self.initial_routers)
            self._sigs[tag] = info
            self._sig_by_id[info.sid] = info
        return info.sid

    @property
    def _initial_vid(self) -> dict[IPv4Address, int]:
        got = getattr(self, "_initial_vids", None)
        if got is None:
            got = {}
            for key, hist in self.histories.items():
                if key[0] == ROUTER_LSA and hist and hist[0].t0 <= 0.0 and hist[0].arr is None:
                    got[IPv4Address(key[2])] = hist[0].vid
            self._initial_vids = got
        return got

    def signature(self, sid: int) -> SignatureInfo:
        return self._sig_by_id[sid]

    # -- forgetting ------------------------------------------------------------------------
    def compact(self, now: float, live: np.ndarray, margin: float) -> list[LsaKey]:
        """Make the newest instance of every LSA the base once every live router has held
        it for ``margin`` s; drop flushed opaque LSAs then. Returns the keys compacted."""
        done = []
        for key in list(self.flux):
            hist = self.histories[key]
            newest = hist[-1]
            if newest.arr is not None:
                at = newest.arr[live]
                if at.size and (not np.isfinite(at).all() or at.max() + margin > now):
                    continue
            old_base = hist[0].tag if hist[0].arr is None and hist[0] is not newest else 0
            newest.arr = None
            self.histories[key] = [newest]
            self.flux.discard(key)
            done.append(key)
            if newest.instance is not None:
                g = self.group_of.get(newest.instance)
                if g is not None:
                    self.group_base[g] = self.group_base.get(g, 0) - old_base + newest.tag
                    self.group_flux.get(g, set()).discard(key)
            if key in self.router_flux:
                self.router_flux.discard(key)
                adv = IPv4Address(key[2])
                if isinstance(newest.content, RouterLsa):
                    self.base_routers[adv] = newest.content
                else:
                    self.base_routers.pop(adv, None)
                if newest.vid == self._initial_vid.get(adv):
                    self.base_override.pop(adv, None)
                else:
                    self.base_override[adv] = newest
            if newest.content is None and newest.instance is not None:
                g = self.group_of.get(newest.instance)
                if g is not None:
                    self.group_base[g] -= newest.tag
                del self.histories[key]
                keys = self.instance_keys.get(newest.instance, [])
                if key in keys:
                    keys.remove(key)
        return done

    def all_versions(self) -> Iterable[Version]:
        for hist in self.histories.values():
            yield from hist


__all__ = ["InstanceKey", "LsaKey", "LsaStore", "SignatureInfo", "Version", "decode",
           "lsa_key"]
