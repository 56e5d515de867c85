"""A registry in a local folder: the embedded default.

Every object is a file under the folder, at the path its key names, so the layout
reads with ``ls``. Writes follow the crash-safe recipe: write a temporary file in
``<root>/.tmp/``, flush and ``fsync`` it, publish it with ``os.link`` (which fails
if the final name exists: an atomic create-if-absent), then ``fsync`` the folder.
Nothing is ever rewritten in place, so no lock is needed and none is held.

Nothing below the root is followed if it is a symbolic link (the root itself may be
one). On POSIX every key is resolved by walking from the root one folder at a time,
each opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor,
and every file operation (open, link, unlink, mkdir) is relative to the descriptor
of the folder that holds it: a symlink planted anywhere below the root, even while
an operation runs, makes it fail with :class:`~modelversions.errors.StorageError`,
never reach outside the root. Elsewhere (Windows) each component is checked with
``lstat`` before use (a planted link is refused; a link swapped in between the check
and the use is not caught there).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import socket
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, TypeVar

from modelversions.backends import Backend, BlobWriter
from modelversions.errors import InvalidInputError, StorageError

__all__ = ["LocalBackend"]

_TMP = ".tmp"
_HOST = socket.gethostname().replace(".", "_") or "host"
_BUFFER = 1 << 20
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_READ = os.O_RDONLY | _CLOEXEC | getattr(os, "O_BINARY", 0) | _NOFOLLOW
_O_READ_LEAF = _O_READ | getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not block
_O_WRITE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | getattr(os, "O_BINARY", 0)
_O_DIR = os.O_RDONLY | _CLOEXEC | getattr(os, "O_DIRECTORY", 0)
#: Folder descriptors: walk from the root with ``*at`` calls (race-free).
_FDS = (
    os.name == "posix"
    and hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and {os.open, os.link, os.unlink, os.mkdir, os.stat} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)
_CACHED_DIRS = 16  # folder descriptors a backend keeps for reads

#: A folder: its descriptor (POSIX) or its path (the lstat fallback).
_Dir = int | str
_T = TypeVar("_T")


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
    except (OverflowError, OSError):
        return False
    return True


def _at(folder: _Dir, name: str) -> str:
    """The name to pass with ``dir_fd=_fd(folder)``."""
    return name if isinstance(folder, int) else os.path.join(folder, name)


def _fd(folder: _Dir) -> int | None:
    return folder if isinstance(folder, int) else None


def _close(folder: _Dir) -> None:
    if isinstance(folder, int):
        os.close(folder)


def _fsync(folder: _Dir) -> None:
    if isinstance(folder, int):
        os.fsync(folder)
    else:
        _fsync_dir(folder)


class LocalBackend(Backend):
    """Objects as files under ``root`` (created if missing).

    Args:
        root: the folder, or a ``file://`` URI; ``~`` is expanded. The root may be a
            symbolic link to a folder; nothing below it may be one.
        durable: ``fsync`` files and folders before a write returns (default). Turn off
            only for scratch registries: a power loss may then lose recent commits.

    Raises:
        StorageError: the path exists and is not a folder, or cannot be created
            (the message names the path and the reason).

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
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = self.root
        self.durable = durable
        self._tmpdir = os.path.join(self.root, _TMP)
        self._lock = threading.Lock()
        self._dirs: OrderedDict[str, int] = OrderedDict()  # folder -> descriptor, for reads
        self._make_root()
        if not os.path.lexists(self._tmpdir):  # a planted .tmp link: verify() reports it
            with contextlib.suppress(FileExistsError):
                os.mkdir(self._tmpdir)
                if self.durable:
                    _fsync_dir(self.root)

    # -- helpers -------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return os.path.join(self.root, *self._split(key))

    @staticmethod
    def _split(key: str) -> list[str]:
        if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise InvalidInputError(f"invalid storage key {key!r}")
        parts = key.split("/")
        if "" in parts or "." in parts:
            raise InvalidInputError(f"invalid storage key {key!r}")
        return parts

    def _make_root(self) -> None:
        """Create the root folder (and missing parents); StorageError saying why not."""
        root = self.root
        if os.path.isdir(root):
            return
        if os.path.lexists(root):
            what = "a broken symbolic link" if os.path.islink(root) else "a file, not a folder"
            raise StorageError(f"the registry path {root!r} exists and is {what}")
        missing = []
        probe = root
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
                if os.path.isdir(folder):
                    continue
                raise StorageError(
                    f"cannot create the registry folder {root!r}: {folder!r} is a file"
                ) from None
            except OSError as exc:
                raise StorageError(
                    f"cannot create the registry folder {root!r}: "
                    f"{exc.strerror or exc} ({exc.filename or folder!r})"
                ) from exc
            if self.durable:
                _fsync_dir(os.path.dirname(folder))

    def _symlink_error(self, parts: builtins.list[str]) -> StorageError:
        path = os.path.join(self.root, *parts)
        return StorageError(
            f"{path!r} is a symbolic link: the registry never follows links below its "
            f"folder {self.root!r}; remove it (or replace it with what it points to)"
        )

    def _check_error(self, folder: _Dir, parts: builtins.list[str], exc: OSError) -> BaseException:
        """What an OSError on ``parts[-1]`` in ``folder`` means: a symlink, or itself."""
        try:
            st = os.stat(_at(folder, parts[-1]), dir_fd=_fd(folder), follow_symlinks=False)
        except OSError:
            return exc
        if stat.S_ISLNK(st.st_mode):
            return self._symlink_error(parts)
        return exc

    def _open_dir(self, folder: _Dir, parts: builtins.list[str]) -> _Dir:
        """Open ``parts[-1]`` in ``folder`` without following a symlink."""
        name = parts[-1]
        if not isinstance(folder, int):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or getattr(os.path, "isjunction", bool)(path):
                raise self._symlink_error(parts)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", path)
            return path
        try:
            return os.open(name, _O_DIR | _NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._check_error(folder, parts, exc) from None

    def _open_root(self, create: bool) -> _Dir:
        if not _FDS:
            if not os.path.isdir(self.root):
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "no registry folder", self.root)
                self._make_root()
            return self.root
        try:
            return os.open(self.root, _O_DIR)
        except FileNotFoundError:
            if not create:
                raise
        self._make_root()
        return os.open(self.root, _O_DIR)

    def _walk(self, parts: builtins.list[str], *, create: bool) -> _Dir:
        """The folder ``root/parts...`` (the caller closes it), never through a symlink.

        Raises FileNotFoundError/NotADirectoryError when it is missing (unless
        ``create``: missing folders are made, and made durable) and StorageError when
        a component is a symbolic link.
        """
        folder = self._open_root(create)
        try:
            for i in range(len(parts)):
                try:
                    sub = self._open_dir(folder, parts[: i + 1])
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(_at(folder, parts[i]), 0o777, dir_fd=_fd(folder))
                        if self.durable:
                            _fsync(folder)
                    sub = self._open_dir(folder, parts[: i + 1])
                _close(folder)
                folder = sub
        except BaseException:
            _close(folder)
            raise
        return folder

    def _in_dir(self, parts: builtins.list[str], op: Callable[[_Dir, str], _T]) -> _T:
        """``op(folder, name)`` on the folder holding ``parts``, for reads.

        Folder descriptors are kept (up to a few) so a cold start's many small reads
        do not walk from the root each time. A cached folder may have been removed or
        moved since: a miss through it is retried once from a fresh walk.
        """
        if not _FDS:
            folder = self._walk(parts[:-1], create=False)
            return op(folder, parts[-1])
        dkey = "/".join(parts[:-1])
        with self._lock:
            cached = self._dirs.get(dkey)
            walked = cached is None
            if cached is None:
                cached = self._walk_cached(dkey, parts[:-1])
            else:
                self._dirs.move_to_end(dkey)
            while True:
                try:
                    return op(cached, parts[-1])
                except FileNotFoundError:
                    if walked:
                        raise
                except OSError as exc:
                    raise self._check_error(cached, parts, exc) from None
                walked = True
                cached = self._walk_cached(dkey, parts[:-1])

    def _walk_cached(self, dkey: str, parts: builtins.list[str]) -> int:
        old = self._dirs.pop(dkey, None)
        if old is not None:
            os.close(old)
        fresh = self._walk(parts, create=False)
        assert isinstance(fresh, int)
        self._dirs[dkey] = fresh
        while len(self._dirs) > _CACHED_DIRS:
            os.close(self._dirs.popitem(last=False)[1])
        return fresh

    def _open_leaf(self, parts: builtins.list[str], flags: int) -> int:
        """Open the file ``parts`` for reading, never through a symlink."""

        def op(folder: _Dir, name: str) -> int:
            if not isinstance(folder, int) and os.path.islink(os.path.join(folder, name)):
                raise self._symlink_error(parts)
            return os.open(_at(folder, name), flags, dir_fd=_fd(folder))

        return self._in_dir(parts, op)

    def _leaf_stat(self, parts: builtins.list[str]) -> os.stat_result | None:
        """The ``lstat`` of a key's file (None if missing); StorageError on a symlink."""

        def op(folder: _Dir, name: str) -> os.stat_result:
            return os.stat(_at(folder, name), dir_fd=_fd(folder), follow_symlinks=False)

        try:
            st = self._in_dir(parts, op)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise self._symlink_error(parts)
        return st

    def _forget_dirs(self) -> None:
        with self._lock:
            while self._dirs:
                os.close(self._dirs.popitem()[1])

    def _tmp_name(self) -> str:
        return f"{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"

    def _tmp_path(self) -> str:
        return os.path.join(self._tmpdir, self._tmp_name())

    def _new_tmp(self, name: str) -> int:
        """Create ``.tmp/<name>`` exclusively (never through a symlink); its descriptor."""
        tmpdir = self._walk([_TMP], create=True)
        try:
            return os.open(_at(tmpdir, name), _O_WRITE_NEW | _NOFOLLOW, 0o644, dir_fd=_fd(tmpdir))
        finally:
            _close(tmpdir)

    def _remove_tmp(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            tmpdir = self._walk([_TMP], create=False)
            try:
                os.unlink(_at(tmpdir, name), dir_fd=_fd(tmpdir))
            finally:
                _close(tmpdir)

    def _publish(
        self,
        tmp_name: str,
        key: str,
        *,
        sync_existing: bool = False,
        tmpdir: _Dir | None = None,
    ) -> bool:
        """Link a finished temporary into place (then unlink it); False if the key exists.

        ``tmpdir``: the caller's open ``.tmp`` folder (else it is walked to, and closed).
        """
        parts = self._split(key)
        own = tmpdir is None
        if tmpdir is None:
            try:
                tmpdir = self._walk([_TMP], create=False)
            except FileNotFoundError:
                raise StorageError(
                    f"the temporary file of {key} vanished before it was published "
                    f"({self._tmpdir} was removed); nothing was stored"
                ) from None
        try:
            for attempt in (0, 1):
                folder = self._walk(parts[:-1], create=True)
                try:
                    try:
                        self._link(tmpdir, tmp_name, folder, parts[-1])
                    except FileExistsError as exc:
                        error = self._check_error(folder, parts, exc)
                        if error is not exc:
                            raise error from None
                        if sync_existing and self.durable:
                            # The same bytes are stored already, maybe by a writer that
                            # died before fsyncing the folder: the caller relies on them.
                            _fsync(folder)
                        return False
                    except FileNotFoundError:
                        try:
                            os.stat(
                                _at(tmpdir, tmp_name), dir_fd=_fd(tmpdir), follow_symlinks=False
                            )
                        except FileNotFoundError:
                            raise StorageError(
                                f"the temporary file of {key} ({_TMP}/{tmp_name}) vanished "
                                "before it was published (removed by a repair in another "
                                "process?); nothing was stored"
                            ) from None
                        if attempt:
                            raise
                        continue  # the folder was removed under us: walk (and create) again
                    if self.durable:
                        _fsync(folder)
                    return True
                finally:
                    _close(folder)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_at(tmpdir, tmp_name), dir_fd=_fd(tmpdir))
            if own:
                _close(tmpdir)

    @staticmethod
    def _link(src_dir: _Dir, src: str, dst_dir: _Dir, dst: str) -> None:
        if isinstance(src_dir, int) and isinstance(dst_dir, int):
            os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
        else:
            os.link(_at(src_dir, src), _at(dst_dir, dst))

    # -- the protocol --------------------------------------------------------------
    def read(self, key: str) -> bytes:
        # os.open/os.read cost half of open(): a cold start replays dozens of small entries.
        parts = self._split(key)
        try:
            fd = self._open_leaf(parts, _O_READ_LEAF)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    self._not_a_file(key, st)
                want = st.st_size + 1  # one read, plus one to see the end
                chunks = []
                while chunk := os.read(fd, want):
                    chunks.append(chunk)
                    want = max(want - len(chunk), 4096)
            finally:
                os.close(fd)
        except (IsADirectoryError, NotADirectoryError):  # a folder of keys, or under a key
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _not_a_file(self, key: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder of keys", key)
        raise StorageError(f"{self._path(key)!r} is not a regular file; refusing to read it")

    def create(self, key: str, data: bytes) -> None:
        self._split(key)
        name = self._tmp_name()
        tmpdir = self._walk([_TMP], create=True)
        try:
            try:
                fd = os.open(_at(tmpdir, name), _O_WRITE_NEW | _NOFOLLOW, 0o644, dir_fd=_fd(tmpdir))
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    if self.durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                created = self._publish(name, key, tmpdir=tmpdir)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(_at(tmpdir, name), dir_fd=_fd(tmpdir))
                raise
        finally:
            _close(tmpdir)
        if not created:
            raise FileExistsError(errno.EEXIST, "object exists", key)

    def open_blob(self) -> BlobWriter:
        return _LocalBlob(self)

    def open_read(self, key: str) -> IO[bytes]:
        parts = self._split(key)
        try:
            fd = self._open_leaf(parts, _O_READ_LEAF)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    self._not_a_file(key, st)
                if hasattr(os, "set_blocking"):
                    os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
        except (IsADirectoryError, NotADirectoryError):  # a folder of keys, or under a key
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None
        return open(fd, "rb")

    def exists(self, key: str) -> bool:
        st = self._leaf_stat(self._split(key))
        return st is not None and stat.S_ISREG(st.st_mode)

    def size(self, key: str) -> int:
        st = self._leaf_stat(self._split(key))
        if st is None or not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        return st.st_size

    def list(self, prefix: str) -> builtins.list[str]:
        """Every key under ``prefix``; StorageError on a symlink met on the way."""
        head, _, _ = prefix.rpartition("/")
        parts = self._split(head) if head else []
        try:
            folder = self._walk(parts, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keys: builtins.list[str] = []
        try:
            self._scan(folder, parts, keys, None)
        finally:
            _close(folder)
        return sorted(k for k in keys if k.startswith(prefix))

    def _scan(
        self,
        folder: _Dir,
        parts: builtins.list[str],
        keys: builtins.list[str],
        links: builtins.list[str] | None,
    ) -> None:
        """Collect the keys below ``folder``; symlinks raise, or go to ``links`` if given.

        With ``links``, hidden entries (``.tmp``) are scanned too and nothing raises
        for a symlink.
        """
        with os.scandir(folder) as entries:
            found = [(e.name, e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_link, is_dir in sorted(found):
            if name.startswith(".") and links is None:
                continue
            here = [*parts, name]
            if is_link:
                if links is None:
                    raise self._symlink_error(here)
                links.append("/".join(here))
                continue
            if not is_dir:
                keys.append("/".join(here))
                continue
            try:
                sub = self._open_dir(folder, here)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed or replaced meanwhile
            except StorageError:
                if links is None:
                    raise
                links.append("/".join(here))
                continue
            try:
                self._scan(sub, here, keys, links)
            finally:
                _close(sub)

    def unsafe_entries(self) -> builtins.list[str]:
        """Paths below the root (``/``-separated, hidden ones too) that are symlinks."""
        try:
            folder = self._walk([], create=False)
        except FileNotFoundError:
            return []
        links: builtins.list[str] = []
        try:
            self._scan(folder, [], [], links)
        finally:
            _close(folder)
        return sorted(links)

    def delete(self, key: str) -> None:
        parts = self._split(key)
        try:
            folder = self._walk(parts[:-1], create=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            name = _at(folder, parts[-1])
            try:
                st = os.stat(name, dir_fd=_fd(folder), follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return
            if stat.S_ISLNK(st.st_mode):
                raise self._symlink_error(parts)
            if stat.S_ISDIR(st.st_mode):
                return  # a folder of keys
            # unlink never follows a link: one swapped in since the check goes, not its target.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=_fd(folder))
        finally:
            _close(folder)

    def local_path(self, key: str) -> str | None:
        """The file's path, after checking no component below the root is a symlink.

        The caller opens the path again: a folder swapped for a symlink in between is
        not caught here (open the file with ``O_NOFOLLOW`` and check what you read).
        """
        parts = self._split(key)
        st = self._leaf_stat(parts)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        return os.path.join(self.root, *parts)

    def cleanup(self, *, min_age: float = 3600.0, dry_run: bool = False) -> builtins.list[str]:
        """Remove temporaries older than ``min_age`` seconds whose writer is not alive.

        A temporary younger than ``min_age`` is never removed, whatever its name says
        (a writer in another PID namespace may share this host name and a process id).
        An older one is kept too while its process id is alive on this host. Symlinks
        in ``.tmp`` are never touched (``unsafe_entries`` reports them).
        """
        removed: builtins.list[str] = []
        try:
            tmpdir = self._walk([_TMP], create=False)
        except (FileNotFoundError, NotADirectoryError):
            return removed
        try:
            with os.scandir(tmpdir) as entries:
                names = sorted(e.name for e in entries)
            now = time.time()
            for name in names:
                where = _at(tmpdir, name)
                try:
                    st = os.stat(where, dir_fd=_fd(tmpdir), follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if now - st.st_mtime <= min_age:
                    continue  # maybe a live writer's, whatever its name says
                host, _, rest = name.partition(".")
                pid_text = rest.partition(".")[0]
                if host == _HOST and pid_text.isdigit() and _pid_alive(int(pid_text)):
                    continue
                removed.append(f"{_TMP}/{name}")
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(where, dir_fd=_fd(tmpdir))
        finally:
            _close(tmpdir)
        return removed

    def close(self) -> None:
        """Close the folder descriptors kept for reads (reopened on the next read)."""
        self._forget_dirs()

    def __del__(self, _close_fd: Callable[[int], None] = os.close) -> None:
        # Bound at import: a collection may run at any moment, even at interpreter exit.
        with contextlib.suppress(Exception):
            for fd in getattr(self, "_dirs", {}).values():
                _close_fd(fd)


class _LocalBlob(BlobWriter):
    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        self._name = backend._tmp_name()
        self._tmp = os.path.join(backend._tmpdir, self._name)
        fd = backend._new_tmp(self._name)
        try:
            self._fh: IO[bytes] | None = open(fd, "wb", buffering=_BUFFER)  # noqa: SIM115
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                backend._remove_tmp(self._name)
            raise
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
            return self._backend._publish(self._name, key, sync_existing=True)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
        with contextlib.suppress(OSError):
            self._backend._remove_tmp(self._name)
