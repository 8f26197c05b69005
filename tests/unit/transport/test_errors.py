"""Transport errors: errno mapping and the attributes callers rely on."""

from __future__ import annotations

import errno

import pytest

from homarpc.transport import (
    MessageTooLongError,
    PeerUnreachableError,
    RpcAbortedError,
    RpcTimeoutError,
    TransportClosedError,
    error_from_errno,
)


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errno.ETIMEDOUT, RpcTimeoutError),
        (errno.ENOTCONN, PeerUnreachableError),
        (errno.EHOSTUNREACH, PeerUnreachableError),
        (errno.EPROTONOSUPPORT, PeerUnreachableError),
        (errno.ESHUTDOWN, TransportClosedError),
        (errno.EMSGSIZE, MessageTooLongError),
        (errno.ECANCELED, RpcAbortedError),
    ],
)
def test_errno_maps_to_the_matching_error(err, kind):
    error = error_from_errno(err, "to 127.0.0.1:9")
    assert type(error) is kind
    assert "127.0.0.1:9" in str(error)


@pytest.mark.parametrize("err", [errno.ETIMEDOUT, errno.ENOTCONN, errno.ECANCELED])
def test_rpc_errors_keep_their_errno(err):
    error = error_from_errno(err)
    assert isinstance(error, RpcAbortedError)
    assert error.errno == err


def test_timeout_is_also_a_builtin_timeout_error():
    error = RpcTimeoutError()
    assert isinstance(error, TimeoutError)
    assert error.errno == errno.ETIMEDOUT
