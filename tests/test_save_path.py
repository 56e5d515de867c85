"""A durable save on a local folder: its order of writes and what it reuses between saves.

Reads keep folder descriptors between calls, and a miss through one (a writer probing
for the next history entry) checks the folder is still the one at its path instead of
walking again. These tests check that a folder swapped for a symlink, or the registry
folder deleted and recreated between two saves, never sends a write to the wrong place
(or nowhere), that the entry is published after the artifact is durable, and that an
artifact stored already is not fsynced again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import _workers
import pytest

from modelversions import ModelRegistry, StorageError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="plants POSIX symlinks")


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("place", ["models", "models/m", "models/m/@log", "models/m/@artifacts"])
def test_a_folder_swapped_for_a_symlink_between_two_saves(tmp_path: Path, place: str) -> None:
    root, outside = tmp_path / "reg", tmp_path / "outside"
    reg = ModelRegistry(root)
    reg.save("m", {"w": 1})
    reg.save("m", {"w": 2})  # every folder of the model is cached or walked by now
    shutil.move(str(root / place), str(outside))
    os.symlink(outside, root / place)
    before = tree(outside)
    with pytest.raises(StorageError, match="symbolic link"):
        reg.save("m", {"w": 3})
    assert tree(outside) == before  # nothing written through the link
    assert os.listdir(root / ".tmp") == []


def test_the_registry_folder_deleted_and_recreated_between_saves(tmp_path: Path) -> None:
    """Saves after the folder was replaced land in the new one, and see its entries."""
    root, copy = tmp_path / "reg", tmp_path / "copy"
    reg = ModelRegistry(root)
    reg.save("m", {"w": 0})
    reg.save("m", {"w": 1})  # the model's history folder is kept open now
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    shutil.copytree(copy, root)  # the same content, every folder a new one
    assert str(ModelRegistry(root).save("m", {"w": 2}).version) == "1.2.0"
    mv = reg.save("m", {"w": 3})  # sees 1.2.0 through its kept folders: validated
    assert str(mv.version) == "1.3.0"
    again = reg.save("m", {"w": 3}, version="2.0.0")  # an artifact stored already
    fresh = ModelRegistry(root)
    assert [str(v.version) for v in fresh.versions("m")] == [
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "1.3.0",
        "2.0.0",
    ]
    assert fresh.load("m", "1.3.0") == {"w": 3} == fresh.load("m", again.version)
    assert fresh.verify().ok
    assert not (copy / "models" / "m" / "@log" / "000000000003.json").exists()


def test_the_entry_is_published_after_the_artifact_is_durable(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 0})
    with _workers.IOTrap() as trap:
        reg.save("m", {"w": 1})
    calls = [(c, p.rsplit("/", 1)[-1] if "/" in p else p) for c, p in trap.trace]
    links = [i for i, (c, _) in enumerate(trap.trace) if c == "link"]
    artifact_link, entry_link = links
    assert "/@artifacts/" in trap.trace[artifact_link][1]
    assert "/@log/" in trap.trace[entry_link][1]
    # the artifact's folder is fsynced between the two links
    assert any(
        c == "fsync" and p.endswith("/@artifacts") for c, p in trap.trace[artifact_link:entry_link]
    ), calls
    fsyncs = [p for c, p in trap.trace if c == "fsync"]
    assert len(fsyncs) == 4, fsyncs  # artifact, its folder, entry, log folder: as before
    assert os.listdir(tmp_path / "reg" / ".tmp") == []


def test_an_artifact_stored_already_is_not_fsynced_again(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 0})
    with _workers.IOTrap() as trap:
        reg.save("m", {"w": 0})  # the same bytes: the same artifact
    fsynced = [p for c, p in trap.trace if c == "fsync"]
    # the artifact's folder (still fsynced: whoever stored the file may have died
    # before doing it), the entry's temporary, the log folder
    assert len(fsynced) == 3, fsynced
    assert any(p.endswith("/@artifacts") for p in fsynced)
    assert [c for c, _ in trap.trace].count("link") == 1  # the entry's only
    assert os.listdir(tmp_path / "reg" / ".tmp") == []
