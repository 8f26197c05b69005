"""The key-value store client: writes, reads, a refused compare-and-set, a watch."""

from __future__ import annotations

import argparse
from pathlib import Path

import homarpc
from homarpc.codegen import build_protos

HERE = Path(__file__).resolve().parent
build_protos([HERE.parent.parent / "protos" / "kvstore.proto"], out=HERE)

import kvstore_pb2 as pb  # noqa: E402  (generated just above)
import kvstore_pb2_homarpc  # noqa: E402


def describe(event: pb.Event) -> str:
    kind = pb.Event.Kind.Name(event.kind)
    return f"{kind} {event.entry.key}" if event.entry.key else kind


def run(target: str, transport: str | None = None) -> None:
    with homarpc.insecure_channel(target, transport=transport) as channel:
        stub = kvstore_pb2_homarpc.KeyValueStoreStub(channel)
        watch = stub.Watch(pb.WatchRequest(prefix="user/"), timeout=30)
        print(f"watch: {describe(next(watch))}")  # SNAPSHOT_DONE: the watch is live

        ada = stub.Put(pb.PutRequest(key="user/ada", value=b"Ada Lovelace"), timeout=5)
        stub.Put(pb.PutRequest(key="user/alan", value=b"Alan Turing"), timeout=5)
        stub.Put(pb.PutRequest(key="config/theme", value=b"dark"), timeout=5)
        print(f"put user/ada: version {ada.version}")
        try:
            stale = pb.PutRequest(key="user/ada", value=b"?", expected_version=7)
            stub.Put(stale, timeout=5)
        except homarpc.RpcError as error:
            print(f"compare-and-set refused: {error.code().name}: {error.details()}")

        got = stub.Get(pb.GetRequest(key="user/alan"), timeout=5)
        print(f"get user/alan: {got.value.decode()} (version {got.version})")
        keys = [entry.key for entry in stub.List(pb.ListRequest(prefix=""), timeout=5)]
        print(f"list: {keys}")
        stub.Delete(pb.DeleteRequest(key="user/ada"), timeout=5)
        try:
            stub.Get(pb.GetRequest(key="user/ada"), timeout=5)
        except homarpc.RpcError as error:
            print(f"get user/ada after delete: {error.code().name}")

        changes = [describe(next(watch)) for _ in range(3)]  # ada, alan, delete ada
        print(f"watch: {changes}")
        watch.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:5051")
    parser.add_argument("--transport", choices=["auto", "udp", "kernel"])
    args = parser.parse_args()
    run(args.target, args.transport)


if __name__ == "__main__":
    main()
