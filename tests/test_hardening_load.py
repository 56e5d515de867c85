"""What is verified is what is unpickled: the load path under attack.

Each test plants a file, races a swap or a prune, or passes a wrong value, and
checks that no planted code runs, the good model or a clear error comes back, and
nothing outside what the registry or its read cache wrote is touched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from modelversions import (
    ArtifactPrunedError,
    IntegrityError,
    InvalidInputError,
    ModelRegistry,
    StorageError,
    _cache,
    _state,
    serialization,
)
from modelversions.backends.memory import MemoryBackend

# ---------------------------------------------------------------------------- helpers
#: Set by the tests: where a planted pickle leaves its mark when it runs.
MARKER: list[Path] = []


def _planted_code(marker: str) -> str:
    Path(marker).write_text("planted code ran")
    return "planted"


class Planted:
    """A pickle that runs code (writes ``marker``) when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_planted_code, (str(self.marker),))


def _planted_file(tmp_path: Path) -> tuple[Path, Path]:
    """A joblib pickle that writes a marker when loaded; returns (file, marker)."""
    marker = tmp_path / "PWNED"
    planted = tmp_path / "planted.joblib"
    joblib.dump({"w": Planted(marker)}, planted)
    return planted, marker


def _good_model(big: bool) -> dict[str, Any]:
    n = 100_000 if big else 10  # above and below the one-read fast path
    return {"w": np.arange(n, dtype=np.float64), "bias": 0.5}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    np.testing.assert_array_equal(a["w"], b["w"])
    assert a["bias"] == b["bias"]


def _local_artifact(reg: ModelRegistry, name: str, sha256: str) -> Path:
    path = reg.backend.local_path(_state.artifact_key(name, sha256))
    assert path is not None
    return Path(path)


def _swap_after_check(monkeypatch: pytest.MonkeyPatch, target: Path, planted: Path) -> list[int]:
    """Right after the sha256 matched, rename the planted pickle onto ``target``."""
    swaps: list[int] = []
    real = serialization._check

    def check_then_swap(*args: Any) -> None:
        real(*args)
        if not swaps:
            os.replace(planted, target)
            swaps.append(1)

    monkeypatch.setattr(serialization, "_check", check_then_swap)
    return swaps


# ---------------------------------------------------------------------------- 1: local swap
@pytest.mark.parametrize("big", [False, True], ids=["small", "large"])
@pytest.mark.parametrize("mmap_mode", [None, "r", "c"])
def test_a_pickle_renamed_into_place_after_the_check_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool, mmap_mode: str | None
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    good = _good_model(big)
    mv = reg.save("m", good)
    path = _local_artifact(reg, "m", mv.sha256)
    planted, marker = _planted_file(tmp_path)
    swaps = _swap_after_check(monkeypatch, path, planted)
    loaded = reg.load("m", mv.version, mmap_mode=mmap_mode)
    assert swaps == [1]  # the swap did happen between check and load
    assert not marker.exists()
    _same(loaded, good)  # the very file that was hashed was unpickled
    # The path now holds the planted pickle: the next load hashes it and refuses it.
    monkeypatch.undo()
    with pytest.raises(IntegrityError):
        ModelRegistry(tmp_path / "reg").load("m", mv.version, mmap_mode=mmap_mode)
    with pytest.raises(IntegrityError):
        reg.load("m", mv.version, mmap_mode=mmap_mode)  # the memo is by fstat: no match
    assert not marker.exists()


def test_a_symlink_in_the_artifacts_place_is_refused_not_followed(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", _good_model(False))
    path = _local_artifact(reg, "m", mv.sha256)
    copy = tmp_path / "elsewhere.joblib"
    copy.write_bytes(path.read_bytes())  # even the right bytes: a link is not followed
    path.unlink()
    path.symlink_to(copy)
    for r in (reg, ModelRegistry(tmp_path / "reg")):
        with pytest.raises(StorageError, match="symlink"):
            r.load("m", mv.version)


# ---------------------------------------------------------------------------- 1: read cache
def _cached_registry(tmp_path: Path, **kwargs: Any) -> tuple[ModelRegistry, MemoryBackend]:
    backend = MemoryBackend()
    return ModelRegistry(backend, cache_dir=tmp_path / "cache", **kwargs), backend


@pytest.mark.parametrize("when", ["download", "hit"])
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_the_read_cache_serves_the_file_it_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str, mmap_mode: str | None
) -> None:
    good = _good_model(True)
    reg, backend = _cached_registry(tmp_path)
    mv = reg.save("m", good)
    if when == "hit":  # filled by one registry, then served to a fresh one (hashes it)
        reg.load("m", mv.version)
        reg = ModelRegistry(backend, cache_dir=tmp_path / "cache")
    cache = reg._loader.cache
    assert cache is not None
    target = Path(cache.path_for(mv.sha256))
    planted, marker = _planted_file(tmp_path)
    # After the cache has verified (and, on a download, published) the file and
    # before the registry unpickles it: the last steps of ``fetch`` in both cases.
    hook = "_evict" if when == "download" else "_remember"
    real = getattr(_cache.ReadCache, hook)
    swaps: list[int] = []

    def swap(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        if not swaps:
            os.replace(planted, target)
            swaps.append(1)
        return result

    monkeypatch.setattr(_cache.ReadCache, hook, swap)
    loaded = reg.load("m", mv.version, mmap_mode=mmap_mode)
    assert swaps == [1]
    assert not marker.exists()
    _same(loaded, good)
    # The planted file is now in the cache: a fresh registry discards it and downloads.
    monkeypatch.undo()
    _same(ModelRegistry(backend, cache_dir=tmp_path / "cache").load("m", mv.version), good)
    assert not marker.exists()


# ---------------------------------------------------------------------------- 2: mmap_mode
@pytest.mark.parametrize("bad", ["r+", "w+", "x", "R", "", 5, b"r", ["r"], True])
def test_mmap_mode_other_than_none_r_c_is_refused_before_anything_is_read(
    tmp_path: Path, bad: Any
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"plain": "no arrays at all"})
    with pytest.raises(InvalidInputError, match="mmap_mode"):
        reg.load("m", mv.version, mmap_mode=bad)
    with pytest.raises(InvalidInputError, match="mmap_mode"):  # not even the model is looked up
        reg.load("no-such-model", mmap_mode=bad)
    mem = ModelRegistry("memory://")
    mem.save("m", {"w": np.ones(3)})
    with pytest.raises(InvalidInputError, match="mmap_mode"):
        mem.load("m", "1.0.0", mmap_mode=bad)


def test_copy_on_write_map_never_changes_the_stored_artifact(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"w": np.zeros(100_000)})
    loaded = reg.load("m", mv.version, mmap_mode="c")
    loaded["w"][:] = 7.0  # private pages only
    del loaded
    assert reg.verify().ok
    fresh = ModelRegistry(tmp_path / "reg").load("m", mv.version)
    np.testing.assert_array_equal(fresh["w"], np.zeros(100_000))
    ro = reg.load("m", mv.version, mmap_mode="r")
    with pytest.raises(ValueError):
        ro["w"][0] = 1.0


def test_artifacts_are_stored_read_only_and_still_pruned_and_repaired(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    saved = [reg.save("m", {"w": np.full(1000, i)}) for i in range(3)]
    paths = [_local_artifact(reg, "m", mv.sha256) for mv in saved]
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o444}
    reg.save("m", {"w": np.full(1000, 2)})  # the same bytes again: stored once, still 0o444
    assert stat.S_IMODE(paths[2].stat().st_mode) == 0o444
    reg.deploy("m", "1.3.0")
    pruned = reg.prune("m", keep=1)
    assert [str(mv.version) for mv in pruned] == ["1.0.0", "1.1.0", "1.2.0"]
    assert not paths[0].exists() and not paths[1].exists()
    assert paths[2].exists()  # 1.2.0 shares its bytes with the deployed 1.3.0
    # An orphan artifact (a save that died before committing) is still repaired away.
    orphan = paths[0].parent / f"{'0' * 64}.joblib"
    orphan.write_bytes(b"left behind")
    orphan.chmod(0o444)
    report = reg.verify(repair=True, min_age=0)
    assert not orphan.exists(), report
    assert reg.verify().ok
    np.testing.assert_array_equal(reg.load("m")["w"], np.full(1000, 2))


# ---------------------------------------------------------------------------- 3: cache_dir
def test_cache_only_removes_what_it_wrote(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    report = root / "report.pdf"
    report.write_bytes(b"%PDF the user's own file")
    os.utime(report, (0, 0))  # the oldest file there: first in line for eviction
    reg, _backend = _cached_registry(tmp_path, cache_size=1)  # every insert evicts the rest
    cache = reg._loader.cache
    assert cache is not None
    for i in range(2):
        reg.save("x", {"w": np.full(1000, i)})
        reg.load("x", f"1.{i}.0")
    assert report.exists()
    sub = root / "modelversions"
    tag = (sub / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
    foreign = sub / "notes.txt"
    foreign.write_text("mine")
    shas = [reg.save("m", {"w": np.full(1000, i)}).sha256 for i in range(3)]
    shard = sub / shas[0][:2]
    shard.mkdir(exist_ok=True)
    foreign_in_shard = shard / "keep-me.txt"
    foreign_in_shard.write_text("mine too")
    old_layout = root / shas[1][:2] / shas[1]  # a file named like a cache entry, outside
    old_layout.parent.mkdir()
    old_layout.write_bytes(b"not in the cache's folder")
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        reg.load("m", v)
    assert report.exists()
    cached = [p for p in sub.rglob("*") if p.is_file() and p.name in shas]
    assert [p.name for p in cached] == [shas[2]]  # bounded: the others were evicted
    cache.clear()
    assert not any(p.name in shas for p in sub.rglob("*"))
    for kept in (report, foreign, foreign_in_shard, old_layout, sub / "CACHEDIR.TAG"):
        assert kept.exists(), kept


def test_cache_never_follows_or_deletes_through_a_symlink(tmp_path: Path) -> None:
    reg, backend = _cached_registry(tmp_path, cache_size=1)
    cache = reg._loader.cache
    assert cache is not None
    good = {"w": np.arange(1000.0)}
    a = reg.save("m", good)
    b = reg.save("m", {"w": np.zeros(1000)})
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious")
    # A link at an entry's name: not served, not followed; the download replaces the link.
    entry = Path(cache.path_for(a.sha256))
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.symlink_to(victim)
    np.testing.assert_array_equal(reg.load("m", "1.0.0")["w"], good["w"])
    assert victim.read_text() == "precious"
    assert not entry.is_symlink()
    # Links named like entries and shards are neither deleted through nor evicted.
    b_entry = Path(cache.path_for(b.sha256))
    b_entry.parent.mkdir(parents=True, exist_ok=True)
    named = outside / b.sha256
    named.write_bytes(b"x" * 100)
    sub = Path(cache.path_for(a.sha256)).parent.parent
    shard_link = sub / "ff"
    (outside / "ff").mkdir()
    planted_in_dir = outside / "ff" / ("ff" + "0" * 62)
    planted_in_dir.write_bytes(b"y" * 100)
    shard_link.symlink_to(outside / "ff", target_is_directory=True)
    link = sub / a.sha256[:2] / ("0" * 64)
    link.symlink_to(named)
    reg.load("m", "1.1.0")  # an insert: evicts what it owns beyond the bound
    cache.clear()
    for kept in (victim, named, planted_in_dir):
        assert kept.exists(), kept
    assert link.is_symlink() and shard_link.is_symlink()
    # A shard folder that is a symlink is refused rather than written through.
    target = Path(cache.path_for("ff" + "1" * 62)).parent
    assert target == shard_link
    fresh = ModelRegistry(backend, cache_dir=tmp_path / "cache")
    assert fresh._loader.cache is not None
    with pytest.raises(StorageError, match="symlink"):
        fresh._loader.cache.fetch(backend, "k", "ff" + "1" * 62, 1, "test")


# ---------------------------------------------------------------------------- 4: prune race
def _prune_before_open(
    monkeypatch: pytest.MonkeyPatch, reg: ModelRegistry, method: str, action: Any
) -> list[int]:
    """Run ``action`` (from another registry) when ``reg`` first reaches the artifact."""
    calls: list[int] = []
    backend = reg.backend
    real = getattr(backend, method)

    def racing(key: str, *args: Any, **kwargs: Any) -> Any:
        if "@artifacts/" in key and not calls:
            calls.append(1)
            action()
        return real(key, *args, **kwargs)

    monkeypatch.setattr(backend, method, racing)
    return calls


def _three_versions(reg: ModelRegistry) -> None:
    for i in range(3):
        reg.save("m", {"w": np.full(100, i)})
    reg.deploy("m", "1.2.0")


@pytest.mark.parametrize("store", ["local", "memory", "cache"])
@pytest.mark.parametrize("how", ["prune", "delete"])
def test_load_of_a_version_pruned_under_it_raises_artifact_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str, how: str
) -> None:
    if store == "local":
        reg = ModelRegistry(tmp_path / "reg")
        other = ModelRegistry(tmp_path / "reg")
        method = "local_path"
    else:
        backend = MemoryBackend()
        cache_dir = tmp_path / "cache" if store == "cache" else None
        reg = ModelRegistry(backend, cache_dir=cache_dir)
        other = ModelRegistry(backend)
        method = "open_read" if store == "cache" else "read"
    _three_versions(reg)
    reg.versions("m")  # resolved and cached by ``reg``

    def action() -> None:
        if how == "prune":
            assert [str(mv.version) for mv in other.prune("m", keep=1)] == ["1.0.0", "1.1.0"]
        else:
            other.delete("m", "1.0.0")

    calls = _prune_before_open(monkeypatch, reg, method, action)
    with pytest.raises(ArtifactPrunedError, match=f"{how}d while it was being loaded"):
        reg.load("m", "1.0.0")
    assert calls == [1]


def test_a_missing_artifact_of_a_live_version_is_still_integrity_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"w": 1})
    _local_artifact(reg, "m", mv.sha256).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        reg.load("m", mv.version)


def test_the_cache_builds_no_path_from_a_forged_sha256(tmp_path: Path) -> None:
    reg, backend = _cached_registry(tmp_path)
    cache = reg._loader.cache
    assert cache is not None
    backend.create("k", b"data")
    for forged in ("../../../escape", "AB" * 32, "0" * 63):
        with pytest.raises(IntegrityError, match="not a sha256"):
            cache.fetch(backend, "k", forged, 4, "test")
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
