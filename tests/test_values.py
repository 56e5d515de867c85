"""Records are values (issue 9): what save accepts, how it is stored, what comes back.

Covers: deep read-only JSON-normalized metrics/params/tags; numpy scalars, NaN and
infinities; refusals naming the path of the bad value; str-only text arguments and
callable checks; version numbers never reused; version length and number limits.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _tamper import snapshot_payload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelversions import ModelRegistry, ModelVersion, Version, _state
from modelversions._values import (
    MAX_DEPTH,
    MAX_METADATA_BYTES,
    FrozenDict,
    FrozenList,
    from_json,
    normalize,
    to_json,
)
from modelversions.errors import (
    InvalidInputError,
    InvalidNameError,
    InvalidVersionError,
    ModelVersionsError,
    VersionExistsError,
)
from modelversions.records import _parse_version
from modelversions.version import MAX_LENGTH, MAX_NUMBER


def reopen(reg: ModelRegistry) -> ModelRegistry:
    """A fresh registry object on the same storage (replays from storage)."""
    return ModelRegistry(reg.backend)


def observable(reg: ModelRegistry, name: str) -> tuple[Any, ...]:
    """Everything stored about ``name``, to check that a refused call changed nothing."""
    return (
        [json.dumps(mv.to_dict()) for mv in reopen(reg).versions(name)],
        [e.to_dict() for e in reopen(reg).history(name)],
        reg.backend.list(""),
    )


def strict_json(data: bytes) -> Any:
    """Parse as a strict JSON reader would: no NaN / Infinity tokens."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(data, parse_constant=refuse)


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


# ------------------------------------------------------------------ 1. deep, read-only copies
def test_caller_mutation_after_save_changes_nothing_not_even_the_next_snapshot(
    reg: ModelRegistry,
) -> None:
    metrics: dict[str, Any] = {"per_class": {"a": 0.5}, "xs": [1, 2]}
    params: dict[str, Any] = {"grid": {"C": [1, 10]}}
    reg.save("m", 1, metrics=metrics, params=params)
    metrics["per_class"]["a"] = 0.0
    metrics["xs"].append(3)
    params["grid"]["C"].append(100)
    for i in range(20):  # enough events for a snapshot to be written from memory
        reg.mark_stable("m", "1.0.0", reason=f"r{i}")
    assert reg.backend.list("models/m/@snapshots/")
    for got in (reg.get("m", "1.0.0"), reopen(reg).get("m", "1.0.0")):
        assert got.metrics == {"per_class": {"a": 0.5}, "xs": [1, 2]}
        assert got.params == {"grid": {"C": [1, 10]}}
    assert reg.verify().ok


def test_returned_record_is_read_only_at_every_depth(reg: ModelRegistry) -> None:
    mv = reg.save("m", 1, metrics={"per_class": {"a": 0.5}, "xs": [1, [2]]}, tags={"t": "x"})
    with pytest.raises(TypeError):
        mv.metrics["per_class"]["a"] = 1.0
    with pytest.raises(TypeError):
        mv.metrics["per_class"].update(b=2)
    with pytest.raises(TypeError):
        mv.metrics["xs"].append(3)
    with pytest.raises(TypeError):
        mv.metrics["xs"][1].append(3)
    with pytest.raises(TypeError):
        mv.metrics["xs"] += [4]
    with pytest.raises(TypeError):
        del mv.tags["t"]
    for got in (reg.get("m", "1.0.0"), reopen(reg).get("m", "1.0.0")):
        assert got.metrics == {"per_class": {"a": 0.5}, "xs": [1, [2]]}
        assert got == mv


def test_returned_record_equals_a_fresh_registrys(reg: ModelRegistry) -> None:
    # Tuples (today kept as tuples in the returned record) come back as lists.
    mv = reg.save("m", 1, metrics={"shape": (3, 4), "nested": {"pair": (1, (2, 3))}})
    fresh = reopen(reg).get("m", "1.0.0")
    assert mv == fresh
    assert mv.metrics["shape"] == [3, 4]
    assert isinstance(mv.metrics["shape"], list)
    assert mv.metrics["nested"]["pair"] == [1, [2, 3]]


def test_to_dict_gives_plain_mutable_json_types(reg: ModelRegistry) -> None:
    mv = reg.save("m", 1, metrics={"per_class": {"a": 0.5}, "xs": [1, [2]]})
    d = mv.to_dict()
    assert type(d["metrics"]) is dict
    assert type(d["metrics"]["per_class"]) is dict
    assert type(d["metrics"]["xs"]) is list and type(d["metrics"]["xs"][1]) is list
    d["metrics"]["per_class"]["a"] = 9  # a copy: the record is untouched
    assert mv.metrics["per_class"]["a"] == 0.5
    assert json.loads(json.dumps(mv.to_dict())) == mv.to_dict()
    assert ModelVersion.from_dict(mv.to_dict()) == mv


def test_records_pickle_copy_and_json_dump(reg: ModelRegistry) -> None:
    mv = reg.save("m", 1, metrics={"per_class": {"a": 0.5}, "xs": [1, 2], "n": float("nan")})
    back = pickle.loads(pickle.dumps(mv))
    assert back == mv and isinstance(back.metrics["per_class"], FrozenDict)
    assert copy.deepcopy(mv) == mv and copy.copy(mv) == mv
    assert json.loads(json.dumps(mv.metrics["per_class"])) == {"a": 0.5}


def test_nested_non_str_keys_are_refused_with_their_path(reg: ModelRegistry) -> None:
    # Decision: refuse (JSON would silently turn 1 into "1" and could merge 1 and "1").
    with pytest.raises(InvalidInputError, match=r"metrics\['per_class'\] has key 1 \(int\)"):
        reg.save("m", 1, metrics={"per_class": {1: 0.5}})
    with pytest.raises(InvalidInputError, match=r"params\['x'\]\[0\] has key None"):
        reg.save("m", 1, params={"x": [{None: 1}]})
    assert reg.backend.list("") == []


def test_a_mapping_that_looks_like_the_float_tag_is_refused(reg: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match=r"tags\['x'\].*reserved"):
        reg.save("m", 1, tags={"x": {"$float": "nan"}})
    mv = reg.save("m", 1, tags={"x": {"$float": "nan", "other": 1}, "$float": "ok"})
    assert reopen(reg).get("m", "1.0.0") == mv
    assert mv.tags["x"] == {"$float": "nan", "other": 1}


def test_model_version_built_by_hand_is_frozen_too() -> None:
    from datetime import datetime, timezone

    inner = {"a": [1, 2]}
    mv = ModelVersion(
        name="m",
        version=Version("1.0.0"),
        status=_state.Status.CANDIDATE,
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        sha256="0" * 64,
        size=1,
        metrics={"inner": inner},
    )
    inner["a"].append(3)
    assert mv.metrics == {"inner": {"a": [1, 2]}}
    with pytest.raises(TypeError):
        mv.metrics["inner"]["a"].append(3)


# ------------------------------------------------------------------ 2. numpy, NaN, refusals
def test_numpy_scalars_are_stored_as_python_numbers(reg: ModelRegistry) -> None:
    metrics = {
        "f32": np.float32(0.5),
        "f64": np.float64(0.25),
        "i64": np.int64(7),
        "u8": np.uint8(255),
        "b": np.bool_(True),
        "zero_d": np.array(3.5),
        "zero_d_int": np.array(4),
        "s": np.str_("text"),
        "nested": {"list": [np.int32(1), np.float16(2.0)]},
    }
    mv = reg.save("m", 1, metrics=metrics)
    for got in (mv, reopen(reg).get("m", "1.0.0")):
        m = got.metrics
        assert type(m["f32"]) is float and m["f32"] == 0.5
        assert type(m["f64"]) is float
        assert type(m["i64"]) is int and m["i64"] == 7
        assert type(m["u8"]) is int and m["u8"] == 255
        assert type(m["b"]) is bool and m["b"] is True
        assert type(m["zero_d"]) is float and m["zero_d"] == 3.5
        assert type(m["zero_d_int"]) is int
        assert type(m["s"]) is str
        assert [type(x) for x in m["nested"]["list"]] == [int, float]
    assert mv == reopen(reg).get("m", "1.0.0")


def test_numpy_arrays_and_other_numpy_values_are_refused_with_the_path(
    reg: ModelRegistry,
) -> None:
    with pytest.raises(InvalidInputError, match=r"metrics\['cm'\] is a numpy array.*tolist"):
        reg.save("m", 1, metrics={"cm": np.eye(2)})
    with pytest.raises(InvalidInputError, match=r"metrics\['z'\] is a complex"):
        reg.save("m", 1, metrics={"z": np.complex128(1j)})
    assert reg.backend.list("") == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_non_finite_floats_round_trip_and_are_stored_as_standard_json(
    reg: ModelRegistry, value: Any
) -> None:
    mv = reg.save("m", 1, metrics={"loss": value, "per_class": {"a": [value]}})
    fresh = reopen(reg).get("m", "1.0.0")
    assert mv == fresh
    for got in (mv, fresh):
        loss = got.metrics["loss"]
        assert type(loss) is float
        assert repr(loss) == repr(float(value))
        assert repr(got.metrics["per_class"]["a"][0]) == repr(float(value))
    # Every stored file is standard JSON (no NaN / Infinity tokens).
    for key in reg.backend.list("models/"):
        if key.endswith(".json"):
            strict_json(reg.backend.read(key))
    entry = strict_json(reg.backend.read(_state.log_key("m", 1)))
    tag = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    assert entry["record"]["metrics"]["loss"] == {"$float": tag}
    assert mv.to_dict()["metrics"]["loss"] == {"$float": tag}
    for _ in range(20):  # through a snapshot too
        reg.mark_stable("m", "1.0.0")
    assert reopen(reg).get("m", "1.0.0").metrics == mv.metrics
    assert reg.verify().ok


_OVER = r"at most 1,048,576"
_HALF = MAX_METADATA_BYTES // 2


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"metrics": {"per_class": {"a": object()}}}, r"metrics\['per_class'\]\['a'\] is a object"),
        ({"metrics": {"s": {1, 2}}}, r"metrics\['s'\] is a set"),
        ({"params": {"f": [1, print]}}, r"params\['f'\]\[1\] is a builtin_function"),
        ({"tags": {"b": b"bytes"}}, r"tags\['b'\] is a bytes"),
        ({"metrics": {"big": 2**2000}}, r"metrics\['big'\] is an integer of 2001 bits"),
        ({"metrics": [("auc", 0.5)]}, r"metrics must be a mapping"),
        # over 1 MiB as stored JSON, whichever fields hold it
        ({"metrics": {"blob": "x" * MAX_METADATA_BYTES}}, _OVER),
        ({"params": {"grid": list(range(MAX_METADATA_BYTES // 4))}}, _OVER),
        ({"tags": {"a": "x" * _HALF}, "description": "y" * _HALF}, _OVER),
        ({"description": "z" * (MAX_METADATA_BYTES + 1)}, _OVER),
        ({"metrics": {"e": "\u00e9" * (MAX_METADATA_BYTES // 5)}}, _OVER),  # \\u00e9: 6 bytes
    ],
)
def test_unstorable_value_is_refused_with_its_path_and_nothing_is_written(
    reg: ModelRegistry, kwargs: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidInputError, match=path):
        reg.save("m", 1, **kwargs)
    assert reg.backend.list("") == []  # not even the artifact
    reg.save("m", 1)
    before = observable(reg, "m")
    with pytest.raises(InvalidInputError, match=path):
        reg.save("m", 2, **kwargs)
    assert observable(reg, "m") == before


def test_metadata_just_under_the_limit_is_stored_and_read_back(reg: ModelRegistry) -> None:
    empty = {"metrics": {"blob": ""}, "params": {}, "tags": {}, "description": None}
    overhead = len(json.dumps(empty, separators=(",", ":")))
    blob = "x" * (MAX_METADATA_BYTES - overhead)
    reg.save("m", 1, metrics={"blob": blob})
    assert ModelRegistry(reg.backend).versions("m")[-1].metrics["blob"] == blob


@pytest.mark.parametrize("call", ["mark_failed", "mark_stable", "rollback"])
def test_a_reason_over_64k_characters_is_refused_and_nothing_changes(
    reg: ModelRegistry, call: str
) -> None:
    reg.save("m", 1)
    reg.mark_stable("m", "1.0.0")
    reg.save("m", 2)
    reg.deploy("m", "1.1.0")
    before = observable(reg, "m")
    args = ("m",) if call == "rollback" else ("m", "1.1.0")
    with pytest.raises(InvalidInputError, match="reason is 65,537 characters long"):
        getattr(reg, call)(*args, reason="r" * (64 * 1024 + 1))
    assert observable(reg, "m") == before
    getattr(reg, call)(*args, reason="r" * (64 * 1024))  # at the limit: accepted


def test_absurd_depth_and_cycles_are_refused_cleanly(reg: ModelRegistry) -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nested more than"):
        reg.save("m", 1, metrics={"deep": deep})
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidInputError, match="nested more than"):
        reg.save("m", 1, params={"c": cyclic})
    ok: Any = 1
    for _ in range(MAX_DEPTH - 1):  # the top mapping is one level
        ok = [ok]
    mv = reg.save("m", 1, metrics={"ok": ok})
    assert reopen(reg).get("m", "1.0.0") == mv
    assert reg.backend.list("models/m/@log/") == ["models/m/@log/000000000001.json"]


def test_damaged_stored_values_are_integrity_errors() -> None:
    from modelversions.errors import IntegrityError

    with pytest.raises(ValueError, match="unknown"):
        from_json({"$float": "maybe"})
    good = ModelVersion.from_dict(
        {
            "name": "m",
            "version": "1.0.0",
            "status": "candidate",
            "created_at": "2026-01-01T00:00:00Z",
            "sha256": "0" * 64,
            "size": 1,
            "metrics": {"a": {"$float": "inf"}},
        }
    )
    assert good.metrics["a"] == math.inf
    for bad in ({"a": {"$float": 1}}, {"$float": "nan"}, [1, 2]):
        with pytest.raises(IntegrityError):
            ModelVersion.from_dict({**good.to_dict(), "metrics": bad})


# The property: random nested JSON-able values, numpy scalars and NaN included.
_keys = st.text(min_size=0, max_size=6)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.floats(width=32).map(np.float32),
    st.integers(-(2**31), 2**31 - 1).map(np.int64),
    st.booleans().map(np.bool_),
    st.floats().map(np.array),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)
_mappings = st.dictionaries(_keys.filter(lambda k: k != "$float"), _values, max_size=5)


def _expected(value: Any) -> Any:
    """What a JSON round trip of ``value`` gives (numpy scalars as Python numbers)."""
    if isinstance(value, np.generic | np.ndarray):
        return _expected(value.item())
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_expected(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    """Text that tells apart everything JSON keeps (1 vs 1.0 vs True, -0.0, NaN)."""
    return json.dumps(value, sort_keys=True)


def _is_tag(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == {"$float"}


def _has_tag(value: Any) -> bool:
    if _is_tag(value):
        return True
    if isinstance(value, dict):
        return any(_has_tag(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_tag(v) for v in value)
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metrics=_mappings, params=_mappings)
def test_property_round_trip_and_no_aliasing(
    metrics: dict[str, Any], params: dict[str, Any]
) -> None:
    reg = ModelRegistry("memory://")
    if _has_tag(metrics) or _has_tag(params):
        with pytest.raises(InvalidInputError, match="reserved"):
            reg.save("m", 1, metrics=metrics, params=params)
        return
    want_metrics = _canonical(_expected(metrics))
    want_params = _canonical(_expected(params))
    mv = reg.save("m", 1, metrics=metrics, params=params)
    fresh = reopen(reg).get("m", "1.0.0")
    assert mv == fresh
    for got in (mv, fresh):
        assert _canonical(got.metrics) == want_metrics
        assert _canonical(got.params) == want_params
        assert ModelVersion.from_dict(json.loads(json.dumps(got.to_dict()))) == got
        strict_json(json.dumps(got.to_dict()).encode())
    # Mutating the input changes nothing stored.
    metrics.clear()
    params["__new__"] = 1
    assert _canonical(reg.get("m", "1.0.0").metrics) == want_metrics
    assert _canonical(reopen(reg).get("m", "1.0.0").params) == want_params
    # Nothing reachable through the returned record can be changed.
    stack: list[Any] = [mv.metrics, mv.params]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            assert isinstance(node, FrozenDict)
            with pytest.raises(TypeError):
                node["x"] = 1
            stack.extend(node.values())
        elif isinstance(node, list):
            assert isinstance(node, FrozenList)
            with pytest.raises(TypeError):
                node.append(1)
            stack.extend(node)


def test_normalize_and_storage_form_helpers() -> None:
    frozen = normalize({"a": (1, float("-inf")), "b": {"c": np.float64("nan")}}, "metrics")
    stored = to_json(frozen)
    assert stored == {"a": [1, {"$float": "-inf"}], "b": {"c": {"$float": "nan"}}}
    back = from_json(json.loads(json.dumps(stored)))
    assert back == frozen  # one shared NaN object: equal records compare equal
    assert normalize(None, "tags") == {} and normalize({}, "tags") == {}


# ------------------------------------------------------------------ 3. text arguments
Call = Callable[[ModelRegistry], Any]
_BAD_TEXT: list[tuple[str, Call]] = [
    ("save description", lambda r: r.save("m", 3, description=123)),
    ("deploy reason", lambda r: r.deploy("m", "1.1.0", reason=123)),
    ("deploy reason bytes", lambda r: r.deploy("m", "1.1.0", reason=b"x")),
    ("deploy force", lambda r: r.deploy("m", "1.1.0", force="no")),
    ("deploy check", lambda r: r.deploy("m", "1.1.0", check="not callable")),
    ("plan_deploy reason", lambda r: r.plan_deploy("m", "1.1.0", reason=["x"])),
    ("promote reason", lambda r: r.promote("m", reason=123)),
    ("promote check", lambda r: r.promote("m", check=42)),
    ("rollback reason", lambda r: r.rollback("m", reason=123)),
    ("plan_rollback reason", lambda r: r.plan_rollback("m", reason=1.5)),
    ("mark_failed reason", lambda r: r.mark_failed("m", "1.1.0", reason=123)),
    ("mark_stable reason", lambda r: r.mark_stable("m", "1.1.0", reason=123)),
    ("prune reason", lambda r: r.prune("m", keep=0, reason=123)),
    ("prune dry_run", lambda r: r.prune("m", keep=0, dry_run="yes")),
    ("delete reason", lambda r: r.delete("m", "1.1.0", reason=123)),
    ("save bump", lambda r: r.save("m", 3, bump=["minor"])),
]


@pytest.fixture
def deployed(reg: ModelRegistry) -> ModelRegistry:
    reg.save("m", 1)
    reg.save("m", 2)
    reg.deploy("m", "1.0.0", env="staging")
    reg.deploy("m", "1.0.0")
    return reg


@pytest.mark.parametrize(("what", "call"), _BAD_TEXT, ids=[w for w, _ in _BAD_TEXT])
def test_non_str_text_arguments_are_refused_before_anything_is_written(
    deployed: ModelRegistry, what: str, call: Call
) -> None:
    before = observable(deployed, "m")
    with pytest.raises(InvalidInputError):
        call(deployed)
    assert observable(deployed, "m") == before
    for event in reopen(deployed).history("m"):  # history still reads and prints
        str(event)


def test_non_callable_check_never_marks_the_version_failed(deployed: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match="callable"):
        deployed.deploy("m", "1.1.0", check=123)
    assert deployed.get("m", "1.1.0").status.value == "candidate"
    assert str(deployed.current("m").version) == "1.0.0"  # type: ignore[union-attr]


def test_constructor_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="user"):
        ModelRegistry("memory://", user=123)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="callable"):
        ModelRegistry("memory://", checks={"m": "nope"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="mapping"):
        ModelRegistry("memory://", checks=[("m", print)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ModelRegistry(123)  # type: ignore[arg-type]
    for kwargs in ({"max_retries": "3"}, {"max_retries": 0}, {"cache_size": -1.5}):
        with pytest.raises(InvalidInputError):
            ModelRegistry(tmp_path / "x", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()  # refused before the folder was created


_BAD_NAMES: list[tuple[str, Call]] = [
    ("save name", lambda r: r.save(123, 1)),
    ("save version", lambda r: r.save("m", 1, version=1.0)),
    ("get name", lambda r: r.get(None, "1.0.0")),
    ("get version", lambda r: r.get("m", 1)),
    ("versions", lambda r: r.versions(b"m")),
    ("current env", lambda r: r.current("m", env=1)),
    ("envs", lambda r: r.envs(["m"])),
    ("history env", lambda r: r.history("m", env=1)),
    ("history name", lambda r: r.history(1)),
    ("rollback_target env", lambda r: r.rollback_target("m", env=None)),
    ("deploy name", lambda r: r.deploy(1, "1.0.0")),
    ("deploy version", lambda r: r.deploy("m", (1, 0, 0))),
    ("deploy env", lambda r: r.deploy("m", "1.0.0", env=5)),
    ("plan_deploy env", lambda r: r.plan_deploy("m", "1.0.0", env=5)),
    ("promote from_env", lambda r: r.promote("m", from_env=5)),
    ("promote to_env", lambda r: r.promote("m", to_env=None)),
    ("rollback env", lambda r: r.rollback("m", env=5)),
    ("plan_rollback name", lambda r: r.plan_rollback(5)),
    ("mark_failed env", lambda r: r.mark_failed("m", "1.0.0", reason="x", env=5)),
    ("mark_failed version", lambda r: r.mark_failed("m", None, reason="x")),
    ("mark_stable name", lambda r: r.mark_stable(5, "1.0.0")),
    ("prune name", lambda r: r.prune(5, keep=1)),
    ("delete version", lambda r: r.delete("m", 1)),
    ("load name", lambda r: r.load(5)),
    ("load env", lambda r: r.load("m", env=5)),
    ("set_check name", lambda r: r.set_check(5, print)),
]


@pytest.mark.parametrize(("what", "call"), _BAD_NAMES, ids=[w for w, _ in _BAD_NAMES])
def test_non_str_names_envs_versions_raise_from_the_hierarchy(
    deployed: ModelRegistry, what: str, call: Call
) -> None:
    before = observable(deployed, "m")
    with pytest.raises(ModelVersionsError) as info:
        call(deployed)
    assert isinstance(info.value, InvalidNameError | InvalidVersionError)
    assert observable(deployed, "m") == before


# ------------------------------------------------------------------ 4. versions never reused
def test_deleting_the_top_version_does_not_free_its_number(reg: ModelRegistry) -> None:
    reg.save("m", 1)
    reg.save("m", 2)
    reg.delete("m", "1.1.0")
    assert str(reg.save("m", 3).version) == "1.2.0"
    assert str(reopen(reg).save("m", 4).version) == "1.3.0"


def test_explicit_save_of_a_deleted_version_says_when_it_was_deleted(reg: ModelRegistry) -> None:
    reg.save("m", 1)
    reg.save("m", 2)
    reg.delete("m", "1.1.0", reason="bad")
    when = reg.history("m")[-1].time
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    before = observable(reg, "m")
    for again in ("1.1.0", "1.1.0+rebuild", "v1.1"):
        for r in (reg, reopen(reg)):
            with pytest.raises(VersionExistsError, match=rf"1\.1\.0.*deleted at {stamp}"):
                r.save("m", 99, version=again)
    assert observable(reg, "m") == before  # no artifact, no event
    assert str(reg.save("m", 5, version="1.0.5").version) == "1.0.5"  # never used: fine


def test_deleting_every_version_keeps_counting(reg: ModelRegistry) -> None:
    reg.save("m", 1)
    reg.delete("m", "1.0.0")
    assert reg.versions("m") == []
    assert str(reg.save("m", 2, bump="major").version) == "2.0.0"


def test_versions_continue_above_after_prune(reg: ModelRegistry) -> None:
    for i in range(4):
        reg.save("m", i)
    reg.prune("m", keep=1)
    reg.delete("m", "1.3.0")
    assert str(reg.save("m", 9).version) == "1.4.0"


def test_deleted_versions_are_kept_in_snapshots(reg: ModelRegistry) -> None:
    reg.save("m", 1)
    reg.save("m", 2)
    reg.delete("m", "1.1.0")
    for i in range(20):
        reg.mark_stable("m", "1.0.0", reason=f"r{i}")
    [key, *_] = reversed(reg.backend.list("models/m/@snapshots/"))
    snap = snapshot_payload(reg.backend.read(key), key)
    assert set(snap["deleted"]) == {"1.1.0"} and snap["highest"] == "1.1.0"
    fresh = reopen(reg)
    with pytest.raises(VersionExistsError, match="deleted"):
        fresh.save("m", 3, version="1.1.0")
    assert str(fresh.save("m", 3).version) == "1.2.0"
    assert reg.verify().ok


def test_snapshot_from_an_older_library_is_not_trusted_for_deletions(reg: ModelRegistry) -> None:
    reg.save("m", 1)
    reg.save("m", 2)
    reg.delete("m", "1.1.0")
    for i in range(20):
        reg.mark_stable("m", "1.0.0", reason=f"r{i}")
    for key in reg.backend.list("models/m/@snapshots/"):
        payload = snapshot_payload(reg.backend.read(key), key)
        del payload["deleted"], payload["highest"]  # what the previous release wrote
        reg.backend.delete(key)
        reg.backend.create(key, _state.encode(payload))
    fresh = reopen(reg)
    assert str(fresh.save("m", 3).version) == "1.2.0"  # the log was replayed
    with pytest.raises(VersionExistsError, match="deleted"):
        reopen(reg).save("m", 4, version="1.1.0")
    assert reg.verify().ok


# ------------------------------------------------------------------ 5. version limits
def test_version_text_longer_than_the_limit_is_invalid() -> None:
    long_pre = "1.0.0-" + "a" * (MAX_LENGTH - 5)
    assert len(long_pre) == MAX_LENGTH + 1
    with pytest.raises(InvalidVersionError, match="too long"):
        Version(long_pre)
    with pytest.raises(InvalidVersionError, match="too long"):
        Version(" " * 200 + "1.0.0")
    assert len(str(Version("1.0.0-" + "a" * (MAX_LENGTH - 6)))) == MAX_LENGTH
    with pytest.raises(InvalidVersionError, match="canonical"):
        Version("1-" + "a" * (MAX_LENGTH - 2))  # 128 characters, canonical 1.0.0-aaa...
    message = ""
    try:
        Version("9" * 100_000)
    except InvalidVersionError as exc:
        message = str(exc)
    assert 0 < len(message) < 400  # the message quotes a shortened input


def test_numbers_above_max_number_are_invalid() -> None:
    assert Version(f"{MAX_NUMBER}.{MAX_NUMBER}.{MAX_NUMBER}").major == MAX_NUMBER
    for text in (
        f"{MAX_NUMBER + 1}.0.0",
        f"1.{MAX_NUMBER + 1}.0",
        f"1.0.0-rc.{MAX_NUMBER + 1}",
        f"1.0rc{MAX_NUMBER + 1}",
    ):
        with pytest.raises(InvalidVersionError, match="too large"):
            Version(text)
    with pytest.raises(InvalidVersionError):
        _parse_version(f"{MAX_NUMBER + 1}.0.0")  # the stored-text fast path too


@pytest.mark.parametrize(
    ("text", "part"),
    [
        (f"{MAX_NUMBER}.0.0", "major"),
        (f"1.{MAX_NUMBER}.0", "minor"),
        (f"1.0.{MAX_NUMBER}", "patch"),
        (f"{MAX_NUMBER}.1.0-rc.1", "major"),
        (f"1.{MAX_NUMBER}.1-rc.1", "minor"),
    ],
)
def test_bump_past_the_limit_is_an_invalid_version_error(text: str, part: str) -> None:
    with pytest.raises(InvalidVersionError, match="exceed"):
        Version(text).bump(part)
    assert str(Version(f"{MAX_NUMBER}.0.0-rc.1").bump("major")) == f"{MAX_NUMBER}.0.0"


def test_save_bumping_past_the_limit_writes_nothing(reg: ModelRegistry) -> None:
    reg.save("m", 1, version=f"1.{MAX_NUMBER}.0")
    before = observable(reg, "m")
    with pytest.raises(InvalidVersionError, match="exceed"):
        reg.save("m", 2)  # bump minor: no orphaned artifact
    assert observable(reg, "m") == before
    assert str(reg.save("m", 2, bump="major").version) == "2.0.0"
    assert reg.verify().ok and not reg.verify().problems


def test_save_with_too_long_version_writes_nothing(reg: ModelRegistry) -> None:
    with pytest.raises(InvalidVersionError, match="too long"):
        reg.save("m", 1, version="1.0.0+" + "b" * 200)
    assert reg.backend.list("") == []


def test_str_and_int_subclasses_are_stored_as_their_value(reg: ModelRegistry) -> None:
    import enum

    class Lying(str):
        def __str__(self) -> str:
            return "something else"

    class Level(enum.IntEnum):
        HIGH = 3

    mv = reg.save("m", 1, tags={Lying("k"): Lying("v")}, params={"level": Level.HIGH})
    assert mv.tags == {"k": "v"} and type(next(iter(mv.tags))) is str
    assert type(mv.params["level"]) is int and mv.params["level"] == 3
    assert reopen(reg).get("m", "1.0.0") == mv


def test_history_written_before_text_was_checked_still_reads(reg: ModelRegistry) -> None:
    """A log entry with reason=123 (accepted by earlier releases) must not break readers."""
    reg.save("m", 1)
    reg.save("m", 2)
    change = {"version": "1.1.0", "from": "candidate", "to": "failed", "reason": 123}
    payload = {
        "schema": _state.SCHEMA,
        "seq": 3,
        "time": "2026-01-01T00:00:00.000000Z",
        "name": "m",
        "user": 7,
        "host": "box",
        "action": "mark_failed",
        "version": "1.1.0",
        "env": None,
        "changes": [change],
        "reason": 123,
        # chained to entry 2 (the log is chained from entry 1; only the text is old-style)
        "prev": _state.entry_sha256(reg.backend.read(_state.log_key("m", 2))),
    }
    reg.backend.create(_state.log_key("m", 3), _state.encode(payload))
    fresh = reopen(reg)
    event = fresh.history("m")[-1]
    assert event.reason == "123" and event.user == "7"
    assert "123" in str(event)
    assert fresh.get("m", "1.1.0").failure_reason == "123"
