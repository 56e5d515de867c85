"""The S3 backend: conditional writes and multipart uploads, one request per guarantee.

:class:`S3Backend` (``s3://bucket/prefix``, ``s3a://...``) talks to the store through
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

This module owns the requests, their retries and the multipart upload. It builds on
:mod:`modelversions.backends.fsspec` (the spool and blob writer, URL and key checks:
``S3Backend`` subclasses ``FsspecBackend``) and on ``_s3_io`` (error translation, the
upload-part body and the streaming reader). Store errors become builtin exceptions at
this boundary: a missing key is ``FileNotFoundError``, a taken key ``FileExistsError``,
refused credentials ``PermissionError``, anything else ``OSError``.
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
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

from fsspec.asyn import sync

from modelversions.backends._s3_io import (
    _READ_RETRIES,
    _Conflict,
    _Precondition,
    _S3Reader,
    _translate,
    _Window,
)
from modelversions.backends.fsspec import (
    _PART_SIZE,
    FsspecBackend,
    _check_key,
    _MiB,
    _split_url,
    _Spool,
)
from modelversions.errors import InvalidInputError

__all__ = ["S3Backend"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_MIN_PART = 5 * _MiB  # S3's minimum for every part but the last
_MAX_PARTS = 10_000
_CONCURRENCY = 4  # parts in flight at once
_CONFLICT_RETRIES = 8  # 409 ConditionalRequestConflict: retry the conditional write
_S3_HINT = " (pip install 'modelversions[s3]')"


# One s3fs filesystem (so one client and connection pool) per process and options,
# shared by every S3Backend that uses the same options: a client costs ~0.1 s to make.
_FS_CACHE: dict[tuple[int, str], Any] = {}
_FS_LOCK = threading.Lock()
_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()
# The backend whose request is being sent (set in the task that sends it).
_SENDER: ContextVar[S3Backend | None] = ContextVar("modelversions_s3_sender", default=None)


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

    A subclass of :class:`~modelversions.backends.fsspec.FsspecBackend` for its spooled
    blob writer (``open_blob``); every other primitive is its own.
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

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """One ranged ``GET``; a range past the end (HTTP 416) reads nothing."""
        if not 0 <= start <= end:
            raise ValueError(f"bad range {start}..{end} of {key}")
        full = self._key(key)

        async def fn(client: Any) -> bytes:
            try:
                resp = await client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={start}-{max(end, start + 1) - 1}"
                )
            except Exception as exc:
                response = getattr(exc, "response", None)
                if (
                    isinstance(response, dict)
                    and (response.get("Error") or {}).get("Code") == "InvalidRange"
                ):
                    return b""
                raise
            async with resp["Body"] as body:
                data: bytes = await body.read()
            return data[: end - start]

        return self._run(f"reading {key}", fn)

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
