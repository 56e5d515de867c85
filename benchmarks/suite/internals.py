"""The one place the benchmarks reach below modelversions' public API.

A benchmark explains its figures with facts the public API does not give: how often a
snapshot is written, how long a model's history is, where an artifact sits on disk. Each
such reach is a function here, so a refactor of the registry breaks one small module, not
the scenarios. Private names used: ``modelversions._snapshots._SNAPSHOT_EVERY`` and
``ModelRegistry._log.states`` (a model's ``ModelState``, its ``seq``); the artifact path
follows the documented storage layout (``models/<name>/@artifacts/<sha256>.joblib``).
"""

from __future__ import annotations

from typing import Any


def snapshot_every() -> int:
    """History entries between two snapshots of a model with few versions."""
    from modelversions._snapshots import _SNAPSHOT_EVERY

    return _SNAPSHOT_EVERY


def history_seq(reg: Any, name: str) -> int:
    """The number of the last history entry ``reg`` has applied for ``name``."""
    seq: int = reg._log.states[name].seq
    return seq


def artifact_path(reg: Any, name: str, sha256: str) -> str | None:
    """The local file holding the artifact ``sha256`` of ``name`` (``None``: not local)."""
    path: str | None = reg.backend.local_path(f"models/{name}/@artifacts/{sha256}.joblib")
    return path
