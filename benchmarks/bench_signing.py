"""What signing costs: a signed save and rollback against unsigned ones, in one run.

Run ``python benchmarks/bench_signing.py`` (about half a minute) or with ``--quick``
(a few seconds, for a smoke test). ``benchmarks/run.py`` measures the same (its
``signing`` scenario, ``suite/signing.py``) and writes it into docs/benchmarks.md; this
entry prints the medians on their own: unsigned, signed, the difference and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout, and benchmarks/ for suite

from suite.signing import WHERE, measure  # noqa: E402


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
    for where, memory in WHERE:
        for op, by_kind in measure(rounds, memory=memory).items():
            m = {kind: statistics.median(v) for kind, v in by_kind.items()}
            diff = (m["signed"] - m["unsigned"]) * 1000
            print(
                f"| {op} | {where} | {m['unsigned'] * 1000:.3f} ms | {m['signed'] * 1000:.3f} ms "
                f"| {diff:+.3f} ms | {m['signed'] / m['unsigned']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
