"""The ``small`` scenarios: a small model saved, listed, deployed, rolled back, loaded.

Owns the scenarios on a small scikit-learn model, each against the floor (``joblib.dump``
+ ``fsync``, ``joblib.load``, the bare durable create) and MLflow when measured: small
save; listing every version (warm and fresh registry); deploy, mark_failed and rollback
in one alternating loop on a model of 10 versions; resolve + load of the deployed model;
and what a fresh registry pays by history entries written since the last snapshot. Save,
deploy, mark_failed and rollback are also measured on a ``LocalBackend(path,
durable=False)`` registry (no fsync, as MLflow's artifacts), and the save against both of
MLflow's ways to register (a run with ``log_model``; ``save_model`` +
``create_model_version``, no run). Adds their targets and the notes on MLflow's
equivalents and on durability.
"""

from __future__ import annotations

import gc
from typing import Any

from .harness import Config, Results, log, timed
from .internals import history_seq, snapshot_every
from .mlflow_peer import durability_note
from .models import durable_create, floor_dump, fresh_load, fresh_versions, small_model

FAST = "modelversions, durable=False"
LIGHT = "MLflow, save_model + create_model_version"
AGAIN = "modelversions, the same bytes again (artifact stored already)"


def distinct(model: Any, i: int) -> Any:
    """``model`` with one attribute changed: the same size, different bytes."""
    if isinstance(model, dict):
        return {**model, "bench_seq": i}
    model.bench_seq = i
    return model


def bench_small(cfg: Config, res: Results) -> dict[str, Any]:
    """Small save, lifecycle calls and resolve+load, against the floor and MLflow."""
    import joblib

    from modelversions import ModelRegistry
    from modelversions.backends.local import LocalBackend

    model = small_model()
    same = small_model()  # saved again and again: its bytes never change
    reg_dir = cfg.path("small", "registry")
    reg = ModelRegistry(reg_dir)
    fast = ModelRegistry(LocalBackend(cfg.path("small", "fast"), durable=False))
    floor_dir = cfg.path("small", "floor", "x").parent
    peer = cfg.mlflow
    # warm-ups (first call costs: folders, MLflow's database schema)
    reg.save("small", model)
    reg.save("again", same)
    fast.save("small", model)
    floor_dump(model, floor_dir / "warm.joblib")
    if peer is not None:
        peer.log_register("small", model)
        peer.save_register("light", model)
    gc.collect()
    log(f"  small save x{cfg.small_repeats}")
    for i in range(cfg.small_repeats):
        fresh = distinct(model, i)  # new bytes each time, as a training run saves
        res.add("small save", "modelversions", timed(reg.save, "small", fresh)[0])
        res.add("small save", FAST, timed(fast.save, "small", fresh)[0])
        res.add("small save", AGAIN, timed(reg.save, "again", same)[0])
        path = floor_dir / f"{i}.joblib"
        res.add("small save", "joblib.dump+fsync", timed(floor_dump, fresh, path)[0])
        if peer is not None:
            res.add("small save", "MLflow", timed(peer.log_register, "small", fresh)[0])
            res.add("small save", LIGHT, timed(peer.save_register, "light", fresh)[0])

    # listing all versions (the save registries now hold small_repeats + 1 versions)
    count = len(reg.versions("small"))
    scen = f"list {count} versions"
    for _ in range(cfg.op_repeats):
        res.add(scen, "modelversions", timed(reg.versions, "small")[0])
        res.add(
            scen,
            "modelversions (fresh registry)",
            timed(fresh_versions, reg_dir, "small")[0],
        )
        if peer is not None:
            res.add(scen, "MLflow", timed(peer.list, "small")[0])

    # lifecycle on a model with 10 versions, the same for both
    life_dir = cfg.path("life", "registry")
    life = ModelRegistry(life_dir)
    versions = [str(life.save("life", model).version) for _ in range(10)]
    life_fast = ModelRegistry(LocalBackend(cfg.path("life", "fast"), durable=False))
    for _ in range(10):
        life_fast.save("life", model)
    peer_versions = [peer.log_register("life", model) for _ in range(10)] if peer else []
    n = cfg.op_repeats
    log(f"  deploy / mark_failed / rollback x{n}")
    # One loop visits every operation, so a burst of disk activity from elsewhere hits
    # them all alike. deploy moves "staging" between versions 1 and 2, mark_failed marks
    # versions 3..8, rollback moves "production" from 10 back to 9.
    bare_dir = cfg.path("life", "bare", "x").parent
    base, top = versions[-2], versions[-1]
    for r in (life, life_fast):
        r.mark_stable("life", base)
        r.deploy("life", base)
    if peer is not None:
        peer.mark("life", peer_versions[-2], "stable")
        peer.deploy("life", peer_versions[-2])
    for i in range(n):
        v = versions[i % 2]
        res.add("deploy", "modelversions", timed(life.deploy, "life", v, env="staging")[0])
        res.add("deploy", FAST, timed(life_fast.deploy, "life", v, env="staging")[0])
        res.add("durable commit", "write+fsync+link+fsync folder",
                timed(durable_create, bare_dir, i)[0])  # fmt: skip
        if peer is not None:
            pv = peer_versions[i % 2]
            res.add("deploy", "MLflow",
                    timed(peer.deploy_equivalent, "life", pv, "staging")[0])  # fmt: skip
            res.add("deploy", "MLflow, alias move only",
                    timed(peer.deploy, "life", pv, "staging")[0])  # fmt: skip
        # Each version comes back every 6 rounds: its reason (and MLflow's status tag)
        # alternates, so both sides really write (MLflow's sqlite skips an unchanged tag).
        v = versions[2 + i % 6]
        why = f"bench {(i // 6) % 2}"
        res.add("mark_failed", "modelversions",
                timed(life.mark_failed, "life", v, reason=why)[0])  # fmt: skip
        res.add("mark_failed", FAST,
                timed(life_fast.mark_failed, "life", v, reason=why)[0])  # fmt: skip
        if peer is not None:
            pv = peer_versions[2 + i % 6]
            res.add("mark_failed", "MLflow",
                    timed(peer.mark_failed_equivalent, "life", pv, why)[0])  # fmt: skip
            tag = "failed" if (i // 6) % 2 == 0 else "failed (again)"
            res.add("mark_failed", "MLflow, status tag only",
                    timed(peer.mark, "life", pv, tag)[0])  # fmt: skip
        for r, who in ((life, "modelversions"), (life_fast, FAST)):
            r.mark_stable("life", top)
            r.deploy("life", top)
            t, back = timed(r.rollback, "life")
            assert str(back.version) == base, back
            res.add("rollback", who, t)
        if peer is not None:
            peer.mark("life", peer_versions[-1], "stable")
            peer.deploy("life", peer_versions[-1])
            t, target = timed(peer.rollback, "life")
            assert target == peer_versions[-2], target
            res.add("rollback", "MLflow", t)

    seq = history_seq(life, "life")  # the history a fresh registry reads to resolve
    every = snapshot_every()  # the model has few versions
    res.hidden["replayed"] = (
        f"The model loaded by `resolve + load` has {seq} history entries; a fresh registry "
        f"reads the snapshot of entry {seq - seq % every} and replays the {seq % every} "
        "after it."
    )
    # resolve + load the deployed model (now `base` on both)
    art = life.current("life")
    assert art is not None
    ref = floor_dir / "deployed.joblib"
    joblib.dump(model, ref)
    life.load("life")  # the warm registry has verified this artifact once
    log(f"  resolve + load x{n}")
    for _ in range(n):
        res.add("resolve + load", "modelversions (warm registry)", timed(life.load, "life")[0])
        res.add(
            "resolve + load",
            "modelversions (fresh registry)",
            timed(fresh_load, life_dir, "life")[0],
        )
        res.add("resolve + load", "joblib.load", timed(joblib.load, ref)[0])
        if peer is not None:
            res.add("resolve + load", "MLflow", timed(peer.load, "life")[0])

    # what a fresh registry pays to resolve, by entries written since the last snapshot
    sweep = ModelRegistry(life_dir)
    sweep.save("sweep", model)
    sweep.save("sweep", model)
    sweep.deploy("sweep", "1.0.0")
    for after in (0, every // 2, every - 1):
        while sweep.current("sweep") is not None and history_seq(sweep, "sweep") % every != after:
            sweep.mark_failed("sweep", "1.1.0", reason="pad")
        for _ in range(n // 2):
            res.add("fresh registry, resolve + load", f"{after} entries after the snapshot",
                    timed(fresh_load, life_dir, "sweep")[0])  # fmt: skip

    res.ratio_target(
        "floor",
        "small save vs joblib.dump+fsync",
        ("small save", "modelversions"),
        ("small save", "joblib.dump+fsync"),
        5,
        note="save also writes the version's record (fsync'd, atomic) and sha256",
    )
    if peer is not None:
        res.ratio_target(
            "mlflow",
            "small save vs MLflow log+register",
            ("small save", "modelversions"),
            ("small save", "MLflow"),
            20,
        )
        res.ratio_target(
            "mlflow",
            "small save vs MLflow save_model + create_model_version",
            ("small save", "modelversions"),
            ("small save", LIGHT),
            5,
            note="MLflow's lightest way to register a version: no run, no artifact copy",
        )
        single = {"deploy": "MLflow, alias move only", "mark_failed": "MLflow, status tag only"}
        for op in ("deploy", "mark_failed", "rollback"):
            target = res.ratio_target(
                "mlflow", f"{op} vs MLflow", (op, "modelversions"), (op, "MLflow"), 10
            )
            bare = res.get(op, single.get(op, ""))
            if target is not None and bare is not None:
                ours = res[(op, "modelversions")]
                target.note = (
                    f"against {bare.contender} ({bare.fmt()}): {bare.median / ours.median:.1f}x"
                )
        for who in ("warm registry", "fresh registry"):
            res.ratio_target(
                "mlflow",
                f"resolve + load ({who}) vs MLflow",
                ("resolve + load", f"modelversions ({who})"),
                ("resolve + load", "MLflow"),
                10,
            )
    res.note(
        "deploy",
        "MLflow equivalents (same outcome): deploy = read the aliased version, "
        "`set_registered_model_alias`, tag the replaced version stable if it was a "
        "candidate (never, in this loop: it alternates between two stable versions); "
        "mark_failed = `set_model_version_tag` for the status and for the reason; rollback "
        "= read the aliased version, tag it failed, `search_model_versions` for stable "
        "ones, pick the latest below, move the alias. The single calls (alias move only, "
        "status tag only) are listed too. Each modelversions call also records who, when "
        "and why in the history log, as one fsync'd atomic commit (two fsyncs: the entry "
        "and its folder).",
    )
    res.note(
        "small save",
        "every contender saves new bytes each time (the model with one attribute changed, "
        "as successive training runs save), so each save writes a new artifact; the "
        f"`{AGAIN}` row saves one unchanged model again and again: its artifact is found "
        "stored (content-addressed), only the history entry is new (3 fsyncs, not 4).",
    )
    res.note(
        "deploy",
        "mark_failed really writes on both sides: each version comes back every 6 rounds "
        "with the other of two reasons (and, for the `status tag only` row, the other of "
        "two status values), so MLflow's sqlite store never skips an unchanged tag; "
        "modelversions appends a history entry on every call, changed or not.",
    )
    if peer is not None:
        res.note("durability", durability_note(peer.version))
    return {"artifact": art}
