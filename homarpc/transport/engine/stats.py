"""Counters of one engine, for tests, benchmarks and ``homarpc doctor``.

Layer: transport.engine. Imports: the stdlib only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["EngineStats"]


@dataclass(slots=True)
class EngineStats:
    """What an engine did. Plain ints so reading them costs nothing.

    Attributes:
        dropped: datagrams dropped, by reason (``"truncated"``, ``"bad_tag"``,
            ``"unknown_rpc"``, ``"duplicate"``, ``"stale"`` ...).
    """

    datagrams_received: int = 0
    datagrams_sent: int = 0
    data_packets_sent: int = 0
    retransmitted_packets: int = 0
    grants_sent: int = 0
    resends_sent: int = 0
    resends_received: int = 0
    busy_sent: int = 0
    rpc_unknown_sent: int = 0
    need_acks_sent: int = 0
    acks_sent: int = 0
    restarts: int = 0
    #: Client RPCs failed with SERVER_LOST_REQUEST (not restarted: at most once).
    lost_by_server: int = 0
    #: Client RPCs failed with SERVER_LOST_REQUEST because their peer became
    #: unreachable after the request may have reached it.
    lost_unreachable: int = 0
    #: Client RPCs failed with REQUEST_REFUSED (RPC_UNKNOWN for ``timeout_ticks``).
    refused: int = 0
    timeouts: int = 0
    requests_delivered: int = 0
    responses_delivered: int = 0
    #: Incoming messages written into place as they arrived (``placement.py``).
    messages_placed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def dropped_total(self) -> int:
        """All datagrams dropped, whatever the reason."""
        return sum(self.dropped.values())

    def counters(self) -> dict[str, int]:
        """Every counter by name, drops as ``dropped_total`` and ``dropped_<reason>``."""
        out = {f.name: getattr(self, f.name) for f in _COUNTERS}
        out["dropped_total"] = self.dropped_total
        for reason, count in self.dropped.items():
            out[f"dropped_{reason}"] = count
        return out


_COUNTERS = [f for f in fields(EngineStats) if f.name != "dropped"]
