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
from modelversions.backends import Backend, open_backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

import _s3server  # isort: skip  (tests/ is on sys.path)

BackendFactory = Callable[[Path], Backend]

BACKENDS: dict[str, BackendFactory] = {
    "local": lambda tmp: LocalBackend(tmp / "registry"),
    "memory": lambda tmp: MemoryBackend(),
    # A bucket per test on a moto server started once per session (or the endpoint
    # named by MODELVERSIONS_S3_ENDPOINT); see tests/_s3server.py.
    "s3": _s3server.backend_for,
    # fsspec's MemoryFileSystem (one global store: a unique root per test).
    "fsspec-memory": lambda tmp: open_backend(
        f"fsspec+memory://{_s3server.unique_name(tmp)}/registry"
    ),
}


@pytest.fixture(scope="session", autouse=True)
def _s3_endpoint_lifetime() -> Iterator[None]:
    """Stop the moto server at the end of the session, if a test started it."""
    yield
    _s3server.shutdown()


@pytest.fixture(scope="session")
def s3_server() -> _s3server.S3Server:
    """The session's S3 endpoint (moto on 127.0.0.1 unless the environment names one)."""
    return _s3server.server()


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


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh local folder or memory backend: the two whose bytes tests damage by hand."""
    backend: Backend = (
        LocalBackend(tmp_path / "reg") if request.param == "local" else MemoryBackend()
    )
    yield backend
    backend.close()
