"""The value ``ModelRegistry.versions()`` returns: a read-only list of records.

:class:`VersionList` is what the registry knew when the call was made, in version
order. Its records are built when first read: a registry opened fresh on a snapshot
holds each record as the JSON it was stored as (see :mod:`modelversions._lazy`), so
``len()``, ``vs[-1]`` or ``vs[:5]`` of a model with 10,000 versions build none, one or
five records. :mod:`modelversions.records` re-exports it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, SupportsIndex, overload

if TYPE_CHECKING:  # records.py imports this module: no import of it at run time
    from modelversions.records import ModelVersion
    from modelversions.version import Version

__all__ = ["RecordSource", "VersionList"]

# Records are built this many at a time while iterating (one JSON parse per chunk).
_CHUNK = 256


class RecordSource(Protocol):
    """Where a :class:`VersionList` gets its records: positions ``0..len-1`` of a
    model's versions in ascending order, fixed when the list was made."""

    def __len__(self) -> int: ...

    def records(self, positions: Sequence[int]) -> list[ModelVersion]:
        """The records at ``positions`` (each in range), in that order."""
        ...

    def version(self, position: int) -> Version:
        """The version at ``position``, without building its record where possible."""
        ...


class _Listed:
    """A source over records already built (an eagerly read state, an unpickled list)."""

    __slots__ = ("_records",)

    def __init__(self, records: list[ModelVersion]) -> None:
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    def records(self, positions: Sequence[int]) -> list[ModelVersion]:
        got = self._records
        return [got[p] for p in positions]

    def version(self, position: int) -> Version:
        return self._records[position].version


class VersionList(Sequence["ModelVersion"]):
    """A model's versions, ascending: a read-only sequence of :class:`ModelVersion`.

    It behaves like the list of records it stands for: ``len``, indexing (negative
    too), slicing (a ``VersionList`` again), iteration and ``reversed`` in version
    order, ``in``, ``index``, ``count``, truth, ``+`` (a ``list``), and ``==`` with a
    ``list`` (or another ``VersionList``) of equal records. Every item is a real,
    frozen :class:`ModelVersion`. It does not change when the model does: call
    ``versions()`` again for the newest. It cannot be changed (``list(vs)`` gives a
    ``list`` to sort or append to); pickling and copying give an equal ``VersionList``.

    Records are built on first read and kept: ``len(vs)``, ``vs[-1]`` and ``vs[:10]``
    build none, one and ten records, however many versions the model has.

    >>> from modelversions import ModelRegistry
    >>> reg = ModelRegistry("memory://")
    >>> for auc in (0.80, 0.85, 0.90):
    ...     _ = reg.save("churn", [auc], metrics={"auc": auc})
    >>> vs = reg.versions("churn")
    >>> len(vs), str(vs[-1].version), [str(mv.version) for mv in vs[:2]]
    (3, '1.2.0', ['1.0.0', '1.1.0'])
    >>> vs == list(vs)
    True
    """

    __slots__ = ("_positions", "_source")

    def __init__(self, records: Iterable[ModelVersion] = ()) -> None:
        """A list of ``records``, which must be one model's, ascending by version."""
        items = list(records)
        self._source: RecordSource = _Listed(items)
        self._positions = range(len(items))

    @classmethod
    def _over(cls, source: RecordSource, positions: range | None = None) -> VersionList:
        """A list of ``source``'s records at ``positions`` (default: all), unbuilt."""
        out = cls.__new__(cls)
        out._source = source
        out._positions = range(len(source)) if positions is None else positions
        return out

    # -- the sequence ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: SupportsIndex) -> ModelVersion: ...
    @overload
    def __getitem__(self, index: slice) -> VersionList: ...
    def __getitem__(self, index: SupportsIndex | slice) -> ModelVersion | VersionList:
        if isinstance(index, slice):
            return VersionList._over(self._source, self._positions[index])
        try:
            p = self._positions[index]
        except IndexError:
            raise IndexError("VersionList index out of range") from None
        except TypeError:
            raise TypeError(
                f"VersionList indices must be integers or slices, not {type(index).__name__}"
            ) from None
        return self._source.records((p,))[0]

    def __iter__(self) -> Iterator[ModelVersion]:
        return self._chunks(self._positions)

    def __reversed__(self) -> Iterator[ModelVersion]:
        return self._chunks(self._positions[::-1])

    def _chunks(self, positions: range) -> Iterator[ModelVersion]:
        source = self._source
        for at in range(0, len(positions), _CHUNK):
            yield from source.records(positions[at : at + _CHUNK])

    def _find(self, value: object) -> int | None:
        """The index where ``value``, a record, would sit (by its version); None when
        the answer needs a scan (not a record, or a reversed slice)."""
        from modelversions.records import ModelVersion  # (a cycle at import time)

        positions = self._positions
        if not isinstance(value, ModelVersion) or positions.step < 0:
            return None
        at = self._source.version
        return bisect.bisect_left(
            range(len(positions)), value.version, key=lambda i: at(positions[i])
        )

    def __contains__(self, value: object) -> bool:
        i = self._find(value)
        if i is None:
            return any(mv == value for mv in self)
        return i < len(self) and self[i] == value

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        i = self._find(value)
        if i is None:
            return super().index(value, start, stop if stop is not None else len(self))
        lo, hi, _ = slice(start, stop).indices(len(self))
        if lo <= i < hi and i < len(self) and self[i] == value:
            return i
        raise ValueError(f"{value!r} is not in the VersionList")

    def count(self, value: Any) -> int:
        i = self._find(value)
        if i is None:
            return sum(1 for mv in self if mv == value)
        return int(i < len(self) and self[i] == value)  # versions are unique

    # -- comparing, combining ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionList):
            if other._source is self._source and other._positions == self._positions:
                return True
        elif not isinstance(other, list):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # like a list: equal to one, not hashable

    def __add__(self, other: Iterable[ModelVersion]) -> list[ModelVersion]:
        if not isinstance(other, (list, VersionList)):
            return NotImplemented
        return [*self, *other]

    def __radd__(self, other: Iterable[ModelVersion]) -> list[ModelVersion]:
        if not isinstance(other, list):
            return NotImplemented
        return [*other, *self]

    def __repr__(self) -> str:
        n = len(self)
        if n <= 6:
            return f"VersionList({[*self]!r})"
        shown = [*self[:3], *self[-2:]]
        head, tail = ", ".join(map(repr, shown[:3])), ", ".join(map(repr, shown[3:]))
        return f"VersionList([{head}, ...({n - 5:,} more)..., {tail}])"

    # -- copying -------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (VersionList, (list(self),))

    def __copy__(self) -> VersionList:
        return self  # immutable, like a tuple
