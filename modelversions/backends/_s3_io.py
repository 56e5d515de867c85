"""The S3 wire edge: store errors as builtin exceptions, and bytes as file objects.

What :class:`~modelversions.backends.s3.S3Backend` needs at the boundary with the
store, kept apart from its request logic:

* :func:`_translate`, the one place a store error becomes a builtin exception: a
  missing key is ``FileNotFoundError``, a taken key ``FileExistsError`` (412, as
  :class:`_Precondition`), refused credentials ``PermissionError``, a 409 conflict
  :class:`_Conflict` (retried by the caller, never taken for "exists"), anything else
  ``OSError``.
* :class:`_Ranged`, a seekable raw reader over a known number of bytes, and its two
  uses: :class:`_Window` (an upload part's body, read from the spool file with
  ``pread``) and :class:`_S3Reader` (a streaming ``GET`` for ``open_read``).

It sends no request of its own: the reader asks the backend through :class:`_Sender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")
_READ_RETRIES = 3  # re-issue an idempotent GET whose body broke off mid-stream


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


# ---------------------------------------------------------------------------- readers
class _Ranged(io.RawIOBase):
    """A readable, seekable raw stream of ``_size`` bytes that keeps its own position.

    Subclasses fill a buffer at ``_pos`` in :meth:`_fill`; position bookkeeping,
    ``seek`` arithmetic and the end-of-data check are shared here.
    """

    def __init__(self, size: int = 0) -> None:
        super().__init__()
        self._pos = 0
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        pos = self._seek_target(base + offset)
        if pos != self._pos:
            self._moved()
            self._pos = pos
        return pos

    def _seek_target(self, pos: int) -> int:
        """Where a seek to ``pos`` lands (the readers differ here: see the overrides)."""
        raise NotImplementedError

    def _moved(self) -> None:
        """Called when a seek changes the position, before ``_pos`` is updated."""

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        got = self._fill(view[:want])
        self._pos += got
        return got

    def _fill(self, target: memoryview) -> int:
        """Read up to ``len(target)`` bytes at ``_pos`` into ``target``; return how many."""
        raise NotImplementedError


class _Window(_Ranged):
    """Bytes ``[start, start + length)`` of a file descriptor, read with ``pread``.

    An upload body that streams from the spool without holding the part in memory;
    several windows on one descriptor can be read at once (no shared offset).
    """

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__(length)
        self._fd = fd
        self._start = start

    def __len__(self) -> int:
        return self._size - self._pos

    def _seek_target(self, pos: int) -> int:
        # Unlike _S3Reader: an upload body never leaves its window and never refuses a
        # seek (the HTTP client seeks it to rewind on a retry): the position is clamped
        # to [0, length].
        return min(max(pos, 0), self._size)

    def _fill(self, target: memoryview) -> int:
        data = _pread(self._fd, len(target), self._start + self._pos)
        target[: len(data)] = data
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


class _Sender(Protocol):
    """What :class:`_S3Reader` asks of its backend (an ``S3Backend``)."""

    def _key(self, key: str) -> str: ...

    def _call(self, op: str, what: str, **kwargs: Any) -> dict[str, Any]: ...

    def _run(self, what: str, fn: Callable[[Any], Awaitable[_T]]) -> _T: ...


class _S3Reader(_Ranged):
    """A streaming, seekable reader: one ``GET`` for a sequential read.

    Opening sends the ``GET`` (a missing key raises ``FileNotFoundError`` at once);
    reads stream the body; a seek or a broken stream re-issues a ranged ``GET``
    pinned to the same ETag.
    """

    def __init__(self, backend: _Sender, key: str) -> None:
        super().__init__()
        self._backend = backend
        self._key = key
        self._full = backend._key(key)
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

    def _seek_target(self, pos: int) -> int:
        # Unlike _Window: a file's rules. A negative position is an error; past the end
        # is allowed and reads nothing. Moving drops the body (the next read re-GETs).
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        return pos

    def _moved(self) -> None:
        self._drop_body()

    def _fill(self, target: memoryview) -> int:
        want = len(target)

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
