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
flags, ``deleted``, ``highest``...; the order as one string of versions per block,
see :class:`Texts`) plus ``records``: ``block`` (records per block,
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
import warnings
from collections.abc import Callable, Mapping, MutableSequence
from typing import Any

from modelversions._codec import canonical_json, check_seal, sha256
from modelversions._texts import Texts as Texts  # re-exported: the order's blocks
from modelversions._texts import block_text
from modelversions.errors import IntegrityError
from modelversions.records import ModelVersion

BLOCK = 64  # records per block: ~20 KB of typical records, one read and one hash each
FIRST_READ = 128 * 1024  # the first ranged read: a whole head of ~12,000-50,000 versions

Fetch = Callable[[int, int], bytes]  # bytes start..end of the snapshot (fewer at its end)
Recover = Callable[[], Mapping[str, ModelVersion]]  # version text -> record at the snapshot
BaseFetch = Callable[[int, int, int], bytes]  # bytes start..end of snapshot seq


def encode(
    head: dict[str, Any],
    chunks: list[str],
    parts: list[bytes | None],
    seal: Callable[[bytes], bytes],
    base: tuple[int, Mapping[int, tuple[int, int, str]]] | None = None,
) -> bytes:
    """Snapshot bytes of ``head`` (without records) and the records' JSON ``parts``; the
    versions in ``chunks`` (one string per block, stored as ``head["index"]["order"]``).

    ``base`` (a seq, and block -> offset, size and sha256 there) names blocks left in
    an older snapshot (see :mod:`modelversions._snapwrite`): their parts are None and
    their bytes are not written again. ``seal`` turns the head's canonical JSON into
    its stored bytes (sealed, or signed then sealed); it is given ``head`` plus the
    ``records`` description.
    """
    head["index"]["order"] = chunks
    kept = {} if base is None else base[1]
    digests: list[str] = []
    sizes: list[int] = []
    own: list[bytes] = []
    for b, i in enumerate(range(0, len(parts), BLOCK)):
        where = kept.get(b)
        if where is None:
            data = b"\n".join(p for p in parts[i : i + BLOCK] if p is not None)
            own.append(data)
            digests.append(sha256(data).hexdigest())
            sizes.append(len(data))
        else:
            sizes.append(where[1])
            digests.append(where[2])
    head["records"] = {"block": BLOCK, "digests": digests, "sizes": sizes}
    if base is not None:
        at = [kept[b][0] if b in kept else None for b in range(len(digests))]
        head["records"]["base"] = {"seq": base[0], "at": at}
    return b"\n".join([seal(canonical_json(head)), *own, b""])


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
    block's verified bytes. A block the head places in its base (``records.base``: an
    older snapshot ``seq``, the block's offset there) is read with ``base_fetch(seq,
    start, end)`` and checked against this head's digest like any other. A block that
    is gone or damaged, when ``recover`` is given, is replaced by the log's records
    (``recover()``: version text -> record at the snapshot's entry); without it
    (``verify()``), the error is raised.
    """

    __slots__ = (
        "_at",
        "_base_fetch",
        "_block",
        "_cache",
        "_desc",
        "_end",
        "_fetch",
        "_head_end",
        "_n",
        "_recover",
        "_recovered",
        "_rest",
        "_seq",
        "_spans",
        "_texts",
        "_where",
        "base_seq",
    )

    def __init__(
        self,
        texts: MutableSequence[str],
        *,
        fetch: Fetch,
        head_end: int,
        desc: Any,
        where: str,
        recover: Recover | None = None,
        rest: bytes = b"",
        seq: int | None = None,
        base_fetch: BaseFetch | None = None,
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
        self._at, self.base_seq = _base_of(desc, count, seq, where)
        self._fetch, self._base_fetch, self._where = fetch, base_fetch, where
        self._recover, self._seq = recover, seq
        self._texts, self._n, self._desc = texts, n, desc
        self._block: int = block
        # Block b's bytes: in the base at its offset, or this snapshot's own blocks in
        # order after the head (each followed by a newline) up to _end, its length.
        self._spans: list[tuple[int, int]] = []
        pos = head_end
        for size, at in zip(sizes, self._at, strict=True):
            if at is None:
                self._spans.append((pos, pos + size))
                pos += size + 1
            else:
                self._spans.append((at, at + size))
        self._head_end, self._end = head_end, pos
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

    def _from_base(self, start: int, end: int) -> bytes:
        if self._base_fetch is None or self.base_seq is None:
            raise FileNotFoundError(f"{self._where}: its base snapshot cannot be read here")
        return self._base_fetch(self.base_seq, start, end)

    def _load(self, b: int) -> None:
        start, end = self._spans[b]
        if self._at[b] is not None:
            self._accept(b, self._from_base(start, end))
            return
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
        return canonical_json(mv.to_dict())

    def _read_all(self) -> dict[int, bytes]:
        """Every block's bytes: this snapshot's own in one read (its length checked: nothing
        may follow), those in the base in one more."""
        head_end, end = self._head_end, self._end
        data = self._fetch(head_end, end + 1)  # one byte more: nothing may follow
        if len(data) != end - head_end:
            raise IntegrityError(
                f"{self._where} is damaged ({head_end + len(data)} bytes, its head "
                f"describes {end}: truncated or extended)"
            )
        out = {}
        based = [b for b, at in enumerate(self._at) if at is not None]
        if based:
            low = min(self._spans[b][0] for b in based)
            high = max(self._spans[b][1] for b in based)
            far = self._from_base(low, high)
            for b in based:
                start, stop = self._spans[b]
                out[b] = far[start - low : stop - low]
        for b, at in enumerate(self._at):
            if at is None:
                start, stop = self._spans[b]
                out[b] = data[start - head_end : stop - head_end]
        return out

    def _split(self, blocks: dict[int, bytes]) -> None:
        for b, data in sorted(blocks.items()):
            if b not in self._cache:
                self._accept(b, data)

    def prefetch(self) -> None:
        """Every block not read yet, in one read (a writer copies every record)."""
        if self._recovered is not None or len(self._cache) == len(self._spans):
            return
        try:
            self._split(self._read_all())
        except (FileNotFoundError, IntegrityError) as exc:
            self._lost(exc)

    def check_all(self) -> None:
        """Check every block and the snapshot's length (``verify()``); IntegrityError."""
        try:
            blocks = self._read_all()
        except FileNotFoundError:
            if self.base_seq is None:
                raise  # the snapshot itself: removed meanwhile
            raise IntegrityError(
                f"{self._where} keeps blocks in snapshot {self.base_seq}, which is missing"
            ) from None
        self._cache.clear()
        self._split(blocks)

    # -- what a writer of the next snapshot asks (see modelversions._snapwrite) ------
    @property
    def seq(self) -> int | None:
        """The entry this snapshot holds the state at (None: not read from a store)."""
        return self._seq

    def shareable(self) -> bool:
        """Whether a new snapshot may leave blocks where this one keeps them."""
        return self._seq is not None and self._recovered is None

    def located(self, b: int) -> tuple[int, int, str] | None:
        """Block ``b``'s offset, size and sha256 in the base a new snapshot would use
        (this snapshot, or its base), or None for a block of its own when it has a base."""
        desc = self._desc
        at = self._at[b]
        if at is None and self.base_seq is not None:
            return None
        return self._spans[b][0], desc["sizes"][b], desc["digests"][b]

    def chunk(self, b: int) -> str:
        """The versions of whole block ``b`` as the head stores them (one string)."""
        return block_text(self._texts, b, self._block)


def _base_of(
    desc: dict[str, Any], count: int, seq: int | None, where: str
) -> tuple[list[Any], int | None]:
    """The base offset of each block (None: stored here) and the base's seq."""
    base = desc.get("base")
    if base is None:
        return [None] * count, None
    bseq = base.get("seq") if isinstance(base, dict) else None
    at = base.get("at") if isinstance(base, dict) else None
    if not (
        type(bseq) is int
        and bseq > 0
        and (seq is None or bseq < seq)
        and isinstance(at, list)
        and len(at) == count
        and all(a is None or (type(a) is int and a >= 0) for a in at)
    ):
        raise IntegrityError(f"{where} has a damaged records description (its base)")
    return at, bseq


def base_seq(head: Mapping[str, Any]) -> int | None:
    """The seq of the snapshot whose blocks a layout-2 ``head`` uses, if any (unchecked:
    a writer asks which older snapshots to keep)."""
    desc = head.get("records")
    base = desc.get("base") if isinstance(desc, dict) else None
    seq = base.get("seq") if isinstance(base, dict) else None
    return seq if type(seq) is int else None


def opener(
    fetch: Fetch,
    head: bytes,
    payload: Mapping[str, Any],
    where: str,
    *,
    recover: Recover | None = None,
    rest: bytes = b"",
    seq: int | None = None,
    base_fetch: BaseFetch | None = None,
) -> Callable[[MutableSequence[str]], Blocks]:
    """``texts -> Blocks`` for the snapshot (of entry ``seq``) whose checked head line is
    ``head``, parsed as ``payload`` (see :meth:`ModelState.from_head`)."""
    return functools.partial(
        Blocks,
        fetch=fetch,
        head_end=len(head) + 1,
        desc=payload.get("records"),
        where=where,
        recover=recover,
        rest=rest,
        seq=seq,
        base_fetch=base_fetch,
    )
