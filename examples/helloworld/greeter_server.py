"""The helloworld server: one unary method, SayHello.

Run it with ``python examples/helloworld/greeter_server.py`` (port 5051) and call
it with ``python examples/helloworld/greeter_client.py``, or from the CLI:
``homarpc call 127.0.0.1:5051 helloworld.Greeter/SayHello --proto
protos/helloworld.proto -d '{"name": "you"}'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "helloworld.proto"], out=HERE)

import helloworld_pb2  # noqa: E402  (generated just above)
import helloworld_pb2_homarpc  # noqa: E402


class Greeter(helloworld_pb2_homarpc.GreeterServicer):
    def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: homarpc.ServicerContext
    ) -> helloworld_pb2.HelloReply:
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")


def start(address: str, transport: str | None = None) -> tuple[homarpc.Server, int]:
    """Start a Greeter server on ``address`` ("host:port", port 0 picks one)."""
    server = homarpc.server(max_workers=4, transport=transport)
    helloworld_pb2_homarpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    server, port = start(args.address, args.transport)
    print(f"Greeter listening on port {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0).wait()


if __name__ == "__main__":
    main()
