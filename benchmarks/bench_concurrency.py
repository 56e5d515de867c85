"""Concurrent saves into one folder, and what the crash and concurrency safety costs.

Run ``python benchmarks/bench_concurrency.py`` (under a minute) or with ``--quick``
(a few seconds, for a smoke test). It prints two tables:

1. saves per second with 1, 2, 4 and 8 processes saving small models into one
   registry folder at once (each process its own ``ModelRegistry``), with the median
   and 95th percentile time of one save as its process saw it;
2. the median time of one ``ModelRegistry.save`` of a small model next to a plain
   ``joblib.dump`` of the same model to a file followed by ``fsync``, measured in
   the same run, alternating the contenders after a warm-up.

What a save does on top of ``joblib.dump`` + ``fsync``: hash the artifact, publish
it with ``os.link`` and ``fsync`` its folder, then commit the history entry (write,
``fsync``, ``os.link``, ``fsync`` the folder). See ``docs/concurrency.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _small_numpy_model(seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"coef": rng.random((3, 4)), "intercept": rng.random(3), "seed": seed}


def _saver(root: str, tag: int, n: int, start: Any, out: Any) -> None:
    """One process: wait for the start, save ``n`` small models, report the timings."""
    from modelversions import ModelRegistry

    reg = ModelRegistry(root)
    models = [_small_numpy_model(tag * 100_000 + i) for i in range(n)]
    reg.save("warmup", models[0])  # imports and first-use costs outside the timing
    start.wait()
    times = []
    for model in models:
        t0 = time.perf_counter()
        reg.save("bench", model)
        times.append(time.perf_counter() - t0)
    out.put((time.monotonic(), times))


def concurrent_saves(procs: int, per_proc: int) -> tuple[float, list[float]]:
    """One run: saves per second, and every save's time as its process saw it."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mv-bench-") as root:
        start = ctx.Event()
        out = ctx.Queue()
        children = [
            ctx.Process(target=_saver, args=(root, tag, per_proc, start, out))
            for tag in range(procs)
        ]
        for child in children:
            child.start()
        _wait_for_warmups(root, procs)
        t0 = time.monotonic()
        start.set()
        results = [out.get(timeout=600) for _ in children]
        for child in children:
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"a saving process failed (exit code {child.exitcode})")
        from modelversions import ModelRegistry

        saved = len(ModelRegistry(root).versions("bench"))
    if saved != procs * per_proc:
        raise SystemExit(f"expected {procs * per_proc} versions, found {saved}")
    wall = max(end for end, _ in results) - t0
    return saved / wall, [t for _, ts in results for t in ts]


def _wait_for_warmups(root: str, procs: int) -> None:
    """Until every process has saved its warm-up version (all imports done)."""
    from modelversions import ModelRegistry

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        reg = ModelRegistry(root)
        if "warmup" in reg.models() and len(reg.versions("warmup")) >= procs:
            return
        time.sleep(0.02)
    raise SystemExit("the saving processes did not start")


# ---------------------------------------------------------------------- cost of safety
def _benchmark_model() -> tuple[Any, str]:
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return _small_numpy_model(0), "a numpy dict (scikit-learn not installed)"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4))
    y = rng.integers(0, 3, size=150)
    return LogisticRegression(max_iter=200).fit(x, y), "LogisticRegression (4 features, 3 classes)"


SAVE = "save, folder"
PLAIN = "joblib.dump+fsync"
SAVE_NO_FSYNC = "save, folder, durable=False"
PLAIN_NO_FSYNC = "joblib.dump, no fsync"


def safety_cost(runs: int, warmup: int) -> dict[str, Any]:
    import joblib

    from modelversions import ModelRegistry
    from modelversions.backends.local import LocalBackend

    model, what = _benchmark_model()
    with tempfile.TemporaryDirectory(prefix="mv-bench-") as scratch:
        folder = ModelRegistry(os.path.join(scratch, "reg"))
        no_fsync = ModelRegistry(LocalBackend(os.path.join(scratch, "nd"), durable=False))
        memory = ModelRegistry("memory://")
        plain_dir = os.path.join(scratch, "plain")
        os.mkdir(plain_dir)
        counter = iter(range(10**9))

        def payload() -> dict[str, Any]:
            # A new object each time, so each save writes a new artifact (no dedupe).
            return {"model": model, "i": next(counter)}

        def plain(fsync: bool) -> None:
            path = os.path.join(plain_dir, f"{next(counter)}.joblib")
            joblib.dump(payload(), path)
            if fsync:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        contenders: dict[str, Callable[[], Any]] = {
            SAVE: lambda: folder.save("bench", payload()),
            PLAIN: lambda: plain(True),
            SAVE_NO_FSYNC: lambda: no_fsync.save("bench", payload()),
            PLAIN_NO_FSYNC: lambda: plain(False),
            "save, memory://": lambda: memory.save("bench", payload()),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for i in range(warmup + runs):
            for name, run in contenders.items():  # alternate: drifts hit all alike
                t0 = time.perf_counter()
                run()
                if i >= warmup:
                    times[name].append(time.perf_counter() - t0)
        size = folder.versions("bench")[-1].size
    return {"model": what, "size": size, "runs": runs, "times": times}


# ---------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (a smoke test)")
    args = parser.parse_args(argv)
    per_proc, rounds, runs, warmup = (10, 1, 20, 5) if args.quick else (100, 3, 500, 50)

    print(
        f"modelversions concurrency benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()}, temp folder {tempfile.gettempdir()}"
        + (" (--quick)" if args.quick else "")
    )
    print(
        f"\nConcurrent automatic saves of a small numpy model into one folder: {per_proc} "
        f"per process; rounds: {rounds} (each round runs every process count in turn)"
    )
    print(
        f"{'procs':>5} {'saves/s':>8} {'min':>6} {'max':>6} {'median ms':>10} {'p95 ms':>7}"
        f"  (saves/s: median of the rounds; ms: one save, all rounds)"
    )
    counts = (1, 2) if args.quick else (1, 2, 4, 8)
    rates: dict[int, list[float]] = {n: [] for n in counts}
    times: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        for procs in counts:
            rate, ts = concurrent_saves(procs, per_proc)
            rates[procs].append(rate)
            times[procs].extend(ts)
    for procs in counts:
        ts = sorted(times[procs])
        print(
            f"{procs:>5} {statistics.median(rates[procs]):>8.0f} {min(rates[procs]):>6.0f} "
            f"{max(rates[procs]):>6.0f} {statistics.median(ts) * 1e3:>10.2f} "
            f"{ts[int(0.95 * (len(ts) - 1))] * 1e3:>7.2f}"
        )
    sys.stdout.flush()

    cost = safety_cost(runs, warmup)
    print(
        f"\nCost of the safety: {cost['model']}, {cost['size']} bytes; "
        f"{cost['runs']} runs each after {warmup} warm-up runs, alternated"
    )
    print(f"{'contender':<30} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    medians = {}
    for name, ts in cost["times"].items():
        medians[name] = statistics.median(ts)
        print(
            f"{name:<32} {medians[name] * 1e3:>10.3f} {min(ts) * 1e3:>8.3f} {max(ts) * 1e3:>8.3f}"
        )
    ours, plain = medians[SAVE], medians[PLAIN]
    machinery = medians[SAVE_NO_FSYNC] - medians[PLAIN_NO_FSYNC]
    fsyncs = medians[SAVE] - medians[SAVE_NO_FSYNC]
    print(
        f"\nsave / {PLAIN}: {ours / plain:.2f}x the time, {(ours - plain) * 1e3:+.2f} ms "
        "per save (target: under +2 ms)"
        f"\n  of which, without any fsync (durable=False vs joblib.dump): "
        f"{machinery * 1e3:+.2f} ms for hashing, the temporary, os.link and the history entry"
        f"\n  and the 4 fsyncs of a save (artifact, its folder, history entry, its folder; "
        f"joblib.dump+fsync has 1): {fsyncs * 1e3:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
