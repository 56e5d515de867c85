"""What is measured: the models, the floor's operations, fresh-registry calls.

Owns the workloads the scenarios share: a small fitted scikit-learn model and a large
linear model of a given size (plain dicts without scikit-learn), the floor each
modelversions call is compared with (``floor_dump``: ``joblib.dump`` + ``fsync``;
``durable_create``: the bare crash-safe create a history entry needs), a fresh
``ModelRegistry`` resolving and loading or listing (as a serving process starting up),
size labels and the speed of sha256 on this machine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .harness import GiB, MiB, fsync_dir, timed


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


def sha256_speed() -> float:
    """Bytes per second hashlib's sha256 reaches on this machine (64 MiB in memory)."""
    data = os.urandom(64 * MiB)
    best = min(timed(hashlib.sha256, data)[0] for _ in range(3))
    return len(data) / best
