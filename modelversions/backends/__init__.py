"""The storage backend protocol and the table that opens backends by URL scheme.

A backend stores bytes under string keys (``"models/churn/@log/000000000001.json"``)
and offers the few primitives the registry's rules are built on. Every rule
(version numbers, statuses, rollback, history) lives in :mod:`modelversions.registry`,
once; a backend never interprets what it stores.

The primitives (see ``docs/backends.md`` for the full contract):

=====================  ==================================================================
``read(key)``          the bytes, or ``FileNotFoundError``
``create(key, data)``  atomic create-if-absent of a small object; ``FileExistsError`` if the
                       key exists. Durable when it returns. This is the commit point of
                       every change the registry makes.
``open_blob()``        a :class:`BlobWriter` to stream a large object into; ``commit(key)``
                       publishes it atomically if ``key`` is absent; nothing is visible
                       before that, nor after ``abort()``
``open_read(key)``     a readable binary file object
``list(prefix)``       every key under ``prefix``, sorted
``delete(key)``        remove a key; a missing key is not an error
=====================  ==================================================================

Optional: ``local_path(key)`` (a filesystem path, lets joblib memory-map),
``cleanup(...)`` (remove temporaries left by writers that died) and
``unsafe_entries()`` (entries the backend refuses to follow, e.g. symlinks in a folder).

Backends are opened from a URI through one scheme table::

    >>> backend = open_backend("memory://")
    >>> backend.create("a/b.json", b"{}")
    >>> backend.read("a/b.json")
    b'{}'

Third-party backends are added with :func:`register_backend` or through the
``modelversions.backends`` entry-point group.
"""

from __future__ import annotations

import abc
import builtins
import importlib
import os
from collections.abc import Callable
from typing import IO, Any

from modelversions.errors import InvalidInputError

__all__ = [
    "Backend",
    "BlobWriter",
    "open_backend",
    "register_backend",
    "registered_schemes",
]


class BlobWriter(abc.ABC):
    """A large object being written; invisible until :meth:`commit`.

    Used as a file object (``write``, ``tell``, ``flush``) by the serializer, then
    either committed under a key or aborted. Abort is idempotent and is always safe to
    call, also after a failed commit.
    """

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; return how many were written."""

    @abc.abstractmethod
    def tell(self) -> int:
        """Bytes written so far."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Flush buffers (the final flush and fsync happen in :meth:`commit`)."""

    @abc.abstractmethod
    def commit(self, key: str) -> bool:
        """Publish the bytes under ``key`` atomically, if ``key`` is absent.

        Returns:
            True if the object was created, False if ``key`` already existed (the staged
            bytes are discarded: keys of blobs are content addresses, so the existing
            object holds the same bytes).
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard what was written; leaves nothing behind."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class Backend(abc.ABC):
    """Bytes under keys, with atomic create-if-absent.

    Keys are relative, ``/``-separated, made of name segments the registry validated;
    segments starting with ``.`` are never used by the registry (backends may keep
    their temporaries there).
    """

    #: A short description for messages and ``repr``, e.g. the folder or bucket URL.
    url: str = "?"

    @abc.abstractmethod
    def read(self, key: str) -> bytes:
        """Return the object's bytes; raise ``FileNotFoundError`` when absent."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` if no object is there, atomically and durably.

        Exactly one of several concurrent creators of one key succeeds; the others get
        ``FileExistsError``. A reader sees the whole object or nothing.
        """

    @abc.abstractmethod
    def open_blob(self) -> BlobWriter:
        """Start streaming a large object; publish it with ``commit(key)``."""

    @abc.abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary file object reading the object; ``FileNotFoundError`` when absent."""

    @abc.abstractmethod
    def list(self, prefix: str) -> builtins.list[str]:
        """Every key that starts with ``prefix`` (a folder-like prefix ending in ``/``), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        try:
            with self.open_read(key):
                return True
        except FileNotFoundError:
            return False

    def size(self, key: str) -> int:
        """The object's size in bytes; ``FileNotFoundError`` when absent."""
        with self.open_read(key) as fh:
            return fh.seek(0, os.SEEK_END)

    def local_path(self, key: str) -> str | None:
        """A filesystem path holding the object, if the backend has one (enables mmap)."""
        return None

    def cleanup(self, *, min_age: float = 3600.0, dry_run: bool = False) -> builtins.list[str]:
        """Remove temporaries of writers that died; return what was (or would be) removed.

        Only provable garbage: temporaries older than ``min_age`` seconds (never a
        younger one, whatever process wrote it). Never a committed object.
        """
        return []

    def unsafe_entries(self) -> builtins.list[str]:
        """Paths in the store the backend refuses to follow, such as symbolic links.

        :meth:`ModelRegistry.verify` reports each as a ``symlink`` problem and then
        checks and repairs nothing else. Default: none.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections, file handles)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


_Factory = Callable[..., Backend]

# scheme -> "module:Class" (imported lazily) or a factory, plus an install hint.
_SCHEMES: dict[str, str | _Factory] = {
    "file": "modelversions.backends.local:LocalBackend",
    "memory": "modelversions.backends.memory:MemoryBackend",
    "s3": "modelversions.backends.s3:S3Backend",
    "s3a": "modelversions.backends.s3:S3Backend",
    "gs": "modelversions.backends.fsspec:FsspecBackend",
    "gcs": "modelversions.backends.fsspec:FsspecBackend",
    "az": "modelversions.backends.fsspec:FsspecBackend",
    "abfs": "modelversions.backends.fsspec:FsspecBackend",
    "fsspec+memory": "modelversions.backends.fsspec:FsspecBackend",
}
_HINTS: dict[str, str] = {
    "s3": " (pip install 'modelversions[s3]')",
    "s3a": " (pip install 'modelversions[s3]')",
    "gs": " (pip install fsspec gcsfs)",
    "gcs": " (pip install fsspec gcsfs)",
    "az": " (pip install fsspec adlfs)",
    "abfs": " (pip install fsspec adlfs)",
    "fsspec+memory": " (pip install fsspec)",
}
_ENTRY_POINT_GROUP = "modelversions.backends"


def register_backend(scheme: str, factory: str | _Factory, *, clobber: bool = False) -> None:
    """Make ``scheme://...`` URIs open with ``factory(uri, **storage_options)``.

    Args:
        scheme: the URI scheme, e.g. ``"redis"``.
        factory: a callable returning a :class:`Backend`, or ``"module:Class"``
            imported on first use.
        clobber: replace an existing registration instead of raising.

    Raises:
        InvalidInputError: the scheme is taken and ``clobber`` is false.

    >>> from modelversions.backends.memory import MemoryBackend
    >>> register_backend("scratch", lambda uri, **kw: MemoryBackend(), clobber=True)
    >>> open_backend("scratch://x").list("")
    []
    """
    scheme = scheme.lower()
    if scheme in _SCHEMES and not clobber:
        raise InvalidInputError(
            f"backend scheme {scheme!r} is already registered; pass clobber=True to replace it"
        )
    _SCHEMES[scheme] = factory


def registered_schemes() -> list[str]:
    """The URI schemes :func:`open_backend` knows, sorted."""
    return sorted(_SCHEMES)


def _resolve(scheme: str) -> _Factory:
    target = _SCHEMES.get(scheme)
    if target is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=_ENTRY_POINT_GROUP):
            if ep.name == scheme:
                factory: _Factory = ep.load()
                _SCHEMES[scheme] = factory
                return factory
        raise InvalidInputError(
            f"no storage backend for scheme {scheme!r}; known: {', '.join(registered_schemes())}"
        )
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _HINTS.get(scheme, "")
        raise InvalidInputError(
            f"the {scheme!r} backend needs packages that are not installed ({exc}){hint}"
        ) from exc
    factory = getattr(module, attr)
    return factory


def open_backend(target: str | os.PathLike[str] | Backend, **storage_options: Any) -> Backend:
    """Open the backend a registry URI names.

    A :class:`Backend` is returned as is; a path (``str`` without ``://`` or
    ``PathLike``) opens a local folder; ``scheme://rest`` uses the scheme table.

    Raises:
        InvalidInputError: unknown scheme, or its packages are missing (with the
            ``pip install`` that fixes it).

    >>> open_backend("memory://")
    <MemoryBackend memory://>
    """
    if isinstance(target, Backend):
        return target
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str):
        raise InvalidInputError(
            f"a registry is a path, a URI or a Backend, not {type(target).__name__}"
        )
    if not target:
        raise InvalidInputError("empty registry location")
    scheme, sep, _rest = target.partition("://")
    if not sep:
        return _resolve("file")(target, **storage_options)
    return _resolve(scheme.lower())(target, **storage_options)
