"""A local read cache for artifacts of remote backends.

The cache owns one subfolder of the folder it is given, ``<cache_dir>/modelversions/``,
which it creates and marks with a ``CACHEDIR.TAG`` (the Cache Directory Tagging spec,
so backup tools skip it). It only ever writes, serves and removes files it wrote
there: ``<sha256[:2]>/<sha256>`` and its own ``.part-`` temporaries. Anything else
(a ``report.pdf`` beside the subfolder, a foreign file or a symlink inside it) is
never touched; a symlink is never followed.

Files are named by their sha256 and only ever moved into place after their bytes
were hashed and matched. :meth:`ReadCache.fetch` returns an **open** file whose
bytes were verified, not a path: the caller unpickles that very file, so a file
renamed into the cache between the check and the load is never read. A hit is
re-verified before it is served: the first hit of a file in a process hashes it
through the descriptor (a file damaged on disk, or edited, is discarded and
downloaded again); later hits skip the hash while the open file's identity and
timestamps (``os.fstat``: inode, size, mtime, ctime) are those this process
verified. The cache is bounded: after each insert, least recently used files are
removed until the total fits ``max_bytes`` (the file just inserted is always kept,
so one artifact larger than the bound still loads). Several processes may share one
cache folder.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
import threading
import time
from typing import IO

from modelversions.backends import Backend
from modelversions.errors import IntegrityError, InvalidInputError, StorageError
from modelversions.serialization import _check, hash_stream, open_verifiable

__all__ = ["ReadCache"]

log = logging.getLogger(__name__)

_MEMO = 4096  # verified signatures remembered per cache
_STALE_PART = 3600.0  # seconds after which a partial download is a dead writer's
_SUBDIR = "modelversions"
_TAG = "CACHEDIR.TAG"
_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by modelversions.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
_SHA = re.compile(r"[0-9a-f]{64}\Z")
_SHARD = re.compile(r"[0-9a-f]{2}\Z")
_PART = re.compile(r"\.part-[A-Za-z0-9_]+\Z")  # tempfile.mkstemp(prefix=".part-")


def _is_own_file(shard: str, name: str) -> bool:
    """A name this cache writes inside ``<sub>/<shard>/``: a sha256 or a ``.part-`` file."""
    if not _SHARD.match(shard):
        return False
    return bool(_SHA.match(name) and name[:2] == shard) or bool(_PART.match(name))


class ReadCache:
    """Content-addressed files under ``<root>/modelversions/``, at most ``max_bytes`` in all."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise InvalidInputError(f"cache_size must be positive, not {max_bytes}")
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.max_bytes = max_bytes
        #: The subfolder the cache owns (created and tagged); the only place it writes.
        self.folder = os.path.join(self.root, _SUBDIR)
        os.makedirs(self.root, exist_ok=True)  # the given folder itself may be a symlink
        self._own_dir(self.folder)
        self._tag()
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _own_dir(path: str) -> None:
        """Create ``path`` as a real folder; refuse a symlink or a file in its place."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
            raise StorageError(
                errno.ENOTDIR, f"cache folder {path} is {kind}; refusing to use it", path
            )

    def _tag(self) -> None:
        tag = os.path.join(self.folder, _TAG)
        try:
            fd = os.open(tag, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0))
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(_TAG_TEXT)

    def path_for(self, sha256: str) -> str:
        return os.path.join(self.folder, sha256[:2], sha256)

    def fetch(self, backend: Backend, key: str, sha256: str, size: int, what: str) -> IO[bytes]:
        """Return an open file (at offset 0) holding the verified bytes of ``key``.

        Served from the cache when a cached file checks out, else downloaded (hashed
        on the way) into the cache. The caller closes the file; load from it, never
        from its path.

        Raises:
            IntegrityError: the downloaded bytes do not match ``sha256``/``size``, or
                ``sha256`` is not a lowercase hex sha256.
            StorageError: the cache's folder for this file is a symlink.
        """
        if not _SHA.match(sha256):  # a damaged record: never a path to build on
            raise IntegrityError(f"{what}: the record's sha256 {sha256!r} is not a sha256")
        path = self.path_for(sha256)
        self._own_dir(self.folder)  # both folders on the way: real folders, never links
        self._own_dir(os.path.dirname(path))
        hit = self._hit(path, sha256, size, what)
        if hit is not None:
            return hit
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        out = os.fdopen(fd, "w+b")
        try:
            with backend.open_read(key) as src:
                actual, actual_size = hash_stream(src, out)
            out.flush()
            _check(what, sha256, actual, size, actual_size)
            if os.name == "posix":
                os.fchmod(fd, 0o444)  # nothing writes a cached file again
            os.replace(tmp, path)  # replaces a planted link itself, never its target
            out.seek(0)
        except BaseException:
            out.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._remember(path, os.fstat(fd))
        self._evict(keep=path)
        return out

    @staticmethod
    def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _remember(self, path: str, st: os.stat_result) -> None:
        with self._lock:
            if len(self._verified) >= _MEMO:
                self._verified.clear()
            self._verified[path] = self._signature(st)

    def _hit(self, path: str, sha256: str, size: int, what: str) -> IO[bytes] | None:
        """The cached file, open and verified (now or earlier in this process), or None."""
        try:
            fh, st = open_verifiable(path, what)
        except FileNotFoundError:
            return None
        except StorageError as exc:  # a symlink or a non-file: not served, not followed
            log.warning("ignoring %s in the cache: %s", path, exc)
            return None
        try:
            with self._lock:
                known = self._verified.get(path) == self._signature(st)
            if not known:
                actual, actual_size = (None, st.st_size) if st.st_size != size else hash_stream(fh)
                if actual != sha256 or actual_size != size:
                    log.warning(
                        "discarding damaged cache entry %s (%d bytes, expected %d): "
                        "downloading again",
                        path,
                        actual_size,
                        size,
                    )
                    fh.close()
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    return None
                fh.seek(0)
            with contextlib.suppress(OSError):  # recency for eviction, on the served file
                os.utime(fh.fileno() if os.utime in os.supports_fd else path)
            self._remember(path, os.fstat(fh.fileno()))
        except BaseException:
            fh.close()
            raise
        return fh

    def _own_files(self) -> list[tuple[str, os.stat_result]]:
        """The regular files this cache wrote, with their ``lstat``; nothing else."""
        found: list[tuple[str, os.stat_result]] = []
        try:
            shards = os.listdir(self.folder)
        except FileNotFoundError:
            return found
        for shard in shards:
            folder = os.path.join(self.folder, shard)
            if not _SHARD.match(shard):
                continue
            try:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    continue  # a symlink (or a file) named like a shard: never followed
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if not _is_own_file(shard, name):
                    continue
                p = os.path.join(folder, name)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append((p, st))
        return found

    def _evict(self, *, keep: str) -> None:
        entries = []
        total = 0
        now = time.time()
        for p, st in self._own_files():
            if os.path.basename(p).startswith("."):
                if now - st.st_mtime > _STALE_PART:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)  # a download that died
                continue
            entries.append((st.st_mtime, st.st_size, p))
            total += st.st_size
        for _mtime, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
            with self._lock:
                self._verified.pop(p, None)
            total -= size

    def clear(self) -> None:
        """Remove every cached file this cache wrote (and nothing else).

        Downloads in flight (``.part-`` files younger than an hour) are left to finish.
        """
        now = time.time()
        for p, st in self._own_files():
            if os.path.basename(p).startswith(".") and now - st.st_mtime <= _STALE_PART:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        with self._lock:
            self._verified.clear()
