"""``versions()`` of a lazily read registry: a :class:`VersionList` equal to the eager one.

Random histories of every action kind (see ``test_lazy``) are snapshotted at a random
cut and read back lazily; the :class:`VersionList` taken then, and the one taken after
the rest of the log is applied, must equal the eagerly replayed states' lists and act
like them in every way a list of records does. Hostile snapshots end in
IntegrityError, never a wrong record.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import pickle
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_lazy import ACTIONS, NAME, _do, _eager, _history, _payload, _reseal, _snapshot_of

from modelversions import (
    IntegrityError,
    ModelRegistry,
    ModelVersion,
    ModelVersionsError,
    _snapshots,
)
from modelversions._lazy import LazyRecords
from modelversions._state import ModelState, replay
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.records import VersionList

# Histories with more saves than ``test_lazy``'s: lists of many versions.
SAVES = st.tuples(st.just("save"), st.sampled_from([None, "minor", "patch"]))
HISTORIES = st.lists(
    st.integers(0, 2).flatmap(lambda k: SAVES if k else ACTIONS), min_size=8, max_size=40
)
SLICES = st.tuples(
    st.none() | st.integers(-45, 45),
    st.none() | st.integers(-45, 45),
    st.none() | st.sampled_from([-3, -2, -1, 1, 2, 3]),
)


def _lazy_at(entries: list[tuple[dict[str, Any], str]], at: int) -> ModelState:
    state = ModelState.from_snapshot_bytes(_eager(entries[:at]).encode_snapshot(), NAME, "s")
    assert state is not None and isinstance(state.records, LazyRecords)
    return state


def _hash(mv: ModelVersion) -> int | str:
    """A record's hash, or why it has none (metrics are mutable-typed mappings)."""
    try:
        return hash(mv)
    except TypeError as exc:
        return str(exc)


def _acts_like(vs: VersionList, expected: list[ModelVersion], data: st.DataObject) -> None:
    """``vs`` behaves as the list ``expected`` does, for everything a reader does."""
    assert len(vs) == len(expected) and bool(vs) == bool(expected)
    n = len(expected)
    for i in data.draw(st.lists(st.integers(-n - 2, n + 1), max_size=6), label="indexes"):
        if -n <= i < n:
            assert vs[i] == expected[i] and isinstance(vs[i], ModelVersion)
        else:
            with pytest.raises(IndexError):
                vs[i]
    for start, stop, step in data.draw(st.lists(SLICES, max_size=3), label="slices"):
        part = vs[start:stop:step]
        assert isinstance(part, VersionList)
        assert part == expected[start:stop:step] and list(part) == expected[start:stop:step]
        assert list(reversed(part)) == expected[start:stop:step][::-1]
        for mv in expected:
            assert (mv in part) == (mv in expected[start:stop:step])
    assert list(vs) == expected and list(reversed(vs)) == expected[::-1]
    assert vs == expected and expected == vs and not (vs != expected)  # noqa: SIM202
    assert vs == vs[:] and vs + [] == expected and [] + vs == expected  # noqa: RUF005
    assert vs != [*expected, None] and vs != tuple(expected)  # as a list: not a tuple
    for i, mv in enumerate(expected):
        assert mv in vs and vs.index(mv) == i and vs.count(mv) == 1
        other = dataclasses.replace(mv, description="not this one")
        if other != mv:
            assert other not in vs and vs.count(other) == 0
            with pytest.raises(ValueError):
                vs.index(other)
    assert None not in vs and "1.0.0" not in vs
    assert [_hash(mv) for mv in vs] == [_hash(mv) for mv in expected]
    for copied in (pickle.loads(pickle.dumps(vs)), copy.copy(vs), copy.deepcopy(vs)):
        assert isinstance(copied, VersionList) and copied == expected
    assert repr(vs).startswith("VersionList([")
    with pytest.raises(TypeError):
        hash(vs)
    if expected:
        with pytest.raises(dataclasses.FrozenInstanceError):
            vs[0].description = "changed"  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(actions=HISTORIES, cut=st.floats(0, 1), data=st.data())
def test_versions_of_a_lazy_state_equal_the_eager_replay(
    actions: list[tuple[Any, ...]], cut: float, data: st.DataObject
) -> None:
    entries = _history(actions)
    at = max(1, round(cut * len(entries)))
    lazy = _lazy_at(entries, at)
    before = lazy.versions()  # taken at the cut, read after the log moved on
    touch = data.draw(st.lists(st.integers(0, 40), max_size=3), label="touch")
    for i in touch:  # some records built (replaced, for those the log changes)
        lazy.records[lazy.order[i % len(lazy.order)]] if lazy.order else None
    for payload, sha in entries[at:]:
        lazy.apply(payload, sha256=sha)
    after = lazy.versions()
    event(f"versions: {min(len(after) // 5 * 5, 20)}+")
    assert isinstance(after, VersionList)
    _acts_like(after, list(_eager(entries).versions()), data)
    _acts_like(before, list(_eager(entries[:at]).versions()), data)
    assert after == replay(NAME, [p for p, _ in entries]).versions()


@settings(max_examples=25, deadline=None)
@given(actions=HISTORIES, every=st.integers(2, 16), data=st.data())
def test_versions_of_a_fresh_registry_equal_the_replay(
    actions: list[tuple[Any, ...]], every: int, data: st.DataObject
) -> None:
    backend = MemoryBackend()
    reg = ModelRegistry(backend)
    reg.save(NAME, {"w": 0})
    with mock.patch.object(_snapshots, "_SNAPSHOT_EVERY", every):  # snapshots, then a tail
        for action in actions:
            with contextlib.suppress(ModelVersionsError):
                _do(reg, action)
    fresh = ModelRegistry(backend)
    vs = fresh.versions(NAME)
    lazy = isinstance(fresh._log.states[NAME].records, LazyRecords)
    event(f"read from a snapshot: {lazy}")
    assert isinstance(vs, VersionList)
    _acts_like(vs, list(reg._log.states[NAME].versions()), data)
    assert vs == ModelRegistry(backend, signing_key=None).versions(NAME)


def _saved(path: Any, count: int) -> tuple[ModelRegistry, ModelRegistry]:
    """A registry in ``path`` that saved ``count`` versions, and a fresh one there."""
    reg = ModelRegistry(LocalBackend(path, durable=False))
    for i in range(count):
        reg.save(NAME, {"w": i})
    return reg, ModelRegistry(path)


def test_len_and_last_of_a_fresh_registry_build_no_other_record(tmp_path: Any) -> None:
    reg, fresh = _saved(tmp_path, 40)  # a snapshot at 32, then 8 entries
    vs = fresh.versions(NAME)
    state = fresh._log.states[NAME]
    assert isinstance(state.records, LazyRecords)
    assert len(vs) == 40 and str(vs[-1].version) == "1.39.0"
    assert str(vs[-2].version) == "1.38.0" and [str(m.version) for m in vs[:2]] == [
        "1.0.0",
        "1.1.0",
    ]
    assert len(state.records._parsed) <= 5  # what was read (and the snapshot's tail)
    assert list(vs) == reg.versions(NAME) and len(state.records._parsed) >= 32


def test_a_version_list_does_not_change_with_the_model(tmp_path: Any) -> None:
    _reg, fresh = _saved(tmp_path, 20)
    vs = fresh.versions(NAME)
    expected = list(ModelRegistry(tmp_path).versions(NAME))
    fresh.mark_failed(NAME, "1.3.0", reason="bad")
    fresh.delete(NAME, "1.4.0")
    fresh.save(NAME, {"w": "new"})
    assert vs == expected and vs[3].status.value == "candidate"
    now = fresh.versions(NAME)
    assert len(now) == 20 and now[3].status.value == "failed" and now != vs


def test_a_reordered_index_is_refused_where_read() -> None:
    """An index (and its records) rearranged out of version order, consistently."""
    _, data = _snapshot_of(4)
    payload = _payload(data)
    payload["versions"][1], payload["versions"][2] = (
        payload["versions"][2],
        payload["versions"][1],
    )
    texts = payload["index"]["order"].split(" ")
    texts[1], texts[2] = texts[2], texts[1]
    payload["index"]["order"] = " ".join(texts)
    state = ModelState.from_snapshot_bytes(_reseal(payload), NAME, "snapshot")
    assert state is not None
    vs = state.versions()
    assert vs[0].version == state.order[0]  # a neighbour in order: fine alone
    with pytest.raises(IntegrityError, match="not in version order"):
        list(vs)
    with pytest.raises(IntegrityError, match="not in version order"):
        vs[2]


@pytest.mark.parametrize(
    "damage",
    [
        # the record at the index's second entry is another version's
        lambda p: p["versions"][1].update(version="9.9.9"),
        # a status the index does not say
        lambda p: p["versions"][2].update(status="stable"),
        # a record nobody indexes, between two that are
        lambda p: p["versions"].insert(2, dict(p["versions"][2], version="1.1.5")),
    ],
)
def test_records_that_contradict_the_index_are_refused(damage: Any) -> None:
    _, data = _snapshot_of(4)
    payload = _payload(data)
    damage(payload)
    state = ModelState.from_snapshot_bytes(_reseal(payload), NAME, "snapshot")
    assert state is not None
    vs = state.versions()
    assert len(vs) == 4 and vs[0].version == state.order[0]
    with pytest.raises(IntegrityError):
        list(vs)


def test_a_plain_version_list_is_a_sequence_of_records() -> None:
    reg = ModelRegistry("memory://")
    for i in range(9):
        reg.save(NAME, [i])
    records = list(reg.versions(NAME))
    vs = VersionList(records)
    assert vs == records and len(vs) == 9 and vs[-1] is records[-1]
    assert "...(4 more)..." in repr(vs) and repr(VersionList()) == "VersionList([])"
    assert not VersionList() and VersionList() == []
    with pytest.raises(TypeError, match="integers or slices"):
        vs["1.0.0"]  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        vs + (1,)  # type: ignore[operator]  # noqa: RUF005
