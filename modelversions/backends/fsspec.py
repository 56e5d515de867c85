"""Object stores: S3 and S3-compatible stores, and other fsspec filesystems.

Two backends share this module:

* :class:`S3Backend` (``s3://bucket/prefix``, ``s3a://...``) talks to the store through
  the aiobotocore client that `s3fs` configures (credentials, endpoint, retries), and
  makes every request itself so that each guarantee rests on one request:

  - ``create`` is one ``PUT`` with ``If-None-Match: *``: the store itself refuses a
    second creator (412), so exactly one of several racing writers wins.
  - a blob is spooled to a local temporary file while it is written (the key is its
    sha256, known only at the end), then uploaded at ``commit(key)``: one conditional
    ``PUT`` when small, else a multipart upload whose ``CompleteMultipartUpload``
    carries ``If-None-Match: *``. A failed upload is aborted; an upload left by a
    process that died is removed by :meth:`S3Backend.cleanup`.
  - ``list`` is one paginated ``ListObjectsV2`` (1 request per 1,000 keys).
  - every request is counted in :attr:`S3Backend.requests`.

* :class:`FsspecBackend` runs over any fsspec filesystem (``gs://``, ``az://``,
  ``fsspec+memory://`` for tests). Its ``create`` is ``open(path, "xb")``: only as
  atomic as that filesystem makes it (see ``docs/backends.md``); on fsspec's memory
  filesystem the writers of this module serialize on a lock instead.

Store errors become builtin exceptions at this boundary: a missing key is
``FileNotFoundError``, a taken key ``FileExistsError``, refused credentials
``PermissionError``, anything else ``OSError``.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import concurrent.futures
import contextlib
import errno
import io
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

import fsspec
from fsspec.asyn import sync

from modelversions.backends import Backend, BlobWriter
from modelversions.errors import InvalidInputError

__all__ = ["FsspecBackend", "S3Backend"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_MiB = 1 << 20
_PART_SIZE = 8 * _MiB  # multipart part size; also the largest single-PUT blob
_MIN_PART = 5 * _MiB  # S3's minimum for every part but the last
_MAX_PARTS = 10_000
_CONCURRENCY = 4  # parts in flight at once
_CONFLICT_RETRIES = 8  # 409 ConditionalRequestConflict: retry the conditional write
_READ_RETRIES = 3  # re-issue an idempotent GET whose body broke off mid-stream
_S3_HINT = " (pip install 'modelversions[s3]')"

# fsspec's MemoryFileSystem checks then sets in open(path, "xb"); writers of this module
# serialize on this lock, so create-if-absent is atomic among them (one process).
_MEMORY_LOCK = threading.Lock()

# One s3fs filesystem (so one client and connection pool) per process and options,
# shared by every S3Backend that uses the same options: a client costs ~0.1 s to make.
_FS_CACHE: dict[tuple[int, str], Any] = {}
_FS_LOCK = threading.Lock()
_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()
# The backend whose request is being sent (set in the task that sends it).
_SENDER: ContextVar[S3Backend | None] = ContextVar("modelversions_s3_sender", default=None)

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


# ---------------------------------------------------------------------------- errors
class _Conflict(OSError):
    """409 ConditionalRequestConflict: a concurrent conditional write; retry."""


class _Precondition(FileExistsError):
    """412 PreconditionFailed on ``If-None-Match: *``: the key exists."""

    retried = False  # the client had re-sent the request (an earlier try may have landed)


def _client_error(exc: BaseException, what: str) -> OSError | None:
    """Translate a botocore ``ClientError`` (duck-typed: it has ``.response``)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    err = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    code = str(err.get("Code") or "")
    status = meta.get("HTTPStatusCode")
    text = f"{what}: {code or status} {err.get('Message') or ''}".rstrip()
    if code == "PreconditionFailed" or status == 412:
        pre = _Precondition(errno.EEXIST, text)
        pre.retried = bool(meta.get("RetryAttempts"))
        return pre
    if code == "ConditionalRequestConflict" or (status == 409 and code in ("", "409")):
        return _Conflict(errno.EBUSY, text)
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(errno.ENOENT, text)
    if code == "NoSuchBucket":
        return OSError(errno.EIO, f"{what}: the bucket does not exist")
    if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return PermissionError(errno.EACCES, text)
    return OSError(errno.EIO, text)


def _translate(exc: BaseException, what: str) -> OSError | None:
    """The builtin exception for a store error, or None to let ``exc`` propagate."""
    translated = _client_error(exc, what)
    if translated is not None:
        return translated
    if isinstance(exc, OSError):
        return None  # already builtin (aiohttp's connection errors are OSErrors too)
    if isinstance(exc, asyncio.TimeoutError) or type(exc).__module__.split(".")[0] in (
        "botocore",
        "aiobotocore",
        "aiohttp",
        "urllib3",
    ):
        return OSError(errno.EIO, f"{what}: {type(exc).__name__}: {exc}")
    return None


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


class _Window(io.RawIOBase):
    """Bytes ``[start, start + length)`` of a file descriptor, read with ``pread``.

    An upload body that streams from the spool without holding the part in memory;
    several windows on one descriptor can be read at once (no shared offset).
    """

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__()
        self._fd = fd
        self._start = start
        self._length = length
        self._pos = 0

    def __len__(self) -> int:
        return self._length - self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = min(max(base + offset, 0), self._length)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._length - self._pos)
        if n <= 0:
            return 0
        data = _pread(self._fd, n, self._start + self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        pass  # the descriptor belongs to the spool; botocore may "close" a body early


_PREAD_LOCK = threading.Lock()


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    with _PREAD_LOCK:  # no pread (Windows): seek and read under a lock
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)


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


# ---------------------------------------------------------------------------- S3
class S3Backend(FsspecBackend):
    """Objects in an S3 bucket (AWS, MinIO or any S3-compatible store).

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/prefix`` (``s3a://`` too).
        part_size: multipart part size in bytes (default 8 MiB, at least 5 MiB);
            blobs up to this size are one ``PUT``.
        max_concurrency: parts uploaded at once. Parts stream from the spool file, so
            memory does not grow with either setting.
        spool_dir: where blobs are spooled while written (default: the system temp).
        storage_options: passed to ``s3fs.S3FileSystem``: ``key``, ``secret``,
            ``token``, ``endpoint_url``, ``client_kwargs``, ``config_kwargs``,
            ``profile``, ``anon``...

    Requires a store that honours ``If-None-Match: *`` on ``PutObject`` and
    ``CompleteMultipartUpload`` atomically (AWS S3 does; moto checks the header but not
    atomically, so the tests serialize its requests): on a store that ignores the
    header two racing writers could both "win" (see ``docs/backends.md``).
    :attr:`requests` counts the requests sent, by operation.
    """

    def __init__(
        self,
        uri: str,
        *,
        part_size: int = _PART_SIZE,
        max_concurrency: int = _CONCURRENCY,
        spool_dir: str | os.PathLike[str] | None = None,
        **storage_options: Any,
    ) -> None:
        scheme, bucket, prefix = _split_url(uri)
        try:
            import s3fs  # noqa: F401  (checks the extra is installed)
        except ImportError as exc:
            raise InvalidInputError(
                f"the {scheme!r} backend needs packages that are not installed ({exc}){_S3_HINT}"
            ) from exc
        if not isinstance(part_size, int) or part_size < _MIN_PART:
            raise InvalidInputError(f"part_size must be an int of at least {_MIN_PART} bytes")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidInputError("max_concurrency must be a positive int")
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"{scheme}://{bucket}/{prefix}".rstrip("/")
        self._part_size = part_size
        self._concurrency = max_concurrency
        self._spool_dir = None if spool_dir is None else os.fspath(spool_dir)
        self._spool_memory = part_size
        self._memory = False
        self._options = dict(storage_options)
        self._options_key = repr(sorted(self._options.items()))
        #: Requests this backend sent, by S3 operation (``"GetObject"``, ``"PutObject"``...);
        #: every attempt counts, retries included.
        self.requests: collections.Counter[str] = collections.Counter()
        #: Set to a list to record ``(operation, url)`` of each request (for debugging).
        self.request_log: builtins.list[tuple[str, str]] | None = None

    # -- plumbing ------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The ``s3fs.S3FileSystem``, shared by backends with the same options (per process)."""
        key = (os.getpid(), self._options_key)
        with _FS_LOCK:
            fs = _FS_CACHE.get(key)
            if fs is None:
                import s3fs

                fs = s3fs.S3FileSystem(
                    skip_instance_cache=True, use_listings_cache=False, **self._options
                )
                _FS_CACHE[key] = fs
            return fs

    async def _client(self) -> Any:
        """The aiobotocore client; requests sent from this task count for this backend."""
        _SENDER.set(self)
        client = await self.fs.set_session()
        if client not in _HOOKED:
            client.meta.events.register("before-send.s3", _count_request)
            _HOOKED.add(client)
        return client

    def _run(self, what: str, fn: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``fn(client)`` on fsspec's event loop; translate store errors."""
        fs = self.fs

        async def call() -> _T:
            return await fn(await self._client())

        try:
            result: _T = sync(fs.loop, call)
        except Exception as exc:
            err = _translate(exc, what)
            if err is None:
                raise
            raise err from exc
        return result

    def _call(self, op: str, what: str, **kwargs: Any) -> dict[str, Any]:
        async def fn(client: Any) -> dict[str, Any]:
            result: dict[str, Any] = await getattr(client, op)(Bucket=self.bucket, **kwargs)
            return result

        return self._run(what, fn)

    def _key(self, key: str) -> str:
        _check_key(key)
        return self.prefix + key

    # -- the protocol --------------------------------------------------------------
    def read(self, key: str) -> bytes:
        full = self._key(key)

        async def fn(client: Any) -> bytes:
            resp = await client.get_object(Bucket=self.bucket, Key=full)
            async with resp["Body"] as body:
                data: bytes = await body.read()
            return data

        for attempt in range(_READ_RETRIES):
            try:
                return self._run(f"reading {key}", fn)
            except (FileNotFoundError, PermissionError, _Conflict):
                raise
            except OSError:
                if attempt == _READ_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def create(self, key: str, data: bytes) -> None:
        if not self._put_if_absent(key, bytes(data), exact=True):
            raise FileExistsError(errno.EEXIST, "object exists", key)

    def _put_if_absent(self, key: str, data: bytes, *, exact: bool) -> bool:
        """One ``PUT`` with ``If-None-Match: *``; False when the key exists.

        ``exact``: when the client had re-sent the request and then got 412, an earlier
        attempt may have created the object: read it back and compare.
        """
        full = self._key(key)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._call("put_object", f"creating {key}", Key=full, Body=data, IfNoneMatch="*")
                return True
            except _Precondition as exc:
                if exact and exc.retried:
                    with contextlib.suppress(FileNotFoundError):
                        if self.read(key) == data:
                            return True
                return False
            except _Conflict:
                _backoff(attempt)
        raise OSError(errno.EBUSY, f"creating {key}: concurrent writes kept conflicting (409)")

    def _publish(self, spool: _Spool, key: str) -> bool:
        fd = spool.fileno()
        if fd is None or spool.size <= self._part_size:
            return self._put_if_absent(key, spool.reader().read(), exact=False)
        return self._multipart_if_absent(fd, spool.size, key)

    def _multipart_if_absent(self, fd: int, size: int, key: str) -> bool:
        full = self._key(key)
        what = f"uploading {key}"
        part = max(self._part_size, -(-size // _MAX_PARTS))
        for attempt in range(_CONFLICT_RETRIES):
            if self.exists(key):
                return False  # a content address: the same bytes are there
            upload_id = self._call("create_multipart_upload", what, Key=full)["UploadId"]
            try:
                parts = self._upload_parts(fd, size, full, upload_id, part, what)
                try:
                    self._call(
                        "complete_multipart_upload",
                        what,
                        Key=full,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        IfNoneMatch="*",
                    )
                except _Precondition:
                    self._abort_upload(full, upload_id)
                    return False
                except _Conflict:
                    # S3: after a 409 on completion, start the upload over.
                    self._abort_upload(full, upload_id)
                    _backoff(attempt)
                    continue
                except OSError:
                    # e.g. NoSuchUpload after a re-sent completion that had landed
                    if self.exists(key):
                        self._abort_upload(full, upload_id)
                        return False
                    raise
                return True
            except BaseException:
                self._abort_upload(full, upload_id)
                raise
        raise OSError(errno.EBUSY, f"{what}: concurrent writes kept conflicting (409)")

    def _upload_parts(
        self, fd: int, size: int, full: str, upload_id: str, part: int, what: str
    ) -> builtins.list[dict[str, Any]]:
        """Upload the spool in parts, ``max_concurrency`` at a time; return the part list.

        Each part streams from the spool file (``pread``), so memory stays small
        whatever the part size.
        """
        fs = self.fs
        inflight: collections.deque[tuple[int, concurrent.futures.Future[Any]]] = (
            collections.deque()
        )
        done: builtins.list[dict[str, Any]] = []

        def collect(number: int, fut: concurrent.futures.Future[Any]) -> None:
            try:
                etag = fut.result()
            except Exception as exc:
                err = _translate(exc, what)
                if err is None:
                    raise
                raise err from exc
            done.append({"PartNumber": number, "ETag": etag})

        try:
            for number, start in enumerate(range(0, size, part), 1):
                if len(inflight) >= self._concurrency:
                    collect(*inflight.popleft())
                body = _Window(fd, start, min(part, size - start))
                coro = self._upload_part(full, upload_id, number, body)
                inflight.append((number, asyncio.run_coroutine_threadsafe(coro, fs.loop)))
            while inflight:
                collect(*inflight.popleft())
        except BaseException:
            for _n, fut in inflight:
                fut.cancel()
            concurrent.futures.wait([f for _n, f in inflight], timeout=30)
            raise
        return done

    async def _upload_part(self, full: str, upload_id: str, number: int, body: _Window) -> str:
        client = await self._client()
        resp = await client.upload_part(
            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
        )
        etag: str = resp["ETag"]
        return etag

    def _abort_upload(self, full: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", f"aborting {full}", Key=full, UploadId=upload_id)
        except FileNotFoundError:
            pass  # already gone
        except OSError as exc:  # left for cleanup(): it lists and aborts stale uploads
            log.warning("could not abort the multipart upload of %s: %s", full, exc)

    def open_read(self, key: str) -> IO[bytes]:
        return io.BufferedReader(_S3Reader(self, key), buffer_size=_MiB)

    def _head(self, key: str) -> dict[str, Any]:
        return self._call("head_object", f"checking {key}", Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str) -> builtins.list[str]:
        full = self.prefix + prefix
        keys: builtins.list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            resp = self._call("list_objects_v2", f"listing {prefix!r}", Prefix=full, **extra)
            start = len(self.prefix)
            keys.extend(
                obj["Key"][start:] for obj in resp.get("Contents", ()) if obj["Key"][-1:] != "/"
            )
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return sorted(keys)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call("delete_object", f"deleting {key}", Key=self._key(key))

    def uploads(self) -> builtins.list[dict[str, Any]]:
        """Unfinished multipart uploads under the prefix (``Key``, ``UploadId``, ``Initiated``)."""
        out: builtins.list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        while True:
            resp = self._call(
                "list_multipart_uploads", "listing uploads", Prefix=self.prefix, **markers
            )
            out.extend(resp.get("Uploads", ()))
            if not resp.get("IsTruncated"):
                return out
            markers = {
                "KeyMarker": resp.get("NextKeyMarker", ""),
                "UploadIdMarker": resp.get("NextUploadIdMarker", ""),
            }

    def cleanup(self, *, min_age: float = 3600.0, dry_run: bool = False) -> builtins.list[str]:
        """Abort multipart uploads under the prefix initiated more than ``min_age`` s ago.

        Such uploads are left by writers that died mid-upload; they are invisible to
        readers but S3 bills their parts. An upload still in progress is younger than
        ``min_age`` (keep it above your longest upload). Spools are anonymous local
        files, so nothing else is left behind.
        """
        removed: builtins.list[str] = []
        now = datetime.now(timezone.utc)
        for up in self.uploads():
            initiated = up.get("Initiated")
            if isinstance(initiated, datetime) and min_age > 0:
                if initiated.tzinfo is None:
                    initiated = initiated.replace(tzinfo=timezone.utc)
                if (now - initiated).total_seconds() <= min_age:
                    continue
            key = up["Key"][len(self.prefix) :]
            removed.append(f"multipart upload of {key} ({up['UploadId']})")
            if not dry_run:
                self._abort_upload(up["Key"], up["UploadId"])
        return removed

    def close(self) -> None:
        """Nothing to release: connections are pooled per process and options."""


def _count_request(event_name: str = "", request: Any = None, **_kwargs: Any) -> None:
    """botocore ``before-send`` hook: count the request for the backend sending it."""
    backend = _SENDER.get()
    if backend is None:
        return
    op = event_name.rpartition(".")[2]
    backend.requests[op] += 1
    if backend.request_log is not None:
        backend.request_log.append((op, str(getattr(request, "url", ""))))


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))


class _S3Reader(io.RawIOBase):
    """A streaming, seekable reader: one ``GET`` for a sequential read.

    Opening sends the ``GET`` (a missing key raises ``FileNotFoundError`` at once);
    reads stream the body; a seek or a broken stream re-issues a ranged ``GET``
    pinned to the same ETag.
    """

    def __init__(self, backend: S3Backend, key: str) -> None:
        super().__init__()
        self._backend = backend
        self._key = key
        self._full = backend._key(key)
        self._pos = 0
        self._size = 0
        self._etag: str | None = None
        self._body: Any = None
        self._open_body()

    def _open_body(self) -> None:
        extra: dict[str, str] = {}
        if self._pos:
            extra["Range"] = f"bytes={self._pos}-"
        if self._etag:
            extra["IfMatch"] = self._etag
        resp = self._backend._call("get_object", f"reading {self._key}", Key=self._full, **extra)
        if self._etag is None:
            self._size = int(resp["ContentLength"])
            self._etag = resp.get("ETag")
        self._body = resp["Body"]

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        if pos != self._pos:
            self._drop_body()
            self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        target = view[:want]

        async def fill(_client: Any) -> int:
            got = 0
            while got < want:
                n = await self._body.readinto(target[got:])
                if not n:
                    break
                got += n
            return got

        for attempt in range(_READ_RETRIES):
            if self._body is None:
                self._open_body()
            try:
                got = self._backend._run(f"reading {self._key}", fill)
            except (FileNotFoundError, PermissionError):
                raise
            except OSError:
                got = 0
                self._drop_body()
                if attempt == _READ_RETRIES - 1:
                    raise
            if got:
                self._pos += got
                return got
            self._drop_body()  # the stream ended early: re-issue from the position
        raise OSError(errno.EIO, f"reading {self._key}: the stream ended at byte {self._pos}")

    def readall(self) -> bytes:
        buf = bytearray(max(self._size - self._pos, 0))
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        return bytes(view[:got])

    def close(self) -> None:
        self._drop_body()
        super().close()
