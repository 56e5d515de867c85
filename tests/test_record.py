"""``_record.record`` against ``dataclasses.dataclass``: the same class body built both
ways behaves the same (init, repr, eq, hash, frozenness, slots, pickling, copying, and
every :mod:`dataclasses` function); the records are dataclasses to :mod:`dataclasses`,
and pickles written when they were built by ``dataclasses.dataclass`` still load.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys
import weakref
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest

from modelversions._record import field, record
from modelversions._state import ModelState
from modelversions.records import Event, ModelVersion, Status, StatusChange
from modelversions.version import Version

OPTIONS = [(True, True), (True, False), (False, False), (False, True)]


def _build(decorate: Any, make_field: Any) -> Any:
    """The same class body, decorated by ``dataclasses.dataclass`` or ``record``."""

    @decorate
    class Point:
        """A point."""

        x: int
        y: tuple[int, ...] = make_field(default_factory=tuple)
        label: str = "p"
        hidden: bool = make_field(default=False, repr=False, compare=False)

        def __post_init__(self) -> None:
            if self.label == "":
                object.__setattr__(self, "label", "empty")

        def norm(self) -> int:
            return self.x + sum(self.y)

    return Point


def _pair(frozen: bool, slots: bool) -> tuple[Any, Any]:
    real = _build(dataclasses.dataclass(frozen=frozen, slots=slots), dataclasses.field)
    ours = _build(record(frozen=frozen, slots=slots), field)
    return real, ours


def _picklable(cls: Any, name: str) -> Any:
    """``cls`` under a module-level ``name`` (pickle finds classes by name)."""
    cls.__qualname__ = cls.__name__ = name
    globals()[name] = cls
    return cls


_FIELD_ATTRS = ("name", "type", "default", "default_factory", "init", "repr", "hash")
_FIELD_ATTRS += ("compare", "metadata", "kw_only", "_field_type")


def _field_view(cls: Any) -> list[tuple[Any, ...]]:
    return [tuple(getattr(f, a) for a in _FIELD_ATTRS) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("frozen", "slots"), OPTIONS)
def test_record_builds_what_dataclass_builds(frozen: bool, slots: bool) -> None:
    real, ours = _pair(frozen, slots)
    assert str(inspect.signature(ours)) == str(inspect.signature(real))
    assert ours.__init__.__annotations__ == real.__init__.__annotations__
    assert ours.__init__.__qualname__ == real.__init__.__qualname__
    assert ours.__match_args__ == real.__match_args__
    assert getattr(ours, "__slots__", None) == getattr(real, "__slots__", None)
    assert (ours.__hash__ is None) == (real.__hash__ is None)
    assert ours.__doc__ == real.__doc__ and ours.__qualname__ == real.__qualname__
    assert repr(ours(1)) == repr(real(1))
    _picklable(real, f"Real{frozen:d}{slots:d}")
    _picklable(ours, f"Ours{frozen:d}{slots:d}")
    for args in [(1,), (1, (2, 3)), (1, (2,), ""), (2, (), "q", True)]:
        a, b = real(*args), ours(*args)
        assert repr(a)[4:] == repr(b)[4:] and b.norm() == a.norm() and b.label == a.label
        assert (b == ours(*args)) and (a == real(*args))
        assert (b == ours(9)) == (a == real(9))
        assert (b == ours(*args[:3], not b.hidden)) == (a == real(*args[:3], not a.hidden))
        assert b.__eq__(a) is NotImplemented and a.__eq__(b) is NotImplemented
        assert hasattr(b, "__dict__") == hasattr(a, "__dict__")
        if frozen:
            assert hash(b) == hash(a)
        for clone in (copy.copy(b), copy.deepcopy(b), pickle.loads(pickle.dumps(b))):
            assert clone == b and type(clone) is ours and repr(clone) == repr(b)
        if slots and frozen:
            assert b.__getstate__() == a.__getstate__()
        assert dataclasses.asdict(b) == dataclasses.asdict(a)
        assert dataclasses.astuple(b) == dataclasses.astuple(a)
        assert repr(dataclasses.replace(b, x=7))[4:] == repr(dataclasses.replace(a, x=7))[4:]
    assert dataclasses.is_dataclass(ours) and dataclasses.is_dataclass(ours(1))
    assert _field_view(ours) == _field_view(real)
    assert repr(ours.__dataclass_params__) == repr(real.__dataclass_params__)
    with pytest.raises(TypeError) as real_err:
        real()
    with pytest.raises(TypeError) as our_err:
        ours()
    assert str(our_err.value) == str(real_err.value)


def _outcomes(obj: Any) -> list[str]:
    """What setting and deleting a field or another attribute, and a weakref, do."""
    outcomes = []
    for action in (
        lambda: setattr(obj, "x", 5),
        lambda: setattr(obj, "other", 5),
        lambda: delattr(obj, "label"),
        lambda: delattr(obj, "other"),
        lambda: weakref.ref(obj),
    ):
        try:
            action()
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    return outcomes


@pytest.mark.parametrize(("frozen", "slots"), OPTIONS)
def test_setting_and_deleting_fields_fail_the_same_way(frozen: bool, slots: bool) -> None:
    real, ours = _pair(frozen, slots)
    expected, outcomes = _outcomes(real(1)), _outcomes(ours(1))
    for want, got in zip(expected, outcomes, strict=True):
        if want.startswith("TypeError: super(type, obj)"):
            # dataclass's frozen __setattr__ refers to the class it replaced to add the
            # slots, so its super() call fails; record raises what dataclass means to
            assert got.startswith("FrozenInstanceError: cannot ")
        else:
            assert got == want


def test_a_dataclass_may_subclass_a_record() -> None:
    real, ours = _pair(True, False)

    def sub(base: Any) -> Any:
        @dataclasses.dataclass(frozen=True)
        class Sub(base):  # type: ignore[misc,valid-type]
            """A labelled point."""

            z: int = 0

        return Sub

    assert _field_view(sub(ours)) == _field_view(sub(real))
    assert repr(sub(ours)(1, z=2)) == repr(sub(real)(1, z=2))
    assert repr(sub(ours)(1, z=2)).endswith("Sub(x=1, y=(), label='p', z=2)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub(ours)(1).z = 3


def test_record_refuses_what_it_does_not_build() -> None:
    with pytest.raises(TypeError, match="non-default argument"):

        @record()
        class Bad:
            """Bad."""

            x: int = 1
            y: int

    with pytest.raises(TypeError, match="ClassVar"):

        @record()
        class Counter:
            """Counted."""

            count: ClassVar[int] = 0

    with pytest.raises(TypeError, match="docstring"):

        @record()
        class Undocumented:
            x: int

    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


def _records() -> list[Any]:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    change = StatusChange(Version("1.0.0"), Status.STABLE, Status.FAILED)
    mv = ModelVersion(
        name="churn",
        version=Version("1.0.0"),
        status=Status.CANDIDATE,
        created_at=when,
        sha256="0" * 64,
        size=10,
        metrics={"auc": 0.9},
    )
    event = Event(
        seq=3,
        time=when,
        action="rollback",
        name="churn",
        version=Version("1.0.0"),
        env="production",
        changes=(change,),
        reason="bad",
    )
    return [mv, event, change]


def test_the_records_are_frozen_slotted_dataclasses() -> None:
    for obj in _records():
        cls = type(obj)
        assert dataclasses.is_dataclass(cls) and dataclasses.is_dataclass(obj)
        assert tuple(f.name for f in dataclasses.fields(obj)) == cls.__match_args__
        assert cls.__slots__ == cls.__match_args__ and not hasattr(obj, "__dict__")
        assert cls.__dataclass_params__.frozen and cls.__dataclass_params__.eq
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field"):
            obj.name = "x"
        assert pickle.loads(pickle.dumps(obj)) == obj
        assert copy.deepcopy(obj) == obj
        first = cls.__match_args__[0]
        assert dataclasses.replace(obj) == obj
        assert getattr(dataclasses.replace(obj, **{first: getattr(obj, first)}), first) == (
            getattr(obj, first)
        )
    mv, event, change = _records()
    assert dataclasses.asdict(event)["changes"] == (
        {"version": Version("1.0.0"), "old": Status.STABLE, "new": Status.FAILED},
    )
    assert dataclasses.replace(mv, size=11).size == 11 and mv.size == 10
    assert hash(change) == hash(StatusChange(Version("1.0.0"), Status.STABLE, Status.FAILED))
    assert ModelState(name="m") == ModelState(name="m", chained=True)  # compare=False
    assert "chained" not in repr(ModelState(name="m"))


#: ``pickle.dumps((mv, event), protocol=4)`` of ``_records()`` when the records were
#: built by ``dataclasses.dataclass`` (modelversions at e9453f3).
_OLD_PICKLE = bytes.fromhex(
    "80049521020000000000008c156d6f64656c76657273696f6e732e7265636f726473948c0c4d6f64656c"
    "56657273696f6e9493942981945d94288c05636875726e948c156d6f64656c76657273696f6e732e7665"
    "7273696f6e948c0756657273696f6e9493948c05312e302e30948594529468008c065374617475739493"
    "948c0963616e64696461746594859452948c086461746574696d65948c086461746574696d6594939443"
    "0a07ea01010000000000009468118c0874696d657a6f6e6594939468118c0974696d6564656c74619493"
    "944b004b004b008794529485945294869452948c40303030303030303030303030303030303030303030"
    "303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "30944b0a8c156d6f64656c76657273696f6e732e5f76616c756573948c0966726f6d5f6a736f6e949394"
    "7d948c0361756394473feccccccccccccd738594529468227d948594529468294e4e4e898c066a6f626c"
    "6962946829656268008c054576656e749493942981945d94284b036813430a07ea010100000000000094"
    "681c869452948c08726f6c6c6261636b94680568088c05312e302e3094859452948c0a70726f64756374"
    "696f6e944e4e8c03626164944e4e68008c0c5374617475734368616e67659493942981945d942868088c"
    "05312e302e309485945294680d8c06737461626c659485945294680d8c066661696c6564948594529465"
    "6285948929656286942e"
)


def test_pickles_of_the_dataclass_records_still_load() -> None:
    mv, event, _ = _records()
    assert pickle.loads(_OLD_PICKLE) == (mv, event)
    assert pickle.loads(pickle.dumps((mv, event), protocol=4)) == (mv, event)


def test_importing_the_records_does_not_import_dataclasses() -> None:
    code = "import sys, modelversions.records, modelversions._state\n"
    code += "print('dataclasses' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
