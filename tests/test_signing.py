"""Signed registries: a writer of the storage without the key cannot make a reader load.

The attacker here can write the storage but holds no key. Each attack plants an artifact
that, when unpickled, creates a marker file; each test checks that a reader with the key
raises :class:`SignatureError` naming the file, before any artifact is opened (the
marker never appears). The attacks run on every backend (``backend`` fixture: local
folder, memory, S3 on the moto server, fsspec memory). Then: key rotation, attest,
pinned heads, ``verify()``, unsigned registries unchanged, and the options' checks.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from _tamper import snapshot_payload

from modelversions import (
    IntegrityError,
    InvalidInputError,
    ModelRegistry,
    SignatureError,
    _state,
    key_id,
)
from modelversions.backends import Backend
from modelversions.serialization import dump_model
from modelversions.signing import ENV_KEY, Keyring

KEY_A = "a" * 40
KEY_B = b"b" * 32
KEY_C = "c" * 32


class Planted:
    """Unpickling this creates ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def overwrite(backend: Backend, key: str, data: bytes) -> None:
    """What a writer of the storage can do: replace any object."""
    with contextlib.suppress(FileNotFoundError):
        backend.delete(key)
    backend.create(key, data)


def plant_artifact(backend: Backend, name: str, marker: Path) -> tuple[str, int]:
    """Store the planted pickle as an artifact of ``name``; its sha256 and size."""
    blob = backend.open_blob()
    sha, size = dump_model(Planted(marker), blob)
    blob.commit(_state.artifact_key(name, sha))
    return sha, size


def payload(backend: Backend, key: str) -> dict[str, Any]:
    return snapshot_payload(backend.read(key), key)


def signed_registry(backend: Backend, versions: int = 2) -> ModelRegistry:
    reg = ModelRegistry(backend, signing_key=KEY_A)
    for i in range(versions):
        reg.save("m", {"w": i})
    reg.deploy("m", "1.0.0")
    return reg


def reader(backend: Backend, **kwargs: Any) -> ModelRegistry:
    return ModelRegistry(backend, signing_key=KEY_A, **kwargs)


def refused(backend: Backend, key: str, marker: Path, version: str = "1.0.0") -> SignatureError:
    with pytest.raises(SignatureError) as info:
        reader(backend).load("m", version)
    assert key in str(info.value)
    assert not marker.exists()
    return info.value


# ---------------------------------------------------------------------------- attacks
def test_replaced_artifact_with_forged_entry(backend: Backend, tmp_path: Path) -> None:
    """The artifact replaced and its sha256 rewritten in a forged (re-sealed) entry."""
    ModelRegistry(backend, signing_key=KEY_A).save("m", {"w": 0})  # entry 1 is the newest
    marker = tmp_path / "ran"
    sha, size = plant_artifact(backend, "m", marker)
    key = _state.log_key("m", 1)
    forged = payload(backend, key)
    forged["record"] = {**forged["record"], "sha256": sha, "size": size}
    overwrite(backend, key, _state.encode(forged))  # signature kept: it no longer matches
    refused(backend, key, marker)
    forged.pop("signature")
    overwrite(backend, key, _state.encode(forged))  # signature dropped: unsigned
    refused(backend, key, marker)
    assert not ModelRegistry(backend, signing_key=KEY_A).verify().ok
    # A reader without a key is fooled, as the checksums alone allow: the marker shows it.
    ModelRegistry(backend).load("m", "1.0.0")
    assert marker.exists()


def test_forged_entry_after_the_last(backend: Backend, tmp_path: Path) -> None:
    """An attacker without the key appends a save and a deploy (entries N+1, N+2)."""
    signed_registry(backend)
    marker = tmp_path / "ran"
    attacker = ModelRegistry(backend)
    attacker.save("m", Planted(marker), "9.0.0")
    assert not marker.exists()
    attacker.deploy("m", "9.0.0")
    error = refused(backend, _state.log_key("m", 4), marker)
    assert "not signed" in str(error)
    for version in ("1.0.0", "9.0.0"):  # nothing of the model is served any more
        with pytest.raises(SignatureError):
            reader(backend).load("m", version)
    assert not marker.exists()


def test_forged_snapshot_is_ignored_and_the_signed_log_served(
    backend: Backend, tmp_path: Path
) -> None:
    reg = signed_registry(backend, versions=15)  # 16 entries: a snapshot at 16
    snap_key = _state.snapshot_key("m", 16)
    assert backend.exists(snap_key)
    marker = tmp_path / "ran"
    sha, size = plant_artifact(backend, "m", marker)
    state = reg._log.refresh("m")
    forged = _state.ModelState.from_snapshot(payload(backend, snap_key), "m")
    v = forged.pointers["production"]
    forged.records[v] = forged.records[v].__class__.from_dict(
        {**forged.records[v].to_dict(), "sha256": sha, "size": size}
    )
    assert forged.head_sha256 == state.head_sha256  # it names the real entry 16
    overwrite(backend, snap_key, forged.encode_snapshot())
    with pytest.warns(UserWarning, match=f"{snap_key} is not signed"):
        assert reader(backend).load("m") == {"w": 0}
    assert not marker.exists()
    problems = ModelRegistry(backend, signing_key=KEY_A).verify().problems
    assert [p.kind for p in problems if p.kind == "signature"] == ["signature"]
    assert snap_key in str(problems)


def test_middle_entry_replaced(backend: Backend, tmp_path: Path) -> None:
    signed_registry(backend, versions=4)
    marker = tmp_path / "ran"
    sha, size = plant_artifact(backend, "m", marker)
    key = _state.log_key("m", 1)  # the save of 1.0.0, which production runs
    entry = payload(backend, key)
    entry.pop("signature")
    entry["record"] = {**entry["record"], "sha256": sha, "size": size}
    overwrite(backend, key, _state.encode(entry))
    error = refused(backend, key, marker)
    assert "broken hash chain" in str(error)  # entry 2's prev no longer matches either


def test_entry_resigned_with_another_key(backend: Backend, tmp_path: Path) -> None:
    signed_registry(backend)
    marker = tmp_path / "ran"
    sha, size = plant_artifact(backend, "m", marker)
    key = _state.log_key("m", 1)
    entry = payload(backend, key)
    entry.pop("signature")
    entry["record"] = {**entry["record"], "sha256": sha, "size": size}
    resigned = Keyring(KEY_C, ()).sign(b"entry", _state.unseal(_state.encode(entry)))
    overwrite(backend, key, resigned)
    error = refused(backend, key, marker)
    assert key_id(KEY_C) in str(error)
    # The attacker claims our key id, with a MAC made with theirs: it does not match.
    claimed = json.loads(resigned)
    claimed.pop("sha256")
    claimed["signature"]["key_id"] = key_id(KEY_A)
    overwrite(backend, key, _state.encode(claimed))
    assert "does not match its content" in str(refused(backend, key, marker))


# ---------------------------------------------------------------------------- keys
def test_rotation(backend: Backend) -> None:
    signed_registry(backend)
    rotated = ModelRegistry(backend, signing_key=KEY_B, verify_keys=[KEY_A])
    assert rotated.load("m") == {"w": 0}
    rotated.save("m", {"w": 9}, "2.0.0")
    rotated.deploy("m", "2.0.0")
    kids = {s.key_id for s in rotated.signatures("m")}
    assert kids == {key_id(KEY_A), key_id(KEY_B)}
    assert rotated.load("m", "1.0.0") == {"w": 0}
    assert rotated.verify().ok
    with pytest.raises(SignatureError, match=key_id(KEY_A)):
        ModelRegistry(backend, signing_key=KEY_B).load("m", "2.0.0")


def test_verify_keys_only_reads_and_refuses_to_write(backend: Backend) -> None:
    signed_registry(backend)
    readonly = ModelRegistry(backend, verify_keys=[KEY_A], trusted_only=True)
    assert readonly.load("m") == {"w": 0}
    before = sorted(backend.list(""))
    with pytest.raises(InvalidInputError, match="no signing key"):
        readonly.save("m", {"w": 5})
    with pytest.raises(InvalidInputError, match="no signing key"):
        readonly.deploy("m", "1.1.0")
    assert sorted(backend.list("")) == before  # not even an artifact


def test_key_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    for bad in ("short", b"x" * 31, 42, ["k" * 32]):
        with pytest.raises(InvalidInputError):
            ModelRegistry("memory://", signing_key=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="list of keys"):
        ModelRegistry("memory://", verify_keys="k" * 32)
    with pytest.raises(InvalidInputError, match="trusted_only"):
        ModelRegistry("memory://", trusted_only=True)
    with pytest.raises(InvalidInputError, match="expect_heads"):
        ModelRegistry("memory://", expect_heads={"m": (0, "0" * 64)})
    monkeypatch.setenv(ENV_KEY, KEY_A)
    reg = ModelRegistry("memory://", trusted_only=True)  # the key from the environment
    reg.save("m", 1)
    assert reg.signatures("m")[0].key_id == key_id(KEY_A)
    assert KEY_A not in repr(reg._log.guard.keyring)  # type: ignore[union-attr]
    assert KEY_A.encode() not in reg.backend.read(_state.log_key("m", 1))


def test_unsigned_registries_store_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    reg = ModelRegistry("memory://")
    assert reg._log.guard is None
    reg.save("m", {"w": 1})
    data = reg.backend.read(_state.log_key("m", 1))
    assert b"signature" not in data
    assert _state.encode(payload(reg.backend, _state.log_key("m", 1))) == data
    assert [s.status for s in reg.signatures("m")] == ["unsigned"]


# ---------------------------------------------------------------------------- attest
def test_attest_adopts_an_unsigned_registry(backend: Backend, tmp_path: Path) -> None:
    plain = ModelRegistry(backend)
    for i in range(20):  # a snapshot at 16, unsigned
        plain.save("m", {"w": i})
    plain.deploy("m", "1.0.0")
    unsigned = ModelRegistry(backend, signing_key=KEY_A, trusted_only=True)
    with pytest.raises(SignatureError, match="not signed"), pytest.warns(UserWarning):
        unsigned.load("m")  # the unsigned snapshot is ignored, then entry 1 refused
    with pytest.raises(InvalidInputError, match="signing key"):
        ModelRegistry(backend, verify_keys=[KEY_A]).attest("m")
    event = ModelRegistry(backend, signing_key=KEY_A).attest("m")
    assert (event.action, event.seq) == ("attest", 22)
    trusted = ModelRegistry(backend, signing_key=KEY_A, trusted_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old unsigned snapshot is gone
        assert trusted.load("m") == {"w": 0}
    statuses = [s.status for s in trusted.signatures("m")]
    assert statuses == ["attested"] * 21 + ["signed"]
    assert trusted.verify().ok
    # Read from entry 1 too (no snapshot): the attestation's chain hash is checked.
    for key in backend.list(_state.snapshot_prefix("m")):
        backend.delete(key)
    assert ModelRegistry(backend, signing_key=KEY_A, trusted_only=True).load("m") == {"w": 0}
    # An unsigned entry after the attestation is refused.
    marker = tmp_path / "ran"
    plain.save("m", Planted(marker), "9.0.0")
    plain.deploy("m", "9.0.0")
    with pytest.raises(SignatureError, match=_state.log_key("m", 23)):
        ModelRegistry(backend, signing_key=KEY_A, trusted_only=True).load("m")
    assert not marker.exists()


def test_attest_refuses_damage_and_checks_the_chain(backend: Backend) -> None:
    plain = ModelRegistry(backend)
    plain.save("m", {"w": 1})
    plain.save("m", {"w": 2})
    plain.save("other", 1)
    mv = plain.get("m", "1.1.0")
    overwrite(backend, _state.artifact_key("m", mv.sha256), b"damaged")
    signer = ModelRegistry(backend, signing_key=KEY_A)
    with pytest.raises(IntegrityError, match=r"refusing to attest 'm'.*artifact-damaged"):
        signer.attest("m")
    assert signer.attest("other").action == "attest"  # other models are not its business
    # An entry replaced after an attestation breaks the chain hash it records.
    key = _state.log_key("other", 1)
    entry = payload(backend, key)
    entry["description"] = "rewritten"
    overwrite(backend, key, _state.encode(entry))
    for snap in backend.list(_state.snapshot_prefix("other")):
        backend.delete(snap)
    with pytest.raises(SignatureError):
        ModelRegistry(backend, signing_key=KEY_A).versions("other")


# ---------------------------------------------------------------------------- heads
def test_pinned_heads_catch_truncation(backend: Backend) -> None:
    reg = signed_registry(backend, versions=3)
    seq, sha = reg.head("m")
    assert reader(backend, expect_heads={"m": (seq, sha)}).load("m") == {"w": 0}
    assert reg.verify(expect={"m": (seq, sha)}).ok
    backend.delete(_state.log_key("m", seq))  # the newest entry removed: signatures agree
    assert reader(backend).current("m") is None  # the deploy is gone, unnoticed unpinned
    with pytest.raises(IntegrityError, match="truncated"):
        reader(backend, expect_heads={"m": (seq, sha)}).load("m")
    report = reader(backend).verify(expect={"m": (seq, sha)})
    assert not report.ok
    assert [p.kind for p in report.problems] == ["head"]
    with pytest.raises(InvalidInputError):
        reg.verify(expect={"m": (seq, "nope")})


def test_a_reader_recovers_once_the_forgery_is_removed() -> None:
    reg = ModelRegistry("memory://", signing_key=KEY_A)
    reg.save("m", {"w": 0})
    reg.deploy("m", "1.0.0")
    attacker = ModelRegistry(reg.backend)
    attacker.save("m", {"w": "evil"}, "9.0.0")
    attacker.deploy("m", "9.0.0")
    for _ in range(2):  # refused every time, not only the first
        with pytest.raises(SignatureError):
            reg.load("m")
    for seq in (3, 4):
        reg.backend.delete(_state.log_key("m", seq))
    assert reg.load("m") == {"w": 0}
    assert [str(mv.version) for mv in reg.versions("m")] == ["1.0.0"]
