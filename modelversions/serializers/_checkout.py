"""Materializing a path version as local files, verified against its manifest.

:class:`Checkouts` owns one folder (``<cache_dir>/modelversions/checkouts/``, or a
private temporary folder removed by ``ModelRegistry.close()`` or at the process's
exit). Each version is materialized once into ``<folder>/<manifest sha256>/<name>``:
its files are copied out of storage into a fresh ``.part-`` folder, hashed on the way
(the bytes written are the bytes hashed), made read-only (``0o444``), and the folder
is renamed into place only if every file matched. On every later
:meth:`Checkouts.path`, the materialized tree is walked again without following links
and compared with the manifest: a changed, missing or extra file, a symbolic link or a
folder that should not be there raises :class:`~modelversions.errors.IntegrityError`
naming it, and the damaged copy is discarded (the next call materializes it afresh). A
file whose ``fstat`` identity (device, inode, size, mtime, ctime) this process
verified before is not hashed again.

What the returned path trusts: the files were as saved when it was returned. Any
process that can write to the checkout folder (the same user) could change them later;
the files are read-only to discourage accidents, not to stop an attacker.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from modelversions.backends import Backend
from modelversions.errors import IntegrityError, StorageError
from modelversions.serializers._manifest import Manifest
from modelversions.serializers._paths import files_key
from modelversions.serializers._walk import Refused, walk

__all__ = ["Checkouts"]

_CHUNK = 4 * 1024 * 1024
_MEMO = 65536
Progress = Callable[[int, int], None]


class Checkouts:
    """Materialized path versions below ``folder`` (None: a private temporary folder)."""

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self._given = (
            None
            if folder is None
            else os.path.join(os.fspath(folder), "modelversions", "checkouts")
        )
        self._temp: str | None = None
        self._cleanup: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[int, int, int, int, int]] = {}

    def _root(self) -> str:
        with self._lock:
            if self._given is not None:
                os.makedirs(self._given, mode=0o700, exist_ok=True)
                if os.path.islink(self._given) or not os.path.isdir(self._given):
                    raise StorageError(
                        f"{self._given} is a symbolic link or not a folder; refusing to "
                        "materialize versions there (remove it)"
                    )
                return self._given
            if self._temp is None:
                self._temp = tempfile.mkdtemp(prefix="modelversions-checkouts-")
                # Kept while the process runs (a path handed out must not vanish when
                # the registry object is collected); removed by close() or at exit.
                self._cleanup = functools.partial(_remove, self._temp)
                atexit.register(self._cleanup)
            return self._temp

    def close(self) -> None:
        """Remove the private temporary folder, if one was made."""
        with self._lock:
            temp, self._temp = self._temp, None
        if temp is not None:
            atexit.unregister(self._cleanup)
            _remove(temp)

    def path(
        self,
        backend: Backend,
        name: str,
        sha256: str,
        manifest: Manifest,
        *,
        what: str,
        progress: Progress | None = None,
    ) -> Path:
        """The verified local copy of the version whose manifest is ``manifest``."""
        root = self._root()
        home = os.path.join(root, sha256)
        target = os.path.join(home, manifest.name)
        if not os.path.lexists(home):
            self._build(backend, name, manifest, root, home, what, progress)
            return Path(target)
        try:
            self._check(home, manifest, what)
        except IntegrityError:
            _discard(home)
            raise
        if progress is not None:
            progress(manifest.total_size, manifest.total_size)
        return Path(target)

    # ------------------------------------------------------------------ building
    def _build(
        self,
        backend: Backend,
        name: str,
        manifest: Manifest,
        root: str,
        home: str,
        what: str,
        progress: Progress | None,
    ) -> None:
        part = tempfile.mkdtemp(prefix=".part-", dir=root)
        try:
            top = os.path.join(part, manifest.name)
            if manifest.kind == "dir":
                os.mkdir(top)
                for d in sorted(manifest.dirs):
                    os.mkdir(os.path.join(top, *d.split("/")))
            done = 0
            for entry in manifest.files:
                dest = top if manifest.kind == "file" else os.path.join(top, *entry.path.split("/"))
                done = self._copy(
                    backend,
                    name,
                    entry.sha256,
                    entry.size,
                    dest,
                    entry.path,
                    what,
                    done,
                    progress,
                    manifest.total_size,
                )
            if progress is not None and done == 0:
                progress(0, 0)
            try:
                os.rename(part, home)
            except OSError:
                if not os.path.isdir(home):
                    raise
                # Another process materialized it first: use (and check) theirs.
                _remove(part)
                self._check(home, manifest, what)
        except BaseException:
            _remove(part)
            raise

    def _copy(
        self,
        backend: Backend,
        name: str,
        sha256: str,
        size: int,
        dest: str,
        rel: str,
        what: str,
        done: int,
        progress: Progress | None,
        total: int,
    ) -> int:
        key = files_key(name, sha256)
        digest = hashlib.sha256()
        n = 0
        try:
            src = backend.open_read(key)
        except FileNotFoundError:
            raise IntegrityError(f"{what}: file {rel!r} is missing from storage ({key})") from None
        with src, open(dest, "xb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                n += len(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            if hasattr(os, "fchmod"):
                os.fchmod(out.fileno(), 0o444)
        if digest.hexdigest() != sha256 or n != size:
            raise IntegrityError(
                f"{what}: file {rel!r} is damaged in storage ({key}): sha256 "
                f"{digest.hexdigest()} ({n} bytes), expected {sha256} ({size} bytes)"
            )
        return done

    # ------------------------------------------------------------------ checking
    def _check(self, home: str, manifest: Manifest, what: str) -> None:
        """Compare the tree at ``home`` with ``manifest``; IntegrityError naming a difference."""
        expected = {e.path: e for e in manifest.files}
        dirs = set(manifest.dirs)
        seen: set[str] = set()
        where = f"the local copy of {what} at {home}"

        def on_dir(rel: str) -> None:
            inner = _inner(rel, manifest)
            if inner == "":
                return  # the version's own top folder
            if inner is None or inner not in dirs:
                raise IntegrityError(f"{where}: folder {rel!r} was added; it was discarded")
            seen.add(inner + "/")

        def on_file(rel: str, fd: int, st: os.stat_result) -> None:
            inner = _inner(rel, manifest)
            entry = expected.get(inner) if inner is not None else None
            if entry is None:
                raise IntegrityError(f"{where}: file {rel!r} was added; it was discarded")
            seen.add(inner)  # type: ignore[arg-type]
            full = os.path.join(home, rel)
            sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if self._verified.get(full) == sig and st.st_size == entry.size:
                return
            with open(fd, "rb", buffering=0, closefd=False) as fh:
                digest = hashlib.sha256()
                n = 0
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    n += len(chunk)
            if digest.hexdigest() != entry.sha256 or n != entry.size:
                raise IntegrityError(f"{where}: file {rel!r} was changed; it was discarded")
            if len(self._verified) >= _MEMO:
                self._verified.clear()
            self._verified[full] = sig

        try:
            walk(home, on_file, on_dir, follow_root=False)
        except Refused as exc:
            raise IntegrityError(f"{where}: {exc.path} {exc.why}; it was discarded") from None
        except FileNotFoundError:
            raise IntegrityError(f"{where} is gone or incomplete; it was discarded") from None
        for path in sorted(expected):
            if path not in seen:
                raise IntegrityError(f"{where}: file {path!r} is missing; it was discarded")
        for d in sorted(dirs):
            if d + "/" not in seen:
                raise IntegrityError(f"{where}: folder {d!r} is missing; it was discarded")


def _inner(rel: str, manifest: Manifest) -> str | None:
    """A path found below ``<home>`` as a manifest path (None: outside the version)."""
    top, _, rest = rel.partition("/")
    if top != manifest.name:
        return None
    if manifest.kind == "file":
        return manifest.name if not rest else None
    return rest if rest else ""


def _discard(home: str) -> None:
    aside = f"{home}.discarded-{os.getpid()}-{threading.get_ident()}"
    try:
        os.rename(home, aside)
    except OSError:
        return
    _remove(aside)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
