"""``HomaSocket``: the transport contract over a Homa kernel socket.

Layer: transport.kernel. Imports: stdlib, ``cffi`` (through ``_ffi``), this package,
``transport._base`` and ``transport.errors``. No asyncio, no engine.

Theory of operation:

* One socket, one ``BufferPool``. Sends and replies are ``sendmsg`` with the argument
  struct's *address* in ``msg_control`` and ``msg_controllen`` = 0; the kernel writes
  the new RPC id back into it. Receives are ``recvmsg`` (``_receive.Receiver``).
* ``recv(timeout=None)`` blocks in the kernel (cffi drops the GIL); with a timeout it
  alternates non-blocking receives with ``poll`` on the fd. ``close()`` shuts the
  socket down first, which wakes every blocked receiver with ``ESHUTDOWN``; the fd is
  closed (and the pool unmapped) only when the last call using it has returned, so a
  recycled fd number can never be hit by a late call.
* Client RPCs in flight are remembered (id -> peer, cookie) so a failure, which the
  kernel reports without an address, still names its peer; and so that a module
  without ``HOMAIOCABORT`` (upstream builds) can abort locally: the id is marked
  abandoned, a failure is queued if an errno was given, and whatever the kernel later
  delivers for it is dropped.
* Messages that cannot go to the caller at once (received while handing back a
  backlog of bpages, local aborts) wait in ``_ready``; ``next_deadline()`` is "now"
  while it is non-empty, so event loops call ``recv(timeout=0)`` for them.
"""

from __future__ import annotations

import errno
import os
import select
import socket as _socket
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass
from typing import ClassVar

from .._base import (
    Address,
    Message,
    Payload,
    Transport,
    check_message_length,
    payload_parts,
)
from ..errors import (
    HomaError,
    HomaUnavailableError,
    LocalProtocolError,
    MessageTooLongError,
    TransportClosedError,
    UnsupportedAbiError,
    error_from_errno,
)
from . import _ffi
from ._addr import encode_sockaddr, family_of, is_wildcard
from ._ffi import CData, System, raise_oserror, real_system
from ._receive import Failed, Received, Receiver
from .abi import (
    HOMA_MAX_BPAGES,
    HOMA_MAX_MESSAGE_LENGTH,
    HOMA_MIN_DEFAULT_PORT,
    Abi,
    SockOpt,
)
from .bufpool import BufferPool
from .probe import Detection, cached_detection, detect

__all__ = ["HomaInfo", "HomaSocket"]

_RPC_GONE = frozenset(
    {errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTUNREACH, errno.ECONNRESET}
)
_MISUSE = frozenset({errno.EINVAL, errno.EAFNOSUPPORT, errno.EFAULT, errno.EOPNOTSUPP})
_IOV_ARRAY = _ffi.ffi.typeof("struct iovec[]")
_ABORT_ARGS = _ffi.ffi.typeof("struct homa_abort_args *")


@dataclass(frozen=True, slots=True)
class HomaInfo:
    """What ``HOMAIOCINFO`` reports about a socket (G8b and later)."""

    bpool_avail_bytes: int
    port: int
    num_rpcs: int
    #: The module's text for the last error it saw on this socket.
    error_msg: str


class HomaSocket(Transport):
    """A Homa kernel socket speaking the ``Transport`` contract (IPv4 or IPv6).

    Args:
        local: address to open on; its host picks the family. A port of 1..32767 binds
            it (and makes it a server); port 0 keeps the kernel's automatic port.
        server: accept requests even on an automatic port (``SO_HOMA_SERVER``).
        pool_bytes: receive-region size (default: 1000 bpages, more on big hosts).
        detection: what the ABI probes found (default: probe this host once).
        system: libc and socket factory (tests pass a fake kernel).

    Raises:
        HomaUnavailableError: no usable Homa module here (the message says why).
        UnsupportedAbiError: a module is loaded, but of an ABI homarpc does not speak.
        ValueError: a port Homa cannot bind, or a bad ``pool_bytes``.
    """

    kind: ClassVar[str] = "kernel"

    def __init__(
        self,
        local: Address = ("0.0.0.0", 0),
        *,
        server: bool = False,
        pool_bytes: int | None = None,
        detection: Detection | None = None,
        system: System | None = None,
    ) -> None:
        if detection is None:
            detection = cached_detection() if system is None else detect(system)
        system = system or real_system()
        abi = _usable_abi(detection)
        self._abi = abi
        self._ffi = abi.ffi
        self._lib = system.lib
        self._ioctls = detection.ioctls
        #: "G8c", "G4a", ...: the generation this socket speaks.
        self.generation = detection.generation
        self._family = family_of(local[0])
        with ExitStack() as undo:  # on failure: close the socket, then unmap the pool
            self._pool = BufferPool(pool_bytes)
            undo.callback(self._pool.close)
            self._sock = _open(system, self._family, abi.protocol)
            undo.callback(self._sock.close)
            self._set_up(local, server)
            self._fd = self._sock.fileno()
            self._local = self._resolve_local(local)
            undo.pop_all()
        self._receiver = Receiver(abi, system.lib, self._pool)
        self._lock = threading.Lock()
        self._closed = False
        self._users = 0
        self._finalized = False
        self._outgoing: dict[int, tuple[Address, int]] = {}
        self._early: set[int] = set()
        self._abandoned: set[int] = set()
        self._ready: deque[Message] = deque()
        #: Counters of what the socket dropped and why.
        self.stats: Counter[str] = Counter()

    # -- set-up ------------------------------------------------------------------------

    def _set_up(self, local: Address, server: bool) -> None:
        host, port = local
        if port:
            if not 0 < port < HOMA_MIN_DEFAULT_PORT:
                raise ValueError(
                    f"Homa can bind only ports 1..{HOMA_MIN_DEFAULT_PORT - 1}, not "
                    f"{port}; use port 0 for an automatic port"
                )
            self._sock.bind((host, port))
        elif server and self._abi.server_option is not None:
            level, option = self._abi.protocol, SockOpt.SERVER
            self._sock.setsockopt(level, option, (1).to_bytes(4, "little"))
        try:
            self._pool.register(self._sock, self._abi.protocol)
        except OSError as exc:
            raise HomaError(
                f"the Homa module refused the {self._pool.size}-byte receive pool "
                f"({exc.strerror}); pass a pool_bytes it accepts"
            ) from exc

    def _resolve_local(self, local: Address) -> Address:
        got = self._sock.getsockname()
        host = str(got[0]) if is_wildcard(local[0]) else local[0]
        return host, int(got[1])

    # -- the contract ------------------------------------------------------------------

    @property
    def local_addr(self) -> Address:
        return self._local

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._fd

    def next_deadline(self) -> float | None:
        return time.monotonic() if self._ready else None

    def send(self, dest: Address, payload: Payload, cookie: int = 0) -> int:
        args: CData = self._ffi.new(self._abi.sendmsg_args)
        args.completion_cookie = cookie
        self._sendmsg(dest, payload, args, "send")
        rpc_id = int(args.id)
        with self._lock:
            if rpc_id in self._early:  # its outcome beat us here (e.g. ENOTCONN)
                self._early.discard(rpc_id)
            else:
                self._outgoing[rpc_id] = (dest, cookie)
        return rpc_id

    def reply(self, dest: Address, rpc_id: int, payload: Payload) -> None:
        if not rpc_id & 1:
            raise LocalProtocolError(f"{rpc_id} is a client RPC id, not a request's")
        args: CData = self._ffi.new(self._abi.sendmsg_args)
        args.id = rpc_id
        try:
            self._sendmsg(dest, payload, args, "reply")
        except HomaError as exc:
            if getattr(exc, "errno", None) not in _RPC_GONE:
                raise
            self.stats["replies_to_failed_rpcs"] += 1  # the RPC is gone: as if ignored

    def recv(self, timeout: float | None = None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._in_use():
            while True:
                message = self._next(nonblocking=deadline is not None)
                if message is not None:
                    return message
                if deadline is None:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    return None

    def abort(self, rpc_id: int = 0, error: int = 0) -> None:
        if error < 0:
            raise ValueError(f"error must be a positive errno or 0, not {error}")
        with self._in_use("abort"):
            if self._ioctls.abort is None:
                self._abort_locally(rpc_id, error)
                return
            args = _ffi.ffi.new(_ABORT_ARGS, {"id": rpc_id, "error": error})
            if self._lib.ioctl(self._fd, self._ioctls.abort, args) < 0:
                err = self._ffi.errno
                if err == errno.EINVAL and rpc_id:
                    return  # not (or no longer) a client RPC of ours: a no-op
                raise_oserror("HOMAIOCABORT")
            if not error:
                self._forget(rpc_id)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = self._users == 0
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)  # wakes receivers with ESHUTDOWN
        except OSError:
            pass
        if idle:
            self._finalize()

    # -- extras ------------------------------------------------------------------------

    @property
    def pool(self) -> BufferPool:
        """The socket's receive region."""
        return self._pool

    def info(self) -> HomaInfo | None:
        """``HOMAIOCINFO`` (G8b and later); ``None`` where the module has no such call."""
        if self._ioctls.info is None:
            return None
        with self._in_use("HOMAIOCINFO"):
            arg: CData = self._ffi.new("struct homa_info *")
            if self._lib.ioctl(self._fd, self._ioctls.info, arg) < 0:
                raise_oserror("HOMAIOCINFO")
            text = bytes(self._ffi.buffer(arg.error_msg)).split(b"\0", 1)[0]
            return HomaInfo(
                arg.bpool_avail_bytes,
                arg.port,
                arg.num_rpcs,
                text.decode(errors="replace"),
            )

    def freeze(self) -> None:
        """``HOMAIOCFREEZE``: freeze the module's time trace (a debugging aid)."""
        if self._ioctls.freeze is None:
            raise HomaError("this Homa module has no HOMAIOCFREEZE")
        with self._in_use("HOMAIOCFREEZE"):
            if self._lib.ioctl(self._fd, self._ioctls.freeze, _ffi.ffi.NULL) < 0:
                raise_oserror("HOMAIOCFREEZE")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"at {self._local}"
        return f"<HomaSocket {self.generation} {state}, {self._pool!r}>"

    # -- sending -----------------------------------------------------------------------

    def _sendmsg(self, dest: Address, payload: Payload, args: CData, what: str) -> None:
        views = [memoryview(part) for part in payload_parts(payload)]
        length = sum(view.nbytes for view in views)
        if length == 0:
            raise ValueError(
                "Homa cannot carry an empty message (send at least 1 byte)"
            )
        check_message_length(length, HOMA_MAX_MESSAGE_LENGTH)
        name = encode_sockaddr(self._family, dest)
        # Every cdata the msghdr points to stays referenced here until the call ends.
        name_c = _ffi.ffi.from_buffer(name)
        data = [_ffi.ffi.from_buffer(view) for view in views]
        iov = _ffi.ffi.new(
            _IOV_ARRAY,
            [
                {"iov_base": d, "iov_len": v.nbytes}
                for d, v in zip(data, views, strict=True)
            ],
        )  # one iovec per part: the kernel gathers them (sendmsg copies at once)
        msg = _ffi.new_msghdr(name_c, len(name), args, 0)
        msg.msg_iov, msg.msg_iovlen = iov, len(views)
        with self._in_use(f"{what} to {dest}"):
            while self._lib.sendmsg(self._fd, msg, 0) < 0:
                err = self._ffi.errno
                if err != errno.EINTR:
                    raise_oserror(what)

    # -- receiving ---------------------------------------------------------------------

    def _next(self, nonblocking: bool) -> Message | None:
        """The next deliverable message, or ``None`` if the kernel had none yet."""
        while True:
            with self._lock:
                if self._ready:
                    return self._ready.popleft()
            if not nonblocking and self._pool.pending_count > HOMA_MAX_BPAGES:
                self._drain_handbacks()
                continue
            outcome = self._receiver.receive(self._fd, nonblocking)
            if outcome is None:
                return None
            message = self._deliverable(outcome)
            if message is not None:
                return message

    def _drain_handbacks(self) -> None:
        """Hand back a backlog of bpages before blocking, so the kernel cannot stall.

        A blocking recvmsg returns only 16 of them; if the pool is full of released
        bpages the kernel may wait for space that only the rest would give.
        """
        while self._pool.pending_count > HOMA_MAX_BPAGES:
            outcome = self._receiver.receive(self._fd, nonblocking=True)
            message = None if outcome is None else self._deliverable(outcome)
            if message is not None:
                with self._lock:
                    self._ready.append(message)

    def _deliverable(self, outcome: Received | Failed) -> Message | None:
        if isinstance(outcome, Failed):
            return self._failure(outcome)
        rpc_id = outcome.rpc_id
        is_request = bool(rpc_id & 1)
        if not is_request and not self._settle(rpc_id):
            self._pool.give_back(outcome.offsets)
            self.stats["dropped_abandoned_responses"] += 1
            return None
        payload, release = self._pool.read(outcome.offsets, outcome.length)
        peer = outcome.peer or ("", 0)
        return Message(
            rpc_id, outcome.cookie, peer, is_request, payload, release=release
        )

    def _failure(self, failed: Failed) -> Message | None:
        if failed.rpc_id == 0:
            raise OSError(failed.errno, os.strerror(failed.errno))
        if failed.rpc_id & 1:
            self.stats["dropped_server_rpc_failures"] += 1  # nothing is owed for it
            return None
        with self._lock:
            entry = self._outgoing.get(failed.rpc_id)
        if not self._settle(failed.rpc_id):
            self.stats["dropped_abandoned_failures"] += 1
            return None
        peer = entry[0] if entry else ("", 0)
        error = error_from_errno(failed.errno, f"RPC {failed.rpc_id} to {peer}")
        return Message(failed.rpc_id, failed.cookie, peer, False, error=error)

    def _settle(self, rpc_id: int) -> bool:
        """A client RPC ended; False if the application already gave up on it."""
        with self._lock:
            if rpc_id in self._abandoned:
                self._abandoned.discard(rpc_id)
                return False
            if self._outgoing.pop(rpc_id, None) is None:
                self._early.add(rpc_id)  # send() has not recorded it yet
            return True

    def _wait_readable(self, timeout: float) -> bool:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(max(1, int(timeout * 1000 + 0.999))))

    # -- aborting ----------------------------------------------------------------------

    def _abort_locally(self, rpc_id: int, error: int) -> None:
        with self._lock:
            ids = list(self._outgoing) if rpc_id == 0 else [rpc_id]
            for one in ids:
                entry = self._outgoing.pop(one, None)
                if entry is None:
                    continue  # unknown or finished: a no-op
                self._abandoned.add(one)
                if error:
                    failure = error_from_errno(error, f"RPC {one} to {entry[0]}")
                    self._ready.append(
                        Message(one, entry[1], entry[0], False, error=failure)
                    )

    def _forget(self, rpc_id: int) -> None:
        with self._lock:
            if rpc_id == 0:
                self._outgoing.clear()
            else:
                self._outgoing.pop(rpc_id, None)

    # -- lifetime ----------------------------------------------------------------------

    def _in_use(self, what: str = "recvmsg") -> _InUse:
        return _InUse(self, what)

    def _enter(self) -> None:
        with self._lock:
            if self._closed:
                raise TransportClosedError("transport is closed")
            self._users += 1

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._closed and self._users == 0
        if last:
            self._finalize()

    def _finalize(self) -> None:
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
            self._ready.clear()
        self._sock.close()
        self._pool.close()  # after the socket: the kernel never unmaps the region

    def _last_error_text(self) -> str:
        try:
            info = self.info() if not self._closed else None
        except HomaError:
            return ""
        return info.error_msg if info is not None else ""


class _InUse:
    """One call using the fd: the boundary where OSErrors become transport errors.

    It counts the call, so ``close()`` defers closing the fd until the last one
    returns, and it translates an ``OSError`` raised inside into the matching
    ``HomaError``, with the module's own text for it where the module can tell.
    """

    __slots__ = ("_socket", "_what")

    def __init__(self, sock: HomaSocket, what: str) -> None:
        self._socket = sock
        self._what = what

    def __enter__(self) -> None:
        self._socket._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: object,
    ) -> None:
        try:
            if isinstance(exc, OSError) and exc.errno is not None:
                text = self._socket._last_error_text()
                raise _transport_error(exc.errno, self._what, text) from exc
        finally:
            self._socket._leave()


def _usable_abi(detection: Detection) -> Abi:
    if detection.abi is not None:
        return detection.abi
    reason = detection.reason or "the Homa kernel module is not usable here"
    if detection.generation is not None:
        raise UnsupportedAbiError(reason)
    raise HomaUnavailableError(reason)


def _open(system: System, family: int, protocol: int) -> _ffi.SocketLike:
    try:
        return system.open_socket(family, _socket.SOCK_DGRAM, protocol)
    except OSError as exc:
        kind = "IPv6" if family == _socket.AF_INET6 else "IPv4"
        raise HomaUnavailableError(
            f"cannot open an {kind} Homa socket (protocol {protocol}): {exc.strerror}"
        ) from exc


def _transport_error(err: int, what: str, module_says: str) -> HomaError:
    """The transport error for a failed local call (not a failed RPC)."""
    detail = f"{what} failed: {_errno_name(err)}"
    if module_says:
        detail += f" (the Homa module says: {module_says})"
    if err in (errno.ESHUTDOWN, errno.EBADF):
        return TransportClosedError(f"transport is closed ({detail})")
    if err == errno.EMSGSIZE:
        return MessageTooLongError(detail)
    if err in _MISUSE:
        return LocalProtocolError(detail)
    return error_from_errno(err, detail)


def _errno_name(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
