"""ModelRegistry: the lifecycle rules (save, deploy, rollback, ...) over a backend.

Every change is one event appended to the model's history log with an atomic
create-if-absent of ``@log/<seq>``: the writer that creates entry ``N+1`` is the
one that saw entries ``1..N``, so the log is a compare-and-swap on the model's
whole state. Losers re-read and retry. There are no locks and no mutable objects
in storage; a crash at any point leaves either the whole change or none of it.
See ``docs/concepts.md`` for the rules and ``docs/backends.md`` for the storage
contract.
"""

from __future__ import annotations

import dataclasses
import getpass
import math
import os
import random
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from typing import Any

from modelversions import _state, _values
from modelversions._names import check_env, check_name
from modelversions._state import ModelState
from modelversions.backends import Backend, open_backend
from modelversions.errors import (
    ArtifactPrunedError,
    ConcurrentUpdateError,
    DeployCheckFailedError,
    ForbiddenTransitionError,
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    ModelVersionsError,
    NoRollbackTargetError,
    StorageError,
    VersionExistsError,
    VersionNotFoundError,
)
from modelversions.records import Event, ModelVersion, Status, _ts
from modelversions.version import Version

__all__ = ["ModelRegistry", "VerifyProblem", "VerifyReport"]

#: A deploy check: called with the loaded model; raising or returning False fails it.
Check = Callable[[Any], Any]

_BUMPS = ("major", "minor", "patch")
# A snapshot caches a model's state so a new registry replays at most a few entries.
# Its cost grows with the number of versions, its benefit with the entries it saves:
# small models snapshot every 16 entries, models with many versions every 64. Both are
# powers of two and depend only on the state at that entry, so every writer agrees.
_SNAPSHOT_EVERY = 16
_SNAPSHOT_EVERY_LARGE = 64
_LARGE_MODEL = 1024


def _snapshot_due(state: ModelState) -> bool:
    every = _SNAPSHOT_EVERY_LARGE if len(state.records) >= _LARGE_MODEL else _SNAPSHOT_EVERY
    return state.seq % every == 0


# Marks a cached history entry written before the hash chain (it has no "prev").
_UNCHAINED = object()

_SMALL_ARTIFACT = 64 * 1024 * 1024
_VERIFIED_MEMO = 4096


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors when no user database entry exists
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json_mapping(value: Mapping[str, Any] | None, what: str) -> Mapping[str, Any]:
    """A deep, read-only, JSON-normalized copy (see ``modelversions._values``)."""
    return _values.normalize(value, what)


def _text(value: object, what: str) -> None:
    """Refuse a text argument that is neither a ``str`` nor ``None``."""
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str or None, not {type(value).__name__}")


def _flag(value: object, what: str) -> None:
    """Refuse a flag that is not a ``bool`` (``force="no"`` would otherwise be true)."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be True or False, not {value!r}")


def _callable_check(check: object, what: str = "check") -> None:
    if check is not None and not callable(check):
        raise InvalidInputError(f"{what} must be callable, not {type(check).__name__}")


@contextmanager
def _storage(what: str) -> Iterator[None]:
    """Translate backend OSErrors into StorageError (FileNotFound/Exists pass through)."""
    try:
        yield
    except (FileNotFoundError, FileExistsError, ModelVersionsError):
        raise
    except OSError as exc:
        raise StorageError(f"storage failed while {what}: {exc}") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyProblem:
    """One problem found by :meth:`ModelRegistry.verify`.

    ``kind`` is one of ``artifact-missing``, ``artifact-damaged``, ``history-damaged``,
    ``history-gap``, ``snapshot-damaged``, ``index-missing``, ``orphan-artifact``,
    ``temporary``, ``stray`` (a file in ``@log/`` or ``@snapshots/`` that is not one
    of ours: listed, never removed, harmless), ``symlink`` (a symbolic link below a local
    registry's folder: never followed; while one exists nothing else is checked or repaired).
    """

    kind: str
    name: str | None
    detail: str
    version: str | None = None

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
        return not any(p.kind not in self._HARMLESS for p in self.problems)

    def __str__(self) -> str:
        head = (
            f"{'OK' if self.ok else 'DAMAGED'}: {self.models} models, {self.versions} versions, "
            f"{self.artifacts_checked} artifacts checked, {len(self.problems)} problems"
        )
        lines = [head, *(f"  {p}" for p in self.problems)]
        lines.extend(f"  removed {r}" for r in self.removed)
        return "\n".join(lines)


class ModelRegistry:
    """Versioned models with one-call rollback, stored in a folder, memory or a bucket.

    Args:
        location: a folder path (created if missing), ``"memory://"``, an fsspec URL
            such as ``"s3://bucket/prefix"``, or a :class:`~modelversions.backends.Backend`.
        storage_options: passed to the backend (e.g. S3 credentials, endpoint).
        user: recorded in history (default: the login name).
        checks: a default deploy check per model name (see :meth:`deploy`).
        cache_dir: a local read cache for remote artifacts (content-addressed by sha256,
            kept in the subfolder ``<cache_dir>/modelversions/``: nothing else is
            touched); ignored for local folders.
        cache_size: the read cache's bound in bytes.
        max_retries: how many times a change is retried when other writers commit first.

    >>> reg = ModelRegistry("memory://")
    >>> reg.save("churn", {"w": 1}).version
    <Version('1.0.0')>
    >>> _ = reg.deploy("churn", "1.0.0")
    >>> reg.current("churn").version
    <Version('1.0.0')>
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Backend,
        *,
        storage_options: Mapping[str, Any] | None = None,
        user: str | None = None,
        checks: Mapping[str, Check] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_size: int = 2 * 1024**3,
        max_retries: int = 200,
    ) -> None:
        _text(user, "user")
        if checks is not None and not isinstance(checks, Mapping):
            raise InvalidInputError(f"checks must be a mapping, not {type(checks).__name__}")
        for check_of in (checks or {}).values():
            _callable_check(check_of, "a check in checks")
        for number, what, least in ((cache_size, "cache_size", 0), (max_retries, "max_retries", 1)):
            if not isinstance(number, int) or isinstance(number, bool) or number < least:
                raise InvalidInputError(f"{what} must be an int >= {least}, not {number!r}")
        with _storage("opening the registry"):
            self._backend = open_backend(location, **dict(storage_options or {}))
        self._user = user or _user()
        self._host = socket.gethostname()
        self._lock = threading.RLock()
        self._states: dict[str, ModelState] = {}
        # Per model: seq -> (event, sha256 of the entry's bytes, its "prev" or _UNCHAINED).
        self._events: dict[str, dict[int, tuple[Event, str, object]]] = {}
        self._checks: dict[str, Check] = {}
        for name, check in (checks or {}).items():
            self.set_check(name, check)
        self._verified: dict[str, tuple[int, int, int, int, str]] = {}
        self._cache = None
        if cache_dir is not None and self._backend.local_path.__func__ is Backend.local_path:  # type: ignore[attr-defined]
            from modelversions._cache import ReadCache

            self._cache = ReadCache(cache_dir, max_bytes=cache_size)
        self._max_retries = max_retries

    @property
    def backend(self) -> Backend:
        """The storage backend this registry uses."""
        return self._backend

    def __repr__(self) -> str:
        return f"ModelRegistry({self._backend.url!r})"

    def close(self) -> None:
        """Release the backend's resources."""
        self._backend.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state reading
    def _load_snapshot(self, name: str) -> ModelState:
        """The newest snapshot of ``name`` that checks out, else the empty state.

        A snapshot is used only if its checksum holds, it names this model and the seq
        of its key, and the history entry it was built from exists with the sha256 it
        records (one small read). Any other is ignored with a warning and the next
        older one (or the log from entry 1) is used: a snapshot is a cache of the log.
        """
        prefix = _state.snapshot_prefix(name)
        with _storage(f"listing snapshots of {name!r}"):
            keys = self._backend.list(prefix)
        for key in reversed(keys):
            seq = _state.key_seq(key, prefix)
            if seq is None:
                continue  # a stray file, not a snapshot (verify() lists it)
            try:
                with _storage(f"reading {key}"):
                    data = self._backend.read(key)
                snapshot = ModelState.from_snapshot(_state.decode(data, key), name)
                self._check_snapshot_head(snapshot, key, seq)
            except FileNotFoundError:
                continue  # removed by a newer snapshot's writer; try the next
            except IntegrityError as exc:
                warnings.warn(f"ignoring damaged snapshot: {exc}", stacklevel=3)
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
            with _storage(f"reading {entry}"):
                data = self._backend.read(entry)
        except FileNotFoundError:
            raise IntegrityError(
                f"{key} was built from history entry {seq}, which does not exist"
            ) from None
        sha = _state.entry_sha256(data)
        if state.head_sha256 is None and "prev" in _state.decode(data, entry):
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

    def _refresh(self, name: str) -> ModelState:
        """Bring the cached state of ``name`` up to the newest committed event."""
        state = self._states.get(name)
        first = state is None
        if state is None:
            state = self._load_snapshot(name)
        while True:
            key = _state.log_key(name, state.seq + 1)
            try:
                with _storage(f"reading {key}"):
                    data = self._backend.read(key)
            except FileNotFoundError:
                if first and self._gap_after(name, state.seq):
                    continue  # a writer committed the missing entry meanwhile: read on
                break
            state.apply(_state.decode(data, key), sha256=_state.entry_sha256(data))
        if first:  # cached only once whole: a damaged history is refused on every read
            self._states[name] = state
        return state

    def _gap_after(self, name: str, seq: int) -> bool:
        """Entry ``seq + 1`` was not found: raise IntegrityError if ``seq + 2`` exists.

        One probe, on a model's first read: catches a deleted entry (verify() finds
        every gap). Returns True if entry ``seq + 1`` appeared since (no gap).
        """
        with _storage(f"reading the history of {name!r}"):
            if not self._backend.exists(_state.log_key(name, seq + 2)):
                return False
            if self._backend.exists(_state.log_key(name, seq + 1)):
                return True  # both were committed after the first read
        raise IntegrityError(
            f"history entry {_state.log_key(name, seq + 1)} is missing but a later one "
            f"exists: the history of model {name!r} has a gap (run verify())"
        )

    def _existing(self, name: str) -> ModelState:
        check_name(name)
        with self._lock:
            state = self._refresh(name)
        if state.seq == 0:
            raise ModelNotFoundError(self._not_found_message(name))
        return state

    def _not_found_message(self, name: str) -> str:
        try:
            known = self.models()
        except ModelVersionsError:
            known = []
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        return f"no model {name!r} in {self._backend.url}; models: {shown or '(none)'}"

    @staticmethod
    def _get(state: ModelState, version: str | Version) -> ModelVersion:
        v = Version(version)
        mv = state.records.get(v)
        if mv is None:
            have = [str(x) for x in state.order]
            shown = ", ".join(have[-20:])
            more = f" (and {len(have) - 20} older)" if len(have) > 20 else ""
            raise VersionNotFoundError(
                f"model {state.name!r} has no version {v}; versions: {shown}{more}"
            )
        return mv

    # ------------------------------------------------------------------ committing
    def _next_event(
        self,
        name: str,
        build: Callable[[ModelState], dict[str, Any]],
        *,
        new_model: bool = False,
    ) -> tuple[dict[str, Any], ModelState]:
        """The next event of ``name``, built from its newest state (caller holds the lock).

        Unless ``new_model``, a model without history raises ModelNotFoundError.
        """
        state = self._refresh(name)
        if state.seq == 0 and not new_model:
            raise ModelNotFoundError(self._not_found_message(name))
        payload = build(state)
        payload.update(
            schema=_state.SCHEMA,
            seq=state.seq + 1,
            time=_ts(_now()),
            name=name,
            user=self._user,
            host=self._host,
        )
        return payload, state

    def _commit(
        self,
        name: str,
        build: Callable[[ModelState], dict[str, Any]],
        *,
        new_model: bool = False,
    ) -> tuple[dict[str, Any], ModelState]:
        """Append one event computed by ``build`` from the newest state; retry on races."""
        delay = 0.0005
        for _attempt in range(self._max_retries):
            with self._lock:
                payload, state = self._next_event(name, build, new_model=new_model)
                if state.seq == 0 or state.head_sha256 is not None:
                    payload["prev"] = state.head_sha256  # chains this entry to the last
                seq = payload["seq"]
                key = _state.log_key(name, seq)
                data = _state.encode(payload)
                try:
                    self._backend.create(key, data)
                except FileExistsError:
                    pass  # another writer committed entry `seq` first: re-read and retry
                except OSError as exc:
                    raise StorageError(self._commit_failed(key, data, exc)) from exc
                else:
                    state.apply(payload, sha256=_state.entry_sha256(data))
                    if _snapshot_due(state):
                        self._write_snapshot(state)
                    return payload, state
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.05)
        raise ConcurrentUpdateError(
            f"gave up changing model {name!r} after {self._max_retries} attempts: other "
            "writers kept committing first; nothing was changed by this call"
        )

    def _commit_failed(self, key: str, data: bytes, exc: OSError) -> str:
        try:
            landed = self._backend.read(key) == data
        except FileNotFoundError:
            landed = False
        except OSError as again:
            return (
                f"could not write {key}: {exc}; reading it back failed too ({again}), so the "
                "change may have been published: check history() before retrying"
            )
        if landed:
            return (
                f"the change was published as {key} but the storage then failed ({exc}); "
                "it is visible to readers, its durability is not confirmed"
            )
        return f"could not write {key}: {exc}; nothing was changed"

    def _write_snapshot(self, state: ModelState) -> None:
        key = _state.snapshot_key(state.name, state.seq)
        try:
            self._backend.create(key, state.encode_snapshot())
        except FileExistsError:
            pass
        except OSError as exc:
            warnings.warn(f"could not write snapshot {key} (a cache only): {exc}", stacklevel=4)
            return
        try:
            prefix = _state.snapshot_prefix(state.name)
            ours = [k for k in self._backend.list(prefix) if _state.key_seq(k, prefix)]
            for old in ours[:-2]:
                self._backend.delete(old)
        except OSError as exc:
            warnings.warn(f"could not remove old snapshots: {exc}", stacklevel=4)

    def _event(self, payload: Mapping[str, Any]) -> Event:
        return _state.event_from_payload(payload)

    # ------------------------------------------------------------------ saving
    def save(
        self,
        name: str,
        model: Any,
        version: str | Version | None = None,
        *,
        bump: str = "minor",
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new ``candidate`` version and return its record.

        Args:
            name: the model name (``"churn"``, ``"team/churn"``).
            model: any object joblib can pickle.
            version: the version; by default ``1.0.0`` for a new model, else the highest
                version ever saved (deleted ones included) bumped by ``bump``.
            bump: ``"major"``, ``"minor"`` (default) or ``"patch"``.
            metrics: a mapping kept with the version, stored as a deep JSON-normalized
                copy (str keys; numpy scalars become Python numbers; NaN and infinities
                are kept; see ``docs/concepts.md``).
            params: a mapping, stored like ``metrics``.
            tags: a mapping, stored like ``metrics``.
            description: free text (a str).

        Raises:
            InvalidNameError, InvalidVersionError, InvalidInputError: bad arguments,
                including a value that cannot be stored (named by its path) and a bump
                past the version limits (checked before anything is written).
            VersionExistsError: an equal version exists (build metadata aside), or
                existed and was deleted (version numbers are never reused).

        The artifact is written and made durable first; the version appears in one
        atomic commit afterwards, so no reader ever sees it without its artifact.

        >>> reg = ModelRegistry("memory://")
        >>> mv = reg.save("churn", [1, 2, 3], metrics={"auc": 0.91})
        >>> str(mv.version), mv.status.value, mv.metrics["auc"]
        ('1.0.0', 'candidate', 0.91)
        >>> str(reg.save("churn", [1, 2, 4]).version)
        '1.1.0'
        """
        check_name(name)
        if not isinstance(bump, str) or bump not in _BUMPS:
            raise InvalidInputError(f"bump must be one of {', '.join(_BUMPS)}, not {bump!r}")
        explicit = None if version is None else Version(version)
        _text(description, "description")
        record_meta = {
            "metrics": _json_mapping(metrics, "metrics"),
            "params": _json_mapping(params, "params"),
            "tags": _json_mapping(tags, "tags"),
            "description": description,
        }
        with self._lock:
            state = self._refresh(name)
            # Check (and for an automatic version, compute) the version before the
            # artifact is written: a refusal then leaves nothing behind. The commit
            # checks again against the newest state.
            self._new_version(state, explicit, bump)
            is_new = state.seq == 0
        sha256, size, created = self._write_artifact(name, model)
        if is_new:
            with _storage(f"registering model {name!r}"), suppress(FileExistsError):
                self._backend.create(_state.index_key(name), b"{}")
        created_at = _now()

        def build(state: ModelState) -> dict[str, Any]:
            v = self._new_version(state, explicit, bump)
            record = ModelVersion(
                name=name,
                version=v,
                status=Status.CANDIDATE,
                created_at=created_at,
                sha256=sha256,
                size=size,
                **record_meta,  # type: ignore[arg-type]
            ).to_dict()
            return {"action": "save", "version": str(v), "record": record}

        payload, state = self._commit(name, build, new_model=True)
        if not created:
            self._ensure_artifact(name, model, sha256)
        return state.records[Version(payload["version"])]

    @classmethod
    def _new_version(cls, state: ModelState, explicit: Version | None, bump: str) -> Version:
        """The version a save would get now; raise if ``explicit`` is or was used.

        Version numbers are never reused: an automatic version is the highest version
        ever saved (deleted ones included) bumped by ``bump``.

        Raises:
            VersionExistsError: ``explicit`` exists, or existed and was deleted.
            InvalidVersionError: the bump would exceed ``Version``'s limits.
        """
        if explicit is not None:
            if explicit in state.records:
                raise cls._exists_error(state, explicit)
            when = state.deleted.get(explicit)
            if when is not None:
                raise VersionExistsError(
                    f"model {state.name!r} had version {explicit}; it was deleted at {when} "
                    f"and version numbers are never reused (highest ever saved: {state.highest})"
                )
            return explicit
        top = state.highest
        if state.order and (top is None or state.order[-1] > top):
            top = state.order[-1]
        return Version("1.0.0") if top is None else top.bump(bump)

    @staticmethod
    def _exists_error(state: ModelState, v: Version) -> VersionExistsError:
        have = state.records[v]
        same = "" if str(have.version) == str(v) else f" (stored as {have.version})"
        return VersionExistsError(
            f"model {state.name!r} already has version {v}{same}, status {have.status.value}; "
            f"the highest is {state.order[-1]}"
        )

    def _write_artifact(self, name: str, model: Any) -> tuple[str, int, bool]:
        """Store the artifact; return its sha256, size and whether it was new."""
        from modelversions.serialization import dump_model

        what = f"writing an artifact of {name!r}"
        try:
            with _storage(what):
                blob = self._backend.open_blob()
                try:
                    sha256, size = dump_model(model, blob)
                    created = blob.commit(_state.artifact_key(name, sha256))
                except BaseException:
                    blob.abort()
                    raise
        except (FileNotFoundError, FileExistsError) as exc:
            # e.g. its temporary removed under it: nothing was stored, say so as a
            # StorageError (VersionExistsError and the like are not OSErrors here).
            if isinstance(exc, ModelVersionsError):
                raise
            raise StorageError(f"storage failed while {what}: {exc}; nothing was saved") from exc
        return sha256, size, created

    def _ensure_artifact(self, name: str, model: Any, sha256: str) -> None:
        """After a save that reused a stored artifact: make sure it is still there.

        A concurrent ``prune``/``delete`` may have removed the reused artifact between
        this save finding it and committing its record; write it again then.
        """
        key = _state.artifact_key(name, sha256)
        with _storage(f"checking {key}"):
            if self._backend.exists(key):
                return
        again, _size, _created = self._write_artifact(name, model)
        if again != sha256:
            raise IntegrityError(
                f"the artifact {key} was removed by a concurrent prune while this save "
                f"committed, and serializing the model again gave different bytes "
                f"({again}); save the model again"
            )

    # ------------------------------------------------------------------ reading
    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("b", 1); _ = reg.save("a/x", 2)
        >>> reg.models()
        ['a/x', 'b']
        """
        with _storage("listing models"):
            keys = self._backend.list("index/")
        names = [k[len("index/") : -len("/@model")] for k in keys if k.endswith("/@model")]
        out = []
        for name in names:
            with _storage(f"checking model {name!r}"):
                if (name in self._states and self._states[name].seq > 0) or self._backend.exists(
                    _state.log_key(name, 1)
                ):
                    out.append(name)
        return sorted(out)

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of ``name``, ascending by :class:`Version` (pruned ones included).

        Raises:
            ModelNotFoundError: no such model.
        """
        state = self._existing(name)
        with self._lock:
            return state.versions()

    def get(self, name: str, version: str | Version) -> ModelVersion:
        """The record of one version.

        Raises:
            ModelNotFoundError, VersionNotFoundError: it does not exist.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> reg.get("m", "v1").status.value
        'candidate'
        """
        state = self._existing(name)
        with self._lock:
            return self._get(state, version)

    def current(self, name: str, *, env: str = "production") -> ModelVersion | None:
        """The version deployed in ``env``, or ``None`` when nothing is deployed there.

        Raises:
            ModelNotFoundError: no such model.
        """
        check_env(env)
        state = self._existing(name)
        with self._lock:
            v = state.pointers.get(env)
            return None if v is None else state.records[v]

    def envs(self, name: str) -> dict[str, ModelVersion]:
        """Each env that has a version deployed, with that version.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> _ = reg.deploy("m", "1.0.0", env="staging")
        >>> {env: str(mv.version) for env, mv in reg.envs("m").items()}
        {'staging': '1.0.0'}
        """
        state = self._existing(name)
        with self._lock:
            return {env: state.records[v] for env, v in sorted(state.pointers.items())}

    def history(self, name: str, *, env: str | None = None, start: int = 1) -> list[Event]:
        """Every event of ``name``, oldest first; with ``env``, only that env's events.

        ``start`` skips the events before that ``seq`` without reading them (e.g. to
        follow a history: pass the last ``seq`` seen plus one).

        Every entry from ``start`` on is read (once per registry object) and checked:
        its checksum, and the hash chain (each entry's ``prev`` is the sha256 of the
        entry before it), so a missing, truncated or replaced entry raises even where
        reads that start from a snapshot do not look.

        Raises:
            ModelNotFoundError: no such model.
            IntegrityError: an entry is missing, damaged or breaks the hash chain.
        """
        if env is not None:
            check_env(env)
        if not isinstance(start, int) or isinstance(start, bool) or start < 1:
            raise InvalidInputError(f"start must be a positive int, not {start!r}")
        state = self._existing(name)
        with self._lock:
            events = self._events.setdefault(name, {})
            out = []
            # The sha256 of the entry before `seq`, when known (None before entry 1).
            before = events[start - 1][1] if start - 1 in events else None
            for seq in range(start, state.seq + 1):
                key = _state.log_key(name, seq)
                cached = events.get(seq)
                if cached is None:
                    with _storage(f"reading {key}"):
                        try:
                            data = self._backend.read(key)
                        except FileNotFoundError as exc:
                            raise IntegrityError(f"history entry {key} is missing") from exc
                    payload = _state.decode(data, key)
                    prev = payload.get("prev", _UNCHAINED)
                    cached = (self._event(payload), _state.entry_sha256(data), prev)
                event, sha, prev = cached
                if prev is not _UNCHAINED and (seq == 1 or before is not None) and prev != before:
                    raise IntegrityError(
                        f"history entry {_state.log_key(name, seq - 1)} was replaced or "
                        f"damaged: {key} records its sha256 as {prev}, it is {before} "
                        "(broken hash chain; run verify())"
                    )
                events[seq] = cached
                before = sha
                out.append(event)
            if start <= state.seq and state.head_sha256 is not None and before != state.head_sha256:
                raise IntegrityError(
                    f"history entry {_state.log_key(name, state.seq)} has sha256 {before}, "
                    f"not the {state.head_sha256} this registry's state was built from"
                )
        if env is not None:
            out = [e for e in out if e.env == env]
        return out

    def rollback_target(self, name: str, *, env: str = "production") -> ModelVersion:
        """The version :meth:`rollback` would deploy now, without changing anything.

        Raises:
            NoRollbackTargetError: nothing deployed, or no stable version below it.
        """
        check_env(env)
        state = self._existing(name)
        with self._lock:
            return self._rollback_target(state, env)

    @staticmethod
    def _rollback_target(state: ModelState, env: str) -> ModelVersion:
        current = state.pointers.get(env)
        if current is None:
            raise NoRollbackTargetError(
                f"cannot roll back model {state.name!r} in {env!r}: nothing is deployed there"
            )
        target = state.rollback_target(current)
        if target is None:
            below = state.below(current)
            listing = ", ".join(
                f"{mv.version} {mv.status.value}{' pruned' if mv.pruned else ''}"
                for mv in below[-20:]
            )
            raise NoRollbackTargetError(
                f"cannot roll back model {state.name!r} in {env!r} from {current}: no stable "
                f"version below it (below: {listing or 'none'})"
            )
        return target

    # ------------------------------------------------------------------ lifecycle
    def deploy(
        self,
        name: str,
        version: str | Version,
        *,
        env: str = "production",
        reason: str | None = None,
        force: bool = False,
        check: Check | None = None,
    ) -> ModelVersion:
        """Point ``env`` at ``version``; the replaced version, unless failed, becomes stable.

        Args:
            env: the environment (default ``production``).
            reason: recorded in history.
            force: allow deploying a ``failed`` version.
            check: a guard called as ``check(model)`` with the loaded model after the
                pointer moved (default: the registry's check for ``name``, if any). If it
                raises or returns ``False``, the replaced version is put back at once, the
                new one is marked failed with the check's message, and
                :class:`DeployCheckFailedError` is raised.

        Raises:
            VersionNotFoundError: no such version.
            ForbiddenTransitionError: the version is failed and ``force`` is not set.
            ArtifactPrunedError: the version's artifact was pruned.
            DeployCheckFailedError: the check failed; the replaced version is back.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", 1); _ = reg.save("m", 2)
        >>> _ = reg.deploy("m", "1.0.0"); _ = reg.deploy("m", "1.1.0")
        >>> reg.get("m", "1.0.0").status.value
        'stable'
        """
        check_env(env)
        check_name(name)
        target = Version(version)
        _text(reason, "reason")
        _flag(force, "force")
        _callable_check(check)
        build = self._deploy_builder(name, target, env=env, reason=reason, force=force)
        payload, state = self._commit(name, build)
        deployed = state.records[Version(payload["version"])]
        guard = check if check is not None else self._checks.get(name)
        if guard is not None:
            self._run_check(name, env, guard, deployed, payload.get("from_version"))
        return deployed

    def plan_deploy(
        self,
        name: str,
        version: str | Version,
        *,
        env: str = "production",
        reason: str | None = None,
        force: bool = False,
    ) -> Event:
        """The event :meth:`deploy` would commit now, without changing anything (a dry run).

        The deploy's rules run on the newest state, so a deploy they refuse raises the
        error :meth:`deploy` would raise. ``seq`` and ``time`` are those the event would
        get if committed now. No deploy check is run.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", 1); _ = reg.save("m", 2); _ = reg.deploy("m", "1.0.0")
        >>> print(reg.plan_deploy("m", "1.1.0").changes[0])
        1.0.0 candidate->stable
        """
        check_env(env)
        check_name(name)
        target = Version(version)
        _text(reason, "reason")
        _flag(force, "force")
        return self._plan(
            name, self._deploy_builder(name, target, env=env, reason=reason, force=force)
        )

    def _plan(self, name: str, build: Callable[[ModelState], dict[str, Any]]) -> Event:
        """The event ``build`` makes from the newest state, not committed."""
        with self._lock:
            payload, _state_now = self._next_event(name, build)
        return self._event(payload)

    def _deploy_builder(
        self, name: str, target: Version, *, env: str, reason: str | None, force: bool
    ) -> Callable[[ModelState], dict[str, Any]]:
        def build(state: ModelState) -> dict[str, Any]:
            mv = self._get(state, target)
            if mv.pruned:
                raise ArtifactPrunedError(
                    f"cannot deploy {name} {mv.version}: its artifact was pruned"
                )
            if mv.status is Status.FAILED and not force:
                raise ForbiddenTransitionError(
                    f"cannot deploy {name} {mv.version}: it is failed "
                    f"({mv.failure_reason or 'no reason given'}); pass force=True to deploy it"
                )
            before = state.pointers.get(env)
            changes = []
            if before is not None and before != mv.version:
                replaced = state.records[before]
                if replaced.status is Status.CANDIDATE:
                    changes.append({"version": str(before), "from": "candidate", "to": "stable"})
            return {
                "action": "deploy",
                "version": str(mv.version),
                "env": env,
                "from_version": None if before is None else str(before),
                "to_version": str(mv.version),
                "changes": changes,
                "reason": reason,
                "forced": bool(force and mv.status is Status.FAILED),
            }

        return build

    def _run_check(
        self, name: str, env: str, guard: Check, deployed: ModelVersion, before: str | None
    ) -> None:
        try:
            model = self.load(name, deployed.version)
        except ModelVersionsError as exc:
            message: str | None = f"loading the model failed: {exc}"
        else:
            try:
                result = guard(model)
                message = None if result is not False else "the check returned False"
            except Exception as exc:  # the check is user code: any failure fails the deploy
                message = f"the check raised {type(exc).__name__}: {exc}"
        if message is None:
            return
        new = str(deployed.version)
        moved: list[Version | None] = []

        def build(state: ModelState) -> dict[str, Any]:
            changes = []
            old = state.records[deployed.version].status
            changes.append(
                {"version": new, "from": old.value, "to": "failed", "reason": message, "env": env}
            )
            moved[:] = []
            if state.pointers.get(env) != deployed.version:
                # Someone else moved the pointer since: only record the failure.
                moved.append(state.pointers.get(env))
                return {
                    "action": "mark_failed",
                    "version": new,
                    "env": env,
                    "changes": changes,
                    "reason": f"deploy check failed: {message}",
                }
            return {
                "action": "rollback",
                "version": before,
                "env": env,
                "from_version": new,
                "to_version": before,
                "changes": changes,
                "reason": f"deploy check failed: {message}",
            }

        self._commit(name, build)
        # Say what the env runs now, in the state the commit produced.
        now: str | None
        if moved:
            now = None if moved[0] is None else str(moved[0])
            outcome = (
                f"{new} is marked failed; {env!r} was changed meanwhile "
                f"(to {now or 'nothing'}) and left as is"
            )
            restored = None
        elif before == new:
            now, restored = new, None
            outcome = (
                f"{new} is marked failed and, as it was already deployed there and there is "
                f"nothing to restore, it is still deployed in {env!r}: roll back or deploy "
                "another version to replace it"
            )
        elif before:
            now = restored = before
            outcome = f"{new} is marked failed and {before} is deployed again"
        else:
            now = restored = None
            outcome = (
                f"{new} is marked failed and, as nothing was deployed there before, "
                f"nothing is deployed now in {env!r}"
            )
        raise DeployCheckFailedError(
            f"deploy of {name} {new} to {env!r} failed its check ({message}); {outcome}",
            name=name,
            version=new,
            restored=restored,
            deployed=now,
        )

    def set_check(self, name: str, check: Check | None) -> None:
        """Set (or with ``None`` remove) the default deploy check of model ``name``."""
        check_name(name)
        if check is None:
            self._checks.pop(name, None)
        elif not callable(check):
            raise InvalidInputError(f"a check must be callable, not {type(check).__name__}")
        else:
            self._checks[name] = check

    def promote(
        self,
        name: str,
        *,
        from_env: str = "staging",
        to_env: str = "production",
        reason: str | None = None,
        force: bool = False,
        check: Check | None = None,
    ) -> ModelVersion:
        """Deploy to ``to_env`` the version ``from_env`` runs now.

        Raises:
            NotFoundError: nothing is deployed in ``from_env``.
        """
        check_env(from_env)
        check_env(to_env)
        _text(reason, "reason")
        _flag(force, "force")
        _callable_check(check)
        mv = self.current(name, env=from_env)
        if mv is None:
            raise VersionNotFoundError(
                f"cannot promote model {name!r}: nothing is deployed in {from_env!r}"
            )
        return self.deploy(
            name,
            mv.version,
            env=to_env,
            force=force,
            check=check,
            reason=reason or f"promoted from {from_env}",
        )

    def rollback(
        self, name: str, *, env: str = "production", reason: str | None = None
    ) -> ModelVersion:
        """Deploy the latest stable version below the deployed one; mark that one failed.

        Returns:
            the version now deployed.

        Raises:
            NoRollbackTargetError: nothing deployed, or no stable version below it
                (the message lists the versions below and their statuses); nothing changes.

        >>> reg = ModelRegistry("memory://")
        >>> for i in range(3): _ = reg.save("m", i)
        >>> for v in ("1.0.0", "1.1.0", "1.2.0"): _ = reg.deploy("m", v)
        >>> str(reg.rollback("m", reason="bad auc").version)
        '1.1.0'
        >>> reg.get("m", "1.2.0").failure_reason
        'bad auc'
        """
        check_env(env)
        check_name(name)
        _text(reason, "reason")
        payload, state = self._commit(name, self._rollback_builder(env=env, reason=reason))
        return state.records[Version(payload["version"])]

    def plan_rollback(
        self, name: str, *, env: str = "production", reason: str | None = None
    ) -> Event:
        """The event :meth:`rollback` would commit now, without changing anything.

        Raises:
            NoRollbackTargetError: as :meth:`rollback` would.

        >>> reg = ModelRegistry("memory://")
        >>> for i in range(2): _ = reg.save("m", i)
        >>> for v in ("1.0.0", "1.1.0"): _ = reg.deploy("m", v)
        >>> e = reg.plan_rollback("m"); str(e.to_version), str(e.changes[0])
        ('1.0.0', '1.1.0 candidate->failed')
        """
        check_env(env)
        check_name(name)
        _text(reason, "reason")
        return self._plan(name, self._rollback_builder(env=env, reason=reason))

    def _rollback_builder(
        self, *, env: str, reason: str | None
    ) -> Callable[[ModelState], dict[str, Any]]:
        def build(state: ModelState) -> dict[str, Any]:
            target = self._rollback_target(state, env)
            current = state.records[state.pointers[env]]
            changes = []
            if current.status is not Status.FAILED:
                changes.append(
                    {
                        "version": str(current.version),
                        "from": current.status.value,
                        "to": "failed",
                        "reason": reason or f"rolled back in {env}",
                        "env": env,
                    }
                )
            return {
                "action": "rollback",
                "version": str(target.version),
                "env": env,
                "from_version": str(current.version),
                "to_version": str(target.version),
                "changes": changes,
                "reason": reason,
            }

        return build

    def mark_failed(
        self, name: str, version: str | Version, *, reason: str, env: str | None = None
    ) -> ModelVersion:
        """Mark a version failed; no pointer moves (a deployed one keeps serving).

        Args:
            reason: why (required, recorded on the version and in history).
            env: where it failed, if env-specific.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("mark_failed needs a reason (a non-empty str)")
        if env is not None:
            check_env(env)
        target = Version(version)
        check_name(name)

        def build(state: ModelState) -> dict[str, Any]:
            mv = self._get(state, target)
            change = {
                "version": str(mv.version),
                "from": mv.status.value,
                "to": "failed",
                "reason": reason,
                "env": env,
            }
            return {
                "action": "mark_failed",
                "version": str(mv.version),
                "env": env,
                "changes": [change],
                "reason": reason,
            }

        payload, state = self._commit(name, build)
        return state.records[Version(payload["version"])]

    def mark_stable(
        self, name: str, version: str | Version, *, reason: str | None = None
    ) -> ModelVersion:
        """Mark a version stable (a rollback target), overriding a failure."""
        target = Version(version)
        check_name(name)
        _text(reason, "reason")

        def build(state: ModelState) -> dict[str, Any]:
            mv = self._get(state, target)
            change = {"version": str(mv.version), "from": mv.status.value, "to": "stable"}
            return {
                "action": "mark_stable",
                "version": str(mv.version),
                "changes": [change],
                "reason": reason,
            }

        payload, state = self._commit(name, build)
        return state.records[Version(payload["version"])]

    # ------------------------------------------------------------------ retention
    def prune(
        self, name: str, *, keep: int, reason: str | None = None, dry_run: bool = False
    ) -> list[ModelVersion]:
        """Delete the artifacts of versions older than the newest ``keep``.

        Never prunes a deployed version or a version some env would roll back to.
        Records and history stay; the versions are flagged ``pruned``. Artifacts shared
        with kept versions (same sha256) stay too. With ``dry_run=True`` nothing is
        changed and the versions that would be pruned now are returned.

        Returns:
            the versions pruned by this call (or that would be, for a dry run).
        """
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise InvalidInputError(f"keep must be a non-negative int, not {keep!r}")
        check_name(name)
        _text(reason, "reason")
        _flag(dry_run, "dry_run")

        def victims(state: ModelState) -> list[Version]:
            protected = state.protected()
            old = state.order[: max(len(state.order) - keep, 0)]
            return [v for v in old if v not in protected and not state.records[v].pruned]

        if dry_run:
            with self._lock:
                state = self._refresh(name)
                return [state.records[v] for v in victims(state)]

        def build(state: ModelState) -> dict[str, Any]:
            pruned = [str(v) for v in victims(state)]
            return {"action": "prune", "version": None, "pruned": pruned, "reason": reason}

        payload, state = self._commit(name, build)
        with self._lock:
            shas = {mv.sha256 for mv in state.records.values() if mv.pruned}
        self._collect_artifacts(name, shas)
        return [state.records[Version(v)] for v in payload["pruned"]]

    def delete(self, name: str, version: str | Version, *, reason: str | None = None) -> None:
        """Remove a version (record and, if unshared, artifact); history keeps its events.

        Its version number stays used: a later ``save`` never gives it out again, and an
        explicit ``save`` of it raises :class:`VersionExistsError`.

        Raises:
            ForbiddenTransitionError: the version is deployed in some env.
        """
        target = Version(version)
        check_name(name)
        _text(reason, "reason")
        deleted_sha: list[str] = []

        def build(state: ModelState) -> dict[str, Any]:
            mv = self._get(state, target)
            envs = sorted(e for e, v in state.pointers.items() if v == mv.version)
            if envs:
                raise ForbiddenTransitionError(
                    f"cannot delete {name} {mv.version}: it is deployed in {', '.join(envs)}"
                )
            deleted_sha[:] = [mv.sha256]
            return {"action": "delete", "version": str(mv.version), "reason": reason}

        self._commit(name, build)
        self._collect_artifacts(name, deleted_sha)

    def _collect_artifacts(self, name: str, candidates: Iterable[str]) -> None:
        """Delete the artifacts among ``candidates`` (sha256s) no unpruned version uses.

        Only artifacts of pruned or deleted versions are candidates: an artifact that no
        committed version references may belong to a save still in flight (its record
        is committed after its artifact), so it is left to ``verify(repair=True)``.
        """
        for sha in sorted(set(candidates)):
            # Re-read right before each delete: a save committed meanwhile may reuse it.
            with self._lock:
                if sha in self._refresh(name).referenced_artifacts():
                    continue
            with _storage(f"collecting artifacts of {name!r}"):
                self._backend.delete(_state.artifact_key(name, sha))

    # ------------------------------------------------------------------ loading
    def load(
        self,
        name: str,
        version: str | Version | None = None,
        *,
        env: str = "production",
        mmap_mode: str | None = None,
    ) -> Any:
        """Load a model: ``version``, or by default the one deployed in ``env``.

        The artifact's sha256 is checked before anything is unpickled, and the file
        that was hashed is the file that is unpickled (one open descriptor; a symlink
        in the artifact's place is refused). On a local folder or through the read
        cache, ``mmap_mode="r"`` (read-only) or ``"c"`` (copy-on-write) memory-maps
        numpy arrays from that same open file; a memory map trusts the file's bytes
        after the check (see docs/concepts.md).

        Raises:
            InvalidInputError: ``mmap_mode`` is not ``None``, ``"r"`` or ``"c"``
                (checked before anything is read).
            ModelNotFoundError, VersionNotFoundError: nothing to load (including
                nothing deployed in ``env``).
            ArtifactPrunedError: the version's artifact was pruned (also when a
                ``prune`` or ``delete`` removed it while this load was reading).
            IntegrityError: the stored bytes do not match their checksum, or are missing.
            StorageError: the artifact's place holds a symlink or not a regular file.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", {"w": 3}); _ = reg.deploy("m", "1.0.0")
        >>> reg.load("m")
        {'w': 3}
        """
        from modelversions import serialization

        serialization.check_mmap_mode(mmap_mode)
        check_env(env)
        state = self._existing(name)
        with self._lock:
            if version is None:
                v = state.pointers.get(env)
                if v is None:
                    raise VersionNotFoundError(
                        f"nothing is deployed in {env!r} for model {name!r}; pass a version "
                        f"or deploy one (versions: {', '.join(str(x) for x in state.order[-10:])})"
                    )
                mv = state.records[v]
            else:
                mv = self._get(state, version)
        return self._load_artifact(mv, mmap_mode=mmap_mode)

    def _load_artifact(self, mv: ModelVersion, *, mmap_mode: str | None = None) -> Any:
        from modelversions import serialization

        if mv.pruned:
            raise ArtifactPrunedError(
                f"{mv.name} {mv.version} was pruned: its record and history remain, "
                "its artifact was deleted"
            )
        key = _state.artifact_key(mv.name, mv.sha256)
        what = f"the artifact of {mv.name} {mv.version} ({key})"
        try:
            with _storage(f"reading {what}"):
                path = self._backend.local_path(key)
                if path is not None:
                    return self._load_local(path, mv, what, mmap_mode)
                if self._cache is not None:
                    # An open file whose bytes were verified: eviction or a swap of the
                    # cached path after this point cannot change what is unpickled.
                    with self._cache.fetch(self._backend, key, mv.sha256, mv.size, what) as fh:
                        return serialization.load_model_file(
                            fh,
                            sha256=mv.sha256,
                            size=mv.size,
                            what=what,
                            verified=True,
                            mmap_mode=mmap_mode,
                        )
                if mv.size <= _SMALL_ARTIFACT:
                    data = self._backend.read(key)
                    return serialization.load_model_bytes(
                        data, sha256=mv.sha256, size=mv.size, what=what
                    )
                return self._load_spooled(key, mv, what)
        except FileNotFoundError as exc:
            # A prune or delete may have removed it after this load resolved the record:
            # ask the newest state before calling it damage.
            with self._lock:
                now = self._refresh(mv.name).records.get(mv.version)
            if now is None or now.pruned or now.sha256 != mv.sha256:
                gone = "deleted" if now is None else "pruned"
                raise ArtifactPrunedError(
                    f"{mv.name} {mv.version} was {gone} while it was being loaded: "
                    "its artifact is gone"
                ) from exc
            raise IntegrityError(f"{what} is missing from storage") from exc

    def _load_local(self, path: str, mv: ModelVersion, what: str, mmap_mode: str | None) -> Any:
        """Open ``path`` once; hash (unless this very file was verified) and load through it."""
        from modelversions import serialization

        fh, st = serialization.open_verifiable(path, what)
        with fh:
            # The memo is keyed by the identity of the open descriptor (fstat), never by
            # a second look at the path, which may name another file by now.
            sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, mv.sha256)
            verified = self._verified.get(path) == sig
            model = serialization.load_model_file(
                fh,
                sha256=mv.sha256,
                size=mv.size,
                what=what,
                mmap_mode=mmap_mode,
                verified=verified,
            )
        if not verified:
            if len(self._verified) >= _VERIFIED_MEMO:
                self._verified.clear()
            self._verified[path] = sig
        return model

    def _load_spooled(self, key: str, mv: ModelVersion, what: str) -> Any:
        import joblib

        from modelversions import serialization

        with tempfile.TemporaryFile() as spool:
            with self._backend.open_read(key) as src:
                sha, size = serialization.hash_stream(src, spool)
            serialization._check(what, mv.sha256, sha, mv.size, size)
            spool.seek(0)
            return joblib.load(spool)

    # ------------------------------------------------------------------ verify
    def verify(self, *, repair: bool = False, min_age: float = 3600.0) -> VerifyReport:
        """Check the whole registry and report what is damaged.

        Replays every model's history from the first entry (not from snapshots),
        checks each env's pointer chain, compares the newest snapshot with the replay,
        and hashes every artifact. With ``repair=True`` it removes only provable
        garbage: temporaries older than ``min_age`` seconds whose writer is not alive
        (never a younger one), unreferenced artifacts older than ``min_age`` seconds (left
        by saves that died before committing), and damaged snapshots (a cache the log
        rebuilds). It never removes anything a committed version uses, nor a stray file it
        did not write. A symbolic link below a local registry's folder is reported as a
        ``symlink`` problem, and then nothing else is checked or repaired.

        An artifact found missing is checked again against the model's newest state:
        a ``prune`` or ``delete`` committed meanwhile is not reported.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> reg.verify().ok
        True
        """
        from modelversions import serialization

        _flag(repair, "repair")
        if (
            isinstance(min_age, bool)
            or not isinstance(min_age, (int, float))
            or not math.isfinite(min_age)
            or min_age < 0
        ):
            raise InvalidInputError(
                f"min_age must be a finite, non-negative number of seconds, not {min_age!r}"
            )
        problems: list[VerifyProblem] = []
        removed: list[str] = []
        n_versions = 0
        n_artifacts = 0
        with _storage("looking for symbolic links"):
            unsafe = self._backend.unsafe_entries()
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
        with _storage("listing models"):
            indexed = {
                k[len("index/") : -len("/@model")]
                for k in self._backend.list("index/")
                if k.endswith("/@model")
            }
            in_logs = [
                (k.split("/@log/")[0][len("models/") :], k)
                for k in self._backend.list("models/")
                if "/@log/" in k
            ]
        logged = {name for name, _k in in_logs}
        # A model has entries; stray files alone (reported below) make none.
        entered = {n for n, k in in_logs if _state.key_seq(k, _state.log_prefix(n))}
        for name in sorted(entered - indexed):
            problems.append(VerifyProblem("index-missing", name, "not listed by models()"))
            if repair:
                with _storage("repairing the index"), suppress(FileExistsError):
                    self._backend.create(_state.index_key(name), b"{}")
                removed.append(f"added {_state.index_key(name)}")
        for name in sorted(logged):
            state, log_problems = self._replay_all(name)
            problems.extend(log_problems)
            if state is None:
                continue
            n_versions += len(state.records)
            snap_problems, snap_removed = self._check_snapshots(
                name, state.seq, repair=repair and not log_problems
            )
            problems.extend(snap_problems)
            removed.extend(snap_removed)
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
            prefix = f"models/{name}/@artifacts/"
            with _storage(f"listing artifacts of {name!r}"):
                stored = self._backend.list(prefix)
            for key in stored:
                sha = key[len(prefix) :].split(".", 1)[0]
                if sha in referenced:
                    continue
                problems.append(
                    VerifyProblem("orphan-artifact", name, f"{key} is referenced by no version")
                )
                # With a gap in the history, a version after it may use this artifact.
                if repair and not log_problems and self._older_than(key, min_age):
                    with self._lock:
                        fresh = self._refresh(name).referenced_artifacts()
                    if sha not in fresh:
                        with _storage(f"removing {key}"):
                            self._backend.delete(key)
                        removed.append(key)
        with _storage("cleaning temporaries"):
            leftovers = self._backend.cleanup(min_age=min_age, dry_run=not repair)
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

    def _check_snapshots(
        self, name: str, seq: int, *, repair: bool
    ) -> tuple[list[VerifyProblem], list[str]]:
        """Check every stored snapshot of ``name`` against the log replayed to ``seq``.

        A snapshot must read, match the sha256 of the entry it was built from, and
        equal the replay at that entry; one past ``seq`` must name an entry committed
        since. Returns the problems, and the damaged snapshots removed when ``repair``
        (a snapshot is a cache: the log rebuilds it).
        """
        problems: list[VerifyProblem] = []
        removed: list[str] = []
        prefix = _state.snapshot_prefix(name)
        with _storage(f"listing snapshots of {name!r}"):
            keys = self._backend.list(prefix)
        for key in keys:
            snap_seq = _state.key_seq(key, prefix)
            if snap_seq is None:
                problems.append(VerifyProblem("stray", name, f"{key} is not a snapshot"))
                continue
            try:
                with _storage(f"reading {key}"):
                    data = self._backend.read(key)
                snap = ModelState.from_snapshot(_state.decode(data, key), name)
                self._check_snapshot_head(snap, key, snap_seq)
                if snap.seq <= seq:  # else written after the replay, from an entry that exists
                    partial = self._replay_to(name, snap.seq)
                    if partial is not None and not partial.same_as(snap):
                        raise IntegrityError(f"{key} differs from the log")
            except FileNotFoundError:
                continue  # replaced by a newer snapshot meanwhile
            except IntegrityError as exc:
                problems.append(VerifyProblem("snapshot-damaged", name, str(exc)))
                if repair:
                    with _storage(f"removing {key}"), suppress(FileNotFoundError):
                        self._backend.delete(key)
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
            with self._lock:
                now = self._refresh(name).records.get(mv.version)
        except IntegrityError:
            return "missing"
        if now is None or now.pruned or now.sha256 != mv.sha256:
            return None
        return self._check_artifact(key, now, serialization)

    def _older_than(self, key: str, min_age: float) -> bool:
        if min_age <= 0:
            return True
        path = self._backend.local_path(key)
        if path is None:
            return False  # age unknown: not provably garbage
        try:
            return time.time() - os.stat(path).st_mtime > min_age
        except FileNotFoundError:
            return False

    def _check_artifact(self, key: str, mv: ModelVersion, serialization: Any) -> str | None:
        try:
            with _storage(f"reading {key}"), self._backend.open_read(key) as fh:
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
                with _storage(f"reading {key}"):
                    data = self._backend.read(key)
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

    def _replay_all(self, name: str) -> tuple[ModelState | None, list[VerifyProblem]]:
        problems: list[VerifyProblem] = []
        state = ModelState(name=name)
        # List before replaying: entries committed meanwhile then only extend the
        # replay, and an entry listed but not replayed is a real gap.
        prefix = _state.log_prefix(name)
        with _storage(f"listing the history of {name!r}"):
            listed = self._backend.list(prefix)
        last = 0
        for key in listed:
            seq = _state.key_seq(key, prefix)
            if seq is None:
                problems.append(VerifyProblem("stray", name, f"{key} is not a history entry"))
            else:
                last = max(last, seq)
        try:
            for _key, payload, sha in self._read_log(name):
                state.apply(payload, sha256=sha)
        except IntegrityError as exc:
            problems.append(VerifyProblem("history-damaged", name, str(exc)))
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
