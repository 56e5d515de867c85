"""Models in and out of storage with joblib, hashed with sha256 on the way.

joblib (and numpy, through it) is imported on first use, so ``import
modelversions`` stays light for tools that never touch an artifact.

Writing hashes each chunk while the same chunk goes to storage: for chunks of
256 KiB and more the hash runs in a helper thread (``hashlib`` releases the GIL),
so a large save costs about ``max(write, hash)`` rather than their sum.
Reading checks the sha256 of the whole artifact **before** unpickling anything.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from modelversions.backends import BlobWriter
from modelversions.errors import IntegrityError, InvalidInputError

__all__ = ["dump_model", "hash_file", "hash_stream", "load_model_bytes", "load_model_file"]

_PARALLEL_MIN = 256 * 1024
_CHUNK = 4 * 1024 * 1024
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

    writer = _HashingWriter(blob)
    try:
        joblib.dump(model, writer, compress=compress)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            f"the model ({type(model).__name__}) cannot be serialized with joblib: {exc}"
        ) from exc
    return writer.hexdigest(), writer.tell()


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
