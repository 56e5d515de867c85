"""A small file written unnamed in its own folder, then linked in (Linux ``O_TMPFILE``).

The local backend's crash-safe create is: write a temporary, ``fsync`` it, link it
under its final name (which fails if the name is taken), ``fsync`` the folder. With a
named temporary in ``<root>/.tmp`` that costs a name made and removed in ``.tmp`` on
top of the link, and both changes ride in the journal commits of the two ``fsync``
calls. An unnamed file (``open(folder, O_TMPFILE)``) has no name until the link
gives it its only one: the same recipe in the same order, with less to commit and no
``.tmp`` folder to walk, and a writer that dies leaves nothing behind to clean up.

This module owns that one write; :mod:`modelversions.backends.local` decides when
to use it (a folder descriptor from the no-symlink walk, Linux) and falls back to
the named temporary where it is not supported. It never fsyncs the folder: the
caller does, after a link.
"""

from __future__ import annotations

import contextlib
import errno
import os

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: The kernel links an unnamed file through its ``/proc/self/fd`` entry (``linkat``
#: with ``AT_EMPTY_PATH`` would need a capability).
_FD_LINKS = "/proc/self/fd"
#: What ``open(..., O_TMPFILE)`` answers where it is not supported: a filesystem
#: without it (EOPNOTSUPP), a kernel older than 3.11 (EISDIR), and EINVAL.
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
#: What refuses the link through ``/proc`` (a security module, another mount).
_REFUSED = frozenset({errno.EPERM, errno.EACCES, errno.EXDEV})


def available() -> bool:
    """Whether unnamed files can be made and linked here (Linux with ``/proc``)."""
    return bool(_O_TMPFILE) and os.path.isdir(_FD_LINKS)


def open_in(folder: int) -> int | None:
    """An unnamed file open for writing in ``folder``; None where not supported."""
    flags = os.O_WRONLY | _O_TMPFILE | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(".", flags, 0o644, dir_fd=folder)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise


def path_of(fd: int) -> str:
    """A path that opens the unnamed file ``fd`` again (to read back what was written)."""
    return f"{_FD_LINKS}/{fd}"


def link(fd: int, folder: int, name: str) -> None:
    """Give the unnamed file ``fd`` the name ``name`` in ``folder``; FileExistsError if
    taken. It was not opened with ``O_EXCL``, so the kernel allows it."""
    os.link(path_of(fd), name, dst_dir_fd=folder, follow_symlinks=True)


def links_in(folder: int, name: str) -> bool:
    """Whether an unnamed file made in ``folder`` can be linked there (as ``name``,
    removed at once): a security module or a mount may refuse the link."""
    fd = open_in(folder)
    if fd is None:
        return False
    try:
        link(fd, folder, name)
    except OSError as exc:
        if exc.errno in _REFUSED:
            return False
        raise
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)
    return True


def create_in(folder: int, name: str, data: bytes, *, durable: bool) -> bool:
    """Write ``data`` unnamed in ``folder``, ``fsync`` it if ``durable``, link it as ``name``.

    Returns False, having written nothing anywhere, if this filesystem does not take
    unnamed files. Raises FileExistsError if ``name`` is taken (nothing is left
    behind), FileNotFoundError if ``folder`` was removed meanwhile. The caller
    ``fsync``s the folder after a True.
    """
    fd = open_in(folder)
    if fd is None:
        return False
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
        link(fd, folder, name)
    finally:
        os.close(fd)
    return True
