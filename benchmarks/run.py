"""Benchmarks: modelversions against the joblib floor and against MLflow.

One entry point runs every scenario and writes ``docs/benchmarks.md`` plus a chart of
the ratios next to it (``docs/benchmarks.png``)::

    python -m pip install -e '.[bench]'       # MLflow, matplotlib, scikit-learn, numpy
    python benchmarks/run.py                  # full run (about 5 minutes on 2 cores)
    python benchmarks/run.py --quick --output /tmp/bench.md   # smoke test, seconds

Method: contenders alternate inside each scenario (A, B, C, A, B, C, ...) so drifting
machine load hits them alike; every figure is a median with min and max; each target is
a ratio of two figures measured in the same run. Large artifacts are timed after a
warm-up that touches fresh memory and flushes dirty pages (``os.sync``), because on the
machines this project runs on, memory given back to the host is slow to touch again.
Peak memory is measured in fresh subprocesses (``resource.getrusage`` maxrss).

MLflow runs embedded (sqlite store, local artifacts), with telemetry off and explicit
``pip_requirements`` (without them MLflow infers requirements in a subprocess, ~2.7 s
per model). It is skipped when not importable (and in ``--quick`` unless ``--mlflow``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmark the checkout this script belongs to

MiB = 1 << 20
GiB = 1 << 30
MS = 1e3


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass
class Series:
    """Repeated measurements of one contender in one scenario (seconds or bytes)."""

    scenario: str
    contender: str
    samples: list[float] = dataclasses.field(default_factory=list)
    unit: str = "s"
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def fmt(self, value: float | None = None) -> str:
        return _fmt(self.median if value is None else value, self.unit)


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        ms = value * MS
        if ms >= 1000:
            return f"{value:.2f} s"
        if ms >= 100:
            return f"{ms:.0f} ms"
        if ms >= 10:
            return f"{ms:.1f} ms"
        if ms >= 1:
            return f"{ms:.2f} ms"
        return f"{ms:.3f} ms"
    if unit == "B":
        return f"{value / MiB:.1f} MiB" if value < 10 * GiB else f"{value / GiB:.2f} GiB"
    return f"{value:g} {unit}"


@dataclasses.dataclass
class Target:
    """One target of the issue: a ratio (or a budget) and whether it is met."""

    group: str  # "mlflow" (speed-up, higher is better) or "floor" (cost, lower is better)
    title: str
    value: float  # the ratio plotted and compared with goal
    goal: float
    higher_is_better: bool
    detail: str  # the figures behind the ratio
    goal_text: str
    value_text: str
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal


class Results:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.targets: list[Target] = []
        self.notes: dict[str, list[str]] = {}
        self.facts: dict[str, str] = {}
        self.hidden: dict[str, str] = {}  # used in explanations, not listed

    def add(self, scenario: str, contender: str, value: float, unit: str = "s") -> None:
        key = (scenario, contender)
        if key not in self.series:
            self.series[key] = Series(scenario, contender, unit=unit)
        self.series[key].samples.append(value)

    def get(self, scenario: str, contender: str) -> Series | None:
        return self.series.get((scenario, contender))

    def __getitem__(self, key: tuple[str, str]) -> Series:
        return self.series[key]

    def note(self, scenario: str, text: str) -> None:
        self.notes.setdefault(scenario, []).append(text)

    def ratio_target(
        self,
        group: str,
        title: str,
        ours: tuple[str, str],
        other: tuple[str, str],
        goal: float,
        *,
        note: str = "",
    ) -> Target | None:
        """``other/ours`` (group "mlflow", >= goal) or ``ours/other`` (group "floor", <= goal)."""
        a, b = self.get(*ours), self.get(*other)
        if a is None or b is None:
            return None
        if group == "mlflow":
            value = b.median / a.median
            detail = f"{b.contender} {b.fmt()} / {a.contender} {a.fmt()}"
            target = Target(
                group, title, value, goal, True, detail, f">= {goal:g}x", f"{value:.1f}x", note
            )
        else:
            value = a.median / b.median
            detail = f"{a.contender} {a.fmt()} / {b.contender} {b.fmt()}"
            target = Target(
                group, title, value, goal, False, detail, f"<= {goal:g}x", f"{value:.2f}x", note
            )
        self.targets.append(target)
        return target

    def budget_target(
        self, title: str, value: float, budget: float, unit: str, detail: str, note: str = ""
    ) -> Target:
        """``value`` must stay under ``budget``; plotted as the fraction of the budget used."""
        target = Target(
            "budget",
            title,
            value / budget,
            1.0,
            False,
            detail,
            f"< {_fmt(budget, unit)}",
            _fmt(value, unit),
            note,
        )
        self.targets.append(target)
        return target


# ----------------------------------------------------------------------------- helpers
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def settle(nbytes: int, scratch: Path) -> None:
    """Make the next timed step start from the same state for every contender.

    Flushes dirty pages (so a step does not pay for an earlier step's writeback) and,
    for large steps, writes then deletes a scratch file and touches then frees anonymous
    memory: memory the host reclaimed is slow to touch again here (~0.4-1 GiB/s), and
    pages freed a moment ago are not yet reclaimed.
    """
    if nbytes >= 8 * MiB:
        size = nbytes + nbytes // 2
        with open(scratch, "wb") as fh:
            block = b"\x01" * min(size, 64 * MiB)
            left = size
            while left > 0:
                left -= fh.write(block[: min(left, len(block))])
        buf = b"\x02" * size
        del buf
        os.sync()
        os.unlink(scratch)
    else:
        os.sync()
    gc.collect()


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds ``fn(*args, **kwargs)`` took, and what it returned."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence MLflow's progress lines and warnings while it is being timed."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def small_model() -> Any:
    """A fitted scikit-learn classifier (about 1 KiB pickled), or a dict without sklearn."""
    try:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return {"coef": [[0.1 * i for i in range(4)] for _ in range(3)], "intercept": [0.0] * 3}
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x, y)


def large_model(nbytes: int, seed: int = 0) -> Any:
    """A scikit-learn linear model whose coefficients weigh ``nbytes`` (float64)."""
    import numpy as np

    weights = np.random.default_rng(seed).random(max(nbytes // 8, 1))
    try:
        from sklearn.linear_model import LinearRegression
    except ImportError:
        return {"coef_": weights}
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    model.coef_ = weights
    return model


def weights_of(model: Any) -> Any:
    return model["coef_"] if isinstance(model, dict) else model.coef_


def fresh_load(path: Path, name: str, **kwargs: Any) -> Any:
    """Resolve and load with a new ModelRegistry, as a serving process starting up does."""
    from modelversions import ModelRegistry

    return ModelRegistry(path).load(name, **kwargs)


def fresh_versions(path: Path, name: str) -> Any:
    from modelversions import ModelRegistry

    return ModelRegistry(path).versions(name)


def durable_create(folder: Path, i: int) -> None:
    """The bare crash-safe create a history entry needs: no registry logic around it."""
    tmp = folder / f"{i}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"{}" * 200)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(tmp, folder / f"{i}.json")
    os.unlink(tmp)
    fsync_dir(folder)


def floor_dump(model: Any, path: Path) -> None:
    """The floor for a save: ``joblib.dump`` into a file, then ``fsync`` it."""
    import joblib

    with open(path, "wb") as fh:
        joblib.dump(model, fh)
        fh.flush()
        os.fsync(fh.fileno())


def size_label(nbytes: int) -> str:
    return f"{nbytes // GiB} GB" if nbytes >= GiB else f"{max(nbytes // MiB, 1)} MB"


def versions_of(packages: list[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ----------------------------------------------------------------------------- MLflow
class MLflowPeer:
    """MLflow 3 embedded: a sqlite tracking/registry store and local artifacts."""

    def __init__(self, root: Path) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        import logging

        with quiet():
            import mlflow
            import mlflow.sklearn
            from mlflow import MlflowClient

        for name in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.mlflow = mlflow
        self.version = mlflow.__version__
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        with quiet():
            experiment = mlflow.create_experiment(
                "bench", artifact_location=(root / "artifacts").as_uri()
            )
            mlflow.set_experiment(experiment_id=experiment)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        import sklearn

        self.requirements = [f"scikit-learn=={sklearn.__version__}"]

    def log_register(self, name: str, model: Any) -> str:
        """``log_model`` + registration: a new version of ``name``; returns the version."""
        mlflow = self.mlflow
        with quiet(), mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                pip_requirements=self.requirements,
                serialization_format="pickle",
                registered_model_name=name,
            )
        return str(info.registered_model_version)

    def deploy(self, name: str, version: str, alias: str = "production") -> None:
        """Only move the alias (what ``deploy`` does to the pointer)."""
        self.client.set_registered_model_alias(name, alias, version)

    def deploy_equivalent(self, name: str, version: str, alias: str = "production") -> None:
        """What ``deploy`` does: move the alias; the replaced candidate becomes stable."""
        client = self.client
        try:
            current = client.get_model_version_by_alias(name, alias)
        except Exception:  # no alias yet
            current = None
        client.set_registered_model_alias(name, alias, version)
        replaced = current is not None and current.version != version
        if replaced and current.tags.get("status", "candidate") == "candidate":
            client.set_model_version_tag(name, current.version, "status", "stable")

    def mark(self, name: str, version: str, status: str) -> None:
        """Only set the status tag."""
        self.client.set_model_version_tag(name, version, "status", status)

    def mark_failed_equivalent(self, name: str, version: str, reason: str) -> None:
        """What ``mark_failed`` records: the status and the reason."""
        self.client.set_model_version_tag(name, version, "status", "failed")
        self.client.set_model_version_tag(name, version, "failure_reason", reason)

    def rollback(self, name: str) -> str:
        """By hand: tag the deployed version failed, find the latest stable below it, move."""
        client = self.client
        current = client.get_model_version_by_alias(name, "production")
        client.set_model_version_tag(name, current.version, "status", "failed")
        stable = client.search_model_versions(f"name='{name}' and tags.status='stable'")
        below = [int(mv.version) for mv in stable if int(mv.version) < int(current.version)]
        target = str(max(below))
        client.set_registered_model_alias(name, "production", target)
        return target

    def load(self, name: str) -> Any:
        with quiet():
            return self.mlflow.sklearn.load_model(f"models:/{name}@production")

    def list(self, name: str) -> list[Any]:
        return list(self.client.search_model_versions(f"name='{name}'"))


# ----------------------------------------------------------------------------- config
@dataclasses.dataclass
class Config:
    quick: bool
    workdir: Path
    output: Path
    chart: Path
    mlflow: MLflowPeer | None
    small_repeats: int
    op_repeats: int
    scale_sizes: tuple[int, ...]
    large_sizes: tuple[int, ...]
    import_runs: int
    memory_sizes: tuple[int, ...]

    def path(self, *parts: str) -> Path:
        p = self.workdir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


# ----------------------------------------------------------------------------- scenarios
def bench_small(cfg: Config, res: Results) -> dict[str, Any]:
    """Small save, lifecycle calls and resolve+load, against the floor and MLflow."""
    import joblib

    from modelversions import ModelRegistry
    from modelversions._commit import _SNAPSHOT_EVERY as SNAPSHOT_EVERY_SMALL

    model = small_model()
    reg_dir = cfg.path("small", "registry")
    reg = ModelRegistry(reg_dir)
    floor_dir = cfg.path("small", "floor", "x").parent
    peer = cfg.mlflow
    # warm-ups (first call costs: folders, MLflow's database schema)
    reg.save("small", model)
    floor_dump(model, floor_dir / "warm.joblib")
    if peer is not None:
        peer.log_register("small", model)
    gc.collect()
    log(f"  small save x{cfg.small_repeats}")
    for i in range(cfg.small_repeats):
        res.add("small save", "modelversions", timed(reg.save, "small", model)[0])
        path = floor_dir / f"{i}.joblib"
        res.add("small save", "joblib.dump+fsync", timed(floor_dump, model, path)[0])
        if peer is not None:
            res.add("small save", "MLflow", timed(peer.log_register, "small", model)[0])

    # listing all versions (the save registries now hold small_repeats + 1 versions)
    count = len(reg.versions("small"))
    scen = f"list {count} versions"
    for _ in range(cfg.op_repeats):
        res.add(scen, "modelversions", timed(reg.versions, "small")[0])
        res.add(
            scen,
            "modelversions (fresh registry)",
            timed(fresh_versions, reg_dir, "small")[0],
        )
        if peer is not None:
            res.add(scen, "MLflow", timed(peer.list, "small")[0])

    # lifecycle on a model with 10 versions, the same for both
    life_dir = cfg.path("life", "registry")
    life = ModelRegistry(life_dir)
    versions = [str(life.save("life", model).version) for _ in range(10)]
    peer_versions = [peer.log_register("life", model) for _ in range(10)] if peer else []
    n = cfg.op_repeats
    log(f"  deploy / mark_failed / rollback x{n}")
    # One loop visits every operation, so a burst of disk activity from elsewhere hits
    # them all alike. deploy moves "staging" between versions 1 and 2, mark_failed marks
    # versions 3..8, rollback moves "production" from 10 back to 9.
    bare_dir = cfg.path("life", "bare", "x").parent
    base, top = versions[-2], versions[-1]
    life.mark_stable("life", base)
    life.deploy("life", base)
    if peer is not None:
        peer.mark("life", peer_versions[-2], "stable")
        peer.deploy("life", peer_versions[-2])
    for i in range(n):
        v = versions[i % 2]
        res.add("deploy", "modelversions", timed(life.deploy, "life", v, env="staging")[0])
        res.add("durable commit", "write+fsync+link+fsync folder",
                timed(durable_create, bare_dir, i)[0])  # fmt: skip
        if peer is not None:
            pv = peer_versions[i % 2]
            res.add("deploy", "MLflow",
                    timed(peer.deploy_equivalent, "life", pv, "staging")[0])  # fmt: skip
            res.add("deploy", "MLflow, alias move only",
                    timed(peer.deploy, "life", pv, "staging")[0])  # fmt: skip
        v = versions[2 + i % 6]
        res.add("mark_failed", "modelversions",
                timed(life.mark_failed, "life", v, reason="bench")[0])  # fmt: skip
        if peer is not None:
            pv = peer_versions[2 + i % 6]
            res.add("mark_failed", "MLflow",
                    timed(peer.mark_failed_equivalent, "life", pv, "bench")[0])  # fmt: skip
            res.add("mark_failed", "MLflow, status tag only",
                    timed(peer.mark, "life", pv, "failed")[0])  # fmt: skip
        life.mark_stable("life", top)
        life.deploy("life", top)
        t, back = timed(life.rollback, "life")
        assert str(back.version) == base, back
        res.add("rollback", "modelversions", t)
        if peer is not None:
            peer.mark("life", peer_versions[-1], "stable")
            peer.deploy("life", peer_versions[-1])
            t, target = timed(peer.rollback, "life")
            assert target == peer_versions[-2], target
            res.add("rollback", "MLflow", t)

    seq = life._log.states["life"].seq  # the history a fresh registry reads to resolve
    every = SNAPSHOT_EVERY_SMALL  # the model has few versions
    res.hidden["replayed"] = (
        f"The model loaded by `resolve + load` has {seq} history entries; a fresh registry "
        f"reads the snapshot of entry {seq - seq % every} and replays the {seq % every} "
        "after it."
    )
    # resolve + load the deployed model (now `base` on both)
    art = life.current("life")
    assert art is not None
    ref = floor_dir / "deployed.joblib"
    joblib.dump(model, ref)
    life.load("life")  # the warm registry has verified this artifact once
    log(f"  resolve + load x{n}")
    for _ in range(n):
        res.add("resolve + load", "modelversions (warm registry)", timed(life.load, "life")[0])
        res.add(
            "resolve + load",
            "modelversions (fresh registry)",
            timed(fresh_load, life_dir, "life")[0],
        )
        res.add("resolve + load", "joblib.load", timed(joblib.load, ref)[0])
        if peer is not None:
            res.add("resolve + load", "MLflow", timed(peer.load, "life")[0])

    # what a fresh registry pays to resolve, by entries written since the last snapshot
    sweep = ModelRegistry(life_dir)
    sweep.save("sweep", model)
    sweep.save("sweep", model)
    sweep.deploy("sweep", "1.0.0")
    for after in (0, every // 2, every - 1):
        while (
            sweep.current("sweep") is not None and sweep._log.states["sweep"].seq % every != after
        ):
            sweep.mark_failed("sweep", "1.1.0", reason="pad")
        for _ in range(n // 2):
            res.add("fresh registry, resolve + load", f"{after} entries after the snapshot",
                    timed(fresh_load, life_dir, "sweep")[0])  # fmt: skip

    res.ratio_target(
        "floor",
        "small save vs joblib.dump+fsync",
        ("small save", "modelversions"),
        ("small save", "joblib.dump+fsync"),
        5,
        note="save also writes the version's record (fsync'd, atomic) and sha256",
    )
    if peer is not None:
        res.ratio_target(
            "mlflow",
            "small save vs MLflow log+register",
            ("small save", "modelversions"),
            ("small save", "MLflow"),
            20,
        )
        single = {"deploy": "MLflow, alias move only", "mark_failed": "MLflow, status tag only"}
        for op in ("deploy", "mark_failed", "rollback"):
            target = res.ratio_target(
                "mlflow", f"{op} vs MLflow", (op, "modelversions"), (op, "MLflow"), 10
            )
            bare = res.get(op, single.get(op, ""))
            if target is not None and bare is not None:
                ours = res[(op, "modelversions")]
                target.note = (
                    f"against {bare.contender} ({bare.fmt()}): {bare.median / ours.median:.1f}x"
                )
        for who in ("warm registry", "fresh registry"):
            res.ratio_target(
                "mlflow",
                f"resolve + load ({who}) vs MLflow",
                ("resolve + load", f"modelversions ({who})"),
                ("resolve + load", "MLflow"),
                10,
            )
    res.note(
        "deploy",
        "MLflow equivalents (same outcome): deploy = read the aliased version, "
        "`set_registered_model_alias`, tag the replaced version stable if it was a "
        "candidate (never, in this loop: it alternates between two stable versions); "
        "mark_failed = `set_model_version_tag` for the status and for the reason; rollback "
        "= read the aliased version, tag it failed, `search_model_versions` for stable "
        "ones, pick the latest below, move the alias. The single calls (alias move only, "
        "status tag only) are listed too. Each modelversions call also records who, when "
        "and why in the history log, as one fsync'd atomic commit (two fsyncs: the entry "
        "and its folder).",
    )
    return {"artifact": art}


def bench_scale(cfg: Config, res: Results) -> None:
    """Rollback (and deploy, mark_failed) at 10 ... 10,000 versions; versions() at the top."""
    from modelversions import ModelRegistry
    from modelversions.backends.local import LocalBackend

    sizes = cfg.scale_sizes
    for count in sizes:
        path = cfg.path("scale", f"n{count}")
        log(f"  building {count:,} versions")
        build = ModelRegistry(LocalBackend(path, durable=False))
        start = time.perf_counter()
        for i in range(count):
            build.save("m", {"w": i})
        elapsed = time.perf_counter() - start
        res.facts[f"build {count}"] = (
            f"{count:,} versions saved in {elapsed:.1f} s ({count / elapsed:,.0f}/s, "
            "public API, `LocalBackend(path, durable=False)`)"
        )
        reg = ModelRegistry(path)  # durable, as in production
        vs = [str(mv.version) for mv in reg.versions("m")]
        base, top = vs[-2], vs[-1]
        reg.mark_stable("m", base)
        reg.deploy("m", base)
        scen = f"rollback @ {count:,} versions"
        reps = cfg.op_repeats * 2
        for _ in range(reps):
            reg.mark_stable("m", top)
            reg.deploy("m", top)
            res.add(scen, "modelversions", timed(reg.rollback, "m")[0])
            res.add(
                f"deploy @ {count:,} versions",
                "modelversions",
                timed(reg.deploy, "m", vs[0])[0],
            )
            reg.deploy("m", base)
            res.add(
                f"mark_failed @ {count:,} versions",
                "modelversions",
                timed(reg.mark_failed, "m", vs[1], reason="bench")[0],
            )

    small, big = sizes[0], sizes[-1]
    a = res[(f"rollback @ {small:,} versions", "modelversions")]
    b = res[(f"rollback @ {big:,} versions", "modelversions")]
    res.targets.append(
        Target(
            "floor",
            f"rollback at {big:,} vs {small:,} versions",
            b.median / a.median,
            2.0,
            False,
            f"{b.fmt()} / {a.fmt()} (means {b.fmt(b.mean)} / {a.fmt(a.mean)})",
            "<= 2x",
            f"{b.median / a.median:.2f}x",
            "the mean includes the snapshot written every 64 changes",
        )
    )

    # versions() on the biggest registry: cold (fresh registry) and warm
    path = cfg.workdir / "scale" / f"n{big}"
    scen = f"versions() @ {big:,}"
    warm = ModelRegistry(path)
    warm.versions("m")
    for _ in range(cfg.op_repeats):
        gc.collect()
        t, got = timed(fresh_versions, path, "m")
        res.add(scen, "cold (fresh ModelRegistry)", t)
        res.add(scen, "warm", timed(warm.versions, "m")[0])
    assert len(got) == big
    for _ in range(3 if cfg.quick else 5):
        out = run_child(cfg, {"mode": "versions", "path": str(path)})
        res.add(scen, "cold (fresh process)", out["seconds"])
    for label in ("cold (fresh ModelRegistry)", "warm"):
        s = res[(scen, label)]
        res.budget_target(
            f"versions() at {big:,} versions, {label}",
            s.median,
            0.1,
            "s",
            f"median of {len(s.samples)}, max {s.fmt(max(s.samples))}",
        )


def bench_large(cfg: Config, res: Results) -> None:
    """Save and load of large models against joblib.dump+fsync and joblib.load."""
    scratch = cfg.path("scratch.bin")
    for nbytes in cfg.large_sizes:
        bench_large_one(cfg, res, nbytes, scratch)
    if scratch.exists():
        scratch.unlink()


def bench_large_one(cfg: Config, res: Results, nbytes: int, scratch: Path) -> None:
    import joblib
    import numpy as np

    from modelversions import ModelRegistry, serialization

    label = size_label(nbytes)
    reps = 2 if nbytes >= GiB else (3 if cfg.quick else 9)
    log(f"  {label}: save and load x{reps}")
    model = large_model(nbytes)
    weights = weights_of(model)
    reg_dir = cfg.path(f"large-{nbytes}", "registry")
    reg = ModelRegistry(reg_dir)
    floor = cfg.path(f"large-{nbytes}", "floor.joblib")
    peer = cfg.mlflow if nbytes < GiB and not cfg.quick else None
    peer_name = f"big{label.replace(' ', '')}"
    save, load = f"save {label}", f"load {label}"
    mv = None
    peer_version = ""
    for i in range(reps):
        weights[0] = i  # a new artifact each time: no deduplication
        settle(nbytes, scratch)
        res.add(save, "joblib.dump+fsync", timed(floor_dump, model, floor)[0])
        floor.unlink()
        settle(nbytes, scratch)
        t, mv = timed(reg.save, "big", model)
        res.add(save, "modelversions", t)
        if peer is not None:
            settle(nbytes, scratch)
            t, peer_version = timed(peer.log_register, peer_name, model)
            res.add(save, "MLflow", t)
    assert mv is not None
    reg.deploy("big", mv.version)
    joblib.dump(model, floor)  # the same bytes joblib.load reads below
    del model, weights
    gc.collect()
    warm = ModelRegistry(reg_dir)
    warm.load("big")  # verified once: later loads hit the verified-file memo
    art = reg.backend.local_path(f"models/big/@artifacts/{mv.sha256}.joblib")
    assert art is not None
    if peer is not None:
        peer.deploy(peer_name, peer_version)
    contenders: list[tuple[str, Callable[[], Any]]] = [
        ("joblib.load", partial(joblib.load, floor)),
        ("modelversions, first load (sha256 + load)", partial(fresh_load, reg_dir, "big")),
        ("modelversions, repeated load", partial(warm.load, "big")),
        ("sha256 of the file alone", partial(serialization.hash_file, art)),
        ("joblib.load mmap_mode='r'", partial(joblib.load, floor, mmap_mode="r")),
        (
            "modelversions mmap_mode='r', first load",
            partial(fresh_load, reg_dir, "big", mmap_mode="r"),
        ),
        ("modelversions mmap_mode='r', repeated", partial(warm.load, "big", mmap_mode="r")),
    ]
    if peer is not None:
        contenders.append(("MLflow", partial(peer.load, peer_name)))
    for _ in range(reps):
        for contender, fn in contenders:
            settle(nbytes, scratch)
            t, out = timed(fn)
            res.add(load, contender, t)
            if "mmap" in contender and "modelversions" in contender:
                assert isinstance(weights_of(out), np.memmap), type(weights_of(out))
            del out
    # the same files read from the disk (page cache dropped), as after a reboot
    cold = f"load {label} from disk"
    for _ in range(2 if cfg.quick else 3):
        for contender, fn in contenders[:2]:
            settle(nbytes, scratch)
            for path in (floor, Path(art)):
                drop_cache(path)
            t, out = timed(fn)
            res.add(cold, contender, t)
            del out
    first = "modelversions, first load (sha256 + load)"
    res.ratio_target(
        "floor",
        f"save {label} vs joblib.dump+fsync",
        (save, "modelversions"),
        (save, "joblib.dump+fsync"),
        1.2,
    )
    res.ratio_target(
        "floor",
        f"load {label} (sha256 verified) vs joblib.load",
        (load, first),
        (load, "joblib.load"),
        1.5,
    )
    res.ratio_target(
        "floor",
        f"load {label}, repeated (memo) vs joblib.load",
        (load, "modelversions, repeated load"),
        (load, "joblib.load"),
        1.1,
    )
    res.ratio_target(
        "floor",
        f"load {label} from disk (sha256 verified) vs joblib.load",
        (cold, first),
        (cold, "joblib.load"),
        1.5,
        note="page cache dropped before each load",
    )
    shutil.rmtree(reg_dir.parent)


def drop_cache(path: Path) -> None:
    """Evict a (clean) file from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sha256_speed() -> float:
    """Bytes per second hashlib's sha256 reaches on this machine (64 MiB in memory)."""
    data = os.urandom(64 * MiB)
    best = min(timed(hashlib.sha256, data)[0] for _ in range(3))
    return len(data) / best


# ----------------------------------------------------------------------------- memory
def bench_memory(cfg: Config, res: Results) -> None:
    """Peak RSS of save and load in fresh processes: modelversions vs plain joblib."""
    for nbytes in cfg.memory_sizes:
        label = size_label(nbytes)
        reps = 1 if nbytes >= GiB or cfg.quick else 3
        log(f"  peak memory {label} x{reps}")
        base = cfg.workdir / f"mem-{nbytes}"
        base.mkdir(parents=True, exist_ok=True)
        reg = str(base / "registry")
        floor = str(base / "floor.joblib")
        for _ in range(reps):
            modes = ["save-joblib", "save-mv", "load-joblib", "load-mv"]
            if not cfg.quick:
                modes += ["load-joblib-mmap", "load-mv-mmap"]
            for mode in modes:
                out = run_child(
                    cfg, {"mode": mode, "size": nbytes, "registry": reg, "floor": floor}
                )
                res.add(f"peak RSS, {label}", mode, out["peak"], unit="B")
                res.add(f"RSS added, {label}", mode, out["peak"] - out["base"], unit="B")
        for op in ("save", "load"):
            res.ratio_target(
                "floor",
                f"peak memory, {op} {label} vs joblib",
                (f"peak RSS, {label}", f"{op}-mv"),
                (f"peak RSS, {label}", f"{op}-joblib"),
                1.1,
            )
        if cfg.mlflow is not None and nbytes < GiB:
            for mode in ("save-load-mv", "save-load-mlflow"):
                out = run_child(cfg, {"mode": mode, "size": nbytes, "registry": reg + "-sl"})
                res.add(f"peak RSS, {label}", mode, out["peak"], unit="B")
        shutil.rmtree(base)


def run_child(cfg: Config, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cfg.workdir,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['mode']} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def child(spec: dict[str, Any]) -> None:
    """Runs in a fresh process: one operation, then its peak RSS (bytes) as JSON."""
    mode = spec["mode"]

    def rss() -> int:
        """Peak resident memory of this process so far, in bytes."""
        # VmHWM belongs to this program's memory; ru_maxrss on Linux also keeps the peak
        # of the process image before exec (the big parent this child was forked from).
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    if mode == "versions":
        from modelversions import ModelRegistry

        start = time.perf_counter()
        ModelRegistry(spec["path"]).versions("m")
        print(json.dumps({"seconds": time.perf_counter() - start}))
        return
    import joblib
    import numpy  # both contenders need numpy: import it before the baseline

    from modelversions import ModelRegistry

    nbytes = spec["size"]
    if mode.startswith("save"):
        # a plain dict: no scikit-learn import in the baseline, the artifact dominates
        model: Any = {"coef_": numpy.random.default_rng(0).random(max(nbytes // 8, 1))}
        if mode == "save-load-mlflow" or mode == "save-load-mv":
            model = large_model(nbytes)  # MLflow's sklearn flavour needs an estimator
        base = rss()
        if mode == "save-joblib":
            floor_dump(model, Path(spec["floor"]))
        elif mode == "save-mv":
            reg = ModelRegistry(spec["registry"])
            mv = reg.save("big", model)
            reg.deploy("big", mv.version)
        elif mode == "save-load-mv":
            reg = ModelRegistry(spec["registry"])
            mv = reg.save("big", model)
            reg.deploy("big", mv.version)
            del model
            gc.collect()
            ModelRegistry(spec["registry"]).load("big")
        elif mode == "save-load-mlflow":
            peer = MLflowPeer(Path(spec["registry"]))
            version = peer.log_register("big", model)
            peer.deploy("big", version)
            del model
            gc.collect()
            peer.load("big")
        print(json.dumps({"base": base, "peak": rss()}))
        return
    base = rss()
    mmap_mode = "r" if mode.endswith("mmap") else None
    if mode.startswith("load-joblib"):
        joblib.load(spec["floor"], mmap_mode=mmap_mode)
    else:
        ModelRegistry(spec["registry"]).load("big", mmap_mode=mmap_mode)
    print(json.dumps({"base": base, "peak": rss()}))


# ----------------------------------------------------------------------------- import, size
def bench_import(cfg: Config, res: Results) -> None:
    """``import modelversions`` in a fresh process, minus a bare ``python -c pass``."""
    env = dict(os.environ)
    # As after `pip install` (which compiles bytecode): let the children cache bytecode.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=cfg.workdir)
        return time.perf_counter() - start

    for _ in range(2):  # compile and cache bytecode, warm the file cache
        run("pass")
        run("import modelversions")
    for _ in range(cfg.import_runs):
        res.add("import", "python -c pass", run("pass"))
        res.add("import", "import modelversions", run("import modelversions"))
    if cfg.mlflow is not None:
        run("import mlflow")
        for _ in range(3 if cfg.quick else 5):
            res.add("import", "import mlflow", run("import mlflow"))
    bare = res[("import", "python -c pass")]
    ours = res[("import", "import modelversions")]
    delta = ours.median - bare.median
    res.budget_target(
        "import modelversions, above python -c pass",
        delta,
        0.05,
        "s",
        f"{ours.fmt()} - {bare.fmt()}, medians of {len(ours.samples)} runs",
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import modelversions"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=cfg.workdir,
    )
    costs = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)", line)
        if m is None:
            continue
        if m[4] == "site" and len(m[3]) == 1:
            costs = []  # interpreter start-up, also paid by `python -c pass`
        else:
            costs.append((int(m[1]), m[4]))
    top = sorted(costs, reverse=True)[:6]
    res.facts["importtime"] = ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in top)


def dist_size(name: str) -> tuple[int, int]:
    """Bytes and files a distribution installed (from its RECORD)."""
    from importlib import metadata

    dist = metadata.distribution(name)
    total = count = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            total += path.stat().st_size
            count += 1
    return total, count


def package_size(cfg: Config) -> int:
    """modelversions as a wheel installs it: sources plus their compiled bytecode."""
    import py_compile

    pkg = ROOT / "modelversions"
    total = 0
    out = cfg.path("pyc")
    out.mkdir(exist_ok=True)
    for src in pkg.rglob("*"):
        if "__pycache__" in src.parts or not src.is_file():
            continue
        total += src.stat().st_size
        if src.suffix == ".py":
            pyc = out / (src.stem + str(abs(hash(str(src)))) + ".pyc")
            py_compile.compile(str(src), cfile=str(pyc), doraise=True)
            total += pyc.stat().st_size
    return total


def closure(name: str) -> set[str]:
    """A distribution and everything it requires (no extras), by installed name."""
    from importlib import metadata

    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        key = re.sub(r"[-_.]+", "-", current).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(current)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            try:
                from packaging.requirements import Requirement

                r = Requirement(req)
                if r.marker is not None and not r.marker.evaluate():
                    continue
                todo.append(r.name)
            except Exception:
                continue
    return seen


def bench_size(cfg: Config, res: Results) -> None:
    ours = package_size(cfg)
    deps = {name: dist_size(name)[0] for name in ("joblib", "packaging")}
    total = ours + sum(deps.values())
    detail = f"modelversions {ours / 1024:.0f} KiB + " + " + ".join(
        f"{name} {size / MiB:.2f} MiB" for name, size in deps.items()
    )
    res.budget_target(
        "core install size (modelversions + joblib + packaging)", total, 5 * MiB, "B", detail
    )
    if cfg.mlflow is not None:
        names = closure("mlflow")
        size = 0
        for name in names:
            with contextlib.suppress(Exception):
                size += dist_size(name)[0]
        res.facts["mlflow size"] = (
            f"MLflow with its {len(names) - 1} dependencies installs {size / MiB:.0f} MiB"
        )


# ----------------------------------------------------------------------------- machine
def machine(cfg: Config) -> dict[str, str]:
    info: dict[str, str] = {}
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    fs = "unknown"
    with contextlib.suppress(OSError):
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if (
                len(parts) > 2
                and str(cfg.workdir).startswith(parts[1])
                and len(parts[1]) > len(best)
            ):
                best, fs = parts[1], f"{parts[2]} on {parts[0]}"
    info["CPU"] = f"{cpu}, {len(os.sched_getaffinity(0))} cores (nproc)"
    info["memory"] = mem
    info["disk"] = fs
    info["OS"] = f"{platform.system()} {platform.release()}"
    info["Python"] = platform.python_version()
    vers = versions_of(["joblib", "numpy", "scikit-learn", "mlflow", "matplotlib"])
    info["packages"] = ", ".join(f"{k} {v}" for k, v in vers.items())
    return info


# ----------------------------------------------------------------------------- report
DESIGN = (
    "Every change is one small JSON entry created with an atomic create-if-absent: "
    "write a temporary, fsync, link into place, fsync the folder. Two fsyncs, no lock, "
    "no database; the registry applies its own entry in memory after one probe for "
    "entries other writers added.",
    "A registry object keeps each model's state and only probes for entries written "
    "since; a fresh one starts from the newest snapshot (one every 16 entries, 64 for "
    "models of 1,024 versions or more, reusing "
    "the JSON of unchanged records) and replays the rest, so rollback and listing cost "
    "the same at 10 and 10,000 versions.",
    "A save streams joblib's output into a temporary file; a helper thread hashes the "
    "bytes behind the writer through a small mapping of the page cache, and finishes "
    "while the file is fsync'd. No chunk is held for the hash, so peak memory stays "
    "joblib's.",
    "A load hashes the file before unpickling (reading it in bounded chunks, never "
    "twice into memory; `mmap_mode='r'` then maps the arrays). Files verified once are "
    "remembered by inode, size, mtime and ctime, so loading them again costs what "
    "joblib.load costs.",
    "`import modelversions` imports neither joblib nor numpy; they load on the first save or load.",
)


def write_report(cfg: Config, res: Results, info: dict[str, str], elapsed: float) -> None:
    lines: list[str] = []
    add = lines.append
    met = sum(t.met for t in res.targets)
    add("# Benchmarks")
    add("")
    add(
        "modelversions against the floor (plain `joblib`, which does no bookkeeping at all) "
        "and against MLflow's embedded registry (sqlite store, local artifacts), measured "
        "in one run of `python benchmarks/run.py` on the machine described below."
    )
    if cfg.quick:
        add("")
        add(
            "**Quick mode** (`--quick`): tiny sizes and few repeats, a smoke test of the "
            "benchmark itself. These figures are not meaningful."
        )
    if cfg.mlflow is None:
        add("")
        add("MLflow was not measured in this run (not installed, `--quick` or `--no-mlflow`).")
    add("")
    summary = headline(res)
    if summary:
        add("In this run: " + "; ".join(summary) + ".")
    add("")
    add(f"![ratios against each target]({cfg.chart.name})")
    add("")
    add(f"## Targets: {met} of {len(res.targets)} met")
    add("")
    add("| target | goal | measured | met | figures |")
    add("| --- | --- | --- | --- | --- |")
    for t in res.targets:
        detail = t.detail + (f"; {t.note}" if t.note else "")
        add(
            f"| {t.title} | {t.goal_text} | {t.value_text} | {'yes' if t.met else '**no**'} "
            f"| {detail} |"
        )
    missed = [t for t in res.targets if not t.met]
    if missed:
        add("")
        add("### Why the missed targets are missed")
        add("")
        for t in missed:
            add(f"- **{t.title}** ({t.value_text}, goal {t.goal_text}): {explain(t, res)}")
    add("")
    add("## All figures")
    add("")
    add(
        "Median of all samples, then min and max; n is the number of samples. Contenders "
        "alternated within each scenario."
    )
    add("")
    add("| scenario | contender | median | min | max | n |")
    add("| --- | --- | --- | --- | --- | --- |")
    for s in res.series.values():
        add(
            f"| {s.scenario} | {s.contender} | {s.fmt()} | {s.fmt(min(s.samples))} "
            f"| {s.fmt(max(s.samples))} | {len(s.samples)} |"
        )
    add("")
    add("## Notes")
    add("")
    for key in sorted(res.facts):
        add(
            f"- {res.facts[key]}"
            if key != "importtime"
            else f"- Largest self times under `python -X importtime -c 'import modelversions'`: "
            f"{res.facts[key]}."
        )
    for texts in res.notes.values():
        for text in texts:
            add(f"- {text}")
    add("")
    add("## What keeps it fast")
    add("")
    for text in DESIGN:
        add(f"- {text}")
    add("")
    add("## Machine")
    add("")
    for key, value in info.items():
        add(f"- {key}: {value}")
    add(f"- whole run: {elapsed:.0f} s")
    add("")
    add("## How to rerun")
    add("")
    add("```bash")
    add("python -m pip install -e '.[bench]'   # MLflow, matplotlib, scikit-learn, numpy")
    add("python benchmarks/run.py              # writes docs/benchmarks.md and docs/benchmarks.png")
    add("python benchmarks/run.py --help       # --quick, --no-mlflow, --sizes, --output, ...")
    add("```")
    add("")
    add(
        "Method: each scenario alternates its contenders (A, B, C, A, B, C, ...), so a change "
        "in machine load hits all of them; large artifacts are timed after a warm-up that "
        "touches fresh memory and flushes dirty pages (`os.sync`); peak memory is the "
        "peak resident set (`VmHWM`) of a fresh process doing one save or one load, which "
        "imports the same modules (joblib, numpy) before its baseline. MLflow runs with "
        "`MLFLOW_DISABLE_TELEMETRY=true`, `DO_NOT_TRACK=true` and explicit "
        '`pip_requirements`, saving with `serialization_format="pickle"`. Every '
        "modelversions registry here is a local folder with `durable=True` (the default: "
        "every change is fsync'd before the call returns), except where a note says the "
        "set-up used `durable=False` to build large registries quickly."
    )
    add("")
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text("\n".join(lines))


def headline(res: Results) -> list[str]:
    """The few ratios a reader wants first."""
    out = []
    for scen, ours, other, text in (
        (
            "small save",
            "modelversions",
            "MLflow",
            "a small model saved {r:.0f}x faster than MLflow",
        ),
        ("rollback", "modelversions", "MLflow", "rollback {r:.0f}x faster than MLflow's by hand"),
        (
            "resolve + load",
            "modelversions (warm registry)",
            "MLflow",
            "the deployed model resolved and loaded {r:.0f}x faster than MLflow",
        ),
    ):
        a, b = res.get(scen, ours), res.get(scen, other)
        if a and b:
            out.append(text.format(r=b.median / a.median))
    for t in res.targets:
        if t.title.startswith("save") and "MB" in t.title:
            out.append(f"a {t.title.split()[1]} MB model saved at {t.value:.2f}x joblib.dump+fsync")
        if t.title.startswith("load") and "repeated" in t.title and "MB" in t.title:
            out.append(f"loaded again at {t.value:.2f}x joblib.load")
        if t.title.startswith("import"):
            out.append(f"`import modelversions` costs {t.value_text}")
    return out


def explain(t: Target, res: Results) -> str:
    """Why a target is missed, with this run's figures."""
    speed = res.facts.get("sha256 speed", "")
    size = " ".join(t.title.split()[1:3])  # "100 MB", "1 GB"
    if t.title.startswith("load") and "sha256 verified" in t.title:
        scen = f"load {size}" + (" from disk" if "from disk" in t.title else "")
        load = res.get(scen, "joblib.load")
        sha = res.get(f"load {size}", "sha256 of the file alone")
        warm = res.get(f"load {size}", "joblib.load")
        if load is None or sha is None or warm is None:
            return "figures missing."
        if "from disk" in t.title:
            bound = (max(sha.median, load.median) + warm.median) / load.median
            return (
                f"`joblib.load` reads this file from the disk in {load.fmt()}, faster than "
                f"sha256 can hash it ({sha.fmt()}; {speed}). The verified load reads and "
                "hashes (the disk read overlaps the hash through the kernel's read-ahead), "
                f"then unpickles from the page cache ({warm.fmt()}): at best "
                f"max(read, hash) + load = {bound:.2f}x here. On a disk slower than the "
                "hash (most SSDs and every network disk) the ratio falls towards 1x."
            )
        bound = (sha.median + load.median) / load.median
        return (
            "the artifact's sha256 is checked before anything is unpickled (a damaged or "
            "swapped file must never run: unpickling executes code), so every byte is "
            f"hashed before `joblib.load` starts. Hashing the file alone takes {sha.fmt()} "
            f"({speed}), against {load.fmt()} for the whole `joblib.load` of a file already "
            f"in the page cache: hash + load is {bound:.2f}x, the lower bound for any "
            "verify-then-load design (sha256 cannot be split across cores). Every later "
            "load of the unchanged file skips the hash (a memo of verified files keyed by "
            "inode, size, mtime and ctime) and runs at joblib's speed: see the `repeated` "
            "row."
        )
    if t.title.startswith("save") and "joblib.dump" in t.title:
        ours = res.get(f"save {size}", "modelversions")
        sha = res.get(f"load {size}", "sha256 of the file alone")
        floor = res.get(f"save {size}", "joblib.dump+fsync")
        if ours is None or sha is None or floor is None:
            return "figures missing."
        return (
            f"the save hashes every byte ({sha.fmt()} of CPU on its own; {speed}) in a "
            "helper thread that reads the file behind joblib's writes and finishes while the "
            f"file is fsync'd; with both cores free it ends close to joblib.dump+fsync "
            f"({floor.fmt()}), but it needs the second core: other load on the machine "
            f"(load average in Machine below) delays it (median {ours.fmt()}, min "
            f"{ours.fmt(min(ours.samples))} against a floor min of "
            f"{floor.fmt(min(floor.samples))})."
        )
    if t.title.startswith(("deploy", "mark_failed", "rollback")) and "MLflow" in t.title:
        op = t.title.split()[0]
        ours = res.get(op, "modelversions")
        bare = res.get("durable commit", "write+fsync+link+fsync folder")
        if ours is None or bare is None:
            return "figures missing."
        return (
            f"a change is one history entry made durable before the call returns: write a "
            "temporary, fsync it, link it into place, fsync the folder. That sequence "
            f"alone takes {bare.fmt()} here (`durable commit` row); the call takes "
            f"{ours.fmt()}. MLflow's sqlite store also syncs each transaction, so when fsync "
            "is slow (a busy disk) both converge and the ratio shrinks; the figures are "
            "from one run, alternating."
        )
    if t.title.startswith("resolve + load (fresh"):
        ours = res.get("resolve + load", "modelversions (fresh registry)")
        warm = res.get("resolve + load", "modelversions (warm registry)")
        if ours is None or warm is None:
            return "figures missing."
        return (
            "a fresh registry first reads the model's newest snapshot (one every 16 history "
            "entries for a model of this size) and replays the entries written after it, "
            "each a small file to open, "
            "parse and apply (20 to 30 us each: see the `fresh registry, resolve + load` "
            "rows), then loads as a "
            f"warm registry does ({warm.fmt()} here); median {ours.fmt()}. "
            + res.hidden.get("replayed", "")
            + " The cost moves between about the warm figure and that plus 15 entries' "
            "replay as the history grows."
        )
    return "see the figures."


def write_chart(cfg: Config, res: Results) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    except ImportError:
        log("matplotlib is not installed: no chart")
        return False
    groups = [
        ("mlflow", "Speed-up over MLflow (x, higher is better)", "log"),
        ("floor", "Cost against plain joblib, or 10,000 vs 10 versions (x, lower is better)",
         "linear"),
        ("budget", "Share of the budget used (lower is better)", "linear"),
    ]  # fmt: skip
    present = [g for g in groups if any(t.group == g[0] for t in res.targets)]
    counts = [sum(t.group == g[0] for t in res.targets) for g in present]
    heights = [0.38 * n + 0.9 for n in counts]
    fig, axes = plt.subplots(
        len(present),
        1,
        figsize=(10, sum(heights) + 0.5),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (group, title, scale) in zip(axes[:, 0], present, strict=True):
        rows = [t for t in res.targets if t.group == group][::-1]
        y = list(range(len(rows)))
        colors = ["#2e7d32" if t.met else "#c62828" for t in rows]
        ax.barh(y, [t.value for t in rows], color=colors, height=0.62)
        hi = max(max(t.value for t in rows), max(t.goal for t in rows))
        for i, t in enumerate(rows):
            ax.plot([t.goal, t.goal], [i - 0.42, i + 0.42], color="black", linewidth=2.2)
            label = t.value_text if group != "budget" else f"{t.value_text} of {t.goal_text[2:]}"
            if group == "budget":
                x = max(t.value, t.goal) + hi * 0.02
            elif scale == "log":
                near = abs(t.value / t.goal - 1) < 0.25
                x = (max(t.value, t.goal) if near else t.value) * 1.06
            else:
                near = abs(t.value - t.goal) < hi * 0.06
                x = (max(t.value, t.goal) if near else t.value) + hi * 0.012
            ax.text(x, i, label, va="center", fontsize=8)
        ax.set_yticks(y)
        ax.set_yticklabels([t.title for t in rows], fontsize=8)
        ax.set_title(title, fontsize=10, loc="left")
        if scale == "log":
            ax.set_xscale("log")
            lo = min(min(t.value for t in rows), min(t.goal for t in rows))
            ax.set_xlim(max(lo / 1.5, 0.5), hi * 2.5)
            ticks = [x for x in (1, 2, 5, 10, 20, 50, 100, 200) if lo / 1.5 <= x <= hi * 2.5]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticklabels([f"{x}x" for x in ticks], fontsize=8)
        else:
            ax.set_xlim(0, hi * (1.7 if group == "budget" else 1.3))
            ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.text(
        0.01,
        0.005,
        "Black tick: the target. Green: met, red: missed. Each ratio compares medians "
        "measured in the same run.",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    cfg.chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(cfg.chart, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- main
def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(float(x) * MiB) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    mlflow_group = parser.add_mutually_exclusive_group()
    mlflow_group.add_argument(
        "--mlflow",
        dest="mlflow",
        action="store_true",
        default=None,
        help="measure MLflow (default: when importable, not in --quick)",
    )
    mlflow_group.add_argument("--no-mlflow", dest="mlflow", action="store_false")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="the Markdown report; the chart is written next to it (.png)",
    )
    parser.add_argument("--sizes", help="large artifact sizes in MiB, e.g. 100,1024")
    parser.add_argument("--versions", help="registry sizes for rollback, e.g. 10,1000,10000")
    parser.add_argument("--only", help="comma-separated scenarios: small,scale,large,memory,import")
    parser.add_argument("--workdir", type=Path, help="where registries are built (temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the 1-minute load average to fall below 0.5",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0

    deadline = time.monotonic() + args.wait_idle
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)
    started = time.perf_counter()
    gc.collect()
    quick = args.quick
    workdir = Path(tempfile.mkdtemp(prefix="mv-bench-", dir=args.workdir))
    use_mlflow = args.mlflow if args.mlflow is not None else not quick
    peer = None
    if use_mlflow:
        try:
            peer = MLflowPeer(workdir / "mlflow")
        except ImportError as exc:
            log(f"MLflow is not importable ({exc}): measuring against the floor only")
    try:
        import numpy  # noqa: F401

        has_numpy = True
    except ImportError:
        has_numpy = False
    large = parse_sizes(args.sizes) if args.sizes else ((2 * MiB,) if quick else (100 * MiB, GiB))
    cfg = Config(
        quick=quick,
        workdir=workdir,
        output=args.output.resolve(),
        chart=args.output.resolve().with_suffix(".png"),
        mlflow=peer,
        small_repeats=5 if quick else 100,
        op_repeats=5 if quick else 60,
        scale_sizes=(
            tuple(int(x) for x in args.versions.split(","))
            if args.versions
            else ((10, 100) if quick else (10, 1000, 10000))
        ),
        large_sizes=large if has_numpy else (),
        import_runs=3 if quick else 30,
        memory_sizes=(large[0],) if has_numpy and quick else (large if has_numpy else ()),
    )
    only = set(args.only.split(",")) if args.only else None
    res = Results()
    load1 = os.getloadavg()[0]
    if load1 > 0.5 and not quick:
        log(f"note: load average is {load1:.2f}: other work on this machine adds noise")
    res.facts["sha256 speed"] = f"hashlib's sha256 runs at {sha256_speed() / 1e9:.2f} GB/s here"
    scenarios: list[tuple[str, Callable[[Config, Results], Any]]] = [
        ("small", bench_small),
        ("scale", bench_scale),
        ("large", bench_large),
        ("memory", bench_memory),
        ("import", bench_import),
        ("size", bench_size),
    ]
    try:
        for name, fn in scenarios:
            if only is not None and name not in only:
                continue
            if name in ("large", "memory") and not has_numpy:
                res.note(name, f"{name}: skipped, numpy is not installed")
                continue
            log(f"{name} ...")
            t0 = time.perf_counter()
            fn(cfg, res)
            log(f"{name}: {time.perf_counter() - t0:.1f} s")
        info = machine(cfg)
        info["load average"] = f"{load1:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
        elapsed = time.perf_counter() - started
        write_report(cfg, res, info, elapsed)
        write_chart(cfg, res)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for t in res.targets:
        log(
            f"{'MET ' if t.met else 'MISS'} {t.title}: {t.value_text} (goal {t.goal_text}); "
            f"{t.detail}"
        )
    log(f"wrote {cfg.output} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
