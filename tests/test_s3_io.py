"""The S3 wire edge without a server: the upload-part body and the shared reader base.

Streaming ``GET`` reads (``_S3Reader``) and error translation are exercised against the
moto server in ``tests/test_s3.py``; here the ``_Window`` over a spool file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator

import pytest

from modelversions.backends._s3_io import _Window

DATA = bytes(range(256)) * 4


@pytest.fixture
def fd() -> Iterator[int]:
    with tempfile.TemporaryFile() as f:
        f.write(DATA)
        f.flush()
        yield f.fileno()


def test_window_reads_its_range_only(fd: int) -> None:
    w = _Window(fd, 100, 300)
    assert len(w) == 300
    assert w.read() == DATA[100:400]
    assert w.tell() == 300 and len(w) == 0
    assert w.read(10) == b""


def test_window_seeks_are_clamped_to_the_window(fd: int) -> None:
    w = _Window(fd, 10, 50)
    assert w.seek(-5) == 0  # not an error: clamped (the HTTP client rewinds bodies)
    assert w.seek(10, os.SEEK_END) == 50
    assert w.seek(-20, os.SEEK_END) == 30
    assert w.read(5) == DATA[40:45]
    assert w.seek(5, os.SEEK_CUR) == 40
    assert w.read() == DATA[50:60]
    w.seek(0)
    assert io.BufferedReader(w, buffer_size=7).read() == DATA[10:60]


def test_window_close_leaves_the_descriptor_open(fd: int) -> None:
    w = _Window(fd, 0, 4)
    w.close()
    os.lseek(fd, 0, os.SEEK_SET)
    assert os.read(fd, 4) == DATA[:4]
