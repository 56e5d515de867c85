"""A registry in a local folder: the embedded default.

Every object is a file under the folder, at the path its key names, so the layout
reads with ``ls``. Writes follow the crash-safe recipe: write a temporary file in
``<root>/.tmp/``, flush and ``fsync`` it, publish it with ``os.link`` (which fails
if the final name exists: an atomic create-if-absent), then ``fsync`` the folder.
Nothing is ever rewritten in place, so no lock is needed and none is held.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import socket
import time
import uuid
from typing import IO

from modelversions.backends import Backend, BlobWriter
from modelversions.errors import InvalidInputError

__all__ = ["LocalBackend"]

_TMP = ".tmp"
_HOST = socket.gethostname().replace(".", "_") or "host"
_BUFFER = 1 << 20
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalBackend(Backend):
    """Objects as files under ``root`` (created if missing).

    Args:
        root: the folder, or a ``file://`` URI.
        durable: ``fsync`` files and folders before a write returns (default). Turn off
            only for scratch registries: a power loss may then lose recent commits.

    >>> import tempfile
    >>> b = LocalBackend(tempfile.mkdtemp())
    >>> b.create("models/a/x.json", b"1")
    >>> b.list("models/")
    ['models/a/x.json']
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        root = os.fspath(root)
        if root.startswith("file://"):
            root = root[len("file://") :]
        if not root:
            raise InvalidInputError("empty registry folder path")
        self.root = os.path.abspath(root)
        self.url = self.root
        self.durable = durable
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise InvalidInputError(f"registry path {self.root!r} exists and is not a folder")
        self._tmpdir = os.path.join(self.root, _TMP)
        self._known_dirs: set[str] = set()
        self._ensure_dir(self._tmpdir)

    # -- helpers -------------------------------------------------------------------
    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise InvalidInputError(f"invalid storage key {key!r}")
        return os.path.join(self.root, *key.split("/"))

    def _ensure_dir(self, path: str) -> None:
        if path in self._known_dirs:
            return
        missing = []
        probe = path
        while not os.path.isdir(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue
            if self.durable:
                _fsync_dir(os.path.dirname(folder))
        self._known_dirs.add(path)

    def _tmp_path(self) -> str:
        name = f"{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        return os.path.join(self._tmpdir, name)

    def _publish(self, tmp: str, key: str) -> bool:
        """Link a finished temporary into place; False if the key exists."""
        final = self._path(key)
        folder = os.path.dirname(final)
        try:
            self._ensure_dir(folder)
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
            except FileNotFoundError:
                # The folder was removed under us (an empty folder pruned); recreate once.
                self._known_dirs.discard(folder)
                self._ensure_dir(folder)
                os.link(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if self.durable:
            _fsync_dir(folder)
        return True

    # -- the protocol --------------------------------------------------------------
    def read(self, key: str) -> bytes:
        # os.open/os.read cost half of open(): a cold start replays dozens of small entries.
        try:
            fd = os.open(self._path(key), _O_READ)
            try:
                want = os.fstat(fd).st_size + 1  # one read, plus one to see the end
                chunks = []
                while chunk := os.read(fd, want):
                    chunks.append(chunk)
                    want = max(want - len(chunk), 4096)
            finally:
                os.close(fd)
        except (IsADirectoryError, NotADirectoryError):  # a folder of keys, or under a key
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def create(self, key: str, data: bytes) -> None:
        tmp = self._tmp_path()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not self._publish(tmp, key):
            raise FileExistsError(errno.EEXIST, "object exists", key)

    def open_blob(self) -> BlobWriter:
        return _LocalBlob(self)

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (IsADirectoryError, NotADirectoryError):  # a folder of keys, or under a key
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def size(self, key: str) -> int:
        path = self._path(key)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        return os.stat(path).st_size

    def list(self, prefix: str) -> builtins.list[str]:
        head, _, _ = prefix.rpartition("/")
        base = self._path(head) if head else self.root
        keys: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(rel + f for f in filenames if not f.startswith("."))
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError:
            if os.path.isfile(path):
                raise  # a real failure; otherwise a folder of keys or a path under a key

    def local_path(self, key: str) -> str | None:
        path = self._path(key)
        return path if os.path.isfile(path) else None

    def cleanup(self, *, min_age: float = 3600.0, dry_run: bool = False) -> builtins.list[str]:
        removed: builtins.list[str] = []
        try:
            names = os.listdir(self._tmpdir)
        except FileNotFoundError:
            return removed
        now = time.time()
        for name in sorted(names):
            path = os.path.join(self._tmpdir, name)
            host, _, rest = name.partition(".")
            pid_text = rest.partition(".")[0]
            dead = host == _HOST and pid_text.isdigit() and not _pid_alive(int(pid_text))
            try:
                old = now - os.stat(path).st_mtime > min_age
            except FileNotFoundError:
                continue
            if not (dead or old):
                continue
            removed.append(f"{_TMP}/{name}")
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return removed


class _LocalBlob(BlobWriter):
    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        self._tmp = backend._tmp_path()
        self._fh: IO[bytes] | None = open(self._tmp, "xb", buffering=_BUFFER)  # noqa: SIM115
        if os.name == "posix":  # stored artifacts are read-only (0o444); unlink still works
            os.fchmod(self._fh.fileno(), 0o444)
        self._pos = 0
        self._synced = -1  # position of the last fsync
        #: The file being written: the serializer hashes it by reading it back.
        self.readback_path = self._tmp

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._fh is None:
            raise ValueError("write to a closed blob")
        n = self._fh.write(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def sync(self) -> None:
        """Flush and fsync what was written so far (commit then has nothing left to sync)."""
        if self._fh is not None and self._backend.durable:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._synced = self._pos

    def commit(self, key: str) -> bool:
        fh = self._fh
        if fh is None:
            raise ValueError("blob already committed or aborted")
        try:
            fh.flush()
            if self._backend.durable and self._synced != self._pos:
                os.fsync(fh.fileno())
        finally:
            self._fh = None
            fh.close()
        try:
            created = self._backend._publish(self._tmp, key)
        except BaseException:
            self.abort()
            raise
        if not created and self._backend.durable:
            # The same bytes are stored already, maybe by a writer that failed or died
            # before fsyncing the folder: the caller is about to rely on them.
            _fsync_dir(os.path.dirname(self._backend._path(key)))
        return created

    def abort(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
