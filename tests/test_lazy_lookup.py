"""Looking a version up in a lazily read state answers as the eagerly replayed one does.

A cold registry replays the entries after its snapshot through the lazy records'
lookups: a version newer than the snapshot's newest (a replayed save) is answered with
one comparison, any other by bisection over the index. Random histories, with saves
of explicit versions below the newest too, are snapshotted at a random cut and read
back lazily; every version the model has, and versions it lacks (above, below,
between, a pre-release, the same with build metadata), must be found or missed as in
the eager state, before and after the rest of the log is applied. A non-canonical
text where the lookup reads it is still refused, and a snapshot of the older layout
(no index) is hashed once, its seal still checked.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lazy import ACTIONS, NAME, _do, _eager, _payload, _reseal, _snapshot_of

from modelversions import (
    IntegrityError,
    ModelRegistry,
    ModelVersionsError,
    Version,
    _codec,
    _state,
)
from modelversions._lazy import LazyRecords
from modelversions._state import ModelState
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

SAVE_AS = st.tuples(st.just("save_as"), st.integers(0, 3), st.integers(0, 3))
HISTORIES = st.lists(st.one_of(SAVE_AS, SAVE_AS, ACTIONS), max_size=30)


def _log(actions: list[tuple[Any, ...]]) -> list[tuple[dict[str, Any], str]]:
    """Run ``actions`` (``save_as`` saves version ``0.<minor>.<patch>``): the log."""
    backend = MemoryBackend()
    reg = ModelRegistry(backend)
    reg.save(NAME, {"w": 0}, version="0.2.0")
    for action in actions:
        with contextlib.suppress(ModelVersionsError):  # a refusal changes nothing
            if action[0] == "save_as":
                reg.save(NAME, {"w": 1}, version=f"0.{action[1]}.{action[2]}")
            else:
                _do(reg, action)
    keys = backend.list(_state.log_prefix(NAME))
    return [(_state.decode(d, k), _state.entry_sha256(d)) for k in keys for d in [backend.read(k)]]


def _probes(state: ModelState) -> list[Version]:
    """Every version of ``state``, and versions around them it may lack."""
    out = [Version("0.0.0"), Version("0.0.1-rc.1"), Version("99.0.0"), Version("1.0.0")]
    for v in state.order:
        out += [v, Version(f"{v}+b"), v.bump("patch"), v.bump("minor"), Version(f"{v}-a")]
    return out


def _same_lookups(lazy: ModelState, eager: ModelState) -> None:
    for v in _probes(eager) + _probes(lazy):
        assert (v in lazy.records) == (v in eager.records), v
        if v in eager.records:
            mv = eager.records[v]
            assert lazy.records.peek(v) == (mv.status, mv.pruned)  # type: ignore[attr-defined]
            assert lazy.records[v] == mv


@settings(max_examples=50, deadline=None)
@given(actions=HISTORIES, cut=st.floats(0, 1))
def test_lookups_in_a_lazy_state_equal_the_eager_ones(
    actions: list[tuple[Any, ...]], cut: float
) -> None:
    entries = _log(actions)
    at = max(1, round(cut * len(entries)))
    lazy = ModelState.from_snapshot_bytes(_eager(entries[:at]).encode_snapshot(), NAME, "s")
    assert lazy is not None and isinstance(lazy.records, LazyRecords)
    _same_lookups(lazy, _eager(entries[:at]))
    fresh = ModelState.from_snapshot_bytes(_eager(entries[:at]).encode_snapshot(), NAME, "s")
    assert fresh is not None
    for payload, sha in entries[at:]:  # saves below and above the snapshot's newest
        fresh.apply(payload, sha256=sha)
    full = _eager(entries)
    assert [str(v) for v in fresh.order] == [str(v) for v in full.order]
    _same_lookups(fresh, full)
    assert fresh.encode_snapshot() == full.encode_snapshot()


def test_a_non_canonical_newest_text_is_refused_when_a_save_is_replayed() -> None:
    """The one comparison a replayed save costs parses the index's newest text."""
    state, data = _snapshot_of(3)
    payload = _payload(data)
    newest = str(state.order[-1])
    payload["index"]["order"] = payload["index"]["order"].replace(newest, "v" + newest)
    lazy = ModelState.from_snapshot_bytes(_reseal(payload), NAME, "snapshot")
    assert lazy is not None
    save = {
        "schema": _state.SCHEMA,
        "seq": lazy.seq + 1,
        "time": "2026-01-01T00:00:00Z",
        "action": "save",
        "name": NAME,
        "record": dict(payload["versions"][-1], version="9.0.0"),
    }
    with pytest.raises(IntegrityError, match="non-canonical"):
        lazy.apply(save)


def _rewrite(backend: Backend, key: str, data: bytes) -> None:
    backend.delete(key)
    backend.create(key, data)


def test_a_snapshot_without_index_is_hashed_once_and_its_seal_still_checked(
    tmp_path: Path,
) -> None:
    reg = ModelRegistry(LocalBackend(tmp_path, durable=False))
    for i in range(20):
        reg.save(NAME, {"w": i})
    (key,) = reg.backend.list(_state.snapshot_prefix(NAME))
    old = {k: v for k, v in _payload(reg.backend.read(key)).items() if k != "index"}
    _rewrite(reg.backend, key, _reseal(old))  # as written before the index existed
    seal = mock.Mock(wraps=_codec.check_seal)
    with (
        mock.patch.object(_codec, "check_seal", seal),
        mock.patch.object(_state, "check_seal", seal),
    ):
        assert len(ModelRegistry(tmp_path).versions(NAME)) == 20
    assert [c.args[1] for c in seal.call_args_list].count(key) == 1
    data = reg.backend.read(key).replace(b'"version":"1.3.0"', b'"version":"1.3.1"')
    _rewrite(reg.backend, key, data)  # its seal no longer holds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [str(mv.version) for mv in ModelRegistry(tmp_path).versions(NAME)][3] == "1.3.0"
    assert any("checksum" in str(w.message) for w in caught)
