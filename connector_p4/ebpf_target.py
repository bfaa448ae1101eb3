"""The eBPF forwarding target: :class:`connector_p4.target.Target` on BPF maps.

One connector = one loaded copy of ``ebpf/connector.c``, pinned under its own folder::

    <pin_dir>/prog            the tc program (attached to every connector port)
    <pin_dir>/<map name>      every map (names and layouts: MAP_LAYOUT below)

``EbpfTarget(object_path, pin_dir, ports).load()`` loads and pins a fresh pipeline;
``EbpfTarget.open_pinned(pin_dir)`` finds a running one again (a restarted P4Runtime
server) and rebuilds its view of the tables from the maps (``read_state()``);
``load_or_open()`` does whichever applies.
``attach()``/``detach()`` run ``tc`` on the ports, in the caller's network namespace.
``unpin()`` removes the pins (the pipeline lives on while tc still holds the program).

Select slots: the ``groups`` map has one group per instance_select key (service id,
from_remote), at index slot = service id + 256 * from_remote (``target.select_slot``); the
datapath uses slot S + 256 for a packet of service S decapsulated from VXLAN-GPE on the
router port, slot S otherwise. The flow cache is keyed by (ctx1, slot).

WCMP slots: a group with members (m_1, w_1) .. (m_k, w_k) (weights >= 1, n = sum w_i <= 64)
is expanded, in the given order, into the list E = [m_1] * w_1 + ... + [m_k] * w_k of
length n. The datapath picks E[ctx1 % n], so member i gets exactly w_i of the n residues,
i.e. the share w_i / n of uniformly distributed flow hashes (the bias of ``% n`` on 32-bit
hashes is below 2e-8). The 64-slot array holds slot[j] = E[j % n] for every j, so a reader
that races a group rewrite still finds a member of the old or the new group.

Debugging: the ``dbg`` per-CPU map holds the last decision of each CPU (ingress ifindex,
TC verdict, bpf_redirect target, member, drop reason, sequence number). BPF_PROG_TEST_RUN
does not report the redirect target, so tests read it here (``last_decision()``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address
from pathlib import Path

from connector_p4 import libbpf
from connector_p4.ebpf_maps import (
    BANK_SIZE,
    CONFIG,
    COUNTER,
    DBG,
    DEFAULT_CACHE_TIMEOUT_S,
    FC_KEY,
    GROUP,
    MAP_ENTRIES,
    MAP_LAYOUT,
    MEMBER,
    MEMBER_KINDS,
    MISC_COUNTERS,
    N_DROP_SLOTS,
    NO_MEMBER,
    PORT,
    PROG_NAME,
    PROG_PIN,
    ROLE_NAMES,
    ROLES,
    SFF,
    SFF_KINDS,
    SFF_NAMES,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    TC_PREF,
    U32,
    Decision,
    PipelineState,
    Port,
    PortSpec,
    interface_mac,
    make_port,
    pack_group,
    pack_rules,
    unpack_group,
    unpack_member,
    unpack_rules,
)
from connector_p4.target import (
    DROP_REASONS,
    GROUP_SLOTS,
    MAX_CLASSIFIER_RULES,
    MAX_MEMBERS,
    MAX_SERVICES,
    SELECT_SLOTS,
    ClassifierRule,
    ConnectorConfig,
    Counter,
    Member,
    SffAction,
    TargetError,
    role_of_port,
    select_slot,
)
from dmano.macaddr import format_mac, parse_mac

log = logging.getLogger(__name__)

# struct __sk_buff up to and including ifindex: what BPF_PROG_TEST_RUN accepts as context
_SKB_CTX_LEN = 44
_SKB_INGRESS_IFINDEX = 36

# re-exported: the tests and the P4Runtime server's command line use them from here
__all__ = ["TC_ACT_OK", "TC_ACT_REDIRECT", "TC_ACT_SHOT", "EbpfTarget", "PipelineState",
           "interface_mac", "make_port", "pack_group", "remove_pins", "role_of_port"]




class EbpfTarget:
    """The eBPF connector pipeline of one connector (see the module doc)."""

    def __init__(self, object_path: str | os.PathLike[str], pin_dir: str | os.PathLike[str],
                 ports: Mapping[int, PortSpec | Port], *,
                 cache_timeout_s: float = DEFAULT_CACHE_TIMEOUT_S):
        self.object_path = Path(object_path)
        self.pin_dir = Path(pin_dir)
        self.ports: dict[int, Port] = {p: make_port(p, s) for p, s in ports.items()}
        self._fds: dict[str, int] = {}
        self._prog_fd = -1
        self._ncpu = libbpf.possible_cpus()
        self._state = PipelineState(cache_timeout_s=cache_timeout_s)
        self._bank = 0

    # ---- life cycle ----

    def load(self) -> None:
        """Load the object, pin program and maps under pin_dir, write the ports."""
        if (self.pin_dir / PROG_PIN).exists():
            raise FileExistsError(f"{self.pin_dir} already holds a pipeline: use "
                                  "EbpfTarget.open_pinned() or unpin() it first")
        obj = libbpf.BpfObject(self.object_path)
        try:
            obj.load()
            self.pin_dir.mkdir(parents=True, exist_ok=True)
            try:
                libbpf.obj_pin(obj.program_fd(PROG_NAME), self.pin_dir / PROG_PIN)
                for name in MAP_LAYOUT:
                    libbpf.obj_pin(obj.map_fd(name), self.pin_dir / name)
            except BaseException:
                remove_pins(self.pin_dir)
                raise
        finally:
            obj.close()  # the pins keep program and maps alive
        self._open_fds()
        for port in self.ports.values():
            self._write_port(port)
        self._write_config()

    @classmethod
    def open_pinned(cls, pin_dir: str | os.PathLike[str],
                    ports: Mapping[int, PortSpec | Port] | None = None) -> EbpfTarget:
        """Attach to a pipeline loaded earlier (by this or another process). Without
        ``ports`` the port list is read back from the maps (interface names resolved in
        the current network namespace)."""
        self = cls.__new__(cls)
        self.object_path = Path()
        self.pin_dir = Path(pin_dir)
        self.ports = {}
        self._fds = {}
        self._prog_fd = -1
        self._ncpu = libbpf.possible_cpus()
        self._state = PipelineState()
        self._bank = 0
        self._open_fds()
        if ports is not None:
            self.ports = {p: make_port(p, s) for p, s in ports.items()}
        else:
            self.ports = self._read_ports()
        self._state = self.read_state()
        return self

    def load_or_open(self) -> bool:
        """Adopt the pipeline pinned at pin_dir if there is one (keeping its tables and
        rewriting this instance's ports), else load() a fresh one. True if adopted."""
        if not (self.pin_dir / PROG_PIN).exists():
            self.load()
            return False
        timeout = self._state.cache_timeout_s
        self._open_fds()
        self._state = self.read_state()
        self._state.cache_timeout_s = timeout
        for port in self.ports.values():
            self._write_port(port)
        self._write_config()
        return True

    def _open_fds(self) -> None:
        try:
            self._prog_fd = libbpf.obj_get(self.pin_dir / PROG_PIN)
            for name, (ksize, vsize) in MAP_LAYOUT.items():
                fd = libbpf.obj_get(self.pin_dir / name)
                self._fds[name] = fd
                info = libbpf.map_info(fd)
                if (info.key_size, info.value_size) != (ksize, vsize):
                    raise TargetError("FAILED_PRECONDITION",
                                      f"map {name} in {self.pin_dir} has key/value size "
                                      f"{info.key_size}/{info.value_size}, this code expects "
                                      f"{ksize}/{vsize}: pinned by another build")
                want = MAP_ENTRIES.get(name)
                if want is not None and info.max_entries != want:
                    raise TargetError("FAILED_PRECONDITION",
                                      f"map {name} in {self.pin_dir} has {info.max_entries} "
                                      f"entries, this code expects {want}: pinned by "
                                      "another build")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close our file descriptors. The pinned pipeline keeps running."""
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if self._prog_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._prog_fd)
            self._prog_fd = -1

    def unpin(self) -> None:
        """Remove the pins (and pin_dir if it is then empty)."""
        remove_pins(self.pin_dir)

    @property
    def prog_fd(self) -> int:
        return self._prog_fd

    # ---- tc attachment (runs in the caller's network namespace) ----

    def attach(self, p4ports: Iterable[int] | None = None) -> None:
        """Attach the program to the tc ingress of the given P4 ports (default: all)."""
        prog = self.pin_dir / PROG_PIN
        for p in self._select(p4ports):
            dev = self.ports[p].ifname
            _tc("qdisc", "replace", "dev", dev, "clsact")
            _tc("filter", "replace", "dev", dev, "ingress", "pref", str(TC_PREF), "handle", "1",
                "bpf", "direct-action", "object-pinned", str(prog))

    def detach(self, p4ports: Iterable[int] | None = None) -> None:
        """Remove the clsact qdisc (and with it our filter) from the given ports."""
        for p in self._select(p4ports):
            try:
                _tc("qdisc", "del", "dev", self.ports[p].ifname, "clsact")
            except TargetError as e:
                log.info("detach %s: %s", self.ports[p].ifname, e)

    def _select(self, p4ports: Iterable[int] | None) -> list[int]:
        chosen = sorted(self.ports) if p4ports is None else list(p4ports)
        unknown = [p for p in chosen if p not in self.ports]
        if unknown:
            raise TargetError("INVALID_ARGUMENT", f"unknown P4 ports {unknown}")
        return chosen

    # ---- ports ----

    def add_port(self, p4port: int, spec: PortSpec | Port) -> None:
        """Add (or change) a port after load(), e.g. a VNF started later."""
        port = make_port(p4port, spec)
        old = self.ports.get(p4port)
        if old is not None and old.ifindex != port.ifindex:
            libbpf.map_delete(self._fds["ports"], U32.pack(old.ifindex))
        self.ports[p4port] = port
        self._write_port(port)
        if port.role == ROLES["router"]:
            self._write_config()

    def remove_port(self, p4port: int) -> None:
        port = self.ports.pop(p4port)
        libbpf.map_delete(self._fds["ports"], U32.pack(port.ifindex))
        libbpf.map_update(self._fds["p4ports"], U32.pack(p4port), bytes(PORT.size))

    def _write_port(self, port: Port) -> None:
        value = PORT.pack(port.ifindex, port.p4port, port.role, port.mtu, port.mac)
        libbpf.map_update(self._fds["ports"], U32.pack(port.ifindex), value)
        libbpf.map_update(self._fds["p4ports"], U32.pack(port.p4port), value)

    def _read_ports(self) -> dict[int, Port]:
        out = {}
        for key in libbpf.map_keys(self._fds["ports"], 4):
            raw = libbpf.map_lookup(self._fds["ports"], key, PORT.size)
            if raw is None:
                continue
            ifindex, p4port, role, mtu, mac = PORT.unpack(raw)
            try:
                ifname = socket.if_indextoname(ifindex)
            except OSError:
                ifname = ""
            out[p4port] = Port(p4port, ifname, ifindex, mac, role, mtu)
        return out

    def _router(self) -> Port | None:
        routers = [p for p in self.ports.values() if p.role == ROLES["router"]]
        return min(routers, key=lambda p: p.p4port) if routers else None

    # ---- Target: config ----

    def set_config(self, cfg: ConnectorConfig) -> None:
        try:
            parse_mac(cfg.router_mac)
            parse_mac(cfg.local_mac)
        except ValueError as e:
            raise TargetError("INVALID_ARGUMENT", str(e)) from None
        self._state.config = cfg
        self._write_config()

    def set_cache_timeout(self, seconds: float) -> None:
        """Flow cache idle timeout (millisecond resolution); 0 turns the flow cache off."""
        if not 0 <= seconds * 1000 < 1 << 32:
            raise TargetError("INVALID_ARGUMENT", f"bad cache timeout {seconds}")
        self._state.cache_timeout_s = seconds
        self._write_config()

    def _write_config(self) -> None:
        cfg, router = self._state.config, self._router()
        value = CONFIG.pack(
            int(cfg.local_ip) if cfg else 0,
            router.ifindex if router else 0,
            router.mtu if router else 0,
            round(self._state.cache_timeout_s * 1000),
            parse_mac(cfg.router_mac) if cfg else bytes(6),
            parse_mac(cfg.local_mac) if cfg else bytes(6),
            1 if cfg else 0,
        )
        libbpf.map_update(self._fds["config"], U32.pack(0), value)

    # ---- Target: classifier ----

    def set_classifier(self, rules: list[ClassifierRule]) -> None:
        if len(rules) > MAX_CLASSIFIER_RULES:
            raise TargetError("RESOURCE_EXHAUSTED",
                              f"{len(rules)} classifier rules, the eBPF target holds "
                              f"{MAX_CLASSIFIER_RULES}")
        ordered = sorted(rules, key=lambda r: -r.priority)  # stable: ties keep their order
        value = pack_rules(ordered)
        bank = 1 - self._bank
        libbpf.map_update(self._fds["cls_banks"], U32.pack(bank), value)
        libbpf.map_update(self._fds["cls_active"], U32.pack(0), U32.pack(bank))
        self._bank = bank
        self._state.rules = list(ordered)

    # ---- Target: sff_next ----

    def set_sff(self, spi: int, si: int, action: SffAction) -> None:
        if not (0 <= spi < 1 << 24 and 0 <= si < 256):
            raise TargetError("INVALID_ARGUMENT", f"bad (spi, si) ({spi}, {si})")
        kind = SFF_KINDS.get(action.kind)
        if kind is None:
            raise TargetError("INVALID_ARGUMENT", f"unknown sff action {action.kind!r}")
        if not 0 <= action.service_id < MAX_SERVICES:
            raise TargetError("INVALID_ARGUMENT", f"bad service id {action.service_id}")
        try:
            libbpf.map_update(self._fds["sff"], U32.pack(spi << 8 | si),
                              SFF.pack(kind, action.service_id))
        except libbpf.LibbpfError as e:
            if e.errno == errno.E2BIG:
                raise TargetError("RESOURCE_EXHAUSTED", "sff_next is full") from e
            raise
        self._state.sff[(spi, si)] = action

    def delete_sff(self, spi: int, si: int) -> None:
        if not libbpf.map_delete(self._fds["sff"], U32.pack((spi & 0xFFFFFF) << 8 | si & 0xFF)):
            raise TargetError("NOT_FOUND", f"no sff_next entry for ({spi}, {si})")
        self._state.sff.pop((spi, si), None)

    # ---- Target: members and groups ----

    def set_member(self, member_id: int, member: Member) -> None:
        if not 0 <= member_id < MAX_MEMBERS:
            raise TargetError("RESOURCE_EXHAUSTED" if member_id >= MAX_MEMBERS
                              else "INVALID_ARGUMENT", f"member id {member_id} out of range")
        if member.kind == "local":
            if member.port not in self.ports:
                raise TargetError("INVALID_ARGUMENT", f"member {member_id}: unknown port "
                                  f"{member.port}")
            try:
                dmac = parse_mac(member.dmac)
            except ValueError as e:
                raise TargetError("INVALID_ARGUMENT", str(e)) from None
            value = MEMBER.pack(MEMBER_KINDS["local"], member.port, 0, dmac)
        elif member.kind == "remote":
            if member.endpoint is None:
                raise TargetError("INVALID_ARGUMENT", f"member {member_id}: no endpoint")
            value = MEMBER.pack(MEMBER_KINDS["remote"], 0, int(IPv4Address(member.endpoint)),
                                bytes(6))
        else:
            raise TargetError("INVALID_ARGUMENT", f"unknown member kind {member.kind!r}")
        libbpf.map_update(self._fds["members"], U32.pack(member_id), value)
        self._state.members[member_id] = member

    def delete_member(self, member_id: int) -> None:
        if member_id not in self._state.members:
            raise TargetError("NOT_FOUND", f"no member {member_id}")
        users = sorted(s for s, ms in self._state.groups.items()
                       if any(m == member_id for m, _ in ms))
        if users:
            raise TargetError("FAILED_PRECONDITION",
                              f"member {member_id} is in the groups of select slots {users}")
        libbpf.map_update(self._fds["members"], U32.pack(member_id), bytes(MEMBER.size))
        del self._state.members[member_id]

    def set_group(self, slot: int, members: list[tuple[int, int]]) -> None:
        """The group of select slot ``slot`` = service id + 256 * from_remote."""
        if not 0 <= slot < SELECT_SLOTS:
            raise TargetError("INVALID_ARGUMENT", f"bad select slot {slot} (service id + "
                              f"256 * from_remote, 0..{SELECT_SLOTS - 1})")
        seen = set()
        for mid, weight in members:
            if mid not in self._state.members:
                raise TargetError("NOT_FOUND", f"group of slot {slot}: no member {mid}")
            if mid in seen:
                raise TargetError("INVALID_ARGUMENT",
                                  f"group of slot {slot}: member {mid} twice")
            if not isinstance(weight, int) or weight < 0:  # 0: draining (PIPELINE.md)
                raise TargetError("INVALID_ARGUMENT",
                                  f"group of slot {slot}: weight {weight!r} of member {mid}")
            seen.add(mid)
        total = sum(w for _, w in members)
        if total > GROUP_SLOTS:
            raise TargetError("RESOURCE_EXHAUSTED", f"group of slot {slot}: weights sum to "
                              f"{total}, the eBPF target has {GROUP_SLOTS} WCMP slots")
        libbpf.map_update(self._fds["groups"], U32.pack(slot), pack_group(members))
        self._state.groups[slot] = list(members)

    def delete_group(self, slot: int) -> None:
        if slot not in self._state.groups:
            raise TargetError("NOT_FOUND", f"no group in select slot {slot}")
        libbpf.map_update(self._fds["groups"], U32.pack(slot), bytes(GROUP.size))
        del self._state.groups[slot]

    # ---- Target: counters ----

    def _percpu(self, name: str, index: int, size: int) -> list[bytes]:
        stride = (size + 7) & ~7
        raw = libbpf.map_lookup(self._fds[name], U32.pack(index), stride * self._ncpu)
        if raw is None:
            return []
        return [raw[i * stride: i * stride + size] for i in range(self._ncpu)]

    def _counter(self, name: str, index: int) -> Counter:
        pkts = byts = 0
        for cell in self._percpu(name, index, COUNTER.size):
            p, b = COUNTER.unpack(cell)
            pkts += p
            byts += b
        return Counter(pkts, byts)

    def member_counters(self) -> dict[int, Counter]:
        """Every set member, plus any other cell that counted something."""
        out = {}
        for mid in range(MAX_MEMBERS):
            c = self._counter("member_pkts", mid)
            if c.packets or mid in self._state.members:
                out[mid] = c
        return out

    def drop_counters(self) -> dict[str, Counter]:
        return {name: self._counter("drops", i) for i, name in enumerate(DROP_REASONS)}

    def misc_counters(self) -> dict[str, Counter]:
        return {name: self._counter("misc", i) for i, name in enumerate(MISC_COUNTERS)}

    def clear_counters(self) -> None:
        zero = bytes(COUNTER.size * self._ncpu)
        for name, n in (("member_pkts", MAX_MEMBERS), ("drops", N_DROP_SLOTS), ("misc", 2)):
            for i in range(n):
                libbpf.map_update(self._fds[name], U32.pack(i), zero)

    # ---- flow cache and debugging ----

    def flush_flow_cache(self) -> int:
        fd = self._fds["flow_cache"]
        keys = list(libbpf.map_keys(fd, FC_KEY.size))
        return sum(libbpf.map_delete(fd, k) for k in keys)

    def flow_cache_entry(self, ctx1: int, service_id: int, from_remote: int = 0) -> int | None:
        """The member cached for (ctx1, service, from_remote), if any (expired or not)."""
        raw = libbpf.map_lookup(self._fds["flow_cache"],
                                FC_KEY.pack(ctx1, select_slot(service_id, from_remote)), 16)
        return None if raw is None else struct.unpack_from("=QI", raw)[1]

    def reset_debug(self) -> None:
        libbpf.map_update(self._fds["dbg"], U32.pack(0), bytes(((DBG.size + 7) & ~7)
                                                               * self._ncpu))

    def decisions(self) -> list[Decision]:
        """Last decision of every CPU that made one since reset_debug()."""
        out = []
        for cell in self._percpu("dbg", 0, DBG.size):
            in_if, verdict, out_if, member, reason, seq = DBG.unpack(cell)
            if seq:
                out.append(Decision(
                    in_if, verdict, out_if, None if member == NO_MEMBER else member,
                    DROP_REASONS[reason] if reason < len(DROP_REASONS) else None, seq))
        return out

    def last_decision(self) -> Decision | None:
        """For tests: the decision of the (single) CPU that ran since reset_debug()."""
        found = self.decisions()
        return max(found, key=lambda d: d.seq) if found else None

    def test_run(self, frame: bytes, ingress_ifindex: int, repeat: int = 1) -> libbpf.TestRun:
        """Run the program on one frame as if it arrived on ``ingress_ifindex``
        (BPF_PROG_TEST_RUN; nothing is sent)."""
        ctx = bytearray(_SKB_CTX_LEN)
        U32.pack_into(ctx, _SKB_INGRESS_IFINDEX, ingress_ifindex)
        return libbpf.prog_test_run(self._prog_fd, frame, bytes(ctx), repeat=repeat)

    # ---- read-back ----

    def read_state(self) -> PipelineState:
        """The tables as the maps hold them."""
        st = PipelineState()
        raw = libbpf.map_lookup(self._fds["config"], U32.pack(0), CONFIG.size) or bytes(32)
        local_ip, _rif, _rmtu, timeout, rmac, lmac, valid = CONFIG.unpack(raw)
        st.cache_timeout_s = timeout / 1000
        if valid:
            st.config = ConnectorConfig(IPv4Address(local_ip), rmac, lmac)
        active = libbpf.map_lookup(self._fds["cls_active"], U32.pack(0), 4) or bytes(4)
        self._bank = U32.unpack(active)[0] & 1
        bank = libbpf.map_lookup(self._fds["cls_banks"], U32.pack(self._bank), BANK_SIZE)
        st.rules = unpack_rules(bank or bytes(BANK_SIZE))
        for key in libbpf.map_keys(self._fds["sff"], 4):
            val = libbpf.map_lookup(self._fds["sff"], key, SFF.size)
            if val is None:
                continue
            kind, sid = SFF.unpack(val)
            k = U32.unpack(key)[0]
            st.sff[(k >> 8, k & 0xFF)] = SffAction(SFF_NAMES.get(kind, "drop"), sid)
        for mid in range(MAX_MEMBERS):
            val = libbpf.map_lookup(self._fds["members"], U32.pack(mid), MEMBER.size)
            member = unpack_member(val or bytes(MEMBER.size))
            if member is not None:
                st.members[mid] = member
        for slot in range(SELECT_SLOTS):
            val = libbpf.map_lookup(self._fds["groups"], U32.pack(slot), GROUP.size)
            if val is None:
                continue
            group = unpack_group(val)
            if group is not None:
                st.groups[slot] = group
        return st

    def describe(self) -> str:
        """A short human-readable summary (ports and table sizes)."""
        lines = [f"pipeline pinned at {self.pin_dir}"]
        for p in sorted(self.ports.values(), key=lambda p: p.p4port):
            lines.append(f"  port {p.p4port}: {p.ifname or '?'} ifindex {p.ifindex} "
                         f"{ROLE_NAMES.get(p.role, p.role)} {format_mac(p.mac)} mtu {p.mtu}")
        st = self._state
        lines.append(f"  {len(st.rules)} classifier rules, {len(st.sff)} sff entries, "
                     f"{len(st.members)} members, {len(st.groups)} groups (select slots)")
        return "\n".join(lines)


def remove_pins(pin_dir: str | os.PathLike[str]) -> None:
    """Remove our pins from pin_dir, then pin_dir itself if empty. Missing is fine."""
    d = Path(pin_dir)
    for name in (PROG_PIN, *MAP_LAYOUT):
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()
    with contextlib.suppress(OSError):
        d.rmdir()


def _tc(*args: str) -> None:
    proc = subprocess.run(["tc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TargetError("INTERNAL", f"tc {' '.join(args)}: {proc.stderr.strip()}")
