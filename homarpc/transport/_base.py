"""The message-socket contract every transport backend honours.

Layer: transport. Imports: stdlib, ``transport.errors`` and the engine's
``Placement`` (a leaf module: what a layout hook returns, any backend may honour it).

It mirrors the Homa kernel API (and go-homa's ``Socket``): a connectionless socket
that sends *requests* (each starting a Homa RPC, tagged with a completion cookie),
receives complete messages, and answers each request with exactly one *reply*.

Contract, in the words the conformance suite (``tests/conformance``) checks:

* ``send(dest, payload, cookie) -> rpc_id`` starts a client RPC and returns at once.
  The response, or the RPC's failure, comes back later through ``recv()`` as a
  ``Message`` whose ``cookie`` is the one given here.
* ``recv(timeout)`` returns the next complete message: a request (``is_request``,
  answer it with ``reply(msg.peer, msg.id, ...)``), a response, or a failed client RPC
  (``error`` set, ``payload`` empty). ``None`` when ``timeout`` expires; ``timeout=0``
  polls. Several threads may wait at once: each message goes to exactly one of them.
  Raises ``TransportClosedError`` once the transport is closed, including in threads
  already blocked in it.
* ``reply(dest, rpc_id, payload)`` sends the response to a request. Replying to an RPC
  that no longer exists (the client aborted or went away) is silently ignored, as in
  the kernel.
* ``abort(rpc_id, error)``: ``rpc_id == 0`` means every client RPC of this socket.
  ``error == 0`` destroys silently; otherwise the RPC completes with that errno and
  ``recv()`` reports it. Aborting an unknown id is a no-op.
* ``fileno()`` is readable when ``recv(timeout=0)`` may have something; an event
  loop must also call ``recv(timeout=0)`` no later than ``next_deadline()`` (a
  ``time.monotonic()`` value, or ``None`` when no timer is pending) so that a
  user-space backend can run its protocol timers.
* Payloads are 0..``max_message_length`` bytes (the kernel backend refuses 0).
* ``unreachable_peers()`` drains the peers the backend found gone (ICMP
  unreachable), and ``on_unreachable`` (if set) is called with each as it is
  found; backends that cannot tell report none.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

from .engine.placement import Layout, Placement, join_pieces
from .errors import HomaError, MessageTooLongError

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "Address",
    "Buffer",
    "Message",
    "Payload",
    "Transport",
    "check_message_length",
    "joined",
    "payload_length",
    "payload_parts",
]

#: Largest Homa message, in bytes, for every backend (the kernel's compile-time limit).
MAX_MESSAGE_LENGTH = 1_000_000

#: Bytes-like payloads accepted by ``send``/``reply`` (``collections.abc.Buffer`` is
#: 3.12+; this spells the same idea for 3.11).
Buffer = bytes | bytearray | memoryview

#: What ``send``/``reply`` carry: one bytes-like object, or a list of them sent as
#: their concatenation (gather, like ``sendmsg``'s iovec: a frame's head and a
#: large payload leave without first being joined into one more copy).
Payload = Buffer | list[Buffer]

#: A peer or local address: ``(host, port)``; IPv6 hosts are written without brackets.
Address = tuple[str, int]


def check_message_length(length: int, limit: int = MAX_MESSAGE_LENGTH) -> None:
    """Refuse a payload of ``length`` bytes that ``limit`` does not allow.

    Raises:
        MessageTooLongError: ``length`` exceeds ``limit``.
    """
    if length > limit:
        raise MessageTooLongError(
            f"message of {length} bytes exceeds the Homa limit of {limit} bytes"
        )


def payload_parts(payload: Payload) -> list[Buffer]:
    """``payload`` as its list of parts (a single buffer is one part)."""
    return payload if isinstance(payload, list) else [payload]


def payload_length(payload: Payload) -> int:
    """Bytes in ``payload`` (all parts)."""
    if type(payload) is bytes:
        return len(payload)
    if isinstance(payload, list):
        return sum(memoryview(part).nbytes for part in payload)
    return memoryview(payload).nbytes


def joined(payload: Payload) -> bytes:
    """``payload`` as one ``bytes`` (a copy unless it already is one)."""
    if type(payload) is bytes:
        return payload
    if isinstance(payload, list):
        return b"".join(payload)
    return bytes(payload)


class Message:
    """One complete incoming message, or the failure of one client RPC.

    Attributes:
        id: the RPC id, as this side knows it (pass it back to ``reply``).
        cookie: the completion cookie given to ``send`` (0 for requests).
        peer: the address of the other end.
        is_request: True for an incoming request (we owe a reply).
        payload: the message bytes; a zero-copy view where the backend can give one,
            valid until ``release()``. Empty when ``error`` is set. A backend that
            received the message in pieces joins them on first use: a reader that
            can take pieces asks ``payload_parts()`` instead and skips that copy.
        error: why the RPC failed, or ``None``.

    Pieces are views of immutable ``bytes``, except that the last may be the
    ``Placement`` a layout hook (``Transport.set_layout``) chose for the message.
    """

    __slots__ = (
        "_parts", "_payload", "_release", "cookie", "error", "id", "is_request", "peer",
    )  # fmt: skip

    def __init__(
        self,
        id: int,
        cookie: int,
        peer: Address,
        is_request: bool,
        payload: bytes | memoryview = b"",
        error: HomaError | None = None,
        release: Callable[[], None] | None = None,
        *,
        parts: list[bytes | memoryview | Placement] | None = None,
    ) -> None:
        self.id = id
        self.cookie = cookie
        self.peer = peer
        self.is_request = is_request
        self._payload = payload
        #: The payload still in pieces (views of immutable ``bytes``), or None.
        self._parts = parts
        self.error = error
        self._release = release

    @property
    def payload(self) -> bytes | memoryview:
        if self._parts is not None:
            self._payload = join_pieces(self._parts)
            self._parts = None
        return self._payload

    @payload.setter
    def payload(self, value: bytes | memoryview) -> None:
        self._payload = value
        self._parts = None

    def payload_parts(self) -> list[bytes | memoryview | Placement]:
        """The payload as buffers whose concatenation it is, not joined if the
        backend received it in pieces (views of immutable ``bytes``, so they stay
        valid): the RPC layer decodes a frame's head from the first and joins
        the payload once, across the frames of a split message."""
        if self._parts is not None:
            return self._parts
        return [self._payload]

    def __len__(self) -> int:
        if self._parts is not None:
            return sum(len(part) for part in self._parts)
        return len(self._payload)

    def __bytes__(self) -> bytes:
        return bytes(self.payload)

    def release(self) -> None:
        """Give the payload's buffer space back to the transport (idempotent)."""
        release, self._release = self._release, None
        if release is not None:
            self.payload = b""
            release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        kind = "request" if self.is_request else "response"
        what = f"error={self.error!r}" if self.error else f"{len(self)} B"
        return f"<Message {kind} id={self.id} cookie={self.cookie} peer={self.peer} {what}>"


class Transport(abc.ABC):
    """A Homa message socket. Thread-safe. Use as a context manager or ``close()``."""

    #: Backend name: "udp", "kernel" or "memory".
    kind: ClassVar[str]
    #: Largest payload ``send``/``reply`` accept.
    max_message_length: int = MAX_MESSAGE_LENGTH
    #: Called with a peer's address when the backend learns the peer is gone
    #: (ICMP port/host unreachable in reply to something we sent it), from the
    #: thread that learnt it, without the transport's lock held: keep it short
    #: and thread-safe. Also reported by ``unreachable_peers()``. None: not called.
    on_unreachable: Callable[[Address], None] | None = None

    @property
    @abc.abstractmethod
    def local_addr(self) -> Address:
        """The address peers use to reach this socket (port resolved after binding 0)."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once ``close()`` has been called."""

    @abc.abstractmethod
    def send(self, dest: Address, payload: Payload, cookie: int = 0) -> int:
        """Start a client RPC carrying ``payload`` as its request; return its id.

        ``payload`` may be a list of parts, sent as their concatenation. The
        transport may keep references to the parts until the RPC ends, so they
        must not change meanwhile (``bytes`` never do; others may be copied).

        Raises:
            MessageTooLongError: ``payload`` exceeds ``max_message_length``.
            TransportClosedError: the transport is closed.
        """

    @abc.abstractmethod
    def reply(self, dest: Address, rpc_id: int, payload: Payload) -> None:
        """Send ``payload`` (bytes-like, or a list of parts as for ``send``) as the
        response to the request ``rpc_id`` from ``dest``."""

    @abc.abstractmethod
    def recv(self, timeout: float | None = None) -> Message | None:
        """Return the next message, or ``None`` if ``timeout`` seconds pass first."""

    @abc.abstractmethod
    def abort(self, rpc_id: int = 0, error: int = 0) -> None:
        """Abort one client RPC (or all, with ``rpc_id=0``); see the module docstring."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the socket, wake every blocked ``recv`` (idempotent)."""

    def linger(self, timeout: float) -> bool:
        """Before ``close()``: wait, at most ``timeout`` seconds, until closing loses
        nothing this socket sent. True when nothing was left in flight; False when
        the time ran out (or the transport was closed meanwhile). Never raises.

        Homa retransmits from the *sending* socket: a peer that missed a packet asks
        that socket again, and if it is closed by then the peer's RPC fails (the
        kernel module loses the first packet of every one-packet message on
        loopback). So a client waits for the responses (or failures) of its
        outstanding RPCs, such as the CANCELs it just sent, and a server until its
        replies got through (the kernel's RPC count, or a short fixed wait where it
        cannot tell). Call it from the closing thread after the last send/reply and
        before ``close()``; other threads may keep receiving meanwhile (messages
        they get are theirs). If none does, ``linger`` receives itself, and keeps
        what arrives for ``recv()``. The default, right for backends that deliver a
        message whole at once (memory), returns True at once.
        """
        return True

    @abc.abstractmethod
    def fileno(self) -> int:
        """A file descriptor that polls readable when messages may be waiting."""

    def next_deadline(self) -> float | None:
        """When ``recv(timeout=0)`` must next be called for protocol timers, if ever."""
        return None

    def stats_snapshot(self) -> dict[str, int]:
        """The backend's counters by name, a consistent copy (for ``Server.stats()``
        and operators); ``{}`` where a backend keeps none (the default)."""
        return {}

    def unreachable_peers(self) -> list[Address]:
        """Peers found unreachable since the last call (each once, oldest first).

        The transport has already failed its client RPCs to them (their messages
        carry the error) and forgotten their requests (a ``reply`` is then a
        no-op); this tells the layer above, which may hold state of its own for
        those peers (streams, handlers to cancel). A backend that cannot tell
        (memory, kernel) returns ``[]``, the default.
        """
        return []

    def set_layout(self, layout: Layout | None) -> bool:
        """Let ``layout`` choose where long incoming messages are written as they
        arrive (``engine/placement.py``): such a message then comes with the
        ``Placement`` as its last piece (``Message.payload_parts()``). False if this
        backend cannot (the kernel's messages land in its own buffer pool; the
        memory backend's arrive whole), which is also the default."""
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self.local_addr}"
        return f"<{type(self).__name__} {state}>"
