"""A signed registry reads its snapshots lazily too, without a weaker check.

A snapshot's MAC is checked over the exact bytes stored after its signature (what
``Keyring.sign`` signed); when that check does not pass, the old one (decode, encode
canonically, check) decides, so a snapshot is accepted exactly when it was before.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from typing import Any
from unittest import mock

import pytest
from _tamper import as_layout1, overwrite
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_lazy import NAME, _do
from test_lazy_versions import HISTORIES

from modelversions import ModelRegistry, ModelVersionsError, SignatureError, _snapshots, _state
from modelversions._lazy import LazyRecords
from modelversions.backends.memory import MemoryBackend
from modelversions.signing import Keyring

KEY = "k" * 32
OTHER = "j" * 32


def _signed(count: int = 40, *, layout1: bool = False) -> tuple[MemoryBackend, ModelRegistry, str]:
    """A signed registry of ``count`` versions, the last deployed; its newest snapshot
    (``layout1``: stored again as the library signed snapshots before layout 2)."""
    backend = MemoryBackend()
    reg = ModelRegistry(backend, signing_key=KEY)
    for i in range(count):
        reg.save(NAME, {"w": i})
    reg.deploy(NAME, str(reg.versions(NAME)[-1].version))
    key = backend.list(_state.snapshot_prefix(NAME))[-1]
    if layout1:
        as_layout1(backend, key, sign=Keyring(KEY, ()))
    return backend, reg, key


def _fresh(backend: MemoryBackend, *keys: str) -> tuple[ModelRegistry, list[str]]:
    """A new reader with ``keys``, opened on the model; the warnings it gave."""
    reader = ModelRegistry(backend, verify_keys=list(keys))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader.current(NAME)
    return reader, [str(w.message) for w in caught]


def _lazy(reader: ModelRegistry) -> bool:
    return isinstance(reader._log.states[NAME].records, LazyRecords)


def test_a_signed_snapshot_is_read_lazily() -> None:
    backend, reg, _key = _signed()
    reader, caught = _fresh(backend, KEY)
    assert not caught and _lazy(reader)
    state = reader._log.states[NAME]
    assert len(state.records._parsed) <= 3  # type: ignore[attr-defined]
    assert reader.versions(NAME) == reg.versions(NAME)
    assert reader.verify().ok


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.replace(b'"w"', b'"x"', 1) if b'"w"' in d else d.replace(b"1.3.0", b"1.3.1"),
        lambda d: d[:-2] + b',{"name":"m"}]}',  # a record more, unindexed
    ],
)
def test_an_altered_signed_snapshot_is_ignored(change: Any) -> None:
    backend, reg, key = _signed(layout1=True)
    data = backend.read(key)
    altered = change(data)
    assert altered != data
    overwrite(backend, key, _state.seal(_state.unseal(altered)))  # resealed: only the MAC
    reader, caught = _fresh(backend, KEY)
    assert any("ignoring damaged snapshot" in w and "signature" in w for w in caught)
    assert reader.versions(NAME) == reg.versions(NAME)  # from the older snapshot, or the log


def test_a_snapshot_signed_by_an_unknown_key_or_as_an_entry_is_refused() -> None:
    backend, _reg, key = _signed(layout1=True)
    body = _state.unseal(backend.read(key))
    body = b"{" + body[body.index(b"},") + 2 :]  # the canonical body, signature removed
    for keyring, kind, why in (
        (Keyring(OTHER, ()), b"snapshot", "not one of this registry's keys"),
        (Keyring(KEY, ()), b"entry", "does not match its content"),
    ):
        overwrite(backend, key, keyring.sign(kind, body))
        reader, caught = _fresh(backend, KEY)
        assert any("ignoring damaged snapshot" in w and why in w for w in caught), caught
        assert reader.current(NAME) is not None


def _spaced(data: bytes) -> bytes:
    return _state.unseal(data).replace(b'"size":', b'"size": ', 1)


def _reordered(data: bytes) -> bytes:
    payload = json.loads(data)
    payload.pop("sha256")
    sig = payload.pop("signature")
    return json.dumps({**payload, "signature": sig}, indent=1).encode()


@pytest.mark.parametrize("relayout", [_spaced, _reordered])
def test_a_signed_snapshot_stored_in_another_layout_still_verifies(relayout: Any) -> None:
    """Signed over its canonical form but stored otherwise (spaces, other field order):
    the raw check does not pass, the canonical one still accepts it (read eagerly)."""
    backend, reg, key = _signed(layout1=True)
    data = backend.read(key)
    overwrite(backend, key, _state.seal(relayout(data)))
    reader, caught = _fresh(backend, KEY)
    assert not caught and not _lazy(reader)
    assert reader.versions(NAME) == reg.versions(NAME)


def test_an_unsigned_snapshot_is_still_ignored_by_a_keyed_reader() -> None:
    backend, reg, key = _signed(layout1=True)
    payload = _state.decode(backend.read(key), key)
    payload.pop("signature")
    overwrite(backend, key, _state.encode(payload))
    reader, caught = _fresh(backend, KEY)
    assert any("is not signed" in w for w in caught)
    assert reader.versions(NAME) == reg.versions(NAME)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SignatureError):
        warnings.simplefilter("always")
        ModelRegistry(backend, verify_keys=[OTHER]).current(NAME)
    assert [w for w in caught if "not signed" in str(w.message)]
    assert [w for w in caught if "not one of this registry's keys" in str(w.message)]


@settings(max_examples=25, deadline=None)
@given(actions=HISTORIES, every=st.integers(2, 16))
def test_versions_of_a_fresh_signed_registry_equal_the_replay(
    actions: list[tuple[Any, ...]], every: int
) -> None:
    backend = MemoryBackend()
    reg = ModelRegistry(backend, signing_key=KEY)
    reg.save(NAME, {"w": 0})
    with mock.patch.object(_snapshots, "_SNAPSHOT_EVERY", every):
        for action in actions:
            with contextlib.suppress(ModelVersionsError):
                _do(reg, action)
    fresh = ModelRegistry(backend, verify_keys=[KEY])
    assert fresh.versions(NAME) == reg._log.states[NAME].versions()
    event(f"read from a snapshot: {_lazy(fresh)}")
    assert fresh.envs(NAME) == reg.envs(NAME)
