"""The facade's file and folder versions: :meth:`FileVersions.load_path`.

A base class of :class:`~modelversions.ModelRegistry` (like
:class:`~modelversions._lifecycle.Lifecycle`): it checks arguments and delegates to
:class:`~modelversions._loading.Loader`, whose copies are made and checked by
:mod:`modelversions.serializers._checkout`. Saving a path is ``save(path=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelversions import _rules
from modelversions._names import check_env
from modelversions._progress import make_progress

if TYPE_CHECKING:
    from pathlib import Path

    from modelversions._commit import Log
    from modelversions._loading import Loader
    from modelversions.version import Version

__all__ = ["FileVersions"]


class FileVersions:
    """Files and folders saved as versions, handed out as verified local paths."""

    _log: Log
    _loader: Loader

    def load_path(
        self,
        name: str,
        version: str | Version | None = None,
        *,
        env: str = "production",
        progress: bool | Callable[[int, int], None] | None = None,
    ) -> Path:
        """The local path of a file or folder version (saved with ``save(path=...)``).

        Every file is copied out of storage once (hashed on the way) into a local
        folder (``cache_dir``, else a private temporary folder removed by ``close()`` or
        at exit) and checked against the version's manifest on every call before the
        path is returned: a changed, missing or extra file raises :class:`IntegrityError`
        naming it. The files are read-only; what the path trusts after it is
        returned is in ``docs/formats.md``.

        Raises:
            InvalidInputError: the version is a Python object (use ``load``).
            ModelNotFoundError, VersionNotFoundError, ArtifactPrunedError: as ``load``.
            IntegrityError: a stored file or the local copy does not match the manifest.

        >>> import os, tempfile
        >>> src = os.path.join(tempfile.mkdtemp(), "model.bin")
        >>> with open(src, "wb") as f: _ = f.write(b"weights")
        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", path=src)
        >>> reg.load_path("m", "1.0.0").read_bytes()
        b'weights'
        >>> reg.close()
        """
        check_env(env)
        state = self._log.existing(name)
        with self._log.lock:
            mv = _rules.resolve(state, version, env)
        return self._loader.load_path(mv, progress=make_progress(progress))
