"""What signing costs: a signed save and rollback against unsigned ones, in one run.

Run ``python benchmarks/bench_signing.py`` (about half a minute) or with ``--quick``
(a few seconds, for a smoke test). Two registries in two folders, one opened with a
signing key, get the same operations alternately after a warm-up: ``save`` of a
small model, and a ``rollback`` (after a deploy that sets it up, not timed). It
prints the median time of each, the difference in milliseconds and the ratio.

A signed entry costs one more JSON encoding (the canonical bytes) and an HMAC-SHA256
over a few hundred bytes; every 16th entry also signs a snapshot.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelversions import ModelRegistry

KEY = "benchmark-signing-key-0123456789abcdef"


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(rounds: int, *, memory: bool) -> dict[str, dict[str, float]]:
    """Median seconds of a save and a rollback, unsigned and signed.

    ``memory``: both registries in memory (what signing itself costs, no disk);
    else in two folders, with every change fsync'd (what a user sees).
    """
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
    return {
        op: {kind: statistics.median(v) for kind, v in by_kind.items()}
        for op, by_kind in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds (smoke test)")
    args = parser.parse_args(argv)
    rounds = 20 if args.quick else 300
    print(
        f"# signing overhead: medians of {rounds} rounds, Python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    print("| operation | registry | unsigned | signed | difference | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for where, memory in (("folder (fsync'd)", False), ("memory", True)):
        for op, m in measure(rounds, memory=memory).items():
            diff = (m["signed"] - m["unsigned"]) * 1000
            print(
                f"| {op} | {where} | {m['unsigned'] * 1000:.3f} ms | {m['signed'] * 1000:.3f} ms "
                f"| {diff:+.3f} ms | {m['signed'] / m['unsigned']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
