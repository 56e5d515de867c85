"""The harness: results, timing, settling the machine between steps, fresh processes.

Owns what every scenario shares: ``Results`` (the ``Series`` of samples per scenario and
contender, their medians, min and max, and the ``Target`` ratios and budgets built from
them), ``timed``, ``settle`` (the warm-up before each large step: flush dirty pages,
touch fresh memory), ``drop_cache``, the run's ``Config`` and ``run_child`` (one
measurement in a fresh process, through ``run.py --child``). Contenders alternate
because each scenario adds their samples in turn inside one loop; nothing here knows a
scenario, modelversions or MLflow.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .mlflow_peer import telemetry_off

if TYPE_CHECKING:
    from .mlflow_peer import MLflowPeer

ROOT = Path(__file__).resolve().parents[2]  # the checkout these benchmarks belong to
ENTRY = ROOT / "benchmarks" / "run.py"  # what a fresh process runs, with --child

MiB = 1 << 20
GiB = 1 << 30
MS = 1e3


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

    def span(self) -> str:
        """The median, then min and max and the number of samples, for a targets row."""
        low, high = self.fmt(min(self.samples)), self.fmt(max(self.samples))
        return f"{self.fmt()} (min {low}, max {high}, n={len(self.samples)})"


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
    series: tuple[Series, ...] = ()  # the figures behind a ratio (ours first)

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal


class Results:
    """Every series, target, note and fact of one run, in the order they were added."""

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
            detail = f"{b.contender} {b.span()} / {a.contender} {a.span()}"
            target = Target(
                group,
                title,
                value,
                goal,
                True,
                detail,
                f">= {goal:g}x",
                f"{value:.1f}x",
                note,
                (a, b),
            )
        else:
            value = a.median / b.median
            detail = f"{a.contender} {a.span()} / {b.contender} {b.span()}"
            target = Target(
                group,
                title,
                value,
                goal,
                False,
                detail,
                f"<= {goal:g}x",
                f"{value:.2f}x",
                note,
                (a, b),
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


def drop_cache(path: Path) -> None:
    """Evict a (clean) file from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@dataclasses.dataclass
class Config:
    """What this run measures: sizes, repeats, where it works and writes, the MLflow peer."""

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
    cold_sizes: tuple[int, ...] = (10, 2000, 10000)
    cold_samples: int = 5

    def path(self, *parts: str) -> Path:
        p = self.workdir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def run_child(cfg: Config, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec`` in a fresh process (``run.py --child``); what it printed, as JSON."""
    env = telemetry_off(dict(os.environ))
    proc = subprocess.run(
        [sys.executable, str(ENTRY), "--child", json.dumps(spec)],
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
