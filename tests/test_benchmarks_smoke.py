"""The benchmark runs end to end, and the behaviour its speed relies on holds.

No test here asserts a time: ``benchmarks/run.py --quick`` must run and write its
table, and the fast paths (memory-mapped loads, hashing read back from the file,
snapshot encoding reusing record JSON) must give exactly what the plain paths give.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from modelversions import IntegrityError, InvalidInputError, ModelRegistry, _state
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.serialization import dump_model, hash_file

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "| target | goal | measured | met | figures |" in text
    for row in ("small save vs joblib.dump+fsync", "rollback at", "versions() at", "import"):
        assert row in text
    assert "## Machine" in text


def _artifact_path(reg: ModelRegistry, name: str, sha256: str) -> str:
    path = reg.backend.local_path(_state.artifact_key(name, sha256))
    assert path is not None
    return path


def test_mmap_load_returns_memory_mapped_arrays(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    weights = np.arange(300_000, dtype=np.float64)
    mv = reg.save("m", {"w": weights, "bias": 0.5})
    for _ in range(2):  # first load hashes the file; the second hits the verified memo
        loaded = reg.load("m", mv.version, mmap_mode="r")
        assert isinstance(loaded["w"], np.memmap)
        # Mapped from the verified open file (through /proc/self/fd), which is the artifact.
        with open("/proc/self/maps") as maps:
            assert _artifact_path(reg, "m", mv.sha256) in maps.read()
        np.testing.assert_array_equal(loaded["w"], weights)
        assert loaded["bias"] == 0.5


def test_mmap_load_still_refuses_a_damaged_file(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    mv = reg.save("m", {"w": np.ones(100_000)})
    reg.load("m", mv.version, mmap_mode="r")  # verified once, memo filled
    path = _artifact_path(reg, "m", mv.sha256)
    os.chmod(path, 0o644)  # stored read-only
    with open(path, "r+b") as fh:  # same size, new ctime: the memo must not match
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(IntegrityError):
        ModelRegistry(tmp_path / "reg").load("m", mv.version, mmap_mode="r")
    with pytest.raises(IntegrityError):
        reg.load("m", mv.version, mmap_mode="r")


@pytest.mark.parametrize("nbytes", [10, 300_000, 5_000_000])
def test_hash_read_back_from_the_file_matches_the_bytes(tmp_path: Path, nbytes: int) -> None:
    model = {"w": np.random.default_rng(0).random(nbytes // 8 + 1), "tail": "x" * 1000}
    local = LocalBackend(tmp_path / "reg")
    blob = local.open_blob()
    sha, size = dump_model(model, blob)
    assert blob.commit(f"a/{sha}")
    path = local.local_path(f"a/{sha}")
    assert path is not None
    assert hash_file(path) == (sha, size)
    memory_blob = MemoryBackend().open_blob()  # the in-memory hashing path agrees
    assert dump_model(model, memory_blob) == (sha, size)


def test_failed_dump_stops_the_hash_thread(tmp_path: Path) -> None:
    class Bad:
        def __reduce__(self) -> object:
            raise TypeError("no pickling")

    before = threading.active_count()
    local = LocalBackend(tmp_path / "reg")
    blob = local.open_blob()
    with pytest.raises(InvalidInputError):
        dump_model({"w": np.ones(200_000), "bad": Bad()}, blob)
    blob.abort()
    assert threading.active_count() == before
    assert local.cleanup(min_age=0) == []


def test_snapshot_encoding_reuses_record_json_exactly(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    for i in range(70):
        reg.save("m", i, metrics={"auc": i / 100, "note": "é"}, tags={"i": i})
    reg.deploy("m", "1.3.0")
    reg.deploy("m", "1.5.0")
    reg.rollback("m", reason="bench")
    state = reg._log.states["m"]
    expected = _state.encode(state.to_snapshot())
    assert state.encode_snapshot() == expected
    assert state.encode_snapshot() == expected  # from the cache
    reg.mark_failed("m", "1.2.0", reason="x")
    reg.delete("m", "1.1.0")
    assert state.encode_snapshot() == _state.encode(state.to_snapshot())
    # a fresh registry reads the same state back from the snapshot and the log
    fresh = ModelRegistry(tmp_path / "reg")
    assert [mv.to_dict() for mv in fresh.versions("m")] == [
        mv.to_dict() for mv in reg.versions("m")
    ]


def test_signing_benchmark_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_signing.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| save")]
    assert len(rows) == 2 and all(row.count("ms") == 3 for row in rows)


def test_cold_benchmark_runs_its_scenarios_at_small_sizes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_cold.py"),
            "--quick",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for op in ("current", "load", "rollback", "versions"):
        assert f"{op:9s} ratio 200 / 10" in out
    for figure in ("joblib.load same file", "CLI current", "import adds", "-X importtime"):
        assert figure in out
