"""The history a reader serves is the history that was written.

Each history entry records ``prev``, the sha256 of the exact stored bytes of the entry
before it (``null`` for entry 1), and each snapshot ``head_sha256``, that of the entry
it was built from. These tests damage a registry behind its newest snapshot, forge
snapshots, plant stray files and race ``prune`` against ``verify()``, and check that
``history()`` and ``verify()`` always notice, that readers starting from a snapshot
fall back to the log when the snapshot does not check out, and that registries written
before the chain keep loading. They run on the local folder and the memory backend.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest
from _tamper import overwrite, payload, stored

from modelversions import IntegrityError, ModelRegistry, _state
from modelversions.backends import Backend


def with_snapshots(backend: Backend, events: int = 70) -> ModelRegistry:
    """Two versions, then deploys alternating between them up to ``events`` events.

    Snapshots are written at every 16th event; the two newest are kept (48 and 64 for
    70 events). Event ``k > 2`` deploys 1.0.0 if ``k`` is odd, else 1.1.0.
    """
    reg = ModelRegistry(backend)
    reg.save("m", {"i": 0})
    reg.save("m", {"i": 1})
    for i in range(events - 2):
        reg.deploy("m", ("1.0.0", "1.1.0")[i % 2])
    assert reg.history("m")[-1].seq == events
    return reg


def kinds(report: Any) -> set[str]:
    return {p.kind for p in report.problems}


def quiet_verify(backend: Backend, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelRegistry(backend).verify(**kwargs)


# ---------------------------------------------------------------------- the chain
def test_entries_chain_to_the_previous_entry_and_snapshots_to_theirs(store: Backend) -> None:
    with_snapshots(store)
    assert payload(store, _state.log_key("m", 1))["prev"] is None
    for seq in range(2, 71):
        before = store.read(_state.log_key("m", seq - 1))
        assert payload(store, _state.log_key("m", seq))["prev"] == _state.entry_sha256(before)
    snaps = store.list(_state.snapshot_prefix("m"))
    assert [_state.key_seq(k, _state.snapshot_prefix("m")) for k in snaps] == [48, 64]
    for key in snaps:
        snap = payload(store, key)
        entry = store.read(_state.log_key("m", snap["seq"]))
        assert snap["head_sha256"] == _state.entry_sha256(entry) == _state.entry_sha256(entry)
    assert ModelRegistry(store).verify().problems == ()


def test_a_retried_commit_chains_to_the_entry_it_lost_to(
    store: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that loses entry N to another re-reads and chains N+1 to the winner's N."""
    a = ModelRegistry(store)
    a.save("m", {"i": 0})
    a.save("m", {"i": 1})
    b = ModelRegistry(store)
    real_create = store.create
    raced: list[str] = []

    def create(key: str, data: bytes) -> None:
        if key == _state.log_key("m", 3) and not raced:
            raced.append(key)
            b.deploy("m", "1.0.0")  # b commits entry 3 first: a's create must fail
        real_create(key, data)

    monkeypatch.setattr(store, "create", create)
    a.deploy("m", "1.1.0")
    assert raced
    entry3 = store.read(_state.log_key("m", 3))
    assert payload(store, _state.log_key("m", 4))["prev"] == _state.entry_sha256(entry3)
    assert [e.action for e in ModelRegistry(store).history("m")] == [
        "save",
        "save",
        "deploy",
        "deploy",
    ]
    assert ModelRegistry(store).verify().problems == ()


# ---------------------------------------------------------------------- snapshots
def test_snapshot_differing_from_the_log_is_damage_and_repair_removes_it(store: Backend) -> None:
    """A consistently forged snapshot (valid checksum, right entry hash, wrong state)."""
    with_snapshots(store)
    key = _state.snapshot_key("m", 64)
    snap = payload(store, key)
    assert snap["pointers"] == {"production": "1.1.0"}  # event 64 deployed 1.1.0
    snap["pointers"]["production"] = "1.0.0"
    overwrite(store, key, _state.encode(snap))

    report = ModelRegistry(store).verify()
    assert not report.ok, str(report)
    assert [(p.kind, "differs from the log" in p.detail) for p in report.problems] == [
        ("snapshot-damaged", True)
    ], str(report)
    before = stored(store)
    repaired = ModelRegistry(store).verify(repair=True)
    assert repaired.removed == (key,), str(repaired)
    assert stored(store) == {k: v for k, v in before.items() if k != key}
    assert ModelRegistry(store).verify().problems == ()
    fresh = ModelRegistry(store)
    assert str(fresh.current("m").version) == "1.1.0"  # type: ignore[union-attr]  # event 70
    assert [str(e.to_version) for e in fresh.history("m")][63] == "1.1.0"


@pytest.mark.parametrize("forgery", ["wrong-entry-hash", "hash-stripped", "other-seq"])
def test_readers_fall_back_to_the_log_from_a_snapshot_that_does_not_check_out(
    store: Backend, forgery: str
) -> None:
    with_snapshots(store, events=64)  # the newest snapshot is the newest entry
    key = _state.snapshot_key("m", 64)
    snap = payload(store, key)
    snap["pointers"]["production"] = "1.0.0"  # the log says 1.1.0
    if forgery == "wrong-entry-hash":
        snap["head_sha256"] = _state.entry_sha256(b"some other entry")
    elif forgery == "hash-stripped":  # posing as a snapshot older than the chain
        del snap["head_sha256"]
    else:  # the state at entry 48, stored under 64's name
        snap = payload(store, _state.snapshot_key("m", 48))
    overwrite(store, key, _state.encode(snap))

    with pytest.warns(UserWarning, match="ignoring damaged snapshot"):
        fresh = ModelRegistry(store)
        current = fresh.current("m")
    assert current is not None and str(current.version) == "1.1.0"  # the log's state
    assert fresh.load("m") == {"i": 1}
    assert len(fresh.history("m")) == 64
    # The next change chains to the real entry 64, and the reader's state is the log's.
    fresh.deploy("m", "1.0.0")
    with pytest.warns(UserWarning, match="ignoring damaged snapshot"):
        assert ModelRegistry(store).history("m")[-1].seq == 65
    report = quiet_verify(store)
    assert not report.ok and kinds(report) == {"snapshot-damaged"}, str(report)
    assert quiet_verify(store, repair=True).removed == (key,)
    assert ModelRegistry(store).verify().problems == ()


def test_snapshot_past_the_last_entry(store: Backend) -> None:
    """A snapshot naming entry 99 of a 70-entry log is ignored, reported and removed."""
    with_snapshots(store)
    good = payload(store, _state.snapshot_key("m", 64))
    forged = dict(good, seq=99, head_sha256=None)
    forged["pointers"] = {"production": "1.0.0", "staging": "1.0.0"}
    key = _state.snapshot_key("m", 99)
    overwrite(store, key, _state.encode(forged))

    with pytest.warns(UserWarning, match="entry 99, which does not exist"):
        fresh = ModelRegistry(store)
        envs = fresh.envs("m")
    assert {e: str(mv.version) for e, mv in envs.items()} == {"production": "1.1.0"}
    assert fresh.history("m")[-1].seq == 70
    report = quiet_verify(store)
    assert not report.ok, str(report)
    assert [p.kind for p in report.problems] == ["snapshot-damaged"], str(report)
    assert "does not exist" in report.problems[0].detail
    assert quiet_verify(store, repair=True).removed == (key,)
    assert ModelRegistry(store).verify().problems == ()
    # Saves keep working and the newest snapshots are the real ones again.
    fresh.deploy("m", "1.0.0")
    assert ModelRegistry(store).current("m").version == "1.0.0"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- the log behind a snapshot
def _replace_entry(backend: Backend, seq: int) -> None:
    """Replace entry ``seq`` by a validly sealed entry saying something else."""
    key = _state.log_key("m", seq)
    entry = payload(backend, key)
    entry["reason"] = "rewritten"
    entry["user"] = "mallory"
    overwrite(backend, key, _state.encode(entry))


@pytest.mark.parametrize("damage", ["truncated", "deleted", "replaced"])
@pytest.mark.parametrize("seq", [10, 64])
def test_damage_behind_the_newest_snapshot(store: Backend, damage: str, seq: int) -> None:
    """Entry 10 (behind both snapshots) or 64 (the newest snapshot's own entry)."""
    with_snapshots(store)
    key = _state.log_key("m", seq)
    if damage == "truncated":
        overwrite(store, key, store.read(key)[:50])
    elif damage == "deleted":
        store.delete(key)
    else:
        _replace_entry(store, seq)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = ModelRegistry(store)
        if seq == 10:  # behind the snapshot: reads starting from it need not notice
            assert str(fresh.current("m").version) == "1.1.0"  # type: ignore[union-attr]
            assert [str(mv.version) for mv in fresh.versions("m")] == ["1.0.0", "1.1.0"]
            assert fresh.load("m") == {"i": 1}
        else:  # the snapshot's own entry: the snapshot is refused, the log is replayed
            with pytest.raises(IntegrityError):
                fresh.current("m")
    # history() and verify() always notice, naming the entry.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the snapshot of entry 64 is refused
        with pytest.raises(IntegrityError, match=f"{key}|entry {seq}"):
            ModelRegistry(store).history("m")
    report = quiet_verify(store)
    assert not report.ok, str(report)
    expected = "history-gap" if damage == "deleted" else "history-damaged"
    assert expected in kinds(report), str(report)
    # Repair removes nothing: the log is the truth, and it is damaged.
    before = stored(store)
    assert quiet_verify(store, repair=True, min_age=0).removed == ()
    assert stored(store) == before


def test_replaced_entry_is_named_by_history(store: Backend) -> None:
    with_snapshots(store)
    _replace_entry(store, 10)
    with pytest.raises(IntegrityError, match=r"000000000010\.json was replaced"):
        ModelRegistry(store).history("m")
    report = ModelRegistry(store).verify()
    assert [p.kind for p in report.problems] == ["history-damaged"]
    assert "broken hash chain" in report.problems[0].detail
    assert "entry 10 was replaced" in report.problems[0].detail


def test_history_from_start_checks_the_chain_from_there(store: Backend) -> None:
    with_snapshots(store)
    _replace_entry(store, 10)
    reg = ModelRegistry(store)
    assert len(reg.history("m", start=11)) == 60  # the link from 10 into 11 is not read
    with pytest.raises(IntegrityError, match=r"000000000010\.json was replaced"):
        reg.history("m", start=5)
    with pytest.raises(IntegrityError, match=r"000000000010\.json was replaced"):
        reg.history("m", start=10)  # 11 is cached now: the link into it is checked


def test_damage_after_the_snapshot_is_refused_by_every_read(store: Backend) -> None:
    with_snapshots(store)
    _replace_entry(store, 66)
    for read in ("versions", "current", "history"):
        with pytest.raises(IntegrityError, match="entry 66 was replaced"):
            getattr(ModelRegistry(store), read)("m")
    with pytest.raises(IntegrityError, match="entry 66 was replaced"):
        ModelRegistry(store).deploy("m", "1.0.0")


# ---------------------------------------------------------------------- stray files
@pytest.mark.parametrize(
    "stray", ["README", "notes.txt", "000000000003.json.bak", "000000000000.json", "12.json"]
)
def test_stray_file_in_the_log_is_stray_not_a_gap(store: Backend, stray: str) -> None:
    reg = with_snapshots(store, events=20)
    key = f"models/m/@log/{stray}"
    overwrite(store, key, b"written by a person\n")
    report = ModelRegistry(store).verify()
    assert report.ok, str(report)
    assert [(p.kind, p.detail) for p in report.problems] == [
        ("stray", f"{key} is not a history entry")
    ]
    assert quiet_verify(store, repair=True, min_age=0).removed == ()
    assert store.read(key) == b"written by a person\n"
    fresh = ModelRegistry(store)
    assert len(fresh.history("m")) == 20
    assert fresh.load("m") == {"i": 1}
    reg.deploy("m", "1.0.0")
    assert ModelRegistry(store).history("m")[-1].seq == 21


def test_stray_file_among_snapshots_is_left_alone(store: Backend) -> None:
    reg = with_snapshots(store, events=20)
    key = "models/m/@snapshots/README"
    overwrite(store, key, b"hands off\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not mistaken for a damaged snapshot
        assert ModelRegistry(store).current("m") is not None
    for i in range(44):  # snapshots up to 64 are written, older ones removed
        reg.deploy("m", ("1.0.0", "1.1.0")[i % 2])
    assert store.list(_state.snapshot_prefix("m")) == [
        _state.snapshot_key("m", 48),
        _state.snapshot_key("m", 64),
        key,
    ]
    report = ModelRegistry(store).verify(repair=True)
    assert report.ok and [p.kind for p in report.problems] == ["stray"], str(report)
    assert store.read(key) == b"hands off\n"


# ---------------------------------------------------------------------- old registries
def _unchain(backend: Backend) -> None:
    """Rewrite a registry as the code before the chain wrote it: no prev, no head_sha256
    (and no moves files, which came later still)."""
    for key in backend.list("models/m/"):
        if "/@moves/" in key:
            backend.delete(key)
        elif "/@log/" in key or "/@snapshots/" in key:
            data = payload(backend, key)
            data.pop("prev", None)
            data.pop("head_sha256", None)
            overwrite(backend, key, _state.encode(data))


def test_registry_written_before_the_chain_keeps_loading(store: Backend) -> None:
    with_snapshots(store)
    _unchain(store)
    assert all("prev" not in payload(store, k) for k in store.list("models/m/@log/"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # old snapshots are used, not warned about
        fresh = ModelRegistry(store)
        assert str(fresh.current("m").version) == "1.1.0"  # type: ignore[union-attr]
        assert fresh.load("m") == {"i": 1}
        assert len(fresh.history("m")) == 70
    assert ModelRegistry(store).verify().problems == ()
    # New entries chain on from the old ones; old and new read and verify together.
    fresh.deploy("m", "1.0.0")
    last_old = store.read(_state.log_key("m", 70))
    assert payload(store, _state.log_key("m", 71))["prev"] == _state.entry_sha256(last_old)
    assert len(ModelRegistry(store).history("m")) == 71
    assert ModelRegistry(store).verify().problems == ()
    # The first chained entry pins the old entry before it.
    _replace_entry(store, 70)
    with pytest.raises(IntegrityError, match="entry 70 was replaced"):
        ModelRegistry(store).history("m")
    assert "history-damaged" in kinds(quiet_verify(store))


# ---------------------------------------------------------------------- prune beside verify
def _three_distinct(backend: Backend) -> ModelRegistry:
    reg = ModelRegistry(backend)
    for i in range(3):
        reg.save("m", {"i": i})
    return reg


@pytest.mark.parametrize("change", ["prune", "delete"])
def test_artifact_removed_between_replay_and_check_is_no_problem(
    store: Backend, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _three_distinct(store)
    other = ModelRegistry(store)
    verifier = ModelRegistry(store)
    real_check = verifier._fsck._check_artifact
    done: list[bool] = []

    def check_after_a_change(key: str, mv: Any, serialization: Any) -> str | None:
        if not done:  # verify has replayed the log: now another registry changes it
            done.append(True)
            if change == "prune":
                assert [str(p.version) for p in other.prune("m", keep=1)] == ["1.0.0", "1.1.0"]
            else:
                other.delete("m", "1.0.0")
        return real_check(key, mv, serialization)

    monkeypatch.setattr(verifier._fsck, "_check_artifact", check_after_a_change)
    report = verifier.verify()
    assert done
    assert report.ok, str(report)
    assert report.problems == ()


def test_a_missing_artifact_still_needed_is_reported_after_the_recheck(store: Backend) -> None:
    reg = _three_distinct(store)
    store.delete(_state.artifact_key("m", reg.get("m", "1.1.0").sha256))
    report = ModelRegistry(store).verify()
    assert [(p.kind, p.version) for p in report.problems] == [("artifact-missing", "1.1.0")]


def test_verify_beside_prune_and_save_raises_no_false_alarm(store: Backend) -> None:
    writer = ModelRegistry(store)
    for i in range(3):
        writer.save("m", {"i": i})
    failures: list[BaseException] = []

    def churn() -> None:
        try:
            for i in range(40):
                writer.save("m", {"i": 100 + i})
                writer.prune("m", keep=1)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    reports = []
    while thread.is_alive() or not reports:
        reports.append(ModelRegistry(store).verify())
    thread.join()
    assert failures == []
    bad = [str(r) for r in reports if not r.ok]
    assert bad == [], bad[:3]
    assert ModelRegistry(store).verify().problems == ()


def test_stray_file_alone_makes_no_model(store: Backend) -> None:
    ModelRegistry(store).save("m", 1)
    overwrite(store, "models/ghost/@log/README", b"x")
    report = ModelRegistry(store).verify(repair=True)
    assert report.ok, str(report)
    assert [(p.kind, p.name) for p in report.problems] == [("stray", "ghost")]
    assert report.removed == ()
    assert ModelRegistry(store).models() == ["m"]
    assert not store.exists(_state.index_key("ghost"))


@pytest.mark.parametrize("first", [66, 70])
def test_stripping_prev_from_the_newest_entries_breaks_the_chain(
    store: Backend, first: int
) -> None:
    """Once a log is chained it stays chained: an entry re-sealed without ``prev`` after a
    chained one (here entries ``first``..70, behind no snapshot) is refused by every read,
    whether the reader starts from the snapshot at 64 or replays from entry 1."""
    with_snapshots(store)
    for seq in range(first, 71):
        key = _state.log_key("m", seq)
        data = payload(store, key)
        data.pop("prev")
        overwrite(store, key, _state.encode(data))
    for read in ("versions", "current", "history"):
        with pytest.raises(IntegrityError, match=f"entry {first} .*stripped of its hash"):
            getattr(ModelRegistry(store), read)("m")
    assert not quiet_verify(store).ok
