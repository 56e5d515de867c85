"""Cold start on its own: the ``cold`` and ``import`` scenarios of ``benchmarks/run.py``.

A thin entry kept for habit: it runs ``run.py --only cold,import`` (fresh processes at
10, 2,000 and 10,000 versions for modelversions, and MLflow when importable; resolve +
load against a fresh ``joblib.load``; the CLI against ``import modelversions``; the
import from a regular install) and writes its report to ``--output`` (default: a
temporary file, printed), leaving docs/benchmarks.md alone. Every other option is
passed to ``run.py`` (``--quick``, ``--no-mlflow``, ``--cold-versions``, ...).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout, and benchmarks/ for suite

from suite.cli import main as run_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cold.md"
        if "--output" not in args:
            args += ["--output", str(out)]
        code = run_main(["--only", "cold,import", *args], description=__doc__.splitlines()[0])
        if out.exists():
            print(out.read_text())
    return code


if __name__ == "__main__":
    raise SystemExit(main())
