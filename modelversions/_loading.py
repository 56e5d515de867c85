"""Loading artifacts: verify the bytes against their record, then unpickle those bytes.

The artifact's sha256 is checked before anything is unpickled, and what was hashed is
what is unpickled: one open descriptor on a local folder (a memo of descriptors already
verified, keyed by their fstat identity, spares re-hashing), a verified open file from
the read cache (:mod:`modelversions._cache`), the bytes in memory for a small remote
artifact, a spooled temporary file for a large one. An artifact missing while loading
is checked again against the newest state: a concurrent ``prune`` or ``delete`` is
:class:`ArtifactPrunedError`, anything else damage. A deploy check runs on a model
loaded here (:func:`check_failure`). This module never writes to the registry's storage.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import IO, TYPE_CHECKING, Any, NoReturn

from modelversions import _state
from modelversions._codec import sha256
from modelversions._commit import Log
from modelversions._saving import check_loadable
from modelversions._util import storage
from modelversions.backends import Backend
from modelversions.errors import (
    ArtifactPrunedError,
    IntegrityError,
    InvalidInputError,
    ModelVersionsError,
)
from modelversions.records import ModelVersion
from modelversions.serializers import PATH_FORMAT, Serializer

if TYPE_CHECKING:  # the path versions' modules are imported when one is first used
    from pathlib import Path

    from modelversions._cache import ReadCache
    from modelversions.serializers._checkout import Checkouts, Progress

_SMALL_ARTIFACT = 64 * 1024 * 1024
_VERIFIED_MEMO = 4096


def check_failure(load: Callable[[], Any], guard: Callable[[Any], Any]) -> str | None:
    """Run deploy check ``guard`` on the model ``load()`` returns; why it failed, or None.

    A check fails if loading fails, or if it raises or returns ``False``.
    """
    try:
        model = load()
    except ModelVersionsError as exc:
        return f"loading the model failed: {exc}"
    try:
        result = guard(model)
    except Exception as exc:  # the check is user code: any failure fails the deploy
        return f"the check raised {type(exc).__name__}: {exc}"
    return None if result is not False else "the check returned False"


def _from_file(
    fh: IO[bytes],
    mv: ModelVersion,
    what: str,
    mmap_mode: str | None,
    *,
    verified: bool,
    serializer: Serializer | None = None,
) -> Any:
    from modelversions import serialization

    if serializer is not None:  # hash through the descriptor, rewind, load the same file
        if not verified:
            sha, size = serialization.hash_stream(fh)
            serialization._check(what, mv.sha256, sha, mv.size, size)
            fh.seek(0)
        return serializer.load(fh)
    return serialization.load_model_file(
        fh, sha256=mv.sha256, size=mv.size, what=what, mmap_mode=mmap_mode, verified=verified
    )


class Loader:
    """Loads the artifacts of ``log``'s backend.

    With ``cache_dir``, a remote backend's artifacts are read through a local read cache
    of at most ``cache_size`` bytes (a backend with local paths needs none).
    """

    def __init__(
        self,
        log: Log,
        *,
        cache_dir: str | os.PathLike[str] | None,
        cache_size: int,
        allow_pickle: bool = True,
    ) -> None:
        self.log = log
        self.allow_pickle = allow_pickle
        self._cache_dir = cache_dir
        self._checkouts: Checkouts | None = None
        self._checkouts_lock = threading.Lock()
        self.cache: ReadCache | None = None
        if cache_dir is not None and log.backend.local_path.__func__ is Backend.local_path:  # type: ignore[attr-defined]
            from modelversions._cache import ReadCache

            self.cache = ReadCache(cache_dir, max_bytes=cache_size)
        self._verified: dict[str, tuple[int, int, int, int, str]] = {}

    @property
    def checkouts(self) -> Checkouts:
        """The local copies of path versions (made on first use)."""
        with self._checkouts_lock:  # one folder, even when threads race to the first copy
            if self._checkouts is None:
                from modelversions.serializers._checkout import Checkouts

                self._checkouts = Checkouts(self._cache_dir)
            return self._checkouts

    def close(self) -> None:
        """Remove the private folder of ``load_path`` copies, if one was made."""
        with self._checkouts_lock:
            checkouts = self._checkouts
        if checkouts is not None:
            checkouts.close()

    def load(self, mv: ModelVersion, *, mmap_mode: str | None = None) -> Any:
        """The model of record ``mv``, its bytes checked first."""
        from modelversions import serialization

        if mv.pruned:
            raise ArtifactPrunedError(
                f"{mv.name} {mv.version} was pruned: its record and history remain, "
                "its artifact was deleted"
            )
        serializer = check_loadable(mv, allow_pickle=self.allow_pickle)
        if serializer is not None and mmap_mode is not None:
            raise InvalidInputError(f"mmap_mode applies to joblib versions, not {mv.format!r}")
        backend = self.log.backend
        key = _state.artifact_key(mv.name, mv.sha256)
        what = f"the artifact of {mv.name} {mv.version} ({key})"
        load = partial(_from_file, mv=mv, what=what, mmap_mode=mmap_mode, serializer=serializer)
        try:
            with storage(f"reading {what}"):
                path = backend.local_path(key)
                if path is not None:
                    return self._load_local(path, what, mv, load)
                if self.cache is not None:
                    # An open file whose bytes were verified: eviction or a swap of the
                    # cached path after this point cannot change what is unpickled.
                    with self.cache.fetch(backend, key, mv.sha256, mv.size, what) as fh:
                        return load(fh, verified=True)
                if mv.size <= _SMALL_ARTIFACT:
                    data = backend.read(key)
                    if serializer is not None:
                        digest = sha256(data).hexdigest()
                        serialization_check(what, mv, digest, len(data))
                        return serializer.load(io.BytesIO(data))
                    return serialization.load_model_bytes(
                        data, sha256=mv.sha256, size=mv.size, what=what
                    )
                return self._load_spooled(key, mv, what, load)
        except FileNotFoundError as exc:
            self._missing(mv, what, exc)
            raise  # unreachable: _missing raises

    def _missing(self, mv: ModelVersion, what: str, exc: FileNotFoundError) -> NoReturn:
        """Raise for an artifact found missing while ``mv`` was being loaded."""
        # A prune or delete may have removed it after this load resolved the record:
        # ask the newest state before calling it damage.
        with self.log.lock:
            now = self.log.refresh(mv.name).records.get(mv.version)
        if now is None or now.pruned or now.sha256 != mv.sha256:
            gone = "deleted" if now is None else "pruned"
            raise ArtifactPrunedError(
                f"{mv.name} {mv.version} was {gone} while it was being loaded: its artifact is gone"
            ) from exc
        raise IntegrityError(f"{what} is missing from storage") from exc

    def _load_local(self, path: str, what: str, mv: ModelVersion, load: Callable[..., Any]) -> Any:
        """Open ``path`` once; hash (unless this very file was verified) and load through it."""
        from modelversions import serialization

        fh, st = serialization.open_verifiable(path, what)
        with fh:
            # The memo is keyed by the identity of the open descriptor (fstat), never by
            # a second look at the path, which may name another file by now.
            sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, mv.sha256)
            verified = self._verified.get(path) == sig
            model = load(fh, verified=verified)
        if not verified:
            if len(self._verified) >= _VERIFIED_MEMO:
                self._verified.clear()
            self._verified[path] = sig
        return model

    def _load_spooled(self, key: str, mv: ModelVersion, what: str, load: Callable[..., Any]) -> Any:
        import tempfile

        from modelversions import serialization

        with tempfile.TemporaryFile() as spool:
            with self.log.backend.open_read(key) as src:
                sha, size = serialization.hash_stream(src, spool)
            serialization._check(what, mv.sha256, sha, mv.size, size)
            spool.seek(0)
            return load(spool, verified=True)

    def load_path(self, mv: ModelVersion, *, progress: Progress | None = None) -> Path:
        """The verified local copy of path version ``mv`` (see :mod:`._checkout`)."""
        from modelversions.serializers._manifest import parse

        if mv.format != PATH_FORMAT:
            raise InvalidInputError(
                f"{mv.name} {mv.version} is a Python object stored as {mv.format!r}, not a "
                "file or folder: use load()"
            )
        if mv.pruned:
            raise ArtifactPrunedError(
                f"{mv.name} {mv.version} was pruned: its record and history remain, "
                "its files were deleted"
            )
        key = _state.artifact_key(mv.name, mv.sha256)
        what = f"{mv.name} {mv.version}"
        try:
            with storage(f"reading the manifest of {what} ({key})"):
                data = self.log.backend.read(key)
                sha, size = sha256(data).hexdigest(), len(data)
                serialization_check(f"the manifest of {what} ({key})", mv, sha, size)
                manifest = parse(data, key)
                return self.checkouts.path(
                    self.log.backend, mv.name, mv.sha256, manifest, what=what, progress=progress
                )
        except FileNotFoundError as exc:
            self._missing(mv, f"the manifest of {what} ({key})", exc)


def serialization_check(what: str, mv: ModelVersion, sha: str, size: int) -> None:
    from modelversions import serialization

    serialization._check(what, mv.sha256, sha, mv.size, size)
