"""What a save stores, and the checks on formats before anything is loaded.

:class:`ObjectArtifact`: a Python object serialized (joblib by default, or a named
serializer from :mod:`modelversions.serializers`) into one content-addressed blob.
:func:`artifact_for` turns ``save``'s arguments into it or into a
:class:`~modelversions.serializers._paths.PathArtifact`; :func:`check_loadable` says
whether a version may be loaded with ``load`` under the registry's ``allow_pickle``.
This module never loads a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from modelversions import _state
from modelversions.backends import Backend
from modelversions.errors import IntegrityError, InvalidInputError, UnsafeFormatError
from modelversions.records import ModelVersion
from modelversions.serializers import PATH_FORMAT, Serializer, get_serializer

__all__ = ["NO_MODEL", "ObjectArtifact", "artifact_for", "check_compress", "check_loadable"]

#: ``save``'s default for ``model``: no object given (``None`` is a model like any other).
NO_MODEL: Any = type("_NoModel", (), {"__repr__": lambda self: "<no model>"})()
_COMPRESSORS = ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")
Progress = Callable[[int, int], None]


def check_compress(compress: Any) -> Any:
    """``compress`` as recorded: None, True/False, an int 0-9, a method name or (name, level).

    Raises:
        InvalidInputError: anything else.

    >>> check_compress(("zlib", 3))
    ['zlib', 3]
    """
    if compress is None or isinstance(compress, bool):
        return compress
    if type(compress) is int and 0 <= compress <= 9:
        return compress
    if isinstance(compress, str) and compress in _COMPRESSORS:
        return compress
    if (
        isinstance(compress, (tuple, list))
        and len(compress) == 2
        and compress[0] in _COMPRESSORS
        and type(compress[1]) is int
        and 0 <= compress[1] <= 9
    ):
        return [compress[0], compress[1]]
    raise InvalidInputError(
        f"compress must be an int 0-9, True, one of {', '.join(_COMPRESSORS)} or "
        f"(method, level), not {compress!r}"
    )


class ObjectArtifact:
    """A model serialized into one blob at ``models/<name>/@artifacts/<sha256>.joblib``."""

    def __init__(
        self,
        model: Any,
        serializer: Serializer | None,
        compress: Any,
        progress: Progress | None = None,
    ) -> None:
        self.model = model
        self.progress = progress
        self.serializer = serializer
        self.compress = compress
        self.format = "joblib" if serializer is None else serializer.name

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.compress:
            info["compress"] = self.compress
        if self.serializer is not None and self.format not in ("joblib", "npz", "skops"):
            info["requires"] = str(self.serializer.requires)
        return info

    def write(self, backend: Backend, name: str) -> tuple[str, int, bool]:
        from modelversions.serialization import dump_model

        compress = tuple(self.compress) if isinstance(self.compress, list) else self.compress
        blob = backend.open_blob()
        try:
            sha256, size = dump_model(
                self.model, blob, compress=compress or 0, serializer=self.serializer
            )
            created = blob.commit(_state.artifact_key(name, sha256))
        except BaseException:
            blob.abort()
            raise
        if self.progress is not None:  # the size is known only once it is written
            self.progress(size, size)
        return sha256, size, created

    def ensure(self, backend: Backend, name: str, sha256: str, created: bool) -> None:
        """After a save that reused a stored artifact: make sure it is still there.

        A concurrent ``prune``/``delete`` may have removed the reused artifact between
        this save finding it and committing its record; write it again then.
        """
        key = _state.artifact_key(name, sha256)
        if created or backend.exists(key):
            return
        again, _size, _created = self.write(backend, name)
        if again != sha256:
            raise IntegrityError(
                f"the artifact {key} was removed by a concurrent prune while this save "
                f"committed, and serializing the model again gave different bytes "
                f"({again}); save the model again"
            )


def artifact_for(
    model: Any,
    path: str | os.PathLike[str] | None,
    *,
    serializer: str | None,
    compress: Any,
    progress: Progress | None,
) -> Any:
    """The artifact ``save`` stores: exactly one of ``model`` and ``path``.

    Raises:
        InvalidInputError: both or neither given; ``serializer``/``compress`` with a
            path; a serializer that cannot store this model.
        SerializerNotFoundError: no serializer of that name is installed.
    """
    from modelversions.serializers._paths import PathArtifact

    if (model is NO_MODEL) == (path is None):
        raise InvalidInputError(
            "save takes exactly one of model (a Python object) and path (a file or folder)"
            + (", not both" if path is not None else "")
        )
    compress = check_compress(compress)
    if path is not None:
        if serializer is not None or compress:
            raise InvalidInputError("serializer and compress apply to a model, not to a path")
        return PathArtifact(path, progress=progress)
    if serializer is not None and not isinstance(serializer, str):
        raise InvalidInputError(f"serializer must be a name (str), not {serializer!r}")
    chosen = None if serializer is None or serializer == "joblib" else get_serializer(serializer)
    if chosen is not None and not chosen.can_save(model):
        raise InvalidInputError(
            f"the {chosen.name!r} serializer cannot store a {type(model).__name__}"
        )
    if chosen is not None and compress and chosen.name not in ("npz", "skops"):
        raise InvalidInputError(f"compress applies to joblib, npz and skops, not {chosen.name!r}")
    return ObjectArtifact(model, chosen, compress, progress)


def check_loadable(mv: ModelVersion, *, allow_pickle: bool) -> Serializer | None:
    """The serializer that loads ``mv`` (None: joblib), checked against ``allow_pickle``.

    Raises:
        InvalidInputError: a path version (``load_path`` is the call to use).
        SerializerNotFoundError: its serializer is not installed here.
        UnsafeFormatError: loading it would unpickle and ``allow_pickle`` is False.
    """
    if mv.format == PATH_FORMAT:
        raise InvalidInputError(
            f"{mv.name} {mv.version} is a file or folder saved with save(path=...): "
            f"use load_path({mv.name!r}, {str(mv.version)!r}) to get its local path"
        )
    requires = mv.format_info.get("requires")
    serializer = get_serializer(mv.format, requires=requires if isinstance(requires, str) else None)
    if serializer.runs_code and not allow_pickle:
        raise UnsafeFormatError(
            f"{mv.name} {mv.version} is stored as {mv.format!r}, and loading it would "
            "unpickle (run code); this registry has allow_pickle=False. Save models with "
            "serializer='npz' (numpy arrays) or serializer='skops' (scikit-learn), or "
            "as files with save(path=...) (safetensors, ONNX)"
        )
    return None if mv.format == "joblib" else serializer
