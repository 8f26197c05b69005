"""Waking an asyncio loop from the RPC core's threads.

Layer: rpc (homarpc.aio). Imports: stdlib only.

The call cores report progress through ``notify()`` callbacks, called on the
channel's or server's receive thread. ``homarpc.aio`` answers each with one
``call_soon_threadsafe``; this is the single place that crosses threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["call_in_loop"]


def call_in_loop(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any
) -> bool:
    """Schedule ``fn(*args)`` on ``loop`` from any thread; False if the loop is gone."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody is left to tell
        return False
    return True
