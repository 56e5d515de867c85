"""Shared fixtures: every backend the conformance and registry suites run against.

``BACKENDS`` maps a backend id to a factory taking pytest's ``tmp_path`` and
returning a fresh, empty :class:`~modelversions.backends.Backend`. A test that
takes the ``backend`` or ``registry`` fixture runs once per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelversions import ModelRegistry
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

BackendFactory = Callable[[Path], Backend]

BACKENDS: dict[str, BackendFactory] = {
    "local": lambda tmp: LocalBackend(tmp / "registry"),
    "memory": lambda tmp: MemoryBackend(),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> BackendFactory:
    """A factory for the parametrized backend; calling it twice gives the same store
    for folder-like backends (to test reopening) and a fresh one for memory."""
    return BACKENDS[request.param]


@pytest.fixture
def backend(backend_factory: BackendFactory, tmp_path: Path) -> Iterator[Backend]:
    b = backend_factory(tmp_path)
    yield b
    b.close()


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return ModelRegistry(backend)
