"""A no-follow walk of a local folder tree: every folder and regular file, nothing else.

Used to read a folder being saved and to check a materialized one. On POSIX each
folder is opened relative to its parent's descriptor with ``O_NOFOLLOW`` and each file
with ``O_NOFOLLOW | O_NONBLOCK``, so a symbolic link (or a FIFO, socket or device)
anywhere below the root, even one swapped in while the walk runs, stops it with
:class:`Refused`. The root itself may be a link (the caller named it). Elsewhere each
name is checked with ``lstat`` before use. It never writes anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from modelversions.backends._safepath import _FDS, _NOFOLLOW, O_READ_LEAF, Dir, at, fd_of

__all__ = ["MAX_DEPTH", "Refused", "walk"]

MAX_DEPTH = 128
_O_DIR = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_DIRECTORY", 0)

#: on_file(relative path, open descriptor, its fstat); on_dir(relative path).
OnFile = Callable[[str, int, os.stat_result], None]
OnDir = Callable[[str], None]


class Refused(Exception):
    """A path the walk will not go through: ``path`` (relative) and ``why``."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def _open_dir(folder: Dir, name: str) -> Dir:
    if _FDS:
        return os.open(at(folder, name), _O_DIR | _NOFOLLOW, dir_fd=fd_of(folder))
    return at(folder, name)


def walk(root: str, on_file: OnFile, on_dir: OnDir, *, follow_root: bool = True) -> None:
    """Visit every folder and regular file below the folder ``root``, sorted by name.

    ``follow_root=False`` refuses ``root`` itself if it is a symbolic link.

    Raises:
        Refused: a symbolic link, something that is neither a folder nor a regular
            file, or a tree deeper than ``MAX_DEPTH``.
        OSError: from the file system (``root`` missing, unreadable, ...).
    """
    if not follow_root and os.path.islink(root):
        raise Refused(os.path.basename(root), "is a symbolic link")
    flags = _O_DIR if follow_root else _O_DIR | _NOFOLLOW
    top: Dir = os.open(root, flags) if _FDS else root
    try:
        _walk(top, "", on_file, on_dir, 0)
    finally:
        if isinstance(top, int):
            os.close(top)


def _walk(folder: Dir, prefix: str, on_file: OnFile, on_dir: OnDir, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Refused(prefix.rstrip("/"), f"more than {MAX_DEPTH} folders deep")
    with os.scandir(folder) as it:
        names = sorted(entry.name for entry in it)
    for name in names:
        rel = prefix + name
        try:
            st = os.stat(at(folder, name), dir_fd=fd_of(folder), follow_symlinks=False)
        except FileNotFoundError:
            raise Refused(rel, "vanished while it was read") from None
        if stat.S_ISLNK(st.st_mode) or _is_junction(st):
            raise Refused(rel, "is a symbolic link")
        if stat.S_ISDIR(st.st_mode):
            on_dir(rel)
            try:
                sub = _open_dir(folder, name)
            except OSError as exc:
                raise Refused(rel, f"changed while it was read ({exc})") from exc
            try:
                _walk(sub, rel + "/", on_file, on_dir, depth + 1)
            finally:
                if isinstance(sub, int):
                    os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            _visit_file(folder, name, rel, on_file)
        else:
            raise Refused(rel, "is neither a regular file nor a folder")


def _visit_file(folder: Dir, name: str, rel: str, on_file: OnFile) -> None:
    try:
        fd = os.open(at(folder, name), O_READ_LEAF, dir_fd=fd_of(folder))
    except OSError as exc:
        raise Refused(rel, f"changed while it was read ({exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(rel, "is neither a regular file nor a folder")
        on_file(rel, fd, st)
    finally:
        os.close(fd)


def _is_junction(st: os.stat_result) -> bool:
    tag = getattr(st, "st_reparse_tag", 0)
    return bool(tag) and tag == getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", -1)
