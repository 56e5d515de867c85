"""The ``large`` scenarios: save and load of large models against plain joblib.

Owns, for each size (``--sizes``, default 100 MiB and 1 GiB): save against
``joblib.dump`` + ``fsync`` (and MLflow below 1 GiB in a full run); load from the page
cache, first (sha256 verified) and repeated (verified-file memo), with and without
``mmap_mode='r'``, against ``joblib.load`` and the sha256 of the file alone; load from
the disk with the page cache dropped. Every timed step starts after ``settle``.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .harness import Config, GiB, Results, drop_cache, log, settle, timed
from .internals import artifact_path
from .models import floor_dump, fresh_load, large_model, size_label, weights_of


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
    reps = 3 if cfg.quick else (5 if nbytes >= GiB else 9)  # at least 5 in a full run
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
    art = artifact_path(reg, "big", mv.sha256)
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
    for _ in range(2 if cfg.quick else 5):
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
