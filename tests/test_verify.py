"""Damage is reported by ``verify()`` and refused by reads, never silently served.

Each test damages a registry the way disks and people do (a flipped byte in an
artifact, a truncated history entry, an entry pointing at a version that does not
exist, a missing entry, a damaged snapshot), then checks that ``verify()`` names
the damage with the right ``kind``, that reading refuses it with
:class:`IntegrityError`, and that ``verify(repair=True)`` removes nothing committed
(a damaged snapshot, a cache, it removes).
They run on the local folder and the memory backend.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from _tamper import overwrite, snapshot_payload, stored

from modelversions import IntegrityError, ModelRegistry, Status, _state
from modelversions.backends import Backend


def populate(backend: Backend) -> ModelRegistry:
    """Three versions; 1.0.0 then 1.1.0 deployed: events 1-3 saves, 4-5 deploys."""
    reg = ModelRegistry(backend)
    for i in range(3):
        reg.save("m", {"i": i})
    reg.deploy("m", "1.0.0")
    reg.deploy("m", "1.1.0")
    return reg


def assert_reported(backend: Backend, kind: str, version: str | None = None) -> None:
    report = ModelRegistry(backend).verify()
    assert not report.ok, str(report)
    kinds = {(p.kind, p.version) for p in report.problems}
    assert (kind, version) in kinds, str(report)


def assert_repair_keeps_everything(backend: Backend) -> None:
    before = stored(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged snapshot warns on every read
        report = ModelRegistry(backend).verify(repair=True, min_age=0)
    assert report.removed == (), str(report)
    assert stored(backend) == before


# ---------------------------------------------------------------------- artifacts
def test_flipped_byte_in_an_artifact(store: Backend) -> None:
    reg = populate(store)
    assert reg.load("m") == {"i": 1}  # a registry that served it before the damage
    key = _state.artifact_key("m", reg.get("m", "1.1.0").sha256)
    data = bytearray(store.read(key))
    data[len(data) // 2] ^= 0x01
    overwrite(store, key, bytes(data))

    assert_reported(store, "artifact-damaged", "1.1.0")
    for r in (reg, ModelRegistry(store)):
        with pytest.raises(IntegrityError, match=r"1\.1\.0.*damaged"):
            r.load("m")
        with pytest.raises(IntegrityError, match="refusing to unpickle"):
            r.load("m", "1.1.0")
        assert r.load("m", "1.0.0") == {"i": 0}  # the others still load
    assert_repair_keeps_everything(store)


def test_missing_artifact(store: Backend) -> None:
    reg = populate(store)
    store.delete(_state.artifact_key("m", reg.get("m", "1.1.0").sha256))
    assert_reported(store, "artifact-missing", "1.1.0")
    with pytest.raises(IntegrityError, match="missing"):
        ModelRegistry(store).load("m")
    assert_repair_keeps_everything(store)


# ---------------------------------------------------------------------- history
@pytest.mark.parametrize("seq", [2, 5])
def test_truncated_history_entry(store: Backend, seq: int) -> None:
    reg = populate(store)
    key = _state.log_key("m", seq)
    overwrite(store, key, store.read(key)[: len(store.read(key)) // 2])

    assert_reported(store, "history-damaged")
    fresh = ModelRegistry(store)
    for read in (fresh.current, fresh.versions, fresh.load, fresh.history):
        with pytest.raises(IntegrityError, match=f"{key}.*damaged"):
            read("m")
    # No change is built on a damaged history either.
    with pytest.raises(IntegrityError):
        fresh.save("m", {"i": 9})
    assert_repair_keeps_everything(store)
    assert reg.load("m") == {"i": 1}  # what this registry read before was whole


def _append_by_hand(backend: Backend, **fields: object) -> None:
    """Append a history entry that copies the last one, with ``fields`` changed."""
    last = max(int(k.rsplit("/", 1)[1].split(".")[0]) for k in backend.list("models/m/@log/"))
    data = backend.read(_state.log_key("m", last))
    payload = _state.decode(data, "last")
    # Chained correctly (prev: the hash of the last entry), so only ``fields`` are wrong.
    payload.update(seq=last + 1, prev=_state.entry_sha256(data), **fields)
    backend.create(_state.log_key("m", last + 1), _state.encode(payload))


def test_entry_deploying_a_missing_version(store: Backend) -> None:
    reg = populate(store)
    _append_by_hand(store, version="9.9.9", from_version="1.1.0", to_version="9.9.9")

    assert_reported(store, "history-damaged")
    # Refused by a new registry and by one that was open before the entry appeared.
    for r in (reg, ModelRegistry(store)):
        with pytest.raises(IntegrityError, match=r"9\.9\.9 which does not exist"):
            r.load("m")
        with pytest.raises(IntegrityError, match=r"9\.9\.9"):
            r.current("m")
    assert_repair_keeps_everything(store)


def test_entry_breaking_the_pointer_chain(store: Backend) -> None:
    populate(store)
    _append_by_hand(store, version="1.2.0", from_version="1.0.0", to_version="1.2.0")
    assert_reported(store, "history-damaged")
    with pytest.raises(IntegrityError, match="broken chain"):
        ModelRegistry(store).load("m")


@pytest.mark.parametrize("missing", [2, 4])
def test_gap_in_the_history(store: Backend, missing: int) -> None:
    reg = populate(store)
    store.delete(_state.log_key("m", missing))

    assert_reported(store, "history-gap")
    fresh = ModelRegistry(store)
    for read in (fresh.current, fresh.versions, fresh.load):
        with pytest.raises(IntegrityError, match="gap"):
            read("m")
    assert_repair_keeps_everything(store)
    assert reg.current("m").version == "1.1.0"  # type: ignore[union-attr]


def test_verify_during_commits_reports_no_gap(
    store: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer committing while verify reads the history is not a gap."""
    populate(store)
    writer = ModelRegistry(store)
    real_list = store.list

    def list_while_committing(prefix: str) -> list[str]:
        if prefix.endswith("/@log/"):
            writer.deploy("m", "1.2.0")  # lands between verify's replay and its listing
        return real_list(prefix)

    monkeypatch.setattr(store, "list", list_while_committing)
    report = ModelRegistry(store).verify()
    assert report.ok, str(report)
    assert report.problems == ()


# ---------------------------------------------------------------------- snapshots
def _with_snapshot(backend: Backend) -> str:
    """A model whose history has snapshots (the newest at event 64); the newest's key."""
    reg = ModelRegistry(backend)
    reg.save("m", {"i": 0})
    reg.save("m", {"i": 1})
    for i in range(62):
        reg.deploy("m", ("1.0.0", "1.1.0")[i % 2])
    key = backend.list(_state.snapshot_prefix("m"))[-1]  # the newest
    return key


@pytest.mark.parametrize(
    "damage", ["missing-version", "truncated", "block-altered", "blocks-truncated"]
)
def test_damaged_snapshot_is_reported_and_the_log_is_served(store: Backend, damage: str) -> None:
    key = _with_snapshot(store)
    data = store.read(key)
    head_end = data.index(b"\n") + 1  # layout 2: the sealed head, then the blocks
    if damage == "missing-version":
        snap = snapshot_payload(data, key)
        snap["pointers"]["production"] = "9.9.9"
        overwrite(store, key, _state.encode(snap))
    elif damage == "truncated":
        overwrite(store, key, data[:40])
    elif damage == "block-altered":  # the head (and its seal) intact: the digest tells
        at = data.index(b'"sha256":"', head_end) + 10  # an artifact's hash: one digit
        digit = b"0" if data[at : at + 1] != b"0" else b"1"
        overwrite(store, key, data[:at] + digit + data[at + 1 :])
    else:
        overwrite(store, key, data[: head_end + 5])

    report = ModelRegistry(store).verify()
    assert "snapshot-damaged" in {p.kind for p in report.problems}, str(report)
    assert not report.ok  # damage: a reader may have served it
    with pytest.warns(UserWarning, match="damaged snapshot"):
        fresh = ModelRegistry(store)
        current = fresh.current("m")
    assert current is not None and str(current.version) == "1.1.0"
    assert fresh.load("m") == {"i": 1}
    # Repair removes the damaged snapshot (a cache) and nothing else.
    before = stored(store)
    repaired = ModelRegistry(store).verify(repair=True, min_age=0)
    assert repaired.removed == (key,), str(repaired)
    assert stored(store) == {k: v for k, v in before.items() if k != key}
    assert ModelRegistry(store).verify().problems == ()


# ---------------------------------------------------------------------- repair
def test_repair_removes_only_leftovers(store: Backend, tmp_path: Path) -> None:
    reg = populate(store)
    # An artifact no version references (a save that died before its commit) ...
    with store.open_blob() as blob:
        blob.write(b"orphan")
        blob.commit("models/m/@artifacts/" + "0" * 64 + ".joblib")
    committed = {k: v for k, v in stored(store).items() if "0" * 64 not in k}
    report = reg.verify()
    assert report.ok and {p.kind for p in report.problems} == {"orphan-artifact"}
    # ... is kept while it may belong to a save in progress, removed once old enough.
    assert reg.verify(repair=True).removed == ()
    assert reg.verify(repair=True, min_age=0).removed == (
        "models/m/@artifacts/" + "0" * 64 + ".joblib",
    )
    assert stored(store) == committed
    assert reg.verify().problems == ()
    assert [mv.status for mv in reg.versions("m")] == [
        Status.STABLE,
        Status.CANDIDATE,
        Status.CANDIDATE,
    ]


# ---------------------------------------------------------------------- checksums
def test_parseable_flip_in_the_pointer_entry_is_caught(store: Backend) -> None:
    """One flipped bit turns "1.1.0" into "1.0.0": still valid JSON, a plausible pointer.

    The entry's own checksum catches it; nothing serves the wrong version.
    """
    populate(store)
    key = _state.log_key("m", 5)  # deploy 1.0.0 -> 1.1.0
    data = store.read(key)
    assert data.count(b'"to_version":"1.1.0"') == 1
    damaged = data.replace(b'"to_version":"1.1.0"', b'"to_version":"1.0.0"')
    assert json.loads(damaged)["to_version"] == "1.0.0"  # still valid JSON
    overwrite(store, key, damaged)
    with pytest.raises(IntegrityError, match="checksum"):
        ModelRegistry(store).current("m")
    with pytest.raises(IntegrityError, match="checksum"):
        ModelRegistry(store).load("m")
    assert_reported(store, "history-damaged")
    assert_repair_keeps_everything(store)


def test_parseable_flip_in_a_snapshot_is_caught(store: Backend) -> None:
    reg = ModelRegistry(store)
    reg.save("m", {"i": 0})
    reg.save("m", {"i": 1})
    reg.deploy("m", "1.1.0")
    while reg.history("m")[-1].seq < 64:  # the 64th event writes a snapshot
        reg.deploy("m", "1.1.0")
    key = store.list(_state.snapshot_prefix("m"))[-1]  # the newest
    data = store.read(key)
    damaged = data.replace(b'"production":"1.1.0"', b'"production":"1.0.0"')
    assert damaged != data
    overwrite(store, key, damaged)
    fresh = ModelRegistry(store)
    with pytest.warns(UserWarning, match="checksum"):
        current = fresh.current("m")
    assert current is not None and str(current.version) == "1.1.0"  # rebuilt from the log
    report = ModelRegistry(store).verify()
    # Reported as damage (a reader could have served it); the log is intact.
    assert not report.ok
    assert [p.kind for p in report.problems] == ["snapshot-damaged"]
    assert "checksum" in report.problems[0].detail


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"repair": "no"}, "repair"),
        ({"repair": 1}, "repair"),
        ({"min_age": float("nan")}, "min_age"),
        ({"min_age": float("inf")}, "min_age"),
        ({"min_age": -1}, "min_age"),
        ({"min_age": "60"}, "min_age"),
        ({"min_age": True}, "min_age"),
    ],
)
def test_verify_refuses_bad_arguments_before_touching_anything(
    tmp_path: Path, kwargs: dict[str, object], needle: str
) -> None:
    from modelversions import InvalidInputError

    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", 1)
    tmp = tmp_path / "reg" / ".tmp" / "somehost.1.x.tmp"
    tmp.write_bytes(b"half a save")
    with pytest.raises(InvalidInputError, match=needle):
        reg.verify(**kwargs)  # type: ignore[arg-type]
    assert tmp.exists()
