"""An in-memory backend: one dict per instance, guarded by a lock.

For tests, notebooks and scratch work. Each ``MemoryBackend()`` (and so each
``ModelRegistry("memory://")``) has its own store; nothing is shared between
instances or survives the process.
"""

from __future__ import annotations

import builtins
import errno
import io
import threading
from typing import IO, Any

from modelversions.backends import Backend, BlobWriter

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Objects in a dict owned by this instance.

    >>> b = MemoryBackend()
    >>> b.create("k", b"v")
    >>> b.create("k", b"w")
    Traceback (most recent call last):
    ...
    FileExistsError: [Errno 17] object exists: 'k'
    """

    def __init__(self, uri: str = "memory://", **_options: Any) -> None:
        self.url = uri
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def read(self, key: str) -> bytes:
        try:
            return self._data[key]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None

    def create(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._data:
                raise FileExistsError(errno.EEXIST, "object exists", key)
            self._data[key] = bytes(data)

    def _create_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = data
            return True

    def open_blob(self) -> BlobWriter:
        return _MemoryBlob(self)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if not 0 <= start <= end:
            raise ValueError(f"bad range {start}..{end} of {key}")
        return self.read(key)[start:end]

    def open_read(self, key: str) -> IO[bytes]:
        return io.BytesIO(self.read(key))

    def exists(self, key: str) -> bool:
        return key in self._data

    def size(self, key: str) -> int:
        return len(self.read(key))

    def list(self, prefix: str) -> builtins.list[str]:
        with self._lock:
            keys = list(self._data)
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class _MemoryBlob(BlobWriter):
    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._buf: io.BytesIO | None = io.BytesIO()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._buf is None:
            raise ValueError("write to a closed blob")
        return self._buf.write(data)

    def tell(self) -> int:
        return 0 if self._buf is None else self._buf.tell()

    def commit(self, key: str) -> bool:
        if self._buf is None:
            raise ValueError("blob already committed or aborted")
        data, self._buf = self._buf.getvalue(), None
        return self._backend._create_if_absent(key, data)

    def abort(self) -> None:
        self._buf = None
