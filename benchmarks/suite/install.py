"""Install-time costs: ``import modelversions`` in fresh processes, and the install size.

Owns the ``import`` scenario (``python -c "import modelversions"`` against a bare
``python -c pass``, the ``-X importtime`` breakdown, ``import mlflow`` when measured),
both from the checkout and from a regular install (``installed_python``: a wheel built
from a copy of the sources, installed with ``--no-deps`` into a temporary
``python -m venv --system-site-packages``, run from outside the checkout), and
the ``size`` scenario (modelversions' sources and bytecode plus its dependencies, against a
budget; MLflow's dependency closure as a note).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .harness import ROOT, Config, MiB, Results, log
from .mlflow_peer import telemetry_off

CHECKOUT = "import, checkout on PYTHONPATH"


FROM_IMPORT = "from modelversions import ModelRegistry"


def bench_import(cfg: Config, res: Results) -> None:
    """``import modelversions`` in a fresh process, minus a bare ``python -c pass``."""
    env = dict(os.environ)
    # As after `pip install` (which compiles bytecode): let the children cache bytecode.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    telemetry_off(env)

    def run(code: str, python: str = sys.executable) -> float:
        start = time.perf_counter()
        subprocess.run([python, "-c", code], env=env, check=True, cwd=cfg.workdir)
        return time.perf_counter() - start

    for _ in range(2):  # compile and cache bytecode, warm the file cache
        run("pass")
        run("import modelversions")
    for _ in range(cfg.import_runs):
        res.add(CHECKOUT, "python -c pass", run("pass"))
        res.add(CHECKOUT, "import modelversions", run("import modelversions"))
    if cfg.mlflow is not None:
        run("import mlflow")
        for _ in range(3 if cfg.quick else 5):
            res.add(CHECKOUT, "import mlflow", run("import mlflow"))
    python, how = installed_python(cfg), "regular install"
    if python is None:
        python, how = sys.executable, "checkout on PYTHONPATH (the wheel could not be built)"
    else:
        env.pop("PYTHONPATH")  # the installed copy, not the checkout
    for _ in range(2):
        run("pass", python)
        run(FROM_IMPORT, python)
    scen = f"import, {how}"
    for _ in range(cfg.import_runs):
        res.add(scen, "python -c pass", run("pass", python))
        res.add(scen, "import modelversions", run("import modelversions", python))
        res.add(scen, FROM_IMPORT, run(FROM_IMPORT, python))
    for _ in range(5):
        us = importtime(python, env, cfg.workdir).get("modelversions", 0)
        res.add(scen, "-X importtime: modelversions, cumulative", us / 1e6)
    bare = res[(scen, "python -c pass")]
    # The package imports its modules on first use, so the bare import is nearly free;
    # the import a user writes, `from modelversions import ModelRegistry`, gets a row too.
    for code in ("import modelversions", FROM_IMPORT):
        ours = res[(scen, code)]
        res.budget_target(
            f"{code} above python -c pass ({how})",
            ours.median - bare.median,
            0.025,
            "s",
            f"{ours.span()} - {bare.span()}",
            note=import_note(how),
        )
    costs: list[tuple[int, str]] = []
    for own, _, depth, name in importtime_lines(python, env, cfg.workdir, FROM_IMPORT):
        if name == "site" and depth == 0:
            costs = []  # interpreter start-up, also paid by `python -c pass`
        else:
            costs.append((own, name))
    top = sorted(costs, reverse=True)[:6]
    res.facts["importtime"] = ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in top)


def import_note(how: str) -> str:
    """How the import rows were measured (said in the targets table)."""
    if how != "regular install":
        return ""
    return (
        "wall time of fresh processes, alternating; a wheel of this checkout installed "
        "with `pip install --no-deps` into a `python -m venv --system-site-packages` "
        "venv, run from a folder outside the checkout without PYTHONPATH (the system "
        "site-packages' .pth files run in both); `-X importtime` row in All figures"
    )


def installed_python(cfg: Config) -> str | None:
    """A venv's python with this checkout installed from a wheel (None: build failed).

    The wheel is built from a copy of the sources (setuptools writes ``build/`` next to
    them) with pip's build isolation; the venv sees the system site-packages, so the
    dependencies are there and only modelversions is installed (``--no-deps``).
    """
    src, wheels, venv = cfg.path("wheel-src"), cfg.path("wheels"), cfg.path("venv")
    src.mkdir()
    for name in ("modelversions", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    start = time.perf_counter()
    try:
        subprocess.run(
            [*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)],
            check=True,
            capture_output=True,
            cwd=cfg.workdir,
        )
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
            check=True,
            capture_output=True,
        )
        python = str(venv / "bin" / "python")
        wheel = next(wheels.glob("modelversions-*.whl"))
        subprocess.run(
            [python, "-m", "pip", "-q", "install", "--no-deps", str(wheel)],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, StopIteration) as exc:
        log(f"  no regular install: {exc}")
        return None
    log(f"  wheel built and installed in a venv in {time.perf_counter() - start:.1f} s")
    return python


def importtime_lines(
    python: str, env: dict[str, str], cwd: Path, code: str = "import modelversions"
) -> list[tuple[int, int, int, str]]:
    """``-X importtime`` of ``code``: (self us, cumulative us, depth, name) per module."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    out = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( +)(\S+)", line)
        if m is not None:
            out.append((int(m[1]), int(m[2]), len(m[3]) - 1, m[4]))
    return out


def importtime(python: str, env: dict[str, str], cwd: Path) -> dict[str, int]:
    """Cumulative microseconds of each top-level import under ``-X importtime``."""
    lines = importtime_lines(python, env, cwd)
    return {name: total for _, total, depth, name in lines if depth == 0}


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
