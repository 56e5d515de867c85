"""Snapshot layout 2: a sealed head, then the records in blocks read on demand.

A snapshot of a model with many versions is mostly records a fresh process never
reads. Layout 2 stores it as lines::

    <sealed head: a JSON object, one line>\\n
    <record 0 as JSON>\\n          (block 0: records 0..63)
    ...
    <record 63>\\n
    <record 64>\\n                 (block 1: records 64..127)
    ...

One record per line: JSON text never holds a raw newline. The head holds everything a
snapshot holds except the records (pointers, the ``index`` of versions and status
flags, ``deleted``, ``highest``...) plus ``records``: ``block`` (records per block,
fixed by the writer), and per block its byte ``sizes`` (without the newline that ends
it) and ``digests`` (sha256 of those bytes). Small blocks keep what an open hashes
small: the head and the one block that holds the record asked for. The seal (and, in
a signed registry, the signature) covers the head, so every record byte is bound to it
through its block's digest.

A reader reads the head alone (:func:`read_head`: a ranged read, more if the head is
longer), checks it, and builds records from blocks fetched with a ranged read,
checked against their digest and parsed from exactly those bytes (:class:`Blocks`;
kept, so a block is read once). A block read later, maybe hours after the open, may
be gone (a newer writer removed the snapshot) or damaged: its records are then taken
from the log replayed to the snapshot's entry (the log is the truth), with a warning
when it was damaged. ``verify()`` checks every block (:meth:`Blocks.check_all`).
This room owns the layout; it decides nothing and reads only through ``fetch``.
"""

from __future__ import annotations

import functools
import itertools
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from modelversions._codec import check_seal, sha256
from modelversions.errors import IntegrityError
from modelversions.records import ModelVersion

BLOCK = 64  # records per block: ~20 KB of typical records, one read and one hash each
FIRST_READ = 128 * 1024  # the first ranged read: the whole head up to ~12,000 versions

Fetch = Callable[[int, int], bytes]  # bytes start..end of the snapshot (fewer at its end)
Recover = Callable[[], Mapping[str, ModelVersion]]  # version text -> record at the snapshot


def encode(head: dict[str, Any], parts: list[bytes], seal: Callable[[bytes], bytes]) -> bytes:
    """Snapshot bytes of ``head`` (without records) and the records' JSON ``parts``.

    ``seal`` turns the head's canonical JSON into its stored bytes (sealed, or signed
    then sealed); it is given ``head`` plus the ``records`` description.
    """
    blocks = [b"\n".join(parts[i : i + BLOCK]) for i in range(0, len(parts), BLOCK)]
    head["records"] = {
        "block": BLOCK,
        "digests": [sha256(b).hexdigest() for b in blocks],
        "sizes": [len(b) for b in blocks],
    }
    text = json.dumps(head, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return b"\n".join([seal(text.encode()), *blocks, b""])


def is_head(line: bytes) -> bool:
    """Whether ``line`` (a snapshot's first) is a sealed head, not part of one object
    that was stored with newlines (an older layout written by another tool)."""
    try:
        check_seal(line, "")
    except IntegrityError:
        return False
    return True


def read_head(fetch: Fetch) -> tuple[bytes, bytes | None]:
    """The head of the snapshot ``fetch`` reads, and the bytes read after it.

    For an older layout (one JSON object, no newline) the whole object and None.
    """
    want, step = FIRST_READ, FIRST_READ
    buf = fetch(0, want)
    scanned = 0
    while True:
        nl = buf.find(b"\n", scanned)
        if nl >= 0:
            return buf[:nl], buf[nl + 1 :]
        if len(buf) < want:  # the end: no newline, the whole object
            return buf, None
        scanned = len(buf)
        step *= 4
        buf += fetch(want, want + step)
        want += step


class Blocks:
    """The records of a layout-2 snapshot, fetched by block and checked on first use.

    ``texts`` are its versions; ``head_end`` is where its first block starts, ``desc``
    its head's ``records``, ``rest`` the bytes read after the head (blocks wholly in
    them are not fetched again). ``record(i)`` is record ``i``'s JSON, sliced from its
    block's verified bytes. A
    block that is gone or damaged, when ``recover`` is given, is replaced by the log's
    records (``recover()``: version text -> record at the snapshot's entry); without
    it (``verify()``), the error is raised.
    """

    __slots__ = (
        "_block",
        "_cache",
        "_desc",
        "_fetch",
        "_head_end",
        "_n",
        "_recover",
        "_recovered",
        "_rest",
        "_starts",
        "_texts",
        "_where",
    )

    def __init__(
        self,
        texts: list[str],
        *,
        fetch: Fetch,
        head_end: int,
        desc: Any,
        where: str,
        recover: Recover | None = None,
        rest: bytes = b"",
    ) -> None:
        n = len(texts)
        if not isinstance(desc, dict):
            raise IntegrityError(f"{where} has a damaged records description")
        block: Any = desc.get("block")
        digests, sizes = desc.get("digests"), desc.get("sizes")
        count = -(-n // block) if type(block) is int and block > 0 else -1
        if not (
            isinstance(digests, list)
            and isinstance(sizes, list)
            and len(digests) == len(sizes) == count
            and all(type(s) is int and s >= 0 for s in sizes)
        ):
            raise IntegrityError(f"{where} has a damaged records description")
        self._fetch, self._where, self._recover = fetch, where, recover
        self._texts, self._n, self._desc = texts, n, desc
        self._block: int = block
        # Block b sits at _starts[b] (each block is followed by a newline).
        self._starts = list(itertools.accumulate((s + 1 for s in sizes), initial=head_end))
        self._head_end = head_end
        self._cache: dict[int, list[bytes]] = {}  # block -> its records (checked bytes)
        self._recovered: Mapping[str, ModelVersion] | None = None
        self._rest = rest  # read with the head: blocks in it are checked when first used

    def __len__(self) -> int:
        return self._n

    def _accept(self, b: int, data: bytes, *, quiet: bool = False) -> bool:
        """Check block ``b``'s bytes against the head and keep them; False if they fail."""
        desc = self._desc
        expect = min(self._block, self._n - b * self._block)
        ok = len(data) == desc["sizes"][b] and sha256(data).hexdigest() == desc["digests"][b]
        records = data.split(b"\n") if ok else []
        if len(records) != expect or not all(records):
            if quiet:
                return False
            raise IntegrityError(
                f"{self._where} is damaged (block {b} of its records does not match the "
                "sha256 and size its head records)"
            )
        self._cache[b] = records
        return True

    def _load(self, b: int) -> None:
        start, end = self._starts[b], self._starts[b + 1] - 1
        base, rest = self._head_end, self._rest
        if end - base <= len(rest) and self._accept(b, rest[start - base : end - base], quiet=True):
            return
        self._accept(b, self._fetch(start, end))

    def _lost(self, exc: Exception) -> Mapping[str, ModelVersion]:
        """The records from the log, after block ``b`` could not be used."""
        if self._recover is None:
            raise exc
        if not isinstance(exc, FileNotFoundError):
            warnings.warn(
                f"damaged snapshot: {exc}; its records are read from the history log instead",
                stacklevel=6,
            )
        recovered = self._recover()
        self._recovered = recovered
        self._cache.clear()
        self._rest = b""
        return recovered

    def record(self, i: int) -> bytes:
        """Record ``i``'s stored JSON (checked bytes), or the log's when it was lost."""
        if self._recovered is None:
            b, j = divmod(i, self._block)
            hit = self._cache.get(b)
            if hit is None:
                try:
                    self._load(b)
                except (FileNotFoundError, IntegrityError) as exc:
                    return self._from_log(self._lost(exc), i)
                hit = self._cache[b]
            return hit[j]
        return self._from_log(self._recovered, i)

    def _from_log(self, recovered: Mapping[str, ModelVersion], i: int) -> bytes:
        mv = recovered.get(self._texts[i])
        if mv is None:
            raise IntegrityError(
                f"{self._where} lists version {self._texts[i]}, which the history does not hold"
            )
        text = json.dumps(mv.to_dict(), separators=(",", ":"), sort_keys=True, allow_nan=False)
        return text.encode()

    def _read_all(self) -> bytes:
        end = self._starts[-1]
        data = self._fetch(self._head_end, end + 1)  # one byte more: nothing may follow
        if len(data) != end - self._head_end:
            raise IntegrityError(
                f"{self._where} is damaged ({self._head_end + len(data)} bytes, its head "
                f"describes {end}: truncated or extended)"
            )
        return data

    def _split(self, data: bytes) -> None:
        base = self._head_end
        for b in range(len(self._starts) - 1):
            if b not in self._cache:
                self._accept(b, data[self._starts[b] - base : self._starts[b + 1] - 1 - base])

    def prefetch(self) -> None:
        """Every block not read yet, in one read (a writer copies every record)."""
        if self._recovered is not None or len(self._cache) == len(self._starts) - 1:
            return
        try:
            self._split(self._read_all())
        except (FileNotFoundError, IntegrityError) as exc:
            self._lost(exc)

    def check_all(self) -> None:
        """Check every block and the snapshot's length (``verify()``); IntegrityError."""
        data = self._read_all()
        self._cache.clear()
        self._split(data)


def opener(
    fetch: Fetch,
    head: bytes,
    payload: Mapping[str, Any],
    where: str,
    *,
    recover: Recover | None = None,
    rest: bytes = b"",
) -> Callable[[list[str]], Blocks]:
    """``texts -> Blocks`` for the snapshot whose (checked) head line is ``head``,
    parsed as ``payload`` (see :meth:`ModelState.from_head`)."""
    return functools.partial(
        Blocks,
        fetch=fetch,
        head_end=len(head) + 1,
        desc=payload.get("records"),
        where=where,
        recover=recover,
        rest=rest,
    )
