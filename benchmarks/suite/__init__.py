"""The benchmark suite behind ``benchmarks/run.py``, one concern per module.

::

    cli.py          options, the run's Config, the scenarios in order, then the report
    harness.py      Results (series, medians, min/max, targets), timed, settle, run_child
    models.py       the workloads: small and large models, the joblib floor, fresh loads
    mlflow_peer.py  MLflow 3 embedded, telemetry off, its equivalent of each operation
    internals.py    the only reach below modelversions' public API (private names)
    small.py        small save, listing, deploy / mark_failed / rollback, resolve + load
    scale.py        lifecycle calls and versions() at 10 ... 10,000 versions
    cold.py         fresh processes at 10, 2,000, 10,000 versions, both contenders
    large.py        save and load of large models (page cache, memo, mmap, from disk)
    memory.py       peak memory in fresh processes; the --child side of every fresh run
    install.py      import time (checkout; wheel in a venv) and install size
    signing.py      what a signing key costs a save and a rollback
    report.py       docs/benchmarks.md: targets, figures, explanations, machine
    chart.py        docs/benchmarks.png

Imports point one way: cli -> the scenarios (small, scale, cold, large, memory, install,
signing), report (which also uses the table helpers of cold and signing) and chart ->
models, internals -> harness -> mlflow_peer (which imports nothing from here); report and
chart only read a finished ``Results``.
``run.py`` puts ``benchmarks/`` on ``sys.path`` and imports ``suite.cli``; modules here
import each other relatively, and import modelversions, joblib, numpy, scikit-learn and
MLflow inside the functions that use them, so a fresh ``--child`` process starts light.
"""
