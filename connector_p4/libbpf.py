"""Thin ctypes binding to the system libbpf (Debian ``libbpf1``, ``libbpf.so.1``).

Only what the connector needs: open/load an object file, find its programs and maps,
pin/get pinned objects, the map element calls on file descriptors and
``bpf_prog_test_run_opts``. Keys and values are ``bytes`` packed by the caller. Every
failure raises :class:`LibbpfError` (an ``OSError`` carrying the errno); the libbpf log
of a failed load (verifier output included) is in the message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

_LIBBPF_WARN, _LIBBPF_INFO, _LIBBPF_DEBUG = 0, 1, 2


class LibbpfError(OSError):
    """A libbpf call failed; ``errno`` is set, the message names the call."""

    def __init__(self, err: int, what: str, detail: str = ""):
        err = abs(err)
        msg = f"{what}: {os.strerror(err)} (errno {err})"
        if detail:
            msg += "\n" + detail
        super().__init__(err, msg)


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _TestRunOpts(ctypes.Structure):
    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    )


class _MapInfo(ctypes.Structure):  # the head of struct bpf_map_info
    _fields_ = (
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    )


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


@dataclass(frozen=True)
class TestRun:
    retval: int  # the program's return code (TC_ACT_*)
    data: bytes  # the packet after the program ran
    ctx: bytes  # the context (struct __sk_buff for tc) after the run
    duration_ns: int  # average per repetition


class _Lib:
    """The loaded shared object with prototypes, and a log capture for loads."""

    def __init__(self) -> None:
        name = "libbpf.so.1"
        try:
            self.so = ctypes.CDLL(name, use_errno=True)
        except OSError:
            found = ctypes.util.find_library("bpf")
            if not found:
                raise OSError(
                    errno.ENOENT,
                    "libbpf.so.1 not found: install Debian's libbpf1 (make setup)") from None
            self.so = ctypes.CDLL(found, use_errno=True)
        self.libc = ctypes.CDLL(None)
        self.libc.vsnprintf.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                        ctypes.c_void_p)
        self.libc.vsnprintf.restype = ctypes.c_int
        self.captured: list[str] | None = None
        self._msg = ctypes.create_string_buffer(1 << 22)  # verifier logs are long
        self._print = _PRINT_FN(self._on_print)  # keep a reference
        s = self.so
        vp, cp, i, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32
        protos = {
            "libbpf_set_print": (vp, (_PRINT_FN,)),
            "bpf_object__open_file": (vp, (cp, vp)),
            "bpf_object__load": (i, (vp,)),
            "bpf_object__close": (None, (vp,)),
            "bpf_object__find_program_by_name": (vp, (vp, cp)),
            "bpf_object__find_map_by_name": (vp, (vp, cp)),
            "bpf_object__next_map": (vp, (vp, vp)),
            "bpf_map__name": (cp, (vp,)),
            "bpf_map__fd": (i, (vp,)),
            "bpf_map__is_internal": (ctypes.c_bool, (vp,)),
            "bpf_program__fd": (i, (vp,)),
            "bpf_obj_pin": (i, (i, cp)),
            "bpf_obj_get": (i, (cp,)),
            "bpf_obj_get_info_by_fd": (i, (i, vp, ctypes.POINTER(u32))),
            "bpf_map_update_elem": (i, (i, vp, vp, ctypes.c_uint64)),
            "bpf_map_lookup_elem": (i, (i, vp, vp)),
            "bpf_map_delete_elem": (i, (i, vp)),
            "bpf_map_get_next_key": (i, (i, vp, vp)),
            "bpf_prog_test_run_opts": (i, (i, ctypes.POINTER(_TestRunOpts))),
            "libbpf_num_possible_cpus": (i, ()),
        }
        for fn, (res, args) in protos.items():
            f = getattr(s, fn)
            f.restype = res
            f.argtypes = args
        s.libbpf_set_print(self._print)

    def _on_print(self, level: int, fmt: bytes, args: int) -> int:
        self.libc.vsnprintf(self._msg, len(self._msg), fmt, args)
        text = self._msg.value.decode(errors="replace").rstrip("\n")
        text = text.removeprefix("libbpf: ")
        if self.captured is not None:
            self.captured.extend(text.splitlines())
        if level == _LIBBPF_WARN:
            log.warning("libbpf: %s", text)
        else:
            log.debug("libbpf: %s", text)
        return 0


_lib: _Lib | None = None


def lib() -> _Lib:
    global _lib
    if _lib is None:
        _lib = _Lib()
    return _lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise LibbpfError(-rc, what)
    return rc


def _buf(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data, len(data))


class BpfObject:
    """An object file opened (and after :meth:`load`, loaded) through libbpf."""

    def __init__(self, path: str | os.PathLike[str]):
        self._l = lib()
        self.path = os.fspath(path)
        ptr = self._l.so.bpf_object__open_file(self.path.encode(), None)
        if not ptr:
            raise LibbpfError(ctypes.get_errno() or errno.EINVAL, f"open {self.path}")
        self._obj: int | None = ptr

    @property
    def ptr(self) -> int:
        if self._obj is None:
            raise ValueError("BPF object is closed")
        return self._obj

    def load(self) -> None:
        self._l.captured = []
        try:
            rc = self._l.so.bpf_object__load(self.ptr)
            captured = self._l.captured
        finally:
            self._l.captured = None
        if rc < 0:
            tail = "\n".join(captured[-80:])
            raise LibbpfError(-rc, f"load {self.path}", tail)

    def program_fd(self, name: str) -> int:
        prog = self._l.so.bpf_object__find_program_by_name(self.ptr, name.encode())
        if not prog:
            raise LibbpfError(errno.ENOENT, f"program {name!r} in {self.path}")
        return _check(self._l.so.bpf_program__fd(prog), f"fd of program {name!r}")

    def map_fd(self, name: str) -> int:
        m = self._l.so.bpf_object__find_map_by_name(self.ptr, name.encode())
        if not m:
            raise LibbpfError(errno.ENOENT, f"map {name!r} in {self.path}")
        return _check(self._l.so.bpf_map__fd(m), f"fd of map {name!r}")

    def map_names(self, internal: bool = False) -> list[str]:
        """Names of the object's maps (without .rodata/.bss unless ``internal``)."""
        names, m = [], self._l.so.bpf_object__next_map(self.ptr, None)
        while m:
            if internal or not self._l.so.bpf_map__is_internal(m):
                names.append(self._l.so.bpf_map__name(m).decode())
            m = self._l.so.bpf_object__next_map(self.ptr, m)
        return names

    def close(self) -> None:
        """Close the object (its fds); pinned objects and attachments stay."""
        if self._obj is not None:
            self._l.so.bpf_object__close(self._obj)
            self._obj = None


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    _check(lib().so.bpf_obj_pin(fd, os.fspath(path).encode()), f"pin {path}")


def obj_get(path: str | os.PathLike[str]) -> int:
    """A new fd for a pinned program or map (close it with os.close)."""
    return _check(lib().so.bpf_obj_get(os.fspath(path).encode()), f"get pinned {path}")


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().so.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
           "map info")
    return MapInfo(info.type, info.id, info.key_size, info.value_size, info.max_entries,
                   info.map_flags, info.name.decode(errors="replace"))


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _check(lib().so.bpf_map_update_elem(fd, _buf(key), _buf(value), flags), "map update")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value, or None if the key is absent. For per-CPU maps pass
    ``possible_cpus() * round_up(value_size, 8)``."""
    out = ctypes.create_string_buffer(value_size)
    rc = lib().so.bpf_map_lookup_elem(fd, _buf(key), out)
    if rc == -errno.ENOENT:
        return None
    _check(rc, "map lookup")
    return out.raw


def map_delete(fd: int, key: bytes) -> bool:
    """True if the key was there."""
    rc = lib().so.bpf_map_delete_elem(fd, _buf(key))
    if rc == -errno.ENOENT:
        return False
    _check(rc, "map delete")
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    out = ctypes.create_string_buffer(key_size)
    rc = lib().so.bpf_map_get_next_key(fd, _buf(key) if key is not None else None, out)
    if rc == -errno.ENOENT:
        return None
    _check(rc, "map get_next_key")
    return out.raw


def map_keys(fd: int, key_size: int) -> Iterator[bytes]:
    """All keys (a hash map may change while this runs: best effort, as the kernel's)."""
    key = map_next_key(fd, None, key_size)
    while key is not None:
        yield key
        key = map_next_key(fd, key, key_size)


def possible_cpus() -> int:
    return _check(lib().so.libbpf_num_possible_cpus(), "possible cpus")


def prog_test_run(prog_fd: int, data: bytes, ctx: bytes | None = None, repeat: int = 1,
                  headroom: int = 512, ctx_out_size: int = 256) -> TestRun:
    """Run a program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.
    ``headroom``: how much the packet may grow; ``ctx_out_size`` must hold the whole
    context the kernel copies back (struct __sk_buff for tc: 192 bytes on 6.x)."""
    data_in = _buf(data)
    data_out = ctypes.create_string_buffer(len(data) + headroom)
    ctx_in = _buf(ctx) if ctx is not None else None
    ctx_out = ctypes.create_string_buffer(ctx_out_size) if ctx is not None else None
    opts = _TestRunOpts()
    opts.sz = ctypes.sizeof(opts)
    opts.data_in = ctypes.cast(data_in, ctypes.c_void_p)
    opts.data_size_in = len(data)
    opts.data_out = ctypes.cast(data_out, ctypes.c_void_p)
    opts.data_size_out = len(data_out)
    if ctx_in is not None and ctx_out is not None:
        opts.ctx_in = ctypes.cast(ctx_in, ctypes.c_void_p)
        opts.ctx_size_in = len(ctx_in)
        opts.ctx_out = ctypes.cast(ctx_out, ctypes.c_void_p)
        opts.ctx_size_out = len(ctx_out)
    opts.repeat = repeat
    _check(lib().so.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "prog test run")
    return TestRun(
        retval=opts.retval,
        data=data_out.raw[: opts.data_size_out],
        ctx=ctx_out.raw[: opts.ctx_size_out] if ctx_out is not None else b"",
        duration_ns=opts.duration,
    )
