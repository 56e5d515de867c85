"""The command line of ``benchmarks/run.py``: options, the run's ``Config``, the order.

Owns parsing (``--quick``, ``--mlflow``/``--no-mlflow``, ``--output``, ``--sizes``,
``--versions``, ``--cold-versions``, ``--only``, ``--workdir``, ``--keep``,
``--wait-idle`` and the hidden ``--child``), choosing sizes and repeats, running the
scenarios in their order (small, scale, cold, large, memory, import, signing, size), then
writing the report and the chart.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .chart import write_chart
from .cold import bench_cold
from .harness import ROOT, Config, GiB, MiB, Results, log
from .install import bench_import, bench_size
from .large import bench_large
from .memory import bench_memory, child
from .mlflow_peer import MLflowPeer
from .models import sha256_speed
from .report import machine, write_report
from .scale import bench_scale
from .signing import bench_signing
from .small import bench_small


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(float(x) * MiB) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None, *, description: str | None = None) -> int:
    """Run the benchmarks (or, with ``--child``, one fresh-process measurement)."""
    parser = argparse.ArgumentParser(description=description)
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
    parser.add_argument(
        "--cold-versions", help="registry sizes for the fresh-process figures, e.g. 10,2000,10000"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios: small,scale,cold,large,memory,import,signing,size",
    )
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
        cold_sizes=(
            tuple(int(x) for x in args.cold_versions.split(","))
            if args.cold_versions
            else ((10, 200) if quick else (10, 2000, 10000))
        ),
        cold_samples=3 if quick else 5,
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
        ("cold", bench_cold),
        ("large", bench_large),
        ("memory", bench_memory),
        ("import", bench_import),
        ("signing", bench_signing),
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
