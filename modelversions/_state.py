"""A model's state, derived from its history log by applying events in order.

The log is the truth: event ``N`` is created (atomically, create-if-absent) only by a
writer that saw events ``1..N-1``. Applying an event never re-derives a rule; the
event carries the changes it made (the status changes, the pointer move), so replay
reproduces exactly what was committed.

The log is also a hash chain: entry ``N`` records as ``prev`` the sha256 of the exact
stored bytes of entry ``N-1`` (:func:`entry_sha256`; ``null`` for entry 1), and a
snapshot records as ``head_sha256`` that hash of the entry it was built from. Entries
and snapshots written before the chain lack the fields and are not checked.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Mapping, MutableMapping, MutableSequence
from typing import TYPE_CHECKING, Any

from modelversions import _blocks, _lazy, _snapwrite

# The stored layout, re-exported: callers write ``_state.log_key``, ``_state.encode``.
from modelversions._codec import (
    POINTER_ACTIONS,
    SCHEMA,
    artifact_key,
    check_seal,
    decode,
    encode,
    entry_sha256,
    index_key,
    key_seq,
    log_key,
    log_prefix,
    seal,
    snapshot_key,
    snapshot_prefix,
    unseal,
)
from modelversions._version_list import VersionList
from modelversions.errors import IntegrityError
from modelversions.records import (
    ModelVersion,
    Status,
    _opt_text,
    _parse_status,
    _parse_ts,
    _parse_version,
    _replace,
    event_from_payload,
)
from modelversions.version import Version

if TYPE_CHECKING:  # a dataclass to type checkers; built without dataclasses (see _record)
    from dataclasses import dataclass as record
    from dataclasses import field
    from datetime import datetime
else:
    from modelversions._record import field, record

__all__ = [
    "POINTER_ACTIONS",
    "SCHEMA",
    "ModelState",
    "artifact_key",
    "check_seal",
    "decode",
    "encode",
    "entry_sha256",
    "event_from_payload",
    "index_key",
    "key_seq",
    "log_key",
    "log_prefix",
    "replay",
    "seal",
    "snapshot_key",
    "snapshot_prefix",
    "unseal",
]


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


@record()
class ModelState:
    """Versions, statuses and env pointers of one model as of event ``seq``."""

    name: str
    seq: int = 0
    records: dict[Version, ModelVersion] = field(default_factory=dict)
    order: list[Version] = field(default_factory=list)
    pointers: dict[str, Version] = field(default_factory=dict)
    last_time: datetime | None = None
    # sha256 of the stored bytes of entry ``seq`` (see entry_sha256); None when unknown.
    head_sha256: str | None = None
    # Entry ``seq`` records a ``prev``: every later entry must too (once chained, a log
    # stays chained, so stripping ``prev`` from the newest entries is caught).
    chained: bool = field(default=False, repr=False, compare=False)
    # Version numbers are never reused: versions deleted (-> the delete's time) and the
    # highest version ever saved, deleted or not.
    deleted: dict[Version, str] = field(default_factory=dict)
    highest: Version | None = None
    # Built from a snapshot written before `deleted`/`highest` were kept (they may be
    # incomplete): readers replay the log instead (see modelversions._commit.Log).
    legacy: bool = field(default=False, repr=False, compare=False)
    # JSON of each record as last written to a snapshot: records are immutable, so one
    # that is still the same object need not be encoded again (see encode_snapshot).
    _fragments: dict[Version, tuple[ModelVersion, bytes]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # The layout of the snapshot this state last stored (the next one may leave blocks
    # there: see modelversions._snapwrite.Written), the one being written (with the seq
    # of its base), and the versions touched since (-> whether they moved others:
    # inserted or deleted).
    _written: Any = field(default=None, repr=False, compare=False)
    _pending: Any = field(default=None, repr=False, compare=False)
    _touched: dict[Version, bool] | None = field(default=None, repr=False, compare=False)
    # Version strings already parsed: an entry names versions its model already has.
    _parsed: dict[str, Version] = field(default_factory=dict, repr=False, compare=False)

    # -- queries -------------------------------------------------------------------
    def versions(self) -> VersionList:
        """The versions, ascending; a lazy state's records are built when first read."""
        if isinstance(self.records, _lazy.LazyRecords):
            return VersionList._over(_lazy.Listing(self.records, self.order))
        return VersionList(self.records[v] for v in self.order)

    def rollback_target(self, current: Version) -> ModelVersion | None:
        """The latest stable, unpruned version strictly below ``current``."""
        i = bisect.bisect_left(self.order, current)
        lazy = self.records if isinstance(self.records, _lazy.LazyRecords) else None
        while i > 0:
            i -= 1
            v = self.order[i]
            if lazy is not None:  # statuses from the index: build only the target
                status, pruned = lazy.peek(v)
                if status is Status.STABLE and not pruned:
                    return lazy[v]
                continue
            mv = self.records[v]
            if mv.status is Status.STABLE and not mv.pruned:
                return mv
        return None

    def below(self, current: Version) -> list[ModelVersion]:
        i = bisect.bisect_left(self.order, current)
        return [self.records[v] for v in self.order[:i]]

    def protected(self) -> set[Version]:
        """Versions prune and delete must keep: deployed ones and each env's rollback target."""
        keep = set(self.pointers.values())
        for current in self.pointers.values():
            target = self.rollback_target(current)
            if target is not None:
                keep.add(target.version)
        return keep

    def referenced_artifacts(self) -> set[str]:
        return {mv.sha256 for mv in self.records.values() if not mv.pruned}

    # -- applying events -----------------------------------------------------------
    def _version(self, text: Any) -> Version:
        v = self._parsed.get(text) if isinstance(text, str) else None
        if v is None:
            v = _parse_version(text)
            self._parsed[text] = v
        return v

    def _require(self, text: str, where: str) -> Version:
        v = self._version(text)
        if v not in self.records:
            raise IntegrityError(f"{where} names version {text} which does not exist")
        return v

    def apply(self, payload: Mapping[str, Any], *, sha256: str | None = None) -> None:
        """Apply one log entry; raise IntegrityError (changing nothing) if it does not fit.

        ``sha256`` is :func:`entry_sha256` of the entry's stored bytes: it becomes
        ``head_sha256``, which the next entry's ``prev`` must equal.
        """
        where = f"history entry {payload.get('seq')} of model {self.name!r}"
        try:
            self._apply(payload, where)
        except IntegrityError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{where} is damaged: {exc!r}") from exc
        self.head_sha256 = sha256
        self.chained = "prev" in payload

    def check_prev(self, payload: Mapping[str, Any], where: str) -> None:
        """Entry ``seq + 1`` must record the hash of entry ``seq`` as its ``prev``.

        Entries written before the chain existed have no ``prev`` and are not checked
        (the next entry that has one still pins their bytes); nor is an entry whose
        predecessor's hash is unknown (``head_sha256`` None past entry 0). An entry
        without ``prev`` after a chained one is refused: the chain was stripped.
        """
        if "prev" not in payload:
            if self.chained:
                raise IntegrityError(
                    f"{where} records no sha256 of entry {self.seq}, which is chained: "
                    "an entry stripped of its hash (broken hash chain)"
                )
            return
        prev = payload["prev"]
        if self.seq == 0:
            if prev is not None:
                raise IntegrityError(f"{where} is the first entry but records a previous one")
            return
        if self.head_sha256 is not None and prev != self.head_sha256:
            raise IntegrityError(
                f"{where} records {prev!r} as the sha256 of entry {self.seq}, which hashes "
                f"to {self.head_sha256}: entry {self.seq} was replaced or the history "
                "rewritten (broken hash chain)"
            )

    def _apply(self, payload: Mapping[str, Any], where: str) -> None:
        seq = int(payload["seq"])
        if seq != self.seq + 1:
            raise IntegrityError(f"{where} follows entry {self.seq}: the history has a gap")
        self.check_prev(payload, where)
        if payload.get("name") != self.name:
            raise IntegrityError(f"{where} belongs to model {payload.get('name')!r}")
        action = payload["action"]
        time = _parse_ts(payload["time"])
        # Validate everything first, then mutate: a bad entry changes nothing.
        new_record: ModelVersion | None = None
        if action == "save":
            new_record = ModelVersion.from_dict(payload["record"])
            if new_record.version in self.records:
                raise IntegrityError(f"{where} saves {new_record.version} twice")
        updates: dict[Version, ModelVersion] = {}
        pending: Mapping[Version, ModelVersion] = self.records
        if new_record is not None:
            pending = _Overlay(self.records, new_record)
        for change in payload.get("changes", ()):
            v = self._version(change["version"])
            if v not in pending:
                raise IntegrityError(f"{where} changes version {v} which does not exist")
            new = _parse_status(change["to"])
            mv = updates.get(v, pending[v])
            if new is Status.FAILED:
                mv = _replace(
                    mv,
                    status=new,
                    failure_reason=_opt_text(change.get("reason")),
                    failed_env=_opt_text(change.get("env")),
                )
            else:
                mv = _replace(mv, status=new, failure_reason=None, failed_env=None)
            updates[v] = mv
        for text in payload.get("pruned", ()):
            v = self._version(text)
            if v not in pending:
                raise IntegrityError(f"{where} prunes version {v} which does not exist")
            updates[v] = _replace(updates.get(v, pending[v]), pruned=True)
        deleted: Version | None = None
        if action == "delete":
            deleted = self._require(payload["version"], where)
            if deleted in self.pointers.values():
                raise IntegrityError(f"{where} deletes deployed version {deleted}")
        pointer: tuple[str, Version | None] | None = None
        if action in POINTER_ACTIONS:
            env = str(payload["env"])
            to = payload.get("to_version")
            target = None if to is None else self._version(to)
            if target is not None and target not in pending:
                raise IntegrityError(f"{where} points {env} at {to} which does not exist")
            before = self.pointers.get(env)
            frm = payload.get("from_version")
            if (None if frm is None else self._version(frm)) != before:
                raise IntegrityError(
                    f"{where} moves {env} from {frm} but it pointed at {before}: broken chain"
                )
            pointer = (env, target)
        # Mutate.
        touched = self._touched
        if new_record is not None:
            self.records[new_record.version] = new_record
            if self.order and not self.order[-1] < new_record.version:
                bisect.insort(self.order, new_record.version)
                if touched is not None:
                    touched[new_record.version] = True
            else:  # the newest version yet, as most saves are: no bisection
                self.order.append(new_record.version)
            if self.highest is None or new_record.version > self.highest:
                self.highest = new_record.version
        self.records.update(updates)
        if touched is not None:
            for v in updates:
                touched.setdefault(v, False)
        if deleted is not None:
            del self.records[deleted]
            self.order.remove(deleted)
            self.deleted[deleted] = str(payload["time"])
            if touched is not None:
                touched[deleted] = True
        if pointer is not None:
            env, target = pointer
            if target is None:
                self.pointers.pop(env, None)
            else:
                self.pointers[env] = target
        self.seq = seq
        self.last_time = time

    # -- snapshots -----------------------------------------------------------------
    def to_snapshot(self) -> dict[str, Any]:
        """The snapshot as a JSON object, every record encoded anew (see encode_snapshot)."""
        versions = [self.records[v].to_dict() for v in self.order]
        parts = [json.dumps(d, separators=(",", ":"), sort_keys=True) for d in versions]
        flags = [_lazy.flag(self.records[v]) for v in self.order]
        texts = [str(v) for v in self.order]
        return {
            "schema": SCHEMA,
            "name": self.name,
            "seq": self.seq,
            "head_sha256": self.head_sha256,
            "index": _lazy.encode_index(texts, flags, parts),
            "versions": versions,
            "pointers": {env: str(v) for env, v in sorted(self.pointers.items())},
            **self._reuse_fields(),
        }

    def _reuse_fields(self) -> dict[str, Any]:
        """The snapshot fields that keep version numbers from being reused."""
        return {
            "deleted": {str(v): t for v, t in sorted(self.deleted.items())},
            "highest": None if self.highest is None else str(self.highest),
        }

    def encode_snapshot(
        self, *, seal: Callable[[bytes], bytes] = seal, share: bool = True
    ) -> bytes:
        """This state as a layout-2 snapshot (:mod:`modelversions._blocks`; its head
        stored by ``seal``, which ``signing`` replaces to sign it), encoding only the
        records changed since last time (the cost of re-encoding every record would
        grow with the model), and with ``share`` leaving unchanged blocks in an older
        snapshot (:mod:`modelversions._snapwrite`). Records copied from a lazily read
        snapshot come from checked blocks: damaged bytes are never sealed anew. Layout 1
        of the same state: ``encode(self.to_snapshot())``."""
        return _snapwrite.encode_state(self, seal, share)

    def snapshot_head(self, flags: str) -> dict[str, Any]:
        """A layout-2 snapshot's head without its order and records (see _blocks.encode)."""
        return {
            "schema": SCHEMA,
            "name": self.name,
            "seq": self.seq,
            "head_sha256": self.head_sha256,
            "index": {"flags": flags},
            "pointers": {env: str(v) for env, v in sorted(self.pointers.items())},
            **self._reuse_fields(),
        }

    @classmethod
    def from_snapshot(cls, payload: Mapping[str, Any], name: str) -> ModelState:
        """The state a decoded snapshot holds, every record built."""
        where = f"snapshot of model {name!r}"
        try:
            records = [ModelVersion.from_dict(d) for d in payload["versions"]]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{where} is damaged: {exc!r}") from exc
        by_version = {mv.version: mv for mv in records}
        return cls._from_head(payload, name, by_version, sorted(by_version))

    @classmethod
    def from_snapshot_bytes(cls, data: bytes, name: str, where: str) -> ModelState | None:
        """The state snapshot ``data`` holds, its records built on first access (its
        signature is the caller's to check). Layout 2: its head's seal is checked here.
        Layout 1: the caller checked the seal; parses the head and the index only (see
        :mod:`modelversions._lazy`). None without an index (use :meth:`from_snapshot`).
        """
        nl = data.find(b"\n")
        if nl >= 0 and _blocks.is_head(data[:nl]):
            head = decode(data[:nl], where, sealed=True)
            head.pop("signature", None)
            blocks = _blocks.opener(lambda a, b: data[a:b], data[:nl], head, where)
            return cls.from_head(head, name, where, blocks)
        split = _lazy.split_snapshot(data, where)
        if split is None:
            return None
        head, start = split
        head.pop("sha256", None)
        head.pop("signature", None)  # checked over the stored bytes (signing.Guard)
        if head.get("schema") != SCHEMA:
            raise IntegrityError(
                f"{where} has schema {head.get('schema')!r}; this library reads schema {SCHEMA}"
            )
        records, order = _lazy.lazy_records(data, start, head["index"], where)
        return cls._from_head(head, name, records, order)

    @classmethod
    def from_head(
        cls,
        head: Mapping[str, Any],
        name: str,
        where: str,
        blocks: Callable[[MutableSequence[str]], Any],
    ) -> ModelState:
        """The state a layout-2 snapshot's checked ``head`` describes; ``blocks(texts)``
        reads its records when first used (:class:`modelversions._blocks.Blocks`)."""
        desc = head.get("records")
        block = desc.get("block") if isinstance(desc, dict) else None
        records, order = _lazy.block_records(head.get("index"), block, blocks, where)
        return cls._from_head(head, name, records, order)

    @classmethod
    def _from_head(
        cls,
        payload: Mapping[str, Any],
        name: str,
        records: MutableMapping[Version, ModelVersion],
        order: MutableSequence[Version],
    ) -> ModelState:
        if payload.get("name") != name:
            raise IntegrityError(f"snapshot of {payload.get('name')!r} found under {name!r}")
        try:
            state = cls(name=name, seq=int(payload["seq"]))
            state.records = records  # type: ignore[assignment]
            state.order = order  # type: ignore[assignment]
            state.pointers = {env: _parse_version(v) for env, v in payload["pointers"].items()}
            head = payload.get("head_sha256")  # absent in snapshots older than the chain
            if head is not None and not (
                isinstance(head, str) and len(head) == 64 and _is_hex(head)
            ):
                raise ValueError(f"head_sha256 {head!r} is not a sha256")
            state.head_sha256 = head
            if "deleted" in payload and "highest" in payload:
                state.deleted = {_parse_version(v): str(t) for v, t in payload["deleted"].items()}
                top = payload["highest"]
                state.highest = None if top is None else _parse_version(top)
            else:  # written by an older version of this library
                state.legacy = True
                state.highest = state.order[-1] if state.order else None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"snapshot of model {name!r} is damaged: {exc!r}") from exc
        for env, v in state.pointers.items():
            if v not in state.records:
                raise IntegrityError(f"snapshot of {name!r} points {env} at missing {v}")
        return state

    def same_as(self, other: ModelState) -> bool:
        reuse = (
            self.legacy
            or other.legacy
            or (self.deleted == other.deleted and str(self.highest) == str(other.highest))
        )
        return (
            reuse
            and self.seq == other.seq
            and self.pointers == other.pointers
            and [self.records[v].to_dict() for v in self.order]
            == [other.records[v].to_dict() for v in other.order]
        )


class _Overlay(Mapping[Version, ModelVersion]):
    """``records`` plus one new record, without copying ``records``."""

    def __init__(self, records: Mapping[Version, ModelVersion], extra: ModelVersion) -> None:
        self._records = records
        self._extra = extra

    def __getitem__(self, key: Version) -> ModelVersion:
        if key == self._extra.version:
            return self._extra
        return self._records[key]

    def __contains__(self, key: object) -> bool:
        return key == self._extra.version or key in self._records

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self._records
        yield self._extra.version

    def __len__(self) -> int:
        return len(self._records) + 1


def replay(name: str, payloads: Iterable[Mapping[str, Any]]) -> ModelState:
    state = ModelState(name=name)
    for payload in payloads:
        state.apply(payload)
    return state
