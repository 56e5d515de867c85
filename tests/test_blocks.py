"""Snapshot layout 2 (``modelversions._blocks``): a sealed head, records read by block.

A fresh registry reads only the head; a record's block is read when first needed and
checked against the digest its head records. A block read after the open may be
gone (a newer writer removed the snapshot), altered or cut short: the records are then
the log's, never wrong ones. A writer copies only checked bytes; ``verify()`` checks
every block; a layout-1 snapshot (the library's previous layout) is still read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _tamper import as_layout1, overwrite

from modelversions import IntegrityError, ModelRegistry, _blocks, _lazy, _state, _texts
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.signing import Keyring

NAME = "m"
KEY = "k" * 32


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Blocks of 4 records and a first read of 300 bytes: many blocks, a long head."""
    monkeypatch.setattr(_blocks, "BLOCK", 4)
    monkeypatch.setattr(_blocks, "FIRST_READ", 300)
    yield


def _registry(backend: Backend, count: int = 30, **keys: Any) -> ModelRegistry:
    """``count`` versions (a snapshot at entry 16 and 32 when enough), the newest two
    stable, the newest deployed."""
    reg = ModelRegistry(backend, **keys)
    for i in range(count):
        reg.save(NAME, {"w": i}, metrics={"i": i})
    for mv in list(reg.versions(NAME))[-2:]:
        reg.mark_stable(NAME, mv.version)
        reg.deploy(NAME, mv.version)
    return reg


def _snapshot(backend: Backend) -> str:
    return backend.list(_state.snapshot_prefix(NAME))[-1]


def _dicts(reg: ModelRegistry) -> list[dict[str, Any]]:
    return [mv.to_dict() for mv in reg.versions(NAME)]


def _truth(backend: Backend) -> list[dict[str, Any]]:
    """The versions replayed from the log alone (every snapshot ignored)."""
    state = _state.replay(
        NAME,
        (
            _state.decode(backend.read(k), k)
            for k in backend.list(_state.log_prefix(NAME))
            if _state.key_seq(k, _state.log_prefix(NAME))
        ),
    )
    return [mv.to_dict() for mv in state.versions()]


def _records(reg: ModelRegistry) -> _lazy.LazyRecords:
    records = reg._log.states[NAME].records
    assert isinstance(records, _lazy.LazyRecords)
    return records


def test_a_fresh_registry_reads_the_head_and_one_block(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reg", durable=False)
    _registry(backend)
    key = _snapshot(backend)
    data = backend.read(key)
    head = _state.decode(data[: data.index(b"\n")], key)
    assert head["records"]["block"] == 4 and len(head["records"]["digests"]) == 8
    ranges: list[tuple[int, int]] = []
    real = backend.read_range

    def spy(k: str, start: int, end: int) -> bytes:
        if k == key:
            ranges.append((start, end))
        return real(k, start, end)

    backend.read_range = spy  # type: ignore[method-assign]
    fresh = ModelRegistry(backend)
    assert fresh.current(NAME) is not None
    read = sum(min(end, len(data)) - start for start, end in ranges)
    assert read < len(data) // 2, (ranges, len(data))  # the head and a block or two
    assert len(_records(fresh)._source._cache) <= 2  # type: ignore[attr-defined]
    assert _dicts(fresh) == _truth(backend)


@pytest.mark.parametrize("damage", ["deleted", "altered", "truncated", "replaced"])
def test_a_block_lost_after_the_open_is_read_from_the_log(tmp_path: Path, damage: str) -> None:
    backend = LocalBackend(tmp_path / "reg", durable=False)
    _registry(backend)
    key = _snapshot(backend)
    fresh = ModelRegistry(backend)
    assert fresh.current(NAME) is not None  # opened: the head read, one block or two
    data = backend.read(key)
    head_end = data.index(b"\n") + 1
    if damage == "deleted":  # as a newer writer does to all but its newest two
        for k in backend.list(_state.snapshot_prefix(NAME)):
            backend.delete(k)
    elif damage == "altered":  # one digit of the first record's hash
        at = data.index(b'"sha256":"', head_end) + 10
        digit = b"0" if data[at : at + 1] != b"0" else b"1"
        overwrite(backend, key, data[:at] + digit + data[at + 1 :])
    elif damage == "truncated":
        overwrite(backend, key, data[: head_end + 10])
    else:  # another snapshot's bytes under its key
        overwrite(backend, key, data[:head_end] + b"x" * (len(data) - head_end))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _dicts(fresh)  # every record
        assert fresh.get(NAME, "1.0.0").to_dict() == got[0]
    assert got == _truth(backend)
    messages = [str(w.message) for w in caught]
    if damage == "deleted":
        assert messages == []  # a snapshot removed by a writer is no damage
    else:
        assert any("damaged snapshot" in m and "history log" in m for m in messages), messages


def test_a_reader_outlives_the_snapshots_it_opened(tmp_path: Path) -> None:
    """A serving process opens; writers go on, write snapshots, remove the old ones;
    the reader then reads every record of its (refreshed) state."""
    backend = LocalBackend(tmp_path / "reg", durable=False)
    _registry(backend, 20)
    reader = ModelRegistry(backend)
    assert reader.current(NAME) is not None
    writer = ModelRegistry(backend)
    for i in range(40):
        writer.save(NAME, {"w": i})
    writer.mark_failed(NAME, "1.2.0", reason="r")
    writer.delete(NAME, "1.3.0")
    assert backend.list(_state.snapshot_prefix(NAME))[0] > _state.snapshot_key(NAME, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _dicts(reader) == _truth(backend) == _dicts(ModelRegistry(backend))


def test_a_writer_copies_only_checked_bytes(tmp_path: Path) -> None:
    """A block altered after the open is not sealed anew into the next snapshot."""
    backend = LocalBackend(tmp_path / "reg", durable=False)
    reg = _registry(backend, 12)  # 16 entries: a snapshot at 16
    key = _snapshot(backend)
    writer = ModelRegistry(backend)
    assert writer.current(NAME) is not None
    data = backend.read(key)
    head_end = data.index(b"\n") + 1
    at = data.index(b'"metrics":{"i":', head_end) + 15
    overwrite(backend, key, data[:at] + b"7" + data[at + 1 :])  # 1.0.0's metric 0 -> 7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(16):  # up to entry 32: the writer snapshots its lazy state
            writer.save(NAME, {"w": i})
    assert any("damaged snapshot" in str(w.message) for w in caught)
    assert _snapshot(backend) == _state.snapshot_key(NAME, 32)
    problems = ModelRegistry(backend).verify().problems  # the new one is sound
    assert [(p.kind, key in p.detail) for p in problems] == [("snapshot-damaged", True)]
    fresh = ModelRegistry(backend)
    assert fresh.get(NAME, "1.0.0").metrics == {"i": 0}
    assert _dicts(fresh) == _truth(backend)
    assert _dicts(reg)[:12] == _dicts(fresh)[:12]


@pytest.mark.parametrize("damage", ["altered", "extended"])
def test_verify_checks_every_block(tmp_path: Path, damage: str) -> None:
    backend = LocalBackend(tmp_path / "reg", durable=False)
    _registry(backend)
    key = _snapshot(backend)
    data = backend.read(key)
    if damage == "altered":  # in the last block: no read of a record would need it
        at = data.rindex(b'"sha256":"') + 10
        digit = b"0" if data[at : at + 1] != b"0" else b"1"
        overwrite(backend, key, data[:at] + digit + data[at + 1 :])
    else:
        overwrite(backend, key, data + b"[]\n")
    report = ModelRegistry(backend).verify()
    assert [p.kind for p in report.problems] == ["snapshot-damaged"], str(report)
    assert key in str(report)
    repaired = ModelRegistry(backend).verify(repair=True, min_age=0)
    assert repaired.removed == (key,)
    assert ModelRegistry(backend).verify().ok


def test_a_layout_1_snapshot_is_still_read_lazily(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reg", durable=False)
    reg = _registry(backend)
    key = _snapshot(backend)
    old = as_layout1(backend, key)  # as the previous version of the library wrote it
    assert b"\n" not in old and b'"versions":[' in old
    at = _state.ModelState(name=NAME)
    for seq in range(1, _state.key_seq(key, _state.snapshot_prefix(NAME)) + 1):  # type: ignore[operator]
        entry = backend.read(_state.log_key(NAME, seq))
        at.apply(_state.decode(entry, "e"), sha256=_state.entry_sha256(entry))
    assert old == _state.encode(at.to_snapshot())  # the layout-1 encoder, unchanged
    assert _dicts(reg) == _truth(backend)
    fresh = ModelRegistry(backend)
    assert str(fresh.current(NAME).version) == "1.29.0"  # type: ignore[union-attr]
    assert isinstance(_records(fresh)._source, _lazy.Inline)  # type: ignore[attr-defined]
    assert _dicts(fresh) == _truth(backend)
    assert fresh.verify().ok


def test_a_signed_registry_reads_layout_2_lazily_and_checks_blocks() -> None:
    backend = MemoryBackend()
    _registry(backend, signing_key=KEY)
    key = _snapshot(backend)
    data = backend.read(key)
    head_end = data.index(b"\n") + 1
    assert b'"signature":' in data[:head_end] and b'"signature":' not in data[head_end:]
    reader = ModelRegistry(backend, verify_keys=[KEY])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.current(NAME) is not None
    assert isinstance(_records(reader)._source, _blocks.Blocks)  # type: ignore[attr-defined]
    # a block altered: its digest tells, the signed log is served
    at = data.index(b'"sha256":"', head_end) + 10
    digit = b"0" if data[at : at + 1] != b"0" else b"1"
    overwrite(backend, key, data[:at] + digit + data[at + 1 :])
    with pytest.warns(UserWarning, match="damaged snapshot"):
        assert _dicts(reader) == _truth(backend)
    problems = ModelRegistry(backend, verify_keys=[KEY]).verify().problems
    assert [p.kind for p in problems] == ["snapshot-damaged"]
    # a head altered and resealed: only the signature tells
    forged = _state.unseal(data[: head_end - 1]).replace(b'"1.28.0"', b'"1.27.0"')
    overwrite(backend, key, _state.seal(forged) + data[head_end - 1 :])
    with pytest.warns(UserWarning, match="signature"):
        assert str(ModelRegistry(backend, verify_keys=[KEY]).current(NAME).version) == "1.29.0"  # type: ignore[union-attr]
    # signed by another key
    body = _state.unseal(data[: head_end - 1])
    body = b"{" + body[body.index(b"},") + 2 :]
    other = Keyring("j" * 32, ()).sign(b"snapshot", body)
    overwrite(backend, key, other + b"\n" + data[head_end:])
    with pytest.warns(UserWarning, match="not one of this registry's keys"):
        assert ModelRegistry(backend, verify_keys=[KEY]).current(NAME) is not None


def test_a_head_longer_than_the_first_read_is_read_in_more_ranges() -> None:
    state = _state.replay(NAME, [])
    texts = [f"1.{i}.0" for i in range(9)]
    chunks = [" ".join(texts)]  # one block
    data = _blocks.encode({"x": "y" * 2000, "index": {}}, chunks, [b"{}"] * 9, _state.seal)
    reads: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    head, rest = _blocks.read_head(fetch)
    assert head == data[: data.index(b"\n")] and rest is not None
    assert head + b"\n" + rest == data and len(reads) > 1
    assert [start for start, _ in reads[1:]] == [end for _, end in reads[:-1]]
    assert state.seq == 0


def test_a_version_listed_twice_is_refused_where_read() -> None:
    """No set is built at the open: a duplicate in a (resealed) head is refused when
    the versions are listed, and before a writer copies the stored records."""
    backend = MemoryBackend()
    _registry(backend, 14)  # a snapshot at entry 16
    key = _snapshot(backend)
    data = backend.read(key)
    head_end = data.index(b"\n")
    head = _state.decode(data[:head_end], key)
    order = _texts.unpack(head["index"]["order"][0], 4)  # the first block's versions
    assert order[:2] == ["1.0.0", "1.1.0"]
    head["index"]["order"][0] = " ".join(["1.0.0", "1.0.0", *order[2:]])
    data = _state.encode(head) + data[head_end:]
    state = _state.ModelState.from_snapshot_bytes(data, NAME, key)
    assert state is not None
    with pytest.raises(IntegrityError):
        list(state.versions())  # 1.1.0's record is not version 1.0.0, or 1.0.0 >= 1.0.0
    state = _state.ModelState.from_snapshot_bytes(data, NAME, key)
    assert state is not None
    with pytest.raises(IntegrityError, match="twice"):
        state.encode_snapshot()


def test_an_unknown_flag_is_refused_where_used() -> None:
    backend = MemoryBackend()
    _registry(backend, 14)
    key = _snapshot(backend)
    data = backend.read(key)
    head_end = data.index(b"\n")
    head = _state.decode(data[:head_end], key)
    head["index"]["flags"] = "x" + head["index"]["flags"][1:]
    state = _state.ModelState.from_snapshot_bytes(_state.encode(head) + data[head_end:], NAME, key)
    assert state is not None
    first = state.order[0]
    with pytest.raises(IntegrityError, match="damaged index"):
        state.records.peek(first)  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError, match=r"indexes 1\.0\.0 as 'x'"):
        state.records[first]


@pytest.mark.parametrize("change", ["rewritten", "missing"])
def test_a_lost_block_is_not_served_from_a_history_that_changed(
    tmp_path: Path, change: str
) -> None:
    """The log replayed for a lost block must still lead to the entry the snapshot was
    built from: a rewritten (resealed) or deleted entry up to it is a clear error, not
    records from another history."""
    backend = LocalBackend(tmp_path / "reg", durable=False)
    _registry(backend)
    key = _snapshot(backend)
    seq = _state.key_seq(key, _state.snapshot_prefix(NAME))
    assert seq is not None
    fresh = ModelRegistry(backend)
    assert fresh.current(NAME) is not None  # opened: the head read, one block or two
    for k in backend.list(_state.snapshot_prefix(NAME)):
        backend.delete(k)  # the blocks not read yet are lost
    entry = _state.log_key(NAME, seq)
    if change == "missing":
        backend.delete(_state.log_key(NAME, 3))
        match = "now missing"
    else:  # same event, one more field: valid JSON, a fresh seal, another sha256
        payload = _state.decode(backend.read(entry), entry)
        payload["note"] = "rewritten"
        overwrite(backend, entry, _state.encode(payload))
        match = "since rewritten"
    with pytest.raises(IntegrityError, match=match):
        _dicts(fresh)
