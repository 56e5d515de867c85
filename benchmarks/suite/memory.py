"""The ``memory`` scenario, and what every fresh process measures (``run.py --child``).

Owns peak memory: a save or a load (modelversions, plain joblib, with and without
``mmap_mode='r'``; save then load against MLflow when measured) each in a fresh process,
its peak resident set (``VmHWM``) read after a baseline that imports the same modules.
``child`` is the side of ``harness.run_child`` that runs in the fresh process: one
operation, then its figures as one JSON line (also ``versions`` for the ``scale`` scenario).
"""

from __future__ import annotations

import contextlib
import gc
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from .harness import Config, GiB, Results, log, run_child
from .mlflow_peer import MLflowPeer
from .models import floor_dump, large_model, size_label


def bench_memory(cfg: Config, res: Results) -> None:
    """Peak RSS of save and load in fresh processes: modelversions vs plain joblib."""
    for nbytes in cfg.memory_sizes:
        label = size_label(nbytes)
        reps = 1 if cfg.quick else 5
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
            for i in range(reps):  # alternating; a new registry each time
                for mode in ("save-load-mv", "save-load-mlflow"):
                    spec = {"mode": mode, "size": nbytes, "registry": f"{reg}-{mode}{i}"}
                    out = run_child(cfg, spec)
                    res.add(f"peak RSS, {label}", mode, out["peak"], unit="B")
        shutil.rmtree(base)


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
