"""Snapshots that leave unchanged blocks in an older snapshot, their base.

A model is snapshotted every 16 entries; past 8 blocks of records, a new snapshot
leaves the blocks unchanged since an older one where that one stores them
(``records.base`` in its head, see ``modelversions._snapwrite``). Random histories
(every action kind, saves out of order too), written by one long-lived registry and by
fresh ones in turn, read back as the log replays them; a base that is gone or damaged
is never trusted; writers keep the base of every snapshot they keep.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lazy import ACTIONS, _do, _pick

from modelversions import (
    ModelRegistry,
    ModelVersionsError,
    StorageError,
    _blocks,
    _snapshots,
    _state,
)
from modelversions.backends.memory import MemoryBackend

NAME = "m"
# Scaled down: 2 records per block (8 blocks, the least that is shared, are 16 records),
# a snapshot every 4 entries (so one adds about as many blocks, relative to the whole,
# as one every 16 entries with blocks of 64 records does).
BLOCK, EVERY = 2, 4


@pytest.fixture(autouse=True)
def _small_blocks() -> Iterator[None]:
    with (
        mock.patch.object(_blocks, "BLOCK", BLOCK),
        mock.patch.object(_snapshots, "_SNAPSHOT_EVERY", EVERY),
    ):
        yield


def _heads(backend: MemoryBackend) -> dict[int, dict[str, Any]]:
    """seq -> head of every snapshot of ``NAME``."""
    prefix = _state.snapshot_prefix(NAME)
    out = {}
    for key in backend.list(prefix):
        seq = _state.key_seq(key, prefix)
        if seq:
            data = backend.read(key)
            out[seq] = json.loads(data[: data.index(b"\n")])
    return out


def _base(head: dict[str, Any]) -> int | None:
    return _blocks.base_seq(head)


def _without_snapshots(backend: MemoryBackend) -> MemoryBackend:
    """A copy of ``backend`` without snapshots: a registry on it replays the log."""
    copy = MemoryBackend()
    for key in backend.list(""):
        if "@snapshots/" not in key:
            copy.create(key, backend.read(key))
    return copy


def _state_at(backend: MemoryBackend, upto: int) -> _state.ModelState:
    """The state after entries 1..``upto``, replayed from the log."""
    state = _state.ModelState(name=NAME)
    for seq in range(1, upto + 1):
        data = backend.read(_state.log_key(NAME, seq))
        state.apply(_state.decode(data, "entry"), sha256=_state.entry_sha256(data))
    return state


def _views(reg: ModelRegistry) -> dict[str, Any]:
    return {
        "versions": [mv.to_dict() for mv in reg.versions(NAME)],
        "envs": {e: str(mv.version) for e, mv in reg.envs(NAME).items()},
        "history": len(reg.history(NAME)),
    }


def _grow(backend: MemoryBackend, count: int) -> ModelRegistry:
    reg = ModelRegistry(backend)
    for i in range(count):
        reg.save(NAME, {"w": i}, metrics={"i": i})
    return reg


SAVE_BELOW = st.tuples(st.just("save_below"), st.integers(0, 60))


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.tuples(st.one_of(ACTIONS, SAVE_BELOW), st.booleans()), max_size=60),
    start=st.integers(17, 40),
)
def test_snapshots_with_a_base_read_as_the_log_replays(
    steps: list[tuple[tuple[Any, ...], bool]], start: int
) -> None:
    backend = MemoryBackend()
    reg = _grow(backend, start)
    for action, fresh in steps:
        if fresh:  # a new process: reads the newest snapshot lazily, then writes
            reg = ModelRegistry(backend)
        with contextlib.suppress(ModelVersionsError):  # a refusal changes nothing
            if action[0] == "save_below":  # out of order: moves every block after it
                v = _pick(reg, action[1])
                if v is not None:
                    reg.save(NAME, {"w": v}, version=f"{v}-rc.{action[1]}")
            else:
                _do(reg, action)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no snapshot read is damaged or refused
        assert _views(ModelRegistry(backend)) == _views(ModelRegistry(_without_snapshots(backend)))
        assert ModelRegistry(backend).verify().ok
    heads = _heads(backend)
    for seq, head in heads.items():  # every kept snapshot's base is kept
        base = _base(head)
        assert base is None or (base in heads and _base(heads[base]) is None and base < seq)


def test_a_long_lived_writer_leaves_unchanged_blocks_in_the_base() -> None:
    backend = MemoryBackend()
    reg = _grow(backend, 60)
    heads = _heads(backend)
    newest = heads[max(heads)]
    base = _base(newest)
    assert base is not None and _base(heads[base]) is None
    at = newest["records"]["base"]["at"]
    assert sum(a is not None for a in at) * 4 >= len(at) * 3
    size = len(backend.read(_state.snapshot_key(NAME, max(heads))))
    assert size < len(backend.read(_state.snapshot_key(NAME, base))) / 2
    # a record changed in an old block: that block is written again, the new status read
    reg.mark_stable(NAME, "1.1.0")
    for i in range(60, 63):
        reg.save(NAME, {"w": i})
    heads = _heads(backend)
    assert max(heads) == 64
    at = heads[64]["records"]["base"]["at"]
    assert at[0] is None and at[1] is not None  # block 0 holds 1.1.0
    assert ModelRegistry(backend).get(NAME, "1.1.0").status.value == "stable"
    assert _views(ModelRegistry(backend)) == _views(ModelRegistry(_without_snapshots(backend)))


def test_fresh_writers_leave_blocks_in_the_snapshot_they_read() -> None:
    backend = MemoryBackend()
    _grow(backend, 30)
    for i in range(30, 60):
        ModelRegistry(backend).save(NAME, {"w": i})
    heads = _heads(backend)
    assert any(_base(h) is not None for h in heads.values())
    assert _views(ModelRegistry(backend)) == _views(ModelRegistry(_without_snapshots(backend)))


def test_a_snapshot_whose_base_is_gone_is_read_from_an_older_snapshot() -> None:
    backend = MemoryBackend()
    _grow(backend, 60)
    heads = _heads(backend)
    base = _base(heads[max(heads)])
    assert base is not None
    backend.delete(_state.snapshot_key(NAME, base))
    older = _state.snapshot_key(NAME, base - EVERY)  # one that does not use that base
    backend.create(older, _state_at(backend, base - EVERY).encode_snapshot())
    reads: list[str] = []
    read = backend.read

    def spy(key: str) -> bytes:
        reads.append(key)
        return read(key)

    with warnings.catch_warnings(), mock.patch.object(backend, "read", spy):
        warnings.simplefilter("error")  # a base removed is no damage: no warning
        listed = [mv.to_dict() for mv in ModelRegistry(backend).versions(NAME)]
    # the records came from the older snapshot and the entries after it, not entry 1 on
    assert _state.log_key(NAME, base - EVERY + 1) in reads
    assert _state.log_key(NAME, 1) not in reads
    assert listed == _views(ModelRegistry(_without_snapshots(backend)))["versions"]
    assert _views(ModelRegistry(backend)) == _views(ModelRegistry(_without_snapshots(backend)))
    report = ModelRegistry(backend).verify()
    assert any(p.kind == "snapshot-damaged" and "missing" in p.detail for p in report.problems)
    ModelRegistry(backend).verify(repair=True)
    assert not [h for h in _heads(backend).values() if _base(h) == base]


def test_a_damaged_block_in_the_base_is_refused_and_read_from_the_log() -> None:
    backend = MemoryBackend()
    _grow(backend, 60)
    heads = _heads(backend)
    newest = max(heads)
    base = _base(heads[newest])
    assert base is not None
    key = _state.snapshot_key(NAME, base)
    data = bytearray(backend.read(key))
    offset = heads[newest]["records"]["base"]["at"][0]
    data[offset : offset + 9] = b'{"x":1}\n{'[:9]  # block 0's first bytes, resized alike
    backend.delete(key)
    backend.create(key, bytes(data))
    reg = ModelRegistry(backend)
    with pytest.warns(UserWarning, match="damaged snapshot"):
        first = reg.get(NAME, "1.0.0")
    assert first.metrics == {"i": 0}
    assert _views(reg) == _views(ModelRegistry(_without_snapshots(backend)))
    kinds = {p.kind for p in ModelRegistry(backend).verify().problems}
    assert kinds == {"snapshot-damaged"}


def test_writers_keep_the_base_of_the_snapshots_they_keep() -> None:
    backend = MemoryBackend()
    reg = _grow(backend, 60)
    for i in range(200):
        reg.save(NAME, {"w": i})
        if i % 37 == 0:
            reg = ModelRegistry(backend)
    heads = _heads(backend)
    kept = sorted(heads)[-2:]
    bases = {_base(heads[s]) for s in kept} - {None}
    assert bases and bases <= set(heads)
    assert len(heads) <= 2 + len(bases)  # nothing else is kept


@pytest.mark.parametrize(
    "damage",
    [
        lambda b, seq: b.update(seq=seq),  # itself
        lambda b, seq: b.update(seq=seq + EVERY),  # a newer one
        lambda b, seq: b.update(seq=0),
        lambda b, seq: b.update(seq="56"),
        lambda b, seq: b.update(at=b["at"][:-1]),
        lambda b, seq: b.update(at=[-1 if a is not None else None for a in b["at"]]),
        lambda b, seq: b.update(at=[str(a) for a in b["at"]]),
        lambda b, seq: b.clear(),
    ],
)
def test_a_forged_base_description_is_refused_and_the_log_used(damage: Any) -> None:
    backend = MemoryBackend()
    _grow(backend, 60)
    seq = max(_heads(backend))
    key = _state.snapshot_key(NAME, seq)
    data = backend.read(key)
    nl = data.index(b"\n")
    head = _state.decode(data[:nl], key)
    damage(head["records"]["base"], seq)
    backend.delete(key)
    backend.create(key, _state.encode(head) + data[nl:])  # resealed: only its shape is wrong
    with pytest.warns(UserWarning, match="ignoring damaged snapshot"):
        read = _views(ModelRegistry(backend))
    assert read == _views(ModelRegistry(_without_snapshots(backend)))


def test_a_writer_that_read_every_record_still_leaves_them_in_the_base() -> None:
    backend = MemoryBackend()
    _grow(backend, 60)
    reg = ModelRegistry(backend)
    assert [mv.metrics for mv in reg.versions(NAME)]  # every record built, none changed
    for i in range(EVERY):
        reg.save(NAME, {"w": i})
    heads = _heads(backend)
    newest = heads[max(heads)]
    assert _base(newest) is not None
    at = newest["records"]["base"]["at"]
    assert sum(a is not None for a in at) * 4 >= len(at) * 3
    assert _views(ModelRegistry(backend)) == _views(ModelRegistry(_without_snapshots(backend)))


def test_a_base_replaced_by_a_symlink_is_refused_and_nothing_outside_is_touched(
    tmp_path: Any,
) -> None:
    root = tmp_path / "reg"
    reg = ModelRegistry(root)
    for i in range(60):
        reg.save(NAME, {"w": i})
    heads = {}
    for path in (root / "models" / NAME / "@snapshots").iterdir():
        heads[int(path.stem)] = json.loads(path.read_bytes().split(b"\n", 1)[0])
    base = _base(heads[max(heads)])
    assert base is not None
    planted = root / "models" / NAME / "@snapshots" / f"{base:012d}.json"
    outside = tmp_path / "outside.json"
    planted.rename(outside)
    before = outside.read_bytes()
    planted.symlink_to(outside)
    with pytest.raises(StorageError, match="symbolic link"):
        ModelRegistry(root).get(NAME, "1.0.0")  # a record in a base block
    assert outside.read_bytes() == before
    report = ModelRegistry(root).verify()
    assert not report.ok and any(p.kind == "symlink" for p in report.problems)
