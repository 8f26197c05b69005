"""Configuration of the sans-IO Homa engine.

Layer: transport.engine. Imports: the stdlib only.

Defaults follow ``spec/homa-protocol.md`` §6.4 for UDP over loopback. A driver
chooses the datagram size per peer (``HomaEngine(datagram_size=...)``: ~64 KB to a
peer on this host, the path MTU to others, never above ``max_datagram``) and sets
``max_incoming`` from the socket's actual receive buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .budget import MESSAGE_OVERHEAD
from .events import Address
from .wire import DATA_HEADER_LENGTH

__all__ = ["HomaConfig"]

_POSITIVE = (
    "unsched_bytes",
    "max_incoming",
    "overcommit",
    "resend_ticks",
    "resend_interval",
    "timeout_ticks",
    "max_gaps",
    "max_rx_buffer",
)


@dataclass(frozen=True, slots=True)
class HomaConfig:
    """Tunables of one engine. All byte counts are message payload bytes.

    Attributes:
        max_datagram: largest UDP payload to emit to any peer (Homa header
            included). 65,000 suits loopback; the engine's ``datagram_size`` hook
            lowers it per peer (1,472 (IPv4) / 1,452 (IPv6) on a 1500-byte MTU path).
            Received datagrams may be of any size, whatever this says.
        unsched_bytes: bytes of each message sent before any GRANT. As in the
            kernel, a packet boundary falls exactly there: the first packet of a
            long message may be shorter than the rest.
        max_incoming: the receiver's budget of granted-but-unreceived bytes over all
            messages (the kernel's ``max_incoming``); should fit in ``SO_RCVBUF``.
        overcommit: how many incoming messages may hold grants at once.
        tick: seconds between timer runs (``get_timer`` asks for one per tick).
        resend_ticks: silent ticks before the first RESEND.
        resend_interval: silent ticks between later RESENDs.
        timeout_ticks: silent ticks after which an RPC fails with ETIMEDOUT (client)
            or is freed (server). Ticks are counted per timer run, not per elapsed
            ``tick``, so a long pause of this process costs one tick, not hundreds.
            The default (about 1 s) is ten times the kernel's 100: a Python peer on a
            busy machine can be starved for a few hundred milliseconds, and at 200
            ticks benchmarks saw a spurious ETIMEDOUT about once in 80 runs. A dead
            peer whose port closed is still noticed at once (ICMP port unreachable).
        request_ack_ticks: ticks after a server has sent its whole response before it
            starts asking for an ACK (NEED_ACK, then once per tick).
        max_message_length: largest message accepted or sent (kernel: 1,000,000,
            the default). Both ends must allow what either sends: a receiver drops
            the packets of a longer message (``too_long``).
        tombstone_ticks: how long a finished server RPC's id is remembered so that a
            delayed duplicate request is not executed twice (0 = 2 x timeout_ticks).
        max_rx_buffer: total bytes of reassembly buffers for partly received
            messages; the first packet of a message that would exceed it is dropped
            (its sender tries again later), so a flood of bogus first packets
            cannot exhaust memory. Messages are charged what they hold, not what
            they claim (``budget.py``).
        max_rx_per_peer: the most of ``max_rx_buffer`` one peer's messages may
            hold (0: a quarter of it, but at least one message of
            ``max_message_length``, if the budget holds one).
        max_gaps: the most holes a message being received may have; packets that
            would make more are dropped (bounds work per packet against bad peers).
        wire_tag: 24-bit tag in the common header's three unused bytes; datagrams
            with another tag are dropped. 0 matches kernel Homa (raw-IP mode).
    """

    max_datagram: int = 65_000
    unsched_bytes: int = 50_000
    max_incoming: int = 200_000
    overcommit: int = 4
    tick: float = 0.001
    resend_ticks: int = 5
    resend_interval: int = 5
    timeout_ticks: int = 1000
    request_ack_ticks: int = 2
    max_message_length: int = 1_000_000
    tombstone_ticks: int = 0
    max_rx_buffer: int = 64_000_000
    max_rx_per_peer: int = 0
    max_gaps: int = 256
    wire_tag: int = 0x48_52_55  # "HRU": homarpc, UDP mode

    def __post_init__(self) -> None:
        if self.max_datagram <= DATA_HEADER_LENGTH:
            raise ValueError(f"max_datagram must exceed {DATA_HEADER_LENGTH} bytes")
        if self.max_datagram > 65_507:
            raise ValueError("max_datagram cannot exceed 65,507 bytes (IPv4 UDP limit)")
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.max_message_length <= 0xFFFFFFFE:
            raise ValueError("max_message_length must fit in 32 bits")
        if self.tick <= 0:
            raise ValueError("tick must be positive")
        if self.max_rx_per_peer < 0:
            raise ValueError("max_rx_per_peer must not be negative")
        if not 0 <= self.wire_tag <= 0xFFFFFF:
            raise ValueError("wire_tag is a 24-bit value")

    @property
    def data_per_packet(self) -> int:
        """Message bytes carried by one full DATA packet of ``max_datagram`` bytes."""
        return self.max_datagram - DATA_HEADER_LENGTH

    def data_per_packet_for(self, datagram: int) -> int:
        """Message bytes in one full DATA packet to a path carrying ``datagram``
        bytes of UDP payload (never more than ``data_per_packet``, at least 1)."""
        return max(1, min(datagram - DATA_HEADER_LENGTH, self.data_per_packet))

    def packet_data_per_peer(
        self, datagram_size: Callable[[Address], int] | None
    ) -> Callable[[Address], int]:
        """Message bytes per DATA packet to each peer, given the driver's choice of
        datagram size per peer (it knows the path: ~64 KB on loopback, the MTU
        across a network). ``None`` uses ``max_datagram`` for every peer."""
        if datagram_size is None:
            seg = self.data_per_packet
            return lambda peer: seg
        size = datagram_size
        return lambda peer: self.data_per_packet_for(size(peer))

    @property
    def rx_share(self) -> int:
        """Bytes of the reassembly budget one peer may hold (``max_rx_per_peer``)."""
        if self.max_rx_per_peer:
            return self.max_rx_per_peer
        whole = self.max_message_length + MESSAGE_OVERHEAD
        return max(self.max_rx_buffer // 4, min(whole, self.max_rx_buffer))

    @property
    def tombstone_lifetime(self) -> int:
        """Ticks a finished server RPC is remembered."""
        return self.tombstone_ticks or 2 * self.timeout_ticks
