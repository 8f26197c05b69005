"""A fake Homa kernel module, for testing the kernel backend without one.

It stands in for both seams of the backend (``_ffi.System``): the libc calls
(``sendmsg``/``recvmsg``/``ioctl``, which read and write the real cffi structs the
backend builds) and the socket factory. It behaves like one ABI generation
(``PROFILES``), enforcing the rules of spec §1 that a binding can get wrong:

* ``msg_controllen`` 0 on send, the exact struct size on receive; reserved fields and
  invalid flags refused with ``EINVAL``; the address family checked.
* bpages: messages are written into the socket's registered mmap region, full chunks
  on 64 KiB boundaries, the last chunk packed unaligned into a shared bpage; hand-backs
  are limited to 16 per call, counted per bpage, and a double hand-back is ``EINVAL``
  (G8c) or recorded as corruption (older modules).
* ``EINTR``/``EAGAIN`` consume the hand-backs; failed RPCs come back as -1 with ``id``
  and ``completion_cookie`` set; shutdown wakes blocked receivers with ``ESHUTDOWN``.
* The §2.4 probes get each generation's answers, so detection can be tested for all.

And the behaviours real modules showed (issue 12):

* Ports: automatic ports are 32768 and up; ``bind`` takes only 1..32767.
* G4a has no SO_HOMA_SERVER: every socket accepts requests, a client's too.
* G4a's poll stays silent when the socket is shut down (``poll_reports_shutdown``).
* With ``resend_delay`` set, the loopback loss: the first (only) packet of a message
  of at most ``ONE_PACKET`` bytes is dropped by the receiver, which asks the sending
  socket for it again ``resend_delay`` seconds later. If that socket is gone (closed
  or shut down) by then, the RESEND meets a closed port and the receiver's RPC aborts
  with ``ENOTCONN``: a request is then lost, a response fails the client's RPC. A
  replied server RPC stays live (``num_rpcs``) until its response got through.

Readiness is an eventfd per socket, readable while the ready queue is non-empty.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homarpc.transport.kernel import _ffi

from .fakeprofiles import BPAGE, PROFILES, Profile

__all__ = [
    "BPAGE",
    "ONE_PACKET",
    "PROFILES",
    "FakeError",
    "FakeKernel",
    "FakeSocket",
    "Profile",
]

ffi = _ffi.ffi
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
#: Largest message sent as one packet (loopback's MTU is 64 KiB).
ONE_PACKET = 60_000


class FakeError(OSError):
    pass


def _fail(err: int) -> int:
    ffi.errno = err
    return -1


@dataclass
class _Entry:
    """A message or failure on a socket's ready queue."""

    rpc_id: int
    cookie: int
    peer_port: int
    data: bytes = b""
    error: int = 0


class FakeSocket:
    """One Homa socket in the fake module (implements ``_ffi.SocketLike``)."""

    def __init__(self, kernel: FakeKernel, family: int, port: int) -> None:
        self.kernel = kernel
        self.family = family
        self.port = port
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.is_server = not kernel.profile.server_option
        self.is_shutdown = False
        self.is_closed = False
        self.pool_start = 0
        self.refcounts: list[int] = []
        self.partial: tuple[int, int] | None = None  # (bpage index, bytes used)
        self.ready: deque[_Entry] = deque()
        self.client_rpcs: dict[int, tuple[int, int]] = {}  # id -> (server port, cookie)
        self.server_rpcs: set[tuple[int, int]] = set()  # (client port, id)
        self.unacked: set[tuple[int, int]] = set()  # replied, not yet through
        self.signalled = False

    # -- SocketLike ---------------------------------------------------------------------

    def fileno(self) -> int:
        return -1 if self.is_closed else self.fd

    def bind(self, address: tuple[object, ...]) -> None:
        port = int(address[1])  # type: ignore[call-overload]
        with self.kernel.lock:
            if port >= 0x8000:
                raise FakeError(errno.EINVAL, "port out of range")
            if port in self.kernel.ports:
                raise FakeError(errno.EADDRINUSE, "port in use")
            if port:
                del self.kernel.ports[self.port]
                self.port = port
                self.kernel.ports[port] = self
                self.is_server = True

    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        profile = self.kernel.profile
        if level != profile.protocol:
            raise FakeError(errno.ENOPROTOOPT, "wrong level")
        if optname == 10 and profile.has_rcvbuf:
            self._set_pool(bytes(value) if not isinstance(value, int) else b"")
        elif optname == 11 and profile.server_option:
            self.is_server = _U32.unpack(bytes(value)[:4])[0] != 0  # type: ignore[arg-type]
        else:
            raise FakeError(errno.EINVAL, "unknown option")

    def _set_pool(self, value: bytes) -> None:
        if len(value) != 16 or self.refcounts:
            raise FakeError(errno.EINVAL, "bad rcvbuf args or pool already set")
        start, length = struct.unpack("<QQ", value)
        if start % 4096 or length < self.kernel.profile.min_pool:
            raise FakeError(errno.EINVAL, "pool not aligned or too small")
        ffi.memmove(ffi.cast("char *", start), value, 16)  # the kernel's write test
        self.pool_start = start
        self.refcounts = [0] * (length // BPAGE)

    def getsockname(self) -> tuple[object, ...]:
        if self.family == socket.AF_INET6:
            return ("::", self.port, 0, 0)
        return ("0.0.0.0", self.port)

    def shutdown(self, how: int) -> None:
        with self.kernel.lock:
            self.is_shutdown = True
            self.kernel.changed(self)

    def close(self) -> None:
        with self.kernel.lock:
            if self.is_closed:
                return
            self.is_shutdown = self.is_closed = True
            self.kernel.ports.pop(self.port, None)
            self.kernel.by_fd.pop(self.fd, None)
            self.kernel.lock.notify_all()
        os.close(self.fd)

    # -- bpages ---------------------------------------------------------------------------

    def allocate(self, length: int) -> list[int]:
        """Offsets for a message: full bpages, then the tail packed unaligned."""
        offsets = []
        for _ in range(length // BPAGE):
            index = self._free_bpage()
            self.refcounts[index] = 1
            offsets.append(index * BPAGE)
        tail = length % BPAGE
        if tail:
            if self.partial is None or self.partial[1] + tail > BPAGE:
                self.partial = (self._free_bpage(), 24)  # never 64 KiB aligned
            index, used = self.partial
            offsets.append(index * BPAGE + used)
            self.refcounts[index] += 1
            self.partial = (index, used + tail + 8)
        return offsets

    def _free_bpage(self) -> int:
        busy = {self.partial[0]} if self.partial else set()
        for index, count in enumerate(self.refcounts):
            if count == 0 and index not in busy:
                return index
        raise AssertionError("fake kernel: receive pool exhausted (bpages leaked?)")

    def hand_back(self, offset: int) -> int:
        """Drop one reference; an errno if the offset is bad."""
        index = offset // BPAGE
        if index >= len(self.refcounts):
            return errno.EINVAL
        if self.refcounts[index] == 0:
            self.kernel.corruptions += 1
            if self.kernel.profile.double_free_einval:
                return errno.EINVAL
        self.refcounts[index] -= 1
        if self.refcounts[index] == 0 and self.partial and self.partial[0] == index:
            self.partial = None
        return 0

    def write(self, offsets: list[int], data: bytes) -> None:
        for i, offset in enumerate(offsets):
            chunk = data[i * BPAGE : (i + 1) * BPAGE]
            ffi.memmove(ffi.cast("char *", self.pool_start + offset), chunk, len(chunk))


class FakeKernel:
    """The fake module: socket factory plus ``LibC``. See the module docstring."""

    def __init__(
        self, generation: str | None = "G8c", *, resend_delay: float = 0.0
    ) -> None:
        self.profile = PROFILES[generation] if generation else None
        #: 0: messages arrive whole at once. Else the loopback loss (module docstring).
        self.resend_delay = resend_delay
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._timer_running = False
        self.lock = threading.Condition()
        self.ports: dict[int, FakeSocket] = {}
        self.by_fd: dict[int, FakeSocket] = {}
        self.next_port = 0x8000
        self.next_id = 2
        self.corruptions = 0
        #: Every hand-back batch seen, in order (lists of offsets).
        self.handback_batches: list[list[int]] = []
        #: Make the next N receives fail with EINTR after consuming hand-backs.
        self.interrupts = 0
        #: Make the next receive fail with this errno *before* taking hand-backs.
        self.reject_next_recv: int = 0
        self.calls: list[str] = []

    def forget_history(self) -> None:
        """Clear the call log and hand-back record (e.g. of the probes)."""
        self.handback_batches.clear()
        self.calls.clear()

    def system(self) -> _ffi.System:
        return _ffi.System(self, self.open_socket)  # type: ignore[arg-type]

    def open_socket(self, family: int, type_: int, proto: int) -> FakeSocket:
        if self.profile is None or proto != self.profile.protocol:
            raise FakeError(errno.EPROTONOSUPPORT, "Protocol not supported")
        with self.lock:
            while self.next_port in self.ports:
                self.next_port += 1
            sock = FakeSocket(self, family, self.next_port)
            self.ports[sock.port] = sock
            self.by_fd[sock.fd] = sock
            return sock

    def changed(self, sock: FakeSocket) -> None:
        """Keep the eventfd readable exactly while something is ready (lock held)."""
        assert self.profile is not None
        if sock.is_closed:
            self.lock.notify_all()
            return
        want = bool(sock.ready) or (
            sock.is_shutdown and self.profile.poll_reports_shutdown
        )
        if want and not sock.signalled and not sock.is_closed:
            os.eventfd_write(sock.fd, 1)
        elif not want and sock.signalled:
            os.eventfd_read(sock.fd)
        sock.signalled = want and not sock.is_closed
        self.lock.notify_all()

    def outstanding_bpages(self, sock: FakeSocket) -> int:
        return sum(sock.refcounts)

    def num_rpcs(self, sock: FakeSocket) -> int:
        """Live RPCs of ``sock``, as HOMAIOCINFO counts them (lock held)."""
        responses = sum(1 for entry in sock.ready if not entry.rpc_id & 1)
        return (
            len(sock.client_rpcs)
            + responses
            + len(sock.server_rpcs)
            + len(sock.unacked)
        )

    # -- time: RESENDs ----------------------------------------------------------------

    def _resent(self, length: int) -> bool:
        return bool(self.resend_delay) and length <= ONE_PACKET

    def _later(self, action: Callable[[], None]) -> None:
        """Run ``action`` (with the lock held) ``resend_delay`` seconds from now."""
        due = time.monotonic() + self.resend_delay
        heapq.heappush(self._timers, (due, next(self._timer_seq), action))
        if not self._timer_running:
            self._timer_running = True
            threading.Thread(
                target=self._run_timers, name="fake-homa-resend", daemon=True
            ).start()
        self.lock.notify_all()

    def _run_timers(self) -> None:
        with self.lock:
            while self._timers:
                wait = self._timers[0][0] - time.monotonic()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                heapq.heappop(self._timers)[2]()
            self._timer_running = False

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every scheduled RESEND has been answered."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self._timers and time.monotonic() < deadline:
                self.lock.wait(0.01)

    # -- sendmsg -------------------------------------------------------------------------

    def sendmsg(self, fd: int, msg: _ffi.CData, flags: int) -> int:
        self.calls.append("sendmsg")
        assert self.profile is not None
        with self.lock:
            sock = self.by_fd.get(fd)
            if sock is None or sock.is_shutdown:
                return _fail(errno.ESHUTDOWN if sock else errno.EBADF)
            if msg.msg_controllen != 0 or msg.msg_control == ffi.NULL:
                return _fail(errno.EINVAL)
            args = ffi.buffer(
                ffi.cast("char *", msg.msg_control), self.profile.send_size
            )
            if self.profile.send_size == 24 and (
                _U32.unpack(args[16:20])[0] & ~1 or args[20:24] != bytes(4)
            ):
                return _fail(errno.EINVAL)  # invalid flag or reserved bits
            err = self._check_name(sock, msg)
            data = self._gather(msg)
            if err or not 0 < len(data) <= 1_000_000:
                return _fail(err or errno.EINVAL)
            rpc_id, cookie = _U64.unpack(args[0:8])[0], _U64.unpack(args[8:16])[0]
            port = _port_of(msg)
            if rpc_id == 0:
                args[0:8] = _U64.pack(self._request(sock, port, cookie, data))
                return 0
            if cookie:
                return _fail(errno.EINVAL)
            self._response(sock, port, rpc_id, data)
            return 0

    def _check_name(self, sock: FakeSocket, msg: _ffi.CData) -> int:
        if msg.msg_name == ffi.NULL:
            return errno.EINVAL
        family = struct.unpack("<H", ffi.buffer(ffi.cast("char *", msg.msg_name), 2))[0]
        if family != sock.family:
            return errno.EAFNOSUPPORT
        needed = 28 if family == socket.AF_INET6 else 16
        return errno.EINVAL if msg.msg_namelen < needed else 0

    @staticmethod
    def _gather(msg: _ffi.CData) -> bytes:
        parts = []
        for i in range(msg.msg_iovlen):
            iov = msg.msg_iov[i]
            parts.append(
                bytes(ffi.buffer(ffi.cast("char *", iov.iov_base), iov.iov_len))
            )
        return b"".join(parts)

    def _request(self, client: FakeSocket, port: int, cookie: int, data: bytes) -> int:
        rpc_id = self.next_id
        self.next_id += 2
        server = self.ports.get(port)
        if server is None or not server.is_server or server.is_shutdown:
            client.client_rpcs[rpc_id] = (port, cookie)
            self._complete(client, rpc_id, b"", errno.ENOTCONN)  # ICMP unreachable
            return rpc_id
        client.client_rpcs[rpc_id] = (port, cookie)
        if self._resent(len(data)):
            self._later(lambda: self._request_resent(client, server, rpc_id, data))
        else:
            self._arrive(client, server, rpc_id, data)
        return rpc_id

    def _request_resent(
        self, client: FakeSocket, server: FakeSocket, rpc_id: int, data: bytes
    ) -> None:
        if client.is_shutdown:
            return  # the RESEND met a closed port: the server's RPC aborts, unseen
        if server.is_shutdown:
            self._complete(client, rpc_id, b"", errno.ENOTCONN)
            return
        self._arrive(client, server, rpc_id, data)

    def _arrive(
        self, client: FakeSocket, server: FakeSocket, rpc_id: int, data: bytes
    ) -> None:
        server.server_rpcs.add((client.port, rpc_id | 1))
        server.ready.append(_Entry(rpc_id | 1, 0, client.port, data))
        self.changed(server)

    def _response(
        self, server: FakeSocket, port: int, rpc_id: int, data: bytes
    ) -> None:
        if (port, rpc_id) not in server.server_rpcs:
            return  # no such RPC (any more): silently nothing, like the kernel
        server.server_rpcs.discard((port, rpc_id))
        client = self.ports.get(port)
        if client is None:
            return
        if not self._resent(len(data)):
            self._complete(client, rpc_id & ~1, data, 0)
            return
        server.unacked.add((port, rpc_id))
        self._later(lambda: self._response_resent(server, client, rpc_id, data))

    def _response_resent(
        self, server: FakeSocket, client: FakeSocket, rpc_id: int, data: bytes
    ) -> None:
        server.unacked.discard((client.port, rpc_id))
        if client.is_shutdown:
            return
        gone = server.is_shutdown  # the RESEND met a closed port
        err = errno.ENOTCONN if gone else 0
        self._complete(client, rpc_id & ~1, b"" if gone else data, err)

    def _complete(self, client: FakeSocket, rpc_id: int, data: bytes, err: int) -> None:
        entry = client.client_rpcs.pop(rpc_id, None)
        if entry is None:
            return  # aborted meanwhile
        server_port, cookie = entry
        client.ready.append(_Entry(rpc_id, cookie, server_port, data, err))
        self.changed(client)

    # -- recvmsg -------------------------------------------------------------------------

    def recvmsg(self, fd: int, msg: _ffi.CData, flags: int) -> int:
        self.calls.append("recvmsg")
        profile = self.profile
        assert profile is not None
        with self.lock:
            sock = self.by_fd.get(fd)
            if sock is None:
                return _fail(errno.EBADF)
            if profile.recv_size == 0 or msg.msg_controllen != profile.recv_size:
                return _fail(errno.EINVAL)  # struct not written back
            args = ffi.buffer(ffi.cast("char *", msg.msg_control), profile.recv_size)
            return self._receive(sock, profile, msg, args, flags)

    def _receive(
        self, sock: FakeSocket, p: Profile, msg: _ffi.CData, args: Any, flags: int
    ) -> int:
        in_flags = (
            _U32.unpack(args[p.flags_off : p.flags_off + 4])[0] if p.flags_off else 0
        )
        num = _U32.unpack(args[p.num_off : p.num_off + 4])[0]
        reserved = (
            p.reserved_off is not None and args[p.reserved_off : p.reserved_off + 4]
        )
        if num > 16 or (reserved and reserved != bytes(4)) or self._rejecting():
            return _fail(errno.EINVAL)  # written back unchanged: hand-backs not taken
        if not sock.refcounts:
            return _fail(errno.EINVAL)
        err = self._take_handbacks(sock, p, args, num)
        if err:
            return _fail(err)
        nonblocking = bool(in_flags & p.nonblock_flag) or (
            p.honours_dontwait and bool(flags & socket.MSG_DONTWAIT)
        )
        wanted = in_flags & 3 if p.filters_kind else 3
        while True:
            if sock.is_shutdown:
                return _fail(errno.ESHUTDOWN)
            if self.interrupts:
                self.interrupts -= 1
                return _fail(errno.EINTR)
            entry = _pop_wanted(sock, wanted)
            if entry is not None:
                break
            if nonblocking:
                return _fail(errno.EAGAIN)
            self.lock.wait()
        self.changed(sock)
        return self._deliver(sock, p, msg, args, entry)

    def _rejecting(self) -> bool:
        err, self.reject_next_recv = self.reject_next_recv, 0
        return bool(err)

    def _take_handbacks(self, sock: FakeSocket, p: Profile, args: Any, num: int) -> int:
        offsets = [
            _U32.unpack(args[p.offsets_off + 4 * i : p.offsets_off + 4 * i + 4])[0]
            for i in range(num)
        ]
        args[p.num_off : p.num_off + 4] = _U32.pack(0)
        if offsets:
            self.handback_batches.append(offsets)
        for offset in offsets:
            err = sock.hand_back(offset)
            if err:
                return err
        return 0

    def _deliver(
        self, sock: FakeSocket, p: Profile, msg: _ffi.CData, args: Any, entry: _Entry
    ) -> int:
        args[0:8] = _U64.pack(entry.rpc_id)
        args[8:16] = _U64.pack(entry.cookie)
        if entry.error:
            return _fail(entry.error)  # no address after an error (G8)
        offsets = sock.allocate(len(entry.data))
        sock.write(offsets, entry.data)
        args[p.num_off : p.num_off + 4] = _U32.pack(len(offsets))
        for i, offset in enumerate(offsets):
            at = p.offsets_off + 4 * i
            args[at : at + 4] = _U32.pack(offset)
        name = _sockaddr(sock.family, entry.peer_port)
        if p.peer_off is not None:
            args[p.peer_off : p.peer_off + len(name)] = name
        if msg.msg_name == ffi.NULL:
            raise AssertionError("fake G4a kernel oops: recvmsg with a NULL msg_name")
        ffi.memmove(msg.msg_name, name, len(name))
        msg.msg_namelen = len(name)
        msg.msg_controllen = 0  # the kernel clears it: callers must reset it
        return len(entry.data)

    # -- ioctl ---------------------------------------------------------------------------

    def ioctl(self, fd: int, request: int, arg: _ffi.CData) -> int:
        self.calls.append(f"ioctl {request:#x}")
        assert self.profile is not None
        op = self.profile.ioctls.get(request)
        with self.lock:
            sock = self.by_fd.get(fd)
            if sock is None or op is None:
                return _fail(errno.EBADF if sock is None else errno.EINVAL)
            if op == "abort":
                return self._abort(sock, ffi.cast("struct homa_abort_args *", arg))
            if op == "info":
                info = ffi.buffer(ffi.cast("char *", arg), 136)
                info[16:32] = struct.pack(
                    "<QII",
                    BPAGE * sock.refcounts.count(0),
                    sock.port,
                    self.num_rpcs(sock),
                )
                info[32:36] = b"ok\0\0"
            return 0

    def _abort(self, sock: FakeSocket, args: _ffi.CData) -> int:
        if args._pad1 or args._pad2[0] or args._pad2[1]:
            return _fail(errno.EINVAL)
        ids = list(sock.client_rpcs) if args.id == 0 else [args.id]
        if args.id and args.id not in sock.client_rpcs:
            return _fail(errno.EINVAL)
        for rpc_id in ids:
            if args.error:
                self._complete(sock, rpc_id, b"", args.error)
            else:
                sock.client_rpcs.pop(rpc_id)
        return 0


def _pop_wanted(sock: FakeSocket, wanted: int) -> _Entry | None:
    for i, entry in enumerate(sock.ready):
        kind = 1 if entry.rpc_id & 1 else 2
        if kind & wanted:
            del sock.ready[i]
            return entry
    return None


def _port_of(msg: _ffi.CData) -> int:
    return struct.unpack(">H", ffi.buffer(ffi.cast("char *", msg.msg_name) + 2, 2))[0]


def _sockaddr(family: int, port: int) -> bytes:
    if family == socket.AF_INET6:
        return (
            struct.pack("<H", family)
            + struct.pack(">H", port)
            + bytes(4)
            + socket.inet_pton(socket.AF_INET6, "::1")
            + bytes(4)
        )
    return (
        struct.pack("<H", family)
        + struct.pack(">H", port)
        + socket.inet_aton("127.0.0.1")
        + bytes(8)
    )
