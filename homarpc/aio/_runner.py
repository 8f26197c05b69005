"""Running one call's handler for the asyncio server.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_servicer``, ``_server_call``, ``_handlers``, ``status``), ``homarpc.aio`` siblings.

``async def`` and async-generator behaviors run here, on the loop, against an
``aio.ServicerContext``. Plain functions go to ``homarpc._servicer.run_call``, the
blocking server's runner, in a worker thread: one implementation of the blocking
path, shared. The endings are ``_servicer``'s too (the aio context is a
``_servicer.Finisher``), so statuses are worded as in the blocking server: a behavior
that raises -> UNKNOWN "Exception calling application: <exc>" (plus a log line)
unless it set a code first; ``abort`` -> its code and details; a unary behavior
returning None -> INTERNAL "Failed to serialize response!".
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from concurrent import futures
from typing import Any

from .. import _servicer
from .._handlers import MethodHandler
from .._server_call import ServerCallCore
from ..status import StatusCode
from ._context import ServicerContext
from ._errors import EOF, AbortError

__all__ = ["is_async_handler", "run_async", "run_blocking"]

Runner = Callable[
    [Callable[..., Any], ServicerContext, MethodHandler, int],
    Coroutine[Any, Any, None],
]


def is_async_handler(handler: MethodHandler) -> bool:
    """True when the behavior is an ``async def`` or an async generator function."""
    behavior = handler.behavior
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


async def run_blocking(
    core: ServerCallCore,
    handler: MethodHandler,
    max_send: int,
    pool: futures.Executor | None,
) -> None:
    """Run a plain-function behavior with the blocking server's runner, in ``pool``."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        pool, _servicer.run_call, core, lambda _: handler, max_send
    )


async def run_async(
    core: ServerCallCore, handler: MethodHandler, max_send: int
) -> None:
    """Run an async behavior to completion and send the call's final status."""
    if _servicer.expired_before_start(core):
        return
    encode = _servicer.encoder(handler, max_send)
    context = ServicerContext(core, _servicer.decoder(handler), encode)
    runner = _RUNNERS[(handler.request_streaming, handler.response_streaming)]
    try:
        await runner(handler.behavior, context, handler, max_send)
    except AbortError:
        context.finish()
    except _servicer.BadRequest:
        context.finish_with(StatusCode.INTERNAL, "Exception deserializing request!")
    except _servicer.TooLarge as exc:
        context.finish_with(StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except asyncio.CancelledError:
        if core.is_active:  # cancelled by stop(), not by the call ending
            core.terminate(StatusCode.UNAVAILABLE, "Server shutting down")
        raise
    except Exception as exc:
        _servicer.finish_after_exception(context, core, exc)


async def _one_request(context: ServicerContext) -> Any:
    request = await context.read()
    if request is EOF:
        raise _servicer.BadRequest("the client sent no request message")
    return request


async def _respond_stream(context: ServicerContext, responses: Any) -> None:
    """Send what the behavior produced: an async or plain iterator, or awaitable
    (a coroutine that wrote its responses with ``context.write``)."""
    if hasattr(responses, "__aiter__"):
        async for response in responses:
            await context.write(response)
    elif inspect.isawaitable(responses):
        await responses
    elif responses is not None:
        for response in responses:
            await context.write(response)
    context.finish()


async def _unary_unary(
    behavior: Callable[..., Any],
    context: ServicerContext,
    handler: MethodHandler,
    max_send: int,
) -> None:
    request = await _one_request(context)
    response = await behavior(request, context)
    _servicer.unary_response(context, handler, max_send, response)


async def _unary_stream(
    behavior: Callable[..., Any],
    context: ServicerContext,
    handler: MethodHandler,
    max_send: int,
) -> None:
    request = await _one_request(context)
    await _respond_stream(context, behavior(request, context))


async def _stream_unary(
    behavior: Callable[..., Any],
    context: ServicerContext,
    handler: MethodHandler,
    max_send: int,
) -> None:
    response = await behavior(context.requests(), context)
    _servicer.unary_response(context, handler, max_send, response)


async def _stream_stream(
    behavior: Callable[..., Any],
    context: ServicerContext,
    handler: MethodHandler,
    max_send: int,
) -> None:
    await _respond_stream(context, behavior(context.requests(), context))


_RUNNERS: dict[tuple[bool, bool], Runner] = {
    (False, False): _unary_unary,
    (False, True): _unary_stream,
    (True, False): _stream_unary,
    (True, True): _stream_stream,
}
