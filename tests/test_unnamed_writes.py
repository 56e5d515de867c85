"""Local writes through unnamed files (Linux ``O_TMPFILE``), and the save's one probe.

Where the system has them, the local backend writes each new object as an unnamed
file and links it in: a history entry in its own folder, an artifact in ``.tmp``
until its sha256 names it. These tests check the crash recipe still holds call by
call (written, fsynced, linked, folder fsynced), that nothing is ever left in
``.tmp``, that a taken name or a planted link is refused as before, that a folder
removed meanwhile or a system without unnamed files falls back to the named
temporary, and that a save whose state went stale while its artifact was written
(another writer committed) retries onto the newest state.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import _workers
import pytest

from modelversions import ModelRegistry, StorageError, _saving
from modelversions.backends import _unnamed
from modelversions.backends.local import LocalBackend

pytestmark = pytest.mark.skipif(not _unnamed.available(), reason="no O_TMPFILE here")


def test_a_create_writes_fsyncs_links_then_fsyncs_the_folder(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reg")
    backend.create("models/m/@log/000000000001.json", b"{}")  # folders made
    with _workers.IOTrap() as trap:
        backend.create("models/m/@log/000000000002.json", b'{"a":1}')
    calls = [c for c, _ in trap.trace if c in ("open", "write", "fsync", "link")]
    # the walk's folder opens, then the unnamed file in the key's own folder
    assert calls[-5:] == ["open", "write", "fsync", "link", "fsync"], trap.trace
    opened, _w, synced, linked, folder = trap.trace[-5:]
    assert opened[1].endswith("models/m/@log/.")  # opened in the key's folder
    assert synced[1] == opened[1]  # the unnamed file itself, before its link
    assert linked[1].startswith("/proc/self/fd/")
    assert linked[1].endswith("models/m/@log/000000000002.json")
    assert folder[1].endswith("models/m/@log")
    assert not any(".tmp" in p for _c, p in trap.trace)  # .tmp is not even walked
    assert backend.read("models/m/@log/000000000002.json") == b'{"a":1}'
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


def test_a_taken_name_or_a_planted_link_is_refused(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reg")
    backend.create("models/m/x.json", b"1")
    with pytest.raises(FileExistsError):
        backend.create("models/m/x.json", b"2")
    assert backend.read("models/m/x.json") == b"1"
    os.symlink(tmp_path / "elsewhere", tmp_path / "reg" / "models" / "m" / "y.json")
    with pytest.raises(StorageError, match="symbolic link"):
        backend.create("models/m/y.json", b"3")
    assert not (tmp_path / "elsewhere").exists()
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


def test_without_unnamed_files_the_named_temporary_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old kernel opens O_TMPFILE's bits as a folder: EISDIR. Nothing is lost."""
    monkeypatch.setattr(_unnamed, "_O_TMPFILE", 0)
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 0})
    with _workers.IOTrap() as trap:
        mv = reg.save("m", {"w": 1})
    links = [p for c, p in trap.trace if c == "link"]
    assert len(links) == 2 and all("/.tmp/" in p for p in links), links  # named ones
    assert reg.backend._unnamed is False  # type: ignore[attr-defined]  # asked once
    assert ModelRegistry(tmp_path / "reg").load("m", mv.version) == {"w": 1}
    assert os.listdir(tmp_path / "reg" / ".tmp") == []
    assert reg.verify().ok


def test_an_artifacts_temporary_leaves_nothing_behind(tmp_path: Path) -> None:
    """A repair sweeping ``.tmp`` mid-save finds nothing to remove, and the save lands."""
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 0})
    blob = reg.backend.open_blob()
    assert blob.unnamed  # type: ignore[attr-defined]
    blob.write(b"some bytes")
    assert os.listdir(tmp_path / "reg" / ".tmp") == []  # no name while it is written
    assert reg.verify(repair=True, min_age=0).ok
    assert blob.commit("models/m/@artifacts/x.joblib")
    assert reg.backend.read("models/m/@artifacts/x.joblib") == b"some bytes"
    other = reg.backend.open_blob()
    other.write(b"dropped")
    other.abort()
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


def test_a_folder_removed_before_the_link_is_walked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder goes between the walk and the link: the object lands in the new one."""
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 0})
    artifacts = tmp_path / "reg" / "models" / "m" / "@artifacts"
    real = _unnamed.link
    removed: list[str] = []

    def link(fd: int, folder: int, name: str) -> None:
        if not removed:
            removed.append(name)
            shutil.rmtree(artifacts)  # what a prune of the last artifact might do
        real(fd, folder, name)

    monkeypatch.setattr(_unnamed, "link", link)
    mv = reg.save("m", {"w": 1})
    monkeypatch.undo()
    assert removed and removed[0].endswith(".joblib")
    assert os.listdir(artifacts) == [f"{mv.sha256}.joblib"]
    assert ModelRegistry(tmp_path / "reg").load("m", mv.version) == {"w": 1}


def test_a_save_whose_state_went_stale_retries_on_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its commit builds on the state read before the artifact was written, without a
    second probe: the entry's create-if-absent refuses it, the retry re-reads."""
    root = tmp_path / "reg"
    reg, other = ModelRegistry(root), ModelRegistry(root)
    reg.save("m", {"w": 0})
    other.versions("m")
    write = _saving.ObjectArtifact.write

    def meanwhile(self: Any, backend: Any, name: str) -> Any:
        monkeypatch.setattr(_saving.ObjectArtifact, "write", write)
        other.save("m", {"w": "other"})  # another writer commits first
        return write(self, backend, name)

    monkeypatch.setattr(_saving.ObjectArtifact, "write", meanwhile)
    create, tried = reg.backend.create, []

    def creating(key: str, data: bytes) -> None:
        tried.append(key.rsplit("/", 1)[-1])
        create(key, data)

    monkeypatch.setattr(reg.backend, "create", creating)
    mv = reg.save("m", {"w": 1})
    # entry 2 tried first (taken by the other writer meanwhile), then 3
    assert tried == ["000000000002.json", "000000000003.json"], tried
    assert str(mv.version) == "1.2.0"  # after the other writer's 1.1.0
    fresh = ModelRegistry(root)
    assert [str(v.version) for v in fresh.versions("m")] == ["1.0.0", "1.1.0", "1.2.0"]
    assert fresh.load("m", "1.1.0") == {"w": "other"}
    assert fresh.load("m", "1.2.0") == {"w": 1}
    assert [e.seq for e in fresh.history("m")] == [1, 2, 3]  # one entry each, chained
    assert fresh.verify().ok


def test_an_unsupported_filesystem_answer_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EOPNOTSUPP from the unnamed open: the named temporary, and no error."""
    real = os.open

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _unnamed._O_TMPFILE == _unnamed._O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "not supported", path)
        return real(path, flags, *args, **kwargs)

    backend = LocalBackend(tmp_path / "reg")
    monkeypatch.setattr(_unnamed.os, "open", no_tmpfile)
    backend.create("models/m/x.json", b"1")
    assert backend._unnamed is False
    monkeypatch.undo()
    assert backend.read("models/m/x.json") == b"1"
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


def test_a_refused_link_through_proc_means_named_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A security module refusing the link: found by the first write's probe, once."""

    def refused(fd: int, folder: int, name: str) -> None:
        raise PermissionError(errno.EPERM, "denied", name)

    monkeypatch.setattr(_unnamed, "link", refused)
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"w": 1})
    assert reg.backend._unnamed is False  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert ModelRegistry(tmp_path / "reg").load("m", mv.version) == {"w": 1}
    assert os.listdir(tmp_path / "reg" / ".tmp") == []
    assert reg.verify().ok
