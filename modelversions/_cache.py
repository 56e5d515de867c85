"""A local read cache for artifacts of remote backends.

Files are named by their sha256 and only ever moved into place after their bytes
were hashed and matched, so a hit can never serve stale or foreign bytes. The
cache is bounded: after each insert, least recently used files are removed until
the total fits ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from modelversions.backends import Backend
from modelversions.errors import InvalidInputError
from modelversions.serialization import _check, hash_stream

__all__ = ["ReadCache"]


class ReadCache:
    """Content-addressed files under ``root``, at most ``max_bytes`` in all."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise InvalidInputError(f"cache_size must be positive, not {max_bytes}")
        self.root = os.path.abspath(os.fspath(root))
        self.max_bytes = max_bytes
        os.makedirs(self.root, exist_ok=True)

    def path_for(self, sha256: str) -> str:
        return os.path.join(self.root, sha256[:2], sha256)

    def fetch(self, backend: Backend, key: str, sha256: str, size: int, what: str) -> str:
        """Return a local path holding the verified bytes of ``key``, downloading on a miss."""
        path = self.path_for(sha256)
        try:
            if os.stat(path).st_size == size:
                os.utime(path)  # recency for eviction
                return path
        except FileNotFoundError:
            pass
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
        self._evict(keep=path)
        return path

    def _evict(self, *, keep: str) -> None:
        entries = []
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                if f.startswith("."):
                    continue
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except FileNotFoundError:
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
            total -= size

    def clear(self) -> None:
        """Remove every cached file."""
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, f))
