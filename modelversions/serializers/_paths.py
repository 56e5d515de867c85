"""Saving a file or folder as a version: its files content-addressed, plus a manifest.

Layout in storage, per model::

    models/<name>/@files/<sha256>              each distinct file's bytes, stored once
    models/<name>/@artifacts/<sha256>.joblib   the manifest (the record's sha256/size)

(the manifest sits where a pickled version's artifact sits, under the same name, so
prune, delete, verify and the read cache treat both alike; only the format in the
record tells them apart). Files unchanged between versions are stored once.

A save walks the source twice without following links (:mod:`._walk`): first to
refuse a symbolic link, FIFO or device anywhere in it before anything is written,
then to store each file as it hashes it (bounded memory: small files are read whole,
larger ones streamed in chunks; small files are written by a few threads so their
fsyncs overlap). The manifest is written last; the version's record
is committed after it (:meth:`modelversions._commit.Log.save`). A file that changes
while it is saved is stored as it was read: the manifest records what was stored.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from modelversions import _state
from modelversions.backends import Backend
from modelversions.errors import IntegrityError, InvalidInputError
from modelversions.serializers._manifest import Entry, Manifest, check_component
from modelversions.serializers._walk import Refused, walk

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["PathArtifact", "files_key", "files_prefix"]

_SMALL = 1024 * 1024  # files up to this size are read whole, stored by a worker thread
_CHUNK = 4 * 1024 * 1024
_WORKERS = 8
_IN_FLIGHT = 32  # small files read but not yet stored: at most 32 MiB in memory

Progress = Callable[[int, int], None]


def files_prefix(name: str) -> str:
    return f"models/{name}/@files/"


def files_key(name: str, sha256: str) -> str:
    """Where one file of a path version of ``name`` is stored."""
    return f"{files_prefix(name)}{sha256}"


def _refusal(source: str, exc: Refused) -> InvalidInputError:
    if exc.why == "is a symbolic link":
        return InvalidInputError(
            f"cannot save {source!r}: {exc.path} is a symbolic link, which would point "
            "outside what is versioned; copy the folder with its links resolved (cp -rL, "
            "or huggingface_hub.snapshot_download(local_dir=...)) and save the copy"
        )
    return InvalidInputError(f"cannot save {source!r}: {exc.path} {exc.why}")


class _Meter:
    """Reports ``(done, total)`` bytes to a progress callable."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None and n:
            self.progress(self.done, self.total)


class PathArtifact:
    """A file or folder to store as a version (what :meth:`Log.save` writes).

    Construction checks the source (exists, no links inside, only regular files and
    folders) and reads nothing else; :meth:`write` stores it.
    """

    format = "path"

    def __init__(self, source: str | os.PathLike[str], *, progress: Progress | None = None) -> None:
        if not isinstance(source, (str, os.PathLike)):
            raise InvalidInputError(
                f"path must be a str or os.PathLike, not {type(source).__name__}"
            )
        self.source = os.path.abspath(os.fspath(source))
        try:
            st = os.stat(self.source)
        except OSError as exc:
            raise InvalidInputError(f"cannot save path {self.source!r}: {exc.strerror}") from exc
        import stat

        self.is_dir = stat.S_ISDIR(st.st_mode)
        if not self.is_dir and not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"cannot save {self.source!r}: not a regular file or folder")
        self.name = os.path.basename(self.source.rstrip(os.sep)) or "root"
        try:
            check_component(self.name, "path")
        except IntegrityError as exc:
            raise InvalidInputError(str(exc)) from None
        self.progress = progress
        self.manifest: Manifest | None = None
        self.total = st.st_size if not self.is_dir else self._prescan()

    def _prescan(self) -> int:
        sizes = [0]

        def on_file(rel: str, fd: int, st: os.stat_result) -> None:
            sizes[0] += st.st_size

        self._walk(on_file, lambda rel: None)
        return sizes[0]

    def _walk(
        self, on_file: Callable[[str, int, os.stat_result], None], on_dir: Callable[[str], None]
    ) -> None:
        try:
            walk(self.source, on_file, on_dir)
        except Refused as exc:
            raise _refusal(self.source, exc) from None

    @property
    def info(self) -> dict[str, Any]:
        """What the record keeps in ``format_info``."""
        m = self.manifest
        assert m is not None, "write() first"
        return {"kind": m.kind, "files": len(m.files), "bytes": m.total_size}

    # ------------------------------------------------------------------ writing
    def write(self, backend: Backend, name: str) -> tuple[str, int, bool]:
        """Store every file, then the manifest; return the manifest's sha256, size, created."""
        meter = _Meter(self.progress, self.total)
        files: list[Entry] = []
        dirs: list[str] = []

        with _Storer(backend, name, meter) as storer:

            def on_file(rel: str, fd: int, st: os.stat_result) -> None:
                sha, size = storer.store(fd)
                files.append(Entry(rel, sha, size))

            if self.is_dir:
                self._walk(on_file, dirs.append)
                manifest = Manifest("dir", self.name, tuple(files), tuple(dirs))
            else:
                fd = _open_source(self.source)
                try:
                    sha, size = storer.store(fd)
                finally:
                    os.close(fd)
                manifest = Manifest("file", self.name, (Entry(self.name, sha, size),))
            storer.finish()
        self.manifest = manifest
        data = manifest.encode()
        sha = hashlib.sha256(data).hexdigest()
        created = _put(backend, _state.artifact_key(name, sha), data)
        if self.progress is not None and meter.done == 0:
            self.progress(0, 0)  # an empty tree: still one report that it is done
        return sha, len(data), created

    def ensure(self, backend: Backend, name: str, sha256: str, created: bool) -> None:
        """After the commit: put back what a concurrent prune removed meanwhile.

        A save that found a file (or the manifest) already stored relies on it; a
        ``prune`` or ``delete`` of another version committed between that moment and
        this save's commit may have collected it. Anything missing is stored again from
        the source; a source that changed since raises IntegrityError.
        """
        manifest = self.manifest
        assert manifest is not None
        missing = [e for e in manifest.files if not backend.exists(files_key(name, e.sha256))]
        if missing:
            again = PathArtifact(self.source)
            if again.write(backend, name)[0] != sha256:
                raise IntegrityError(
                    f"files of this version were removed by a concurrent prune while it "
                    f"was committed, and {self.source!r} changed since: save it again"
                )
        elif not backend.exists(_state.artifact_key(name, sha256)):
            _put(backend, _state.artifact_key(name, sha256), manifest.encode())


def _open_source(path: str) -> int:
    from modelversions.backends._safepath import O_READ_LEAF

    try:
        return os.open(path, O_READ_LEAF & ~getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise InvalidInputError(f"cannot save path {path!r}: {exc.strerror}") from exc


def _put(backend: Backend, key: str, data: bytes) -> bool:
    """Create ``key`` unless it exists (content-addressed); True if created."""
    if backend.exists(key):
        return False
    try:
        backend.create(key, data)
    except FileExistsError:
        return False
    return True


class _Storer:
    """Stores files under their sha256: small ones by a few threads, large ones streamed.

    Each small file (up to 1 MiB) is read and hashed here, then written and made
    durable by a worker thread (fsync waits overlap; at most ``_IN_FLIGHT`` files are
    held in memory). A large file is streamed in 4 MiB chunks by the calling thread.
    """

    def __init__(self, backend: Backend, name: str, meter: _Meter) -> None:
        self.backend = backend
        self.name = name
        self.meter = meter
        # imported here: concurrent.futures (and the logging it imports) costs ~4 ms
        # at `import modelversions`, and only a save of a path needs it
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(
            max_workers=_WORKERS, thread_name_prefix="modelversions-save"
        )
        self.pending: deque[tuple[Future[None], int]] = deque()

    def __enter__(self) -> _Storer:
        return self

    def __exit__(self, *exc: object) -> None:
        for future, _n in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)

    def finish(self) -> None:
        """Wait for every small file; raise the first failure."""
        while self.pending:
            self._settle()

    def _settle(self) -> None:
        future, n = self.pending.popleft()
        future.result()
        self.meter.add(n)

    def store(self, fd: int) -> tuple[str, int]:
        """Store the open file ``fd``; return (sha256, size)."""
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            head = fh.read(_SMALL + 1)
            if len(head) <= _SMALL:
                sha = hashlib.sha256(head).hexdigest()
                while len(self.pending) >= _IN_FLIGHT:
                    self._settle()
                future = self.pool.submit(self._put_small, files_key(self.name, sha), head)
                self.pending.append((future, len(head)))
                return sha, len(head)
            return self._stream(fh, head)

    def _put_small(self, key: str, data: bytes) -> None:
        if self.backend.exists(key):  # stored once across versions
            return
        blob = self.backend.open_blob()  # a blob, like artifacts (read-only when local)
        try:
            blob.write(data)
            blob.commit(key)
        except BaseException:
            blob.abort()
            raise

    def _stream(self, fh: IO[bytes], head: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(head)
        blob = self.backend.open_blob()
        try:
            blob.write(head)
            self.meter.add(len(head))
            size = len(head)
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                blob.write(chunk)
                size += len(chunk)
                self.meter.add(len(chunk))
            sha = digest.hexdigest()
            blob.commit(files_key(self.name, sha))
        except BaseException:
            blob.abort()
            raise
        return sha, size
