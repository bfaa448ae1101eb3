"""Moving frames between a socket and the :class:`~vnf.fastpath.Processor`.

The VNF's socket is ``AF_PACKET``/``SOCK_RAW`` bound to its interface and ethertype
0x894F (:func:`open_packet_socket`). Two receive/send loops work on any datagram socket
(the tests use an ``AF_UNIX`` socketpair instead of an interface):

:class:`MmsgIO` (default)
    ``recvmmsg(2)``/``sendmmsg(2)`` through ctypes: up to ``batch`` frames per system
    call each way, received straight into slots of one preallocated ``bytearray``,
    processed in place and sent from there (no copy, no per-packet allocation).
:class:`SimpleIO`
    ``recv_into`` + ``send`` per frame on the same kind of buffer; the fallback when the
    C library has no ``recvmmsg`` (``--io simple``).

Both block at most ``timeout`` seconds per call (``SO_RCVTIMEO``) so the caller can
write stats and notice signals; both count frames longer than a slot as ``too_big``
and refused sends (``ENOBUFS``, ``EAGAIN``: the peer's queue is full) as ``tx_error``;
sends never block (``MSG_DONTWAIT``).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import struct
import time
from typing import Any, Literal, Protocol

from vnf.fastpath import ETH_P_NSH, FORWARD, RESIZED, TOO_BIG, TX_ERROR, Processor

log = logging.getLogger(__name__)

SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
MSG_WAITFORONE = 0x10000

DEFAULT_SLOT = 16384  # largest frame received whole (jumbo 9000 + room)
DEFAULT_BATCH = 64
DEFAULT_TIMEOUT = 0.1
DEFAULT_RCVBUF = 4 << 20

# errors of a send that mean "this frame was not sent", not "the VNF is broken"
_TX_DROP_ERRNOS = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENETDOWN, errno.ENXIO,
                             errno.EMSGSIZE, errno.EINVAL, errno.ECONNREFUSED,
                             errno.ENOMEM})
# receive errors that pass (the interface went down, memory pressure): log, keep going
_RX_TRANSIENT_ERRNOS = frozenset({errno.ENETDOWN, errno.ENOBUFS, errno.ENOMEM, errno.ENXIO})


def _rx_error(err: int, where: str) -> int:
    """Handle a failed receive: 0 frames for a transient error, else raise."""
    if err in (errno.EAGAIN, errno.EINTR):
        return 0
    if err in _RX_TRANSIENT_ERRNOS:
        log.warning("%s: %s (continuing)", where, os.strerror(err))
        time.sleep(0.01)  # do not spin if the condition persists
        return 0
    raise OSError(err, f"{where}: {os.strerror(err)}")


class PacketIO(Protocol):
    def poll(self) -> int:
        """Receive up to one batch, process it, send what is forwarded; frames received."""


def open_packet_socket(iface: str, rcvbuf: int = DEFAULT_RCVBUF) -> tuple[socket.socket,
                                                                          bytes]:
    """An AF_PACKET socket on ``iface`` receiving only ethertype 0x894F; and its MAC.

    Created with protocol 0 and then bound with 0x894F, so that no frame of another
    interface can be queued between ``socket()`` and ``bind()``. Needs CAP_NET_RAW.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((iface, ETH_P_NSH))
        mac = bytes(sock.getsockname()[4])[:6].ljust(6, b"\0")
        _best_effort(sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING")
        _best_effort(sock, SOL_PACKET, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS")
        set_rcvbuf(sock, rcvbuf)
    except BaseException:
        sock.close()
        raise
    return sock, mac


def set_rcvbuf(sock: socket.socket, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        _best_effort(sock, socket.SOL_SOCKET, socket.SO_RCVBUF, size, "SO_RCVBUF")


def _best_effort(sock: socket.socket, level: int, opt: int, value: int, name: str) -> None:
    try:
        sock.setsockopt(level, opt, value)
    except OSError as exc:
        log.debug("setsockopt %s failed: %s", name, exc)


def set_receive_timeout(sock: socket.socket, timeout: float) -> None:
    """Blocking socket whose receives give up after ``timeout`` s (EAGAIN)."""
    sock.settimeout(None)  # Python's own timeouts would poll() before every recv
    sec = int(timeout)
    usec = max(int((timeout - sec) * 1e6), 1 if sec == 0 else 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", sec, usec))


# -- recvmmsg / sendmmsg ---------------------------------------------------------------

class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


_MMSG_SIZE = ctypes.sizeof(_Mmsghdr)
_IOV_SIZE = ctypes.sizeof(_Iovec)
assert _MMSG_SIZE % 4 == 0 and _IOV_SIZE % ctypes.sizeof(ctypes.c_size_t) == 0
# indexes into the arrays viewed as 32-bit words (msg_len, msg_flags) / size_t (iov_len)
_LEN_WORD = _Mmsghdr.msg_len.offset // 4
_FLAGS_WORD = (_Mmsghdr.msg_hdr.offset + _Msghdr.msg_flags.offset) // 4
_MMSG_WORDS = _MMSG_SIZE // 4
_IOVLEN_WORD = _Iovec.iov_len.offset // ctypes.sizeof(ctypes.c_size_t)
_IOV_WORDS = _IOV_SIZE // ctypes.sizeof(ctypes.c_size_t)


def _libc_mmsg() -> tuple[Any, Any] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                         ctypes.c_void_p)
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_MMSG = _libc_mmsg()


def mmsg_available() -> bool:
    return _MMSG is not None


def _size_t_format() -> Literal["I", "L", "Q"]:
    """The native struct format of ``size_t`` (what ``"N"`` means, spelled in a way
    typeshed's ``memoryview.cast`` overloads know)."""
    size = ctypes.sizeof(ctypes.c_size_t)
    if size == ctypes.sizeof(ctypes.c_uint):
        return "I"
    if size == ctypes.sizeof(ctypes.c_ulong):
        return "L"
    return "Q"


def _ctypes_words(obj: Any, fmt: Literal["I", "L", "Q"]) -> memoryview[int]:
    return memoryview(obj).cast("B").cast(fmt)


class MmsgIO:
    """Batched receive and send with recvmmsg/sendmmsg (see the module docstring)."""

    def __init__(self, sock: socket.socket, processor: Processor, *,
                 batch: int = DEFAULT_BATCH, slot: int = DEFAULT_SLOT,
                 timeout: float = DEFAULT_TIMEOUT):
        if _MMSG is None:
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg not available in the C library")
        if batch < 1 or slot < 64:
            raise ValueError(f"batch must be >= 1 and slot >= 64, got {batch}, {slot}")
        self._recvmmsg, self._sendmmsg = _MMSG
        self.sock = sock
        self.fd = sock.fileno()
        self.processor = processor
        self.batch = batch
        self.slot = slot
        set_receive_timeout(sock, timeout)

        self.buf = bytearray(batch * slot)
        self._cbuf = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        base = ctypes.addressof(self._cbuf)
        self._rx_iov = (_Iovec * batch)()
        self._tx_iov = (_Iovec * batch)()
        self._rx = (_Mmsghdr * batch)()
        self._tx = (_Mmsghdr * batch)()
        iov_ptr = ctypes.POINTER(_Iovec)
        for i in range(batch):
            for iov, msgs in ((self._rx_iov, self._rx), (self._tx_iov, self._tx)):
                iov[i].iov_base = base + i * slot
                iov[i].iov_len = slot
                msgs[i].msg_hdr.msg_iov = ctypes.cast(ctypes.addressof(iov) + i * _IOV_SIZE,
                                                      iov_ptr)
                msgs[i].msg_hdr.msg_iovlen = 1
        self._rx_addr = ctypes.addressof(self._rx)
        self._tx_addr = ctypes.addressof(self._tx)
        self._rx_words = _ctypes_words(self._rx, "I")
        self._tx_iov_words = _ctypes_words(self._tx_iov, _size_t_format())
        self._lens = [0] * batch

    def close(self) -> None:
        self._rx_words.release()
        self._tx_iov_words.release()

    def poll(self) -> int:
        n = self._recvmmsg(self.fd, self._rx_addr, self.batch, MSG_WAITFORONE | MSG_TRUNC,
                           None)
        if n <= 0:
            return _rx_error(ctypes.get_errno(), "recvmmsg") if n < 0 else 0
        process = self.processor.process
        buf, slot, words, lens = self.buf, self.slot, self._rx_words, self._lens
        iov_words = self._tx_iov_words
        start = -1
        for i in range(n):
            w = i * _MMSG_WORDS
            length = words[w + _LEN_WORD]
            if words[w + _FLAGS_WORD] & MSG_TRUNC or length > slot:
                self.processor.count_oversize(length)
                verdict = TOO_BIG
            else:
                verdict = process(buf, i * slot, length)
            if verdict < 0:  # FORWARD, or resized (service scapy)
                if verdict != FORWARD:
                    length = RESIZED - verdict
                iov_words[i * _IOV_WORDS + _IOVLEN_WORD] = length
                lens[i] = length
                if start < 0:
                    start = i
            elif start >= 0:
                self._send(start, i)
                start = -1
        if start >= 0:
            self._send(start, n)
        return n

    def _send(self, start: int, end: int) -> None:
        """Send the frames of slots ``start`` .. ``end - 1``."""
        p = self.processor
        lens = self._lens
        while start < end:
            sent = self._sendmmsg(self.fd, self._tx_addr + start * _MMSG_SIZE, end - start,
                                  MSG_DONTWAIT)
            if sent > 0:
                p.count_out(sent, sum(lens[start:start + sent]))
                start += sent
                continue
            err = ctypes.get_errno() if sent < 0 else errno.EAGAIN
            if err == errno.EINTR:
                continue
            if err not in _TX_DROP_ERRNOS:
                raise OSError(err, f"sendmmsg: {os.strerror(err)}")
            p.count_drop(TX_ERROR)
            start += 1


class SimpleIO:
    """One ``recv_into`` and one ``send`` per frame (see the module docstring)."""

    def __init__(self, sock: socket.socket, processor: Processor, *,
                 batch: int = DEFAULT_BATCH, slot: int = DEFAULT_SLOT,
                 timeout: float = DEFAULT_TIMEOUT):
        if batch < 1 or slot < 64:
            raise ValueError(f"batch must be >= 1 and slot >= 64, got {batch}, {slot}")
        self.sock = sock
        self.processor = processor
        self.batch = batch
        self.slot = slot
        set_receive_timeout(sock, timeout)
        self.buf = bytearray(slot)
        self._view = memoryview(self.buf)

    def close(self) -> None:
        self._view.release()

    def poll(self) -> int:
        """Up to ``batch`` frames: the first may wait, the rest only if already queued."""
        sock, buf, view, p = self.sock, self.buf, self._view, self.processor
        recv_into, send, slot = sock.recv_into, sock.send, self.slot
        flags = MSG_TRUNC
        count = 0
        for _ in range(self.batch):
            try:
                length = recv_into(view, slot, flags)
            except OSError as exc:
                if exc.errno is None:
                    raise
                _rx_error(exc.errno, "recv")
                break
            count += 1
            flags = MSG_TRUNC | MSG_DONTWAIT
            if length > slot:
                p.count_oversize(length)
                continue
            verdict = p.process(buf, 0, length)
            if verdict >= 0:
                continue
            if verdict != FORWARD:  # resized (service scapy)
                length = RESIZED - verdict
            try:
                send(view[:length], MSG_DONTWAIT)
            except OSError as exc:
                if exc.errno not in _TX_DROP_ERRNOS:
                    raise
                p.count_drop(TX_ERROR)
            else:
                p.count_out(1, length)
        return count


def make_io(kind: str, sock: socket.socket, processor: Processor, *,
            batch: int = DEFAULT_BATCH, slot: int = DEFAULT_SLOT,
            timeout: float = DEFAULT_TIMEOUT) -> PacketIO:
    """``mmsg`` (falls back to ``simple`` with a warning when unavailable) or ``simple``."""
    if kind not in ("mmsg", "simple"):
        raise ValueError(f"unknown I/O kind {kind!r} (known: mmsg, simple)")
    if kind == "mmsg":
        if mmsg_available():
            return MmsgIO(sock, processor, batch=batch, slot=slot, timeout=timeout)
        log.warning("recvmmsg/sendmmsg not available; using one recv/send per frame")
    return SimpleIO(sock, processor, batch=batch, slot=slot, timeout=timeout)
