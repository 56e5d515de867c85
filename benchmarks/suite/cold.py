"""The ``cold`` scenario: fresh processes at 10, 2,000 and 10,000 versions, both contenders.

Owns what a new process pays to answer one question of a registry: ``current()``,
resolve + ``load()`` of the deployed small model, ``rollback()`` and ``versions()`` for
modelversions; for MLflow (when measured) ``get_model_version_by_alias``,
``load_model("models:/m@production")``, the rollback by hand and
``search_model_versions``. Each sample is one ``python -c`` process that times its
imports and its operation apart; the parent also times the whole process. At each size the
same loop runs a fresh ``joblib.load`` of the deployed artifact, the CLI
``modelversions current m`` and ``python -c "import modelversions"``, so every contender
meets the same machine load. One registry per contender grows from size to size (built
with ``durable=False`` for modelversions, MLflow's lightest path for MLflow), the top two
versions stable, the top one deployed; a rollback is undone by the parent. "Imports
excluded" leaves out the top-level imports and, for a load, scikit-learn's (which
unpickling the model needs, about a second); imports done inside the call stay in. Adds the
issue's targets: 2x at the largest size against the smallest for each operation, 1.15x
against ``joblib.load`` at the smallest and the largest, 1.5x for the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .harness import ROOT, Config, Results, Target, log
from .internals import artifact_path
from .mlflow_peer import MLflowPeer, telemetry_off
from .models import small_model

OPS = ("current", "load", "versions", "rollback")
# Figures without a target: every record built (versions() itself builds them on access).
FIGURES = ("list-versions",)
OP, WHOLE = "op (imports excluded)", "whole process"

# A fresh process: imports, then the timed open + operation; prints JSON.
_MV = """
import json, sys, time
t0 = time.perf_counter()
from modelversions import ModelRegistry
path, op = sys.argv[1], sys.argv[2]
if op == "load":
    import sklearn.linear_model  # what unpickling the model imports (~1 s)
t1 = time.perf_counter()
reg = ModelRegistry(path)
if op == "current":
    assert reg.current("m") is not None
elif op == "load":
    reg.load("m")
elif op == "rollback":
    reg.rollback("m", reason="bench")
elif op == "versions":
    assert len(reg.versions("m")) > 0
else:
    assert len([mv.metrics for mv in reg.versions("m")]) > 0
print(json.dumps({"import": t1 - t0, "op": time.perf_counter() - t1}))
"""
_MLFLOW = """
import json, logging, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
uri, op = sys.argv[1], sys.argv[2]
if op == "load":
    import sklearn.linear_model  # what unpickling the model imports (~1 s)
t1 = time.perf_counter()
for name in ("mlflow", "alembic", "sqlalchemy"):
    logging.getLogger(name).setLevel(logging.ERROR)
mlflow.set_registry_uri(uri)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
if op == "current":
    client.get_model_version_by_alias("m", "production")
elif op == "load":
    mlflow.sklearn.load_model("models:/m@production")
elif op == "rollback":
    current = client.get_model_version_by_alias("m", "production")
    client.set_model_version_tag("m", current.version, "status", "failed")
    stable = client.search_model_versions("name='m' and tags.status='stable'")
    below = [int(mv.version) for mv in stable if int(mv.version) < int(current.version)]
    client.set_registered_model_alias("m", "production", str(max(below)))
else:
    found, token = [], None
    while True:
        page = client.search_model_versions("name='m'", page_token=token)
        found += list(page)
        token = page.token
        if not token:
            break
    assert len(found) > 0
print(json.dumps({"import": t1 - t0, "op": time.perf_counter() - t1}))
"""
_JOBLIB = """
import json, sys, time
t0 = time.perf_counter()
import joblib
import sklearn.linear_model  # what unpickling the model imports (~1 s)
t1 = time.perf_counter()
joblib.load(sys.argv[1])
print(json.dumps({"import": t1 - t0, "op": time.perf_counter() - t1}))
"""


def child_env() -> dict[str, str]:
    """The checkout first on the path (as every scenario measures it), telemetry off."""
    env = dict(telemetry_off(dict(os.environ)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as after `pip install`: cached bytecode
    return env


def run_timed(args: list[str], cwd: Path) -> tuple[float, dict[str, float]]:
    """Run ``args`` in a fresh process: its wall time and the JSON it printed last."""
    start = time.perf_counter()
    proc = subprocess.run(
        args, capture_output=True, text=True, env=child_env(), cwd=cwd, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    try:
        out: dict[str, float] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        out = {}
    return wall, out


class Grower:
    """One contender's registry, grown from size to size; the top two stable, top deployed."""

    def __init__(self, cfg: Config, model: Any, peer: MLflowPeer | None) -> None:
        self.cfg, self.model, self.peer = cfg, model, peer
        self.count = 0
        self.top = ""

    def grow(self, count: int) -> float:
        start = time.perf_counter()
        if self.peer is None:
            self._grow_ours(count)
        else:
            self._grow_mlflow(self.peer, count)
        self.count = count
        return time.perf_counter() - start

    def _grow_ours(self, count: int) -> None:
        from modelversions import ModelRegistry
        from modelversions.backends.local import LocalBackend

        reg = ModelRegistry(LocalBackend(self.cfg.path("cold", "mv"), durable=False))
        for i in range(self.count, count):
            reg.save("m", self.model, metrics={"auc": i / count}, params={"i": i})
        vs = [str(mv.version) for mv in reg.versions("m")][-2:]
        for v in vs:
            reg.mark_stable("m", v)
            reg.deploy("m", v)
        self.top = vs[-1]

    def _grow_mlflow(self, peer: MLflowPeer, count: int) -> None:
        for _ in range(self.count, count):
            version = peer.save_register("m", self.model)
        top = int(version)
        for v in (top - 1, top):
            peer.mark("m", str(v), "stable")
        peer.deploy("m", str(top))
        self.top = str(top)

    def undo_rollback(self) -> None:
        if self.peer is None:
            from modelversions import ModelRegistry

            reg = ModelRegistry(self.cfg.path("cold", "mv"))
            reg.mark_stable("m", self.top)
            reg.deploy("m", self.top)
        else:
            self.peer.mark("m", self.top, "stable")
            self.peer.deploy("m", self.top)


def bench_cold(cfg: Config, res: Results) -> None:
    """Fresh-process figures at each of ``cfg.cold_sizes``, then the issue's targets."""
    model = small_model()
    ours = Grower(cfg, model, None)
    theirs = None
    if cfg.mlflow is not None:
        theirs = Grower(cfg, model, MLflowPeer(cfg.workdir / "cold" / "mlflow", registry_only=True))
    py, cwd = sys.executable, cfg.workdir
    reg_path = str(cfg.path("cold", "mv"))
    for count in cfg.cold_sizes:
        for grower, who, how in (
            (ours, "modelversions", "`LocalBackend(path, durable=False)`"),
            (theirs, "MLflow", "`save_model` + `create_model_version`, no run"),
        ):
            if grower is None:
                continue
            log(f"  cold: growing the {who} registry to {count:,} versions")
            elapsed = grower.grow(count)
            res.facts[f"cold build {who} {count:>6}"] = (
                f"Cold start: the {who} registry grown to {count:,} versions in {elapsed:.1f} s "
                f"({how})"
            )
        from modelversions import ModelRegistry

        reg = ModelRegistry(reg_path)
        mv = reg.current("m")
        assert mv is not None
        art = artifact_path(reg, "m", mv.sha256)
        assert art is not None
        log(f"  cold @ {count:,}: x{cfg.cold_samples}")
        for _ in range(cfg.cold_samples):
            for op in OPS + FIGURES:
                scen = f"cold {op} @ {count:,}"
                wall, out = run_timed([py, "-c", _MV, reg_path, op], cwd)
                res.add(scen, f"modelversions, {OP}", out["op"])
                res.add(scen, f"modelversions, {WHOLE}", wall)
                if op == "rollback":
                    ours.undo_rollback()
                if op == "load":
                    wall, out = run_timed([py, "-c", _JOBLIB, art], cwd)
                    res.add(scen, f"joblib.load, {OP}", out["op"])
                    res.add(scen, f"joblib.load, {WHOLE}", wall)
                if theirs is not None and theirs.peer is not None:
                    wall, out = run_timed([py, "-c", _MLFLOW, theirs.peer.uri, op], cwd)
                    res.add(scen, f"MLflow, {OP}", out["op"])
                    res.add(scen, f"MLflow, {WHOLE}", wall)
                    if op == "rollback":
                        theirs.undo_rollback()
            scen = f"cold CLI @ {count:,}"
            cli = [py, "-m", "modelversions", "--registry", reg_path, "current", "m"]
            res.add(scen, "modelversions current m (CLI)", run_timed(cli, cwd)[0])
            imp = [py, "-c", "import modelversions"]
            res.add(scen, 'python -c "import modelversions"', run_timed(imp, cwd)[0])
    cold_targets(cfg, res)


def cold_targets(cfg: Config, res: Results) -> None:
    small, big = cfg.cold_sizes[0], cfg.cold_sizes[-1]
    for op in OPS:
        a = res[(f"cold {op} @ {small:,}", f"modelversions, {OP}")]
        b = res[(f"cold {op} @ {big:,}", f"modelversions, {OP}")]
        wa = res[(f"cold {op} @ {small:,}", f"modelversions, {WHOLE}")]
        wb = res[(f"cold {op} @ {big:,}", f"modelversions, {WHOLE}")]
        ratio = b.median / a.median
        res.targets.append(
            Target(
                "floor",
                f"cold {op} at {big:,} vs {small:,} versions (fresh process)",
                ratio,
                2.0,
                False,
                f"op at {big:,}: {b.span()} / op at {small:,}: {a.span()}",
                "<= 2x",
                f"{ratio:.2f}x",
                f"imports excluded; whole process {wb.span()} / {wa.span()} = "
                f"{wb.median / wa.median:.2f}x",
            )
        )
    for count in (small, big):
        scen = f"cold load @ {count:,}"
        res.ratio_target(
            "floor",
            f"cold resolve + load at {count:,} versions vs joblib.load (fresh processes)",
            (scen, f"modelversions, {WHOLE}"),
            (scen, f"joblib.load, {WHOLE}"),
            1.15,
            note="whole-process wall time of each, the checkout on PYTHONPATH",
        )
    scen = f"cold CLI @ {big:,}"
    res.ratio_target(
        "floor",
        f"CLI `current` at {big:,} versions vs `import modelversions` (fresh processes)",
        (scen, "modelversions current m (CLI)"),
        (scen, 'python -c "import modelversions"'),
        1.5,
        note="whole-process wall time of each, the checkout on PYTHONPATH",
    )


def cold_table(cfg: Config, res: Results) -> list[str]:
    """The report's cold-start table: each operation at each size, both contenders."""
    if res.get(f"cold current @ {cfg.cold_sizes[0]:,}", f"modelversions, {OP}") is None:
        return []
    has_mlflow = any(k[0].startswith("cold ") and k[1].startswith("MLflow") for k in res.series)
    head = "| operation | versions | modelversions, op | modelversions, whole process |"
    rule = "| --- | --- | --- | --- |"
    if has_mlflow:
        head += " MLflow, op | MLflow, whole process | MLflow / modelversions (op, whole) |"
        rule += " --- | --- | --- |"
    lines = [head, rule]
    names = {"current": "current / get_model_version_by_alias",
             "load": "resolve + load / load_model(models:/m@production)",
             "versions": "versions() / search_model_versions",
             "rollback": "rollback() / by hand (tag, search, alias move)",
             "list-versions": "every record built / search_model_versions"}  # fmt: skip
    for op in OPS + FIGURES:
        for count in cfg.cold_sizes:
            scen = f"cold {op} @ {count:,}"
            a, wa = res[(scen, f"modelversions, {OP}")], res[(scen, f"modelversions, {WHOLE}")]
            row = f"| {names[op]} | {count:,} | {cell(a)} | {cell(wa)} |"
            b, wb = res.get(scen, f"MLflow, {OP}"), res.get(scen, f"MLflow, {WHOLE}")
            if has_mlflow and b is not None and wb is not None:
                row += (
                    f" {cell(b)} | {cell(wb)} | {b.median / a.median:.1f}x, "
                    f"{wb.median / wa.median:.1f}x |"
                )
            lines.append(row)
    return lines


def cell(s: Any) -> str:
    return f"{s.fmt()} ({s.fmt(min(s.samples))} - {s.fmt(max(s.samples))})"
