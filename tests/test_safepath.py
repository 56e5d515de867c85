"""The local folder's path walk (modelversions/backends/_safepath.py), without a backend.

Both ways of walking are checked here on POSIX: folder descriptors (``*at`` calls) and
the path-and-``lstat`` fallback that Windows uses (forced by turning ``_FDS`` off).
The backend-level adversarial tests are in tests/test_local_safety.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelversions.backends import _safepath
from modelversions.backends._safepath import SafeRoot, close_dir, split_key
from modelversions.errors import InvalidInputError, StorageError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="plants POSIX symlinks")


@pytest.fixture(params=["fds", "lstat"])
def safe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SafeRoot]:
    if request.param == "lstat":
        mp = pytest.MonkeyPatch()
        mp.setattr(_safepath, "_FDS", False)
        request.addfinalizer(mp.undo)
    elif not _safepath._FDS:
        pytest.skip("no folder descriptors on this platform")
    root = SafeRoot(str(tmp_path / "reg"), durable=False)
    root.make_root()
    yield root
    root.close()


@pytest.mark.parametrize("key", ["", "/a", "a\\b", "a/../b", "..", "a//b", "./a", "a/.", "a/"])
def test_split_key_refuses_a_key_that_could_leave_the_root(key: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid storage key"):
        split_key(key)


def test_walk_creates_missing_folders_and_refuses_a_planted_link(
    safe: SafeRoot, tmp_path: Path
) -> None:
    close_dir(safe.walk(["a", "b"], create=True))
    assert (tmp_path / "reg" / "a" / "b").is_dir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "reg" / "a" / "ln").symlink_to(outside)
    for create in (False, True):
        with pytest.raises(StorageError, match="is a symbolic link"):
            safe.walk(["a", "ln", "c"], create=create)
    assert list(outside.iterdir()) == []


def test_a_linked_file_is_refused_a_missing_one_is_none(safe: SafeRoot, tmp_path: Path) -> None:
    close_dir(safe.walk(["a"], create=True))
    target = tmp_path / "secret"
    target.write_bytes(b"x")
    (tmp_path / "reg" / "a" / "f").symlink_to(target)
    with pytest.raises(StorageError, match="is a symbolic link"):
        safe.open_leaf(["a", "f"], _safepath.O_READ_LEAF)
    with pytest.raises(StorageError, match="is a symbolic link"):
        safe.leaf_stat(["a", "f"])
    assert safe.leaf_stat(["a", "missing"]) is None
    assert safe.leaf_stat(["nope", "missing"]) is None


def test_scan_collects_links_or_raises(safe: SafeRoot, tmp_path: Path) -> None:
    close_dir(safe.walk(["a", "b"], create=True))
    (tmp_path / "reg" / "a" / "b" / "k").write_bytes(b"1")
    (tmp_path / "reg" / "a" / "ln").symlink_to(tmp_path)
    folder = safe.walk([], create=False)
    try:
        keys: list[str] = []
        links: list[str] = []
        safe.scan(folder, [], keys, links)
        assert (keys, links) == (["a/b/k"], ["a/ln"])
        with pytest.raises(StorageError, match="is a symbolic link"):
            safe.scan(folder, [], [], None)
    finally:
        close_dir(folder)


def test_a_kept_folder_replaced_meanwhile_is_walked_again(tmp_path: Path) -> None:
    if not _safepath._FDS:
        pytest.skip("no folder descriptors on this platform")
    safe = SafeRoot(str(tmp_path), durable=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"old")

    def read(parts: list[str]) -> bytes:
        fd = safe.open_leaf(parts, _safepath.O_READ_LEAF)
        try:
            return os.read(fd, 100)
        finally:
            os.close(fd)

    assert read(["a", "f"]) == b"old"
    (tmp_path / "a").rename(tmp_path / "gone")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"new")
    os.unlink(tmp_path / "gone" / "f")
    assert read(["a", "f"]) == b"new"
    for i in range(_safepath._CACHED_DIRS + 4):
        (tmp_path / f"d{i}").mkdir()
        (tmp_path / f"d{i}" / "f").write_bytes(b"")
        read([f"d{i}", "f"])
    assert len(safe._dirs) == _safepath._CACHED_DIRS
    safe.close()
    assert not safe._dirs
