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

import bisect
import itertools
import json
from collections.abc import Callable, Iterator, MutableMapping, MutableSequence, Sequence
from typing import Any, Protocol, overload

from modelversions._blocks import Texts
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


class Source(Protocol):
    """Where a lazy state's stored records come from, by position."""

    def __len__(self) -> int: ...

    def record(self, i: int) -> bytes:
        """Record ``i``'s stored JSON, from bytes checked against the snapshot's seal."""

    def prefetch(self) -> None: ...

    def check_all(self) -> None: ...


class Inline:
    """The records of a layout-1 snapshot, read (and its seal checked) whole.

    Record ``i`` is ``data[start + offsets[i] : start + offsets[i + 1] - 1]`` (the
    last ends before ``end``).
    """

    __slots__ = ("_data", "_end", "_offsets", "_start")

    def __init__(self, data: bytes, start: int, offsets: list[int], end: int) -> None:
        self._data, self._start, self._offsets, self._end = data, start, offsets, end

    def __len__(self) -> int:
        return len(self._offsets)

    def record(self, i: int) -> bytes:
        offsets, start = self._offsets, self._start
        end = start + offsets[i + 1] - 1 if i + 1 < len(offsets) else self._end
        return self._data[start + offsets[i] : end]

    def prefetch(self) -> None:
        """Nothing to read: the whole snapshot was."""

    def check_all(self) -> None:
        """Nothing to check: the seal covered every byte."""


class VersionOrder(MutableSequence[Version]):
    """A model's versions in ascending order, parsed from their text when read."""

    __slots__ = ("_parsed", "_texts", "_where")

    def __init__(self, texts: MutableSequence[str], where: str) -> None:
        self._texts = texts
        # Text -> version, for those parsed (a text parses the same wherever it sits).
        self._parsed: dict[str, Version] = {}
        self._where = where

    @property
    def texts(self) -> MutableSequence[str]:
        return self._texts

    def _at(self, i: int) -> Version:
        text = self._texts[i]
        v = self._parsed.get(text)
        if v is None:
            v = self._parsed[text] = parse_version_text(text, self._where)
        return v

    @overload
    def __getitem__(self, i: int) -> Version: ...
    @overload
    def __getitem__(self, i: slice) -> list[Version]: ...
    def __getitem__(self, i: int | slice) -> Version | list[Version]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self._texts)))]
        return self._at(i)

    def __setitem__(self, i: Any, value: Any) -> None:
        raise TypeError("VersionOrder items are replaced by insert and delete only")

    def __delitem__(self, i: Any) -> None:
        if isinstance(i, slice):
            raise TypeError("VersionOrder items are deleted one at a time")
        del self._texts[i]

    def __len__(self) -> int:
        return len(self._texts)

    def insert(self, index: int, value: Version) -> None:
        text = str(value)
        self._texts.insert(index, text)
        self._parsed[text] = value

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

    The snapshot's versions (``stored``, ascending) are found by bisection; record ``i``
    is ``source.record(i)`` (an :class:`Inline` span of a layout-1 snapshot, or a
    checked block of a layout-2 one: :class:`modelversions._blocks.Blocks`), its flag
    ``flags[i]``. A record that is built, replaced or deleted joins ``gone``;
    built and new ones live in ``built``.
    """

    __slots__ = (
        "_built",
        "_by_text",
        "_flags",
        "_gone",
        "_n",
        "_parsed",
        "_source",
        "_stored",
        "_where",
    )

    def __init__(self, source: Source, flags: str, stored: VersionOrder, where: str) -> None:
        self._source = source
        self._n = len(source)
        self._flags = flags
        self._stored = stored
        self._where = where
        self._gone: set[int] = set()
        self._built: dict[Version, ModelVersion] = {}
        self._by_text: dict[str, int] | None = None
        # Stored record i once parsed and checked: the bytes never change, so it stays
        # valid after the record is replaced (a VersionList made before still shows it).
        self._parsed: dict[int, ModelVersion] = {}

    def _find(self, v: Version) -> int | None:
        """The position of ``v`` among the stored records still pending, or None."""
        stored = self._stored
        n = len(stored)
        if n == 0 or v > stored[n - 1]:  # newer than the snapshot (replayed saves): one probe
            return None
        i = bisect.bisect_left(stored, v)
        if i < len(stored) and i not in self._gone and stored[i] == v:
            return i
        return None

    def _bytes(self, i: int) -> bytes:
        return self._source.record(i)

    def prefetch(self) -> None:
        """Read every stored record's bytes now (a writer is about to copy them all)."""
        self._source.prefetch()

    def check_all(self) -> None:
        """Check every stored record's bytes against the snapshot (``verify()``)."""
        self._source.check_all()

    # -- what a lazy state offers beyond a dict ------------------------------------
    def position(self, text: str) -> int | None:
        """Where version ``text`` sits among the stored records (built or not)."""
        if self._by_text is None:
            texts = self._stored.texts
            self._by_text = {t: i for i, t in enumerate(texts)}
            if len(self._by_text) != len(texts):  # a writer never re-seals such an index
                raise IntegrityError(f"{self._where} lists a version twice")
        return self._by_text.get(text)

    def stored(self, text: str) -> tuple[bytes, str] | None:
        """The stored JSON and flag of version ``text``'s record, if never rebuilt."""
        i = self.position(text)
        if i is None or i in self._gone:
            return None
        return self._bytes(i), self._flags[i]

    @property
    def source(self) -> Source:
        """Where the stored records are read from (a block source shares its blocks)."""
        return self._source

    def changed_blocks(self, block: int) -> set[int]:
        """The blocks (of ``block`` stored records) holding a record replaced or deleted
        since it was read (a record built only to be read is unchanged): one pass over
        the records built, whatever the number of blocks."""
        changed = set()
        built, parsed = self._built, self._parsed
        for i in self._gone:
            mv = parsed.get(i)
            if mv is None or built.get(mv.version) is not mv:
                changed.add(i // block)
        return changed

    def flags(self, lo: int, hi: int) -> str:
        """The stored flags of records ``lo..hi``."""
        return self._flags[lo:hi]

    def peek(self, v: Version) -> tuple[Status, bool]:
        """Version ``v``'s status and pruned flag, without building its record."""
        mv = self._built.get(v)
        i = None if mv is not None else self._find(v)
        if i is None:
            mv = self[v]
            return mv.status, mv.pruned
        f = self._flags[i]
        status = _STATUS.get(f.lower())
        if status is None:  # a layout-2 index's flags are checked where used
            raise IntegrityError(f"{self._where} has a damaged index (flag {f!r})")
        return status, f.isupper()

    def parse(self, positions: Sequence[int]) -> list[ModelVersion]:
        """Stored records ``positions`` as they were stored (whether replaced since or
        not), checked against the index; those not parsed yet in one JSON parse."""
        got = self._parsed
        todo = [i for i in positions if i not in got]
        if todo:
            blob = b"[" + b",".join(self._bytes(i) for i in todo) + b"]"
            try:
                dicts = json.loads(blob)
            except ValueError as exc:
                raise IntegrityError(f"{self._where} holds a damaged record: {exc}") from exc
            for i, d in zip(todo, dicts, strict=True):
                got[i] = self._check(i, d)
        return [got[i] for i in positions]

    def _check(self, i: int, d: Any) -> ModelVersion:
        text = self._stored.texts[i]
        mv = ModelVersion.from_dict(d) if isinstance(d, dict) else None
        if mv is None or str(mv.version) != text:
            raise IntegrityError(f"{self._where} holds a record that is not version {text}")
        if flag(mv) != self._flags[i]:  # verify() builds every record: it finds any
            raise IntegrityError(
                f"{self._where} indexes {text} as {self._flags[i]!r}, its record says "
                f"{mv.status.value}{' (pruned)' if mv.pruned else ''}"
            )
        return mv

    def _keep(self, i: int, mv: ModelVersion) -> ModelVersion:
        self._gone.add(i)
        self._built[mv.version] = mv
        return mv

    # -- the mapping ---------------------------------------------------------------
    def __getitem__(self, v: Version) -> ModelVersion:
        mv = self._built.get(v)
        if mv is not None:
            return mv
        i = self._find(v)
        if i is None:
            raise KeyError(v)
        mv = self._parsed.get(i)
        if mv is None:
            try:
                d = json.loads(self._bytes(i))
            except ValueError as exc:
                raise IntegrityError(f"{self._where} holds a damaged record of {v}") from exc
            mv = self._parsed[i] = self._check(i, d)
        return self._keep(i, mv)

    def __contains__(self, v: object) -> bool:
        return v in self._built or (isinstance(v, Version) and self._find(v) is not None)

    def __setitem__(self, v: Version, mv: ModelVersion) -> None:
        i = self._find(v)
        if i is not None:
            self._gone.add(i)
        self._built[v] = mv

    def __delitem__(self, v: Version) -> None:
        i = self._find(v)
        if i is None:
            del self._built[v]
        else:
            self._gone.add(i)
            self._built.pop(v, None)

    def __len__(self) -> int:
        return len(self._built) + self._n - len(self._gone)

    def __iter__(self) -> Iterator[Version]:
        yield from list(self._built)
        for i in range(self._n):
            if i not in self._gone:
                yield self._stored[i]

    def __repr__(self) -> str:
        pending = self._n - len(self._gone)
        return f"LazyRecords({len(self._built)} built, {pending} pending)"


class Listing:
    """A lazy state's versions as they are now, for a :class:`VersionList`.

    Keeps the order's text, and which stored records were rebuilt (replaced, or built
    by key) with the records that stand for them (few in a fresh process; plain
    copies, no parsing); any other version's record is still the stored one, parsed
    when read (:meth:`LazyRecords.parse`). Later changes to the state do not show: they
    rebuild records (this keeps its own copies) or add versions (and its own order),
    and stored bytes never change.
    """

    __slots__ = ("_built", "_by_text", "_gone", "_records", "_texts", "_versions")

    def __init__(self, records: LazyRecords, order: Sequence[Version]) -> None:
        self._records = records
        self._texts = copy_texts(order_texts(order))
        self._versions = VersionOrder(self._texts, records._where)
        self._gone = set(records._gone)
        self._built = dict(records._built)
        self._by_text: dict[str, ModelVersion] | None = None

    def __len__(self) -> int:
        return len(self._texts)

    def version(self, position: int) -> Version:
        return self._versions[position]

    def _rebuilt(self, text: str) -> ModelVersion:
        if self._by_text is None:  # once, and only when a rebuilt record is read
            self._by_text = {str(v): mv for v, mv in self._built.items()}
        mv = self._by_text.get(text)
        if mv is None:  # cannot happen: a version is built or stored
            raise IntegrityError(f"{self._records._where}: no record of version {text}")
        return mv

    def records(self, positions: Sequence[int]) -> list[ModelVersion]:
        out: list[ModelVersion | None] = []
        stored: list[int] = []  # stored positions to parse, and where they go in out
        slots: list[int] = []
        lazy, gone, texts = self._records, self._gone, self._texts
        at = lazy._stored.texts  # mostly where the snapshot had it: no lookup
        for p in positions:
            text = texts[p]
            i = p if p < len(at) and at[p] == text else lazy.position(text)
            if i is None or i in gone:
                out.append(self._rebuilt(text))
            else:
                stored.append(i)
                slots.append(len(out))
                out.append(None)
        for slot, mv in zip(slots, lazy.parse(stored), strict=True):
            out[slot] = mv
        self._check_order(positions, out)  # type: ignore[arg-type]  # all filled
        return out  # type: ignore[return-value]

    def _check_order(self, positions: Sequence[int], out: list[ModelVersion]) -> None:
        """Neighbours must ascend: an index whose order was rearranged (its records
        with it) is refused where read. Each record was checked to be the version its
        index text names; listing every version checks the whole order."""
        prev_p, prev_v = -2, None
        if positions and positions[0] > 0:
            prev_p, prev_v = positions[0] - 1, self._versions[positions[0] - 1]
        for p, mv in zip(positions, out, strict=True):
            if prev_v is not None and abs(p - prev_p) == 1:
                lo, hi = (prev_v, mv.version) if p > prev_p else (mv.version, prev_v)
                if not lo < hi:
                    raise IntegrityError(
                        f"{self._records._where} lists {lo} before {hi}: not in version order"
                    )
            prev_p, prev_v = p, mv.version


def encode_index(texts: list[str], flags: list[str], parts: list[str]) -> dict[str, Any]:
    """The snapshot's ``index`` for records ``parts`` (their JSON), in version order.

    ``offsets``: where each record starts in the ``versions`` array's text (after
    ``[``), records being separated by one comma.
    """
    offsets = list(itertools.accumulate((len(p) + 1 for p in parts[:-1]), initial=0))
    return {
        "flags": "".join(flags),
        "offsets": offsets if parts else [],
        "order": " ".join(texts),
    }


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
    """The records and order that ``index`` describes in ``data`` from ``start``.

    Checks the index's shape (a record that does not sit where it says is found when
    it is built: it must parse, and be the version the index names).
    """
    if not isinstance(index, dict):
        raise IntegrityError(f"{where} has a damaged index")
    order_text, flags, offsets = index.get("order"), index.get("flags"), index.get("offsets")
    if not isinstance(order_text, str) or not isinstance(flags, str):
        raise IntegrityError(f"{where} has a damaged index")
    texts = order_text.split(" ") if order_text else []
    end = len(data) - 2
    if (
        not isinstance(offsets, list)
        or len(offsets) != len(texts)
        or len(flags) != len(texts)
        or (offsets and (set(map(type, offsets)) != {int} or offsets[0] != 0))
        or (offsets and not 0 <= max(offsets) < end - start)
        or not set(flags) <= set("csfCSF")
    ):
        raise IntegrityError(f"{where} has a damaged index")
    if len(set(texts)) != len(texts):
        raise IntegrityError(f"{where} lists a version twice")
    order = VersionOrder(texts, where)
    stored = VersionOrder(list(texts), where)
    return LazyRecords(Inline(data, start, offsets, end), flags, stored, where), order


def block_records(
    index: Any, block: Any, source: Callable[[MutableSequence[str]], Source], where: str
) -> tuple[LazyRecords, VersionOrder]:
    """The records and order of a layout-2 snapshot's ``index`` (the order, one string
    of versions per ``block`` records, and the flags).

    Checks what a state needs before any record is read: one flag per version (each
    is checked where it is used: a status read from it, or compared with its record's
    when built). Positions and sizes of records are checked per block when it is
    read (:class:`modelversions._blocks.Blocks`), each record when built (it must be
    the version the index names, with its flag), the order where records are listed
    (:meth:`Listing._check_order`: equal neighbours too, so listing every version
    finds a version listed twice), and duplicates again before a writer copies the
    stored records (:meth:`LazyRecords.position`). The head is sealed (signed with
    keys): an index a writer of this library did not produce is damage the seal
    catches, or a forgery only a signature can refuse, as for every other field.
    """
    if not isinstance(index, dict):
        raise IntegrityError(f"{where} has a damaged index")
    chunks, flags = index.get("order"), index.get("flags")
    if not isinstance(flags, str):
        raise IntegrityError(f"{where} has a damaged index")
    texts = Texts.parse(chunks, block, len(flags), where)  # each block split when read
    kept = texts.copy()  # the order changes as entries are applied; these do not
    records = source(kept)
    if len(records) != len(texts):
        raise IntegrityError(f"{where} has a damaged index")
    stored = VersionOrder(kept, where)
    return LazyRecords(records, flags, stored, where), VersionOrder(texts, where)


def order_texts(order: Sequence[Version]) -> MutableSequence[str]:
    """The versions of ``order`` as text (kept as text by a :class:`VersionOrder`)."""
    return order.texts if isinstance(order, VersionOrder) else [str(v) for v in order]


def copy_texts(texts: MutableSequence[str]) -> MutableSequence[str]:
    """An independent copy of ``texts`` (a :class:`Texts` shares its stored blocks)."""
    return texts.copy() if isinstance(texts, Texts) else list(texts)
