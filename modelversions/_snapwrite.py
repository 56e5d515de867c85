"""Writing a snapshot: which blocks a new one leaves where an older one stored them.

A model is snapshotted every 16 entries, whatever its size. A layout-2 snapshot
(:mod:`modelversions._blocks`) of a model with many versions is mostly blocks of records
that have not changed since the last one, so a new snapshot may leave such blocks in an
older snapshot, its *base*: its head records each block's sha256 and size as always,
plus the block's offset in the base (``records.base``). A reader checks a block read
from the base against the new head, as any other; the head is sealed (signed with
keys), so nothing the base holds is trusted on its own. A base never has a base
itself: one hop at most. A writer keeps the base of every snapshot it keeps.

A block is left in the base when it is whole, lists the same versions at the same
place, and none of its records changed since the base was read or written:

* a state read lazily from a snapshot knows which stored records it rebuilt, replaced
  or deleted (:meth:`modelversions._lazy.LazyRecords.changed_blocks`): its base is the
  snapshot it read, or that snapshot's base (:func:`plan_lazy`);
* a state built by replaying the log (a long-lived writer) remembers the layout of the
  snapshot it last stored (:class:`Written`) and the versions touched since
  (``ModelState._touched``: saved, changed, deleted), so planning costs a few steps per
  block, not per record.

When fewer than three quarters of the blocks would be left, the snapshot is written
whole (it becomes the base of the next ones). This room decides what a snapshot holds;
:mod:`modelversions._blocks` owns how it is stored and read.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelversions import _blocks, _lazy, _texts
from modelversions._codec import canonical_json

if TYPE_CHECKING:
    from modelversions._state import ModelState
    from modelversions.records import ModelVersion
    from modelversions.version import Version

Where = tuple[int, int, str]  # a block's offset, size and sha256 in the base


class Shared:
    """Blocks a new snapshot leaves in its base, snapshot ``seq``: ``blocks`` maps a block
    to where it is there, ``meta`` to its versions (one string) and flags."""

    __slots__ = ("blocks", "meta", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.blocks: dict[int, Where] = {}
        self.meta: dict[int, tuple[str, str]] = {}

    def enough(self, total: int) -> bool:
        """Whether sharing pays: at least 8 blocks, three quarters of them left."""
        return total >= 8 and len(self.blocks) * 4 >= total * 3


def plan_lazy(lazy: _lazy.LazyRecords, texts: Sequence[str]) -> Shared | None:
    """The blocks a snapshot of a lazily read state (its versions ``texts``) leaves in
    the snapshot it read (or that one's base), or None to write it whole."""
    source = lazy.source
    if not isinstance(source, _blocks.Blocks) or not source.shareable():
        return None
    block = _blocks.BLOCK
    total = -(-len(texts) // block)
    seq = source.base_seq if source.base_seq is not None else source.seq
    assert seq is not None  # shareable() checks it
    shared = Shared(seq)
    changed = lazy.changed_blocks(block)
    for b in range(min(len(texts), len(source)) // block):
        here = source.located(b)
        if here is None or b in changed:
            continue
        chunk = source.chunk(b)
        if _texts.block_text(texts, b, block) == chunk:
            shared.blocks[b] = here
            shared.meta[b] = (chunk, lazy.flags(b * block, (b + 1) * block))
    return shared if shared.enough(total) else None


class Written:
    """The layout of the snapshot an eagerly built state last stored: per block, where
    its bytes are (None: in no base a new snapshot may use), its versions and flags,
    and its first and last version. See :meth:`plan`."""

    __slots__ = ("base", "blocks")

    def __init__(self, state: ModelState, head: Mapping[str, Any], data: bytes) -> None:
        block = _blocks.BLOCK
        desc, index = head["records"], head["index"]
        base = desc.get("base")
        at = base["at"] if base else [None] * len(desc["sizes"])
        self.base: int = base["seq"] if base else state.seq
        self.blocks: list[tuple[Where | None, str, str, Version, Version, int]] = []
        order, pos = state.order, data.index(b"\n") + 1
        for b, (size, digest, there) in enumerate(
            zip(desc["sizes"], desc["digests"], at, strict=True)
        ):
            lo = b * block
            hi = min(lo + block, len(order))
            if there is not None:
                loc: Where | None = (there, size, digest)
            else:  # its own block: usable only when this snapshot is itself the base
                loc = None if base else (pos, size, digest)
                pos += size + 1
            flags = index["flags"][lo:hi]
            self.blocks.append((loc, index["order"][b], flags, order[lo], order[hi - 1], hi - lo))

    def plan(self, state: ModelState) -> Shared | None:
        """The blocks of a new snapshot of ``state`` left where this one keeps them: those
        below every version saved out of order or deleted since (they have not moved),
        holding no version changed since. None to write it whole."""
        touched = state._touched
        if touched is None:
            return None
        moved = min((v for v, shifts in touched.items() if shifts), default=None)
        changed = sorted(v for v, shifts in touched.items() if not shifts)
        total = -(-len(state.order) // _blocks.BLOCK)
        shared = Shared(self.base)
        for b, (loc, chunk, flags, first, last, count) in enumerate(self.blocks):
            if moved is not None and not last < moved:
                break  # this block and those after it moved
            i = bisect.bisect_left(changed, first)
            if loc is None or count != _blocks.BLOCK or (i < len(changed) and changed[i] <= last):
                continue
            shared.blocks[b] = loc
            shared.meta[b] = (chunk, flags)
        return shared if shared.enough(total) else None


def encode_state(state: ModelState, seal: Callable[[bytes], bytes], share: bool) -> bytes:
    """``state`` as layout-2 snapshot bytes (see :meth:`ModelState.encode_snapshot`),
    leaving what it can in a base when ``share``; sets ``state._pending`` to the layout
    written (:class:`Written`, for an eagerly built state: the next snapshot plans from
    it once this one is stored) and the seq of the base used, if any."""
    lazy = state.records if isinstance(state.records, _lazy.LazyRecords) else None
    order = state.order
    texts = order.texts if isinstance(order, _lazy.VersionOrder) else None
    shared = None
    if share and lazy is not None:
        shared = plan_lazy(lazy, texts if texts is not None else _lazy.order_texts(order))
    elif share and state._written is not None:
        shared = state._written.plan(state)
    if lazy is not None and shared is None:
        lazy.prefetch()  # one read of the blocks, not one per block
    cached = state._fragments
    fresh: dict[Version, tuple[ModelVersion, bytes]] = {}
    chunks: list[str] = []
    parts: list[bytes | None] = []
    flags: list[str] = []
    block, n = _blocks.BLOCK, len(order)
    for b, lo in enumerate(range(0, n, block)):
        hi = min(lo + block, n)
        if shared is not None and b in shared.blocks:  # left in the base
            chunk, flag = shared.meta[b]
            chunks.append(chunk)
            flags.append(flag)
            parts += [None] * (hi - lo)
            continue
        if texts is not None:
            names = [texts[i] for i in range(lo, hi)]
        else:
            names = [str(v) for v in order[lo:hi]]
        chunks.append(_texts.pack(names))
        for i, v_text in zip(range(lo, hi), names, strict=True):
            stored = None if lazy is None else lazy.stored(v_text)
            if stored is not None:  # never rebuilt: its stored JSON, its stored flag
                parts.append(stored[0])
                flags.append(stored[1])
                continue
            v = order[i]
            mv = state.records[v]
            hit = cached.get(v)
            text = hit[1] if hit is not None and hit[0] is mv else canonical_json(mv.to_dict())
            fresh[v] = (mv, text)
            parts.append(text)
            flags.append(_lazy.flag(mv))
    state._fragments = fresh
    head = state.snapshot_head("".join(flags))
    base = None if shared is None else (shared.seq, shared.blocks)
    data = _blocks.encode(head, chunks, parts, seal, base)
    written = None if lazy is not None else Written(state, head, data)
    state._pending = (written, None if shared is None else shared.seq)
    return data
