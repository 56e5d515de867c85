"""Each model's deploys and rollbacks: ``ModelRegistry.moves`` and the moves files.

A writer keeps ``models/<name>/@moves/<seq>.json`` beside each snapshot (modelversions/
_moves.py): a sealed cache of the model's pointer moves up to entry ``seq``, anchored to
that entry's sha256. These tests check that ``moves()`` always equals the log filtered
to deploys and rollbacks, that a moves file that does not check out (damaged, forged
without its seal, of another model, anchored elsewhere) is ignored with a warning and
the log read instead, that damage to the log itself still raises, that registries
without moves files (older ones) read the log, and that with signing keys no moves
file is written or read. And that a history read from an entry on (as the web view's
history pages read) still notices a replaced or missing entry in that range.
"""

from __future__ import annotations

import json
import warnings

import pytest
from _tamper import overwrite, payload

from modelversions import DeployCheckFailedError, IntegrityError, ModelRegistry, _moves, _state
from modelversions.backends import Backend


def _build(backend: Backend, **kwargs: object) -> ModelRegistry:
    """70 events: three saves, deploys to three envs, a rollback, a failed guarded deploy."""
    reg = ModelRegistry(backend, **kwargs)  # type: ignore[arg-type]
    for i in range(3):
        reg.save("m", {"i": i})
    for i in range(56):  # 4..59; production ends on 1.1.0
        reg.deploy("m", ("1.0.0", "1.1.0")[i % 2], env=("production", "staging")[i % 3 == 0])
    for i in range(6):  # 60..65
        reg.deploy("m", ("1.0.0", "1.1.0")[i % 2], env="canary")
    reg.rollback("m", reason="bad")  # 66: production back to 1.0.0, 1.1.0 failed
    reg.deploy("m", "1.2.0", env="staging")  # 67
    reg.deploy("m", "1.0.0", env="canary")  # 68
    with pytest.raises(DeployCheckFailedError):  # 69 deploys, 70 restores; 1.2.0 failed
        reg.deploy("m", "1.2.0", check=_fails)
    assert reg.head("m")[0] == 70
    return reg


def _fails(model: object) -> None:
    raise ValueError("worse")


def _from_log(reg: ModelRegistry) -> list[dict[str, object]]:
    return [e.to_dict() for e in reg.history("m") if e.action in ("deploy", "rollback")]


def _keys(backend: Backend) -> list[int]:
    prefix = _moves.moves_prefix("m")
    return [_state.key_seq(k, prefix) or 0 for k in backend.list(prefix)]


def test_moves_equal_the_log_filtered_and_files_sit_beside_snapshots(store: Backend) -> None:
    reg = _build(store)
    assert _keys(store) == [48, 64]  # like the snapshots: every 16 entries, the newest two
    expected = _from_log(ModelRegistry(store))
    assert len(expected) == 67
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = ModelRegistry(store)
        assert [e.to_dict() for e in fresh.moves("m")] == expected
        assert [e.to_dict() for e in reg.moves("m")] == expected  # the writer's own
        assert [e.seq for e in fresh.moves("m", env="canary")] == [*range(60, 66), 68]
    stored = payload(store, _moves.moves_key("m", 64))
    assert stored["seq"] == 64 and stored["name"] == "m"
    assert stored["head_sha256"] == _state.entry_sha256(store.read(_state.log_key("m", 64)))
    assert [m["seq"] for m in stored["moves"]] == [e["seq"] for e in expected if e["seq"] <= 64]


def test_a_registry_without_moves_files_reads_the_log(store: Backend) -> None:
    """Written before moves files: the log alone; the next snapshot's writer adds one."""
    reg = _build(store)
    expected = _from_log(reg)
    for key in store.list(_moves.moves_prefix("m")):
        store.delete(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [e.to_dict() for e in ModelRegistry(store).moves("m")] == expected
    writer = ModelRegistry(store)
    for _ in range(10):
        writer.deploy("m", "1.0.0", env="canary")
    assert _keys(store) == [80]
    assert [e.to_dict() for e in ModelRegistry(store).moves("m")] == _from_log(writer)


def _forge(store: Backend, change: object) -> None:
    """Rewrite moves file 64 through ``change`` (a function of its decoded JSON), resealed."""
    key = _moves.moves_key("m", 64)
    body = payload(store, key)
    change(body)  # type: ignore[operator]
    overwrite(store, key, _state.encode(body))


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "unsealed",
        "other-model",
        "wrong-seq",
        "anchored-elsewhere",
        "not-a-move",
        "out-of-order",
        "bad-version",
    ],
)
def test_a_moves_file_that_does_not_check_out_is_ignored(store: Backend, damage: str) -> None:
    reg = _build(store)
    expected = _from_log(reg)
    key = _moves.moves_key("m", 64)
    data = store.read(key)
    if damage == "truncated":
        overwrite(store, key, data[: len(data) // 2])
    elif damage == "unsealed":  # a move changed by hand, seal left as it was
        assert b'"env":"canary"' in data
        overwrite(store, key, data.replace(b'"env":"canary"', b'"env":"canarx"', 1))
    elif damage == "other-model":
        _forge(store, lambda b: b.update(name="x"))
    elif damage == "wrong-seq":
        _forge(store, lambda b: b.update(seq=63))
    elif damage == "anchored-elsewhere":
        _forge(store, lambda b: b.update(head_sha256="0" * 64))
    elif damage == "not-a-move":
        _forge(store, lambda b: b["moves"][0].update(action="save"))
    elif damage == "out-of-order":
        _forge(store, lambda b: b["moves"].reverse())
    else:
        _forge(store, lambda b: b["moves"][0].update(to_version="not a version"))
    for k in store.list(_moves.moves_prefix("m")):
        if k != key:  # only the damaged one: the fallback is the log itself
            store.delete(k)
    with pytest.warns(UserWarning, match="moves file"):
        got = ModelRegistry(store).moves("m")
    assert [e.to_dict() for e in got] == expected


def test_the_next_older_moves_file_is_used_when_the_newest_is_damaged(store: Backend) -> None:
    reg = _build(store)
    overwrite(store, _moves.moves_key("m", 64), b"{}")
    with pytest.warns(UserWarning, match="moves file"):
        got = ModelRegistry(store).moves("m")
    assert [e.to_dict() for e in got] == _from_log(reg)


@pytest.mark.parametrize("seq", [64, 66, 70])
def test_damage_to_the_log_behind_or_after_a_moves_file_raises(store: Backend, seq: int) -> None:
    """The entries read after the moves file are checked up to the trusted head: a
    replaced one (resealed, so only the chain can tell) is an IntegrityError."""
    _build(store)
    fresh = ModelRegistry(store)
    fresh.head("m")  # the state (and its head) read before the damage
    key = _state.log_key("m", seq)
    body = payload(store, key)
    body["reason"] = "rewritten"
    overwrite(store, key, _state.encode(body))
    with pytest.raises(IntegrityError, match=r"sha256|hash chain"):
        fresh.moves("m")


def test_with_signing_keys_no_moves_file_is_written_or_read(store: Backend) -> None:
    reg = _build(store, signing_key=b"k" * 32)
    assert _keys(store) == []
    expected = _from_log(reg)
    # A moves file planted by someone without the key is not read.
    forged = {"schema": 1, "name": "m", "seq": 64, "moves": []}
    forged["head_sha256"] = _state.entry_sha256(store.read(_state.log_key("m", 64)))
    overwrite(store, _moves.moves_key("m", 64), _state.encode(forged))
    reader = ModelRegistry(store, verify_keys=[b"k" * 32])
    assert [e.to_dict() for e in reader.moves("m")] == expected


def test_a_failed_write_of_a_moves_file_only_warns(store: Backend) -> None:
    reg = _build(store)
    state = reg._log.states["m"]
    original = store.create

    def refuse(key: str, data: bytes) -> None:
        if "/@moves/" in key:
            raise OSError("disk full")
        original(key, data)

    store.create = refuse  # type: ignore[method-assign]
    try:
        with pytest.warns(UserWarning, match="could not write the moves file beside snapshot 70"):
            _moves.write(reg._log, state)
    finally:
        store.create = original  # type: ignore[method-assign]
    assert json.loads(json.dumps(_from_log(reg)))  # the log is untouched


@pytest.mark.parametrize("start", [1, 50, 65, 70])
def test_a_history_read_from_an_entry_on_notices_a_replaced_entry_in_range(
    store: Backend, start: int
) -> None:
    """What the web view's history pages read: entries ``start`` to the head."""
    _build(store)
    reader = ModelRegistry(store)
    reader.head("m")
    key = _state.log_key("m", start)
    body = payload(store, key)
    body["reason"] = "forged"
    overwrite(store, key, _state.encode(body))  # resealed: only the chain can tell
    with pytest.raises(IntegrityError, match=r"sha256|hash chain"):
        reader.history("m", start=start)


@pytest.mark.parametrize("gone", [52, 69])
def test_a_history_read_from_an_entry_on_notices_a_missing_entry(store: Backend, gone: int) -> None:
    _build(store)
    reader = ModelRegistry(store)
    reader.head("m")
    store.delete(_state.log_key("m", gone))
    with pytest.raises(IntegrityError, match="missing"):
        reader.history("m", start=50)


def test_verify_reports_a_resealed_moves_file_that_differs_from_the_log(store: Backend) -> None:
    """Readers cannot tell a forged moves file with a fresh seal and the right anchor
    (without signing keys nothing can: see docs/security.md); verify() compares it
    with the log, like a snapshot, and repair removes it."""
    _build(store)
    assert ModelRegistry(store).verify().ok
    _forge(store, lambda b: b["moves"][3].update(reason="never said"))
    report = ModelRegistry(store).verify()
    assert not report.ok
    assert [(p.kind, p.detail) for p in report.problems] == [
        ("moves-damaged", f"{_moves.moves_key('m', 64)} differs from the log")
    ]
    repaired = ModelRegistry(store).verify(repair=True)
    assert repaired.removed == (_moves.moves_key("m", 64),)
    assert ModelRegistry(store).verify().ok
