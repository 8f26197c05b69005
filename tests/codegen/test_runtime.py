"""Generated stubs at run time: blocking and asyncio clients and servicers, every
kind of call, and the UNIMPLEMENTED default of methods a servicer leaves out."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import homarpc
import homarpc.aio
import homarpc.testing
from homarpc.codegen import compile_protos

PROTOS = Path(__file__).resolve().parents[2] / "protos"


@pytest.fixture(scope="module")
def rg(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModuleType, ModuleType]]:
    """``route_guide_pb2`` and ``route_guide_pb2_homarpc``, freshly generated."""
    out = tmp_path_factory.mktemp("generated")
    assert compile_protos([PROTOS / "route_guide.proto"], [PROTOS], out) == 0
    sys.path.insert(0, str(out))
    try:
        yield (
            importlib.import_module("route_guide_pb2"),
            importlib.import_module("route_guide_pb2_homarpc"),
        )
    finally:
        sys.path.remove(str(out))
        for name in ("route_guide_pb2", "route_guide_pb2_homarpc"):
            sys.modules.pop(name, None)


def _servicer(pb, stubs, *, asynchronous: bool):
    """A RouteGuide with ListFeatures and RouteChat, blocking or ``async``."""

    class Blocking(stubs.RouteGuideServicer):
        def ListFeatures(self, request, context):
            for i in range(request.hi.latitude):
                yield pb.Feature(name=f"f{i}")

        def RouteChat(self, request_iterator, context):
            for note in request_iterator:
                yield pb.RouteNote(message=note.message.upper())

    class Async(stubs.RouteGuideServicer):
        async def ListFeatures(self, request, context) -> AsyncIterator[object]:
            for i in range(request.hi.latitude):
                yield pb.Feature(name=f"f{i}")

        async def RouteChat(self, request_iterator, context) -> AsyncIterator[object]:
            async for note in request_iterator:
                yield pb.RouteNote(message=note.message.upper())

    return Async() if asynchronous else Blocking()


def _rectangle(pb, count: int):
    return pb.Rectangle(hi=pb.Point(latitude=count))


def test_blocking_stub_and_servicer(rg):
    pb, stubs = rg
    servicer = _servicer(pb, stubs, asynchronous=False)
    with homarpc.testing.channel_for(
        stubs.add_RouteGuideServicer_to_server, servicer
    ) as ch:
        stub = stubs.RouteGuideStub(ch)
        names = [f.name for f in stub.ListFeatures(_rectangle(pb, 3), timeout=5)]
        assert names == ["f0", "f1", "f2"]
        notes = iter([pb.RouteNote(message="a"), pb.RouteNote(message="b")])
        assert [n.message for n in stub.RouteChat(notes, timeout=5)] == ["A", "B"]
        with pytest.raises(homarpc.RpcError) as raised:
            stub.GetFeature(pb.Point(), timeout=5)
        assert raised.value.code() is homarpc.StatusCode.UNIMPLEMENTED
        assert raised.value.details() == "Method not implemented!"
        with pytest.raises(homarpc.RpcError) as raised:
            stub.RecordRoute(iter([pb.Point()]), timeout=5)
        assert raised.value.code() is homarpc.StatusCode.UNIMPLEMENTED


@pytest.mark.asyncio
async def test_async_stub_and_async_servicer(rg):
    pb, stubs = rg
    server = homarpc.aio.server(transport="udp")
    stubs.add_RouteGuideServicer_to_server(
        _servicer(pb, stubs, asynchronous=True), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        target = f"127.0.0.1:{port}"
        async with homarpc.aio.insecure_channel(target, transport="udp") as channel:
            stub = stubs.RouteGuideAsyncStub(channel)
            call = stub.ListFeatures(_rectangle(pb, 2), timeout=5)
            assert [f.name async for f in call] == ["f0", "f1"]
            chat = stub.RouteChat(iter([pb.RouteNote(message="x")]), timeout=5)
            assert [n.message async for n in chat] == ["X"]
            with pytest.raises(homarpc.RpcError) as raised:
                await stub.GetFeature(pb.Point(), timeout=5)
            assert raised.value.code() is homarpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


def test_a_service_without_methods_imports_and_serves(tmp_path, monkeypatch):
    # Each method of a service with none answers UNIMPLEMENTED: there are none, but
    # the stub, the servicer and add_..._to_server must still exist and work.
    root = Path(__file__).parent / "cases" / "empty_service" / "protos"
    assert compile_protos([root / "cloud_regions.proto"], [root], tmp_path) == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        stubs = importlib.import_module("cloud_regions_pb2_homarpc")
        servicer = stubs.CloudRegionsServicer()
        with homarpc.testing.channel_for(
            stubs.add_CloudRegionsServicer_to_server, servicer
        ) as channel:
            assert vars(stubs.CloudRegionsStub(channel)) == {}
    finally:
        sys.modules.pop("cloud_regions_pb2_homarpc", None)
