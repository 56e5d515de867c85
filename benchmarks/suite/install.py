"""Install-time costs: ``import modelversions`` in fresh processes, and the install size.

Owns the ``import`` scenario (``python -c "import modelversions"`` against a bare
``python -c pass``, the ``-X importtime`` breakdown, ``import mlflow`` when measured) and
the ``size`` scenario (modelversions' sources and bytecode plus its dependencies, against a
budget; MLflow's dependency closure as a note).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .harness import ROOT, Config, MiB, Results
from .mlflow_peer import telemetry_off


def bench_import(cfg: Config, res: Results) -> None:
    """``import modelversions`` in a fresh process, minus a bare ``python -c pass``."""
    env = dict(os.environ)
    # As after `pip install` (which compiles bytecode): let the children cache bytecode.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    telemetry_off(env)

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
