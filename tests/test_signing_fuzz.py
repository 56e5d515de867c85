"""Hostile bytes in place of a history entry or snapshot, with and without keys.

Hypothesis writes random bytes, random JSON, and mutations of valid (signed) documents
in place of one entry or snapshot of model ``a``. Every outcome is either the genuine
model or a :class:`ModelVersionsError` (whose message names the damaged file, for a
reader with the key: without one, a re-sealed forgery is undetectable by design), never
another exception; and model ``b`` in the same registry keeps working.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelversions import ModelRegistry, ModelVersionsError, _state
from modelversions.backends.memory import MemoryBackend

KEY = "f" * 32

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


def _base() -> dict[str, bytes]:
    reg = ModelRegistry("memory://", signing_key=KEY)
    for i in range(16):  # 17 entries of "a": a snapshot at 16
        reg.save("a", {"a": i})
    reg.deploy("a", "1.0.0")
    reg.save("b", {"b": 1})
    reg.deploy("b", "1.0.0")
    backend = reg.backend
    return {k: backend.read(k) for k in backend.list("")}


BASE = _base()
TARGETS = [_state.log_key("a", 1), _state.log_key("a", 17), _state.snapshot_key("a", 16)]


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    # A layout-2 snapshot: the fields are its head's; its blocks follow unchanged.
    head, nl, blocks = data.partition(b"\n")
    doc = json.loads(head)

    def change(field: str, value: Any, resign: bool) -> bytes:
        new = dict(doc)
        new.pop("sha256")
        if field == "-":
            new.pop(value, None)
        else:
            new[field] = value
        if resign:  # a valid seal over the forged content: only the signature can tell
            return _state.encode(new) + nl + blocks
        return json.dumps(new).encode() + nl + blocks

    flip = st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
        lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
    )
    fields = st.sampled_from([*sorted(doc), "signature", "prev", "head_sha256"])
    edits = st.builds(change, fields, json_values, st.booleans())
    drops = st.builds(change, st.just("-"), fields, st.booleans())
    return st.one_of(flip, edits, drops, st.integers(0, len(data)).map(lambda n: data[:n]))


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    key = draw(st.sampled_from(TARGETS))
    kind = draw(st.sampled_from(["bytes", "json", "mutation"]))
    if kind == "bytes":
        return key, draw(st.binary(max_size=200))
    if kind == "json":
        return key, _state.encode({"x": draw(json_values)}) if draw(st.booleans()) else (
            json.dumps(draw(json_values)).encode()
        )
    return key, draw(_mutations(BASE[key]))


def _store(key: str, data: bytes) -> MemoryBackend:
    backend = MemoryBackend()
    backend._data.update(BASE)
    backend._data[key] = data
    return backend


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile(), st.booleans())
def test_hostile_documents(case: tuple[str, bytes], keyed: bool) -> None:
    key, data = case
    backend = _store(key, data)
    reg = ModelRegistry(backend, signing_key=KEY) if keyed else ModelRegistry(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged snapshot is ignored with a warning
        try:
            model = reg.load("a")
        except ModelVersionsError as exc:
            # With a key, the damaged file is named. Without one, a re-sealed forgery is
            # undetectable by design (docs/security.md): any library error will do.
            assert key in str(exc) or not keyed, str(exc)
        else:
            if keyed or key in TARGETS[2:] or data == BASE[key]:
                assert model == {"a": 0}
        assert reg.load("b") == {"b": 1}
        assert ModelRegistry(backend, signing_key=KEY).load("b") == {"b": 1}


def test_the_base_registry_is_sound(tmp_path: Path) -> None:
    backend = _store(TARGETS[0], BASE[TARGETS[0]])
    reg = ModelRegistry(backend, signing_key=KEY, trusted_only=True)
    assert reg.load("a") == {"a": 0}
    assert reg.verify().ok
