"""A new ``bytes`` object that can be filled in place, once, before anyone reads it.

Layer: transport. Imports: the stdlib only.

Why: a long message received into place (``engine/placement.py``) should reach the
application as the ``bytes`` it expects (grpcio hands raw ``bytes`` to an identity
deserializer) without one more copy of the whole message. CPython's own ``recv``,
``os.read`` and ``b"".join`` do exactly this: they create an uninitialised bytes
object with ``PyBytes_FromStringAndSize(NULL, n)`` and write into it before
returning it. ``writable_bytes`` does the same through ``ctypes.pythonapi``.

The contract that makes this safe: the object is new and private to the caller
until it is completely written; it must not be hashed, compared, or handed out
before then (its hash is computed lazily, on first use, so writing before that
is invisible). Where the trick is unavailable (another interpreter, a layout
that does not match the self-test), a ``bytearray`` is returned instead and the
caller converts it with ``bytes()`` (one copy, the cost without the trick).
"""

from __future__ import annotations

import ctypes
import sys
import threading

__all__ = ["writable_bytes"]

_lock = threading.Lock()
_new_bytes: ctypes._NamedFuncPointer | None = None
_usable: bool | None = None  # None: not tried yet
#: Offset of a bytes object's data from its address (``ob_sval``).
_DATA_OFFSET = bytes.__basicsize__ - 1


def writable_bytes(size: int) -> tuple[bytes | bytearray, memoryview]:
    """A new object of ``size`` bytes and a writable byte view of all of it.

    The object is ``bytes`` (uninitialised: write every byte before use) where
    the interpreter allows, else a zero-filled ``bytearray``.
    """
    if size > 0 and (_usable or (_usable is None and _probe())):
        assert _new_bytes is not None
        data: bytes = _new_bytes(None, size)
        window = (ctypes.c_char * size).from_address(id(data) + _DATA_OFFSET)
        # The view keeps ``window`` alive, and ``window`` keeps ``data`` alive.
        window.owner = data  # type: ignore[attr-defined]
        return data, memoryview(window).cast("B")
    buffer = bytearray(size)
    return buffer, memoryview(buffer)


def _probe() -> bool:
    """Set up the trick once and check it on a small object; False if unusable."""
    global _new_bytes, _usable
    with _lock:
        if _usable is None:
            _usable = False
            if sys.implementation.name == "cpython":
                try:
                    function = ctypes.pythonapi.PyBytes_FromStringAndSize
                    function.restype = ctypes.py_object
                    function.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
                    _new_bytes = function
                    _usable = _self_test()
                except (AttributeError, OSError, ValueError, TypeError):
                    _usable = False
        return _usable


def _self_test() -> bool:
    pattern = bytes(range(7, 7 + 64))
    assert _new_bytes is not None
    data = _new_bytes(None, len(pattern))
    if type(data) is not bytes or len(data) != len(pattern):
        return False
    window = (ctypes.c_char * len(pattern)).from_address(id(data) + _DATA_OFFSET)
    memoryview(window).cast("B")[:] = pattern
    return data == pattern
