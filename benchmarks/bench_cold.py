"""Cold start: what a fresh process pays to open a registry, at 10 to 10,000 versions.

Every figure is measured in fresh processes (``python -c``), each size and operation
``--samples`` times (default 7), reported as min / median / max, with the ratios the
issue sets as targets:

- open + ``current()`` / ``load()`` / ``rollback()`` / ``versions()`` inside a fresh
  process (the time from ``ModelRegistry(path)`` to the answer, imports excluded), and
  the whole process's wall time, at each size; the ratio of the largest to the smallest;
- a fresh process resolving and loading the deployed small model against a fresh
  process ``joblib.load``-ing the same artifact file;
- the CLI ``modelversions current NAME`` against ``python -c "import modelversions"``;
- ``import modelversions`` against ``python -c pass`` (wall time), and what
  ``-X importtime`` says ``import modelversions`` costs.

Run from the checkout: ``PYTHONPATH=$PWD python benchmarks/bench_cold.py`` (the
registries are built once under ``--workdir`` with ``durable=False``; add ``--quick``
for small sizes and 3 samples, as the smoke test does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What a child runs: imports, then the timed open + operation; prints JSON.
_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from modelversions import ModelRegistry
t1 = time.perf_counter()
path, op = sys.argv[1], sys.argv[2]
reg = ModelRegistry(path)
if op == "current":
    reg.current("m")
elif op == "load":
    reg.load("m")
elif op == "rollback":
    reg.rollback("m", reason="bench")
elif op == "versions":
    assert len(reg.versions("m")) > 0
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "op": t2 - t1}))
"""
_JOBLIB = """
import json, sys, time
t0 = time.perf_counter()
import joblib
joblib.load(sys.argv[1])
print(json.dumps({"import": 0.0, "op": time.perf_counter() - t0}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str]) -> tuple[float, dict[str, float] | None]:
    """Run ``args``; its wall time and the JSON it printed last (None if none)."""
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=_env(), check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    try:
        return wall, json.loads(lines[-1]) if lines else None
    except ValueError:
        return wall, None


def build(path: Path, count: int) -> None:
    """A registry of ``count`` versions of ``m``, the top two stable, the top deployed."""
    from modelversions import ModelRegistry
    from modelversions.backends.local import LocalBackend

    if (path / "models").exists():
        return
    reg = ModelRegistry(LocalBackend(path, durable=False))
    for i in range(count):
        reg.save("m", {"w": list(range(32)), "i": i}, metrics={"auc": i / count}, params={"i": i})
    vs = [str(mv.version) for mv in reg.versions("m")]
    for v in vs[-2:]:
        reg.mark_stable("m", v)
        reg.deploy("m", v)


def _redeploy(path: Path, top: str) -> None:
    """Undo the last rollback: version ``top`` stable and deployed again."""
    from modelversions import ModelRegistry

    reg = ModelRegistry(path)
    reg.mark_stable("m", top)
    reg.deploy("m", top)


def stats(samples: list[float]) -> str:
    ms = sorted(1e3 * s for s in samples)
    return f"{ms[0]:8.2f} {statistics.median(ms):8.2f} {ms[-1]:8.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mv-cold")
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--sizes", default="10,2000,10000")
    ap.add_argument("--quick", action="store_true", help="sizes 10,200 and 3 samples")
    args = ap.parse_args(argv)
    sizes = [10, 200] if args.quick else [int(n) for n in args.sizes.split(",")]
    samples = 3 if args.quick else args.samples
    py = sys.executable
    ops = ("current", "load", "rollback", "versions")
    op_s: dict[tuple[str, int], list[float]] = {}
    wall_s: dict[tuple[str, int], list[float]] = {}
    for count in sizes:
        path = args.workdir / f"n{count}"
        t = time.perf_counter()
        build(path, count)
        print(f"# registry of {count:,} versions ready in {time.perf_counter() - t:.1f} s")
        from modelversions import ModelRegistry

        top = str(ModelRegistry(path).versions("m")[-1].version)
        for _ in range(samples):
            for op in ops:
                if op == "rollback":
                    _redeploy(path, top)
                wall, out = _run([py, "-c", _CHILD, str(path), op])
                assert out is not None
                op_s.setdefault((op, count), []).append(out["op"])
                wall_s.setdefault((op, count), []).append(wall)
    print("\nfresh process, open + operation (ms: min median max) | whole process wall")
    for op in ops:
        for count in sizes:
            key = (op, count)
            print(f"  {op:9s} @ {count:>6,}: {stats(op_s[key])} | {stats(wall_s[key])}")
        lo, hi = (op, sizes[0]), (op, sizes[-1])
        r_op = statistics.median(op_s[hi]) / statistics.median(op_s[lo])
        r_wall = statistics.median(wall_s[hi]) / statistics.median(wall_s[lo])
        print(
            f"  {op:9s} ratio {sizes[-1]:,} / {sizes[0]:,}: operation {r_op:.2f}x, "
            f"whole process {r_wall:.2f}x (target <= 2x)"
        )

    # resolve + load against joblib.load of the same file, fresh processes
    print("\nfresh process wall (ms: min median max)")
    for count in (sizes[0], sizes[-1]):
        path = args.workdir / f"n{count}"
        reg = ModelRegistry(path)
        mv = reg.current("m")
        assert mv is not None
        artifact = reg._log.backend.local_path(f"models/m/@artifacts/{mv.sha256}.joblib")
        assert artifact is not None
        mine, theirs = [], []
        for _ in range(samples):
            mine.append(_run([py, "-c", _CHILD, str(path), "load"])[0])
            theirs.append(_run([py, "-c", _JOBLIB, artifact])[0])
        ratio = statistics.median(mine) / statistics.median(theirs)
        print(f"  resolve+load @ {count:>6,}: {stats(mine)}")
        print(f"  joblib.load same file  : {stats(theirs)}  ratio {ratio:.2f}x (target <= 1.15x)")

    big = args.workdir / f"n{sizes[-1]}"
    cli, imp, bare = [], [], []
    for _ in range(samples):
        cli.append(_run([py, "-m", "modelversions", "--registry", str(big), "current", "m"])[0])
        imp.append(_run([py, "-c", "import modelversions"])[0])
        bare.append(_run([py, "-c", "pass"])[0])
    ratio = statistics.median(cli) / statistics.median(imp)
    print(f"  CLI current @ {sizes[-1]:>6,}: {stats(cli)}")
    print(f"  import modelversions  : {stats(imp)}  CLI ratio {ratio:.2f}x (target <= 1.5x)")
    extra = statistics.median(imp) - statistics.median(bare)
    print(f"  python -c pass        : {stats(bare)}  import adds {1e3 * extra:.1f} ms (<= 25)")
    own = []
    for _ in range(samples):
        proc = subprocess.run(
            [py, "-X", "importtime", "-c", "import modelversions"],
            capture_output=True,
            text=True,
            env=_env(),
            check=True,
        )
        top = [ln for ln in proc.stderr.splitlines() if ln.rstrip().endswith("| modelversions")]
        own.append(int(top[-1].split("|")[1]) / 1e6)
    print(f"  -X importtime modelversions (cumulative): {stats(own)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
