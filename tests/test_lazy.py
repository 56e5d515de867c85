"""A state read lazily from a snapshot equals the state replayed eagerly from the log.

Random histories (every action kind: save, deploy, promote, rollback, mark_failed,
mark_stable, prune, delete, attest) are written through the public API; then, cut at
random points, the state at the cut is snapshotted (layout 2 with random block sizes,
or layout 1), read back lazily
(:meth:`ModelState.from_snapshot_bytes`), partly touched, brought to the end of the log
and compared with the eager replay on everything readers use. Hostile indexes end in
IntegrityError, and a registry falls back to the log.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any
from unittest import mock

import pytest
from _tamper import snapshot_payload
from hypothesis import given, settings
from hypothesis import strategies as st

from modelversions import (
    IntegrityError,
    ModelRegistry,
    ModelVersionsError,
    Status,
    _blocks,
    _state,
)
from modelversions._lazy import LazyRecords, VersionOrder
from modelversions._state import ModelState, replay
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

NAME = "m"
ENVS = ("production", "staging")

ACTIONS = st.one_of(
    st.tuples(st.just("save"), st.sampled_from([None, "major", "minor", "patch"])),
    st.tuples(st.just("deploy"), st.integers(0, 30), st.sampled_from(ENVS), st.booleans()),
    st.tuples(st.just("promote")),
    st.tuples(st.just("rollback"), st.sampled_from(ENVS)),
    st.tuples(st.just("mark_failed"), st.integers(0, 30)),
    st.tuples(st.just("mark_stable"), st.integers(0, 30)),
    st.tuples(st.just("prune"), st.integers(0, 4)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("attest")),
)


def _pick(reg: ModelRegistry, i: int) -> str | None:
    try:
        vs = reg.versions(NAME)
    except ModelVersionsError:
        return None
    return str(vs[i % len(vs)].version) if vs else None


def _do(reg: ModelRegistry, action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "save":
        reg.save(NAME, {"w": len(action)}, bump=action[1] or "minor", metrics={"n": 1})
        return
    if kind == "attest":
        reg.attest(NAME)
        return
    if kind == "promote":
        reg.promote(NAME, from_env="staging", to_env="production")
        return
    if kind == "rollback":
        reg.rollback(NAME, env=action[1], reason="r")
        return
    if kind == "prune":
        reg.prune(NAME, keep=action[1])
        return
    v = _pick(reg, action[1])
    if v is None:
        return
    if kind == "deploy":
        reg.deploy(NAME, v, env=action[2], force=action[3])
    elif kind == "mark_failed":
        reg.mark_failed(NAME, v, reason="bad")
    elif kind == "mark_stable":
        reg.mark_stable(NAME, v)
    else:
        reg.delete(NAME, v)


def _history(actions: list[tuple[Any, ...]]) -> list[tuple[dict[str, Any], str]]:
    """Run ``actions``; the stored log as (payload, sha256) pairs."""
    backend = MemoryBackend()
    reg = ModelRegistry(backend, signing_key="k" * 32)
    reg.save(NAME, {"w": 0})
    for action in actions:
        with contextlib.suppress(ModelVersionsError):  # a refusal changes nothing
            _do(reg, action)
    out = []
    for key in backend.list(_state.log_prefix(NAME)):
        data = backend.read(key)
        out.append((_state.decode(data, key), _state.entry_sha256(data)))
    return out


def _eager(entries: list[tuple[dict[str, Any], str]]) -> ModelState:
    state = ModelState(name=NAME)
    for payload, sha in entries:
        state.apply(payload, sha256=sha)
    return state


def _views(state: ModelState) -> dict[str, Any]:
    """Everything readers and writers use of a state, as plain values."""
    return {
        "seq": state.seq,
        "head": state.head_sha256,
        "order": [str(v) for v in state.order],
        "pointers": {e: str(v) for e, v in state.pointers.items()},
        "deleted": {str(v): t for v, t in state.deleted.items()},
        "highest": str(state.highest),
        "targets": {
            e: None if (t := state.rollback_target(v)) is None else t.to_dict()
            for e, v in state.pointers.items()
        },
        "protected": sorted(str(v) for v in state.protected()),
        "artifacts": sorted(state.referenced_artifacts()),
        "len": len(state.records),
        "versions": [mv.to_dict() for mv in state.versions()],
    }


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(ACTIONS, max_size=30),
    cut=st.floats(0, 1),
    touch=st.lists(st.integers(0, 40), max_size=4),
    layout=st.sampled_from([1, 2]),
    block=st.integers(1, 5),
)
def test_lazy_state_equals_eager_replay(
    actions: list[tuple[Any, ...]], cut: float, touch: list[int], layout: int, block: int
) -> None:
    entries = _history(actions)
    at = max(1, round(cut * len(entries)))
    snap = _eager(entries[:at])
    with mock.patch.object(_blocks, "BLOCK", block):  # layout 2: records in blocks
        data = snap.encode_snapshot() if layout == 2 else _state.encode(snap.to_snapshot())
    lazy = ModelState.from_snapshot_bytes(data, NAME, "snapshot")
    assert lazy is not None
    assert isinstance(lazy.records, LazyRecords) and isinstance(lazy.order, VersionOrder)
    # before any record is built: statuses from the index agree with the records
    eager_at_cut = _eager(entries[:at])
    for v in eager_at_cut.order:
        mv = eager_at_cut.records[v]
        assert lazy.records.peek(v) == (mv.status, mv.pruned)
    for i in touch:  # some records built before the rest of the log is applied
        if lazy.order:
            v = lazy.order[i % len(lazy.order)]
            assert lazy.records[v] == eager_at_cut.records[v]
    for payload, sha in entries[at:]:
        lazy.apply(payload, sha256=sha)
    full = _eager(entries)
    # re-encoding reuses the stored JSON of unbuilt records: byte-identical snapshots
    assert lazy.encode_snapshot() == full.encode_snapshot()
    assert _views(lazy) == _views(full)
    # the dataclass equality (records, order, pointers, ...) with the eager read of the
    # same snapshot (a snapshot does not keep last_time, whichever way it is read)
    eager = ModelState.from_snapshot(snapshot_payload(data), NAME)
    for payload, sha in entries[at:]:
        eager.apply(payload, sha256=sha)
    assert lazy == eager
    assert lazy.same_as(full)
    assert replay(NAME, [p for p, _ in entries]).pointers == lazy.pointers


def _snapshot_of(count: int) -> tuple[ModelState, bytes]:
    """A state and its snapshot in layout 1 (what the library wrote before layout 2)."""
    state = _eager(_history([("save", None)] * (count - 1)))
    return state, _state.encode(state.to_snapshot())


def _reseal(payload: dict[str, Any]) -> bytes:
    """``payload`` stored again, with a valid seal (a hostile writer's snapshot)."""
    return _state.encode(payload)


def _payload(data: bytes) -> dict[str, Any]:
    """A snapshot's content as layout 1 stores it (see ``_tamper.snapshot_payload``)."""
    return snapshot_payload(data)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p["index"].update(offsets=p["index"]["offsets"][:-1]),
        lambda p: p["index"].update(flags=p["index"]["flags"][:-1] + "x"),
        lambda p: p["index"].update(order=p["index"]["order"].replace("1.1.0", "1.0.0")),
        lambda p: p["index"].update(order=p["index"]["order"].replace("1.1.0", "01.1.0")),
        lambda p: p["index"].update(offsets=[float(n) for n in p["index"]["offsets"]]),
        lambda p: p["index"].update(offsets=[1] * len(p["index"]["offsets"])),
        lambda p: p["index"].update(offsets=[0, 10**9, 5]),
        lambda p: p["index"].update(offsets=[0, 3, 5]),  # records not where it says
        lambda p: p.update(index="nope"),
        lambda p: p["index"].update(order=7),
    ],
)
def test_a_damaged_index_is_refused_on_read(damage: Any) -> None:
    _, data = _snapshot_of(3)
    payload = _payload(data)
    damage(payload)
    with pytest.raises(IntegrityError):
        state = ModelState.from_snapshot_bytes(_reseal(payload), NAME, "snapshot")
        assert state is not None
        for v in state.order:  # a non-canonical text is found when parsed
            state.records[v]


def test_a_record_under_another_versions_entry_is_refused_when_built() -> None:
    _, data = _snapshot_of(3)
    payload = _payload(data)
    # the index's first entry (1.0.0) now holds a record of 9.9.9 (same length)
    payload["versions"][0]["version"] = "9.9.9"
    state = ModelState.from_snapshot_bytes(_reseal(payload), NAME, "snapshot")
    assert state is not None
    with pytest.raises(IntegrityError, match="not version"):
        list(state.versions())
    with pytest.raises(IntegrityError, match="not version"):
        state.records[state.order[0]]


def test_a_snapshot_without_index_is_read_eagerly() -> None:
    eager, data = _snapshot_of(3)
    payload = _payload(data)
    del payload["index"]
    old = _reseal(payload)
    assert ModelState.from_snapshot_bytes(old, NAME, "snapshot") is None
    assert _views(ModelState.from_snapshot(_state.decode(old, "s"), NAME)) == _views(eager)


def test_a_registry_falls_back_to_the_log_past_a_damaged_index(tmp_path: Any) -> None:
    reg = ModelRegistry(LocalBackend(tmp_path, durable=False))
    for i in range(20):
        reg.save(NAME, {"w": i})
    reg.deploy(NAME, "1.15.0")
    backend = reg.backend
    keys = backend.list(_state.snapshot_prefix(NAME))
    assert keys
    for key in keys:
        payload = snapshot_payload(backend.read(key))
        payload["index"]["flags"] = "x" * len(payload["index"]["flags"])
        backend.delete(key)
        backend.create(key, _reseal(payload))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh = ModelRegistry(tmp_path)
        assert str(fresh.current(NAME).version) == "1.15.0"  # type: ignore[union-attr]
    assert any("damaged snapshot" in str(w.message) for w in caught)
    assert [str(mv.version) for mv in fresh.versions(NAME)] == [
        str(mv.version) for mv in reg.versions(NAME)
    ]


def test_a_fresh_registry_builds_only_what_it_needs(tmp_path: Any) -> None:
    reg = ModelRegistry(LocalBackend(tmp_path, durable=False))
    for i in range(40):
        reg.save(NAME, {"w": i})
    for v in ("1.38.0", "1.39.0"):
        reg.mark_stable(NAME, v)
        reg.deploy(NAME, v)
    fresh = ModelRegistry(tmp_path)
    assert str(fresh.current(NAME).version) == "1.39.0"  # type: ignore[union-attr]
    state = fresh._log.states[NAME]
    assert isinstance(state.records, LazyRecords)
    assert len(state.records._built) < 10  # the snapshot's records mostly untouched
    mv = fresh.rollback(NAME, reason="r")
    assert str(mv.version) == "1.38.0"
    assert fresh.get(NAME, "1.39.0").status is Status.FAILED
    assert len(state.records._built) < 10
    assert [mv.to_dict() for mv in fresh.versions(NAME)] == [
        mv.to_dict() for mv in ModelRegistry(tmp_path).versions(NAME)
    ]


def test_an_index_flag_that_contradicts_its_record_is_refused(tmp_path: Any) -> None:
    reg = ModelRegistry(LocalBackend(tmp_path, durable=False))
    for i in range(20):
        reg.save(NAME, {"w": i})
    backend = reg.backend
    (key,) = backend.list(_state.snapshot_prefix(NAME))
    payload = snapshot_payload(backend.read(key))
    payload["index"]["flags"] = "s" + payload["index"]["flags"][1:]  # 1.0.0 "stable"
    backend.delete(key)
    backend.create(key, _reseal(payload))
    state = ModelState.from_snapshot_bytes(backend.read(key), NAME, key)
    assert state is not None
    with pytest.raises(IntegrityError, match=r"indexes 1\.0\.0 as 's'"):
        list(state.versions())
    report = ModelRegistry(tmp_path).verify()
    assert any(p.kind == "snapshot-damaged" for p in report.problems)
