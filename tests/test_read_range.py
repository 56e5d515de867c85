"""``Backend.read_range`` on every backend in ``conftest.BACKENDS``, and its default.

A layout-2 snapshot is read by range (its head, then a block at a time), so each
backend's ranged read must give exactly the bytes asked for, fewer at the end of the
object, nothing past it, and ``FileNotFoundError`` for a missing key.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

import pytest

from modelversions import ModelRegistry, StorageError
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

DATA = bytes(range(256)) * 3


@pytest.mark.parametrize(
    ("start", "end"), [(0, 10), (5, 6), (250, 520), (700, 768), (700, 5000), (768, 800), (9, 9)]
)
def test_read_range_gives_the_bytes_asked_for(backend: Backend, start: int, end: int) -> None:
    backend.create("a/r", DATA)
    assert backend.read_range("a/r", start, end) == DATA[start:end]


def test_read_range_of_a_missing_key(backend: Backend) -> None:
    with pytest.raises(FileNotFoundError):
        backend.read_range("a/none", 0, 10)


def test_read_range_refuses_a_backwards_range(backend: Backend) -> None:
    backend.create("r", DATA)
    with pytest.raises(ValueError, match="bad range"):
        backend.read_range("r", 10, 5)


class _Plain(Backend):
    """A third-party backend that binds only the abstract primitives."""

    def __init__(self) -> None:
        self.inner = MemoryBackend()

    def read(self, key: str) -> bytes:
        return self.inner.read(key)

    def create(self, key: str, data: bytes) -> None:
        self.inner.create(key, data)

    def open_blob(self):  # type: ignore[no-untyped-def]
        return self.inner.open_blob()

    def open_read(self, key: str) -> IO[bytes]:
        return io.BytesIO(self.inner.read(key))

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class _Stream(io.RawIOBase):
    """A raw stream that cannot seek and returns at most 7 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        n = min(7, len(buf), len(self._data))
        buf[:n], self._data = self._data[:n], self._data[n:]
        return n


class _Unseekable(_Plain):
    def open_read(self, key: str) -> IO[bytes]:
        return _Stream(self.inner.read(key))  # type: ignore[return-value]


@pytest.mark.parametrize("kind", [_Plain, _Unseekable])
def test_the_default_read_range_serves_backends_without_one(kind: type[_Plain]) -> None:
    plain = kind()
    plain.create("r", DATA)
    assert plain.read_range("r", 250, 520) == DATA[250:520]
    assert plain.read_range("r", 700, 5000) == DATA[700:]
    with pytest.raises(FileNotFoundError):
        plain.read_range("none", 0, 1)
    reg = ModelRegistry(plain)  # a registry's snapshots are read through it
    for i in range(20):
        reg.save("m", {"w": i})
    assert len(ModelRegistry(plain).versions("m")) == 20
    assert ModelRegistry(plain).verify().ok


@pytest.mark.skipif(os.name != "posix", reason="symlinks and dir_fd: POSIX")
def test_local_read_range_never_follows_a_symlink(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reg")
    outside = tmp_path / "secret"
    outside.write_bytes(b"secret bytes")
    (tmp_path / "reg" / "a").mkdir(parents=True)
    (tmp_path / "reg" / "a" / "r").symlink_to(outside)
    (tmp_path / "reg" / "b").symlink_to(tmp_path / "reg" / "a")
    for key in ("a/r", "b/r"):
        with pytest.raises((StorageError, FileNotFoundError)):
            backend.read_range(key, 0, 5)
