"""Serializers: how a Python object becomes the bytes of a version, and back.

A serializer is named in each version's record (``ModelVersion.format``); the table
here finds it again by that name when the version is loaded: first those registered
with :func:`register_serializer`, then the built-ins (``joblib``, ``npz``, ``skops``),
then the entry-point group ``modelversions.serializers`` of the installed packages.
Built-ins are imported on first use. A name found nowhere raises
:class:`~modelversions.errors.SerializerNotFoundError` with the ``pip install`` that
brings it. Files and folders (``save(path=...)``) are the format ``"path"``, which is
no serializer: see :mod:`modelversions.serializers._paths`.

This module only looks serializers up; it never reads or writes storage. The bytes a
serializer's ``load`` gets were hashed and matched against the record first.
"""

from __future__ import annotations

import threading
from typing import IO, Any, Protocol, runtime_checkable

from modelversions.errors import InvalidInputError, SerializerNotFoundError

__all__ = [
    "PATH_FORMAT",
    "Serializer",
    "get_serializer",
    "register_serializer",
    "registered_serializers",
]

#: The format of a version saved with ``save(path=...)``: a manifest and its files.
PATH_FORMAT = "path"
ENTRY_POINT_GROUP = "modelversions.serializers"


@runtime_checkable
class Serializer(Protocol):
    """What a serializer provides; third-party ones need not subclass anything.

    Attributes:
        name: stored in each version it saves (letters, digits, ``._-``; not ``"path"``).
        runs_code: True if loading may run code from the stored bytes (a pickle):
            such versions are refused by ``ModelRegistry(allow_pickle=False)``.
        requires: what to ``pip install`` where it is missing (``"modelversions[skops]"``).

    ``dump(model, fh, *, compress)`` writes the model to ``fh``, a write-only stream
    (``write``/``tell``/``flush``, no ``seek``: write to a temporary file first if the
    format needs one). ``load(fh)`` reads it back from ``fh``, a seekable file at
    offset 0 whose bytes were verified against the record. ``can_save(model)`` says
    whether it can store ``model`` (``save`` checks it before writing anything).

    >>> class Text:
    ...     name, runs_code, requires = "text", False, "my-text-serializer"
    ...     def can_save(self, model): return isinstance(model, str)
    ...     def dump(self, model, fh, *, compress): fh.write(model.encode())
    ...     def load(self, fh): return fh.read().decode()
    >>> isinstance(Text(), Serializer)
    True
    """

    name: str
    runs_code: bool
    requires: str

    def can_save(self, model: Any) -> bool: ...

    def dump(self, model: Any, fh: IO[bytes], *, compress: Any) -> None: ...

    def load(self, fh: IO[bytes]) -> Any: ...


# name -> "module:attribute" (imported on first use), and what to install if it fails.
_BUILTIN: dict[str, tuple[str, str]] = {
    "joblib": ("modelversions.serializers._builtin:JoblibSerializer", "joblib"),
    "npz": ("modelversions.serializers._builtin:NpzSerializer", "numpy"),
    "skops": ("modelversions.serializers._builtin:SkopsSerializer", "modelversions[skops]"),
}
_registered: dict[str, Serializer] = {}
_lock = threading.Lock()


def _check_name(name: object) -> str:
    ok = isinstance(name, str) and 0 < len(name) <= 64 and name != PATH_FORMAT
    if not ok or not all(c.isascii() and (c.isalnum() or c in "._-") for c in str(name)):
        raise InvalidInputError(
            f"a serializer name must be 1-64 ASCII letters, digits or '._-' and not "
            f"{PATH_FORMAT!r}, not {name!r}"
        )
    return name  # type: ignore[return-value]


def register_serializer(serializer: Serializer, *, clobber: bool = False) -> None:
    """Make ``serializer`` available under ``serializer.name`` in this process.

    Raises:
        InvalidInputError: it lacks the protocol's members, its name is not acceptable,
            or the name is taken (a built-in or one registered before) and not ``clobber``.

    >>> class Text:
    ...     name, runs_code, requires = "doctest-text", False, "my-text-serializer"
    ...     def can_save(self, model): return isinstance(model, str)
    ...     def dump(self, model, fh, *, compress): fh.write(model.encode())
    ...     def load(self, fh): return fh.read().decode()
    >>> register_serializer(Text())
    >>> get_serializer("doctest-text").runs_code
    False
    """
    if not isinstance(serializer, Serializer) or not isinstance(serializer.runs_code, bool):
        raise InvalidInputError(
            f"{serializer!r} is not a serializer: it needs name, runs_code (a bool), "
            "requires, can_save, dump and load"
        )
    name = _check_name(serializer.name)
    with _lock:
        if not clobber and (name in _registered or name in _BUILTIN):
            raise InvalidInputError(f"a serializer named {name!r} exists; pass clobber=True")
        _registered[name] = serializer


def registered_serializers() -> list[str]:
    """Names of the serializers available here without an import: built-ins and registered."""
    with _lock:
        return sorted({*_BUILTIN, *_registered})


def _instantiate(obj: Any, name: str) -> Serializer:
    serializer = obj() if isinstance(obj, type) else obj
    if not isinstance(serializer, Serializer) or serializer.name != name:
        raise SerializerNotFoundError(
            f"the serializer registered as {name!r} is not a serializer named {name!r}: "
            f"{serializer!r}"
        )
    return serializer


def _from_entry_points(name: str) -> Any | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def get_serializer(name: str, *, requires: str | None = None) -> Serializer:
    """The serializer stored as ``name``.

    ``requires`` (what the version recorded) improves the install hint for a
    serializer that is not built in.

    Raises:
        SerializerNotFoundError: none of that name is installed here; the message names
            the ``pip install`` that brings it.

    >>> get_serializer("npz").runs_code
    False
    """
    with _lock:
        found = _registered.get(name)
    if found is not None:
        return found
    builtin = _BUILTIN.get(name)
    try:
        if builtin is not None:
            import importlib

            module, attr = builtin[0].split(":")
            obj: Any = getattr(importlib.import_module(module), attr)
        else:
            obj = _from_entry_points(name)
        if obj is None:
            raise SerializerNotFoundError(_missing(name, requires, None))
        serializer = _instantiate(obj, name)  # a built-in imports its library here
    except ImportError as exc:
        hint = builtin[1] if builtin is not None else requires
        raise SerializerNotFoundError(_missing(name, hint, exc)) from exc
    with _lock:
        return _registered.setdefault(name, serializer)


def _missing(name: str, hint: str | None, exc: BaseException | None) -> str:
    why = f" ({exc})" if exc is not None else ""
    if hint:
        return f"the serializer {name!r} is not installed here{why}: pip install '{hint}'"
    return (
        f"no serializer {name!r} is installed here{why}: install the package that "
        f"provides it (entry-point group {ENTRY_POINT_GROUP!r}); installed: "
        f"{', '.join(registered_serializers())}"
    )
