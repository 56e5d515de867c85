"""ModelRegistry: the public facade over the registry's rooms.

It checks arguments and delegates. Its base classes hold the other public methods,
each beside its concern: deploy, promote, rollback and the marks in
:class:`modelversions._lifecycle.Lifecycle`, ``load_path`` in
:class:`modelversions._file_versions.FileVersions`, prune and delete in
:class:`modelversions.retention.Retention`, head, attest and signatures in
:class:`modelversions._trust.Trust`. The lifecycle rules are
pure functions in :mod:`modelversions._rules` (state + request -> typed event,
:mod:`modelversions._events`);
:mod:`modelversions._commit` reads each model's state from its log and appends events
with an atomic create-if-absent (a compare-and-swap on the model's whole state; no
locks, no mutable objects in storage); :mod:`modelversions._loading` verifies and loads
artifacts; :mod:`modelversions.retention` prunes and deletes; :mod:`modelversions.fsck`
verifies and repairs. See ``docs/concepts.md`` for the rules and ``docs/backends.md``
for the storage contract.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from modelversions import _moves, _rules, _values
from modelversions._commit import Log
from modelversions._file_versions import FileVersions
from modelversions._lifecycle import Check, Lifecycle
from modelversions._loading import Loader
from modelversions._names import check_env, check_name
from modelversions._progress import make_progress
from modelversions._saving import NO_MODEL, artifact_for
from modelversions._trust import Trust
from modelversions._util import (
    SIGNING_KEY_ENV,
    check_callable,
    check_flag,
    check_int,
    check_seconds,
    check_text,
    now,
    storage,
)
from modelversions.backends import Backend, open_backend
from modelversions.errors import InvalidInputError
from modelversions.records import Event, ModelVersion, VersionList
from modelversions.retention import Retention
from modelversions.version import Version

if TYPE_CHECKING:  # imported where used: a registry opened to read needs none of them
    from modelversions import signing
    from modelversions._events import SaveEvent
    from modelversions.fsck import Fsck, VerifyProblem, VerifyReport
    from modelversions.serving import OnChange, Served

__all__ = ["ModelRegistry", "VerifyProblem", "VerifyReport"]


def __getattr__(name: str) -> object:
    """``VerifyProblem`` and ``VerifyReport`` live in :mod:`modelversions.fsck`, imported
    on first use (PEP 562), like everything only ``verify`` needs."""
    if name in ("VerifyProblem", "VerifyReport"):
        from modelversions import fsck

        return getattr(fsck, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelRegistry(Lifecycle, FileVersions, Retention, Trust):
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
        allow_pickle: ``False`` refuses to unpickle: :meth:`load` of a joblib version
            raises :class:`UnsafeFormatError` (``npz``, ``skops`` and path versions load).
        max_retries: how many times a change is retried when other writers commit first.
        signing_key: sign every history entry and snapshot written with this key
            (``bytes`` or ``str``, at least 32 bytes; default: the environment variable
            ``MODELVERSIONS_SIGNING_KEY``), and refuse to read any that no key signed.
        verify_keys: more keys accepted when reading (key rotation).
        trusted_only: refuse to open without a key (``InvalidInputError``), so nothing
            unsigned is ever unpickled. See ``docs/security.md``.
        expect_heads: pinned heads, model -> ``(seq, sha256)`` as :meth:`head` returns:
            a model whose history is behind or off its pin is refused (IntegrityError).

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
        signing_key: bytes | str | None = None,
        verify_keys: Iterable[bytes | str] = (),
        trusted_only: bool = False,
        expect_heads: Mapping[str, tuple[int, str]] | None = None,
        allow_pickle: bool = True,
    ) -> None:
        check_text(user, "user")
        check_flag(trusted_only, "trusted_only")
        check_flag(allow_pickle, "allow_pickle")
        guard: signing.Guard | None = None
        if not (
            signing_key is None
            and isinstance(verify_keys, (list, tuple))
            and not verify_keys
            and not trusted_only
            and expect_heads is None
            and not os.environ.get(SIGNING_KEY_ENV)
        ):  # nothing to guard: signing is not even imported
            from modelversions import signing

            guard = signing.make_guard(
                signing_key=signing_key,
                verify_keys=verify_keys,
                trusted_only=trusted_only,
                pins=expect_heads,
            )
        if checks is not None and not isinstance(checks, Mapping):
            raise InvalidInputError(f"checks must be a mapping, not {type(checks).__name__}")
        for check_of in (checks or {}).values():
            check_callable(check_of, "a check in checks")
        check_int(cache_size, "cache_size", 0)
        check_int(max_retries, "max_retries", 1)
        with storage("opening the registry"):
            self._backend = open_backend(location, **dict(storage_options or {}))
        self._log = Log(self._backend, user=user or None, max_retries=max_retries, guard=guard)
        self._checks: dict[str, Check] = {}
        for name, check in (checks or {}).items():
            self.set_check(name, check)
        self._loader = Loader(
            self._log, cache_dir=cache_dir, cache_size=cache_size, allow_pickle=allow_pickle
        )
        self._served: weakref.WeakSet[Served] = weakref.WeakSet()

    @cached_property
    def _fsck(self) -> Fsck:
        from modelversions.fsck import Fsck

        return Fsck(self._log)

    @property
    def backend(self) -> Backend:
        """The storage backend this registry uses."""
        return self._backend

    def __repr__(self) -> str:
        return f"ModelRegistry({self._backend.url!r})"

    def close(self) -> None:
        """Stop the handles :meth:`serve` made, then release the backend's resources
        (and the private folder of ``load_path`` copies)."""
        for served in list(self._served):
            served.close()
        self._loader.close()
        self._backend.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ saving
    def save(
        self,
        name: str,
        model: Any = NO_MODEL,
        version: str | Version | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        serializer: str | None = None,
        compress: Any = None,
        progress: bool | Callable[[int, int], None] | None = None,
        bump: str = "minor",
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new ``candidate`` version and return its record.

        Args:
            name: the model name (``"churn"``, ``"team/churn"``).
            model: any object joblib can pickle (or ``serializer`` can store).
            path: instead of ``model``, a file or folder to store as it is (every file's
                sha256 in a manifest; symbolic links inside are refused); load it back
                with :meth:`load_path`. See ``docs/formats.md``.
            serializer: ``"joblib"`` (default), ``"npz"``, ``"skops"`` or a registered
                name (:func:`~modelversions.register_serializer`).
            compress: joblib's ``compress`` (an int 0-9, ``True``, a method name or
                ``(method, level)``); recorded in ``format_info``; ``load`` needs nothing.
            progress: ``True`` for a tqdm bar (if tqdm is installed) or a callable
                ``(done_bytes, total_bytes)``: as each file of a ``path`` is stored, once
                at the end for a ``model``; nothing is printed by default.
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
            InvalidNameError, InvalidVersionError, InvalidInputError: bad arguments (a
                value that cannot be stored is named by its path), checked before anything
                is written, like a bump past the version limits, or metrics, params, tags
                and description over 1 MiB as stored JSON (``_values.MAX_METADATA_BYTES``).
            VersionExistsError: an equal version exists (build metadata aside), or existed
                and was deleted (version numbers are never reused).
            SerializerNotFoundError: ``serializer`` names none installed here.

        The artifact is made durable first, then the version appears in one atomic
        commit: no reader ever sees it without its artifact.

        >>> reg = ModelRegistry("memory://")
        >>> mv = reg.save("churn", [1, 2, 3], metrics={"auc": 0.91})
        >>> str(mv.version), mv.status.value, mv.metrics["auc"]
        ('1.0.0', 'candidate', 0.91)
        >>> str(reg.save("churn", [1, 2, 4]).version)
        '1.1.0'
        """
        check_name(name)
        if not isinstance(bump, str) or bump not in _rules.BUMPS:
            raise InvalidInputError(f"bump must be one of {', '.join(_rules.BUMPS)}, not {bump!r}")
        explicit = None if version is None else Version(version)
        check_text(description, "description", limit=_values.MAX_METADATA_BYTES)
        meta = {
            "metrics": _values.normalize(metrics, "metrics"),
            "params": _values.normalize(params, "params"),
            "tags": _values.normalize(tags, "tags"),
            "description": description,
        }
        _values.check_metadata_size(meta)  # before the artifact is written

        artifact = artifact_for(
            model, path, serializer=serializer, compress=compress, progress=make_progress(progress)
        )

        def rule(sha256: str, size: int) -> partial[SaveEvent]:
            fields = {**meta, "created_at": now(), "sha256": sha256, "size": size}
            fields.update(format=artifact.format, format_info=artifact.info)
            return partial(_rules.save, explicit=explicit, bump=bump, fields=fields)

        check = partial(_rules.new_version, explicit=explicit, bump=bump)
        event, state = self._log.save(name, artifact, check, rule)
        return state.records[event.version]

    # ------------------------------------------------------------------ reading
    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("b", 1); _ = reg.save("a/x", 2)
        >>> reg.models()
        ['a/x', 'b']
        """
        return self._log.models()

    def versions(self, name: str) -> VersionList:
        """All versions of ``name``, ascending by :class:`Version` (pruned ones included).

        A :class:`~modelversions.records.VersionList`: a read-only sequence of the
        records as they are now, each built when first read (``len(vs)`` and ``vs[-1]``
        of a freshly opened registry parse at most one record, however many there are).

        Raises:
            ModelNotFoundError: no such model.
        """
        state = self._log.existing(name)
        with self._log.lock:
            return state.versions()

    def get(self, name: str, version: str | Version) -> ModelVersion:
        """The record of one version.

        Raises:
            ModelNotFoundError, VersionNotFoundError: it does not exist.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> reg.get("m", "v1").status.value
        'candidate'
        """
        state = self._log.existing(name)
        with self._log.lock:
            return _rules.find(state, version)

    def current(self, name: str, *, env: str = "production") -> ModelVersion | None:
        """The version deployed in ``env``, or ``None`` when nothing is deployed there.

        Raises:
            ModelNotFoundError: no such model.
        """
        check_env(env)
        state = self._log.existing(name)
        with self._log.lock:
            v = state.pointers.get(env)
            return None if v is None else state.records[v]

    def envs(self, name: str) -> dict[str, ModelVersion]:
        """Each env that has a version deployed, with that version.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> _ = reg.deploy("m", "1.0.0", env="staging")
        >>> {env: str(mv.version) for env, mv in reg.envs("m").items()}
        {'staging': '1.0.0'}
        """
        state = self._log.existing(name)
        with self._log.lock:
            return {env: state.records[v] for env, v in sorted(state.pointers.items())}

    def history(self, name: str, *, env: str | None = None, start: int = 1) -> list[Event]:
        """Every event of ``name``, oldest first; with ``env``, only that env's events.

        ``start`` skips the events before that ``seq`` unread (to follow a history, pass
        the last ``seq`` seen plus one). Every entry from ``start`` on is read (once per
        registry object) and checked: its checksum, and the hash chain (each entry's
        ``prev`` is the sha256 of the entry before it), so a missing, truncated or
        replaced entry raises even where reads that start from a snapshot do not look.

        Raises:
            ModelNotFoundError: no such model.
            IntegrityError: an entry is missing, damaged or breaks the hash chain.
        """
        if env is not None:
            check_env(env)
        if not isinstance(start, int) or isinstance(start, bool) or start < 1:
            raise InvalidInputError(f"start must be a positive int, not {start!r}")
        out = self._log.history(name, start)
        if env is not None:
            out = [e for e in out if e.env == env]
        return out

    def moves(self, name: str, *, env: str | None = None) -> list[Event]:
        """Every deploy and rollback of ``name`` (the events that move an env's pointer),
        oldest first; with ``env``, only that env's. What :meth:`history` filtered to
        those actions gives, read faster: from the moves file a writer keeps beside its
        snapshots (a cache of the log, checked against it), then the entries after it.

        Raises:
            ModelNotFoundError: no such model.
            IntegrityError: an entry read is missing, damaged or breaks the hash chain.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1); _ = reg.save("m", 2)
        >>> _ = reg.deploy("m", "1.0.0"); _ = reg.deploy("m", "1.1.0")
        >>> [(e.action, str(e.to_version)) for e in reg.moves("m")]
        [('deploy', '1.0.0'), ('deploy', '1.1.0')]
        """
        if env is not None:
            check_env(env)
        out = _moves.read(self._log, name)
        return out if env is None else [e for e in out if e.env == env]

    def rollback_target(self, name: str, *, env: str = "production") -> ModelVersion:
        """The version :meth:`rollback` would deploy now, without changing anything.

        Raises:
            NoRollbackTargetError: nothing deployed, or no stable version below it.
        """
        check_env(env)
        state = self._log.existing(name)
        with self._log.lock:
            return _rules.rollback_target(state, env)

    # ------------------------------------------------------------------ loading
    def load(
        self,
        name: str,
        version: str | Version | None = None,
        *,
        env: str = "production",
        mmap_mode: str | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
    ) -> Any:
        """Load a model: ``version``, or by default the one deployed in ``env``.

        The artifact's sha256 is checked before anything is unpickled, and the file
        that was hashed is the file that is unpickled (one open descriptor; a symlink
        in the artifact's place is refused). On a local folder or through the read
        cache, ``mmap_mode="r"`` (read-only) or ``"c"`` (copy-on-write) memory-maps
        numpy arrays from that same open file; a memory map trusts the file's bytes
        after the check (see docs/concepts.md). ``progress`` (``True`` or a callable
        ``(done_bytes, total_bytes)``) is told the artifact's size once it is loaded.
        A version saved with another serializer is loaded by it (``docs/formats.md``).

        Raises:
            InvalidInputError: ``mmap_mode`` is not ``None``, ``"r"`` or ``"c"``; the
                version is a file or folder (use :meth:`load_path`).
            UnsafeFormatError: a joblib version and ``allow_pickle=False``.
            SerializerNotFoundError: its serializer is not installed here.
            ModelNotFoundError, VersionNotFoundError: nothing to load (or deployed).
            ArtifactPrunedError: the artifact was pruned (or removed while loading).
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
        report = make_progress(progress)
        state = self._log.existing(name)
        with self._log.lock:
            mv = _rules.resolve(state, version, env)
        model = self._loader.load(mv, mmap_mode=mmap_mode)
        if report is not None:
            report(mv.size, mv.size)
        return model

    def serve(
        self,
        name: str,
        *,
        env: str = "production",
        refresh: float | None = 5.0,
        on_change: OnChange | None = None,
        load: Callable[[ModelVersion], Any] | None = None,
    ) -> Served:
        """Load the version deployed in ``env`` and follow it: a rollback reaches the process.

        A daemon thread checks every ``refresh`` seconds (``None``: only on
        :meth:`Served.refresh`); an idle check is one storage request. A new deployed
        version is loaded and verified in the background, then swapped in atomically;
        one that fails to load leaves the old model serving (:attr:`Served.last_error`,
        a warning on logger ``"modelversions"``) and is tried again at the next check.
        ``on_change(old, new)`` is called after each swap (``old`` is ``None`` for the
        first load). ``load`` replaces how a version is loaded (default: :meth:`load`).
        See ``docs/serving.md``.

        Raises:
            ModelNotFoundError, VersionNotFoundError: nothing is deployed in ``env``.
            IntegrityError, ArtifactPrunedError, StorageError: as :meth:`load`.

        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", {"w": 1}); _ = reg.deploy("m", "1.0.0")
        >>> with reg.serve("m", refresh=None) as served:
        ...     served.model
        {'w': 1}
        """
        from modelversions.serving import Served

        served = Served(self, name, env=env, refresh=refresh, on_change=on_change, load=load)
        self._served.add(served)
        return served

    # ------------------------------------------------------------------ verify
    def verify(
        self,
        *,
        repair: bool = False,
        min_age: float = 3600.0,
        expect: Mapping[str, tuple[int, str]] | None = None,
    ) -> VerifyReport:
        """Check the whole registry and report what is damaged.

        Replays every model's history from the first entry (not from snapshots),
        checks each env's pointer chain, every snapshot against the replay, and hashes
        every artifact. With ``repair=True`` it removes only provable garbage, such as
        temporaries and unreferenced artifacts older than ``min_age`` seconds, and
        damaged snapshots; never anything a committed version uses, nor a stray file it
        did not write. :mod:`modelversions.fsck` states every rule. With signing keys,
        entries and snapshots no key signed are ``signature`` problems; ``expect`` pins
        heads (model -> ``(seq, sha256)`` from :meth:`head`), reported as ``head``.

        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> reg.verify().ok
        True
        """
        from modelversions import signing

        check_flag(repair, "repair")
        check_seconds(min_age, "min_age")
        pins = signing.check_pins(expect, "expect")
        return self._fsck.verify(repair=repair, min_age=min_age, expect=pins)
