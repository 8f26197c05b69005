"""``homarpc.health`` and ``homarpc.reflection`` on real servers, told by grpcio's
own client-side tools (``grpc_health.v1`` stubs, ``ProtoReflectionDescriptorDatabase``)
over homarpc channels; each scenario also runs on a grpcio server, whose answers are
the reference."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import homarpc
import homarpc.aio
from homarpc import health, reflection
from homarpc.health import health_pb2, health_pb2_grpc

SERVICE = "some.Service"


@pytest.fixture(params=["grpcio", "homarpc"])
def served(request) -> Iterator[tuple[Any, Any, Any]]:
    """(server, health servicer, channel) on grpcio's or homarpc's blocking server,
    with health and reflection added by homarpc's one-line helpers."""
    if request.param == "grpcio":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        make_channel: Any = grpc.insecure_channel
    else:
        server = homarpc.server(max_workers=4, transport="udp")
        make_channel = homarpc.insecure_channel
    servicer = health.add_health(server)
    reflection.enable_reflection([SERVICE, health.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = make_channel(f"127.0.0.1:{port}")
    yield server, servicer, channel
    channel.close()
    server.stop(None)


def _check(stub: Any, service: str) -> str:
    """The status name a Check answers, or the error code's name."""
    try:
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.RpcError as error:  # grpcio's
        return f"error {error.code().name}"
    except homarpc.RpcError as error:
        return f"error {error.code().name}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def test_check_answers_as_grpcio_does(served):
    _, servicer, channel = served
    stub = health_pb2_grpc.HealthStub(channel)
    seen = [_check(stub, health.OVERALL), _check(stub, SERVICE)]
    servicer.set(SERVICE, health.SERVING)
    seen.append(_check(stub, SERVICE))
    servicer.set(SERVICE, health.NOT_SERVING)
    seen += [_check(stub, SERVICE), _check(stub, "unknown.Service")]
    servicer.enter_graceful_shutdown()
    servicer.set(health.OVERALL, health.SERVING)  # ignored once shutting down
    seen.append(_check(stub, health.OVERALL))
    assert seen == [
        "SERVING",
        "error NOT_FOUND",
        "SERVING",
        "NOT_SERVING",
        "error NOT_FOUND",
        "NOT_SERVING",
    ]


def test_watch_streams_each_change(served):
    _, servicer, channel = served
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
    first = next(watch).status
    servicer.set(SERVICE, health.SERVING)
    second = next(watch).status
    servicer.enter_graceful_shutdown()
    third = next(watch).status
    watch.cancel()
    assert [first, second, third] == [
        health.SERVICE_UNKNOWN,
        health.SERVING,
        health.NOT_SERVING,
    ]


def test_reflection_lists_and_describes_the_services(served):
    _, _, channel = served
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == {
        SERVICE,
        health.SERVICE_NAME,
        reflection.V1ALPHA_SERVICE_NAME,
        reflection.V1_SERVICE_NAME,
    }
    pool = DescriptorPool(database)
    check = pool.FindServiceByName(health.SERVICE_NAME).methods_by_name["Check"]
    assert check.input_type.full_name == "grpc.health.v1.HealthCheckRequest"
    # Every service listed can be described (grpcurl's describe asks for all), but
    # SERVICE: a name only, with no .proto behind it.
    for name in set(database.get_services()) - {SERVICE}:
        assert pool.FindServiceByName(name).full_name == name
    v1 = pool.FindServiceByName(reflection.V1_SERVICE_NAME).methods_by_name
    info = v1["ServerReflectionInfo"]
    assert info.output_type.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    assert info.output_type.file.name == "grpc/reflection/v1/reflection.proto"


def test_reflection_v1_answers_with_the_same_messages(served):
    _, _, channel = served
    info = channel.stream_stream(
        f"/{reflection.V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(info(iter([ask]), timeout=5))
    names = {s.name for s in answer.list_services_response.service}
    assert health.SERVICE_NAME in names and reflection.V1_SERVICE_NAME in names


@pytest.mark.asyncio
async def test_the_helpers_serve_on_an_asyncio_server():
    server = homarpc.aio.server(transport="udp")
    servicer = health.add_health(server)
    assert isinstance(servicer, health.AsyncHealthServicer)
    reflection.enable_reflection([SERVICE], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set(SERVICE, health.NOT_SERVING)
        async with homarpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            answer = await stub.Check(request, timeout=5)
            assert answer.status == health.NOT_SERVING
            with pytest.raises(homarpc.RpcError) as unknown:
                await stub.Check(health_pb2.HealthCheckRequest(service="x"), timeout=5)
            assert unknown.value.code() is homarpc.StatusCode.NOT_FOUND
            info = channel.stream_stream(
                f"/{reflection.V1ALPHA_SERVICE_NAME}/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            call = info(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            answers = [answer async for answer in call]
        names = {s.name for s in answers[0].list_services_response.service}
        assert SERVICE in names
    finally:
        await server.stop(None)
