"""Damage done by hand to a registry's storage, for the tests that must detect it.

``overwrite`` changes or plants stored bytes in place, as a disk or a careless hand
would, bypassing the backends' create-if-absent (local folders and memory only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelversions import _state
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend


def overwrite(backend: Backend, key: str, data: bytes) -> None:
    """Change or plant stored bytes in place, as damage would (no create-if-absent)."""
    if isinstance(backend, LocalBackend):
        path = Path(backend._path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(0o644)  # artifacts are stored read-only
        path.write_bytes(data)
    else:
        assert isinstance(backend, MemoryBackend)
        backend._data[key] = data


def stored(backend: Backend) -> dict[str, bytes]:
    """Every stored object, by key."""
    return {k: backend.read(k) for k in backend.list("")}


def payload(backend: Backend, key: str) -> dict[str, Any]:
    """The decoded JSON of a stored history entry or snapshot (its checksum checked)."""
    return _state.decode(backend.read(key), key)
