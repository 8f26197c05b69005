"""User code that must type-check against generated stubs (blocking and asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import helloworld_pb2
import helloworld_pb2_homarpc
import route_guide_pb2
import route_guide_pb2_homarpc

import homarpc
import homarpc.aio


class Greeter(helloworld_pb2_homarpc.GreeterServicer):
    def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: homarpc.ServicerContext
    ) -> helloworld_pb2.HelloReply:
        if not request.name:
            context.abort(homarpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        return helloworld_pb2.HelloReply(message=request.name)


class AsyncGreeter(helloworld_pb2_homarpc.GreeterServicer):
    async def SayHello(
        self,
        request: helloworld_pb2.HelloRequest,
        context: homarpc.aio.ServicerContext,
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply(message=request.name)


class Guide(route_guide_pb2_homarpc.RouteGuideServicer):
    def ListFeatures(
        self, request: route_guide_pb2.Rectangle, context: homarpc.ServicerContext
    ) -> Iterator[route_guide_pb2.Feature]:
        yield route_guide_pb2.Feature(name="x", location=request.lo)

    def RecordRoute(
        self,
        request_iterator: Iterator[route_guide_pb2.Point],
        context: homarpc.ServicerContext,
    ) -> route_guide_pb2.RouteSummary:
        return route_guide_pb2.RouteSummary(
            point_count=sum(1 for _ in request_iterator)
        )


class AsyncGuide(route_guide_pb2_homarpc.RouteGuideServicer):
    async def RouteChat(
        self,
        request_iterator: AsyncIterator[route_guide_pb2.RouteNote],
        context: homarpc.aio.ServicerContext,
    ) -> AsyncIterator[route_guide_pb2.RouteNote]:
        async for note in request_iterator:
            yield note


def serve() -> homarpc.Server:
    server = homarpc.server(max_workers=2)
    helloworld_pb2_homarpc.add_GreeterServicer_to_server(Greeter(), server)
    route_guide_pb2_homarpc.add_RouteGuideServicer_to_server(Guide(), server)
    return server


def serve_async() -> homarpc.aio.Server:
    server = homarpc.aio.server()
    helloworld_pb2_homarpc.add_GreeterServicer_to_server(AsyncGreeter(), server)
    route_guide_pb2_homarpc.add_RouteGuideServicer_to_server(AsyncGuide(), server)
    return server


def call(channel: homarpc.Channel) -> str:
    stub = helloworld_pb2_homarpc.GreeterStub(channel)
    reply = stub.SayHello(helloworld_pb2.HelloRequest(name="you"), timeout=1.0)
    guide = route_guide_pb2_homarpc.RouteGuideStub(channel)
    names = [f.name for f in guide.ListFeatures(route_guide_pb2.Rectangle())]
    return reply.message + ",".join(names)


async def call_async(channel: homarpc.aio.Channel) -> str:
    stub = helloworld_pb2_homarpc.GreeterAsyncStub(channel)
    reply = await stub.SayHello(helloworld_pb2.HelloRequest(name="you"))
    return reply.message
