"""The S3 backend (and the generic fsspec one) beyond the shared conformance suite.

The conformance and registry suites already run on S3 through ``conftest.BACKENDS``;
this file covers what is specific to object stores: routing URLs to the backend and
the install hints, error translation, multipart uploads (dedupe, abort, conflicts),
streaming reads, request counts with 1,000 versions, the local read cache, memory
bounds with a 200 MB artifact, a save killed mid-upload, and that every connection
goes to 127.0.0.1. All of it runs against the session's moto server (or the endpoint
named by ``MODELVERSIONS_S3_ENDPOINT``).
"""

from __future__ import annotations

import concurrent.futures
import gc
import importlib
import multiprocessing
import os
import signal
import socket
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import _s3server
import numpy as np
import pytest

from modelversions import (
    InvalidInputError,
    ModelNotFoundError,
    ModelRegistry,
    StorageError,
    open_backend,
)
from modelversions.backends import _s3_io
from modelversions.backends.fsspec import FsspecBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.backends.s3 import S3Backend

MiB = 1 << 20


@pytest.fixture
def bucket(s3_server: _s3server.S3Server, tmp_path: Path) -> str:
    return s3_server.make_bucket(_s3server.unique_name(tmp_path, "s3t"))


@pytest.fixture
def s3(s3_server: _s3server.S3Server, bucket: str) -> S3Backend:
    return S3Backend(f"s3://{bucket}/reg", **s3_server.storage_options)


def _registry(s3_server: _s3server.S3Server, bucket: str, **kwargs: Any) -> ModelRegistry:
    return ModelRegistry(f"s3://{bucket}/reg", storage_options=s3_server.storage_options, **kwargs)


def _artifact_gets(backend: S3Backend) -> int:
    assert backend.request_log is not None
    return sum(
        1 for op, url in backend.request_log if op == "GetObject" and "@artifacts" in unquote(url)
    )


# ---------------------------------------------------------------------------- routing
def test_registry_urls_route_to_the_s3_backend(s3_server: _s3server.S3Server, bucket: str) -> None:
    opts = s3_server.storage_options
    for url, prefix in [
        (f"s3://{bucket}", ""),
        (f"s3://{bucket}/", ""),
        (f"S3://{bucket}/a/b/", "a/b/"),
        (f"s3a://{bucket}//team//reg", "team/reg/"),
    ]:
        backend = open_backend(url, **opts)
        assert isinstance(backend, S3Backend)
        assert (backend.bucket, backend.prefix) == (bucket, prefix)
    reg = ModelRegistry(f"s3://{bucket}/team/reg", storage_options=opts)
    assert repr(reg) == f"ModelRegistry('s3://{bucket}/team/reg')"
    reg.save("churn", {"w": 1})
    reg.deploy("churn", "1.0.0")
    again = ModelRegistry(f"s3://{bucket}/team/reg", storage_options=opts)
    assert again.load("churn") == {"w": 1}
    # another prefix in the same bucket is another registry
    other = ModelRegistry(f"s3://{bucket}/team/other", storage_options=opts)
    assert other.models() == []
    root = S3Backend(f"s3://{bucket}", **opts)
    assert "team/reg/index/churn/@model" in root.list("")


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3a://"])
def test_s3_url_without_bucket_is_invalid(url: str) -> None:
    with pytest.raises(InvalidInputError, match="bucket"):
        open_backend(url)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"part_size": MiB}, "part_size"), ({"max_concurrency": 0}, "max_concurrency")],
)
def test_s3_options_are_checked(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        S3Backend("s3://bucket", **options)


def test_missing_s3fs_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes `import s3fs` fail
    with pytest.raises(InvalidInputError, match=r"pip install 'modelversions\[s3\]'"):
        ModelRegistry("s3://bucket/prefix")


def test_missing_fsspec_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.delitem(sys.modules, "modelversions.backends.fsspec")
    monkeypatch.delitem(sys.modules, "modelversions.backends.s3")
    with pytest.raises(InvalidInputError, match=r"pip install 'modelversions\[s3\]'"):
        open_backend("s3://bucket/prefix")
    with pytest.raises(InvalidInputError, match="pip install fsspec"):
        open_backend("fsspec+memory://x")


def test_gcs_without_gcsfs_gives_the_install_hint() -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(InvalidInputError, match="pip install gcsfs"):
        open_backend("gs://bucket/prefix")


# ---------------------------------------------------------------------------- errors
class _FakeClientError(Exception):
    """Shaped like botocore's ClientError: the translation reads only ``.response``."""

    def __init__(self, code: str, status: int, retries: int = 0) -> None:
        super().__init__(code)
        self.response = {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
        }


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("PreconditionFailed", 412, FileExistsError),
        ("ConditionalRequestConflict", 409, OSError),
        ("NoSuchKey", 404, FileNotFoundError),
        ("404", 404, FileNotFoundError),
        ("NoSuchBucket", 404, OSError),
        ("AccessDenied", 403, PermissionError),
        ("SlowDown", 503, OSError),
        ("InternalError", 500, OSError),
    ],
)
def test_store_errors_become_builtin_exceptions(
    code: str, status: int, expected: type[OSError]
) -> None:
    err = _s3_io._translate(_FakeClientError(code, status), "reading k")
    assert isinstance(err, expected)
    for narrower in (FileExistsError, FileNotFoundError, PermissionError):
        if not issubclass(expected, narrower):
            assert not isinstance(err, narrower)
    assert "reading k" in str(err)
    # NoSuchBucket is not an absent key (the registry must not answer "no model"), and
    # a 409 conflict is retried, never taken for "exists".


def test_non_store_errors_pass_through() -> None:
    assert _s3_io._translate(ValueError("bug"), "x") is None
    assert _s3_io._translate(FileNotFoundError("f"), "x") is None


def test_missing_bucket_is_a_storage_error_not_a_missing_model(
    s3_server: _s3server.S3Server,
) -> None:
    reg = ModelRegistry("s3://mv-no-such-bucket-here/x", storage_options=s3_server.storage_options)
    with pytest.raises(StorageError, match="bucket does not exist"):
        reg.versions("m")
    with pytest.raises(StorageError):
        reg.save("m", 1)


def test_unreachable_endpoint_is_a_storage_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = ModelRegistry(
        "s3://bucket/x",
        storage_options={
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        },
    )
    with pytest.raises(StorageError):
        reg.save("m", 1)


def test_conflict_409_is_retried_then_reported(
    s3: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = S3Backend._call
    conflicts = {"left": 2}

    def flaky(self: S3Backend, op: str, what: str, **kw: Any) -> Any:
        if op == "put_object" and conflicts["left"] > 0:
            conflicts["left"] -= 1
            raise _s3_io._Conflict(16, "ConditionalRequestConflict")
        return real_call(self, op, what, **kw)

    monkeypatch.setattr(S3Backend, "_call", flaky)
    s3.create("k", b"v")  # two 409s, then it lands
    assert s3.read("k") == b"v"
    conflicts["left"] = 1000
    with pytest.raises(OSError, match="kept conflicting") as info:
        s3.create("k2", b"v")
    assert not isinstance(info.value, FileExistsError)


def test_412_after_a_resent_put_reads_back(s3: S3Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PUT whose response was lost and was re-sent gets 412: compare the stored bytes."""
    s3.create("mine", b"same bytes")  # "the first attempt landed"
    s3.create("theirs", b"other bytes")
    real_call = S3Backend._call

    def resent(self: S3Backend, op: str, what: str, **kw: Any) -> Any:
        if op == "put_object":
            err = _s3_io._Precondition(17, "PreconditionFailed")
            err.retried = True
            raise err
        return real_call(self, op, what, **kw)

    monkeypatch.setattr(S3Backend, "_call", resent)
    s3.create("mine", b"same bytes")  # ours: success
    with pytest.raises(FileExistsError):
        s3.create("theirs", b"my bytes")  # someone else's


# ---------------------------------------------------------------------------- multipart
@pytest.fixture
def s3_small_parts(s3_server: _s3server.S3Server, bucket: str) -> S3Backend:
    return S3Backend(
        f"s3://{bucket}/mp", part_size=5 * MiB, max_concurrency=2, **s3_server.storage_options
    )


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_multipart_blob_round_trip_and_dedupe(s3_small_parts: S3Backend) -> None:
    b = s3_small_parts
    data = _payload(12 * MiB + 7)
    blob = b.open_blob()
    for i in range(0, len(data), 3 * MiB):
        blob.write(data[i : i + 3 * MiB])
    assert blob.tell() == len(data)
    assert b.list("") == []  # nothing visible before commit
    assert blob.commit("blobs/x") is True
    assert b.requests["UploadPart"] == 3
    assert b.requests["CompleteMultipartUpload"] == 1
    assert b.size("blobs/x") == len(data)
    assert b.read("blobs/x") == data
    # the same content again: found by one HEAD, nothing uploaded
    b.requests.clear()
    blob = b.open_blob()
    blob.write(data)
    assert blob.commit("blobs/x") is False
    assert dict(b.requests) == {"HeadObject": 1}
    assert b.uploads() == []


def test_multipart_commit_losing_the_race_aborts_its_upload(
    s3_small_parts: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = s3_small_parts
    b.create("blobs/taken", b"old")
    monkeypatch.setattr(S3Backend, "exists", lambda self, key: False)  # the HEAD missed it
    blob = b.open_blob()
    blob.write(_payload(11 * MiB))
    assert blob.commit("blobs/taken") is False  # 412 at CompleteMultipartUpload
    assert b.requests["AbortMultipartUpload"] == 1
    assert b.read("blobs/taken") == b"old"
    assert b.uploads() == []


def test_multipart_conflict_409_starts_the_upload_over(
    s3_small_parts: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = s3_small_parts
    real_call = S3Backend._call
    conflicts = {"left": 1}

    def flaky(self: S3Backend, op: str, what: str, **kw: Any) -> Any:
        if op == "complete_multipart_upload" and conflicts["left"]:
            conflicts["left"] -= 1
            raise _s3_io._Conflict(16, "ConditionalRequestConflict")
        return real_call(self, op, what, **kw)

    monkeypatch.setattr(S3Backend, "_call", flaky)
    data = _payload(11 * MiB, seed=3)
    blob = b.open_blob()
    blob.write(data)
    assert blob.commit("blobs/c") is True
    assert b.requests["CreateMultipartUpload"] == 2
    assert b.requests["AbortMultipartUpload"] == 1
    assert b.read("blobs/c") == data
    assert b.uploads() == []


def test_failed_part_upload_aborts_and_leaves_nothing(
    s3_server: _s3server.S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ModelRegistry(
        S3Backend(f"s3://{bucket}/reg", part_size=5 * MiB, **s3_server.storage_options)
    )
    backend = reg.backend
    assert isinstance(backend, S3Backend)
    real_part = S3Backend._upload_part
    calls = {"n": 0}

    async def failing(self: S3Backend, full: str, upload_id: str, number: int, chunk: bytes) -> str:
        calls["n"] += 1
        if number == 2:
            raise OSError(5, "the network went away")
        return await real_part(self, full, upload_id, number, chunk)

    monkeypatch.setattr(S3Backend, "_upload_part", failing)
    with pytest.raises(StorageError, match="network went away"):
        reg.save("m", np.arange(2 * MiB, dtype=np.float64))  # 16 MiB: 4 parts
    assert calls["n"] >= 2
    assert backend.requests["AbortMultipartUpload"] == 1
    assert backend.uploads() == []
    assert backend.list("models/") == []  # no artifact, no history
    with pytest.raises(ModelNotFoundError):
        reg.versions("m")
    assert reg.verify().ok


def test_open_read_streams_with_one_request_and_seeks(s3_small_parts: S3Backend) -> None:
    b = s3_small_parts
    data = _payload(6 * MiB + 3, seed=1)
    blob = b.open_blob()
    blob.write(data)
    assert blob.commit("r") is True
    b.requests.clear()
    with b.open_read("r") as fh:
        chunks = []
        buf = bytearray(MiB)
        while n := fh.readinto(buf):  # type: ignore[attr-defined]
            chunks.append(bytes(buf[:n]))
    assert b"".join(chunks) == data
    assert dict(b.requests) == {"GetObject": 1}  # one streamed GET
    with b.open_read("r") as fh:
        fh.seek(-3, os.SEEK_END)
        assert fh.read() == data[-3:]
        fh.seek(MiB)
        assert fh.read(5) == data[MiB : MiB + 5]
        assert fh.tell() == MiB + 5
        fh.seek(0)
        assert fh.read(2) == data[:2]
        fh.seek(len(data) + 10)
        assert fh.read() == b""


# ---------------------------------------------------------------------------- requests
def _copy_registry(src: MemoryBackend, dst: S3Backend) -> None:
    keys = src.list("")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: dst.create(k, src.read(k)), keys))


def test_reading_1000_versions_costs_a_bounded_number_of_requests(
    s3_server: _s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    """The registry reads the newest snapshot plus the log after it, not every event."""
    mem = MemoryBackend()
    writer = ModelRegistry(mem)
    for _ in range(1000):
        writer.save("m", {"w": 1})  # one shared artifact, 1,000 history entries
    writer.deploy("m", "1.998.0")  # event 1001
    s3 = S3Backend(f"s3://{bucket}/reg", **s3_server.storage_options)
    _copy_registry(mem, s3)
    snapshots = s3.list("models/m/@snapshots/")
    # Fewer than 1,024 versions: a snapshot every 16 entries, the newest at 992.
    assert snapshots[-1].endswith("000000000992.json")

    def cold() -> tuple[ModelRegistry, S3Backend]:
        b = S3Backend(f"s3://{bucket}/reg", **s3_server.storage_options)
        b.request_log = []
        return ModelRegistry(b, cache_dir=tmp_path / "cache"), b

    # A cold read: one listing of the snapshots, the newest snapshot, the entry it was
    # built from (992: its sha256 must be the one the snapshot records), entries
    # 993..1001, one miss at 1002 (and, on a model's first read, one HEAD probing for a gap).
    for read in (lambda r: r.versions("m"), lambda r: r.current("m")):
        reg, b = cold()
        assert read(reg)
        assert b.requests["ListObjectsV2"] == 1
        assert b.requests["GetObject"] == 1 + 1 + 9 + 1
        assert b.requests["HeadObject"] <= 1
        assert sum(b.requests.values()) <= 14
    assert str(reg.current("m").version) == "1.998.0"  # type: ignore[union-attr]
    b.requests.clear()
    reg.current("m")  # warm: one probe for a newer entry
    assert dict(b.requests) == {"GetObject": 1}
    b.requests.clear()
    assert reg.load("m") == {"w": 1}  # probe + the artifact
    assert dict(b.requests) == {"GetObject": 2}
    b.requests.clear()
    assert reg.load("m") == {"w": 1}  # cached: the probe only
    assert dict(b.requests) == {"GetObject": 1}
    assert _artifact_gets(b) == 1


# ---------------------------------------------------------------------------- read cache
def test_cache_serves_a_second_load_without_downloading(
    s3_server: _s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    reg = _registry(s3_server, bucket, cache_dir=tmp_path / "cache")
    reg.save("m", {"w": list(range(100))})
    reg.deploy("m", "1.0.0")
    backend = reg.backend
    assert isinstance(backend, S3Backend)
    backend.request_log = []
    assert reg.load("m") == {"w": list(range(100))}
    assert _artifact_gets(backend) == 1
    assert reg.load("m") == {"w": list(range(100))}
    assert reg.load("m", "1.0.0") == {"w": list(range(100))}
    assert _artifact_gets(backend) == 1
    # another registry (another process, say) sharing the folder: no download either
    other = _registry(s3_server, bucket, cache_dir=tmp_path / "cache")
    assert isinstance(other.backend, S3Backend)
    other.backend.request_log = []
    assert other.load("m") == {"w": list(range(100))}
    assert _artifact_gets(other.backend) == 0


def _cached_files(root: Path) -> list[Path]:
    skip = ("CACHEDIR.TAG",)  # the cache's own tag, not a cached artifact
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name not in skip
    )


def test_cache_is_bounded_and_evicts_the_least_recently_used(
    s3_server: _s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    models = [np.full(20_000, i, dtype=np.float64) for i in range(3)]  # ~160 KB each
    reg = _registry(s3_server, bucket, cache_dir=cache, cache_size=400_000)
    for m in models:
        reg.save("m", m)
    sizes = {mv.sha256: mv.size for mv in reg.versions("m")}
    backend = reg.backend
    assert isinstance(backend, S3Backend)
    backend.request_log = []
    for v in ("1.0.0", "1.1.0"):
        reg.load("m", v)
        time.sleep(0.01)  # distinct recency stamps
    assert len(_cached_files(cache)) == 2
    reg.load("m", "1.2.0")  # a third does not fit: the least recently used goes
    files = _cached_files(cache)
    assert sum(f.stat().st_size for f in files) <= 400_000
    assert {f.name for f in files} == {
        reg.get("m", "1.1.0").sha256,
        reg.get("m", "1.2.0").sha256,
    }
    assert all(sizes[f.name] == f.stat().st_size for f in files)
    assert _artifact_gets(backend) == 3
    np.testing.assert_array_equal(reg.load("m", "1.0.0"), models[0])  # downloaded again
    assert _artifact_gets(backend) == 4


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_cache_detects_a_damaged_file_and_downloads_again(
    s3_server: _s3server.S3Server,
    bucket: str,
    tmp_path: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    model = np.arange(10_000, dtype=np.float64)
    reg = _registry(s3_server, bucket, cache_dir=cache)
    mv = reg.save("m", model)
    reg.load("m", "1.0.0")
    (path,) = _cached_files(cache)
    path.chmod(0o644)  # cached files are read-only
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 0xFF
    else:
        del data[-100:]
    path.write_bytes(bytes(data))
    for r in (reg, _registry(s3_server, bucket, cache_dir=cache)):  # same and new process
        backend = r.backend
        assert isinstance(backend, S3Backend)
        backend.request_log = []
        np.testing.assert_array_equal(r.load("m", "1.0.0"), model)
        assert _artifact_gets(backend) == 1  # re-downloaded, not served damaged
        assert "damaged cache entry" in caplog.text
        caplog.clear()
        assert path.stat().st_size == mv.size
        path.chmod(0o644)
        if damage == "flip":  # damage again for the next registry
            data = bytearray(path.read_bytes())
            data[-100] ^= 0xFF
            path.write_bytes(bytes(data))
        else:
            path.write_bytes(path.read_bytes()[:-100])


# ---------------------------------------------------------------------------- memory
def test_200mb_artifact_streams_with_bounded_memory(
    s3_server: _s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    """Save and load 200 MB through S3; peak traced memory proves streaming both ways."""
    size = 200 * 10**6
    reg = _registry(s3_server, bucket)
    model = np.random.default_rng(0).standard_normal(size // 8)
    slack = 64 * MiB
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        mv = reg.save("big", model)
        save_peak = tracemalloc.get_traced_memory()[1] - base
        assert mv.size > size
        tracemalloc.reset_peak()
        loaded = reg.load("big", "1.0.0")
        load_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert save_peak < slack, f"save peaked at {save_peak / MiB:.0f} MiB beyond the model"
    assert load_peak < size + slack, f"load peaked at {load_peak / MiB:.0f} MiB"
    assert np.array_equal(loaded, model)
    backend = reg.backend
    assert isinstance(backend, S3Backend)
    assert backend.uploads() == []
    for key in backend.list(""):  # free the server's memory
        backend.delete(key)


# ---------------------------------------------------------------------------- crash
def test_save_killed_mid_upload_leaves_nothing_visible(
    s3_server: _s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/reg"
    opts = s3_server.storage_options
    reg = ModelRegistry(url, storage_options=opts)
    reg.save("big", {"w": 0})
    reg.deploy("big", "1.0.0")
    marker = tmp_path / "uploading"
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_s3server.save_and_hang, args=(url, opts, 24 * MiB, str(marker)))
    child.start()
    try:
        deadline = time.monotonic() + _s3server.HANG_GUARD
        while not marker.exists():
            assert child.is_alive(), "the child died before uploading"
            assert time.monotonic() < deadline, "the child never started uploading"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        child.join(timeout=30)
    backend = reg.backend
    assert isinstance(backend, S3Backend)
    (upload,) = backend.uploads()  # the dead writer's multipart upload is open
    assert upload["Key"].startswith("reg/models/big/@artifacts/")
    fresh = ModelRegistry(url, storage_options=opts)
    assert [str(mv.version) for mv in fresh.versions("big")] == ["1.0.0"]
    assert fresh.load("big") == {"w": 0}
    assert len(fresh.backend.list("models/big/@artifacts/")) == 1
    report = fresh.verify()
    assert report.ok, str(report)
    assert [p.kind for p in report.problems] == ["temporary"]  # reported, not removed
    assert len(backend.uploads()) == 1
    repaired = fresh.verify(repair=True, min_age=0)
    assert len(repaired.removed) == 1
    assert backend.uploads() == []
    assert fresh.verify().problems == ()


# ---------------------------------------------------------------------------- loopback
_CONNECTS: list[tuple[str, Any]] = []
_WATCHING = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHING[0]:
        return
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            _CONNECTS.append(("connect", address[0]))
    elif event == "socket.getaddrinfo":
        _CONNECTS.append(("resolve", args[0]))


@pytest.fixture
def watch_connections() -> Iterator[list[tuple[str, Any]]]:
    if not getattr(sys, "_modelversions_audit", False):
        sys.addaudithook(_audit)  # hooks cannot be removed: it stays idle when not watching
        sys._modelversions_audit = True  # type: ignore[attr-defined]
    _CONNECTS.clear()
    _WATCHING[0] = True
    try:
        yield _CONNECTS
    finally:
        _WATCHING[0] = False


def test_only_127_0_0_1_is_contacted(
    s3_server: _s3server.S3Server, bucket: str, watch_connections: list[tuple[str, Any]]
) -> None:
    if s3_server.external:
        pytest.skip("an external endpoint was configured")
    opts = dict(s3_server.storage_options)
    opts["config_kwargs"] = {"connect_timeout": 7}  # other options: a new client, new sockets
    reg = ModelRegistry(f"s3://{bucket}/net", storage_options=opts)
    reg.save("m", {"w": 1})
    reg.deploy("m", "1.0.0")
    assert reg.load("m") == {"w": 1}
    assert watch_connections, "no connection was observed"
    assert {host for _kind, host in watch_connections} == {"127.0.0.1"}, watch_connections


# ---------------------------------------------------------------------------- generic fsspec
def test_fsspec_memory_url_and_shared_store(tmp_path: Path) -> None:
    name = _s3server.unique_name(tmp_path, "fm")
    reg = ModelRegistry(f"fsspec+memory://{name}/reg")
    assert isinstance(reg.backend, FsspecBackend)
    reg.save("m", {"w": 1})
    reg.deploy("m", "1.0.0")
    # fsspec's memory store is global: another registry on the same URL sees it
    assert ModelRegistry(f"fsspec+memory://{name}/reg").load("m") == {"w": 1}
    assert ModelRegistry(f"fsspec+memory://{name}/other").models() == []


def test_any_fsspec_filesystem_through_from_filesystem(tmp_path: Path) -> None:
    """The generic path: open(path, "xb") for create, spooled blobs; here on a local disk."""
    import fsspec

    fs = fsspec.filesystem(
        "file", auto_mkdir=True, skip_instance_cache=True, use_listings_cache=False
    )
    backend = FsspecBackend.from_filesystem(fs, str(tmp_path / "store"))
    backend.create("a/b", b"1")
    with pytest.raises(FileExistsError):
        backend.create("a/b", b"2")
    assert backend.read("a/b") == b"1"
    blob = backend.open_blob()
    blob.write(b"blob")
    assert blob.commit("a/c") is True
    blob = backend.open_blob()
    blob.write(b"other")
    assert blob.commit("a/c") is False
    assert backend.list("a/") == ["a/b", "a/c"]
    with backend.open_read("a/c") as fh:
        assert fh.read() == b"blob"
    assert backend.size("a/c") == 4
    backend.delete("a/c")
    assert backend.exists("a/c") is False
    reg = ModelRegistry(backend)
    reg.save("m", [1, 2])
    assert reg.load("m", "1.0.0") == [1, 2]
