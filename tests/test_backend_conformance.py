"""The storage backend protocol, checked on every backend in ``conftest.BACKENDS``.

Each test takes the ``backend`` (or ``backend_factory``) fixture, so a new backend
gets the whole suite by adding one entry to ``BACKENDS``. The tests use small objects
and few operations: remote backends cost milliseconds per request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelversions.backends as backends_mod
from modelversions import (
    InvalidInputError,
    ModelNotFoundError,
    ModelRegistry,
    open_backend,
    register_backend,
)
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

ALL_BYTES = bytes(range(256))


def _is_memory(backend: Backend) -> bool:
    return isinstance(backend, MemoryBackend)


# ---------------------------------------------------------------------------- read/create
def test_fresh_backend_is_empty(backend: Backend) -> None:
    assert backend.list("") == []


def test_create_then_read_exists_size(backend: Backend) -> None:
    backend.create("a/b.json", b'{"x": 1}')
    assert backend.read("a/b.json") == b'{"x": 1}'
    assert backend.exists("a/b.json") is True
    assert backend.size("a/b.json") == 8
    assert backend.list("") == ["a/b.json"]


def test_empty_object(backend: Backend) -> None:
    backend.create("empty", b"")
    assert backend.read("empty") == b""
    assert backend.exists("empty") is True
    assert backend.size("empty") == 0


def test_create_accepts_bytes_like(backend: Backend) -> None:
    backend.create("ba", bytearray(b"abc"))
    backend.create("mv", memoryview(b"def"))
    assert backend.read("ba") == b"abc"
    assert backend.read("mv") == b"def"


def test_missing_key(backend: Backend) -> None:
    backend.create("present", b"1")
    assert backend.exists("absent") is False
    with pytest.raises(FileNotFoundError):
        backend.read("absent")
    with pytest.raises(FileNotFoundError):
        backend.size("absent")
    with pytest.raises(FileNotFoundError):
        backend.open_read("absent")
    with pytest.raises(FileNotFoundError):
        backend.read("present/child")  # a key under a key: absent too
    with pytest.raises(FileNotFoundError):
        backend.size("present/child")
    assert backend.exists("present/child") is False
    backend.delete("present/child")
    assert backend.list("") == ["present"]


def test_create_existing_key_raises_and_keeps_old_bytes(backend: Backend) -> None:
    backend.create("k", b"old")
    with pytest.raises(FileExistsError):
        backend.create("k", b"new, longer bytes")
    assert backend.read("k") == b"old"
    assert backend.size("k") == 3
    assert backend.list("") == ["k"]


def test_binary_round_trip_all_byte_values(backend: Backend) -> None:
    data = ALL_BYTES + ALL_BYTES[::-1] + b"\r\n\x00\n\r"
    backend.create("bin/create", data)
    assert backend.read("bin/create") == data
    assert backend.size("bin/create") == len(data)
    with backend.open_read("bin/create") as fh:
        assert fh.read() == data
    blob = backend.open_blob()
    blob.write(data)
    assert blob.commit("bin/blob") is True
    assert backend.read("bin/blob") == data


# ---------------------------------------------------------------------------- nested keys
def test_nested_folders(backend: Backend) -> None:
    deep = "models/team/churn/@log/000000000001.json"
    backend.create(deep, b"1")
    backend.create("models/team/other.json", b"2")
    assert backend.read(deep) == b"1"
    assert backend.exists(deep)
    assert backend.list("models/team/churn/") == [deep]
    assert backend.list("models/") == [deep, "models/team/other.json"]


def test_a_folder_of_keys_is_not_itself_a_key(backend: Backend) -> None:
    backend.create("dir/child", b"1")
    assert backend.exists("dir") is False
    with pytest.raises(FileNotFoundError):
        backend.read("dir")
    with pytest.raises(FileNotFoundError):
        backend.open_read("dir")
    with pytest.raises(FileNotFoundError):
        backend.size("dir")
    backend.delete("dir")  # a missing key: not an error, and removes nothing
    assert backend.list("") == ["dir/child"]


# ---------------------------------------------------------------------------- list
KEYS = [
    "a/x",
    "a/b/d",
    "ab/z",
    "a/bc/e",
    "a-b/x",
    "a/b/c",
    "a.b",
    "b/y",
    "a/b/c2/deep/er",
]


@pytest.fixture
def listed(backend: Backend) -> Backend:
    for key in KEYS:  # deliberately not in sorted order
        backend.create(key, key.encode())
    return backend


def test_list_everything_sorted(listed: Backend) -> None:
    keys = listed.list("")
    assert keys == sorted(KEYS)
    assert all(isinstance(k, str) for k in keys)


def test_list_folder_prefix_is_recursive_and_only_under_prefix(listed: Backend) -> None:
    assert listed.list("a/") == ["a/b/c", "a/b/c2/deep/er", "a/b/d", "a/bc/e", "a/x"]
    assert listed.list("a/b/") == ["a/b/c", "a/b/c2/deep/er", "a/b/d"]
    assert listed.list("a/b/c2/") == ["a/b/c2/deep/er"]
    assert listed.list("b/") == ["b/y"]


def test_list_partial_segment_prefix(listed: Backend) -> None:
    assert listed.list("a/b") == ["a/b/c", "a/b/c2/deep/er", "a/b/d", "a/bc/e"]
    assert listed.list("a/b/c") == ["a/b/c", "a/b/c2/deep/er"]
    assert listed.list("a") == [
        "a-b/x",
        "a.b",
        "a/b/c",
        "a/b/c2/deep/er",
        "a/b/d",
        "a/bc/e",
        "a/x",
        "ab/z",
    ]
    assert listed.list("ab") == ["ab/z"]


def test_list_prefix_matching_nothing(listed: Backend) -> None:
    assert listed.list("zzz/") == []
    assert listed.list("a/x/") == []  # a key, not a folder
    assert listed.list("a/nothing/") == []
    assert listed.list("c") == []


# ---------------------------------------------------------------------------- delete
def test_delete(backend: Backend) -> None:
    backend.create("d/one", b"1")
    backend.create("d/two", b"2")
    backend.delete("d/one")
    assert backend.exists("d/one") is False
    with pytest.raises(FileNotFoundError):
        backend.read("d/one")
    assert backend.list("") == ["d/two"]
    assert backend.read("d/two") == b"2"


def test_delete_missing_key_is_not_an_error(backend: Backend) -> None:
    backend.delete("never/was")
    backend.create("k", b"1")
    backend.delete("k")
    backend.delete("k")
    assert backend.list("") == []


def test_create_again_after_delete(backend: Backend) -> None:
    backend.create("x/y/z", b"first")
    backend.delete("x/y/z")
    backend.create("x/y/z", b"second")
    assert backend.read("x/y/z") == b"second"


# ---------------------------------------------------------------------------- open_read
def test_open_read_is_a_binary_file_object(backend: Backend) -> None:
    backend.create("r", b"0123456789")
    with backend.open_read("r") as fh:
        assert fh.read(4) == b"0123"
        buf = bytearray(3)
        assert fh.readinto(buf) == 3  # type: ignore[attr-defined]
        assert bytes(buf) == b"456"
        assert fh.read() == b"789"
        assert fh.read() == b""


# ---------------------------------------------------------------------------- blobs
def test_blob_write_tell_commit(backend: Backend) -> None:
    blob = backend.open_blob()
    assert blob.tell() == 0
    assert blob.write(b"abc") == 3
    assert blob.tell() == 3
    blob.write(bytearray(b"def"))
    blob.write(memoryview(b"ghij"))
    blob.flush()
    assert blob.tell() == 10
    assert blob.commit("blobs/one") is True
    assert backend.read("blobs/one") == b"abcdefghij"
    assert backend.list("") == ["blobs/one"]
    blob.abort()  # abort after commit is safe and removes nothing
    assert backend.read("blobs/one") == b"abcdefghij"


def test_blob_invisible_before_commit(backend: Backend) -> None:
    blob = backend.open_blob()
    blob.write(b"pending bytes")
    blob.flush()
    assert backend.list("") == []
    assert backend.exists("blobs/pending") is False
    assert blob.commit("blobs/pending") is True
    assert backend.list("") == ["blobs/pending"]


def test_blob_commit_on_existing_key_returns_false_and_keeps_old_bytes(
    backend: Backend,
) -> None:
    backend.create("blobs/k", b"old")
    blob = backend.open_blob()
    blob.write(b"new bytes")
    assert blob.commit("blobs/k") is False
    blob.abort()
    assert backend.read("blobs/k") == b"old"
    assert backend.list("") == ["blobs/k"]


def test_blob_abort_leaves_nothing(backend: Backend) -> None:
    blob = backend.open_blob()
    blob.write(b"x" * 1000)
    blob.abort()
    blob.abort()  # idempotent
    assert backend.list("") == []
    with backend.open_blob() as blob2:  # leaving the block without commit aborts
        blob2.write(b"y" * 10)
    assert backend.list("") == []


def test_blob_context_manager_after_commit(backend: Backend) -> None:
    with backend.open_blob() as blob:
        blob.write(b"kept")
        assert blob.commit("kept") is True
    assert backend.read("kept") == b"kept"


def test_empty_blob(backend: Backend) -> None:
    blob = backend.open_blob()
    assert blob.commit("blobs/empty") is True
    assert backend.read("blobs/empty") == b""


# ---------------------------------------------------------------------------- races
def _race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run ``attempt(i)`` in ``n`` threads released together; return results/exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except Exception as exc:  # collected and checked by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(4))
def test_racing_create_has_exactly_one_winner(backend: Backend, round_: int) -> None:
    key = f"race/{round_}/000000000001.json"
    n = 8

    def attempt(i: int) -> str:
        backend.create(key, f"writer {i}".encode())
        return "won"

    results = _race(n, attempt)
    winners = [i for i, r in enumerate(results) if r == "won"]
    losers = [r for r in results if r != "won"]
    assert len(winners) == 1, results
    assert all(isinstance(r, FileExistsError) for r in losers), results
    assert backend.read(key) == f"writer {winners[0]}".encode()
    assert backend.list("race/") == [key]


@pytest.mark.parametrize("round_", range(2))
def test_racing_blob_commit_has_exactly_one_winner(backend: Backend, round_: int) -> None:
    key = f"race/blob/{round_}"
    n = 6
    blobs = []
    for i in range(n):
        blob = backend.open_blob()
        blob.write(f"blob {i}".encode())
        blobs.append(blob)

    results = _race(n, lambda i: blobs[i].commit(key))
    assert sorted(results, key=str) == [False] * (n - 1) + [True], results
    winner = results.index(True)
    assert backend.read(key) == f"blob {winner}".encode()
    assert backend.list("") == [key]


# ---------------------------------------------------------------------------- reopening
def test_reopened_backend_sees_the_data(
    backend_factory: Callable[[Path], Backend], tmp_path: Path
) -> None:
    first = backend_factory(tmp_path)
    if _is_memory(first):
        # Each MemoryBackend is its own store by design: a "reopened" one starts empty.
        first.create("m/k", ALL_BYTES)
        assert backend_factory(tmp_path).list("") == []
        return
    try:
        first.create("m/k", ALL_BYTES)
        blob = first.open_blob()
        blob.write(b"blob")
        assert blob.commit("m/blob")
        second = backend_factory(tmp_path)
        try:
            assert second.list("") == ["m/blob", "m/k"]
            assert second.read("m/k") == ALL_BYTES
            assert second.exists("m/blob")
            with pytest.raises(FileExistsError):
                second.create("m/k", b"other")
            second.create("m/new", b"n")
            assert first.read("m/new") == b"n"
            assert first.read("m/k") == ALL_BYTES
        finally:
            second.close()
    finally:
        first.close()


def test_memory_backends_are_independent() -> None:
    a, b = MemoryBackend(), MemoryBackend()
    a.create("k", b"a")
    assert b.list("") == []
    assert b.exists("k") is False
    b.create("k", b"b")  # no conflict: separate stores
    assert a.read("k") == b"a"
    assert b.read("k") == b"b"


def test_memory_registries_are_independent() -> None:
    one, two = ModelRegistry("memory://"), ModelRegistry("memory://")
    one.save("churn", {"w": 1})
    assert two.models() == []
    with pytest.raises(ModelNotFoundError):
        two.versions("churn")
    assert two.backend.list("") == []
    two.save("churn", {"w": 2})
    assert [str(mv.version) for mv in one.versions("churn")] == ["1.0.0"]


# ---------------------------------------------------------------------------- open_backend
@pytest.fixture
def scheme_table(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A private copy of the scheme table, restored after the test."""
    table = dict(backends_mod._SCHEMES)
    monkeypatch.setattr(backends_mod, "_SCHEMES", table)
    return table


def test_open_backend_path_is_a_local_folder(tmp_path: Path) -> None:
    for target in (str(tmp_path / "s"), tmp_path / "p", f"file://{tmp_path / 'u'}"):
        b = open_backend(target)
        assert isinstance(b, LocalBackend)
        name = os.fspath(target).rsplit("/", 1)[-1]
        assert b.root == os.path.abspath(tmp_path / name)
        assert os.path.isdir(b.root)


def test_open_backend_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    b = open_backend("rel/reg")
    assert isinstance(b, LocalBackend)
    assert b.root == str(tmp_path / "rel" / "reg")


def test_open_backend_memory() -> None:
    assert isinstance(open_backend("memory://"), MemoryBackend)
    assert isinstance(open_backend("MEMORY://"), MemoryBackend)
    assert open_backend("memory://") is not open_backend("memory://")


def test_open_backend_returns_a_backend_as_is() -> None:
    b = MemoryBackend()
    assert open_backend(b) is b
    assert ModelRegistry(b).backend is b


def test_open_backend_unknown_scheme_names_it() -> None:
    with pytest.raises(InvalidInputError, match="nosuchscheme") as info:
        open_backend("nosuchscheme://bucket/prefix")
    assert isinstance(info.value, ValueError)
    assert "memory" in str(info.value)  # lists the known schemes
    with pytest.raises(InvalidInputError, match="nosuchscheme"):
        ModelRegistry("nosuchscheme://x")


@pytest.mark.parametrize("bad", ["", 123, None, b"memory://"])
def test_open_backend_rejects_non_locations(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        open_backend(bad)


def test_register_backend_adds_a_scheme(scheme_table: dict[str, Any]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def factory(uri: str, **options: Any) -> Backend:
        calls.append((uri, options))
        return MemoryBackend(uri)

    register_backend("Scratch", factory)
    assert "scratch" in backends_mod.registered_schemes()
    b = open_backend("scratch://place", token="t")
    assert isinstance(b, MemoryBackend)
    assert calls == [("scratch://place", {"token": "t"})]
    reg = ModelRegistry("SCRATCH://other", storage_options={"token": "u"})
    assert calls[-1] == ("SCRATCH://other", {"token": "u"})
    assert isinstance(reg.backend, MemoryBackend)


def test_register_backend_refuses_to_clobber(scheme_table: dict[str, Any]) -> None:
    def factory(uri: str, **options: Any) -> Backend:
        raise AssertionError("the clobbered factory must not be used")

    for scheme in ("memory", "file", "MEMORY"):
        with pytest.raises(InvalidInputError, match="already registered"):
            register_backend(scheme, factory)
    assert isinstance(open_backend("memory://"), MemoryBackend)

    register_backend("mine", lambda uri, **kw: MemoryBackend(uri))
    with pytest.raises(InvalidInputError, match="clobber"):
        register_backend("mine", factory)
    assert isinstance(open_backend("mine://x"), MemoryBackend)


def test_register_backend_clobber_replaces(scheme_table: dict[str, Any]) -> None:
    marker = MemoryBackend("memory://marker")
    register_backend("memory", lambda uri, **kw: marker, clobber=True)
    assert open_backend("memory://") is marker
    # the "module:Class" form, imported on first use
    register_backend("memory", "modelversions.backends.memory:MemoryBackend", clobber=True)
    b = open_backend("memory://")
    assert isinstance(b, MemoryBackend)
    assert b is not marker


def test_register_backend_missing_module_is_invalid_input(scheme_table: dict[str, Any]) -> None:
    register_backend("ghost", "modelversions_no_such_module:Backend")
    with pytest.raises(InvalidInputError, match="ghost"):
        open_backend("ghost://x")
