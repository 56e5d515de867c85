"""``record``: what ``@dataclasses.dataclass`` makes of the registry's own classes, without
importing :mod:`dataclasses` (which imports :mod:`inspect`, :mod:`ast`, :mod:`dis` and
:mod:`tokenize`: ~5 ms of a fresh process, and ~1 ms more to build the classes).

Modules write ``@record(frozen=True, slots=True)`` and ``field(default_factory=...)``
where the type checker reads ``dataclasses.dataclass`` and ``dataclasses.field`` (they
import those under ``TYPE_CHECKING``), so mypy sees the real dataclasses. At run time the
classes get the same methods ``dataclass`` generates for these options (``__init__`` with
the same signature and ``__post_init__`` call, ``__repr__``, ``__eq__``, ``__hash__``,
the frozen ``__setattr__``/``__delattr__`` raising ``FrozenInstanceError``,
``__match_args__``, ``__slots__`` and the slotted classes' ``__getstate__``/
``__setstate__``, so pickles are the same) and they are dataclasses to the
:mod:`dataclasses` functions: ``__dataclass_fields__`` and ``__dataclass_params__`` are
built, with :mod:`dataclasses` itself, on first access, so ``fields``, ``replace``,
``asdict``, ``astuple`` and ``is_dataclass`` work unchanged. ``tests/test_record.py``
checks each against a class built by ``dataclasses.dataclass``.

Only what the registry uses is supported: ``frozen``, ``slots``, and fields with a
``default`` or ``default_factory``, ``repr`` and ``compare``; anything else is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any

#: What record writes; a class defining one of them is refused (dataclass keeps some).
_GENERATED = frozenset({"__init__", "__repr__", "__eq__", "__hash__", "__setattr__"})
_GENERATED |= {"__delattr__", "__getstate__", "__setstate__", "__match_args__", "__slots__"}
_MISSING: Any = type("_MISSING", (), {"__repr__": lambda self: "<MISSING>"})()
_FACTORY: Any = type("_FACTORY", (), {"__repr__": lambda self: "<factory>"})()


class _Field:
    """A field's options as written in the class body (``dataclasses.field``'s subset)."""

    __slots__ = ("compare", "default", "default_factory", "repr")

    def __init__(
        self, default: Any, default_factory: Callable[[], Any] | Any, repr: bool, compare: bool
    ) -> None:
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.default, self.default_factory = default, default_factory
        self.repr, self.compare = repr, compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """``dataclasses.field`` for :func:`record` classes (only these options)."""
    return _Field(default, default_factory, repr, compare)


class _DataclassInfo:
    """``__dataclass_fields__``/``__dataclass_params__``: built on first access by
    :mod:`dataclasses` itself (``make_dataclass`` with the same fields and options), then
    stored on the class in place of this descriptor."""

    def __init__(
        self, attr: str, specs: list[tuple[str, Any, _Field]], frozen: bool, slots: bool
    ) -> None:
        self.attr, self.specs, self.frozen, self.slots = attr, specs, frozen, slots
        self.owner: type | None = None

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        import dataclasses

        cls = self.owner
        assert cls is not None
        model = dataclasses.make_dataclass(
            cls.__name__,
            [(name, kind, dataclasses.field(**_options(spec))) for name, kind, spec in self.specs],
            frozen=self.frozen,
            slots=self.slots,
        )
        for attr in ("__dataclass_fields__", "__dataclass_params__"):
            setattr(cls, attr, getattr(model, attr))
        return getattr(cls, self.attr)


def _has_default(spec: _Field) -> bool:
    return spec.default is not _MISSING or spec.default_factory is not _MISSING


def _options(spec: _Field) -> dict[str, Any]:
    options: dict[str, Any] = {"repr": spec.repr, "compare": spec.compare}
    if spec.default is not _MISSING:
        options["default"] = spec.default
    if spec.default_factory is not _MISSING:
        options["default_factory"] = spec.default_factory
    return options


def _frozen_error(name: str, verb: str) -> AttributeError:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(f"cannot {verb} field {name!r}")


def record(*, frozen: bool = False, slots: bool = False) -> Callable[[type], type]:
    """``dataclasses.dataclass(frozen=frozen, slots=slots)`` (see the module docstring)."""

    def wrap(cls: type) -> type:
        return _build(cls, frozen, slots)

    return wrap


def _build(cls: type, frozen: bool, slots: bool) -> type:
    own = vars(cls)
    if (
        any("__dataclass_fields__" in vars(base) for base in cls.__mro__[1:])
        or not cls.__doc__
        or _GENERATED & own.keys()
    ):
        raise TypeError(f"record {cls.__name__}: a docstring, no dataclass base, no {_GENERATED}")
    annotations: dict[str, Any] = dict(vars(cls).get("__annotations__", {}))
    specs: list[tuple[str, Any, _Field]] = []
    for name, kind in annotations.items():
        if "ClassVar" in str(kind) or "InitVar" in str(kind):
            raise TypeError(f"record {cls.__name__}: ClassVar and InitVar are not supported")
        value = vars(cls).get(name, _MISSING)
        spec = value if isinstance(value, _Field) else _Field(value, _MISSING, True, True)
        if specs and _has_default(specs[-1][2]) and not _has_default(spec):
            raise TypeError(f"non-default argument {name!r} follows default argument")
        specs.append((name, kind, spec))
    names = tuple(name for name, _, _ in specs)
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    for name, _, spec in specs:
        namespace.pop(name, None)
        if not slots and spec.default is not _MISSING:
            namespace[name] = spec.default  # a class attribute, as dataclass leaves it
    if slots:
        namespace["__slots__"] = names
    namespace["__match_args__"] = names
    for attr in ("__dataclass_fields__", "__dataclass_params__"):
        namespace[attr] = _DataclassInfo(attr, specs, frozen, slots)
    # The methods go in the namespace: setting them on the built class would update its
    # slots one by one (the costly part of building a class).
    built: list[type] = []  # the class, for the frozen methods' super() call
    methods = _methods(cls, specs, frozen, slots, built)
    for name, method in methods.items():
        if method is not None:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            method.__module__ = cls.__module__
    namespace.update(methods, __qualname__=cls.__qualname__)
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    built.append(new)
    for attr in ("__dataclass_fields__", "__dataclass_params__"):
        vars(new)[attr].owner = new
    return new


def _methods(
    cls: type, specs: list[tuple[str, Any, _Field]], frozen: bool, slots: bool, built: list[type]
) -> dict[str, Any]:
    names = [name for name, _, _ in specs]
    shown = [name for name, _, spec in specs if spec.repr]
    compared = [name for name, _, spec in specs if spec.compare]
    env: dict[str, Any] = {"__name__": cls.__module__, "_FACTORY": _FACTORY, "_object": object}
    params, body = [], []
    for name, _, spec in specs:
        if spec.default_factory is not _MISSING:
            env[f"_factory_{name}"] = spec.default_factory
            params.append(f"{name}=_FACTORY")
            value = f"_factory_{name}() if {name} is _FACTORY else {name}"
        elif spec.default is not _MISSING:
            env[f"_default_{name}"] = spec.default
            params.append(f"{name}=_default_{name}")
            value = name
        else:
            params.append(name)
            value = name
        body.append(
            f"    _object.__setattr__(self, {name!r}, {value})"
            if frozen
            else f"    self.{name} = {value}"
        )
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = [f"def __init__(self, {', '.join(params)}):", *(body or ["    pass"])]
    exec(compile("\n".join(source), f"<record {cls.__qualname__}>", "exec"), env)
    init = env["__init__"]
    init.__annotations__ = {name: kind for name, kind, _ in specs} | {"return": None}
    methods: dict[str, Any] = {"__init__": init, **_value_methods(shown, compared, frozen)}
    if frozen:
        methods.update(_frozen_methods(built, frozenset(names)))
        if slots:
            methods.update(_state_methods(names))
    if sys.version_info >= (3, 13):

        def __replace__(self: Any, /, **changes: Any) -> Any:
            import dataclasses

            return dataclasses.replace(self, **changes)

        methods["__replace__"] = __replace__
    return methods


def _value_methods(shown: list[str], compared: list[str], frozen: bool) -> dict[str, Any]:
    """``__repr__``, ``__eq__`` and ``__hash__`` as dataclass writes them, over the
    fields' values as one tuple (only ``__init__`` is compiled: the costly part)."""
    key: Callable[[Any], tuple[Any, ...]]
    if len(compared) >= 2:
        key = attrgetter(*compared)
    else:
        key = lambda obj: tuple(getattr(obj, name) for name in compared)  # noqa: E731

    def __repr__(self: Any) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({values})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    return {
        "__repr__": recursive_repr()(__repr__),
        "__eq__": __eq__,
        "__hash__": __hash__ if frozen else None,
    }


def _frozen_methods(built: list[Any], names: frozenset[str]) -> dict[str, Any]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is built[0] or name in names:
            raise _frozen_error(name, "assign to")
        super(built[0], self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is built[0] or name in names:
            raise _frozen_error(name, "delete")
        super(built[0], self).__delattr__(name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}


def _state_methods(names: list[str]) -> dict[str, Any]:
    """Pickling a frozen slotted class, in dataclass's format (a list of the values)."""

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state):  # noqa: B905 (dataclass's zip)
            object.__setattr__(self, name, value)

    return {"__getstate__": __getstate__, "__setstate__": __setstate__}
