"""The route guide client: one call of each kind against a RouteGuide server."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "route_guide.proto"], out=HERE)

import route_guide_pb2 as pb  # noqa: E402  (generated just above)
import route_guide_pb2_homarpc  # noqa: E402

# A walk through central Paris, from the Eiffel Tower to Notre-Dame, in E7.
WALK = [
    (488583700, 22944810),
    (488737800, 22950050),
    (488606110, 23376440),
    (488529600, 23499020),
]


def point(latitude: int, longitude: int) -> pb.Point:
    return pb.Point(latitude=latitude, longitude=longitude)


def get_feature(stub: route_guide_pb2_homarpc.RouteGuideStub) -> None:
    for latitude, longitude in [WALK[0], (0, 0)]:
        feature = stub.GetFeature(point(latitude, longitude), timeout=5)
        name = feature.name or "no feature"
        print(f"GetFeature({latitude}, {longitude}): {name}")


def paris() -> pb.Rectangle:
    """A rectangle around central Paris."""
    return pb.Rectangle(lo=point(488000000, 22000000), hi=point(490000000, 24000000))


def list_features(stub: route_guide_pb2_homarpc.RouteGuideStub) -> None:
    names = sorted(feature.name for feature in stub.ListFeatures(paris(), timeout=5))
    print(f"ListFeatures(Paris): {len(names)} features: {', '.join(names)}")


def record_route(stub: route_guide_pb2_homarpc.RouteGuideStub) -> None:
    summary = stub.RecordRoute(iter([point(*p) for p in WALK]), timeout=5)
    print(
        f"RecordRoute: {summary.point_count} points, {summary.feature_count} "
        f"features, {summary.distance} m"
    )


def notes() -> Iterator[pb.RouteNote]:
    """Four notes at two places, two each: a second visit hears the first one."""
    for index, message in enumerate(["first", "second", "third", "fourth"]):
        where = point(*WALK[index % 2])  # two places, visited twice each
        yield pb.RouteNote(location=where, message=message)


def route_chat(stub: route_guide_pb2_homarpc.RouteGuideStub) -> None:
    replies = [note.message for note in stub.RouteChat(notes(), timeout=5)]
    print(f"RouteChat: received {replies}")


def run(target: str, transport: str | None = None) -> None:
    with homarpc.insecure_channel(target, transport=transport) as channel:
        stub = route_guide_pb2_homarpc.RouteGuideStub(channel)
        get_feature(stub)
        list_features(stub)
        record_route(stub)
        route_chat(stub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    run(args.target, args.transport)


if __name__ == "__main__":
    main()
