"""Real framework files as path versions: an ONNX model and a safetensors file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file, save_file

from modelversions import ModelRegistry, UnsafeFormatError


def _onnx_model(path: Path, scale: float) -> None:
    """``y = x * scale`` as a real ONNX graph, written with onnx's helper API."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    weight = numpy_helper.from_array(np.full((1, 3), scale, dtype=np.float32), "scale")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"])], "scale", [x], [y], [weight]
    )
    model = helper.make_model(graph, producer_name="modelversions-test")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _scale(path: Path) -> float:
    model = onnx.load(str(path))
    return float(numpy_helper.to_array(model.graph.initializer[0])[0, 0])


def test_onnx_saved_rolled_back_to_and_checked(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg", allow_pickle=False)
    for i, scale in enumerate((2.0, 3.0)):
        path = tmp_path / str(i) / "model.onnx"
        path.parent.mkdir()
        _onnx_model(path, scale)
        reg.save("scaler", path=path)
        reg.deploy("scaler", f"1.{i}.0")
    assert _scale(reg.load_path("scaler")) == 3.0
    reg.rollback("scaler", reason="regression")
    got = reg.load_path("scaler")
    assert got.name == "model.onnx"
    onnx.checker.check_model(str(got))
    assert _scale(got) == 2.0


def test_safetensors_round_trip(registry: ModelRegistry, tmp_path: Path) -> None:
    tensors = {
        "embed": np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32),
        "bias": np.arange(8, dtype=np.int64),
    }
    src = tmp_path / "model.safetensors"
    save_file(tensors, str(src), metadata={"format": "np"})
    registry.save("emb", path=src)
    got = load_file(str(registry.load_path("emb", "1.0.0")))
    assert sorted(got) == ["bias", "embed"]
    assert all((got[k] == tensors[k]).all() and got[k].dtype == tensors[k].dtype for k in got)


def test_path_versions_load_without_pickle_while_joblib_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "model.safetensors"
    save_file({"w": np.ones(3, dtype=np.float32)}, str(src))
    reg = ModelRegistry(tmp_path / "reg", allow_pickle=False)
    reg.save("m", path=src)
    reg.save("m", {"w": 1})  # saving a pickle is allowed; loading it is not
    assert load_file(str(reg.load_path("m", "1.0.0")))["w"].sum() == 3
    with pytest.raises(UnsafeFormatError):
        reg.load("m", "1.1.0")
