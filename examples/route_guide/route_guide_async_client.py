"""The route guide client on asyncio: the same four calls through ``homarpc.aio``.

It prints what ``route_guide_client.py`` prints; requests for the streaming calls
come from async generators.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import homarpc.aio
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "route_guide.proto"], out=HERE)

import route_guide_pb2 as pb  # noqa: E402  (generated just above)
import route_guide_pb2_homarpc  # noqa: E402
from route_guide_client import WALK, notes, paris, point  # noqa: E402


async def _walk() -> AsyncIterator[pb.Point]:
    for latitude, longitude in WALK:
        yield point(latitude, longitude)


async def _notes() -> AsyncIterator[pb.RouteNote]:
    for note in notes():
        yield note


async def run(target: str, transport: str | None = None) -> None:
    async with homarpc.aio.insecure_channel(target, transport=transport) as channel:
        stub = route_guide_pb2_homarpc.RouteGuideAsyncStub(channel)
        for latitude, longitude in [WALK[0], (0, 0)]:
            feature = await stub.GetFeature(point(latitude, longitude), timeout=5)
            name = feature.name or "no feature"
            print(f"GetFeature({latitude}, {longitude}): {name}")

        names = sorted([f.name async for f in stub.ListFeatures(paris(), timeout=5)])
        print(f"ListFeatures(Paris): {len(names)} features: {', '.join(names)}")

        summary = await stub.RecordRoute(_walk(), timeout=5)
        print(
            f"RecordRoute: {summary.point_count} points, {summary.feature_count} "
            f"features, {summary.distance} m"
        )

        replies = [n.message async for n in stub.RouteChat(_notes(), timeout=5)]
        print(f"RouteChat: received {replies}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    asyncio.run(run(args.target, args.transport))


if __name__ == "__main__":
    main()
