"""Reading, writing and removing a model's snapshots: the :class:`Log`'s base class.

A snapshot caches a model's state at one history entry so a fresh registry replays only
the entries after it (:mod:`modelversions._blocks` stores it; :mod:`modelversions._snapwrite`
decides what a new one holds). It is a cache of the log: one that does not check out is
ignored (with a warning when damaged) and an older one, or the log from entry 1, is used.
Writers remove snapshots they superseded, never the base of one they keep. The log
(:class:`modelversions._commit.Log`) owns the backend, the guard and the states.
"""

from __future__ import annotations

import json
import warnings
from contextlib import suppress
from typing import TYPE_CHECKING

from modelversions import _blocks, _state
from modelversions._state import ModelState
from modelversions._util import storage
from modelversions.errors import IntegrityError

if TYPE_CHECKING:
    from modelversions.backends import Backend
    from modelversions.records import ModelVersion
    from modelversions.signing import Guard

# A snapshot caches a model's state so a new registry replays at most a few entries:
# one every 16 entries, whatever the model's size (a power of two depending only on the
# entry, so every writer agrees). A model with many versions stays cheap to snapshot:
# a new snapshot leaves the blocks of records unchanged since an older one there
# (its base, see modelversions._snapwrite) and writes the head and the rest.
_SNAPSHOT_EVERY = 16


class Snapshots:
    """A model's snapshots in ``backend``, checked with ``guard`` (signing keys)."""

    backend: Backend
    guard: Guard | None

    @staticmethod
    def snapshot_due(state: ModelState) -> bool:
        """Whether a writer that reached ``state`` writes a snapshot of it."""
        return state.seq % _SNAPSHOT_EVERY == 0

    def read_snapshot(self, name: str, key: str, seq: int, *, strict: bool = False) -> ModelState:
        """Snapshot ``key`` (of entry ``seq``), checked; raises IntegrityError, FileNotFound.

        A layout-2 snapshot is read head first (:mod:`modelversions._blocks`); its
        blocks are read when a record is first needed. A block that is gone or damaged
        then is replaced by the log's records at ``seq`` (``strict``, for verify:
        the error is raised when the block is read).
        """

        def fetch(start: int, end: int) -> bytes:
            with storage(f"reading {key}"):
                return self.backend.read_range(key, start, end)

        data, rest = _blocks.read_head(fetch)
        snapshot = None
        try:
            _state.check_seal(data, key)
        except IntegrityError:
            if rest is None:
                raise
            with storage(f"reading {key}"):  # one object stored with newlines
                data, rest = self.backend.read(key), None
            _state.check_seal(data, key)
        if rest is not None:  # layout 2: ``data`` is the head
            head = _state.decode(data, key, sealed=True)
            if self.guard is not None and not self.guard.snapshot_bytes_ok(data):
                self.guard.check_snapshot(head, key)
            head.pop("signature", None)
            sha = head.get("head_sha256")
            recover = None if strict else lambda: self.records_at(name, seq, key, sha)
            blocks = _blocks.opener(
                fetch,
                data,
                head,
                key,
                recover=recover,
                rest=rest,
                seq=seq,
                base_fetch=lambda at, start, end: self._read_base(name, at, start, end),
            )
            snapshot = ModelState.from_head(head, name, key, blocks)
        elif self.guard is None or self.guard.snapshot_bytes_ok(data):
            # records built on first access (see modelversions._lazy)
            snapshot = ModelState.from_snapshot_bytes(data, name, key)
        if snapshot is None:  # an older layout, or a signature to check over the whole
            payload = _state.decode(data, key, sealed=True)  # hashed once, above
            if self.guard is not None:
                self.guard.check_snapshot(payload, key)
            snapshot = ModelState.from_snapshot(payload, name)
        self._check_snapshot_head(snapshot, key, seq)
        return snapshot

    def _read_base(self, name: str, seq: int, start: int, end: int) -> bytes:
        """Bytes ``start..end`` of snapshot ``seq`` of ``name``: the blocks a newer
        snapshot keeps there (each checked against the newer one's head)."""
        key = _state.snapshot_key(name, seq)
        with storage(f"reading {key}"):
            return self.backend.read_range(key, start, end)

    def records_at(
        self, name: str, seq: int, key: str, expected: object
    ) -> dict[str, ModelVersion]:
        """The records of ``name`` at entry ``seq``: what snapshot ``key`` holds, when its
        blocks cannot be read (gone, damaged, or its base gone). Taken from an older
        snapshot that reads whole, else from entry 1, and the log replayed to ``seq``
        (signatures checked as a fresh read does). IntegrityError if the history no
        longer leads there (an entry missing, or entry ``seq``'s sha256 no longer the
        ``expected`` one the snapshot recorded)."""
        prefix = _state.snapshot_prefix(name)
        tries = 3  # older snapshots tried at most (they may share the missing base)
        with suppress(OSError):
            for older in reversed(self.backend.list(prefix)):
                at = _state.key_seq(older, prefix)
                if at is None or at >= seq or tries == 0:
                    continue
                tries -= 1
                try:
                    start = self.read_snapshot(name, older, at, strict=True)
                    return self._replay_to(start, seq, key, expected)
                except (FileNotFoundError, IntegrityError):
                    continue
        return self._replay_to(ModelState(name=name), seq, key, expected)

    def _replay_to(
        self, state: ModelState, seq: int, key: str, expected: object
    ) -> dict[str, ModelVersion]:
        tracker = None if self.guard is None else self.guard.tracker(state.seq)
        while state.seq < seq:
            entry = _state.log_key(state.name, state.seq + 1)
            try:
                with storage(f"reading {entry}"):
                    data = self.backend.read(entry)
            except FileNotFoundError:
                raise IntegrityError(f"{key} was built from {entry}, now missing") from None
            payload, sha = _state.decode(data, entry), _state.entry_sha256(data)
            if tracker is None:
                state.apply(payload, sha256=sha)
            else:
                tracker.apply(state, payload, entry, sha)
        refusal = None if tracker is None else tracker.refusal()
        if refusal is not None:
            raise refusal
        if expected is not None and state.head_sha256 != expected:
            raise IntegrityError(f"{key} was built from an entry {seq} since rewritten")
        return {str(v): state.records[v] for v in state.order}

    def _load_snapshot(self, name: str) -> ModelState:
        """The newest snapshot of ``name`` that checks out, else the empty state.

        A snapshot is used only if its checksum holds, it names this model and the seq
        of its key, and the history entry it was built from exists with the sha256 it
        records (one small read). Any other is ignored with a warning and the next
        older one (or the log from entry 1) is used: a snapshot is a cache of the log.
        """
        prefix = _state.snapshot_prefix(name)
        with storage(f"listing snapshots of {name!r}"):
            keys = self.backend.list(prefix)
        for key in reversed(keys):
            seq = _state.key_seq(key, prefix)
            if seq is None:
                continue  # a stray file, not a snapshot (verify() lists it)
            try:
                snapshot = self.read_snapshot(name, key, seq)
            except FileNotFoundError:
                continue  # removed by a newer snapshot's writer; try the next
            except IntegrityError as exc:
                warnings.warn(f"ignoring damaged snapshot: {exc}", stacklevel=5)
                continue  # a snapshot is only a cache of the log
            if snapshot.legacy:
                break  # written by an older library, without deleted versions: replay the log
            return snapshot
        return ModelState(name=name)

    def _check_snapshot_head(self, state: ModelState, key: str, seq: int) -> None:
        """Check snapshot ``key`` (read as ``state``) against the entry it was built from.

        Raises IntegrityError if its seq is not that of its key, if history entry
        ``seq`` does not exist (a snapshot past the end of the log), or if the entry's
        sha256 differs from the one the snapshot records. Sets ``state.head_sha256``
        (a snapshot older than the hash chain records none: the entry's hash is used,
        provided the entry is older than the chain too).
        """
        if state.seq != seq:
            raise IntegrityError(f"{key} holds the state at entry {state.seq}, not {seq}")
        entry = _state.log_key(state.name, seq)
        try:
            with storage(f"reading {entry}"):
                data = self.backend.read(entry)
        except FileNotFoundError:
            raise IntegrityError(
                f"{key} was built from history entry {seq}, which does not exist"
            ) from None
        sha = _state.entry_sha256(data)
        state.chained = "prev" in _state.decode(data, entry)
        if state.head_sha256 is None and state.chained:
            # Whoever wrote a chained entry writes its snapshot with the entry's hash.
            raise IntegrityError(
                f"{key} records no sha256 of entry {seq}, but that entry is chained "
                "(a snapshot stripped of its hash)"
            )
        if state.head_sha256 is not None and state.head_sha256 != sha:
            raise IntegrityError(
                f"{key} was built from an entry {seq} with sha256 {state.head_sha256}, "
                f"but {entry} has sha256 {sha}"
            )
        state.head_sha256 = sha

    def _write_snapshot(self, state: ModelState, *, keep: int = 2) -> None:
        key = _state.snapshot_key(state.name, state.seq)
        guard = self.guard

        def encode(share: bool = True) -> bytes:
            if guard is None:
                return state.encode_snapshot(share=share)
            return guard.encode_snapshot(state, share=share)

        data = encode()
        written, base = state._pending  # see modelversions._snapwrite.encode_state
        state._written = None  # until this one is stored
        try:
            if base is not None and not self.backend.exists(_state.snapshot_key(state.name, base)):
                data = encode(share=False)  # its base was removed meanwhile
                written, base = state._pending
            self.backend.create(key, data)
        except FileExistsError:
            return  # another writer's: its layout is not the one encoded
        except OSError as exc:
            warnings.warn(f"could not write snapshot {key} (a cache only): {exc}", stacklevel=4)
            return
        state._written = written
        state._touched = None if written is None else {}
        try:
            prefix = _state.snapshot_prefix(state.name)
            ours = [k for k in self.backend.list(prefix) if _state.key_seq(k, prefix)]
            bases = {base, *(self._base_of(k) for k in ours[-keep:] if k != key)}
            needed = {_state.snapshot_key(state.name, s) for s in bases if s}
            for old in ours[:-keep]:
                if old not in needed:  # the blocks of a snapshot kept may live there
                    self.backend.delete(old)
        except OSError as exc:
            warnings.warn(f"could not remove old snapshots: {exc}", stacklevel=4)

    def _base_of(self, key: str) -> int | None:
        """The seq of the snapshot whose blocks snapshot ``key`` uses (its head read, not
        checked: it only keeps a file), or None. OSError if it cannot be read (then
        nothing is removed)."""
        try:
            data, rest = _blocks.read_head(lambda a, b: self.backend.read_range(key, a, b))
            head = json.loads(data)
        except FileNotFoundError:
            return None  # removed meanwhile: it needs nothing
        except ValueError:
            return None  # not a head (an older layout, or damaged): it has no base
        return _blocks.base_seq(head) if rest is not None and isinstance(head, dict) else None
