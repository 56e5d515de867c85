"""A local read cache for artifacts of remote backends.

Files are named by their sha256 and only ever moved into place after their bytes
were hashed and matched. A hit is re-verified before it is served: the first hit of a
file in a process hashes it (a file damaged on disk, or edited, is discarded and
downloaded again); later hits skip the hash while the file's identity and
timestamps (inode, size, mtime, ctime) are those this process verified. The cache
is bounded: after each insert, least recently used files are removed until the
total fits ``max_bytes`` (the file just inserted is always kept, so one artifact
larger than the bound still loads). Several processes may share one cache folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time

from modelversions.backends import Backend
from modelversions.errors import InvalidInputError
from modelversions.serialization import _check, hash_file, hash_stream

__all__ = ["ReadCache"]

log = logging.getLogger(__name__)

_MEMO = 4096  # verified signatures remembered per cache
_STALE_PART = 3600.0  # seconds after which a partial download is a dead writer's


class ReadCache:
    """Content-addressed files under ``root``, at most ``max_bytes`` in all."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise InvalidInputError(f"cache_size must be positive, not {max_bytes}")
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.max_bytes = max_bytes
        os.makedirs(self.root, exist_ok=True)
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()

    def path_for(self, sha256: str) -> str:
        return os.path.join(self.root, sha256[:2], sha256)

    def fetch(self, backend: Backend, key: str, sha256: str, size: int, what: str) -> str:
        """Return a local path holding the verified bytes of ``key``, downloading on a miss."""
        path = self.path_for(sha256)
        if self._hit(path, sha256, size):
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, backend.open_read(key) as src:
                actual, actual_size = hash_stream(src, out)
            _check(what, sha256, actual, size, actual_size)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._remember(path)
        self._evict(keep=path)
        return path

    @staticmethod
    def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _remember(self, path: str) -> None:
        try:
            sig = self._signature(os.stat(path))
        except FileNotFoundError:
            return
        with self._lock:
            if len(self._verified) >= _MEMO:
                self._verified.clear()
            self._verified[path] = sig

    def _hit(self, path: str, sha256: str, size: int) -> bool:
        """True when ``path`` holds the right bytes (verified now or earlier in this process)."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        with self._lock:
            known = self._verified.get(path) == self._signature(st)
        if not known:
            actual, actual_size = (None, st.st_size) if st.st_size != size else hash_file(path)
            if actual != sha256 or actual_size != size:
                log.warning(
                    "discarding damaged cache entry %s (%d bytes, expected %d): downloading again",
                    path,
                    actual_size,
                    size,
                )
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return False
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)  # recency for eviction
        self._remember(path)
        return True

    def _evict(self, *, keep: str) -> None:
        entries = []
        total = 0
        now = time.time()
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except FileNotFoundError:
                    continue
                if f.startswith("."):
                    if f.startswith(".part-") and now - st.st_mtime > _STALE_PART:
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
        """Remove every cached file."""
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, f))
        with self._lock:
            self._verified.clear()
