"""The local backend's unpublished files: a blob being written, an entry staged.

Owns the temporaries that :class:`~modelversions.backends.local.LocalBackend` writes
in ``<root>/.tmp/`` before it publishes them with ``os.link``: :class:`_LocalBlob` (an
artifact streamed by the serializer) and :class:`Staged` (a small object written now,
published later, e.g. a history entry fsynced while the artifact it names is made
durable). Both publish through ``LocalBackend._publish`` (the walk, the link, the
folder's fsync) and remove their temporary whatever happens.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from modelversions.backends import BlobWriter
from modelversions.backends._safepath import Dir, at, close_dir, fd_of

if TYPE_CHECKING:
    from modelversions.backends.local import LocalBackend

_BUFFER = 1 << 20


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
        self._fh = None

        def finish(sync: bool) -> None:
            """fsync it (unless the key was found stored already) and close it."""
            try:
                if sync:
                    os.fsync(fh.fileno())
            finally:
                fh.close()

        try:
            fh.flush()
            done: Callable[[bool], None] | None = None
            if self._backend.durable and self._synced != self._pos:
                done = finish  # just before the link: skipped if the key exists
            else:
                fh.close()
            return self._backend._publish(self._name, key, sync_existing=True, finish=done)
        except BaseException:
            with contextlib.suppress(OSError):
                fh.close()
            self.abort()
            raise

    def abort(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
        with contextlib.suppress(OSError):
            self._backend._remove_tmp(self._name)


class Staged:
    """A temporary file of :meth:`LocalBackend.stage`, waiting to be published.

    It keeps the file and its ``.tmp`` folder open until :meth:`publish` or
    :meth:`discard` (either removes the temporary; a second call does nothing).
    """

    def __init__(self, backend: LocalBackend, name: str, tmpdir: Dir, fd: int) -> None:
        self._backend = backend
        self._name = name
        self._tmpdir: Dir | None = tmpdir
        self._fd: int | None = fd

    @property
    def durable(self) -> bool:
        """Whether :meth:`sync` fsyncs (the backend's ``durable``)."""
        return self._backend.durable

    def sync(self) -> None:
        """``fsync`` the file (if the backend is durable)."""
        if self._fd is None:
            raise ValueError("staged object already published or discarded")
        if self._backend.durable:
            os.fsync(self._fd)

    def _take(self) -> tuple[int | None, Dir | None]:
        fd, self._fd = self._fd, None
        tmpdir, self._tmpdir = self._tmpdir, None
        return fd, tmpdir

    def _unlink(self, tmpdir: Dir) -> None:
        with contextlib.suppress(OSError):
            os.unlink(at(tmpdir, self._name), dir_fd=fd_of(tmpdir))

    def publish(self, key: str) -> bool:
        """Link it in as ``key`` (then fsync the folder); False if ``key`` exists.

        Call :meth:`sync` first (``stage`` does unless told not to).
        """
        fd, tmpdir = self._take()
        if tmpdir is None:
            raise ValueError("staged object already published or discarded")
        try:
            try:
                if fd is not None:
                    os.close(fd)
            except BaseException:
                self._unlink(tmpdir)
                raise
            return self._backend._publish(self._name, key, tmpdir=tmpdir)
        finally:
            close_dir(tmpdir)

    def discard(self) -> None:
        """Remove the temporary file unpublished."""
        fd, tmpdir = self._take()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if tmpdir is not None:
            try:
                self._unlink(tmpdir)
            finally:
                close_dir(tmpdir)
