"""The local backend's blob: an artifact streamed into a temporary, then published.

:class:`LocalBlob` is what :meth:`LocalBackend.open_blob
<modelversions.backends.local.LocalBackend.open_blob>` returns. Its temporary is an
unnamed file in ``<root>/.tmp`` where the system has them (Linux ``O_TMPFILE``, see
:mod:`modelversions.backends._unnamed`), else a named one there. ``commit`` fsyncs it
(unless its key is stored already: whoever linked that file made its bytes durable
first), links it under its key and fsyncs the key's folder, through
:meth:`LocalBackend._publish`. It never decides a key: the caller names it (the
artifact's sha256) once every byte is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from modelversions.backends import BlobWriter, _unnamed

if TYPE_CHECKING:
    from modelversions.backends.local import LocalBackend

_BUFFER = 1 << 20


class LocalBlob(BlobWriter):
    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        unnamed = backend._new_unnamed()
        self._name = "" if unnamed is not None else backend._tmp_name()
        fd = backend._new_tmp(self._name) if unnamed is None else unnamed
        #: Whether the temporary is unnamed (then nothing is ever left in ``.tmp``).
        self.unnamed = unnamed is not None
        try:
            self._fh: IO[bytes] | None = open(fd, "wb", buffering=_BUFFER)  # noqa: SIM115
        except BaseException:
            os.close(fd)
            self._remove()
            raise
        if os.name == "posix":  # stored artifacts are read-only (0o444); unlink still works
            os.fchmod(self._fh.fileno(), 0o444)
        self._pos = 0
        self._synced = -1  # position of the last fsync
        #: The file being written: the serializer hashes it by reading it back.
        self.readback_path = (
            _unnamed.path_of(fd) if self.unnamed else os.path.join(backend._tmpdir, self._name)
        )

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
        # An unnamed temporary is linked through its descriptor: open until published.
        unnamed = fh.fileno() if self.unnamed else None

        def finish(sync: bool) -> None:
            """fsync it (unless the key was found stored already); close a named one."""
            try:
                if sync:
                    os.fsync(fh.fileno())
            finally:
                if unnamed is None:
                    fh.close()

        try:
            fh.flush()
            done: Callable[[bool], None] | None = None
            if self._backend.durable and self._synced != self._pos:
                done = finish  # just before the link: skipped if the key exists
            elif unnamed is None:
                fh.close()
            return self._backend._publish(
                self._name, key, sync_existing=True, finish=done, unnamed=unnamed
            )
        except BaseException:
            with contextlib.suppress(OSError):
                fh.close()
            self.abort()
            raise
        finally:
            fh.close()

    def abort(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
        self._remove()

    def _remove(self) -> None:
        if not self.unnamed:  # an unnamed one is gone with its descriptor
            with contextlib.suppress(OSError):
                self._backend._remove_tmp(self._name)
