"""Benchmarks: modelversions against the joblib floor and against MLflow.

One entry point runs every scenario and writes ``docs/benchmarks.md`` plus a chart of
the ratios next to it (``docs/benchmarks.png``)::

    python -m pip install -e '.[bench]'       # MLflow, matplotlib, scikit-learn, numpy
    python benchmarks/run.py                  # full run (see "whole run" in the report)
    python benchmarks/run.py --quick --output /tmp/bench.md   # smoke test, under a minute
    python benchmarks/run.py --only cold,import               # one group of scenarios

Method: contenders alternate inside each scenario (A, B, C, A, B, C, ...) so drifting
machine load hits them alike; every figure is a median with min and max; each target is
a ratio of two figures measured in the same run. Large artifacts are timed after a
warm-up that touches fresh memory and flushes dirty pages (``os.sync``), because on the
machines this project runs on, memory given back to the host is slow to touch again.
Peak memory is measured in fresh subprocesses (``resource.getrusage`` maxrss).

Scenarios: ``small`` (save, list, deploy, mark_failed, rollback, resolve + load; durable
and ``durable=False``; MLflow's run-based and lightest registration), ``scale`` (10 ...
10,000 versions, warm), ``cold`` (fresh processes at 10, 2,000 and 10,000 versions, both
contenders; resolve + load against ``joblib.load``; the CLI against the import),
``large``, ``memory``, ``import`` (from the checkout and from a wheel installed in a
venv), ``signing`` and ``size``. ``bench_cold.py`` and ``bench_signing.py`` are thin
entries over the same code; ``bench_formats.py``, ``bench_s3.py`` and
``bench_concurrency.py`` run apart (their figures live in their own docs pages).

MLflow runs embedded (sqlite store, local artifacts), with telemetry off and explicit
``pip_requirements`` (without them MLflow infers requirements in a subprocess, ~2.7 s
per model). It is skipped when not importable (and in ``--quick`` unless ``--mlflow``).

The code lives in ``benchmarks/suite/`` (its ``__init__`` maps the modules): the harness,
one module per scenario group, the MLflow adapter, the report and the chart.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmark the checkout this script belongs to

from suite.cli import main  # noqa: E402  (benchmarks/ is on sys.path: this script's folder)

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
