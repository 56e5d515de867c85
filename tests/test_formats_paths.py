"""Files and folders as versions: save(path=), load_path, manifests, retention, verify."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from modelversions import IntegrityError, InvalidInputError, ModelRegistry, StorageError
from modelversions.backends import Backend
from modelversions.serializers._manifest import Entry, Manifest, parse
from modelversions.serializers._paths import files_key, files_prefix


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every folder (None) and file (its bytes) below ``root``, by relative path."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            assert not os.path.islink(p)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def _make_model(root: Path, *, seed: int = 0) -> Path:
    """A nested folder: empty sub-folders, binary files, unicode names, a 0-byte file."""
    top = root / f"model-{seed}"
    (top / "weights" / "shards").mkdir(parents=True)
    (top / "empty" / "deeper").mkdir(parents=True)
    (top / "weights" / "shards" / "part-0.bin").write_bytes(bytes(range(256)) * 40)
    (top / "weights" / "shards" / "part-1.bin").write_bytes(os.urandom(3000))
    (top / "config.json").write_text(f'{{"layers": {seed}}}')
    (top / "tokénizer—ü.txt").write_text("naïve 日本語")
    (top / "zero").write_bytes(b"")
    return top


def test_folder_round_trip_on_every_backend(registry: ModelRegistry, tmp_path: Path) -> None:
    src = _make_model(tmp_path)
    mv = registry.save("llm", path=src, metrics={"loss": 0.1})
    assert mv.format == "path"
    assert dict(mv.format_info) == {"kind": "dir", "files": 5, "bytes": 10240 + 3000 + 13 + 16}
    got = registry.load_path("llm", "1.0.0")
    assert got.name == src.name
    assert _tree(got) == _tree(src)
    assert not os.access(got / "config.json", os.W_OK) or os.geteuid() == 0
    assert (got / "config.json").stat().st_mode & 0o222 == 0  # read-only
    assert registry.load_path("llm", "1.0.0") == got  # verified again, same copy
    # A fresh registry object on the same storage materializes it again.
    again = ModelRegistry(registry.backend).load_path("llm", "1.0.0")
    assert _tree(again) == _tree(src)
    assert registry.verify().ok


def test_single_file_keeps_its_name(registry: ModelRegistry, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"\x00\x01binary\xff")
    mv = registry.save("m", path=str(src))
    assert dict(mv.format_info) == {"kind": "file", "files": 1, "bytes": 9}
    got = registry.load_path("m", "1.0.0")
    assert got.name == "model.onnx" and got.read_bytes() == src.read_bytes()


def test_model_and_path_are_exclusive(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"exactly one of model .* and path"):
        registry.save("m")
    with pytest.raises(InvalidInputError, match="not both"):
        registry.save("m", {"w": 1}, path=tmp_path)
    with pytest.raises(InvalidInputError, match="cannot save path"):
        registry.save("m", path=tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="serializer and compress apply to a model"):
        registry.save("m", path=tmp_path, compress=3)
    with pytest.raises(InvalidInputError, match=r"must be a str or os.PathLike"):
        registry.save("m", path=42)  # type: ignore[arg-type]
    assert registry.models() == []
    registry.save("m", None)  # None is a model like any other
    assert registry.load("m", "1.0.0") is None


def test_load_and_load_path_name_each_other(registry: ModelRegistry, tmp_path: Path) -> None:
    registry.save("p", path=_make_model(tmp_path))
    registry.save("o", {"w": 1})
    with pytest.raises(InvalidInputError, match=r"use load_path\('p', '1.0.0'\)"):
        registry.load("p", "1.0.0")
    with pytest.raises(InvalidInputError, match="use load"):
        registry.load_path("o", "1.0.0")


@pytest.mark.parametrize("where", ["top", "nested", "dir"])
def test_symlinks_inside_are_refused(tmp_path: Path, where: str) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    src = _make_model(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    if where == "top":
        (src / "link").symlink_to(secret)
    elif where == "nested":
        (src / "weights" / "shards" / "link.bin").symlink_to(secret)
    else:
        (src / "empty" / "linked-dir").symlink_to(tmp_path)
    with pytest.raises(InvalidInputError, match=r"is a symbolic link.*cp -rL"):
        reg.save("m", path=src)
    assert reg.models() == []
    assert reg.backend.list("models/") == []  # nothing was written


def test_fifo_inside_is_refused(tmp_path: Path) -> None:
    reg = ModelRegistry("memory://")
    src = _make_model(tmp_path)
    os.mkfifo(src / "pipe")
    with pytest.raises(InvalidInputError, match="pipe is neither a regular file nor a folder"):
        reg.save("m", path=src)


def test_the_root_may_be_a_link(tmp_path: Path) -> None:
    reg = ModelRegistry("memory://")
    src = _make_model(tmp_path)
    (tmp_path / "alias").symlink_to(src)
    reg.save("m", path=tmp_path / "alias")
    assert _tree(reg.load_path("m", "1.0.0")) == _tree(src)


def _replace(backend: Backend, key: str, data: bytes) -> None:
    backend.delete(key)
    backend.create(key, data)


def _file_key(reg: ModelRegistry, name: str, content: bytes) -> str:
    import hashlib

    return files_key(name, hashlib.sha256(content).hexdigest())


def test_a_changed_byte_in_storage_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    src = _make_model(tmp_path)
    registry.save("m", path=src)
    content = (src / "config.json").read_bytes()
    _replace(registry.backend, _file_key(registry, "m", content), b"{" + content[1:] + b" ")
    with pytest.raises(IntegrityError, match=r"file 'config.json' is damaged in storage"):
        registry.load_path("m", "1.0.0")
    report = registry.verify()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["artifact-damaged"]


def test_a_removed_file_in_storage_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    src = _make_model(tmp_path)
    registry.save("m", path=src)
    part = (src / "weights" / "shards" / "part-1.bin").read_bytes()
    registry.backend.delete(_file_key(registry, "m", part))
    with pytest.raises(IntegrityError, match=r"'weights/shards/part-1.bin' is missing"):
        registry.load_path("m", "1.0.0")
    assert [p.kind for p in registry.verify().problems] == ["artifact-missing"]


def test_a_changed_manifest_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    mv = registry.save("m", path=_make_model(tmp_path))
    key = f"models/m/@artifacts/{mv.sha256}.joblib"
    data = registry.backend.read(key)
    _replace(registry.backend, key, data.replace(b"config.json", b"../../x.json"))
    with pytest.raises(IntegrityError, match="manifest"):
        registry.load_path("m", "1.0.0")


def test_an_added_changed_or_removed_local_file_is_refused(tmp_path: Path) -> None:
    reg = ModelRegistry("memory://", cache_dir=tmp_path / "cache")
    src = _make_model(tmp_path)
    reg.save("m", path=src)
    got = reg.load_path("m", "1.0.0")
    assert str(got).startswith(str(tmp_path / "cache"))

    (got / "empty" / "planted.py").write_text("import os")
    with pytest.raises(IntegrityError, match=r"'model-0/empty/planted.py' was added"):
        reg.load_path("m", "1.0.0")
    assert _tree(reg.load_path("m", "1.0.0")) == _tree(src)  # discarded, made again

    target = got / "config.json"
    target.chmod(0o644)
    with open(target, "r+b") as fh:
        fh.write(b"X")
    with pytest.raises(IntegrityError, match=r"'model-0/config.json' was changed"):
        reg.load_path("m", "1.0.0")

    got = reg.load_path("m", "1.0.0")
    (got / "zero").unlink()
    with pytest.raises(IntegrityError, match="'zero' is missing"):
        reg.load_path("m", "1.0.0")

    got = reg.load_path("m", "1.0.0")
    (got / "weights" / "evil").symlink_to("/etc/passwd")
    with pytest.raises(IntegrityError, match="evil is a symbolic link"):
        reg.load_path("m", "1.0.0")
    assert _tree(reg.load_path("m", "1.0.0")) == _tree(src)


def test_unchanged_files_are_stored_once(registry: ModelRegistry, tmp_path: Path) -> None:
    src = _make_model(tmp_path)
    registry.save("m", path=src)
    assert len(registry.backend.list(files_prefix("m"))) == 5
    (src / "config.json").write_text('{"layers": 99}')
    registry.save("m", path=src)
    assert len(registry.backend.list(files_prefix("m"))) == 6
    assert registry.load_path("m", "1.1.0").joinpath("config.json").read_text() == '{"layers": 99}'
    assert registry.load_path("m", "1.0.0").joinpath("config.json").read_text() == '{"layers": 0}'


def _version_dir(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    top = tmp_path / "src" / name
    top.mkdir(parents=True)
    for rel, data in files.items():
        (top / rel).write_bytes(data)
    return top


def test_prune_and_delete_keep_what_kept_versions_need(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    shared, b, c, d, e = b"shared", b"only-v1", b"only-v2", b"only-v3", b"only-v4"
    for i, unique in enumerate((b, c, d, e)):
        src = _version_dir(tmp_path / str(i), "model", {"shared.bin": shared, "own.bin": unique})
        registry.save("m", path=src)
    registry.deploy("m", "1.3.0")
    stored = set(registry.backend.list(files_prefix("m")))
    assert len(stored) == 5
    pruned = registry.prune("m", keep=2)
    assert [str(mv.version) for mv in pruned] == ["1.0.0", "1.1.0"]
    left = set(registry.backend.list(files_prefix("m")))
    assert left == {_file_key(registry, "m", x) for x in (shared, d, e)}
    registry.delete("m", "1.2.0")
    assert set(registry.backend.list(files_prefix("m"))) == {
        _file_key(registry, "m", x) for x in (shared, e)
    }
    assert registry.load_path("m").joinpath("own.bin").read_bytes() == e
    assert registry.verify().ok


def test_rollback_to_a_folder_version(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = _make_model(tmp_path, seed=1)
    v2 = _make_model(tmp_path, seed=2)
    registry.save("m", path=v1)
    registry.save("m", path=v2)
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    assert registry.load_path("m").joinpath("config.json").read_text() == '{"layers": 2}'
    registry.rollback("m", reason="bad")
    assert _tree(registry.load_path("m")) == _tree(v1)


def test_verify_lists_and_repairs_orphaned_files(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", path=_make_model(tmp_path))
    reg.backend.create(files_key("m", "f" * 64), b"left by a dead save")
    report = reg.verify()
    assert report.ok
    assert [p.kind for p in report.problems] == ["orphan-artifact"]
    assert reg.verify(repair=True, min_age=3600).removed == ()  # too young
    assert reg.verify(repair=True, min_age=0).removed == (files_key("m", "f" * 64),)
    assert reg.verify().problems == ()


def _recorder(seen: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, whole: seen.append((done, whole))


def test_progress_reports_increasing_bytes_up_to_the_total(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    src = _make_model(tmp_path)
    big = src / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # streamed in several chunks
    total = sum(len(v) for v in _tree(src).values() if v is not None)
    for call in (
        lambda p: reg.save("m", path=src, progress=p),
        lambda p: reg.load_path("m", "1.0.0", progress=p),
    ):
        seen: list[tuple[int, int]] = []
        call(_recorder(seen))
        dones = [d for d, _ in seen]
        assert len(seen) > 3
        assert dones == sorted(dones) and dones[-1] == total
        assert {whole for _, whole in seen} == {total}
    with pytest.raises(InvalidInputError, match="progress must be"):
        reg.load_path("m", "1.0.0", progress="yes")  # type: ignore[arg-type]
    reg.load_path("m", "1.0.0", progress=True)  # a tqdm bar, or nothing without tqdm


@pytest.mark.parametrize(
    "path",
    ["../x", "/abs", "a/../b", "a//b", "", ".", "a/./b", "nul\0l"],
)
def test_manifest_refuses_escaping_paths(path: str) -> None:
    bad = Manifest("dir", "m", (Entry(path, "0" * 64, 1),), ())
    with pytest.raises(IntegrityError):
        parse(bad.encode(), "test")


def test_manifest_refuses_inconsistent_trees() -> None:
    sha = "0" * 64
    cases = [
        Manifest("dir", "m", (Entry("a/x", sha, 1),), ()),  # folder not listed
        Manifest("dir", "m", (Entry("x", sha, 1), Entry("x", sha, 1)), ()),  # twice
        Manifest("dir", "m", (Entry("x", sha, 1),), ("x",)),  # file and folder
        Manifest("file", "m", (Entry("other", sha, 1),), ()),  # a file named otherwise
        Manifest("dir", "..", (), ()),
    ]
    for bad in cases:
        with pytest.raises(IntegrityError):
            parse(bad.encode(), "test")
    for junk in (
        b"[]",
        b"{",
        b'{"schema": 2, "kind": "dir", "name": "m", "files": [], "dirs": []}',
    ):
        with pytest.raises(IntegrityError):
            parse(junk, "test")
    with pytest.raises(IntegrityError, match="malformed entry"):
        parse(
            b'{"schema":1,"kind":"dir","name":"m","dirs":[],'
            b'"files":[{"path":"x","sha256":"zz","size":-1}]}',
            "test",
        )


def test_close_removes_the_private_copies(tmp_path: Path) -> None:
    reg = ModelRegistry("memory://")
    reg.save("m", path=_make_model(tmp_path))
    got = reg.load_path("m", "1.0.0")
    assert got.exists()
    reg.close()
    assert not got.exists()


def test_a_file_a_concurrent_prune_removed_is_stored_again(tmp_path: Path) -> None:
    from modelversions.serializers._paths import PathArtifact

    reg = ModelRegistry(tmp_path / "reg")
    src = _make_model(tmp_path)
    artifact = PathArtifact(src)
    sha, _size, _created = artifact.write(reg.backend, "m")
    key = _file_key(reg, "m", (src / "config.json").read_bytes())
    reg.backend.delete(key)  # as a prune committed between this save's write and commit
    artifact.ensure(reg.backend, "m", sha, False)
    assert reg.backend.exists(key)
    reg.backend.delete(key)
    (src / "config.json").write_text("changed since")
    with pytest.raises(IntegrityError, match="changed since: save it again"):
        artifact.ensure(reg.backend, "m", sha, False)


def test_planted_links_in_the_copies_folder_are_not_followed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reg = ModelRegistry("memory://", cache_dir=cache)
    src = _make_model(tmp_path)
    mv = reg.save("m", path=src)
    # An attacker's copy of the tree, linked where the verified copy would go.
    lure = tmp_path / "lure"
    lure.mkdir()
    import shutil

    shutil.copytree(src, lure / src.name)
    checkouts = cache / "modelversions" / "checkouts"
    checkouts.mkdir(parents=True)
    (checkouts / mv.sha256).symlink_to(lure)
    with pytest.raises(IntegrityError, match="is a symbolic link"):
        reg.load_path("m", "1.0.0")
    got = reg.load_path("m", "1.0.0")  # discarded, then made for real
    assert not (checkouts / mv.sha256).is_symlink() and _tree(got) == _tree(src)
    assert lure.exists()  # the link's target was not touched

    other = tmp_path / "other"
    other.mkdir()
    shutil.rmtree(cache)
    (cache / "modelversions").mkdir(parents=True)
    (cache / "modelversions" / "checkouts").symlink_to(other)
    with pytest.raises(StorageError, match="symbolic link or not a folder"):
        reg.load_path("m", "1.0.0")


def test_a_large_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """Peak memory above the baseline stays small (figures for 1 GiB: docs/benchmarks.md)."""
    import subprocess
    import sys

    src = tmp_path / "big.bin"
    chunk = os.urandom(1024 * 1024)
    with open(src, "wb") as fh:
        for _ in range(96):
            fh.write(chunk)
    child = (
        "import resource, sys\n"
        "from modelversions import ModelRegistry\n"
        "reg = ModelRegistry(sys.argv[2])\n"
        "reg.save('warm', {'w': 1})\n"  # imports joblib and the rest before the baseline
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "reg.save('big', path=sys.argv[1])\n"
        "reg.load_path('big', '1.0.0')\n"
        "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", child, str(src), str(tmp_path / "reg")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    base, peak = (int(x) / 1024 for x in out)  # KiB -> MiB
    assert peak - base < 32, f"peak {peak:.1f} MiB, baseline {base:.1f} MiB"


def test_a_deploy_check_gets_the_verified_path(tmp_path: Path) -> None:
    from modelversions import DeployCheckFailedError

    reg = ModelRegistry("memory://")
    good = _version_dir(tmp_path / "a", "model", {"ok.txt": b"yes"})
    bad = _version_dir(tmp_path / "b", "model", {"ok.txt": b"no"})
    reg.save("m", path=good)
    reg.save("m", path=bad)

    def check(path: Path) -> bool:
        return (path / "ok.txt").read_bytes() == b"yes"

    reg.deploy("m", "1.0.0", check=check)
    with pytest.raises(DeployCheckFailedError, match="returned False"):
        reg.deploy("m", "1.1.0", check=check)
    assert str(reg.current("m").version) == "1.0.0"  # type: ignore[union-attr]


def test_verify_ignores_files_a_prune_removed_after_its_replay(tmp_path: Path) -> None:
    import dataclasses

    from modelversions.serializers._files import verify_files

    reg = ModelRegistry("memory://")
    src = _make_model(tmp_path)
    mv = reg.save("m", path=src)
    reg.backend.delete(_file_key(reg, "m", b""))  # the 0-byte file
    args = {"repair": False, "older_than": lambda key: False}
    found, _removed, _n = verify_files(reg.backend, "m", [mv], fresh=lambda: [mv], **args)
    assert [kind for kind, _d, _v in found] == ["artifact-missing"]
    pruned = dataclasses.replace(mv, pruned=True)
    found, _removed, _n = verify_files(reg.backend, "m", [mv], fresh=lambda: [pruned], **args)
    assert found == []


def test_a_file_removed_during_the_walk_is_a_clear_refusal(tmp_path: Path) -> None:
    from modelversions.serializers._walk import Refused, walk

    src = _make_model(tmp_path)

    def on_dir(rel: str) -> None:
        if rel == "empty":  # the root's names are listed: remove one not yet visited
            (src / "zero").unlink()

    with pytest.raises(Refused, match="zero: vanished while it was read"):
        walk(str(src), lambda rel, fd, st: None, on_dir)
