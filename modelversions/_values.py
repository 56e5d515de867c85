"""The values a record holds in ``metrics``, ``params`` and ``tags``.

This room owns three things and nothing else (no I/O):

* :func:`normalize` checks a caller's mapping and returns a deep, read-only copy in the
  form a JSON round trip gives back: mappings with ``str`` keys, lists (tuples become
  lists), ``str``, ``int``, ``float``, ``bool`` and ``None``. numpy scalars and 0-d arrays
  become Python numbers (numpy is never imported here: only objects of an already
  imported numpy are recognised). A value that cannot be stored raises
  :class:`InvalidInputError` naming its path (``metrics['per_class']['a']``).
* The read-only containers, :class:`FrozenDict` and :class:`FrozenList`: a ``dict`` and a
  ``list`` whose mutating methods raise ``TypeError``. They compare equal to plain dicts
  and lists and ``json.dumps`` takes them as they are.
* The storage form of floats JSON has no token for: NaN, ``inf`` and ``-inf`` are stored
  as ``{"$float": "nan"}``, ``{"$float": "inf"}`` and ``{"$float": "-inf"}``
  (:func:`to_json` / :func:`from_json`), so every stored file is standard JSON. A mapping
  whose only key is ``"$float"`` is therefore refused as input.

Every NaN a record holds is one shared ``float`` object, so records that hold NaN in
the same places compare equal (``==`` on containers checks identity first).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from modelversions.errors import InvalidInputError

__all__ = [
    "EMPTY",
    "MAX_DEPTH",
    "MAX_METADATA_BYTES",
    "TAG",
    "FrozenDict",
    "FrozenList",
    "check_metadata_size",
    "from_json",
    "normalize",
    "to_json",
]

#: Deepest nesting accepted in a record's values (a mapping in a list in ... counts each).
MAX_DEPTH = 32
#: Largest integer magnitude, in bits, accepted (larger numbers: store them as text).
MAX_INT_BITS = 1024
#: Most bytes one version's metrics, params, tags and description take as stored JSON:
#: every reader of the model replays them, so large data belongs in an artifact.
MAX_METADATA_BYTES = 1 << 20
#: The key of the storage form of a non-finite float.
TAG = "$float"

_NAN = float("nan")
_TAGGED = {"nan": _NAN, "inf": math.inf, "-inf": -math.inf}
_PLAIN = frozenset({str, int, bool, type(None)})
# Stored leaf types. A NaN float can only be stored by a non-standard writer (a NaN
# token); it is read as a float like any other.
_SCALARS = _PLAIN | {float}


def _read_only(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only: records are values")


class FrozenDict(dict[str, Any]):
    """A read-only ``dict`` (mutating methods raise ``TypeError``); equal to a plain dict.

    >>> d = FrozenDict({"auc": 0.9})
    >>> d == {"auc": 0.9}, isinstance(d, dict)
    (True, True)
    >>> d["auc"] = 1.0
    Traceback (most recent call last):
    ...
    TypeError: FrozenDict is read-only: records are values
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (from_json, (to_json(self),))  # from_json restores the shared NaN

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


class FrozenList(list[Any]):
    """A read-only ``list`` (mutating methods raise ``TypeError``); equal to a plain list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __repr__(self) -> str:
        return f"FrozenList({list.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (from_json, (to_json(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self


#: The empty mapping every record without metrics/params/tags shares.
EMPTY = FrozenDict()


def normalize(value: Mapping[str, Any] | None, what: str) -> FrozenDict:
    """A deep, read-only, JSON-normalized copy of ``value`` (``None`` gives an empty one).

    Args:
        value: the caller's mapping.
        what: its name, used in error paths (``"metrics"``).

    Raises:
        InvalidInputError: ``value`` is not a mapping, or holds something that cannot be
            stored (the message names its path, e.g. ``metrics['per_class']['a']``).

    >>> normalize({"auc": 0.9, "shape": (3, 4)}, "metrics")
    FrozenDict({'auc': 0.9, 'shape': FrozenList([3, 4])})
    >>> normalize({"a": {1: 2}}, "params")
    Traceback (most recent call last):
    ...
    modelversions.errors.InvalidInputError: params['a'] has key 1 (int): keys must be str
    """
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, not {type(value).__name__}")
    out = _normalize(value, what, 0)
    assert isinstance(out, FrozenDict)
    return out


def _normalize(value: Any, path: str, depth: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        if kind is int and value.bit_length() > MAX_INT_BITS:
            raise InvalidInputError(
                f"{path} is an integer of {value.bit_length()} bits (at most {MAX_INT_BITS}); "
                "store it as a str"
            )
        return value
    if kind is float:
        return _NAN if value != value else value
    if isinstance(value, Mapping | list | tuple):
        if depth >= MAX_DEPTH:
            raise InvalidInputError(f"{path} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"{path} has key {key!r} ({type(key).__name__}): keys must be str"
                    )
                key = str.__str__(key)  # exactly a str, whatever a subclass's __str__ says
                out[key] = _normalize(item, f"{path}[{key!r}]", depth + 1)
            if out.keys() == {TAG}:
                raise InvalidInputError(
                    f"{path} is a mapping whose only key is {TAG!r}, which is reserved for "
                    "the storage form of NaN and infinities"
                )
            return FrozenDict(out) if out else EMPTY
        return FrozenList(
            _normalize(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)
        )
    # Subclasses of the plain types (str and int enums, numpy's str_ and float64) are
    # stored as the base type, as JSON gives them back.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return _normalize(int(value), path, depth)
    if isinstance(value, float):
        return _normalize(float(value), path, depth)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic | numpy.ndarray):
        if getattr(value, "ndim", 0) != 0:
            raise InvalidInputError(
                f"{path} is a numpy array of shape {value.shape}; only scalars are stored "
                "(pass .tolist() to store it as a list)"
            )
        item = value.item()
        if type(item) in _PLAIN or type(item) is float:
            return _normalize(item, path, depth)
        value = item  # a datetime64, complex, bytes...: refused below with its Python type
    raise InvalidInputError(
        f"{path} is a {type(value).__name__}, which cannot be stored: use str, int, float, "
        "bool, None, lists and mappings with str keys (numpy scalars are converted)"
    )


def check_metadata_size(meta: Mapping[str, Any]) -> None:
    """Refuse normalized metadata whose stored JSON exceeds :data:`MAX_METADATA_BYTES`.

    ``meta`` maps field names (``metrics``, ``params``, ``tags``, ``description``) to
    normalized values; the size is that of their JSON as the history stores it.

    >>> check_metadata_size({"metrics": normalize({"auc": 0.9}, "metrics")})
    >>> check_metadata_size({"description": "x" * (MAX_METADATA_BYTES + 1)})
    Traceback (most recent call last):
    ...
    modelversions.errors.InvalidInputError: ... take 1,048,595 bytes as stored JSON; ...
    """
    import json

    size = len(json.dumps({k: to_json(v) for k, v in meta.items()}, separators=(",", ":")))
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"metrics, params, tags and description take {size:,} bytes as stored JSON; at "
            f"most {MAX_METADATA_BYTES:,} (1 MiB): store large data in the artifact, or in a "
            "file with save(path=...)"
        )


def to_json(value: Any) -> Any:
    """The storage form of a normalized value: plain dicts and lists, NaN and infinities tagged.

    >>> to_json(normalize({"loss": float("inf"), "xs": [1.5]}, "metrics"))
    {'loss': {'$float': 'inf'}, 'xs': [1.5]}
    """
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return value
        return {TAG: "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if kind in _PLAIN:
        return value
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    raise TypeError(f"not a normalized record value: {type(value).__name__}")


def from_json(value: Any) -> Any:
    """A stored value (the output of :func:`to_json` after a JSON round trip), frozen.

    Raises:
        ValueError: a ``{"$float": ...}`` tag with an unknown value, or nesting deeper
            than :data:`MAX_DEPTH` (the caller reports it as damage).

    >>> from_json({"loss": {"$float": "nan"}})["loss"] is from_json({"$float": "nan"})
    True
    """
    return _from_json(value, 0)


def _from_json(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise ValueError(f"stored value nested more than {MAX_DEPTH} levels deep")
    if kind is dict or kind is FrozenDict:
        if len(value) == 1 and TAG in value:
            tagged = _TAGGED.get(value[TAG]) if isinstance(value[TAG], str) else None
            if tagged is None:
                raise ValueError(f"unknown {TAG!r} value {value[TAG]!r}")
            return tagged
        if not value:
            return EMPTY
        frozen = FrozenDict(value)
        if _SCALARS.issuperset(map(type, value.values())):
            return frozen  # the common case, checked at C speed
        for key, item in value.items():
            if type(item) not in _SCALARS:
                dict.__setitem__(frozen, key, _from_json(item, depth + 1))
        return frozen
    if kind is list or kind is FrozenList:
        frozen_list = FrozenList(value)
        if _SCALARS.issuperset(map(type, value)):
            return frozen_list
        for i, item in enumerate(value):
            if type(item) not in _SCALARS:
                list.__setitem__(frozen_list, i, _from_json(item, depth + 1))
        return frozen_list
    raise ValueError(f"stored value of type {kind.__name__} is not JSON")
