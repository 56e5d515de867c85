"""Serializers beside joblib: npz, skops, third-party ones; allow_pickle; compress."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

import modelversions.serializers as serializers
from modelversions import (
    IntegrityError,
    InvalidInputError,
    ModelRegistry,
    SerializerNotFoundError,
    UnsafeFormatError,
    register_serializer,
)
from modelversions.serializers import get_serializer, registered_serializers
from modelversions.serializers._builtin import SkopsSerializer


class TextSerializer:
    """A third-party serializer (found through the entry-point group in one test)."""

    name = "test-text"
    runs_code = False
    requires = "test-text-serializer>=1"

    def can_save(self, model: Any) -> bool:
        return isinstance(model, str)

    def dump(self, model: Any, fh: IO[bytes], *, compress: Any) -> None:
        fh.write(model.encode())

    def load(self, fh: IO[bytes]) -> Any:
        return fh.read().decode()


@pytest.fixture
def clean_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serializers, "_registered", {})


def test_npz_round_trip_loads_without_pickles(registry: ModelRegistry) -> None:
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2])}
    mv = registry.save("m", arrays, serializer="npz")
    assert mv.format == "npz"
    safe = ModelRegistry(registry.backend, allow_pickle=False)
    got = safe.load("m", "1.0.0")
    assert sorted(got) == ["b", "w"]
    assert got["w"].dtype == np.float32 and (got["w"] == arrays["w"]).all()
    with pytest.raises(InvalidInputError, match="mmap_mode applies to joblib"):
        safe.load("m", "1.0.0", mmap_mode="r")


def test_allow_pickle_false_refuses_joblib_and_names_the_alternatives(
    registry: ModelRegistry,
) -> None:
    registry.save("m", {"w": 1})
    safe = ModelRegistry(registry.backend, allow_pickle=False)
    with pytest.raises(UnsafeFormatError, match=r"serializer='npz'.*serializer='skops'.*path="):
        safe.load("m", "1.0.0")
    assert issubclass(UnsafeFormatError, IntegrityError)
    with pytest.raises(InvalidInputError, match="allow_pickle must be"):
        ModelRegistry("memory://", allow_pickle="no")  # type: ignore[arg-type]
    # A deploy check that loads is refused the same way: the deploy fails, nothing moves.
    assert registry.load("m", "1.0.0") == {"w": 1}


def test_skops_round_trip_under_allow_pickle_false(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(x, y)
    reg = ModelRegistry(tmp_path / "reg", allow_pickle=False)
    mv = reg.save("clf", model, serializer="skops", compress=6)
    assert (mv.format, dict(mv.format_info)) == ("skops", {"compress": 6})
    got = reg.load("clf", "1.0.0")
    assert (got.predict(x) == model.predict(x)).all()
    with pytest.raises(InvalidInputError, match="'skops' serializer cannot store a dict"):
        reg.save("clf", {"w": 1}, serializer="skops")


class Custom:
    """Not among skops' trusted types."""


def test_skops_refuses_untrusted_types_unless_listed(tmp_path: Path, clean_table: None) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=np.log1p)
    model.extra = Custom()
    reg = ModelRegistry(tmp_path / "reg", allow_pickle=False)
    reg.save("t", model, serializer="skops")
    with pytest.raises(UnsafeFormatError, match=r"not trusted: .*Custom"):
        reg.load("t", "1.0.0")
    trusted = ["test_serializers.Custom", "numpy.log1p"]
    register_serializer(SkopsSerializer(trusted=trusted), clobber=True)
    assert isinstance(reg.load("t", "1.0.0").extra, Custom)


def test_compress_is_recorded_and_needs_nothing_to_load(registry: ModelRegistry) -> None:
    data = {"w": np.zeros(200_000)}
    plain = registry.save("m", data)
    squeezed = registry.save("m", data, compress=("zlib", 3))
    assert dict(plain.format_info) == {}
    assert dict(squeezed.format_info) == {"compress": ["zlib", 3]}
    assert squeezed.size < plain.size / 10
    assert (registry.load("m", "1.1.0")["w"] == 0).all()
    npz = registry.save("m", data, serializer="npz", compress=True)
    assert npz.size < plain.size / 10 and dict(npz.format_info) == {"compress": True}
    for bad in (10, -1, "zip", ("zlib", 11), 1.5, [3]):
        with pytest.raises(InvalidInputError, match="compress must be"):
            registry.save("m", data, compress=bad)


def test_a_serializer_that_cannot_store_the_model(registry: ModelRegistry) -> None:
    for model in ([1, 2], {"w": np.array([object()])}, {1: np.zeros(2)}, {"not id": np.zeros(1)}):
        with pytest.raises(InvalidInputError, match="'npz' serializer cannot store"):
            registry.save("m", model, serializer="npz")
    with pytest.raises(InvalidInputError, match="serializer must be a name"):
        registry.save("m", 1, serializer=3)  # type: ignore[arg-type]
    assert registry.models() == []


def test_registered_serializer_and_its_missing_install_hint(
    registry: ModelRegistry, clean_table: None
) -> None:
    register_serializer(TextSerializer())
    assert "test-text" in registered_serializers()
    mv = registry.save("doc", "hello", serializer="test-text")
    assert dict(mv.format_info) == {"requires": "test-text-serializer>=1"}
    assert ModelRegistry(registry.backend, allow_pickle=False).load("doc", "1.0.0") == "hello"
    with pytest.raises(InvalidInputError, match="exists; pass clobber=True"):
        register_serializer(TextSerializer())
    serializers._registered.clear()  # as in a process where it is not installed
    with pytest.raises(
        SerializerNotFoundError, match=r"'test-text'.*pip install 'test-text-serializer>=1'"
    ):
        ModelRegistry(registry.backend).load("doc", "1.0.0")
    with pytest.raises(SerializerNotFoundError, match=r"no serializer 'nope'.*installed: joblib"):
        registry.save("doc", "x", serializer="nope")


def test_bad_serializers_are_refused(clean_table: None) -> None:
    class NoLoad:
        name, runs_code, requires = "x", False, "x"

    with pytest.raises(InvalidInputError, match="is not a serializer"):
        register_serializer(NoLoad())  # type: ignore[arg-type]
    for name in ("path", "", "a b", "x" * 65, "é"):
        text = TextSerializer()
        text.name = name
        with pytest.raises(InvalidInputError, match="a serializer name must be"):
            register_serializer(text)
    with pytest.raises(InvalidInputError, match="a serializer named 'npz' exists"):
        register_serializer(type("N", (TextSerializer,), {"name": "npz"})())


def test_entry_point_group(monkeypatch: pytest.MonkeyPatch, clean_table: None) -> None:
    ep = importlib.metadata.EntryPoint(
        name="test-text", value="test_serializers:TextSerializer", group="modelversions.serializers"
    )
    real = importlib.metadata.entry_points

    def fake(**kw: Any) -> Any:
        return [ep] if kw.get("group") == "modelversions.serializers" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    reg = ModelRegistry("memory://")
    reg.save("doc", "from an entry point", serializer="test-text")
    assert reg.load("doc", "1.0.0") == "from an entry point"
    wrong = importlib.metadata.EntryPoint(
        name="other", value="test_serializers:TextSerializer", group="modelversions.serializers"
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [wrong])
    with pytest.raises(SerializerNotFoundError, match="is not a serializer named 'other'"):
        get_serializer("other")


def test_missing_skops_names_the_extra(monkeypatch: pytest.MonkeyPatch, clean_table: None) -> None:
    monkeypatch.setitem(sys.modules, "skops", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(SerializerNotFoundError, match=r"pip install 'modelversions\[skops\]'"):
        get_serializer("skops")


def test_old_records_without_a_format_load_as_joblib(registry: ModelRegistry) -> None:
    mv = registry.save("m", [1, 2])
    assert mv.format == "joblib" and "format" not in mv.to_dict()
    assert registry.load("m", "1.0.0") == [1, 2]


def test_progress_of_an_object_save_reports_its_size(registry: ModelRegistry) -> None:
    seen: list[tuple[int, int]] = []
    mv = registry.save("m", {"w": np.zeros(1000)}, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(mv.size, mv.size)]


def test_progress_of_a_load_reports_the_size(registry: ModelRegistry) -> None:
    mv = registry.save("m", {"w": np.zeros(1000)})
    seen: list[tuple[int, int]] = []
    registry.load("m", "1.0.0", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(mv.size, mv.size)]
