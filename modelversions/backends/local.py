"""A registry in a local folder: the embedded default.

Every object is a file under the folder, at the path its key names, so the layout
reads with ``ls``. Writes follow the crash-safe recipe: write a temporary file,
flush and ``fsync`` it, publish it with ``os.link`` (which fails if the final name
exists: an atomic create-if-absent), then ``fsync`` the folder. On Linux the
temporary is an unnamed file (:mod:`modelversions.backends._unnamed`), in the key's
own folder for ``create`` and in ``<root>/.tmp/`` for a blob; elsewhere it is a
named file in ``<root>/.tmp/``, removed after the link. Nothing is ever rewritten in
place, so no lock is needed and none is held.

This module owns the storage protocol on a folder (read, create, publishing blobs,
list, delete, cleanup of stale temporaries) and the temporaries' names; the blob
writer is :mod:`modelversions.backends._local_blob`. How a key's folder
is reached lives in :mod:`modelversions.backends._safepath`: every operation here
acts on a name relative to a folder opened there, so nothing below the root is ever
followed if it is a symbolic link (the root itself may be one); a planted link makes
the operation fail with :class:`~modelversions.errors.StorageError`, never reach
outside the root. This module never opens a path below the root by its full name,
except the one :meth:`LocalBackend.local_path` returns after that check.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable
from typing import IO

from modelversions._util import host_name
from modelversions.backends import Backend, BlobWriter, _unnamed
from modelversions.backends._local_blob import LocalBlob
from modelversions.backends._safepath import (
    O_READ_LEAF,
    O_WRITE_NEW,
    Dir,
    SafeRoot,
    at,
    close_dir,
    fd_of,
    fsync_dir,
    fsync_path,
    link,
    split_key,
)
from modelversions.errors import InvalidInputError, StorageError

__all__ = ["LocalBackend"]

_TMP = ".tmp"
_HOST = host_name().replace(".", "_") or "host"


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
        self._safe = SafeRoot(self.root, durable=durable)
        self._tmpdir = os.path.join(self.root, _TMP)
        self._unnamed: bool | None = None  # whether creates write unnamed files; None: unknown
        self._safe.make_root()
        if not os.path.lexists(self._tmpdir):  # a planted .tmp link: verify() reports it
            with contextlib.suppress(FileExistsError):
                os.mkdir(self._tmpdir)
                if self.durable:
                    fsync_path(self.root)

    @property
    def durable(self) -> bool:
        """Whether writes ``fsync`` files and folders before they return."""
        return self._safe.durable

    @durable.setter
    def durable(self, value: bool) -> None:
        self._safe.durable = value

    # -- helpers -------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return os.path.join(self.root, *split_key(key))

    def _tmp_name(self) -> str:
        return f"{_HOST}.{os.getpid()}.{os.urandom(16).hex()}.tmp"

    def _tmp_path(self) -> str:
        return os.path.join(self._tmpdir, self._tmp_name())

    def _new_tmp(self, name: str) -> int:
        """Create ``.tmp/<name>`` exclusively (never through a symlink); its descriptor."""
        tmpdir = self._safe.walk([_TMP], create=True)
        try:
            return os.open(at(tmpdir, name), O_WRITE_NEW, 0o644, dir_fd=fd_of(tmpdir))
        finally:
            close_dir(tmpdir)

    def _new_unnamed(self) -> int | None:
        """An unnamed temporary in ``.tmp`` (see ``_unnamed``); None where unsupported."""
        if not self._unnamed_ok():
            return None
        tmpdir = self._safe.walk([_TMP], create=True)
        try:
            fd = _unnamed.open_in(tmpdir) if isinstance(tmpdir, int) else None
        finally:
            close_dir(tmpdir)
        if fd is None:
            self._unnamed = False
        return fd

    def _unnamed_ok(self) -> bool:
        """Whether writes may use unnamed files here: checked once, by linking one in
        ``.tmp`` under a temporary's name (then removed)."""
        if self._unnamed is None:
            ok = _unnamed.available()
            if ok:
                tmpdir = self._safe.walk([_TMP], create=True)
                try:
                    ok = isinstance(tmpdir, int) and _unnamed.links_in(tmpdir, self._tmp_name())
                finally:
                    close_dir(tmpdir)
            self._unnamed = ok
        return self._unnamed

    def _remove_tmp(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            tmpdir = self._safe.walk([_TMP], create=False)
            try:
                os.unlink(at(tmpdir, name), dir_fd=fd_of(tmpdir))
            finally:
                close_dir(tmpdir)

    def _publish(
        self,
        tmp_name: str,
        key: str,
        *,
        sync_existing: bool = False,
        tmpdir: Dir | None = None,
        finish: Callable[[bool], None] | None = None,
        unnamed: int | None = None,
    ) -> bool:
        """Link a finished temporary into place (then unlink it); False if the key exists.

        ``tmpdir``: the caller's open ``.tmp`` folder (else it is walked to, and closed).
        ``unnamed``: the temporary is this unnamed file (``tmp_name`` is unused): it is
        linked through its descriptor, and cannot vanish or be left behind.
        ``finish(sync)``: closes the caller's open temporary, fsyncing it if ``sync``;
        called before the link, with ``sync=False`` if the key is in its folder already
        (an artifact saved again: whoever linked that file made its bytes durable
        first; the temporary is dropped without an fsync).
        """
        parts = split_key(key)
        own = tmpdir is None and unnamed is None
        if own:
            try:
                tmpdir = self._safe.walk([_TMP], create=False)
            except FileNotFoundError:
                raise StorageError(
                    f"the temporary file of {key} vanished before it was published "
                    f"({self._tmpdir} was removed); nothing was stored"
                ) from None
        try:
            for attempt in (0, 1):
                folder = self._safe.walk(parts[:-1], create=True)
                try:
                    try:
                        if finish is not None:
                            found = self._has(folder, parts[-1])
                            done, finish = finish, None
                            done(not found)
                            if found:
                                raise FileExistsError(errno.EEXIST, "object exists", key)
                        if unnamed is None:
                            assert tmpdir is not None
                            link(tmpdir, tmp_name, folder, parts[-1])
                        else:
                            assert isinstance(folder, int)
                            _unnamed.link(unnamed, folder, parts[-1])
                    except FileExistsError as exc:
                        error = self._safe.check_error(folder, parts, exc)
                        if error is not exc:
                            raise error from None
                        if sync_existing and self.durable:
                            # The same bytes are stored already, maybe by a writer that
                            # died before fsyncing the folder: the caller relies on them.
                            fsync_dir(folder)
                        return False
                    except FileNotFoundError:
                        try:
                            if tmpdir is not None:  # an unnamed one cannot vanish
                                os.stat(
                                    at(tmpdir, tmp_name),
                                    dir_fd=fd_of(tmpdir),
                                    follow_symlinks=False,
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
                        fsync_dir(folder)
                    return True
                finally:
                    close_dir(folder)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if tmpdir is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(at(tmpdir, tmp_name), dir_fd=fd_of(tmpdir))
            if own and tmpdir is not None:
                close_dir(tmpdir)

    @staticmethod
    def _has(folder: Dir, name: str) -> bool:
        """Whether ``name`` exists in ``folder`` (a symlink too: the link then says so)."""
        try:
            os.stat(at(folder, name), dir_fd=fd_of(folder), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    # -- the protocol --------------------------------------------------------------
    def read(self, key: str) -> bytes:
        # os.open/os.read cost half of open(): a cold start replays dozens of small entries.
        fd, st = self._open_file(key)
        try:
            want = st.st_size + 1  # one read, plus one to see the end
            chunks = []
            while chunk := os.read(fd, want):
                chunks.append(chunk)
                want = max(want - len(chunk), 4096)
        finally:
            os.close(fd)
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` of a key's file, opened by the same safe walk as ``read``."""
        if not 0 <= start <= end:
            raise ValueError(f"bad range {start}..{end} of {key}")
        fd, _st = self._open_file(key)
        try:
            chunks = []
            at, want = start, end - start
            while want > 0 and (chunk := os.pread(fd, want, at)):
                chunks.append(chunk)
                at += len(chunk)
                want -= len(chunk)
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _open_file(self, key: str) -> tuple[int, os.stat_result]:
        """A key's regular file opened for reading (never through a symlink), its stat.

        FileNotFoundError for a folder of keys or a path under a key; StorageError for
        a symlink or anything that is not a regular file (a planted FIFO, a device).
        """
        try:
            fd = self._safe.open_leaf(split_key(key), O_READ_LEAF)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    self._not_a_file(key, st)
            except BaseException:
                os.close(fd)
                raise
        except (IsADirectoryError, NotADirectoryError):  # a folder of keys, or under a key
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None
        return fd, st

    def _not_a_file(self, key: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder of keys", key)
        raise StorageError(f"{self._path(key)!r} is not a regular file; refusing to read it")

    def create(self, key: str, data: bytes) -> None:
        parts = split_key(key)
        if self._unnamed is not False:
            created = self._create_unnamed(parts, data)
            if created is not None:
                if not created:
                    raise FileExistsError(errno.EEXIST, "object exists", key)
                return
        name = self._tmp_name()
        tmpdir = self._safe.walk([_TMP], create=True)
        try:
            try:
                fd = os.open(at(tmpdir, name), O_WRITE_NEW, 0o644, dir_fd=fd_of(tmpdir))
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
                    os.unlink(at(tmpdir, name), dir_fd=fd_of(tmpdir))
                raise
        finally:
            close_dir(tmpdir)
        if not created:
            raise FileExistsError(errno.EEXIST, "object exists", key)

    def _create_unnamed(self, parts: builtins.list[str], data: bytes) -> bool | None:
        """``create`` through an unnamed file in the key's folder (see ``_unnamed``).

        True: published (and durable); False: the key exists; None: not done, nothing
        written (unnamed files unsupported here, or the folder removed meanwhile): the
        named temporary's way, which walks again, is the caller's to take.
        """
        if not self._unnamed_ok():
            return None
        folder = self._safe.walk(parts[:-1], create=True)
        try:
            if not isinstance(folder, int):
                self._unnamed = False  # no folder descriptors here (not POSIX)
                return None
            try:
                if not _unnamed.create_in(folder, parts[-1], data, durable=self.durable):
                    self._unnamed = False
                    return None
            except FileExistsError as exc:
                error = self._safe.check_error(folder, parts, exc)
                if error is not exc:
                    raise error from None
                return False
            except FileNotFoundError:
                return None
            if self.durable:
                fsync_dir(folder)
            return True
        finally:
            close_dir(folder)

    def open_blob(self) -> BlobWriter:
        return LocalBlob(self)

    def open_read(self, key: str) -> IO[bytes]:
        fd, _ = self._open_file(key)
        if hasattr(os, "set_blocking"):
            try:
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
        return open(fd, "rb")

    def exists(self, key: str) -> bool:
        st = self._safe.leaf_stat(split_key(key))
        return st is not None and stat.S_ISREG(st.st_mode)

    def size(self, key: str) -> int:
        st = self._safe.leaf_stat(split_key(key))
        if st is None or not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        return st.st_size

    def list(self, prefix: str) -> builtins.list[str]:
        """Every key under ``prefix``; StorageError on a symlink met on the way."""
        head, _, _ = prefix.rpartition("/")
        parts = split_key(head) if head else []
        try:
            folder = self._safe.walk(parts, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keys: builtins.list[str] = []
        try:
            self._safe.scan(folder, parts, keys, None)
        finally:
            close_dir(folder)
        return sorted(k for k in keys if k.startswith(prefix))

    def unsafe_entries(self) -> builtins.list[str]:
        """Paths below the root (``/``-separated, hidden ones too) that are symlinks."""
        try:
            folder = self._safe.walk([], create=False)
        except FileNotFoundError:
            return []
        links: builtins.list[str] = []
        try:
            self._safe.scan(folder, [], [], links)
        finally:
            close_dir(folder)
        return sorted(links)

    def delete(self, key: str) -> None:
        parts = split_key(key)
        try:
            folder = self._safe.walk(parts[:-1], create=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            name = at(folder, parts[-1])
            try:
                st = os.stat(name, dir_fd=fd_of(folder), follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return
            if stat.S_ISLNK(st.st_mode):
                raise self._safe.symlink_error(parts)
            if stat.S_ISDIR(st.st_mode):
                return  # a folder of keys
            # unlink never follows a link: one swapped in since the check goes, not its target.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd_of(folder))
        finally:
            close_dir(folder)

    def local_path(self, key: str) -> str | None:
        """The file's path, after checking no component below the root is a symlink.

        The caller opens the path again: a folder swapped for a symlink in between is
        not caught here (open the file with ``O_NOFOLLOW`` and check what you read).
        """
        parts = split_key(key)
        st = self._safe.leaf_stat(parts)
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
            tmpdir = self._safe.walk([_TMP], create=False)
        except (FileNotFoundError, NotADirectoryError):
            return removed
        try:
            with os.scandir(tmpdir) as entries:
                names = sorted(e.name for e in entries)
            now = time.time()
            for name in names:
                where = at(tmpdir, name)
                try:
                    st = os.stat(where, dir_fd=fd_of(tmpdir), follow_symlinks=False)
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
                        os.unlink(where, dir_fd=fd_of(tmpdir))
        finally:
            close_dir(tmpdir)
        return removed

    def close(self) -> None:
        """Close the folder descriptors kept for reads (reopened on the next read)."""
        self._safe.close()
