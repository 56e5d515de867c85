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
Reading checks the sha256 of the whole artifact **before** unpickling anything, and
unpickles the very file it hashed: one open descriptor (never through a symlink on
POSIX), hashed, rewound and handed to joblib; the path is never opened twice.
"""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from modelversions.backends import BlobWriter
from modelversions.errors import IntegrityError, InvalidInputError, StorageError

__all__ = [
    "check_mmap_mode",
    "dump_model",
    "hash_file",
    "hash_stream",
    "load_model_bytes",
    "load_model_file",
    "open_verifiable",
]

_PARALLEL_MIN = 256 * 1024
#: Largest pickle written by the standard pickler (see :func:`_small_pickle`).
SMALL_PICKLE = 64 * 1024
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


class _TooBig(Exception):
    """Raised by :class:`_Bounded` to stop a pickle that outgrew :data:`SMALL_PICKLE`."""


class _Bounded(io.BytesIO):
    """An in-memory file that refuses to grow past :data:`SMALL_PICKLE` bytes."""

    def write(self, data: Any) -> int:
        if self.tell() + memoryview(data).nbytes > SMALL_PICKLE:
            raise _TooBig
        return super().write(data)


def _small_pickle(model: Any) -> bytes | None:
    """``model`` pickled by the standard (C) pickler, protocol 5, if that takes at most
    :data:`SMALL_PICKLE` bytes; else None (and for anything it cannot pickle: joblib
    then tries, and reports the error).

    joblib's own pickler is written in Python (it lays numpy arrays out so that they
    can be memory-mapped): ~200 us for a small scikit-learn model that the C pickler
    writes in ~20 us. ``joblib.load`` reads both; arrays large enough to be worth
    mapping make the pickle outgrow the bound (written with bounded memory: protocol 5
    hands array buffers over without a copy) and go to joblib.
    """
    import pickle

    buf = _Bounded()
    try:
        pickle.Pickler(buf, protocol=5).dump(model)
    except Exception:  # _TooBig, or anything joblib will report with its own message
        return None
    return buf.getvalue()


def _readback_path(blob: BlobWriter) -> str | None:
    """The local file a blob writes to, if the tail hash can read it back."""
    path = getattr(blob, "readback_path", None)
    return path if isinstance(path, str) and os.name == "posix" else None


def dump_model(
    model: Any, blob: BlobWriter, *, compress: Any = 0, serializer: Any = None
) -> tuple[str, int]:
    """Serialize ``model`` into ``blob``; return ``(sha256, size)``.

    With joblib by default (``compress`` is joblib's), else with ``serializer`` (a
    :class:`modelversions.serializers.Serializer`).

    Raises:
        InvalidInputError: the model cannot be serialized (the error is chained).

    >>> from modelversions.backends.memory import MemoryBackend
    >>> blob = MemoryBackend().open_blob()
    >>> sha, size = dump_model({"w": [1, 2]}, blob)
    >>> len(sha), size > 0
    (64, True)
    """
    import pickle

    if serializer is None:
        small = None if compress else _small_pickle(model)

        def dump(fh: Any) -> None:
            if small is not None:
                fh.write(small)
                return
            import joblib

            joblib.dump(model, fh, compress=compress)

        errors: tuple[type[BaseException], ...] = (pickle.PicklingError, TypeError, AttributeError)
    else:

        def dump(fh: Any) -> None:
            serializer.dump(model, fh, compress=compress)

        errors = (pickle.PicklingError, TypeError, AttributeError, ValueError)
    name = "joblib" if serializer is None else serializer.name
    path = _readback_path(blob)
    writer: _HashingWriter | _TailHashingWriter
    writer = _HashingWriter(blob) if path is None else _TailHashingWriter(blob, path)
    try:
        try:
            dump(writer)
        except errors as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise _unpicklable(model, exc, name) from exc
        if isinstance(writer, _HashingWriter):
            return writer.hexdigest(), writer.tell()
        return writer.finish()
    finally:
        if isinstance(writer, _TailHashingWriter):
            writer.close()


def _unpicklable(model: Any, exc: BaseException, name: str = "joblib") -> InvalidInputError:
    return InvalidInputError(
        f"the model ({type(model).__name__}) cannot be serialized with {name}: {exc}"
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


MMAP_MODES = (None, "r", "c")


def check_mmap_mode(mmap_mode: object) -> str | None:
    """Return ``mmap_mode`` if it is ``None``, ``"r"`` or ``"c"``; else raise.

    ``"r+"`` and ``"w+"`` would let the caller write into the stored artifact, so
    they are refused like any other value, whatever the model holds.

    Raises:
        InvalidInputError: any other value.

    >>> check_mmap_mode("r")
    'r'
    """
    if mmap_mode is None or (type(mmap_mode) is str and mmap_mode in ("r", "c")):
        return mmap_mode
    raise InvalidInputError(
        f"mmap_mode must be None, 'r' or 'c' (read-only or copy-on-write), not {mmap_mode!r}"
    )


_O_OPEN = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the path must not block the open
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _opener(path: str, flags: int) -> int:
    return os.open(path, _O_OPEN)


def open_verifiable(path: str, what: str) -> tuple[IO[bytes], os.stat_result]:
    """Open a regular file for reading, never through a symlink (POSIX ``O_NOFOLLOW``).

    Returns the file object and its ``os.fstat``. The caller hashes and unpickles
    through that file object, so what is checked is what is loaded even if ``path``
    is replaced meanwhile.

    Raises:
        FileNotFoundError: nothing at ``path``.
        StorageError: ``path`` is a symlink or not a regular file (it is not followed).
    """
    try:
        fh = open(path, "rb", opener=_opener)  # noqa: SIM115
    except OSError as exc:
        # Linux and macOS say ELOOP for a symlink under O_NOFOLLOW, FreeBSD EMLINK.
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise StorageError(
                f"{what}: {path} is a symlink; refusing to follow it (remove the link)"
            ) from exc
        raise
    try:
        st = os.fstat(fh.fileno())
    except BaseException:
        fh.close()
        raise
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise StorageError(f"{what}: {path} is not a regular file; refusing to read it")
    return fh, st


def _proc_fd_path(fh: IO[bytes]) -> str | None:
    """A path that names the very file open as ``fh`` (Linux ``/proc/self/fd/N``), or None."""
    path = f"/proc/self/fd/{fh.fileno()}"
    try:
        st = os.stat(path)
    except OSError:
        return None
    own = os.fstat(fh.fileno())
    return path if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino) else None


def load_model_file(
    fh: IO[bytes],
    *,
    sha256: str,
    size: int,
    what: str,
    mmap_mode: str | None = None,
    verified: bool = False,
) -> Any:
    """Check the sha256 of an open file, then unpickle that same file with joblib.

    ``fh`` is a readable, seekable file object at offset 0 (see :func:`open_verifiable`).
    Its bytes are hashed through the descriptor, then it is rewound and unpickled:
    the path it was opened from is never opened again, so a file renamed into place
    meanwhile is never read. ``verified=True`` skips the hash (the caller checked this
    unchanged file before, through ``os.fstat`` of this descriptor).

    With ``mmap_mode`` (``"r"`` or ``"c"``), numpy arrays are memory-mapped from the
    same open file through ``/proc/self/fd/N`` (Linux): their ``filename`` attribute is
    that descriptor path, valid only while loading. Where that path is not available
    the arrays are read into memory from the verified file instead (a warning says so).
    A memory map trusts the file's bytes after the check: a writer with access to the
    storage could change the mapped pages later (stored artifacts are read-only, and
    nothing in modelversions writes them).

    Raises:
        IntegrityError: the bytes do not match ``sha256``/``size``; nothing is unpickled.
        InvalidInputError: ``mmap_mode`` is not ``None``, ``"r"`` or ``"c"``.
    """
    import joblib

    check_mmap_mode(mmap_mode)
    if not verified:
        fd = fh.fileno()
        actual_size = os.fstat(fd).st_size
        if actual_size < _PARALLEL_MIN and mmap_mode is None:
            data = fh.read(actual_size + 1)  # one read, and one byte to see the end
            _check(what, sha256, hashlib.sha256(data).hexdigest(), size, len(data))
            return joblib.load(io.BytesIO(data))  # the bytes just hashed, no second read
        actual, actual_size = hash_stream(fh)
        _check(what, sha256, actual, size, actual_size)
        fh.seek(0)
    if mmap_mode is not None:
        path = _proc_fd_path(fh)
        if path is not None:
            return joblib.load(path, mmap_mode=mmap_mode)
        warnings.warn(
            f"{what}: cannot memory-map it through its open descriptor on this system; "
            "loading the verified bytes into memory instead",
            RuntimeWarning,
            stacklevel=3,
        )
    return joblib.load(fh)


def load_model_bytes(data: bytes, *, sha256: str, size: int, what: str) -> Any:
    """Check the sha256 of in-memory artifact bytes, then unpickle them."""
    import joblib

    _check(what, sha256, hashlib.sha256(data).hexdigest(), size, len(data))
    return joblib.load(io.BytesIO(data))
