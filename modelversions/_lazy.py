"""Records built on first use: what a fresh registry needs from a large snapshot.

A snapshot keeps each record as the JSON it was written as, plus a compact ``index``
(the versions in order, one status flag per version and each record's length). A
fresh :class:`~modelversions._state.ModelState` read from it holds the versions as
text and the records as byte ranges: ``current()``, ``load()`` and ``rollback()`` need
the pointers, a few statuses and one or two records, so they parse only those.

:class:`LazyRecords` is the ``records`` mapping and :class:`VersionOrder` the
``order`` list of such a state; both behave like the ``dict``/``list`` an eagerly
replayed state holds (equal to them, same contents), building a value on access.
This room owns the index's layout and the byte ranges; it never reads storage and
decides nothing (the snapshot's seal and head were checked by :mod:`._commit`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, MutableMapping, MutableSequence, Sequence
from typing import Any, overload

from modelversions.errors import IntegrityError
from modelversions.records import ModelVersion, Status, _parse_version
from modelversions.version import Version

# The index's one-letter flags: the status, upper case when the artifact was pruned.
_FLAG = {Status.CANDIDATE: "c", Status.STABLE: "s", Status.FAILED: "f"}
_STATUS = {flag: status for status, flag in _FLAG.items()}
# The key that opens the records array: the last key of every snapshot (sort_keys).
# It cannot occur earlier: inside a JSON string its quotes would be escaped, and no
# object before it holds a key "versions" whose value is an array.
VERSIONS_KEY = b',"versions":['


def flag(mv: ModelVersion) -> str:
    f = _FLAG[mv.status]
    return f.upper() if mv.pruned else f


def parse_version_text(text: str, where: str) -> Version:
    """A version as stored in an index: canonical text, else IntegrityError."""
    try:
        v = _parse_version(text)
    except ValueError as exc:
        raise IntegrityError(f"{where} lists a bad version {text!r}: {exc}") from exc
    if str(v) != text:
        raise IntegrityError(f"{where} lists version {text!r} in a non-canonical form")
    return v


class VersionOrder(MutableSequence[Version]):
    """A model's versions in ascending order, parsed from their text when read."""

    __slots__ = ("_parsed", "_texts", "_where")

    def __init__(self, texts: list[str], where: str) -> None:
        self._texts = texts
        self._parsed: list[Version | None] = [None] * len(texts)
        self._where = where

    @property
    def texts(self) -> list[str]:
        return self._texts

    def _at(self, i: int) -> Version:
        v = self._parsed[i]
        if v is None:
            v = self._parsed[i] = parse_version_text(self._texts[i], self._where)
        return v

    @overload
    def __getitem__(self, i: int) -> Version: ...
    @overload
    def __getitem__(self, i: slice) -> list[Version]: ...
    def __getitem__(self, i: int | slice) -> Version | list[Version]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self._texts)))]
        return self._at(range(len(self._texts))[i])

    def __setitem__(self, i: Any, value: Any) -> None:
        raise TypeError("VersionOrder items are replaced by insert and delete only")

    def __delitem__(self, i: Any) -> None:
        if isinstance(i, slice):
            raise TypeError("VersionOrder items are deleted one at a time")
        del self._texts[i]
        del self._parsed[i]

    def __len__(self) -> int:
        return len(self._texts)

    def insert(self, index: int, value: Version) -> None:
        self._texts.insert(index, str(value))
        self._parsed.insert(index, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionOrder):
            return self._texts == other._texts
        if isinstance(other, (list, tuple, Sequence)):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"VersionOrder({self._texts!r})"


class LazyRecords(MutableMapping[Version, ModelVersion]):
    """``Version -> ModelVersion``, each record parsed from its JSON on first access.

    ``raw`` maps the text of each version not yet built to its position ``i`` in the
    index: its record is ``data[starts[i] : starts[i] + sizes[i]]``, its flag
    ``flags[i]``. A record that is built, replaced or deleted leaves ``raw``.
    """

    __slots__ = ("_built", "_data", "_flags", "_order", "_raw", "_sizes", "_starts", "_where")

    def __init__(
        self,
        data: bytes,
        raw: dict[str, int],
        spans: tuple[list[int], list[int], str],
        order: VersionOrder,
        where: str,
    ) -> None:
        self._data = data
        self._raw = raw
        self._starts, self._sizes, self._flags = spans
        self._order = order
        self._where = where
        self._built: dict[Version, ModelVersion] = {}

    # -- what a lazy state offers beyond a dict ------------------------------------
    def fragment(self, text: str) -> str | None:
        """The stored JSON of version ``text``'s record if it was never rebuilt."""
        i = self._raw.get(text)
        return None if i is None else self._bytes(i).decode()

    def _bytes(self, i: int) -> bytes:
        start = self._starts[i]
        return self._data[start : start + self._sizes[i]]

    def flag_of(self, text: str) -> str:
        """The index flag of a version whose record was never rebuilt."""
        return self._flags[self._raw[text]]

    def peek(self, v: Version) -> tuple[Status, bool]:
        """Version ``v``'s status and pruned flag, without building its record."""
        mv = self._built.get(v)
        if mv is not None:
            return mv.status, mv.pruned
        i = self._raw.get(str(v))
        if i is None:
            mv = self[v]
            return mv.status, mv.pruned
        f = self._flags[i]
        return _STATUS[f.lower()], f.isupper()

    def build_all(self) -> None:
        """Build every record still pending, with one JSON parse of them all."""
        if not self._raw:
            return
        texts = list(self._raw)
        blob = b"[" + b",".join(self._bytes(i) for i in self._raw.values()) + b"]"
        try:
            dicts = json.loads(blob)
        except ValueError as exc:
            raise IntegrityError(f"{self._where} holds a damaged record: {exc}") from exc
        for text, d in zip(texts, dicts, strict=True):
            self._keep(text, d)

    def _keep(self, text: str, d: Any) -> ModelVersion:
        mv = ModelVersion.from_dict(d) if isinstance(d, dict) else None
        if mv is None or str(mv.version) != text:
            raise IntegrityError(f"{self._where} holds a record that is not version {text}")
        del self._raw[text]
        self._built[mv.version] = mv
        return mv

    # -- the mapping ---------------------------------------------------------------
    def __getitem__(self, v: Version) -> ModelVersion:
        mv = self._built.get(v)
        if mv is not None:
            return mv
        text = str(v)
        i = self._raw.get(text)
        if i is None:
            raise KeyError(v)
        try:
            d = json.loads(self._bytes(i))
        except ValueError as exc:
            raise IntegrityError(f"{self._where} holds a damaged record of {text}") from exc
        return self._keep(text, d)

    def __contains__(self, v: object) -> bool:
        return v in self._built or (isinstance(v, Version) and str(v) in self._raw)

    def __setitem__(self, v: Version, mv: ModelVersion) -> None:
        self._raw.pop(str(v), None)
        self._built[v] = mv

    def __delitem__(self, v: Version) -> None:
        if self._raw.pop(str(v), None) is None:
            del self._built[v]
        else:
            self._built.pop(v, None)

    def __len__(self) -> int:
        return len(self._built) + len(self._raw)

    def __iter__(self) -> Iterator[Version]:
        yield from list(self._built)
        pending = set(self._raw)
        for i, text in enumerate(self._order.texts):
            if text in pending:
                yield self._order[i]

    def __repr__(self) -> str:
        return f"LazyRecords({len(self._built)} built, {len(self._raw)} pending)"


def encode_index(texts: list[str], flags: list[str], parts: list[str]) -> dict[str, Any]:
    """The snapshot's ``index`` for records ``parts`` (their JSON), in version order."""
    return {"flags": "".join(flags), "order": " ".join(texts), "sizes": [len(p) for p in parts]}


def split_snapshot(data: bytes, where: str) -> tuple[dict[str, Any], int] | None:
    """The head of sealed snapshot ``data`` (parsed, every key but ``versions``) and the
    offset where its records start; None when it has no index (an older layout)."""
    at = data.find(VERSIONS_KEY)
    if at < 0 or not data.endswith(b"]}"):
        return None
    try:
        head = json.loads(data[:at] + b"}")
    except ValueError as exc:
        raise IntegrityError(f"{where} is damaged (not valid JSON: {exc})") from exc
    if not isinstance(head, dict) or "index" not in head:
        return None
    return head, at + len(VERSIONS_KEY)


def lazy_records(
    data: bytes, start: int, index: Any, where: str
) -> tuple[LazyRecords, VersionOrder]:
    """The records and order that ``index`` describes in ``data`` from ``start``."""
    if not isinstance(index, dict):
        raise IntegrityError(f"{where} has a damaged index")
    order_text, flags, sizes = index.get("order"), index.get("flags"), index.get("sizes")
    if not isinstance(order_text, str) or not isinstance(flags, str):
        raise IntegrityError(f"{where} has a damaged index")
    texts = order_text.split(" ") if order_text else []
    if (
        not isinstance(sizes, list)
        or len(sizes) != len(texts)
        or len(flags) != len(texts)
        or (sizes and (set(map(type, sizes)) != {int} or min(sizes) < 2))
        or not set(flags) <= set("csfCSF")
    ):
        raise IntegrityError(f"{where} has a damaged index")
    if sum(sizes) + max(len(sizes) - 1, 0) != len(data) - 2 - start:
        raise IntegrityError(f"{where} has an index that does not match its records")
    raw = dict(zip(texts, range(len(texts)), strict=True))
    if len(raw) != len(texts):
        raise IntegrityError(f"{where} lists a version twice")
    # record i starts after records 0..i-1 and their commas
    starts = list(itertools.accumulate((n + 1 for n in sizes[:-1]), initial=start))
    order = VersionOrder(texts, where)
    return LazyRecords(data, raw, (starts, sizes, flags), order, where), order


def order_texts(order: Sequence[Version]) -> list[str]:
    """The versions of ``order`` as text (kept as text by a :class:`VersionOrder`)."""
    return order.texts if isinstance(order, VersionOrder) else [str(v) for v in order]
