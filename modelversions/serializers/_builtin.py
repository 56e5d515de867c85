"""The built-in serializers: ``joblib`` (pickles), ``npz`` and ``skops`` (no pickles).

Each imports its library when it is constructed (:func:`get_serializer` does that on
first use), so a missing library is reported with its install hint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

from modelversions.errors import InvalidInputError, UnsafeFormatError

__all__ = ["JoblibSerializer", "NpzSerializer", "SkopsSerializer"]

_COPY = 1024 * 1024


def _staged(fh: IO[bytes], write: Callable[[IO[bytes]], object]) -> None:
    """Run ``write`` on a local temporary file, then copy it to ``fh`` in chunks.

    For formats that write a zip archive: they need a real, seekable file.
    """
    with tempfile.TemporaryFile() as staging:
        write(staging)
        staging.seek(0)
        while chunk := staging.read(_COPY):
            fh.write(chunk)


class JoblibSerializer:
    """Any picklable object, with joblib (numpy arrays stored efficiently).

    Loading unpickles: it can run code, so only load what this registry's writers
    saved (the sha256 check makes sure the bytes are those they saved).
    """

    name = "joblib"
    runs_code = True
    requires = "joblib"

    def __init__(self) -> None:
        import joblib  # noqa: F401 - fails here (with the install hint) if missing

    def can_save(self, model: Any) -> bool:
        return True

    def dump(self, model: Any, fh: IO[bytes], *, compress: Any) -> None:
        import joblib

        joblib.dump(model, fh, compress=compress or 0)

    def load(self, fh: IO[bytes]) -> Any:
        import joblib

        return joblib.load(fh)


def _is_arrays(model: Any) -> bool:
    import numpy as np

    return (
        isinstance(model, Mapping)
        and all(isinstance(k, str) and k.isidentifier() for k in model)
        and all(isinstance(v, np.ndarray) and not v.dtype.hasobject for v in model.values())
    )


class NpzSerializer:
    """A mapping of names to numpy arrays (no object arrays), as ``numpy.savez``.

    Loading uses ``numpy.load(allow_pickle=False)``: no code runs. ``load`` returns a
    ``dict`` of arrays, read into memory. ``compress`` (any true value) uses
    ``numpy.savez_compressed``.

    >>> import io, numpy as np
    >>> s = NpzSerializer(); buf = io.BytesIO()
    >>> s.dump({"w": np.arange(3)}, buf, compress=0); _ = buf.seek(0)
    >>> s.load(buf)["w"].tolist()
    [0, 1, 2]
    """

    name = "npz"
    runs_code = False
    requires = "numpy"

    def __init__(self) -> None:
        import numpy  # noqa: F401

    def can_save(self, model: Any) -> bool:
        return _is_arrays(model)

    def dump(self, model: Any, fh: IO[bytes], *, compress: Any) -> None:
        import numpy as np

        if not _is_arrays(model):
            raise InvalidInputError(
                "the npz serializer stores a mapping of identifier names to numpy arrays "
                f"(no object arrays), not {type(model).__name__}"
            )
        save = np.savez_compressed if compress else np.savez
        _staged(fh, lambda staging: save(staging, **model))

    def load(self, fh: IO[bytes]) -> Any:
        import numpy as np

        with np.load(fh, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}


class SkopsSerializer:
    """scikit-learn estimators (and what skops supports) without pickles.

    Loading trusts skops' default types plus the explicit ``trusted`` list given here
    (type names such as ``"mymodule.MyTransformer"``); a version that needs any other
    type is refused with :class:`UnsafeFormatError` naming them. To trust more, register
    your own instance: ``register_serializer(SkopsSerializer(trusted=[...]), clobber=True)``.
    ``compress`` (an int 1-9, or True for 6) stores it deflated.
    """

    name = "skops"
    runs_code = False
    requires = "modelversions[skops]"

    def __init__(self, *, trusted: list[str] | tuple[str, ...] = ()) -> None:
        import skops.io  # noqa: F401

        self.trusted = list(trusted)

    def can_save(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:
            return False
        return isinstance(model, BaseEstimator)

    def dump(self, model: Any, fh: IO[bytes], *, compress: Any) -> None:
        import zipfile

        import skops.io

        level = 6 if compress is True else int(compress or 0)
        options: dict[str, Any] = {}
        if level:
            options = {"compression": zipfile.ZIP_DEFLATED, "compresslevel": level}
        _staged(fh, lambda staging: skops.io.dump(model, staging, **options))

    def load(self, fh: IO[bytes]) -> Any:
        import skops.io

        data = fh.read()
        untrusted = [t for t in skops.io.get_untrusted_types(data=data) if t not in self.trusted]
        if untrusted:
            raise UnsafeFormatError(
                f"this skops version needs types that are not trusted: {', '.join(untrusted)}; "
                "trust them explicitly with register_serializer(SkopsSerializer("
                "trusted=[...]), clobber=True)"
            )
        return skops.io.loads(data, trusted=self.trusted or None)
