"""One recvmsg on a Homa socket, and what its outcome means.

Layer: transport.kernel. Imports: stdlib, ``_ffi``, ``_addr``, ``abi``, ``bufpool``,
``transport._base``, ``transport.errors``.

Every call hands back up to 16 released bpages in the same control block that brings
the next message (spec §1.8). Afterwards the ownership rule decides who holds what:
*the bpages listed in the block after the call are the application's*. On success
those are the new message's chunks; on failure they are the hand-backs the kernel did
not take (it rejected the block before freeing anything), which go back in line. On
``EINTR``/``EAGAIN`` the kernel has already freed what we passed and lists nothing,
so nothing is handed back twice.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import cast

from ..errors import TransportClosedError
from . import _ffi
from ._addr import SOCKADDR_IN6_SIZE, decode_sockaddr
from ._ffi import CData, LibC
from .abi import HOMA_MAX_BPAGES, Abi
from .bufpool import BufferPool

__all__ = ["Failed", "Received", "Receiver"]

_NAME_BYTES = 128  # room for any sockaddr; G4a writes msg_name without a NULL check
_AGAIN = frozenset({errno.EAGAIN, errno.EINTR})
_CLOSED = frozenset({errno.ESHUTDOWN, errno.EBADF})


@dataclass(frozen=True, slots=True)
class Received:
    """A complete message now in the pool at ``offsets`` (the application owns them)."""

    rpc_id: int
    cookie: int
    peer: tuple[str, int] | None
    offsets: list[int]
    length: int


@dataclass(frozen=True, slots=True)
class Failed:
    """recvmsg failed: ``rpc_id`` nonzero means that RPC failed with ``errno``."""

    rpc_id: int
    cookie: int
    errno: int


class Receiver:
    """Builds the receive control block for one ABI and applies the ownership rule."""

    def __init__(self, abi: Abi, lib: LibC, pool: BufferPool) -> None:
        self._abi = abi
        self._ffi = abi.ffi
        self._lib = lib
        self._pool = pool
        self._name_type = abi.ffi.typeof(f"char[{_NAME_BYTES}]")
        self._has_peer_copy = "peer_addr" in dict(abi.recvmsg_args.item.fields)

    def receive(self, fd: int, nonblocking: bool) -> Received | Failed | None:
        """One recvmsg. ``None``: nothing yet (EAGAIN, EINTR): call again.

        Raises:
            TransportClosedError: the socket was shut down.
        """
        args = self._control_block(nonblocking)
        name = self._ffi.new(self._name_type)
        msg = _ffi.new_msghdr(name, SOCKADDR_IN6_SIZE, args, self._abi.recv_controllen)
        flags = socket.MSG_DONTWAIT if nonblocking else 0
        length = self._lib.recvmsg(fd, msg, flags)
        err = self._ffi.errno if length < 0 else 0
        count = min(args.num_bpages, HOMA_MAX_BPAGES)
        listed = cast(list[int], self._ffi.unpack(args.bpage_offsets, count))
        if length < 0:
            self._pool.requeue(listed)
            return self._failed(args, err)
        self._pool.adopt(listed)
        peer = self._peer(name, msg.msg_namelen, args)
        return Received(args.id, args.completion_cookie, peer, listed, length)

    def _control_block(self, nonblocking: bool) -> CData:
        args: CData = self._ffi.new(self._abi.recvmsg_args)
        handbacks = self._pool.take_handbacks(HOMA_MAX_BPAGES)
        if handbacks:
            args.num_bpages = len(handbacks)
            args.bpage_offsets[0 : len(handbacks)] = handbacks
        if self._abi.recv_flags:
            extra = self._abi.nonblocking_flag if nonblocking else 0
            args.flags = self._abi.recv_flags | extra
        return args

    def _failed(self, args: CData, err: int) -> Failed | None:
        if err in _CLOSED:
            raise TransportClosedError("transport is closed")
        if args.id == 0 and err in _AGAIN:
            return None
        return Failed(args.id, args.completion_cookie, err)

    def _peer(self, name: CData, namelen: int, args: CData) -> tuple[str, int] | None:
        raw = self._ffi.buffer(name, min(namelen, _NAME_BYTES))[:]
        if namelen == 0 and self._has_peer_copy:  # G4a also copies it here
            raw = bytes(self._ffi.buffer(self._ffi.addressof(args, "peer_addr")))
        try:
            return decode_sockaddr(raw)
        except ValueError:
            return None
