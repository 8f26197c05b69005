"""A key-value store server: short reads and writes, plus a stream of changes.

* Get / Put / Delete: unary; Put can compare-and-set on a version.
* List: the entries under a prefix (server streaming).
* Watch: every later change under a prefix, for as long as the client listens
  (server streaming that stays open).

Run it with ``python examples/kvstore/kvstore_server.py`` and try it with
``python examples/kvstore/kvstore_client.py``.
"""

from __future__ import annotations

import argparse
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "kvstore.proto"], out=HERE)

import kvstore_pb2 as pb  # noqa: E402  (generated just above)
import kvstore_pb2_homarpc  # noqa: E402
from google.protobuf.empty_pb2 import Empty  # noqa: E402

#: How often an idle Watch looks whether its client is still there, in seconds.
WATCH_POLL_S = 0.2


class KeyValueStore(kvstore_pb2_homarpc.KeyValueStoreServicer):
    """Entries in a dict; one lock orders writes and the events watchers see."""

    def __init__(self) -> None:
        self._entries: dict[str, pb.Entry] = {}
        self._watchers: list[tuple[str, queue.SimpleQueue[pb.Event]]] = []
        self._lock = threading.Lock()

    def Get(self, request: pb.GetRequest, context: homarpc.ServicerContext) -> pb.Entry:
        with self._lock:
            entry = self._entries.get(request.key)
        if entry is None:
            context.abort(homarpc.StatusCode.NOT_FOUND, f"no key {request.key!r}")
        return entry

    def Put(self, request: pb.PutRequest, context: homarpc.ServicerContext) -> pb.Entry:
        with self._lock:
            current = self._entries.get(request.key)
            version = current.version if current is not None else 0
            if (
                request.HasField("expected_version")
                and request.expected_version != version
            ):
                context.abort(
                    homarpc.StatusCode.FAILED_PRECONDITION,
                    f"{request.key!r} is at version {version}, "
                    f"not {request.expected_version}",
                )
            entry = pb.Entry(key=request.key, value=request.value, version=version + 1)
            entry.updated.GetCurrentTime()
            self._entries[request.key] = entry
            self._publish(pb.Event(kind=pb.Event.PUT, entry=entry))
        return entry

    def Delete(
        self, request: pb.DeleteRequest, context: homarpc.ServicerContext
    ) -> Empty:
        with self._lock:
            entry = self._entries.pop(request.key, None)
            if entry is not None:
                self._publish(pb.Event(kind=pb.Event.DELETE, entry=entry))
        if entry is None:
            context.abort(homarpc.StatusCode.NOT_FOUND, f"no key {request.key!r}")
        return Empty()

    def List(
        self, request: pb.ListRequest, context: homarpc.ServicerContext
    ) -> Iterator[pb.Entry]:
        with self._lock:
            found = [
                e
                for k, e in sorted(self._entries.items())
                if k.startswith(request.prefix)
            ]
        yield from found

    def Watch(
        self, request: pb.WatchRequest, context: homarpc.ServicerContext
    ) -> Iterator[pb.Event]:
        events: queue.SimpleQueue[pb.Event] = queue.SimpleQueue()
        watcher = (request.prefix, events)
        with self._lock:  # snapshot and subscribe at once: no change falls between
            existing = (
                [
                    e
                    for k, e in sorted(self._entries.items())
                    if k.startswith(request.prefix)
                ]
                if request.include_existing
                else []
            )
            self._watchers.append(watcher)
        try:
            for entry in existing:
                yield pb.Event(kind=pb.Event.PUT, entry=entry)
            yield pb.Event(kind=pb.Event.SNAPSHOT_DONE)
            while context.is_active():
                try:
                    yield events.get(timeout=WATCH_POLL_S)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._watchers.remove(watcher)

    def _publish(self, event: pb.Event) -> None:
        """Hand ``event`` to every interested watcher (caller holds the lock)."""
        for prefix, events in self._watchers:
            if event.entry.key.startswith(prefix):
                events.put(event)


def start(address: str, transport: str | None = None) -> tuple[homarpc.Server, int]:
    """Start a KeyValueStore server on ``address`` ("host:port", 0 picks a port)."""
    server = homarpc.server(max_workers=16, transport=transport)
    kvstore_pb2_homarpc.add_KeyValueStoreServicer_to_server(KeyValueStore(), server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    server, port = start(args.address, args.transport)
    print(f"KeyValueStore listening on port {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0).wait()


if __name__ == "__main__":
    main()
