"""``homarpc.aio.Metadata``: an ordered multi-dict of call metadata.

Layer: rpc (homarpc.aio). Imports: stdlib only.

Behaves like ``grpc.aio.Metadata``: a key may map to several values, in the order they
were added; ``md[key]`` is the first value; iteration yields every ``(key, value)``
pair; it compares equal to the same pairs given as a tuple. Keys ending in ``-bin``
carry ``bytes``, all others ``str``.
"""

from __future__ import annotations

from collections.abc import Collection, ItemsView, Iterable, Iterator, KeysView
from typing import Self

__all__ = ["Metadata", "MetadataKey", "MetadataLike", "MetadataValue", "Metadatum"]

MetadataKey = str
MetadataValue = str | bytes
Metadatum = tuple[MetadataKey, MetadataValue]
#: What callers may pass where metadata is expected.
MetadataLike = Iterable[Metadatum]


class Metadata(Collection[Metadatum]):
    """Ordered ``key -> [values]`` with grpc.aio's accessors."""

    __slots__ = ("_values",)

    def __init__(self, *pairs: Metadatum) -> None:
        self._values: dict[MetadataKey, list[MetadataValue]] = {}
        for key, value in pairs:
            self.add(key, value)

    @classmethod
    def from_tuple(cls, pairs: MetadataLike | None) -> Self:
        """Build from ``((key, value), ...)`` (``None`` or empty: no metadata)."""
        return cls(*pairs) if pairs else cls()

    @classmethod
    def coerce(cls, pairs: MetadataLike | None) -> Self:
        """``pairs`` itself when it is already ``Metadata``, else a copy of it."""
        if isinstance(pairs, cls):
            return pairs
        return cls.from_tuple(pairs)

    def add(self, key: MetadataKey, value: MetadataValue) -> None:
        """Append ``value`` after the existing values of ``key``."""
        self._values.setdefault(key, []).append(value)

    def get(
        self, key: MetadataKey, default: MetadataValue | None = None
    ) -> MetadataValue | None:
        """The first value of ``key``, or ``default``."""
        values = self._values.get(key)
        return values[0] if values else default

    def get_all(self, key: MetadataKey) -> list[MetadataValue]:
        """Every value of ``key``, in order (empty list when absent)."""
        return list(self._values.get(key, ()))

    def set_all(self, key: MetadataKey, values: list[MetadataValue]) -> None:
        """Replace every value of ``key``."""
        self._values[key] = list(values)

    def delete_all(self, key: MetadataKey) -> None:
        """Remove ``key`` and all its values (``KeyError`` when absent)."""
        del self._values[key]

    def keys(self) -> KeysView[MetadataKey]:
        return self._values.keys()

    def items(self) -> ItemsView[MetadataKey, list[MetadataValue]]:
        return self._values.items()

    def __getitem__(self, key: MetadataKey) -> MetadataValue:
        values = self._values.get(key)
        if not values:
            raise KeyError(key)
        return values[0]

    def __setitem__(self, key: MetadataKey, value: MetadataValue) -> None:
        """Replace the first value of ``key`` (or add it), keeping the others."""
        values = self._values.setdefault(key, [])
        values[:1] = [value]

    def __delitem__(self, key: MetadataKey) -> None:
        """Remove the first value of ``key``."""
        values = self._values.get(key)
        if not values:
            raise KeyError(key)
        del values[0]
        if not values:
            del self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[Metadatum]:
        for key, values in self._values.items():
            for value in values:
                yield key, value

    def __len__(self) -> int:
        return sum(len(values) for values in self._values.values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Metadata):
            return self._values == other._values
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple(self)!r}"
