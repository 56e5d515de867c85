"""The ``scale`` scenarios: lifecycle calls and listing as a registry grows.

Owns rollback, deploy and mark_failed on registries of 10 to 10,000 versions (built with
``durable=False``, measured durable) and the ratio of rollback at the largest to the
smallest; ``versions()`` on the largest, warm, with a fresh registry and in a fresh
process, against a budget.
"""

from __future__ import annotations

import gc
import time

from .harness import Config, Results, Target, log, run_child, timed
from .models import fresh_versions


def bench_scale(cfg: Config, res: Results) -> None:
    """Rollback (and deploy, mark_failed) at 10 ... 10,000 versions; versions() at the top."""
    from modelversions import ModelRegistry
    from modelversions.backends.local import LocalBackend

    sizes = cfg.scale_sizes
    for count in sizes:
        path = cfg.path("scale", f"n{count}")
        log(f"  building {count:,} versions")
        build = ModelRegistry(LocalBackend(path, durable=False))
        start = time.perf_counter()
        for i in range(count):
            build.save("m", {"w": i})
        elapsed = time.perf_counter() - start
        res.facts[f"build {count}"] = (
            f"{count:,} versions saved in {elapsed:.1f} s ({count / elapsed:,.0f}/s, "
            "public API, `LocalBackend(path, durable=False)`)"
        )
        reg = ModelRegistry(path)  # durable, as in production
        vs = [str(mv.version) for mv in reg.versions("m")]
        base, top = vs[-2], vs[-1]
        reg.mark_stable("m", base)
        reg.deploy("m", base)
        scen = f"rollback @ {count:,} versions"
        reps = cfg.op_repeats * 2
        for i in range(reps):
            reg.mark_stable("m", top)
            reg.deploy("m", top)
            res.add(scen, "modelversions", timed(reg.rollback, "m")[0])
            res.add(
                f"deploy @ {count:,} versions",
                "modelversions",
                timed(reg.deploy, "m", vs[0])[0],
            )
            reg.deploy("m", base)
            res.add(
                f"mark_failed @ {count:,} versions",
                "modelversions",
                timed(reg.mark_failed, "m", vs[1], reason=f"bench {i % 2}")[0],
            )

    small, big = sizes[0], sizes[-1]
    a = res[(f"rollback @ {small:,} versions", "modelversions")]
    b = res[(f"rollback @ {big:,} versions", "modelversions")]
    res.targets.append(
        Target(
            "floor",
            f"rollback at {big:,} vs {small:,} versions",
            b.median / a.median,
            2.0,
            False,
            f"{b.span()} / {a.span()} (means {b.fmt(b.mean)} / {a.fmt(a.mean)})",
            "<= 2x",
            f"{b.median / a.median:.2f}x",
            "the mean includes the snapshot written every 16 changes",
        )
    )

    # versions() on the biggest registry: cold (fresh registry) and warm
    path = cfg.workdir / "scale" / f"n{big}"
    scen = f"versions() @ {big:,}"
    warm = ModelRegistry(path)
    warm.versions("m")
    for _ in range(cfg.op_repeats):
        gc.collect()
        t, got = timed(fresh_versions, path, "m")
        res.add(scen, "cold (fresh ModelRegistry)", t)
        res.add(scen, "warm", timed(warm.versions, "m")[0])
    assert len(got) == big
    for _ in range(3 if cfg.quick else 5):
        out = run_child(cfg, {"mode": "versions", "path": str(path)})
        res.add(scen, "cold (fresh process)", out["seconds"])
    for label in ("cold (fresh ModelRegistry)", "warm"):
        s = res[(scen, label)]
        res.budget_target(
            f"versions() at {big:,} versions, {label}",
            s.median,
            0.1,
            "s",
            s.span(),
        )
