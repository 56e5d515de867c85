"""Models in and out of storage with joblib, hashed with sha256 on the way.

joblib (and numpy, through it) is imported on first use, so ``import
modelversions`` stays light for tools that never touch an artifact.

Writing hashes the artifact on the way. Into a local file, a helper thread hashes
the bytes by reading them back from the file (the page cache) just behind the
writer (``hashlib`` releases the GIL), so joblib writes at full speed and the
file's ``fsync`` overlaps the end of the hash: a large save costs about
``max(write + fsync, hash)`` rather than ``hash + fsync``, and no chunk is held in
memory for the hash. Into other storage, chunks of 256 KiB and more are hashed in a
helper thread while the same chunk is written.
Reading checks the sha256 of the whole artifact **before** unpickling anything.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from modelversions.backends import BlobWriter
from modelversions.errors import IntegrityError, InvalidInputError

__all__ = ["dump_model", "hash_file", "hash_stream", "load_model_bytes", "load_model_file"]

_PARALLEL_MIN = 256 * 1024
_CHUNK = 4 * 1024 * 1024
_WINDOW = 4 * 1024 * 1024  # how much of the file the tail hash maps at a time
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelversions-hash")
        return _pool


class _HashingWriter:
    """A file-like object that hashes what it passes to a :class:`BlobWriter`."""

    def __init__(self, blob: BlobWriter) -> None:
        self._blob = blob
        self._hash = hashlib.sha256()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n >= _PARALLEL_MIN:
            # Hash in the helper thread while this thread writes the same bytes.
            # The data must stay alive and unchanged until both are done: wait here.
            future = _executor().submit(self._hash.update, view)
            try:
                self._blob.write(view)
            finally:
                future.result()
        else:
            self._hash.update(view)
            self._blob.write(view)
        return n

    def tell(self) -> int:
        return self._blob.tell()

    def flush(self) -> None:
        self._blob.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _TailHashingWriter:
    """Writes to a local blob; a helper thread hashes the file's bytes behind the writer.

    Small writes before the first large one are hashed inline, from memory. From the
    first write of 256 KiB on, a thread maps the file (a window at a time) up to what
    the writer has handed to the OS and hashes it from the page cache, so the hash
    never paces the writes and keeps no reference to the writer's chunks.
    """

    def __init__(self, blob: BlobWriter, path: str) -> None:
        self._blob = blob
        self._path = path
        self._hash = hashlib.sha256()
        self._inline = 0  # bytes hashed inline, before the thread started
        self._cond = threading.Condition()
        self._ready = 0  # bytes readable from the file
        self._closed = False  # the writer is done (finished or failed)
        self._hashed = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = view.nbytes
        self._blob.write(view)
        if self._thread is None:
            if n < _PARALLEL_MIN:
                self._hash.update(view)
                self._inline += n
                return n
            self._thread = threading.Thread(
                target=self._run, name="modelversions-hash", daemon=True
            )
            self._thread.start()
        self._blob.flush()  # what is flushed can be read back
        with self._cond:
            self._ready = self._blob.tell()
            self._cond.notify()
        return n

    def tell(self) -> int:
        return self._blob.tell()

    def flush(self) -> None:
        self._blob.flush()

    def _run(self) -> None:
        pos = self._inline
        try:
            with open(self._path, "rb", buffering=0) as fh:
                fd = fh.fileno()
                while True:
                    with self._cond:
                        while self._ready <= pos and not self._closed:
                            self._cond.wait()
                        end, closed = self._ready, self._closed
                    while pos < end:
                        # Hash straight from the page cache through a small mapping: no
                        # copy, and at most one window of the file mapped at a time.
                        start = pos - pos % mmap.ALLOCATIONGRANULARITY
                        length = min(end, start + _WINDOW) - start
                        with (
                            mmap.mmap(fd, length, offset=start, access=mmap.ACCESS_READ) as mapped,
                            memoryview(mapped) as view,
                        ):
                            self._hash.update(view[pos - start :])
                        pos = start + length
                    if closed and pos >= self._ready:
                        break
        except BaseException as exc:  # reported by finish()
            self._error = exc
        self._hashed = pos

    def close(self) -> None:
        """Stop the helper thread (after :meth:`finish`, or when the writing failed)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def finish(self) -> tuple[str, int]:
        """Wait for the hash; return ``(sha256, size)``. Makes the blob durable meanwhile."""
        self._blob.flush()
        size = self._blob.tell()
        if self._thread is None:
            return self._hash.hexdigest(), size
        with self._cond:
            self._ready = size
            self._closed = True
            self._cond.notify()
        sync = getattr(self._blob, "sync", None)
        if callable(sync):
            sync()  # fsync while the thread hashes the tail
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._hashed != size:
            raise OSError(f"{self._path}: hashed {self._hashed} of {size} bytes")
        return self._hash.hexdigest(), size


def _readback_path(blob: BlobWriter) -> str | None:
    """The local file a blob writes to, if the tail hash can read it back."""
    path = getattr(blob, "readback_path", None)
    return path if isinstance(path, str) and os.name == "posix" else None


def dump_model(model: Any, blob: BlobWriter, *, compress: int = 0) -> tuple[str, int]:
    """Serialize ``model`` with joblib into ``blob``; return ``(sha256, size)``.

    Raises:
        InvalidInputError: the model cannot be pickled (the pickling error is chained).

    >>> from modelversions.backends.memory import MemoryBackend
    >>> blob = MemoryBackend().open_blob()
    >>> sha, size = dump_model({"w": [1, 2]}, blob)
    >>> len(sha), size > 0
    (64, True)
    """
    import pickle

    import joblib

    path = _readback_path(blob)
    if path is None:
        plain = _HashingWriter(blob)
        try:
            joblib.dump(model, plain, compress=compress)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise _unpicklable(model, exc) from exc
        return plain.hexdigest(), plain.tell()
    writer = _TailHashingWriter(blob, path)
    try:
        try:
            joblib.dump(model, writer, compress=compress)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise _unpicklable(model, exc) from exc
        return writer.finish()
    finally:
        writer.close()


def _unpicklable(model: Any, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        f"the model ({type(model).__name__}) cannot be serialized with joblib: {exc}"
    )


def hash_stream(src: IO[bytes], dst: IO[bytes] | None = None) -> tuple[str, int]:
    """sha256 and size of a stream, copying it to ``dst`` on the way if given."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = src.readinto(view)  # type: ignore[attr-defined]
        if not n:
            break
        chunk = view[:n]
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += n
    return digest.hexdigest(), size


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """sha256 (hex) and size of a file, read in chunks (bounded memory)."""
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < _PARALLEL_MIN:  # one read; no 4 MiB buffer to allocate for a small file
            data = fh.read()
            if len(data) == size:
                return hashlib.sha256(data).hexdigest(), size
            fh.seek(0)
        return hash_stream(fh)


def _check(what: str, expected_sha: str, actual_sha: str, expected_size: int, size: int) -> None:
    if actual_sha != expected_sha or size != expected_size:
        raise IntegrityError(
            f"{what} is damaged: expected sha256 {expected_sha} ({expected_size} bytes), "
            f"found {actual_sha} ({size} bytes); refusing to unpickle it"
        )


def load_model_file(
    path: str,
    *,
    sha256: str,
    size: int,
    what: str,
    mmap_mode: str | None = None,
    verified: bool = False,
) -> Any:
    """Check a file's sha256, then ``joblib.load`` it (optionally memory-mapped).

    ``verified=True`` skips the hash (the caller checked this unchanged file before).

    Raises:
        IntegrityError: the bytes do not match ``sha256``/``size``; nothing is unpickled.
    """
    import joblib

    if not verified:
        actual, actual_size = hash_file(path)
        _check(what, sha256, actual, size, actual_size)
    return joblib.load(path, mmap_mode=mmap_mode)


def load_model_bytes(data: bytes, *, sha256: str, size: int, what: str) -> Any:
    """Check the sha256 of in-memory artifact bytes, then unpickle them."""
    import joblib

    _check(what, sha256, hashlib.sha256(data).hexdigest(), size, len(data))
    return joblib.load(io.BytesIO(data))
