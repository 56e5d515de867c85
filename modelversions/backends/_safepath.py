"""Reaching the files under a local registry's folder without following a symbolic link.

This module owns the path handling that keeps the local backend inside its root:

- :func:`split_key`: a storage key to path components (no ``..``, no absolute path);
- :class:`SafeRoot`: the walk from the root one folder at a time, the small cache of
  folder descriptors that reads go through, the no-follow scan of a folder tree, and
  the :class:`~modelversions.errors.StorageError` that names a symbolic link met on
  the way;
- the flags and ``*at`` helpers (:func:`at`, :func:`fd_of`, :func:`link`, ...) with
  which the caller acts on a name *relative to the folder* this module opened.

On POSIX every folder is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its
parent's descriptor, so a symlink planted anywhere below the root, even while an
operation runs, makes it fail with ``StorageError``. Elsewhere (Windows) a folder is
its path and each component is checked with ``lstat`` before use (a planted link is
refused; a link swapped in between the check and the use is not caught there).

It never follows a symlink below the root (the root itself may be one:
``~/registry -> /data/registry`` is normal), and it never writes, publishes or
removes a key's file: :mod:`modelversions.backends.local` does that, through the
folders opened here. The only things it creates are missing folders (``walk(...,
create=True)``) and the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from modelversions.errors import InvalidInputError, StorageError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_READ = os.O_RDONLY | _CLOEXEC | getattr(os, "O_BINARY", 0) | _NOFOLLOW
#: Open a key's file for reading: never through a link; a planted FIFO must not block.
O_READ_LEAF = _O_READ | getattr(os, "O_NONBLOCK", 0)
#: Create a new file exclusively, never through a link.
O_WRITE_NEW = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | getattr(os, "O_BINARY", 0) | _NOFOLLOW
)
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
#: A Windows junction's reparse tag: what ``os.path.isjunction`` (3.12+) checks.
_JUNCTION = getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", -1)

#: A folder: its descriptor (POSIX) or its path (the lstat fallback).
Dir = int | str
_T = TypeVar("_T")


def split_key(key: str) -> list[str]:
    """A storage key's path components; InvalidInputError if it could leave the root.

    >>> split_key("models/a/x.json")
    ['models', 'a', 'x.json']
    >>> split_key("models/../x")
    Traceback (most recent call last):
    ...
    modelversions.errors.InvalidInputError: invalid storage key 'models/../x'
    """
    if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
        raise InvalidInputError(f"invalid storage key {key!r}")
    parts = key.split("/")
    if "" in parts or "." in parts:
        raise InvalidInputError(f"invalid storage key {key!r}")
    return parts


def fsync_path(path: str) -> None:
    """``fsync`` the folder at ``path`` (what makes a new or removed name durable)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def at(folder: Dir, name: str) -> str:
    """The name to pass with ``dir_fd=fd_of(folder)``."""
    return name if isinstance(folder, int) else os.path.join(folder, name)


def fd_of(folder: Dir) -> int | None:
    """The ``dir_fd`` argument for ``folder`` (None on the path fallback)."""
    return folder if isinstance(folder, int) else None


def close_dir(folder: Dir) -> None:
    """Close a folder :meth:`SafeRoot.walk` returned."""
    if isinstance(folder, int):
        os.close(folder)


def fsync_dir(folder: Dir) -> None:
    """``fsync`` a folder :meth:`SafeRoot.walk` returned."""
    if isinstance(folder, int):
        os.fsync(folder)
    else:
        fsync_path(folder)


def link(src_dir: Dir, src: str, dst_dir: Dir, dst: str) -> None:
    """Hard-link ``src`` in ``src_dir`` as ``dst`` in ``dst_dir``; FileExistsError if taken."""
    if isinstance(src_dir, int) and isinstance(dst_dir, int):
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    else:
        os.link(at(src_dir, src), at(dst_dir, dst))


class SafeRoot:
    """The folders under ``root``, reached one component at a time, never through a link.

    Args:
        root: an absolute path (it may itself be a symbolic link to a folder).
        durable: ``fsync`` a parent after creating a folder in it.

    Folders returned by :meth:`walk` are the caller's to close (:func:`close_dir`);
    the ones :meth:`in_dir` keeps are closed by :meth:`close` (or when collected).
    """

    def __init__(self, root: str, *, durable: bool) -> None:
        self.root = root
        self.durable = durable
        self._lock = threading.Lock()
        self._dirs: OrderedDict[str, int] = OrderedDict()  # folder -> descriptor, for reads

    def make_root(self) -> None:
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
                fsync_path(os.path.dirname(folder))

    def symlink_error(self, parts: list[str]) -> StorageError:
        """The error for a symbolic link at ``root/parts...``: what it is, what to do."""
        path = os.path.join(self.root, *parts)
        return StorageError(
            f"{path!r} is a symbolic link: the registry never follows links below its "
            f"folder {self.root!r}; remove it (or replace it with what it points to)"
        )

    def check_error(self, folder: Dir, parts: list[str], exc: OSError) -> BaseException:
        """What an OSError on ``parts[-1]`` in ``folder`` means: a symlink, or itself."""
        try:
            st = os.stat(at(folder, parts[-1]), dir_fd=fd_of(folder), follow_symlinks=False)
        except OSError:
            return exc
        if stat.S_ISLNK(st.st_mode):
            return self.symlink_error(parts)
        return exc

    def open_dir(self, folder: Dir, parts: list[str]) -> Dir:
        """Open ``parts[-1]`` in ``folder`` without following a symlink."""
        name = parts[-1]
        if not isinstance(folder, int):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or getattr(st, "st_reparse_tag", 0) == _JUNCTION:
                raise self.symlink_error(parts)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", path)
            return path
        try:
            return os.open(name, _O_DIR | _NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self.check_error(folder, parts, exc) from None

    def _open_root(self, create: bool) -> Dir:
        if not _FDS:
            if not os.path.isdir(self.root):
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "no registry folder", self.root)
                self.make_root()
            return self.root
        try:
            return os.open(self.root, _O_DIR)
        except FileNotFoundError:
            if not create:
                raise
        self.make_root()
        return os.open(self.root, _O_DIR)

    def walk(self, parts: list[str], *, create: bool) -> Dir:
        """The folder ``root/parts...`` (the caller closes it), never through a symlink.

        Raises FileNotFoundError/NotADirectoryError when it is missing (unless
        ``create``: missing folders are made, and made durable) and StorageError when
        a component is a symbolic link.
        """
        folder = self._open_root(create)
        try:
            for i in range(len(parts)):
                try:
                    sub = self.open_dir(folder, parts[: i + 1])
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(at(folder, parts[i]), 0o777, dir_fd=fd_of(folder))
                        if self.durable:
                            fsync_dir(folder)
                    sub = self.open_dir(folder, parts[: i + 1])
                close_dir(folder)
                folder = sub
        except BaseException:
            close_dir(folder)
            raise
        return folder

    def in_dir(self, parts: list[str], op: Callable[[Dir, str], _T]) -> _T:
        """``op(folder, name)`` on the folder holding ``parts``, for reads.

        Folder descriptors are kept (up to a few) so a cold start's many small reads
        do not walk from the root each time. A cached folder may have been removed or
        moved since: a miss through it is retried once from a fresh walk, unless the
        folder at its path is still the cached one (same device and inode: one
        ``stat``, where a walk opens every component; a writer probes for the next
        history entry on every commit).
        """
        if not _FDS:
            folder = self.walk(parts[:-1], create=False)
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
                    if walked or self._still_at(dkey, cached):
                        raise
                except OSError as exc:
                    raise self.check_error(cached, parts, exc) from None
                walked = True
                cached = self._walk_cached(dkey, parts[:-1])

    def _still_at(self, dkey: str, fd: int) -> bool:
        """Whether a walk to ``root/dkey`` would now reach the folder ``fd`` holds open.

        True if no component below the root is a symlink (``lstat`` of each) and the
        last one has the device and inode numbers of ``fd`` (a folder held open keeps
        its inode: the numbers cannot name another folder meanwhile).
        """
        try:
            now = os.stat(self.root)
            path = self.root
            for name in dkey.split("/") if dkey else ():
                path = os.path.join(path, name)
                now = os.stat(path, follow_symlinks=False)
                if not stat.S_ISDIR(now.st_mode):
                    return False
        except OSError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def _walk_cached(self, dkey: str, parts: list[str]) -> int:
        old = self._dirs.pop(dkey, None)
        if old is not None:
            os.close(old)
        fresh = self.walk(parts, create=False)
        assert isinstance(fresh, int)
        self._dirs[dkey] = fresh
        while len(self._dirs) > _CACHED_DIRS:
            os.close(self._dirs.popitem(last=False)[1])
        return fresh

    def open_leaf(self, parts: list[str], flags: int) -> int:
        """Open the file ``parts`` for reading, never through a symlink."""

        def op(folder: Dir, name: str) -> int:
            if not isinstance(folder, int) and os.path.islink(os.path.join(folder, name)):
                raise self.symlink_error(parts)
            return os.open(at(folder, name), flags, dir_fd=fd_of(folder))

        return self.in_dir(parts, op)

    def leaf_stat(self, parts: list[str]) -> os.stat_result | None:
        """The ``lstat`` of a key's file (None if missing); StorageError on a symlink."""

        def op(folder: Dir, name: str) -> os.stat_result:
            return os.stat(at(folder, name), dir_fd=fd_of(folder), follow_symlinks=False)

        try:
            st = self.in_dir(parts, op)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise self.symlink_error(parts)
        return st

    def scan(
        self,
        folder: Dir,
        parts: list[str],
        keys: list[str],
        links: list[str] | None,
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
                    raise self.symlink_error(here)
                links.append("/".join(here))
                continue
            if not is_dir:
                keys.append("/".join(here))
                continue
            try:
                sub = self.open_dir(folder, here)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed or replaced meanwhile
            except StorageError:
                if links is None:
                    raise
                links.append("/".join(here))
                continue
            try:
                self.scan(sub, here, keys, links)
            finally:
                close_dir(sub)

    def close(self) -> None:
        """Close the folder descriptors kept for reads (reopened on the next read)."""
        with self._lock:
            while self._dirs:
                os.close(self._dirs.popitem()[1])

    def __del__(
        self,
        _close_fd: Callable[[int], None] = os.close,
        _suppress: Callable[[type[BaseException]], contextlib.suppress] = contextlib.suppress,
    ) -> None:
        # Bound at import: a collection may run at any moment, even at interpreter exit.
        with _suppress(Exception):
            for fd in getattr(self, "_dirs", {}).values():
                _close_fd(fd)
