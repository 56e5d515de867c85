"""Small models are pickled by the standard pickler; larger ones by joblib's.

joblib's pickler is written in Python (~10x the cost of the C pickler for a small
scikit-learn model); ``joblib.load`` reads both. The bound (``SMALL_PICKLE``) decides,
so arrays worth memory-mapping keep joblib's layout, and ``compress`` always uses joblib.
"""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from modelversions import ModelRegistry, serialization
from modelversions.errors import InvalidInputError


def _artifact(reg: ModelRegistry, name: str, sha256: str) -> Path:
    path = reg.backend.local_path(f"models/{name}/@artifacts/{sha256}.joblib")
    assert path is not None
    return Path(path)


def _protocol(data: bytes) -> int:
    op, arg, _pos = next(pickletools.genops(data))
    assert op.name == "PROTO"
    return int(arg)


@pytest.mark.parametrize(
    "model",
    [
        {"w": [1.5, 2.5], "b": 0.1},
        {"coef": np.arange(12.0).reshape(3, 4), "labels": ["a", "b", "c"]},
        list(range(1000)),
    ],
)
def test_a_small_model_is_a_standard_pickle_that_joblib_loads(tmp_path: Path, model: Any) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", model)
    data = _artifact(reg, "m", mv.sha256).read_bytes()
    assert len(data) <= serialization.SMALL_PICKLE
    assert _protocol(data) == 5  # the standard pickler's; joblib writes its default
    for loaded in (
        joblib.load(_artifact(reg, "m", mv.sha256)),
        ModelRegistry(reg.backend).load("m", mv.version),
    ):
        assert pickle.dumps(loaded, protocol=5) == pickle.dumps(model, protocol=5)


def test_a_model_over_the_bound_is_written_by_joblib_and_can_be_mapped(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    weights = np.arange(serialization.SMALL_PICKLE // 8 + 1, dtype=np.float64)  # just over
    mv = reg.save("m", {"w": weights})
    data = _artifact(reg, "m", mv.sha256).read_bytes()
    assert b"NumpyArrayWrapper" in data  # joblib's layout
    loaded = reg.load("m", mv.version, mmap_mode="r")
    assert isinstance(loaded["w"], np.memmap)
    np.testing.assert_array_equal(loaded["w"], weights)


def test_compress_always_uses_joblib(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"w": [1, 2, 3]}, compress=3)
    data = _artifact(reg, "m", mv.sha256).read_bytes()
    assert data[:2] == b"\x78\x9c" or data[:1] == b"\x78"  # zlib, joblib's compress=3
    assert reg.load("m", mv.version) == {"w": [1, 2, 3]}


def test_what_cannot_be_pickled_is_still_refused_with_a_clear_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    with pytest.raises(InvalidInputError, match="cannot be serialized with joblib"):
        reg.save("m", {"f": lambda x: x})
    assert reg.backend.list("") == []  # not even the artifact


def test_the_bound_holds_while_pickling_a_large_array() -> None:
    """A large array is handed over in one write past the bound: refused, not copied."""
    big = np.zeros(50_000_000 // 8)
    assert serialization._small_pickle({"w": big}) is None
    assert serialization._small_pickle({"w": big[:10]}) is not None
