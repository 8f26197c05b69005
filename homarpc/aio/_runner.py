"""Running one call's handler for the asyncio server.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_servicer``, ``_serving``, ``_handlers``, ``status``), ``homarpc.aio`` siblings.

``async def`` and async-generator behaviors run here, on the loop, against an
``aio.ServicerContext``. Plain functions go to ``homarpc._servicer.run_call``, the
blocking server's runner, in a worker thread: one implementation of the blocking
path, shared. Status mapping follows grpcio and ``_servicer`` word for word: a
behavior that raises -> UNKNOWN "Exception calling application: <exc>" (plus a log
line) unless it set a code first; ``abort`` -> its code and details; a unary
behavior returning None -> INTERNAL "Failed to serialize response!".
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from concurrent import futures
from typing import Any

from .. import _servicer
from .._handlers import RpcMethodHandler
from .._serving import ServerCallCore
from ..status import StatusCode
from ._context import ServicerContext
from ._errors import EOF, AbortError

__all__ = ["is_async_handler", "run_async", "run_blocking"]

log = logging.getLogger("homarpc.aio.server")

Encode = Callable[[Any], bytes]
Runner = Callable[[Callable[..., Any], ServicerContext, Encode], Coroutine[Any, Any, None]]


def is_async_handler(handler: RpcMethodHandler) -> bool:
    """True when the behavior is an ``async def`` or an async generator function."""
    behavior = handler.behavior
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


async def run_blocking(
    core: ServerCallCore,
    handler: RpcMethodHandler,
    max_send: int,
    pool: futures.Executor | None,
) -> None:
    """Run a plain-function behavior with the blocking server's runner, in ``pool``."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, _servicer.run_call, core, lambda _: handler, max_send)


async def run_async(core: ServerCallCore, handler: RpcMethodHandler, max_send: int) -> None:
    """Run an async behavior to completion and send the call's final status."""
    encode = _servicer._encoder(handler, max_send)
    context = ServicerContext(core, _servicer._decoder(handler), encode)
    runner = _RUNNERS[(handler.request_streaming, handler.response_streaming)]
    try:
        await runner(handler.behavior, context, encode)
    except AbortError:
        context.finish()
    except _servicer._BadRequest:
        context.finish_with(StatusCode.INTERNAL, "Exception deserializing request!")
    except _servicer._TooLarge as exc:
        context.finish_with(StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except asyncio.CancelledError:
        if core.is_active:  # cancelled by stop(), not by the call ending
            core.terminate(StatusCode.UNAVAILABLE, "Server shutting down")
        raise
    except Exception as exc:
        _finish_after_exception(context, core, exc)


def _finish_after_exception(
    context: ServicerContext, core: ServerCallCore, exc: Exception
) -> None:
    if not core.is_active:
        return  # cancelled or timed out meanwhile: the client has its status
    if context.code() not in (None, StatusCode.OK):
        context.finish()  # e.g. the generated "Method not implemented!" default
        return
    log.exception("Exception calling application: %s", exc)
    context.finish_with(StatusCode.UNKNOWN, f"Exception calling application: {exc}")


async def _one_request(context: ServicerContext) -> Any:
    request = await context.read()
    if request is EOF:
        raise _servicer._BadRequest("the client sent no request message")
    return request


def _respond_once(context: ServicerContext, encode: Encode, response: Any) -> None:
    if response is None:
        if context.code() in (None, StatusCode.OK):
            context.finish_with(StatusCode.INTERNAL, "Failed to serialize response!")
        else:
            context.finish()
        return
    try:
        payload = encode(response)
    except _servicer._TooLarge:
        raise
    except Exception:
        context.finish_with(StatusCode.INTERNAL, "Failed to serialize response!")
        return
    context.finish(payload)


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


async def _unary_unary(behavior: Callable[..., Any], context: ServicerContext,
                       encode: Encode) -> None:
    request = await _one_request(context)
    _respond_once(context, encode, await behavior(request, context))


async def _unary_stream(behavior: Callable[..., Any], context: ServicerContext,
                        encode: Encode) -> None:
    request = await _one_request(context)
    await _respond_stream(context, behavior(request, context))


async def _stream_unary(behavior: Callable[..., Any], context: ServicerContext,
                        encode: Encode) -> None:
    _respond_once(context, encode, await behavior(context.requests(), context))


async def _stream_stream(behavior: Callable[..., Any], context: ServicerContext,
                         encode: Encode) -> None:
    await _respond_stream(context, behavior(context.requests(), context))


_RUNNERS: dict[tuple[bool, bool], Runner] = {
    (False, False): _unary_unary,
    (False, True): _unary_stream,
    (True, False): _stream_unary,
    (True, True): _stream_stream,
}
