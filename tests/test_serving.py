"""Serving (modelversions/serving.py): a handle that follows the deployed version.

Covers the handle's contract (loading, explicit and background checks, on_change,
close, the registry's close, wait_for), two processes (a serving one with
``refresh=0.2`` and one that deploys, rolls back and runs a failing guarded deploy)
on a local folder and on S3, the cost of an idle check (exactly one storage request at
10 and at 5,000 versions), damaged versions, readers racing 50 swaps, a fork, and
``examples/serve.py`` answering HTTP while a CLI rollback happens.
"""

from __future__ import annotations

import concurrent.futures
import gc
import json
import logging
import multiprocessing
import os
import queue
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _s3server
import pytest

from modelversions import (
    DeployCheckFailedError,
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    Served,
    ServingTimeoutError,
    VersionNotFoundError,
)
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.backends.s3 import S3Backend

ROOT = Path(__file__).resolve().parent.parent
GUARD = 30.0  # seconds to wait for something that should happen (a guard, not a measure)


def _artifact_path(reg: ModelRegistry, mv: ModelVersion) -> Path:
    path = reg.backend.local_path(f"models/{mv.name}/@artifacts/{mv.sha256}.joblib")
    assert path is not None
    return Path(path)


class Bomb:
    """Pickles fine, fails to unpickle (as a model whose code changed would)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_explode, ())


def _explode() -> None:
    raise RuntimeError("this model cannot be unpickled here")


@pytest.fixture
def reg() -> ModelRegistry:
    r = ModelRegistry("memory://")
    for i in range(3):
        r.save("m", {"w": i})
    r.deploy("m", "1.0.0")
    return r


# ---------------------------------------------------------------------- the handle
def test_serve_loads_the_deployed_version(reg: ModelRegistry) -> None:
    with reg.serve("m", refresh=None) as served:
        assert served.model == {"w": 0}
        assert str(served.version.version) == "1.0.0"
        assert served.loaded == (served.model, served.version)
        assert (served.name, served.env, served.last_error) == ("m", "production", None)
        assert served.refresh() is False  # nothing changed
        reg.deploy("m", "1.2.0")
        assert served.refresh() is True
        assert served.loaded.model == {"w": 2}
        assert str(served.version.version) == "1.2.0"
        reg.rollback("m")
        assert served.refresh() is True
        assert str(served.version.version) == "1.0.0"
        assert "1.0.0" in repr(served)


def test_serve_raises_as_load_does_when_nothing_is_deployed(reg: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        reg.serve("nope")
    with pytest.raises(VersionNotFoundError, match="nothing is deployed in 'staging'"):
        reg.serve("m", env="staging")
    with pytest.raises(VersionNotFoundError):
        reg.load("m", env="staging")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"refresh": 0}, "refresh"),
        ({"refresh": -1.0}, "refresh"),
        ({"refresh": float("nan")}, "refresh"),
        ({"refresh": True}, "refresh"),
        ({"refresh": "5"}, "refresh"),
        ({"on_change": "print"}, "on_change"),
        ({"load": 3}, "load"),
        ({"env": "../prod"}, "env"),
    ],
)
def test_serve_refuses_bad_arguments(
    reg: ModelRegistry, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        reg.serve("m", **kwargs)


def test_status_change_updates_the_record_without_a_swap(reg: ModelRegistry) -> None:
    calls: list[tuple[Any, Any]] = []
    with reg.serve("m", refresh=None, on_change=lambda o, n: calls.append((o, n))) as served:
        model = served.model
        reg.mark_failed("m", "1.0.0", reason="bad")
        assert served.refresh() is False
        assert served.version.status.value == "failed"
        assert served.model is model
        assert [(o, str(n.version)) for o, n in calls] == [(None, "1.0.0")]


def test_on_change_gets_old_and_new_and_its_errors_are_only_logged(
    reg: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str | None, str]] = []

    def on_change(old: ModelVersion | None, new: ModelVersion) -> None:
        seen.append((old and str(old.version), str(new.version)))
        raise ValueError("callback bug")

    with caplog.at_level(logging.WARNING, logger="modelversions"):
        served = reg.serve("m", refresh=None, on_change=on_change)
        reg.deploy("m", "1.1.0")
        assert served.refresh() is True
    assert seen == [(None, "1.0.0"), ("1.0.0", "1.1.0")]
    assert str(served.version.version) == "1.1.0"
    assert served.last_error is None
    assert "callback bug" in caplog.text


def test_close_stops_the_checker_and_keeps_the_model(reg: ModelRegistry) -> None:
    served = reg.serve("m", refresh=0.01)
    thread = served._thread
    assert thread is not None and thread.is_alive() and thread.daemon
    served.close()
    served.close()  # idempotent
    assert not thread.is_alive() and served.closed
    assert served.model == {"w": 0}
    with pytest.raises(InvalidInputError, match="closed"):
        served.refresh()


def test_registry_close_stops_its_handles(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", 1)
    reg.deploy("m", "1.0.0")
    handles = [reg.serve("m", refresh=0.01), reg.serve("m", refresh=None)]
    threads = [h._thread for h in handles]
    reg.close()
    assert all(h.closed for h in handles)
    assert all(t is None or not t.is_alive() for t in threads)


def test_huge_intervals_are_accepted(reg: ModelRegistry) -> None:
    with reg.serve("m", refresh=1e300) as served:
        with pytest.raises(ServingTimeoutError):
            served.wait_for("1.1.0", timeout=0.01)
        reg.deploy("m", "1.1.0")
        threading.Timer(0.05, served.refresh).start()
        assert served.wait_for("1.1.0", timeout=1e300).version == served.version.version
        assert served._thread is not None and served._thread.is_alive()


def test_a_dropped_handle_ends_its_checker(reg: ModelRegistry) -> None:
    served = reg.serve("m", refresh=0.01)
    thread = served._thread
    assert thread is not None
    del served
    gc.collect()
    thread.join(GUARD)
    assert not thread.is_alive()


def test_background_checker_follows_and_wait_for(reg: ModelRegistry) -> None:
    with reg.serve("m", refresh=0.01) as served:
        reg.deploy("m", "1.1.0")
        assert str(served.wait_for("1.1.0", timeout=GUARD).version) == "1.1.0"
        assert served.model == {"w": 1}
        with pytest.raises(ServingTimeoutError, match=r"1\.2\.0 was not served .* 1\.1\.0"):
            served.wait_for("1.2.0", timeout=0.05)
        with pytest.raises(TimeoutError):  # a ServingTimeoutError is a TimeoutError
            served.wait_for("v1.2", timeout=0)


def test_wait_for_without_a_checker_checks_itself(reg: ModelRegistry) -> None:
    with reg.serve("m", refresh=None) as served:
        threading.Timer(0.05, reg.deploy, ("m", "1.2.0")).start()
        assert str(served.wait_for("1.2.0", timeout=GUARD).version) == "1.2.0"


def test_load_function_is_a_parameter(reg: ModelRegistry) -> None:
    """How a version is loaded is pluggable (path versions slot in there)."""
    with reg.serve("m", refresh=None, load=lambda mv: f"loaded {mv.version}") as served:
        assert served.model == "loaded 1.0.0"


# ---------------------------------------------------------------------- damaged versions
def test_damaged_new_version_keeps_the_old_one_then_switches_when_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 1})
    bad = reg.save("m", {"w": 2})
    reg.deploy("m", "1.0.0")
    served = reg.serve("m", refresh=None)
    path = _artifact_path(reg, bad)
    good = path.read_bytes()
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    reg.deploy("m", "1.1.0")
    with caplog.at_level(logging.DEBUG, logger="modelversions"):
        assert served.refresh() is False
        assert served.refresh() is False  # tried again, still damaged
    assert served.model == {"w": 1} and str(served.version.version) == "1.0.0"
    assert isinstance(served.last_error, IntegrityError)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].name == "modelversions"  # once, not per check
    assert "1.1.0" in warned[0].getMessage() and "still serving 1.0.0" in warned[0].getMessage()
    path.write_bytes(good)  # repaired
    assert served.refresh() is True
    assert served.model == {"w": 2} and served.last_error is None


@pytest.mark.parametrize("damage", ["missing", "unpicklable"])
def test_unloadable_version_keeps_the_old_one_until_a_good_one_is_deployed(
    tmp_path: Path, damage: str
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 1})
    bad = reg.save("m", Bomb() if damage == "unpicklable" else {"w": 2})
    reg.save("m", {"w": 3})
    reg.deploy("m", "1.0.0")
    with reg.serve("m", refresh=0.01) as served:
        if damage == "missing":
            _artifact_path(reg, bad).unlink()
        reg.deploy("m", "1.1.0")
        deadline = time.monotonic() + GUARD
        while served.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(served.last_error, IntegrityError if damage == "missing" else Exception)
        assert served.model == {"w": 1}
        reg.deploy("m", "1.2.0")
        served.wait_for("1.2.0", timeout=GUARD)
        assert served.model == {"w": 3}
        assert served.last_error is None


# ---------------------------------------------------------------------- swaps and readers
def test_eight_readers_during_fifty_swaps_see_whole_models(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    for i in range(2):
        reg.save("m", {"version": f"1.{i}.0", "rows": [i] * 10_000})
    reg.deploy("m", "1.0.0")
    stop = threading.Event()
    problems: list[str] = []
    reads = [0] * 8

    def reader(k: int) -> None:
        while not stop.is_set():
            try:
                model = served.model
                pair = served.loaded
                if model is None or len(model["rows"]) != 10_000:
                    problems.append(f"bad model {model!r:.60}")
                if pair.model["version"] != str(pair.version.version):
                    problems.append(f"mixed pair {pair.model['version']} / {pair.version}")
            except Exception as exc:
                problems.append(repr(exc))
            reads[k] += 1
            time.sleep(0)  # yield the GIL: eight spinning readers would starve the swaps

    with reg.serve("m", refresh=0.002) as served:
        threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        try:
            for swap in range(50):
                want = f"1.{(swap + 1) % 2}.0"
                reg.deploy("m", want, force=True)
                served.wait_for(want, timeout=GUARD)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert problems == []
    assert all(n > 0 for n in reads)


# ---------------------------------------------------------------------- two processes
@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "local":
        return str(tmp_path / "reg"), {}
    srv = _s3server.server()
    return f"s3://{_s3server.new_bucket(tmp_path)}/reg", srv.storage_options


class Child:
    """A serving process (tests/_serving_child.py) whose reports are read as they come."""

    def __init__(self, location: str, options: dict[str, Any], refresh: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "_serving_child.py"),
                location,
                json.dumps(options),
                "m",
                str(refresh),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[tuple[str, str, float]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, version, t = line.split()
            self.lines.put((kind, version, float(t)))

    def next(self) -> tuple[str, str, float]:
        try:
            return self.lines.get(timeout=GUARD)
        except queue.Empty:
            raise AssertionError(
                f"the serving process reported nothing (exit code {self.proc.poll()})"
            ) from None

    def reports_since(self, quiet: float) -> list[tuple[str, str, float]]:
        """Every report until none came for ``quiet`` seconds."""
        out = []
        while True:
            try:
                out.append(self.lines.get(timeout=quiet))
            except queue.Empty:
                return out

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(GUARD)


def test_two_processes_deploy_rollback_and_failed_guarded_deploy(
    location: tuple[str, dict[str, Any]],
) -> None:
    url, options = location
    refresh = 0.2
    reg = ModelRegistry(url, storage_options=options or None)
    for i in range(3):
        reg.save("m", {"w": i})
    reg.deploy("m", "1.0.0")
    child = Child(url, options, refresh)
    try:
        assert child.next()[:2] == ("ready", "1.0.0")
        latencies = []
        for action, want in [
            (lambda: reg.deploy("m", "1.1.0"), "1.1.0"),
            (lambda: reg.rollback("m", reason="bad"), "1.0.0"),
            (lambda: reg.deploy("m", "1.2.0"), "1.2.0"),
        ]:
            action()
            done = time.monotonic()
            kind, version, seen = child.next()
            assert (kind, version) == ("swap", want)
            latencies.append(seen - done)
        # A guarded deploy whose check fails: 1.1.0 is deployed, then 1.2.0 put back.
        with pytest.raises(DeployCheckFailedError):
            reg.deploy("m", "1.1.0", check=lambda model: False, force=True)
        done = time.monotonic()
        after = child.reports_since(quiet=5 * refresh)
        # The serving process may have caught 1.1.0 between the two entries; it ends on
        # 1.2.0 either way, within the bound of the restore.
        assert [v for _k, v, _t in after] in ([], ["1.1.0", "1.2.0"])
        if after:
            latencies.append(after[-1][2] - done)
        assert str(reg.current("m").version) == "1.2.0"  # type: ignore[union-attr]
        assert max(latencies) <= 3 * refresh, latencies
    finally:
        child.stop()
    assert child.proc.returncode == 0


# ---------------------------------------------------------------------- cost of a check
class CountingLocal(LocalBackend):
    """A local folder that counts every call of the storage protocol."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, durable=False)
        self.calls: list[str] = []

    def read(self, key: str) -> bytes:
        self.calls.append(f"read {key}")
        return super().read(key)

    def exists(self, key: str) -> bool:
        self.calls.append(f"exists {key}")
        return super().exists(key)

    def list(self, prefix: str) -> list[str]:
        self.calls.append(f"list {prefix}")
        return super().list(prefix)

    def size(self, key: str) -> int:
        self.calls.append(f"size {key}")
        return super().size(key)

    def local_path(self, key: str) -> str | None:
        self.calls.append(f"local_path {key}")
        return super().local_path(key)


def _many_versions(reg: ModelRegistry, n: int) -> None:
    for i in range(n):
        reg.save("m", {"w": i % 2})  # two distinct artifacts, n versions
    reg.deploy("m", "1.0.0")


@pytest.mark.parametrize("versions", [10, 5000])
def test_idle_check_is_one_request_on_a_local_folder(tmp_path: Path, versions: int) -> None:
    backend = CountingLocal(tmp_path / "reg")
    _many_versions(ModelRegistry(backend), versions)
    reg = ModelRegistry(CountingLocal(tmp_path / "reg"))  # a fresh process's registry
    with reg.serve("m", refresh=None) as served:
        calls = reg.backend.calls  # type: ignore[attr-defined]
        for _ in range(3):
            calls.clear()
            assert served.refresh() is False
            assert calls == [f"read models/m/@log/{versions + 2:012d}.json"]


@pytest.fixture
def mem_to_s3(tmp_path: Path) -> Iterator[Any]:
    """Copy a registry built in memory into a fresh S3 prefix (quicker than saving there)."""

    def copy(mem: MemoryBackend) -> S3Backend:
        srv = _s3server.server()
        s3 = S3Backend(f"s3://{_s3server.new_bucket(tmp_path)}/reg", **srv.storage_options)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: s3.create(k, mem.read(k)), mem.list("")))
        return s3

    yield copy


@pytest.mark.parametrize("versions", [10, 5000])
def test_idle_check_is_one_request_on_s3(mem_to_s3: Any, versions: int) -> None:
    mem = MemoryBackend()
    _many_versions(ModelRegistry(mem), versions)
    s3 = mem_to_s3(mem)
    reg = ModelRegistry(s3)
    with reg.serve("m", refresh=None) as served:
        for _ in range(3):
            s3.requests.clear()
            assert served.refresh() is False
            assert dict(s3.requests) == {"GetObject": 1}
        reg.deploy("m", "1.1.0")
        assert served.refresh() is True


# ---------------------------------------------------------------------- fork
def _forked_child(reg: ModelRegistry, served: Served, conn: Any) -> None:
    try:
        conn.send("started")
        mv = served.wait_for("1.1.0", timeout=GUARD)
        alive = served._thread is not None and served._thread.is_alive()
        conn.send((str(mv.version), served.model, alive))
    except BaseException as exc:
        conn.send(repr(exc))


def test_a_forked_child_starts_its_own_checker(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 1})
    reg.save("m", {"w": 2})
    reg.deploy("m", "1.0.0")
    ctx = multiprocessing.get_context("fork")
    with reg.serve("m", refresh=0.01) as served:
        parent_end, child_end = ctx.Pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            proc = ctx.Process(target=_forked_child, args=(reg, served, child_end))
            proc.start()
        try:
            assert parent_end.poll(GUARD) and parent_end.recv() == "started"
            reg.deploy("m", "1.1.0")
            assert parent_end.poll(GUARD)
            assert parent_end.recv() == ("1.1.0", {"w": 2}, True)
            served.wait_for("1.1.0", timeout=GUARD)  # the parent's checker still works
        finally:
            proc.join(GUARD)
    assert proc.exitcode == 0


# ---------------------------------------------------------------------- examples/serve.py
def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=GUARD) as resp:
        return json.loads(resp.read())


def _post(url: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=GUARD) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_example_service_follows_a_cli_rollback(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    location = str(tmp_path / "reg")
    reg = ModelRegistry(location)
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    reg.save("churn", LogisticRegression().fit(x, [0, 0, 1, 1]))
    reg.save("churn", LogisticRegression().fit(x, [1, 1, 0, 0]))  # the bad one
    reg.deploy("churn", "1.0.0")
    reg.deploy("churn", "1.1.0")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            *(sys.executable, str(ROOT / "examples" / "serve.py"), "--registry", location),
            *("--name", "churn", "--refresh", "0.2", "--host", "127.0.0.1", "--port", "0"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving churn 1.1.0 on http://127.0.0.1:"), line
        base = line.split()[-1]
        assert _get(f"{base}/version")["version"] == "1.1.0"
        status, answer = _post(f"{base}/predict", b'{"instances": [[0.0], [3.0]]}')
        assert (status, answer) == (200, {"version": "1.1.0", "predictions": [1, 0]})
        for bad in [b"not json", b'{"instances": "x"}', b"{}", b'{"instances": [["a"]]}']:
            status, answer = _post(f"{base}/predict", bad)
            assert status == 400 and "error" in answer
        rollback = subprocess.run(
            [
                *(sys.executable, "-m", "modelversions", "--registry", location),
                *("rollback", "churn", "--reason", "bad predictions"),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        done = time.monotonic()
        assert "1.0.0" in rollback.stdout
        while _get(f"{base}/version")["version"] != "1.0.0":
            assert time.monotonic() - done < GUARD
            time.sleep(0.02)
        assert time.monotonic() - done <= 3 * 0.2  # within the interval (and a load)
        status, answer = _post(f"{base}/predict", b'{"instances": [[0.0], [3.0]]}')
        assert (status, answer) == (200, {"version": "1.0.0", "predictions": [0, 1]})
    finally:
        proc.terminate()
        proc.wait(GUARD)


# ---------------------------------------------------------------------- path versions
def test_a_file_or_folder_version_is_served_as_its_verified_path(tmp_path: Path) -> None:
    from modelversions import InvalidInputError, ModelRegistry

    reg = ModelRegistry(tmp_path / "reg")
    src = tmp_path / "weights"
    src.mkdir()
    (src / "w.bin").write_bytes(b"one")
    reg.save("m", path=src)
    (src / "w.bin").write_bytes(b"two")
    reg.save("m", path=src)
    reg.save("m", {"w": 3})
    reg.deploy("m", "1.0.0")
    with reg.serve("m", refresh=None) as served:
        assert served.path.name == "weights"
        assert (served.path / "w.bin").read_bytes() == b"one"
        assert served.model == served.path
        reg.deploy("m", "1.1.0")
        assert served.refresh()
        assert (served.path / "w.bin").read_bytes() == b"two"
        reg.deploy("m", "1.2.0")  # a Python object: .path says to use .model
        assert served.refresh()
        assert served.model == {"w": 3}
        with pytest.raises(InvalidInputError, match=r"use served\.model"):
            _ = served.path
        reg.rollback("m")
        assert served.refresh()
        assert (served.path / "w.bin").read_bytes() == b"two"
    reg.close()
