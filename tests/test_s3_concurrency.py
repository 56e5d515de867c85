"""Processes racing on one registry in an S3 bucket.

The store's ``If-None-Match: *`` is the only arbiter: processes (``spawn``) share
nothing but the bucket. Checks: no version lost or given twice, one winner per
explicit version, unbroken pointer chains, and a replay of the log that reproduces
the state every process ends up reading.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import _s3server
import pytest

from modelversions import ModelRegistry, Version, _state
from modelversions.backends.s3 import S3Backend


@pytest.fixture
def target(s3_server: _s3server.S3Server, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A registry URL in this test's own bucket, and the options to reach it."""
    bucket = s3_server.make_bucket(_s3server.unique_name(tmp_path, "s3c"))
    return f"s3://{bucket}/reg", s3_server.storage_options


def _raw_log(url: str, options: dict[str, Any], name: str) -> list[dict[str, Any]]:
    backend = S3Backend(url, **options)
    keys = backend.list(f"models/{name}/@log/")
    assert keys == [_state.log_key(name, i) for i in range(1, len(keys) + 1)], "log has a gap"
    return [_state.decode(backend.read(k), k) for k in keys]


def test_processes_auto_save_no_version_lost_or_given_twice(
    target: tuple[str, dict[str, Any]],
) -> None:
    url, options = target
    results = _s3server.run_together(
        _s3server.save_many, [(url, options, 25, tag) for tag in range(8)]
    )
    got = [v for versions in results for v in versions]
    assert len(got) == 200
    assert len(set(got)) == 200, "a version was given to two saves"
    for versions in results:  # each process's own saves got increasing versions
        assert [Version(v) for v in versions] == sorted(Version(v) for v in versions)

    reg = ModelRegistry(url, storage_options=options)
    listed = reg.versions("m")
    assert [str(mv.version) for mv in listed] == sorted(got, key=Version)
    for mv in listed:  # each load checks the artifact's sha256 before unpickling
        assert reg.load("m", mv.version) == {"tag": mv.tags["tag"], "i": mv.tags["i"]}
    assert len(_raw_log(url, options, "m")) == 200  # one entry per save, no gap
    assert len(reg.backend.list("models/m/@artifacts/")) == 200
    assert S3Backend(url, **options).uploads() == []


def test_processes_race_on_one_explicit_version_one_winner(
    target: tuple[str, dict[str, Any]],
) -> None:
    url, options = target
    rounds = 5
    reg = _s3server.check_explicit_race(url, options, rounds)
    assert len(reg.versions("m")) == rounds
    # Losers uploaded their artifacts before losing: orphans, reported, never damage.
    report = reg.verify()
    assert report.ok, str(report)
    assert {p.kind for p in report.problems} <= {"orphan-artifact"}


def test_processes_deploy_and_roll_back_chains_stay_unbroken(
    target: tuple[str, dict[str, Any]],
) -> None:
    url, options = target
    reg = ModelRegistry(url, storage_options=options)
    for i in range(6):
        reg.save("m", {"w": i})
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        reg.deploy("m", v)  # 1.0.0 and 1.1.0 become stable rollback targets
    counts = _s3server.run_together(
        _s3server.deploy_rollback, [(url, options, 15, seed) for seed in range(4)]
    )
    total = Counter[str]()
    for c in counts:
        total.update(c)
    assert total["deploy"] > 0 and total["rollback"] > 0, total

    payloads = _raw_log(url, options, "m")
    moves = [p for p in payloads if p["action"] in ("deploy", "rollback")]
    assert len(moves) == 3 + total["deploy"] + total["rollback"]
    pointer = None
    for p in moves:  # every move starts where the previous one left the pointer
        assert p["from_version"] == pointer, p
        pointer = p["to_version"]

    # Replaying the log from the first entry reproduces what a fresh reader sees.
    replayed = _state.replay("m", payloads)
    fresh = ModelRegistry(url, storage_options=options)
    current = fresh.current("m")
    assert str(current.version) == pointer  # type: ignore[union-attr]
    assert {str(v) for v in replayed.pointers.values()} == {pointer}
    assert [(str(mv.version), mv.status) for mv in fresh.versions("m")] == [
        (str(mv.version), mv.status) for mv in replayed.versions()
    ]
    assert [e.seq for e in fresh.history("m")] == list(range(1, len(payloads) + 1))
    report = fresh.verify()
    assert report.ok and report.problems == (), str(report)
