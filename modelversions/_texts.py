"""A layout-2 snapshot's versions as text, split block by block when first read.

The head of a snapshot (:mod:`modelversions._blocks`) stores its order as one string
per block of records, so an open creates a few hundred strings, not one per version.
A block's string is its versions separated by spaces, where a run of versions that
each bump the one before in the same way (``1.0.0 1.1.0 1.2.0``: what automatic
saves make) is one token, its first version, ``*``, its length and the part bumped
(``M``, ``m`` or ``p``): ``1.0.0*3m``. So the head of a snapshot of 10,000 versions
saved with the default bump holds a few hundred tokens, not 90 KB of versions, and an
open hashes and parses a quarter of what it did. A version with a pre-release or build
is always written out; ``*`` never occurs in a version.

>>> pack(["1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0-rc.1"])
'1.0.0*3m 1.2.1 2.0.0-rc.1'
>>> unpack("1.0.0*3m 1.2.1", 4)
['1.0.0', '1.1.0', '1.2.0', '1.2.1']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableSequence, Sequence
from typing import Any, overload

from modelversions.errors import IntegrityError

_MIN_RUN = 3  # shorter runs are written out


def _bumped(parts: tuple[int, int, int], kind: str) -> tuple[int, int, int]:
    major, minor, patch = parts
    if kind == "M":
        return major + 1, 0, 0
    if kind == "m":
        return major, minor + 1, 0
    return major, minor, patch + 1


def _number(text: str, digits: int) -> int | None:
    """``text`` as a number in canonical form (no sign, no leading zero) of at most
    ``digits`` digits, else None. No regular expression: this module is imported by a
    fresh registry, and compiling one costs more than a cold ``current()``."""
    if not (0 < len(text) <= digits and text.isascii() and text.isdigit()):
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    return int(text)


def _plain(text: str) -> tuple[int, int, int] | None:
    """A version without pre-release or build as its three numbers, else None."""
    parts = text.split(".")
    if len(parts) != 3:
        return None
    major, minor, patch = (_number(p, 18) for p in parts)
    if major is None or minor is None or patch is None:
        return None
    return major, minor, patch


def _run(token: str) -> tuple[tuple[int, int, int], int, str] | None:
    """A run token's first version, length and bump, else None."""
    first, _, rest = token.partition("*")
    start = _plain(first)
    length = _number(rest[:-1], 6)
    if start is None or length is None or rest[-1:] not in ("M", "m", "p"):
        return None
    return start, length, rest[-1]


def pack(names: Sequence[str]) -> str:
    """One block's versions as stored: runs of like bumps as ``first*length kind``."""
    out: list[str] = []
    i, n = 0, len(names)
    while i < n:
        start = _plain(names[i])
        best, kind = 1, ""
        if start is not None and i + 1 < n:
            for k in "mpM":
                parts, j = start, i + 1
                while j < n:
                    parts = _bumped(parts, k)
                    if names[j] != f"{parts[0]}.{parts[1]}.{parts[2]}":
                        break
                    j += 1
                if j - i > best:
                    best, kind = j - i, k
        if best >= _MIN_RUN:
            out.append(f"{names[i]}*{best}{kind}")
            i += best
        else:  # written out; a run may start at the next one
            out.append(names[i])
            i += 1
    return " ".join(out)


def block_text(texts: Sequence[str], b: int, block: int) -> str:
    """The versions of whole block ``b`` (of ``block`` records) of ``texts`` as a head
    stores them: a :class:`Texts`' stored string when it has it, else :func:`pack`."""
    if (
        isinstance(texts, Texts)
        and texts._list is None
        and texts._block == block
        and (b + 1) * block <= texts._n
    ):
        return texts._chunks[b]  # as stored: not split
    return pack([texts[i] for i in range(b * block, (b + 1) * block)])


def unpack(chunk: str, count: int) -> list[str]:
    """The ``count`` versions of a stored block string; ValueError if it has not exactly
    that many (a run is expanded only within that count)."""
    tokens = chunk.split(" ")
    if "*" not in chunk:
        got = tokens
    else:
        got = []
        for token in tokens:
            if "*" not in token:
                got.append(token)
                continue
            run = _run(token)
            if run is None or run[1] < _MIN_RUN or len(got) + run[1] > count:
                raise ValueError(f"a damaged run {token[:40]!r}")
            parts, length, kind = run
            for _ in range(length):
                got.append(f"{parts[0]}.{parts[1]}.{parts[2]}")
                parts = _bumped(parts, kind)
    if len(got) != count or not all(got):
        raise ValueError(f"{len(got)} versions, not {count}")
    return got


class Texts(MutableSequence[str]):
    """A layout-2 snapshot's versions as text, split block by block when first read.

    The head stores the order as one string per block (``index.order``: the versions of
    records ``b * block ..``, see :func:`pack`), so an open creates a few hundred
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
            count = min(self._block, self._n - c * self._block)
            try:
                got = self._split[c] = unpack(self._chunks[c], count)
            except ValueError as exc:
                raise IntegrityError(
                    f"{self._where} has a damaged index (block {c}): {exc}"
                ) from None
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
