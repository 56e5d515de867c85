"""The ``signing`` scenario: what a signing key costs a save and a rollback.

Owns ``measure``: two registries, one opened with a signing key, get the same operations
alternately after a warm-up (``save`` of a small model, and a ``rollback`` after an
untimed deploy that sets it up), in memory (what signing itself costs) and in two folders
(every change fsync'd: what a user sees). ``bench_signing`` adds the samples to the run's
``Results`` (scenarios ``signing: save, memory`` ...); ``benchmarks/bench_signing.py`` prints
the same figures on their own. A signed entry costs one more JSON encoding (the canonical
bytes) and an HMAC-SHA256 over a few hundred bytes; every 16th entry also signs a snapshot.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .harness import Config, Results, log

KEY = "benchmark-signing-key-0123456789abcdef"
WHERE = (("folder (fsync'd)", False), ("memory", True))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(rounds: int, *, memory: bool) -> dict[str, dict[str, list[float]]]:
    """Seconds of each save and rollback, unsigned and signed (after 5 warm-up rounds)."""
    from modelversions import ModelRegistry

    times: dict[str, dict[str, list[float]]] = {
        op: {"unsigned": [], "signed": []} for op in ("save", "rollback")
    }
    with tempfile.TemporaryDirectory() as tmp:
        regs = {
            "unsigned": ModelRegistry("memory://" if memory else Path(tmp) / "plain"),
            "signed": ModelRegistry(
                "memory://" if memory else Path(tmp) / "signed", signing_key=KEY
            ),
        }
        for reg in regs.values():
            reg.save("m", {"w": -1}, "0.1.0")
            reg.deploy("m", "0.1.0")
            reg.mark_stable("m", "0.1.0")
        for i in range(rounds + 5):  # the first 5 are a warm-up
            for kind in ("unsigned", "signed") if i % 2 else ("signed", "unsigned"):
                reg = regs[kind]
                t_save = _timed(lambda reg=reg, i=i: reg.save("m", {"w": i}))
                version = reg.versions("m")[-1].version
                reg.deploy("m", version)
                t_rollback = _timed(lambda reg=reg: reg.rollback("m"))
                if i >= 5:
                    times["save"][kind].append(t_save)
                    times["rollback"][kind].append(t_rollback)
    return times


def bench_signing(cfg: Config, res: Results) -> None:
    rounds = 20 if cfg.quick else 300
    log(f"  signing x{rounds}")
    for where, memory in WHERE:
        for op, by_kind in measure(rounds, memory=memory).items():
            for kind, samples in by_kind.items():
                for t in samples:
                    res.add(f"signing: {op}, {where}", kind, t)


def signing_section(res: Results) -> list[str]:
    """The report's Signing section, from this run's figures (empty if not measured)."""
    rows = []
    for where, _ in WHERE:
        for op in ("save", "rollback"):
            plain = res.get(f"signing: {op}, {where}", "unsigned")
            signed = res.get(f"signing: {op}, {where}", "signed")
            if plain is None or signed is None:
                continue
            diff = (signed.median - plain.median) * 1e3
            rows.append(
                f"| {op} | {where} | {plain.fmt()} ({plain.fmt(min(plain.samples))} - "
                f"{plain.fmt(max(plain.samples))}) | {signed.fmt()} "
                f"({signed.fmt(min(signed.samples))} - {signed.fmt(max(signed.samples))}) "
                f"| {diff:+.3f} ms | {signed.median / plain.median:.2f}x |"
            )
    if not rows:
        return []
    memory = res.get("signing: save, memory", "signed")
    plain = res.get("signing: save, memory", "unsigned")
    cost = (memory.median - plain.median) * 1e3 if memory and plain else float("nan")
    n = len(memory.samples) if memory else 0
    return [
        "## Signing",
        "",
        "What a signing key costs: two registries, one opened with `signing_key`, get the "
        "same operations alternately after a warm-up (a small save; a rollback after an "
        f"untimed deploy); median (min - max) of {n} rounds each. Also on its own: "
        "`python benchmarks/bench_signing.py`.",
        "",
        "| operation | registry | unsigned | signed | difference | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"In memory, where no fsync hides it, signing a history entry costs {cost:.3f} ms "
        "here (one more JSON encoding of the entry and an HMAC-SHA256 over a few hundred "
        "bytes). On a folder every change waits for two fsyncs, whose variance is larger "
        "than that, so the folder rows' difference can fall either way from run to run. "
        "Every 16th entry also signs a snapshot: one more pass of SHA-256 over its bytes.",
        "",
    ]
