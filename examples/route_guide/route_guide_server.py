"""The route guide server: gRPC's classic example, with all four kinds of call.

* GetFeature (unary): the feature at a point.
* ListFeatures (server streaming): the features inside a rectangle.
* RecordRoute (client streaming): a summary of the points a client sends.
* RouteChat (bidirectional): every note sent earlier at the same point.

Run it with ``python examples/route_guide/route_guide_server.py`` and try it with
``python examples/route_guide/route_guide_client.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "route_guide.proto"], out=HERE)

import route_guide_pb2 as pb  # noqa: E402  (generated just above)
import route_guide_pb2_homarpc  # noqa: E402

EARTH_RADIUS_M = 6_371_000
E7 = 1e7  # coordinates are degrees multiplied by 10**7


def load_features(path: Path = HERE / "route_guide_db.json") -> list[pb.Feature]:
    """The features in the JSON database (name, latitude, longitude in E7)."""
    return [
        pb.Feature(
            name=item["name"],
            location=pb.Point(latitude=item["latitude"], longitude=item["longitude"]),
        )
        for item in json.loads(path.read_text())
    ]


def distance_m(start: pb.Point, end: pb.Point) -> float:
    """Great-circle distance between two points, in metres (haversine formula)."""
    lat1, lat2 = math.radians(start.latitude / E7), math.radians(end.latitude / E7)
    d_lat = lat2 - lat1
    d_lon = math.radians((end.longitude - start.longitude) / E7)
    a = (
        math.sin(d_lat / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin(d_lon / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _key(point: pb.Point) -> tuple[int, int]:
    return point.latitude, point.longitude


def _inside(point: pb.Point, rectangle: pb.Rectangle) -> bool:
    lo, hi = rectangle.lo, rectangle.hi
    south, north = sorted((lo.latitude, hi.latitude))
    west, east = sorted((lo.longitude, hi.longitude))
    return south <= point.latitude <= north and west <= point.longitude <= east


class RouteGuide(route_guide_pb2_homarpc.RouteGuideServicer):
    def __init__(self, features: list[pb.Feature]) -> None:
        self._features = {_key(f.location): f for f in features}
        self._notes: dict[tuple[int, int], list[pb.RouteNote]] = {}
        self._notes_lock = threading.Lock()

    def GetFeature(
        self, request: pb.Point, context: homarpc.ServicerContext
    ) -> pb.Feature:
        found = self._features.get(_key(request))
        return found if found is not None else pb.Feature(name="", location=request)

    def ListFeatures(
        self, request: pb.Rectangle, context: homarpc.ServicerContext
    ) -> Iterator[pb.Feature]:
        for feature in self._features.values():
            if feature.name and _inside(feature.location, request):
                yield feature

    def RecordRoute(
        self, request_iterator: Iterator[pb.Point], context: homarpc.ServicerContext
    ) -> pb.RouteSummary:
        began = time.monotonic()
        points = features = 0
        metres = 0.0
        previous: pb.Point | None = None
        for point in request_iterator:
            points += 1
            features += bool(self.GetFeature(point, context).name)
            if previous is not None:
                metres += distance_m(previous, point)
            previous = point
        return pb.RouteSummary(
            point_count=points,
            feature_count=features,
            distance=round(metres),
            elapsed_time=round(time.monotonic() - began),
        )

    def RouteChat(
        self, request_iterator: Iterator[pb.RouteNote], context: homarpc.ServicerContext
    ) -> Iterator[pb.RouteNote]:
        for note in request_iterator:
            with self._notes_lock:
                earlier = list(self._notes.setdefault(_key(note.location), []))
                self._notes[_key(note.location)].append(note)
            yield from earlier


def start(address: str, transport: str | None = None) -> tuple[homarpc.Server, int]:
    """Start a RouteGuide server on ``address`` ("host:port", port 0 picks one)."""
    server = homarpc.server(max_workers=8, transport=transport)
    servicer = RouteGuide(load_features())
    route_guide_pb2_homarpc.add_RouteGuideServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    server, port = start(args.address, args.transport)
    print(f"RouteGuide listening on port {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0).wait()


if __name__ == "__main__":
    main()
