"""The small value types of ``homarpc.aio``: ``Metadata``, ``EOF``, ``AioRpcError``."""

from __future__ import annotations

import pytest

import homarpc
from homarpc import aio


def test_metadata_keeps_every_value_in_order() -> None:
    metadata = aio.Metadata(("k", "1"), ("other", "x"), ("k", "2"))
    assert metadata["k"] == "1"
    assert metadata.get_all("k") == ["1", "2"]
    assert tuple(metadata) == (("k", "1"), ("k", "2"), ("other", "x"))
    assert len(metadata) == 3
    # ``in`` looks keys up, as in grpc.aio (typed as a collection of pairs there too)
    assert "other" in metadata  # type: ignore[comparison-overlap]
    assert "absent" not in metadata  # type: ignore[comparison-overlap]


def test_metadata_setitem_replaces_only_the_first_value() -> None:
    metadata = aio.Metadata(("k", "1"), ("k", "2"))
    metadata["k"] = "one"
    metadata["new"] = "n"
    assert metadata.get_all("k") == ["one", "2"]
    assert metadata["new"] == "n"


def test_metadata_deletion() -> None:
    metadata = aio.Metadata(("k", "1"), ("k", "2"), ("j", "3"))
    del metadata["k"]
    assert metadata.get_all("k") == ["2"]
    metadata.delete_all("j")
    assert metadata == (("k", "2"),)
    with pytest.raises(KeyError):
        del metadata["j"]
    with pytest.raises(KeyError):
        metadata["j"]


def test_metadata_from_tuple_and_equality() -> None:
    assert aio.Metadata.from_tuple(None) == aio.Metadata()
    built = aio.Metadata.from_tuple((("a-bin", b"\x00"),))
    assert built == aio.Metadata(("a-bin", b"\x00"))
    assert built != aio.Metadata(("a-bin", b"\x01"))
    assert built.get("missing", "default") == "default"


def test_eof_is_a_singleton_with_a_clear_repr() -> None:
    assert aio.EOF is aio.EOF
    assert "EOF" in repr(aio.EOF)
    assert not isinstance(aio.EOF, bytes)


def test_aio_rpc_error_is_an_rpc_error_with_metadata() -> None:
    error = aio.AioRpcError(
        homarpc.StatusCode.NOT_FOUND,
        aio.Metadata(("i", "1")),
        (("t-bin", b"\x02"),),
        "gone",
    )
    assert isinstance(error, homarpc.RpcError)
    assert (error.code(), error.details()) == (homarpc.StatusCode.NOT_FOUND, "gone")
    assert error.initial_metadata()["i"] == "1"
    assert error.trailing_metadata()["t-bin"] == b"\x02"
    assert "NOT_FOUND" in str(error)


def test_aio_rpc_error_from_a_blocking_error_keeps_everything() -> None:
    blocking = homarpc.RpcError(
        homarpc.StatusCode.ABORTED, "stop", (("a", "b"),), (("c", "d"),)
    )
    converted = aio.AioRpcError.from_rpc_error(blocking)
    assert (converted.code(), converted.details()) == (
        homarpc.StatusCode.ABORTED,
        "stop",
    )
    assert tuple(converted.initial_metadata()) == (("a", "b"),)
    assert tuple(converted.trailing_metadata()) == (("c", "d"),)


def test_every_grpc_aio_name_exists_so_the_import_swap_works() -> None:
    import grpc.aio  # type: ignore[import-untyped]

    assert sorted(set(grpc.aio.__all__) - set(aio.__all__)) == []
    assert all(hasattr(aio, name) for name in aio.__all__)


def test_secure_channels_are_refused_with_the_fix() -> None:
    with pytest.raises(NotImplementedError, match="insecure_channel"):
        aio.secure_channel("localhost:1", object())
