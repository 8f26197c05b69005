"""The helloworld client: says hello to a Greeter server and prints the reply."""

from __future__ import annotations

import argparse
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "helloworld.proto"], out=HERE)

import helloworld_pb2  # noqa: E402  (generated just above)
import helloworld_pb2_homarpc  # noqa: E402


def greet(target: str, name: str, transport: str | None = None) -> str:
    """Call SayHello on the server at ``target`` and return its message."""
    with homarpc.insecure_channel(target, transport=transport) as channel:
        stub = helloworld_pb2_homarpc.GreeterStub(channel)
        reply = stub.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=5)
    return reply.message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:5051")
    parser.add_argument("--name", default="world")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    print(f"Greeter client received: {greet(args.target, args.name, args.transport)}")


if __name__ == "__main__":
    main()
