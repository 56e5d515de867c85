"""Nothing escapes a local registry's folder (issue 9).

A symlink planted anywhere below the root is never followed: every operation either
refuses with a StorageError naming the link or leaves it alone, nothing outside the
root is read into the registry, written or deleted, and ``verify()`` reports the link
(not ok) with or without repair. The root itself may be a symlink. Repair never
removes a temporary younger than ``min_age``; a save whose temporary vanishes fails
with StorageError. ``~`` is expanded; a registry path that is a file, or cannot be
created, is a StorageError on the library and the command line alike.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelversions import ModelRegistry, StorageError, cli
from modelversions.backends import _local_blob, _unnamed, local
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symlinks and dir_fd: POSIX")


def _tree(top: Path) -> dict[str, bytes | None]:
    """Every path below ``top`` with its bytes (None for a folder)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), top)] = None
        for f in filenames:
            out[os.path.relpath(os.path.join(dirpath, f), top)] = Path(dirpath, f).read_bytes()
    return out


def _registry(root: Path) -> ModelRegistry:
    reg = ModelRegistry(root)
    reg.save("m", {"w": 1})
    reg.save("m", {"w": 2})
    reg.deploy("m", "1.0.0")
    reg.close()
    return reg


def _artifact(root: Path) -> str:
    reg = ModelRegistry(root)
    return f"models/m/@artifacts/{reg.get('m', '1.0.0').sha256}.joblib"


# Where a link is planted: each is moved outside the root and replaced by a symlink to
# its copy there, so following the link would "work" (the dangerous case).
PLACES = [
    ".tmp",
    "models",
    "models/m",
    "models/m/@artifacts",
    "models/m/@log",
    "models/m/@log/000000000001.json",
    "models/m/@log/000000000003.json",
    "index",
    "index/m",
    "ARTIFACT",
]


def _plant(root: Path, outside: Path, place: str) -> tuple[Path, Path]:
    """Replace ``root/place`` by a symlink to its copy in ``outside``; add sentinels."""
    if place == "ARTIFACT":
        place = _artifact(root)
    here = root / place
    there = outside / place.replace("/", "_")
    shutil.move(str(here), str(there))
    os.symlink(there, here)
    if there.is_dir():
        # What a careless repair or save would remove or overwrite: an "orphan"
        # artifact, an old temporary of a dead writer, a would-be next log entry.
        for name in (
            "sentinel.joblib",
            f"{local._HOST}.1.{uuid.uuid4().hex}.tmp",
            "000000000004.json",
        ):
            (there / name).write_bytes(b"outside, keep me")
            old = time.time() - 10 * 86400
            os.utime(there / name, (old, old))
    return here, there


def _save(reg: ModelRegistry) -> Any:
    return reg.save("m", {"w": 3})


OPS: dict[str, Callable[[ModelRegistry], Any]] = {
    "save": _save,
    "save-new-model": lambda reg: reg.save("n", {"n": 1}),
    "load": lambda reg: reg.load("m", "1.0.0"),
    "load-deployed": lambda reg: reg.load("m"),
    "versions": lambda reg: reg.versions("m"),
    "models": lambda reg: reg.models(),
    "verify": lambda reg: reg.verify(),
    "repair": lambda reg: reg.verify(repair=True, min_age=0),
    "prune": lambda reg: reg.prune("m", keep=1),
    "delete": lambda reg: reg.delete("m", "1.1.0"),
    "cleanup": lambda reg: reg.backend.cleanup(min_age=0),
}


# Which operations reach each place (columns in PLACES order): those marked R must
# refuse with a StorageError naming the link; the others need not go there at all.
REACHES = {
    "cleanup": "R - - - - - - - - -",
    "delete": "- R R R R R R - - -",
    "load": "- R R R R R R - - R",
    "load-deployed": "- R R R R R R - - R",
    "models": "- R R - R R - R R -",
    "prune": "- R R - R R R - - -",
    "repair": "- - - - - - - - - -",
    "save": "R R R R R R R - - -",
    "save-new-model": "R R - - - - - R - -",
    "verify": "- - - - - - - - - -",
    "versions": "- R R - R R R - - -",
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("op_name", sorted(OPS))
def test_a_planted_symlink_is_never_followed(tmp_path: Path, place: str, op_name: str) -> None:
    root, outside = tmp_path / "reg", tmp_path / "outside"
    outside.mkdir()
    _registry(root)
    link, _target = _plant(root, outside, place)
    before = _tree(outside)
    reg = ModelRegistry(root)
    try:
        result = OPS[op_name](reg)
    except StorageError as exc:
        assert "symbolic link" in str(exc), exc
        assert os.path.join(str(root), place if place != "ARTIFACT" else "") in str(exc)
    else:
        refuses = REACHES[op_name].split()[PLACES.index(place)] == "R"
        assert not refuses, f"{op_name} followed the link at {place}"
        if op_name in ("verify", "repair"):
            assert not result.ok, str(result)
            assert any(p.kind == "symlink" for p in result.problems), str(result)
            assert result.removed == ()
    assert _tree(outside) == before  # nothing written, overwritten or removed outside
    assert link.is_symlink()  # never removed either
    reg.close()


@pytest.mark.parametrize("place", PLACES)
def test_verify_reports_every_planted_symlink(tmp_path: Path, place: str) -> None:
    root, outside = tmp_path / "reg", tmp_path / "outside"
    outside.mkdir()
    _registry(root)
    link, _ = _plant(root, outside, place)
    os.symlink("/nonexistent", root / "models" / "dangling") if place != "models" else None
    for repair in (False, True):
        report = ModelRegistry(root).verify(repair=repair, min_age=0)
        assert not report.ok, str(report)
        links = [p.detail.split()[0] for p in report.problems if p.kind == "symlink"]
        rel = os.path.relpath(link, root)
        assert rel in links, str(report)
        assert "DAMAGED" in str(report)
        assert report.removed == ()


def test_backend_operations_refuse_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "reg", tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "d" / "k").write_bytes(b"secret")
    b = LocalBackend(root)
    b.create("a/x", b"1")
    os.symlink(outside / "d", root / "a" / "d")
    os.symlink(outside / "d" / "k", root / "a" / "k")
    for key in ("a/d/k", "a/k"):
        for call in (
            b.read,
            b.open_read,
            b.exists,
            b.size,
            b.local_path,
            b.delete,
            lambda k: b.create(k, b"2"),
        ):
            with pytest.raises(StorageError, match="symbolic link"):
                call(key)
    with pytest.raises(StorageError, match="symbolic link"):
        b.create("a/d/new", b"2")
    with pytest.raises(StorageError, match="symbolic link"):
        b.list("a/")
    with pytest.raises(StorageError, match="symbolic link"):
        b.list("a/d/")
    blob = b.open_blob()
    blob.write(b"xyz")
    with pytest.raises(StorageError, match="symbolic link"):
        blob.commit("a/d/blob")
    blob.abort()
    assert b.unsafe_entries() == ["a/d", "a/k"]
    assert sorted(os.listdir(outside / "d")) == ["k"]
    assert (outside / "d" / "k").read_bytes() == b"secret"
    assert os.listdir(root / ".tmp") == []
    b.close()


def test_a_folder_swapped_for_a_symlink_after_it_was_cached(tmp_path: Path) -> None:
    """Reads keep folder descriptors; a folder replaced by a link later is refused."""
    root, outside = tmp_path / "reg", tmp_path / "outside"
    b = LocalBackend(root)
    b.create("a/x", b"1")
    assert b.read("a/x") == b"1"  # the folder "a" is cached now
    shutil.move(str(root / "a"), str(outside))
    os.symlink(outside, root / "a")
    with pytest.raises(StorageError, match="symbolic link"):
        b.read("a/y")  # a miss is retried from a fresh walk, which meets the link
    with pytest.raises(StorageError, match="symbolic link"):
        b.create("a/y", b"2")
    assert sorted(os.listdir(outside)) == ["x"]
    b.close()


def test_the_root_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "data" / "registry"
    real.mkdir(parents=True)
    root = tmp_path / "registry"
    os.symlink(real, root)
    reg = ModelRegistry(root)
    reg.save("m", {"w": 1})
    reg.save("m", {"w": 2})
    reg.deploy("m", "1.1.0")
    assert reg.load("m") == {"w": 2}
    assert reg.backend.local_path(_artifact(root)) is not None
    assert [str(mv.version) for mv in ModelRegistry(root).versions("m")] == ["1.0.0", "1.1.0"]
    report = ModelRegistry(root).verify(repair=True, min_age=0)
    assert report.ok and report.problems == (), str(report)
    assert [p.version for p in reg.prune("m", keep=1)] == [reg.get("m", "1.0.0").version]
    assert (real / "models" / "m" / "@log").is_dir() and root.is_symlink()
    assert ModelRegistry(root).verify().ok


# ---------------------------------------------------------------------- temporaries
def _dead_pid() -> int:
    for pid in range(4_000_000, 1, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid found")


def test_a_young_temporary_survives_repair_whatever_its_pid(tmp_path: Path) -> None:
    reg = _registry(tmp_path / "reg")
    tmp = tmp_path / "reg" / ".tmp"
    dead = tmp / f"{local._HOST}.{_dead_pid()}.{uuid.uuid4().hex}.tmp"
    mine = tmp / f"{local._HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    dead.write_bytes(b"a live writer in another pid namespace")
    mine.write_bytes(b"this process")
    report = reg.verify(repair=True, min_age=60)
    assert report.removed == () and dead.exists() and mine.exists(), str(report)
    old = time.time() - 120
    for path in (dead, mine):
        os.utime(path, (old, old))
    report = reg.verify(repair=True, min_age=60)
    # Older than min_age: the dead writer's goes; a live pid of this host keeps its own.
    assert report.removed == (f".tmp/{dead.name}",), str(report)
    assert not dead.exists() and mine.exists()


def test_a_temporary_removed_mid_save_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _registry(tmp_path / "reg")
    before = [mv.to_dict() for mv in reg.versions("m")]
    artifacts = sorted(os.listdir(tmp_path / "reg" / "models" / "m" / "@artifacts"))
    commit = _local_blob.LocalBlob.commit
    # A named temporary (as where unnamed files are not supported: an old kernel's EISDIR)
    monkeypatch.setattr(_unnamed, "_O_TMPFILE", 0)

    def vanish(self: Any, key: str) -> bool:
        os.unlink(self.readback_path)  # what a repair in another pid namespace did
        return commit(self, key)

    monkeypatch.setattr(_local_blob.LocalBlob, "commit", vanish)
    with pytest.raises(StorageError, match="vanished"):
        reg.save("m", {"w": "new"})
    monkeypatch.undo()
    assert [mv.to_dict() for mv in ModelRegistry(tmp_path / "reg").versions("m")] == before
    assert sorted(os.listdir(tmp_path / "reg" / "models" / "m" / "@artifacts")) == artifacts
    assert os.listdir(tmp_path / "reg" / ".tmp") == []
    assert reg.save("m", {"w": "new"}).version.minor == 2


@pytest.mark.parametrize("exc", [FileNotFoundError, FileExistsError])
def test_any_backend_losing_a_blob_is_a_storage_error(
    monkeypatch: pytest.MonkeyPatch, exc: type[OSError]
) -> None:
    backend = MemoryBackend()
    reg = ModelRegistry(backend)
    reg.save("m", 1)
    blob_type = type(backend.open_blob())

    def lost(self: Any, key: str) -> bool:
        raise exc(2, "gone", key)

    monkeypatch.setattr(blob_type, "commit", lost)
    with pytest.raises(StorageError, match="writing an artifact") as info:
        reg.save("m", 2)
    assert isinstance(info.value.__cause__, exc)
    assert [str(mv.version) for mv in reg.versions("m")] == ["1.0.0"]


# ---------------------------------------------------------------------- paths
def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    reg = ModelRegistry("~/reg")
    assert reg.backend.url == str(tmp_path / "reg")
    reg.save("m", 1)
    assert (tmp_path / "reg" / "models" / "m").is_dir()
    assert not Path("~").exists()
    assert ModelRegistry("file://~/reg").models() == ["m"]


def test_tilde_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(cli.ENV_VAR, raising=False)
    ModelRegistry(tmp_path / "reg").save("solo", 1)
    assert cli.main(["--registry", "~/reg", "models"]) == 0
    assert "solo" in capsys.readouterr().out
    monkeypatch.setenv(cli.ENV_VAR, "~/reg")
    assert cli.main(["models"]) == 0
    assert "solo" in capsys.readouterr().out


def _library_error(location: str) -> str:
    with pytest.raises(StorageError) as info:
        ModelRegistry(location)
    return str(info.value)


def test_a_registry_path_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(cli.ENV_VAR, raising=False)
    (tmp_path / "notes.txt").write_text("not a registry")
    for location in (str(tmp_path / "notes.txt"), "~/notes.txt"):
        message = _library_error(location)
        assert str(tmp_path / "notes.txt") in message and "is a file" in message
        assert cli.main(["--registry", location, "models"]) == cli.EXIT_STORAGE
        assert message in capsys.readouterr().err
    # Under a file: cannot be created (root would not be refused a plain folder).
    under = str(tmp_path / "notes.txt" / "reg")
    message = _library_error(under)
    assert "cannot create" in message and under in message
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    message = _library_error(str(tmp_path / "broken"))
    assert "broken symbolic link" in message
    assert cli.main(["--registry", str(tmp_path / "broken"), "models"]) == cli.EXIT_STORAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
