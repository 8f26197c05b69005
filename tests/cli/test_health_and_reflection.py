"""``homarpc health`` (grpc_health_probe's exit statuses) and the health and
reflection that ``homarpc serve`` turns on, run as a user would: ``homarpc serve``
in a subprocess on 127.0.0.1 (embedded UDP Homa), probed by ``homarpc health`` and
by grpcio's own client-side tools over homarpc channels."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import homarpc
from homarpc import health, reflection
from homarpc.codegen import compile_protos
from homarpc.health import health_pb2, health_pb2_grpc

PROTO = """\
syntax = "proto3";
package shop.v1;
service Till { rpc Ring(Sale) returns (Sale); }
message Sale { int32 cents = 1; }
"""

APP = """\
import shop_pb2_homarpc


class Till(shop_pb2_homarpc.TillServicer):
    def Ring(self, request, context):
        return request


class AsyncTill(shop_pb2_homarpc.TillServicer):
    async def Ring(self, request, context):
        return request
"""

PROBE = [sys.executable, "-c", "from homarpc.cli import main; main()"]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shop-app")
    (directory / "shop.proto").write_text(PROTO)
    (directory / "shop_app.py").write_text(APP)
    assert compile_protos([directory / "shop.proto"], [directory], directory) == 0
    return directory


def _serve(app_dir: Path, target: str, *flags: str) -> tuple[int, subprocess.Popen]:
    """``homarpc serve target`` on a free port; the port from its banner."""
    process = subprocess.Popen(
        [*PROBE, "serve", target, "--port", "0", "--transport", "udp", *flags],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        banner = lines.get(timeout=30)
    except queue.Empty:
        banner = ""
    match = re.search(r"serving Till on 127\.0\.0\.1:(\d+)", banner)
    if match is None:
        process.kill()
        pytest.fail(f"no serving banner: {banner!r} {process.communicate()[1]}")
    return int(match.group(1)), process


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[int]:
    port, process = _serve(app_dir, "shop_app:Till", "--grace", "1")
    yield port
    _stop(process)


def _health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROBE, "health", *args, "--transport", "udp"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_health_exits_0_for_a_serving_server_and_each_service(server):
    for service in ("", "shop.v1.Till"):
        result = _health(f"127.0.0.1:{server}", "--service", service)
        assert (result.returncode, result.stdout) == (0, "status: SERVING\n")


def test_health_exits_3_for_a_service_the_server_does_not_know(server):
    # grpc_health_probe: the RPC failed (NOT_FOUND), exit 3.
    result = _health(f"127.0.0.1:{server}", "--service", "shop.v1.Nope")
    assert result.returncode == 3
    assert result.stderr.startswith("Error: health rpc failed: NOT_FOUND")
    assert "'shop.v1.Nope'" in result.stderr and len(result.stderr.splitlines()) == 1


def test_health_exits_2_when_nothing_listens():
    result = _health("127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: cannot connect to 127.0.0.1:1")
    assert len(result.stderr.splitlines()) == 1


def test_health_exits_4_for_a_server_not_serving():
    server = homarpc.server(max_workers=2, transport="udp")
    servicer = health.add_health(server)
    servicer.set("shop.v1.Till", health.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = _health(f"127.0.0.1:{port}", "--service", "shop.v1.Till")
        assert result.returncode == 4, result.stderr
        assert result.stderr == (
            f"Error: service 'shop.v1.Till' at 127.0.0.1:{port} is NOT_SERVING, "
            "not SERVING\n"
        )
        assert _health(f"127.0.0.1:{port}").returncode == 0
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    "args",
    [
        ("127.0.0.1:1", "--bogus"),
        ("127.0.0.1:1", "--timeout", "soon"),
        ("127.0.0.1:1", "--timeout", "0"),
        ("localhost",),  # no port: a channel would take 443, a probe says so
    ],
)
def test_health_exits_1_on_a_usage_mistake(args):
    result = _health(*args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error:")


def _services(port: int) -> set[str]:
    with homarpc.insecure_channel(f"127.0.0.1:{port}", transport="udp") as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_serve_lists_and_describes_its_services_by_reflection(server):
    services = {
        "shop.v1.Till",
        health.SERVICE_NAME,
        reflection.V1ALPHA_SERVICE_NAME,
        reflection.V1_SERVICE_NAME,
    }
    assert _services(server) == services
    with homarpc.insecure_channel(f"127.0.0.1:{server}", transport="udp") as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        described = {pool.FindServiceByName(name).full_name for name in services}
        ring = pool.FindMethodByName("shop.v1.Till.Ring")
    assert described == services
    assert ring.input_type.full_name == "shop.v1.Sale"


def test_serve_without_health_and_reflection(app_dir):
    port, process = _serve(app_dir, "shop_app:Till", "--no-health", "--no-reflection")
    try:
        result = _health(f"127.0.0.1:{port}")
        assert result.returncode == 3
        assert "UNIMPLEMENTED" in result.stderr and "--no-health" in result.stderr
        with pytest.raises(homarpc.RpcError) as refused:
            _services(port)
        assert refused.value.code() is homarpc.StatusCode.UNIMPLEMENTED
    finally:
        _stop(process)


def test_serve_async_servicers_serve_health_and_reflection(app_dir):
    port, process = _serve(app_dir, "shop_app:AsyncTill", "--no-health")
    try:
        assert _health(f"127.0.0.1:{port}").returncode == 3
        assert _services(port) == {
            "shop.v1.Till",
            reflection.V1ALPHA_SERVICE_NAME,
            reflection.V1_SERVICE_NAME,
        }
    finally:
        _stop(process)
    port, process = _serve(app_dir, "shop_app:AsyncTill")
    try:
        result = _health(f"127.0.0.1:{port}", "--service", "shop.v1.Till")
        assert result.returncode == 0, result.stderr
    finally:
        _stop(process)


@pytest.mark.parametrize("target", ["shop_app:Till", "shop_app:AsyncTill"])
def test_serve_tells_watchers_not_serving_when_stopping(app_dir, target):
    port, process = _serve(app_dir, target, "--grace", "2")
    try:
        with homarpc.insecure_channel(f"127.0.0.1:{port}", transport="udp") as channel:
            stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[arg-type]
            request = health_pb2.HealthCheckRequest(service="shop.v1.Till")
            watch = stub.Watch(request, timeout=20)
            assert next(watch).status == health.SERVING
            process.send_signal(signal.SIGTERM)
            assert next(watch).status == health.NOT_SERVING
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
