"""Mistakes mypy must report against the generated stubs: each marked line."""

from __future__ import annotations

import helloworld_pb2
import helloworld_pb2_homarpc
import route_guide_pb2

import homarpc


class WrongRequest(helloworld_pb2_homarpc.GreeterServicer):
    def SayHello(
        self,
        request: route_guide_pb2.Point,  # error: override
        context: homarpc.ServicerContext,
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply()


class WrongResponse(helloworld_pb2_homarpc.GreeterServicer):
    def SayHello(  # error: override
        self, request: helloworld_pb2.HelloRequest, context: homarpc.ServicerContext
    ) -> route_guide_pb2.Feature:
        return route_guide_pb2.Feature()


def call(channel: homarpc.Channel) -> int:
    stub = helloworld_pb2_homarpc.GreeterStub(channel)
    stub.SayHello(route_guide_pb2.Point())  # error: arg-type
    reply = stub.SayHello(helloworld_pb2.HelloRequest())
    return reply.message  # error: return-value


def not_a_server() -> None:
    add = helloworld_pb2_homarpc.add_GreeterServicer_to_server
    add(object(), "server")  # error: arg-type
