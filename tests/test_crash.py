"""Crashes: a writer SIGKILLed anywhere leaves the whole change or none of it.

A child process saves a numpy model, deploys it and rolls back in a loop; the
parent kills it with SIGKILL, then opens the folder with a new registry and checks
that nothing committed is damaged, that the deployed model loads, that the killed
write's leftovers are invisible to readers, and that ``verify(repair=True)`` removes
them. Two ways to pick the kill points:

* at random, after a delay drawn to cover a few cycles of the child's loop (the
  cycle is timed first, in this process, on the same model);
* deterministically, before each I/O call of one save-deploy-rollback cycle (the
  child counts the local backend's calls and SIGKILLs itself at call ``k``).

Children are forked by a ``forkserver`` (fast, and never a ``fork`` of this
multi-threaded process).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _workers
import numpy as np

from modelversions import ModelRegistry, Version

SIZE = 64 * 1024  # float64s: a 512 KiB artifact
TRIALS = 50
NAME = "m"


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "joblib", "modelversions", "_workers"])
    return ctx


def _versions(root: Path) -> list[Any]:
    reg = ModelRegistry(root)
    return reg.versions(NAME) if NAME in reg.models() else []


def check_after_crash(root: Path) -> set[str]:
    """What a new registry must see after a writer died; return the leftover kinds."""
    reg = ModelRegistry(root)
    report = reg.verify()
    assert report.ok, str(report)
    assert {p.kind for p in report.problems} <= {"temporary", "orphan-artifact"}, str(report)
    # Readers see only complete versions: each listed one has its artifact (verify
    # hashed them all); the newest and the deployed one load and match their record.
    versions = _versions(root)
    if versions:
        newest = reg.load(NAME, versions[-1].version)
        assert newest["w"][0] == versions[-1].metrics["counter"]
        current = reg.current(NAME)
        if current is not None:
            assert reg.load(NAME)["w"][0] == current.metrics["counter"]
    # The leftovers go with repair (the writer is dead), and only they. A temporary
    # younger than min_age is never removed (nor reported by the default verify()):
    # count against a dry run with the same min_age.
    planned = reg.verify(min_age=0)
    leftovers = {p.kind for p in planned.problems}
    assert leftovers <= {"temporary", "orphan-artifact"}, str(planned)
    repaired = reg.verify(repair=True, min_age=0)
    assert len(repaired.removed) == len(
        [p for p in planned.problems if p.kind in ("temporary", "orphan-artifact")]
    ), str(repaired)
    after = ModelRegistry(root).verify()
    assert after.ok and after.problems == (), str(after)
    assert os.listdir(root / ".tmp") == []
    assert [mv.to_dict() for mv in _versions(root)] == [mv.to_dict() for mv in versions]
    return leftovers


def _cycle_time() -> float:
    """The median time of one save-deploy-rollback cycle of the child's model."""
    with tempfile.TemporaryDirectory() as scratch:
        reg = ModelRegistry(scratch)
        weights = np.random.default_rng(0).random(SIZE)
        times = []
        for i in range(6):
            weights[0] = i
            start = time.perf_counter()
            mv = reg.save(NAME, {"w": weights}, metrics={"counter": float(i)})
            reg.deploy(NAME, mv.version)
            if i >= 2:
                reg.rollback(NAME)
            times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def test_sigkill_at_random_points_during_saves_and_rollbacks(tmp_path: Path) -> None:
    ctx = _context()
    rng = random.Random(1234)
    window = 3 * _cycle_time()
    stats: Counter[str] = Counter()
    root = tmp_path / "reg-0"
    for trial in range(TRIALS):
        if trial % 10 == 0:  # a fresh folder now and then keeps verify's hashing cheap
            root = tmp_path / f"reg-{trial}"
            ModelRegistry(root)
        before = len(_versions(root))
        ready = ctx.Event()
        child = ctx.Process(
            target=_workers.crash_loop, args=(str(root), NAME, trial + 1, SIZE, ready)
        )
        child.start()
        try:
            assert ready.wait(_workers.HANG_GUARD), "the child never started"
            time.sleep(rng.uniform(0, window))
        finally:
            child.kill()
            child.join()
        assert child.exitcode == -signal.SIGKILL
        leftovers = check_after_crash(root)
        stats.update(leftovers or {"clean"})
        if len(_versions(root)) > before:
            stats["committed a save"] += 1
    print(f"\n{TRIALS} kills, window {window * 1000:.1f} ms: {dict(stats)}")
    # The kills landed inside the loop: some after commits, some inside a write.
    assert stats["committed a save"] > 0, stats
    assert stats["temporary"] + stats["orphan-artifact"] > 0, stats


def _template(root: Path) -> None:
    """A model with three versions deployed in turn (so rollback has a target)."""
    reg = ModelRegistry(root)
    weights = np.random.default_rng(1).random(SIZE)
    for i in range(3):
        weights[0] = -i - 1
        reg.save(NAME, {"w": weights}, metrics={"counter": float(weights[0])})
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        reg.deploy(NAME, v)


def _actions(root: Path) -> list[str]:
    return [e.action for e in ModelRegistry(root).history(NAME)]


def test_sigkill_before_every_io_call_of_save_deploy_rollback(tmp_path: Path) -> None:
    template = tmp_path / "template"
    _template(template)
    base = _actions(template)
    # Count the cycle's I/O calls in this process, on a copy of the template.
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    with _workers.IOTrap(calls=_workers.KILL_CALLS) as trap:
        _workers.crash_cycle(ModelRegistry(clean), NAME, np.random.default_rng(7).random(SIZE))
    n = trap.count
    full = _actions(clean)
    assert full == [*base, "save", "deploy", "rollback"]

    ctx = _context()
    committed = []
    for k in range(1, n + 1):
        root = tmp_path / f"k{k}"
        shutil.copytree(template, root)
        done = ctx.Event()
        child = ctx.Process(target=_workers.crash_at_call, args=(str(root), NAME, k, SIZE, done))
        child.start()
        child.join(_workers.HANG_GUARD)
        assert child.exitcode == -signal.SIGKILL, f"call {k} of {n}: {trap.trace[k - 1]}"
        assert not done.is_set()
        check_after_crash(root)
        actions = _actions(root)
        # Whole changes or none: the history is a prefix of the clean cycle's.
        assert actions == full[: len(actions)] and len(actions) >= len(base)
        committed.append(len(actions) - len(base))
        shutil.rmtree(root)
    # Later kill points never commit less; the last one comes after the final commit.
    assert committed == sorted(committed), committed
    assert committed[0] == 0 and committed[-1] == 3
    assert Version("1.3.0") in {mv.version for mv in ModelRegistry(clean).versions(NAME)}
