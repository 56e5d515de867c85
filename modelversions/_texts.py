"""A layout-2 snapshot's versions as text, split block by block when first read.

The head of a snapshot (:mod:`modelversions._blocks`) stores its order as one string
per block of records, so an open creates a few hundred strings, not one per version.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableSequence
from typing import Any, overload

from modelversions.errors import IntegrityError


class Texts(MutableSequence[str]):
    """A layout-2 snapshot's versions as text, split block by block when first read.

    The head stores the order as one string per block (``index.order``: the versions of
    records ``b * block ..`` separated by spaces), so an open creates a few hundred
    strings, not one per version: ``current()`` reads the blocks its bisection visits.
    Versions appended after the snapshot (replayed saves) are kept apart; any other
    change turns it into a plain list first. ``copy()`` shares the stored blocks.
    """

    __slots__ = ("_block", "_chunks", "_list", "_n", "_split", "_tail", "_where")

    def __init__(self, chunks: list[str], block: int, n: int, where: str) -> None:
        self._chunks, self._block, self._n, self._where = chunks, block, n, where
        self._split: dict[int, list[str]] = {}
        self._tail: list[str] = []
        self._list: list[str] | None = None

    @classmethod
    def parse(cls, order: Any, block: Any, n: int, where: str) -> Texts:
        """The texts of ``index.order`` (checked: one string per block of ``block``)."""
        if (
            type(block) is not int
            or block < 1
            or not isinstance(order, list)
            or len(order) != -(-n // block)
            or not all(type(chunk) is str for chunk in order)
        ):
            raise IntegrityError(f"{where} has a damaged index")
        return cls(order, block, n, where)

    def _chunk(self, c: int) -> list[str]:
        got = self._split.get(c)
        if got is None:
            got = self._chunks[c].split(" ")
            if len(got) != min(self._block, self._n - c * self._block) or not all(got):
                raise IntegrityError(f"{self._where} has a damaged index (block {c})")
            self._split[c] = got
        return got

    def _whole(self) -> list[str]:
        if self._list is None:
            out: list[str] = []
            for c in range(len(self._chunks)):
                out += self._chunk(c)
            self._list = out + self._tail
        return self._list

    def __len__(self) -> int:
        return self._n + len(self._tail) if self._list is None else len(self._list)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if self._list is not None or isinstance(i, slice):
            return self._whole()[i]
        n = self._n
        if i < 0:
            i += n + len(self._tail)
        if 0 <= i < n:
            c, j = divmod(i, self._block)
            return self._chunk(c)[j]
        return self._tail[i - n]  # IndexError past the end, as a list

    def __iter__(self) -> Iterator[str]:
        if self._list is not None:
            return iter(self._list)
        return itertools.chain(
            *(self._chunk(c) for c in range(len(self._chunks))), list(self._tail)
        )

    def __setitem__(self, i: Any, value: Any) -> None:
        self._whole()[i] = value

    def __delitem__(self, i: Any) -> None:
        del self._whole()[i]

    def insert(self, index: int, value: str) -> None:
        if self._list is None and index >= len(self):
            self._tail.append(value)  # a replayed save of a new highest version
        else:
            self._whole().insert(index, value)

    def copy(self) -> MutableSequence[str]:
        """An independent copy: the stored blocks shared, later changes not."""
        if self._list is not None:
            return list(self._list)
        twin = Texts(self._chunks, self._block, self._n, self._where)
        twin._split, twin._tail = self._split, list(self._tail)  # splits never change
        return twin

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, Texts)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Texts({list(self)!r})"
