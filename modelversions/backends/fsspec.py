"""The generic fsspec backend, and what every fsspec-based backend builds on.

* :class:`FsspecBackend` runs over any fsspec filesystem (``gs://``, ``az://``,
  ``fsspec+memory://`` for tests). Its ``create`` is ``open(path, "xb")``: only as
  atomic as that filesystem makes it (see ``docs/backends.md``); on fsspec's memory
  filesystem the writers of this module serialize on a lock instead.
* The pieces :class:`~modelversions.backends.s3.S3Backend` (a subclass) shares with it:
  URL splitting and key checks, and the local spool a blob is written to before it is
  published (:class:`_Spool`, :class:`_SpoolBlob`: ``commit(key)`` calls the backend's
  ``_publish``).

This module never talks to S3 itself: S3's requests, multipart uploads and error
translation are in :mod:`modelversions.backends.s3` and ``_s3_io``. Errors here are the
filesystem's own builtin exceptions; a key that names a folder reads as absent
(``FileNotFoundError``).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import shutil
import tempfile
import threading
from typing import IO, Any

import fsspec

from modelversions.backends import Backend, BlobWriter
from modelversions.errors import InvalidInputError

__all__ = ["FsspecBackend"]

_MiB = 1 << 20
_PART_SIZE = 8 * _MiB  # spool kept in memory up to this; copy buffer; S3's default part


# fsspec's MemoryFileSystem checks then sets in open(path, "xb"); writers of this module
# serialize on this lock, so create-if-absent is atomic among them (one process).
_MEMORY_LOCK = threading.Lock()

# URL scheme -> fsspec protocol, for FsspecBackend.
_PROTOCOLS = {
    "gs": "gcs",
    "gcs": "gcs",
    "az": "abfs",
    "abfs": "abfs",
    "fsspec+memory": "memory",
}
_PROTOCOL_HINTS = {
    "gcs": " (pip install gcsfs)",
    "abfs": " (pip install adlfs)",
}


def _split_url(uri: str) -> tuple[str, str, str]:
    """``scheme://bucket/some/prefix`` -> (scheme, bucket, "some/prefix/")."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise InvalidInputError(f"not a URL: {uri!r}")
    bucket, _, prefix = rest.rstrip("/").partition("/")
    if not bucket:
        raise InvalidInputError(f"{uri!r} names no bucket; use {scheme}://bucket/prefix")
    prefix = "/".join(p for p in prefix.split("/") if p)
    return scheme.lower(), bucket, prefix + "/" if prefix else ""


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
        raise InvalidInputError(f"invalid storage key {key!r}")


# ---------------------------------------------------------------------------- blobs
class _Spool:
    """Bytes kept in memory up to ``limit``, then in an anonymous temporary file.

    The file is unlinked at creation on POSIX, so nothing is left behind even when
    the process is killed; closing it frees the disk space.
    """

    def __init__(self, limit: int, folder: str | None) -> None:
        self._limit = limit
        self._folder = folder
        self._buf = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        if self._file is None and len(self._buf) + view.nbytes > self._limit:
            self._file = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115
            self._file.write(self._buf)
            self._buf = bytearray()
        if self._file is None:
            self._buf += view
        else:
            self._file.write(view)
        self.size += view.nbytes
        return view.nbytes

    def reader(self) -> IO[bytes]:
        """A file object reading the whole spool from the start."""
        if self._file is None:
            return io.BytesIO(self._buf)
        self._file.flush()
        self._file.seek(0)
        return self._file

    def fileno(self) -> int | None:
        """The descriptor of the spool file (flushed), or None while in memory."""
        if self._file is None:
            return None
        self._file.flush()
        return self._file.fileno()

    def close(self) -> None:
        self._buf = bytearray()
        file, self._file = self._file, None
        if file is not None:
            file.close()


class _SpoolBlob(BlobWriter):
    """Bytes spooled locally while written; uploaded at ``commit(key)``."""

    def __init__(self, backend: FsspecBackend) -> None:
        self._backend = backend
        self._spool: _Spool | None = _Spool(backend._spool_memory, backend._spool_dir)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._spool is None:
            raise ValueError("write to a closed blob")
        return self._spool.write(data)

    def tell(self) -> int:
        return 0 if self._spool is None else self._spool.size

    def commit(self, key: str) -> bool:
        spool = self._spool
        if spool is None:
            raise ValueError("blob already committed or aborted")
        try:
            return self._backend._publish(spool, key)
        finally:
            self.abort()

    def abort(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.close()


# ---------------------------------------------------------------------------- generic
class FsspecBackend(Backend):
    """Objects under ``root`` of an fsspec filesystem.

    Args:
        uri: ``gs://bucket/prefix``, ``az://container/prefix`` or
            ``fsspec+memory://name/prefix``.
        spool_dir: where blobs are spooled while written (default: the system temp).
        storage_options: passed to ``fsspec.filesystem(protocol, ...)``.

    Atomicity of ``create`` is the filesystem's ``open(path, "xb")``; see
    ``docs/backends.md`` for which filesystems make that atomic. Any filesystem
    instance can be wrapped with :meth:`from_filesystem`.

    >>> b = FsspecBackend("fsspec+memory://doctest-fsspec/reg")
    >>> b.create("a/b.json", b"{}")
    >>> b.list("a/"), b.read("a/b.json")
    (['a/b.json'], b'{}')
    >>> b.delete("a/b.json")
    """

    def __init__(
        self, uri: str, *, spool_dir: str | os.PathLike[str] | None = None, **storage_options: Any
    ) -> None:
        scheme, bucket, prefix = _split_url(uri)
        protocol = _PROTOCOLS.get(scheme, scheme)
        try:
            fs = fsspec.filesystem(
                protocol, skip_instance_cache=True, use_listings_cache=False, **storage_options
            )
        except ImportError as exc:
            hint = _PROTOCOL_HINTS.get(protocol, "")
            raise InvalidInputError(
                f"the {scheme!r} backend needs packages that are not installed ({exc}){hint}"
            ) from exc
        self._setup(fs, f"{bucket}/{prefix}", url=uri, spool_dir=spool_dir)

    @classmethod
    def from_filesystem(
        cls, fs: Any, root: str, *, spool_dir: str | os.PathLike[str] | None = None
    ) -> FsspecBackend:
        """Wrap an existing fsspec filesystem; ``root`` is the folder or ``bucket/prefix``.

        Turn the filesystem's listings cache off (``use_listings_cache=False``): a
        cached listing would hide other writers' commits.
        """
        self = cls.__new__(cls)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._setup(fs, root, url=f"{protocol}://{root.strip('/')}", spool_dir=spool_dir)
        return self

    def _setup(
        self, fs: Any, root: str, *, url: str, spool_dir: str | os.PathLike[str] | None
    ) -> None:
        self.fs = fs
        self.url = url
        self._root = fs._strip_protocol(root).rstrip("/")
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        self._memory = "memory" in protocols
        self._spool_dir = None if spool_dir is None else os.fspath(spool_dir)
        self._spool_memory = _PART_SIZE

    def _path(self, key: str) -> str:
        _check_key(key)
        return f"{self._root}/{key}"

    # -- the protocol --------------------------------------------------------------
    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data: bytes = self.fs.cat_file(path)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from exc
        return data

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if not 0 <= start <= end:
            raise ValueError(f"bad range {start}..{end} of {key}")
        path = self._path(key)
        try:
            data: bytes = self.fs.cat_file(path, start=start, end=end)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from exc
        return data

    def create(self, key: str, data: bytes) -> None:
        path = self._path(key)
        data = bytes(data)
        if self._memory:
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(errno.EEXIST, "object exists", key)
                self.fs.pipe_file(path, data)  # one MemoryFile, set whole
            return
        self._write_exclusive(path, key, io.BytesIO(data))

    def _write_exclusive(self, path: str, key: str, src: IO[bytes]) -> None:
        """``open(path, "xb")``, copy ``src``, close; discard on failure."""
        try:
            fh = self.fs.open(path, "xb")
        except (ValueError, NotImplementedError) as exc:
            raise OSError(
                errno.ENOTSUP,
                f"{type(self.fs).__name__} has no exclusive create (open 'xb'): {exc}",
            ) from exc
        try:
            shutil.copyfileobj(src, fh, _PART_SIZE)
        except BaseException:
            discard = getattr(fh, "discard", None)
            if discard is not None:
                with contextlib.suppress(Exception):
                    discard()
            raise
        fh.close()

    def _publish(self, spool: _Spool, key: str) -> bool:
        path = self._path(key)
        if self._memory:
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, spool.reader().read())
            return True
        if self.fs.exists(path):
            return False  # a content address: the same bytes are there
        try:
            self._write_exclusive(path, key, spool.reader())
        except FileExistsError:
            return False
        return True

    def open_blob(self) -> BlobWriter:
        return _SpoolBlob(self)

    def open_read(self, key: str) -> IO[bytes]:
        if self._memory:  # MemoryFileSystem hands out its one shared file object
            return io.BytesIO(self.read(key))
        path = self._path(key)
        if not self.fs.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        fh: IO[bytes] = self.fs.open(path, "rb", block_size=_PART_SIZE)
        return fh

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._path(key)))

    def size(self, key: str) -> int:
        try:
            info = self.fs.info(self._path(key))
        except (NotADirectoryError, FileExistsError) as exc:
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from exc
        if info.get("type") != "file":
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        return int(info["size"])

    def list(self, prefix: str) -> builtins.list[str]:
        head = prefix.rpartition("/")[0]
        base = f"{self._root}/{head}" if head else self._root
        try:
            paths = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self._root) + 1
        keys = (p[start:] for p in paths if p.startswith(self._root + "/"))
        return sorted(k for k in keys if k.startswith(prefix) and not k.endswith("/"))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isfile(path):
                self.fs.rm_file(path)
