"""Many writers, one truth: processes and threads racing on one registry.

Every change is an atomic create-if-absent of the next history entry, so concurrent
writers serialize through the log. These tests race real processes (``spawn``) and
threads on one folder and check what the log promises: no version lost or given
twice, one winner per explicit version, unbroken pointer chains, rules applied to
the state each change was committed on, and readers that never see a torn state.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import _workers
import pytest

from modelversions import ModelRegistry, Status, Version, _state
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

ROOT = Path(__file__).resolve().parent.parent


def assert_clean(root: Path) -> None:
    """Verify finds no damage, no temporaries are left, nothing is half-written."""
    report = ModelRegistry(root).verify()
    assert report.ok, str(report)
    assert [p for p in report.problems if p.kind == "temporary"] == [], str(report)
    assert os.listdir(root / ".tmp") == []


def raw_log(root: Path, name: str) -> list[dict[str, Any]]:
    """Every history entry of ``name`` as stored, read straight from the folder."""
    backend = LocalBackend(root)
    keys = backend.list(f"models/{name}/@log/")
    assert keys == [_state.log_key(name, i) for i in range(1, len(keys) + 1)], "log has a gap"
    return [_state.decode(backend.read(k), k) for k in keys]


# ---------------------------------------------------------------------- saves
def test_processes_auto_save_no_version_lost_or_given_twice(tmp_path: Path) -> None:
    root = str(tmp_path / "reg")
    ModelRegistry(root)
    results = _workers.run_together(_workers.save_many, [(root, "m", 50, tag) for tag in range(8)])
    got = [v for versions in results for v in versions]
    assert len(got) == 400
    assert len(set(got)) == 400, "a version was given to two saves"

    reg = ModelRegistry(root)
    listed = reg.versions("m")
    assert [str(mv.version) for mv in listed] == sorted(got, key=Version)
    for mv in listed:
        assert reg.load("m", mv.version) == {"tag": mv.tags["tag"], "i": mv.tags["i"]}
    # Each process's own saves got increasing versions, in the order it made them.
    for versions in results:
        assert [Version(v) for v in versions] == sorted(Version(v) for v in versions)
    assert_clean(tmp_path / "reg")


def test_processes_race_on_one_explicit_version_one_winner(tmp_path: Path) -> None:
    root = str(tmp_path / "reg")
    ModelRegistry(root)
    rounds = 20
    results = _workers.run_together(
        _workers.race_explicit, [(root, "m", rounds, tag) for tag in range(8)]
    )
    reg = ModelRegistry(root)
    for r in range(rounds):
        winners = [tag for tag, won in enumerate(results) if won[r]]
        assert len(winners) == 1, f"round {r + 1}: winners {winners}"
        mv = reg.get("m", f"{r + 1}.0.0")
        assert mv.tags["tag"] == winners[0]
        assert reg.load("m", mv.version) == {"round": r + 1, "tag": winners[0]}
    assert [str(mv.version) for mv in reg.versions("m")] == [f"{r}.0.0" for r in range(1, 21)]
    assert len(raw_log(tmp_path / "reg", "m")) == rounds
    # Losers' artifacts were written before they lost: harmless orphans, nothing else.
    report = reg.verify()
    assert report.ok, str(report)
    assert {p.kind for p in report.problems} <= {"orphan-artifact"}
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


# ---------------------------------------------------------------------- lifecycle
def check_history(reg: ModelRegistry, name: str) -> tuple[dict[Version, Status], dict[str, Any]]:
    """Replay ``history()`` and check every rule against the state each event saw.

    Returns the replayed statuses and pointers.
    """
    status: dict[Version, Status] = {}
    pointers: dict[str, Version] = {}
    for e in reg.history(name):
        where = f"event {e.seq} ({e})"
        if e.action == "save":
            assert e.version is not None
            status[e.version] = Status.CANDIDATE
        if e.action in _state.POINTER_ACTIONS:
            assert e.env is not None
            assert e.from_version == pointers.get(e.env), f"{where}: broken chain"
            assert e.to_version in status, f"{where}: deploys a missing version"
            before = status[e.to_version]
            if e.action == "deploy":
                assert before is not Status.FAILED or e.forced, (
                    f"{where}: deployed a failed version"
                )
            else:
                # A rollback built on a stale view could pick a version another process
                # had just failed: the rules must hold on the state it was committed on.
                assert before is Status.STABLE, f"{where}: rolled back to a {before} version"
        for c in e.changes:
            assert status[c.version] is c.old, f"{where}: {c} but it was {status[c.version]}"
            status[c.version] = c.new
        if e.action in _state.POINTER_ACTIONS:
            assert e.env is not None and e.to_version is not None
            pointers[e.env] = e.to_version
    return status, pointers


def test_processes_deploy_fail_rollback_history_is_one_truth(tmp_path: Path) -> None:
    root = str(tmp_path / "reg")
    reg = ModelRegistry(root)
    for i in range(10):
        reg.save("m", {"i": i})
    envs = ("production", "staging")
    for env in envs:
        reg.deploy("m", "1.0.0", env=env)
        reg.deploy("m", "1.1.0", env=env)
    results = _workers.run_together(
        _workers.lifecycle_ops, [(root, "m", 50, seed, envs) for seed in range(4)]
    )
    outcomes = sum((Counter(r) for r in results), Counter())
    assert sum(outcomes.values()) == 200
    # The race exercised every kind of change, refusals included.
    assert {"deploy", "mark_failed", "rollback"} <= set(outcomes), outcomes

    fresh = ModelRegistry(root)
    status, pointers = check_history(fresh, "m")
    assert status == {mv.version: mv.status for mv in fresh.versions("m")}
    assert pointers == {env: mv.version for env, mv in fresh.envs("m").items()}
    for env, mv in fresh.envs("m").items():
        assert fresh.load("m", env=env) == {"i": mv.version.minor}
    # Replaying the raw log reproduces what the registry reports.
    replayed = _state.replay("m", raw_log(tmp_path / "reg", "m"))
    assert replayed.seq == len(fresh.history("m"))
    assert [mv.to_dict() for mv in replayed.versions()] == [
        mv.to_dict() for mv in fresh.versions("m")
    ]
    assert replayed.pointers == pointers
    # The registry that was open the whole time catches up to the same state.
    assert [mv.to_dict() for mv in reg.versions("m")] == [
        mv.to_dict() for mv in fresh.versions("m")
    ]
    assert_clean(tmp_path / "reg")


def test_reader_never_sees_a_torn_state_while_two_processes_flip(tmp_path: Path) -> None:
    root = str(tmp_path / "reg")
    reg = ModelRegistry(root)
    expected = {}
    for i in range(8):
        mv = reg.save("m", {"i": i, "payload": list(range(i * 50))})
        expected[str(mv.version)] = {"i": i, "payload": list(range(i * 50))}
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        reg.deploy("m", v)

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    results: dict[str, Any] = {}

    def read() -> None:
        results["reader"] = _workers.run_together(
            _workers.read_loop, [(root, "m", stop, expected)]
        )[0]

    # The reader runs in its own process, started by a thread so that the writers
    # can be started (and awaited) here; `stop` ends it once the writers are done.
    reader = threading.Thread(target=read)
    reader.start()
    try:
        moves = _workers.run_together(
            _workers.flip_pointer, [(root, "m", 100, seed) for seed in range(2)]
        )
    finally:
        stop.set()
        reader.join()
    assert "reader" in results, "the reader process failed"
    out = results["reader"]
    assert out["errors"] == [], "\n".join(out["errors"])
    assert out["iterations"] > 0
    assert sum(moves) > 0
    _status, pointers = check_history(ModelRegistry(root), "m")
    current = ModelRegistry(root).current("m")
    assert current is not None and pointers["production"] == current.version
    assert_clean(tmp_path / "reg")


# ---------------------------------------------------------------------- threads
@pytest.mark.parametrize("kind", ["local", "memory"])
def test_threads_auto_save_through_one_registry(tmp_path: Path, kind: str) -> None:
    backend = LocalBackend(tmp_path / "reg") if kind == "local" else MemoryBackend()
    reg = ModelRegistry(backend)
    barrier = threading.Barrier(8)
    results: list[list[str]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                results[tag].append(
                    str(reg.save("m", {"tag": tag, "i": i}, tags={"tag": tag}).version)
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = [v for r in results for v in r]
    assert len(got) == 400 and len(set(got)) == 400
    other = ModelRegistry(backend)
    assert sorted(str(mv.version) for mv in other.versions("m")) == sorted(got)
    for mv in other.versions("m"):
        model = other.load("m", mv.version)
        assert model["tag"] == mv.tags["tag"]
    assert other.verify().ok
    if kind == "local":
        assert_clean(tmp_path / "reg")


# ---------------------------------------------------------------------- locks
class _Probe:
    """A model whose pickling, unpickling and check record whether the lock is held."""

    seen: list[tuple[str, bool]] = []  # noqa: RUF012 - written by the hooks below
    registry: ModelRegistry | None = None

    def __init__(self, value: int) -> None:
        self.value = value

    @classmethod
    def held(cls) -> bool:
        assert cls.registry is not None
        return bool(cls.registry._log.lock._is_owned())  # type: ignore[attr-defined]

    def __getstate__(self) -> dict[str, int]:
        type(self).seen.append(("pickle", self.held()))
        return {"value": self.value}

    def __setstate__(self, state: dict[str, int]) -> None:
        type(self).seen.append(("unpickle", self.held()))
        self.value = state["value"]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_no_registry_lock_is_held_across_user_code(tmp_path: Path, kind: str) -> None:
    backend = LocalBackend(tmp_path / "reg") if kind == "local" else MemoryBackend()
    reg = ModelRegistry(backend)
    _Probe.registry = reg
    _Probe.seen = []

    def check(model: _Probe) -> bool:
        _Probe.seen.append(("check", _Probe.held()))
        return model.value != 2

    reg.save("m", _Probe(1))
    reg.save("m", _Probe(2))
    reg.deploy("m", "1.0.0", check=check)
    with pytest.raises(Exception, match="failed its check"):
        reg.deploy("m", "1.1.0", check=check)
    reg.load("m", "1.0.0")
    kinds = {what for what, _held in _Probe.seen}
    assert kinds == {"pickle", "unpickle", "check"}
    assert [entry for entry in _Probe.seen if entry[1]] == [], "lock held across user code"


# ---------------------------------------------------------------------- benchmark
def test_benchmark_runs_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_concurrency.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=_workers.HANG_GUARD,
    )
    assert proc.returncode == 0, proc.stderr
    assert "saves/s" in proc.stdout
    assert "joblib.dump+fsync" in proc.stdout
