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
* ``close()`` also makes an eventfd readable that ``recv(timeout)`` polls beside the
  socket: G4a's poll never reports a shut-down socket.
* Homa retransmits from the sending socket, and on loopback the module loses the
  first packet of every one-packet message (it is asked for again a few ms later):
  ``linger(timeout)`` before ``close()`` waits until our client RPCs have their
  outcomes and the kernel holds no RPC of ours (HOMAIOCINFO's ``num_rpcs``; without
  it, ``blind_linger`` after the last reply).
* G4a has no SO_HOMA_SERVER: requests reach every socket. One opened as a client
  (no port, ``server=False``) drops them, counted in ``stats``.
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
    LocalProtocolError,
    TransportClosedError,
    error_from_errno,
)
from . import _ffi
from ._addr import encode_sockaddr, family_of, is_wildcard
from ._ffi import CData, System, raise_oserror, real_system
from ._receive import Failed, Received, Receiver
from ._support import HomaInfo, open_socket, transport_error, usable_abi
from .abi import (
    HOMA_MAX_BPAGES,
    HOMA_MAX_MESSAGE_LENGTH,
    HOMA_MIN_DEFAULT_PORT,
    SockOpt,
)
from .bufpool import BufferPool
from .probe import Detection, cached_detection, detect

__all__ = ["HomaInfo", "HomaSocket"]

_RPC_GONE = frozenset(
    {errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTUNREACH, errno.ECONNRESET}
)
#: How often ``linger`` looks again (and how long it receives at a time).
_LINGER_SLICE = 0.005
_IOV_ARRAY = _ffi.ffi.typeof("struct iovec[]")
_ABORT_ARGS = _ffi.ffi.typeof("struct homa_abort_args *")


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
    #: Where the module cannot count the socket's RPCs (no HOMAIOCINFO: G4a, G8a),
    #: ``linger`` waits this long after the last reply: a peer that lost a packet
    #: asks for it again after ``resend_ticks`` (5 ms), then every 5 ms, and gives
    #: the RPC up after ``timeout_ticks`` (100 ms) of silence (spec §5.3).
    blind_linger: float = 0.1

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
        abi = usable_abi(detection)
        self._abi = abi
        self._ffi = abi.ffi
        self._lib = system.lib
        self._ioctls = detection.ioctls
        #: "G8c", "G4a", ...: the generation this socket speaks.
        self.generation = detection.generation
        self._family = family_of(local[0])
        #: Requests are ours to answer. G4a delivers them to every socket: a client
        #: socket drops (and counts) the ones it gets.
        self._serving = server or bool(local[1])
        with ExitStack() as undo:  # on failure: close the socket, then unmap the pool
            self._pool = BufferPool(pool_bytes)
            undo.callback(self._pool.close)
            self._sock = open_socket(system, self._family, abi.protocol)
            undo.callback(self._sock.close)
            self._set_up(local, server)
            self._fd = self._sock.fileno()
            self._local = self._resolve_local(local)
            # Readable once closed: wakes ``recv(timeout)`` in poll, where a shut
            # down socket never shows (G4a's poll).
            self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            undo.pop_all()
        self._receiver = Receiver(abi, system.lib, self._pool)
        self._lock = threading.Lock()
        self._closed = False
        self._users = 0
        self._receiving = 0
        self._last_reply = float("-inf")
        self._finalized = False
        self._outgoing: dict[int, tuple[Address, int]] = {}
        self._early: set[int] = set()
        self._abandoned: set[int] = set()
        self._ready: deque[Message] = deque()
        #: Counters of what the socket dropped and why.
        self.stats: Counter[str] = Counter()

    def stats_snapshot(self) -> dict[str, int]:
        """What the socket dropped or gave up on, by reason (a copy of ``stats``)."""
        return dict(self.stats)

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
        self._last_reply = time.monotonic()

    def recv(self, timeout: float | None = None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._in_use(receiving=True):
            while True:
                message = self._next(nonblocking=deadline is not None)
                if message is not None:
                    return message
                if deadline is None:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    return None
                if self._closed:
                    raise TransportClosedError("transport is closed")

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
            os.eventfd_write(self._wake, 1)  # under the lock: the fd is still open
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)  # wakes receivers with ESHUTDOWN
        except OSError:
            pass
        if idle:
            self._finalize()

    def linger(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until closing loses nothing we sent.

        Settled means: no client RPC of ours is outstanding (each has its response
        or failure, so its peer has the whole request; aborted ones are not waited
        for), and, for a server, the kernel holds no RPC for the socket
        (``num_rpcs`` of HOMAIOCINFO: replies acknowledged, requests answered) or,
        where the module cannot say, ``blind_linger`` seconds have passed since our
        last reply. While no other thread is in ``recv``, this one
        receives, keeping what arrives for ``recv``. See ``Transport.linger``.
        """
        deadline = time.monotonic() + timeout
        try:
            with self._in_use("linger"):
                while not self._settled():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.stats["linger_timeouts"] += 1
                        return False
                    self._linger_a_while(min(remaining, _LINGER_SLICE))
        except HomaError:  # closed meanwhile, or the module would not say
            return False
        return True

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
        if is_request and not self._serving:
            self._pool.give_back(outcome.offsets)  # G4a: every socket gets requests
            self.stats["dropped_requests_not_serving"] += 1
            return None
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
        """Poll the socket, and the wake-up fd that ``close()`` makes readable."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        return bool(poller.poll(max(1, int(timeout * 1000 + 0.999))))

    # -- lingering ---------------------------------------------------------------------

    def _settled(self) -> bool:
        with self._lock:
            if self._outgoing:
                return False  # (not those the application abandoned)
        if not self._serving:
            return True  # a client's kernel RPCs beyond those are not awaited
        if self._ioctls.info is None:
            return time.monotonic() - self._last_reply >= self.blind_linger
        info = self.info()
        return info is None or info.num_rpcs == 0

    def _linger_a_while(self, seconds: float) -> None:
        """Let the kernel progress for ``seconds``; receive if nobody else does."""
        with self._lock:
            others_receive = self._receiving > 0
        if others_receive:
            time.sleep(seconds)  # what they receive settles our RPCs
            return
        outcome = self._receiver.receive(self._fd, nonblocking=True)
        if outcome is None:
            self._wait_readable(seconds)
            return
        message = self._deliverable(outcome)
        if message is not None:
            with self._lock:
                self._ready.append(message)

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

    def _in_use(self, what: str = "recvmsg", *, receiving: bool = False) -> _InUse:
        return _InUse(self, what, receiving)

    def _enter(self, receiving: bool = False) -> None:
        with self._lock:
            if self._closed:
                raise TransportClosedError("transport is closed")
            self._users += 1
            self._receiving += receiving

    def _leave(self, receiving: bool = False) -> None:
        with self._lock:
            self._users -= 1
            self._receiving -= receiving
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
        os.close(self._wake)
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

    __slots__ = ("_receiving", "_socket", "_what")

    def __init__(self, sock: HomaSocket, what: str, receiving: bool) -> None:
        self._socket = sock
        self._what = what
        self._receiving = receiving

    def __enter__(self) -> None:
        self._socket._enter(self._receiving)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: object,
    ) -> None:
        try:
            if isinstance(exc, OSError) and exc.errno is not None:
                text = self._socket._last_error_text()
                raise transport_error(exc.errno, self._what, text) from exc
        finally:
            self._socket._leave(self._receiving)
