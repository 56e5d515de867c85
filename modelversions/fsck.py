"""Checking and repairing a whole registry: :class:`VerifyReport` and its rules.

What ``verify`` checks: every model's history replayed from its first entry (not from
snapshots), with the hash chain and each env's pointer chain; every stored snapshot
against the replay; every artifact a committed version uses, hashed; the index; the
files in ``@log/`` and ``@snapshots/`` that are not ours; the temporaries of writers.

What ``repair`` removes, and only that (provable garbage):

- temporaries older than ``min_age`` seconds whose writer is not alive (never a
  younger one);
- artifacts that no version references and older than ``min_age`` seconds (left by
  saves that died before committing), re-checked against the newest state right before
  each removal, and never while the model's history is damaged or has a gap;
- damaged snapshots (a cache the log rebuilds), never while the history is damaged.

It also adds a missing index entry. It never removes a history entry, an artifact a
committed version uses, nor a stray file it did not write. A symbolic link below a local
registry's folder is reported as a ``symlink`` problem, and then nothing else is checked
or repaired. An artifact found missing is checked again against the model's newest
state: a ``prune`` or ``delete`` committed meanwhile is not reported.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from typing import Any

from modelversions import _lazy, _moves, _state, signing
from modelversions._commit import Log
from modelversions._state import ModelState
from modelversions._util import storage
from modelversions.errors import IntegrityError, SignatureError
from modelversions.records import ModelVersion

__all__ = ["VerifyProblem", "VerifyReport"]


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyProblem:
    """One problem found by :meth:`ModelRegistry.verify`.

    ``kind`` is one of ``artifact-missing``, ``artifact-damaged``, ``history-damaged``,
    ``history-gap``, ``snapshot-damaged``, ``moves-damaged`` (a moves file that differs
    from the log, see :mod:`modelversions._moves`), ``index-missing``, ``orphan-artifact``,
    ``temporary``, ``stray`` (a file in ``@log/`` or ``@snapshots/`` that is not one
    of ours: listed, never removed, harmless), ``symlink`` (a symbolic link below a local
    registry's folder: never followed; while one exists nothing else is checked or repaired),
    ``signature`` (with signing keys: an entry or snapshot that no key signed, see
    :mod:`modelversions.signing`), ``head`` (a model behind or off its pinned head).
    """

    kind: str
    name: str | None
    detail: str
    version: str | None = None

    @property
    def harmless(self) -> bool:
        """True for leftovers that damage no committed data (see VerifyReport.ok)."""
        return self.kind in VerifyReport._HARMLESS

    def __str__(self) -> str:
        where = self.name or "<registry>"
        if self.version:
            where += f" {self.version}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`ModelRegistry.verify` checked and found.

    ``ok`` is true when no problem damages committed data (orphaned leftovers of
    interrupted writes and stray files are listed in ``problems`` but do not make it
    false). A damaged snapshot does: readers may have served it.
    """

    models: int
    versions: int
    artifacts_checked: int
    problems: tuple[VerifyProblem, ...]
    removed: tuple[str, ...]

    _HARMLESS = frozenset({"orphan-artifact", "temporary", "stray", "index-missing"})

    @property
    def ok(self) -> bool:
        return all(p.harmless for p in self.problems)

    def __str__(self) -> str:
        head = (
            f"{'OK' if self.ok else 'DAMAGED'}: {self.models} models, {self.versions} versions, "
            f"{self.artifacts_checked} artifacts checked, {len(self.problems)} problems"
        )
        lines = [head, *(f"  {p}" for p in self.problems)]
        lines.extend(f"  removed {r}" for r in self.removed)
        return "\n".join(lines)


class Fsck:
    """Checks (and repairs) the registry behind ``log``; see the module docstring."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.backend = log.backend

    def verify(
        self, *, repair: bool, min_age: float, expect: Mapping[str, tuple[int, str]] | None = None
    ) -> VerifyReport:
        """Check everything; with ``repair``, remove what the module docstring lists.

        ``expect`` pins heads (model -> (seq, sha256)), with the registry's own pins.
        """
        from modelversions import serialization

        problems: list[VerifyProblem] = []
        removed: list[str] = []
        n_versions = 0
        n_artifacts = 0
        with storage("looking for symbolic links"):
            unsafe = self.backend.unsafe_entries()
        if unsafe:
            # Following one could read, write or delete outside the registry: report
            # each, touch nothing (not even with repair), check nothing else.
            for path in unsafe:
                problems.append(
                    VerifyProblem(
                        "symlink",
                        None,
                        f"{path} is a symbolic link; the registry never follows one: remove "
                        "it (or put what it points to in its place) and verify again; "
                        "nothing else was checked or repaired",
                    )
                )
            return VerifyReport(0, 0, 0, tuple(problems), ())
        with storage("listing models"):
            indexed = {
                k[len("index/") : -len("/@model")]
                for k in self.backend.list("index/")
                if k.endswith("/@model")
            }
            in_logs = [
                (k.split("/@log/")[0][len("models/") :], k)
                for k in self.backend.list("models/")
                if "/@log/" in k
            ]
        logged = {name for name, _k in in_logs}
        # A model has entries; stray files alone (reported below) make none.
        entered = {n for n, k in in_logs if _state.key_seq(k, _state.log_prefix(n))}
        for name in sorted(entered - indexed):
            problems.append(VerifyProblem("index-missing", name, "not listed by models()"))
            if repair:
                with storage("repairing the index"), suppress(FileExistsError):
                    self.backend.create(_state.index_key(name), b"{}")
                removed.append(f"added {_state.index_key(name)}")
        pins = {**(self.log.guard.pins if self.log.guard else {}), **(expect or {})}
        for name in sorted(set(pins) - logged):
            problems.append(VerifyProblem("head", name, "pinned, but the model has no history"))
        for name in sorted(logged):
            seen = _moves.Seen()
            state, log_problems = self._replay_all(name, seen)
            if state is not None and name in pins:
                why = signing.check_pin(self.backend.read, state, pins[name])
                if why is not None:
                    log_problems.append(VerifyProblem("head", name, why))
            problems.extend(log_problems)
            if state is None:
                continue
            n_versions += len(state.records)
            snap_problems, snap_removed = self._check_snapshots(
                name, state.seq, repair=repair and not log_problems
            )
            problems.extend(snap_problems)
            removed.extend(snap_removed)
            moves = [] if log_problems else _moves.check(self.log, name, seen)
            for key, why in moves:  # a cache of the log, like snapshots
                problems.append(VerifyProblem("moves-damaged", name, why))
                if repair:
                    with storage(f"removing {key}"), suppress(FileNotFoundError):
                        self.backend.delete(key)
                    removed.append(key)
            referenced = state.referenced_artifacts()
            checked: dict[str, str | None] = {}
            for mv in state.versions():
                if mv.pruned:
                    continue
                key = _state.artifact_key(name, mv.sha256)
                if mv.sha256 not in checked:
                    checked[mv.sha256] = self._check_artifact(key, mv, serialization)
                    n_artifacts += 1
                err = checked[mv.sha256]
                if err == "missing":
                    err = self._recheck_missing(name, mv, key, serialization)
                if err is not None:
                    kind = "artifact-missing" if err == "missing" else "artifact-damaged"
                    problems.append(VerifyProblem(kind, name, err, str(mv.version)))
            n_artifacts += self._check_files(name, state, problems, removed, repair, min_age)
            prefix = f"models/{name}/@artifacts/"
            with storage(f"listing artifacts of {name!r}"):
                stored = self.backend.list(prefix)
            for key in stored:
                sha = key[len(prefix) :].split(".", 1)[0]
                if sha in referenced:
                    continue
                problems.append(
                    VerifyProblem("orphan-artifact", name, f"{key} is referenced by no version")
                )
                # With a gap in the history, a version after it may use this artifact.
                if repair and not log_problems and self._older_than(key, min_age):
                    with self.log.lock:
                        fresh = self.log.refresh(name).referenced_artifacts()
                    if sha not in fresh:
                        with storage(f"removing {key}"):
                            self.backend.delete(key)
                        removed.append(key)
        with storage("cleaning temporaries"):
            leftovers = self.backend.cleanup(min_age=min_age, dry_run=not repair)
        for item in leftovers:
            problems.append(VerifyProblem("temporary", None, f"{item} left by a dead writer"))
            if repair:
                removed.append(item)
        return VerifyReport(
            models=len(logged),
            versions=n_versions,
            artifacts_checked=n_artifacts,
            problems=tuple(problems),
            removed=tuple(removed),
        )

    def _check_files(
        self,
        name: str,
        state: ModelState,
        problems: list[VerifyProblem],
        removed: list[str],
        repair: bool,
        min_age: float,
    ) -> int:
        """The files of path versions (:func:`modelversions.serializers._files.verify_files`)."""
        from modelversions.serializers._files import verify_files

        def fresh() -> list[ModelVersion]:
            with self.log.lock:
                return list(self.log.refresh(name).records.values())

        with storage(f"checking the files of {name!r}"):
            found, gone, n = verify_files(
                self.backend,
                name,
                list(state.versions()),
                repair=repair
                and not any(p.name == name and p.kind.startswith("history") for p in problems),
                older_than=lambda key: self._older_than(key, min_age),
                fresh=fresh,
            )
        problems.extend(VerifyProblem(kind, name, detail, v) for kind, detail, v in found)
        removed.extend(gone)
        return n

    def _check_snapshots(
        self, name: str, seq: int, *, repair: bool
    ) -> tuple[list[VerifyProblem], list[str]]:
        """Check every stored snapshot of ``name`` against the log replayed to ``seq``.

        A snapshot must read (every block of a layout-2 one matching its digest),
        match the sha256 of the entry it was built from, and
        equal the replay at that entry; one past ``seq`` must name an entry committed
        since. Returns the problems, and the damaged snapshots removed when ``repair``
        (a snapshot is a cache: the log rebuilds it).
        """
        problems: list[VerifyProblem] = []
        removed: list[str] = []
        prefix = _state.snapshot_prefix(name)
        with storage(f"listing snapshots of {name!r}"):
            keys = self.backend.list(prefix)
        for key in keys:
            snap_seq = _state.key_seq(key, prefix)
            if snap_seq is None:
                problems.append(VerifyProblem("stray", name, f"{key} is not a snapshot"))
                continue
            try:
                snap = self.log.read_snapshot(name, key, snap_seq, strict=True)
                if isinstance(snap.records, _lazy.LazyRecords):
                    snap.records.check_all()  # every block against its digest
                if snap.seq <= seq:  # else written after the replay, from an entry that exists
                    partial = self._replay_to(name, snap.seq)
                    if partial is not None and not partial.same_as(snap):
                        raise IntegrityError(f"{key} differs from the log")
            except FileNotFoundError:
                continue  # replaced by a newer snapshot meanwhile
            except IntegrityError as exc:
                kind = "signature" if isinstance(exc, SignatureError) else "snapshot-damaged"
                problems.append(VerifyProblem(kind, name, str(exc)))
                if repair:
                    with storage(f"removing {key}"), suppress(FileNotFoundError):
                        self.backend.delete(key)
                    removed.append(key)
        return problems, removed

    def _recheck_missing(
        self, name: str, mv: ModelVersion, key: str, serialization: Any
    ) -> str | None:
        """Check a missing artifact again against the newest state of ``name``.

        A ``prune`` or ``delete`` that committed after verify's replay removes the
        artifact legitimately: that is no problem. Returns the problem, or None.
        """
        try:
            with self.log.lock:
                now = self.log.refresh(name).records.get(mv.version)
        except IntegrityError:
            return "missing"
        if now is None or now.pruned or now.sha256 != mv.sha256:
            return None
        return self._check_artifact(key, now, serialization)

    def _older_than(self, key: str, min_age: float) -> bool:
        if min_age <= 0:
            return True
        path = self.backend.local_path(key)
        if path is None:
            return False  # age unknown: not provably garbage
        try:
            return time.time() - os.stat(path).st_mtime > min_age
        except FileNotFoundError:
            return False

    def _check_artifact(self, key: str, mv: ModelVersion, serialization: Any) -> str | None:
        try:
            with storage(f"reading {key}"), self.backend.open_read(key) as fh:
                sha, size = serialization.hash_stream(fh)
        except FileNotFoundError:
            return "missing"
        if sha != mv.sha256 or size != mv.size:
            return f"{key}: sha256 {sha} ({size} bytes), expected {mv.sha256} ({mv.size} bytes)"
        return None

    def _read_log(self, name: str) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Each entry of ``name`` from 1 on, as (key, payload, sha256 of its bytes)."""
        seq = 1
        while True:
            key = _state.log_key(name, seq)
            try:
                with storage(f"reading {key}"):
                    data = self.backend.read(key)
            except FileNotFoundError:
                return
            yield key, _state.decode(data, key), _state.entry_sha256(data)
            seq += 1

    def _replay_to(self, name: str, seq: int) -> ModelState | None:
        state = ModelState(name=name)
        try:
            for _key, payload, sha in self._read_log(name):
                if state.seq >= seq:
                    break
                state.apply(payload, sha256=sha)
        except IntegrityError:
            return None
        return state

    def _replay_all(
        self, name: str, seen: _moves.Seen
    ) -> tuple[ModelState | None, list[VerifyProblem]]:
        """Replay the whole log of ``name`` (what it saw goes to ``seen``)."""
        problems: list[VerifyProblem] = []
        state = ModelState(name=name)
        # List before replaying: entries committed meanwhile then only extend the
        # replay, and an entry listed but not replayed is a real gap.
        prefix = _state.log_prefix(name)
        with storage(f"listing the history of {name!r}"):
            listed = self.backend.list(prefix)
        last = 0
        for key in listed:
            seq = _state.key_seq(key, prefix)
            if seq is None:
                problems.append(VerifyProblem("stray", name, f"{key} is not a history entry"))
            else:
                last = max(last, seq)
        guard = self.log.guard
        tracker = None if guard is None else guard.tracker(0)
        try:
            for key, payload, sha in self._read_log(name):
                if tracker is None:
                    state.apply(payload, sha256=sha)
                else:
                    tracker.apply(state, payload, key, sha)
                seen.add(payload, sha)
            refusal = None if tracker is None else tracker.refusal()
            if refusal is not None:
                raise refusal
        except IntegrityError as exc:
            kind = "signature" if isinstance(exc, SignatureError) else "history-damaged"
            problems.append(VerifyProblem(kind, name, str(exc)))
            return None, problems
        if last > state.seq:
            problems.append(
                VerifyProblem(
                    "history-gap",
                    name,
                    f"history entry {last} is stored but only 1..{state.seq} are contiguous",
                )
            )
        return state, problems
