"""The registry's rules, run on every backend in ``conftest.BACKENDS``.

Versions (auto, explicit, lenient, collisions), metadata, the reference rollback
scenarios, deploy promotion, failures, history, integrity on load, names, reopening.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelversions import (
    Event,
    ForbiddenTransitionError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    InvalidVersionError,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    NoRollbackTargetError,
    Status,
    StatusChange,
    Version,
    VersionExistsError,
    VersionNotFoundError,
)
from modelversions.backends import Backend
from modelversions.backends.memory import MemoryBackend

BackendFactory = Callable[[Path], Backend]

# ---------------------------------------------------------------------------- helpers
#: Filled by ``_revive`` whenever a ``Tracer`` is unpickled: proof of unpickling.
UNPICKLED: list[str] = []


def _revive(tag: str) -> Tracer:
    UNPICKLED.append(tag)
    return Tracer(tag)


class Tracer:
    """A model whose unpickling leaves a trace in ``UNPICKLED``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_revive, (self.tag,))


def vs(registry: ModelRegistry, name: str) -> list[str]:
    return [str(mv.version) for mv in registry.versions(name)]


def statuses(registry: ModelRegistry, name: str) -> dict[str, str]:
    return {str(mv.version): mv.status.value for mv in registry.versions(name)}


def cur(registry: ModelRegistry, name: str, env: str = "production") -> str | None:
    mv = registry.current(name, env=env)
    return None if mv is None else str(mv.version)


def snapshot(registry: ModelRegistry, name: str) -> tuple[Any, ...]:
    """Everything observable about a model, to check that a call changed nothing."""
    return (
        [mv.to_dict() for mv in registry.versions(name)],
        {env: str(mv.version) for env, mv in registry.envs(name).items()},
        [e.to_dict() for e in registry.history(name)],
        registry.backend.list(""),
    )


def save_many(registry: ModelRegistry, name: str, versions: list[str]) -> None:
    for v in versions:
        registry.save(name, {"v": v}, v)


def reopen(registry: ModelRegistry) -> ModelRegistry:
    """A new registry object on the same storage."""
    return ModelRegistry(registry.backend)


# ---------------------------------------------------------------------------- save: versions
def test_first_save_is_1_0_0_then_minor_bumps(registry: ModelRegistry) -> None:
    first = registry.save("churn", {"w": 1})
    assert isinstance(first, ModelVersion)
    assert str(first.version) == "1.0.0"
    assert first.status is Status.CANDIDATE
    assert first.name == "churn"
    assert str(registry.save("churn", {"w": 2}).version) == "1.1.0"
    assert str(registry.save("churn", {"w": 3}).version) == "1.2.0"
    assert vs(registry, "churn") == ["1.0.0", "1.1.0", "1.2.0"]


def test_bump_major_and_patch(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    assert str(registry.save("m", 2, bump="major").version) == "2.0.0"
    assert str(registry.save("m", 3, bump="patch").version) == "2.0.1"
    assert str(registry.save("m", 4, bump="minor").version) == "2.1.0"
    assert str(registry.save("m", 5).version) == "2.2.0"


def test_invalid_bump_rejected_before_storage(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match="bump"):
        registry.save("m", 1, bump="huge")
    assert registry.backend.list("") == []


def test_auto_version_bumps_the_highest_not_the_latest(registry: ModelRegistry) -> None:
    registry.save("m", 1)  # 1.0.0
    registry.save("m", 2, "3.0.0")
    registry.save("m", 3, "2.0.0")  # lower, added later
    registry.save("m", 4, "1.5.0")
    assert str(registry.save("m", 5).version) == "3.1.0"
    assert str(registry.save("m", 6, bump="patch").version) == "3.1.1"
    assert vs(registry, "m") == ["1.0.0", "1.5.0", "2.0.0", "3.0.0", "3.1.0", "3.1.1"]


def test_explicit_and_lenient_versions(registry: ModelRegistry) -> None:
    assert str(registry.save("m", 1, "v3").version) == "3.0.0"
    assert str(registry.save("m", 2, "1.2").version) == "1.2.0"
    assert str(registry.save("m", 3, Version("2.0.0-rc.1")).version) == "2.0.0-rc.1"
    assert str(registry.save("m", 4, "model_v4.1").version) == "4.1.0"
    assert vs(registry, "m") == ["1.2.0", "2.0.0-rc.1", "3.0.0", "4.1.0"]
    assert registry.get("m", "v3").version == Version("3.0.0")
    assert registry.load("m", "v3") == 1
    assert str(registry.deploy("m", "v1.2").version) == "1.2.0"


def test_invalid_version_text_rejected_before_storage(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidVersionError) as info:
        registry.save("m", 1, "not a version")
    assert isinstance(info.value, ValueError)
    assert registry.backend.list("") == []


@pytest.mark.parametrize(
    ("first", "second"),
    [("1.0.0", "1.0.0"), ("1.0.0+a", "1.0.0+b"), ("1.0.0", "v1"), ("2.0.0+x", "2.0")],
)
def test_equal_version_raises_version_exists_and_stores_nothing(
    registry: ModelRegistry, first: str, second: str
) -> None:
    registry.save("m", {"first": True}, first)
    before = snapshot(registry, "m")
    with pytest.raises(VersionExistsError) as info:
        registry.save("m", {"second": True}, second)
    assert isinstance(info.value, FileExistsError)
    assert str(Version(first)) in str(info.value)
    assert snapshot(registry, "m") == before
    assert registry.load("m", first) == {"first": True}


def test_str_keeps_saved_build_metadata(registry: ModelRegistry) -> None:
    mv = registry.save("m", 1, "1.0.0+build.7")
    assert str(mv.version) == "1.0.0+build.7"
    assert str(registry.get("m", "1.0.0").version) == "1.0.0+build.7"
    assert vs(registry, "m") == ["1.0.0+build.7"]
    with pytest.raises(VersionExistsError, match=r"1\.0\.0\+build\.7"):
        registry.save("m", 2, "1.0.0+other")
    assert str(registry.deploy("m", "1.0.0").version) == "1.0.0+build.7"
    assert str(registry.history("m")[-1].to_version) == "1.0.0+build.7"
    assert vs(reopen(registry), "m") == ["1.0.0+build.7"]
    assert str(registry.save("m", 3).version) == "1.1.0"  # the bump drops build metadata


# ---------------------------------------------------------------------------- save: metadata
def test_metadata_stored_and_returned(registry: ModelRegistry) -> None:
    metrics: dict[str, Any] = {"auc": 0.81, "n": 10, "per_class": [0.5, 0.9], "ok": True}
    params = {"depth": 3, "lr": None, "nested": {"a": [1, 2]}}
    tags = {"team": "risk", "data": "2026-01"}
    mv = registry.save(
        "m", 1, metrics=metrics, params=params, tags=tags, description="first try, ünïcode"
    )
    metrics["auc"] = 0.0  # later changes to the caller's dict do not leak in
    for got in (mv, registry.get("m", "1.0.0"), reopen(registry).get("m", "1.0.0")):
        assert dict(got.metrics) == {"auc": 0.81, "n": 10, "per_class": [0.5, 0.9], "ok": True}
        assert dict(got.params) == params
        assert dict(got.tags) == tags
        assert got.description == "first try, ünïcode"
        assert got.size > 0
        assert len(got.sha256) == 64
        with pytest.raises(TypeError):
            got.metrics["auc"] = 1.0  # type: ignore[index]


def test_metadata_defaults_are_empty(registry: ModelRegistry) -> None:
    mv = registry.save("m", 1)
    assert dict(mv.metrics) == {} and dict(mv.params) == {} and dict(mv.tags) == {}
    assert mv.description is None
    assert mv.failure_reason is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metrics": {"auc": object()}},
        {"metrics": {"s": {1, 2}}},
        {"metrics": {1: 0.5}},
        {"metrics": [("auc", 0.5)]},
        {"params": {"f": print}},
        {"tags": {"b": b"bytes"}},
        {"description": 42},
    ],
)
def test_non_json_metadata_rejected_before_storage(
    registry: ModelRegistry, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        registry.save("m", 1, **kwargs)
    assert registry.backend.list("") == []
    registry.save("m", 1)
    before = snapshot(registry, "m")
    with pytest.raises(InvalidInputError):
        registry.save("m", 2, **kwargs)
    assert snapshot(registry, "m") == before


# ---------------------------------------------------------------------------- reference scenarios
def test_scenario_a_rollback_skips_failed_and_candidates(registry: ModelRegistry) -> None:
    """v1..v4; v1 and v4 stable, v2 failed, v3 a deployed candidate: rollback gives 1.0.0."""
    save_many(registry, "m", ["v1", "v2", "v3", "v4"])
    registry.mark_stable("m", "v1")
    registry.mark_stable("m", "v4")
    registry.mark_failed("m", "v2", reason="bad data")
    registry.deploy("m", "v3")
    assert statuses(registry, "m") == {
        "1.0.0": "stable",
        "2.0.0": "failed",
        "3.0.0": "candidate",
        "4.0.0": "stable",
    }
    target = registry.rollback("m", reason="latency")
    assert str(target.version) == "1.0.0"
    assert cur(registry, "m") == "1.0.0"
    assert statuses(registry, "m") == {
        "1.0.0": "stable",
        "2.0.0": "failed",
        "3.0.0": "failed",
        "4.0.0": "stable",
    }
    assert registry.get("m", "v3").failure_reason == "latency"


def test_scenario_a_reached_by_deploys(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["v1", "v2", "v3", "v4"])
    registry.deploy("m", "v1")
    registry.deploy("m", "v4")  # v1 -> stable
    registry.deploy("m", "v2")  # v4 -> stable
    registry.mark_failed("m", "v2", reason="errors")
    registry.deploy("m", "v3")  # v2 stays failed
    assert statuses(registry, "m") == {
        "1.0.0": "stable",
        "2.0.0": "failed",
        "3.0.0": "candidate",
        "4.0.0": "stable",
    }
    assert str(registry.rollback("m").version) == "1.0.0"
    assert registry.get("m", "3.0.0").status is Status.FAILED


def test_scenario_b_rollback_after_deploys_in_turn(registry: ModelRegistry) -> None:
    """Versions 1, 2, 3 deployed in turn; an issue on 3: rollback gives 2.0.0, 3 is failed."""
    save_many(registry, "m", ["1", "2", "3"])
    for v in ("1", "2", "3"):
        registry.deploy("m", v)
    target = registry.rollback("m", reason="issue found on 3")
    assert str(target.version) == "2.0.0"
    assert cur(registry, "m") == "2.0.0"
    assert statuses(registry, "m") == {"1.0.0": "stable", "2.0.0": "stable", "3.0.0": "failed"}
    assert registry.get("m", "3.0.0").failure_reason == "issue found on 3"
    assert registry.get("m", "3.0.0").failed_env == "production"


def test_scenario_c_rollback_keeps_failed_version_listed(registry: ModelRegistry) -> None:
    """v1.0, v1.1, v2.0; v2.0 deployed after v1.1: rollback gives 1.1.0, v2.0 stays listed."""
    save_many(registry, "m", ["v1.0", "v1.1", "v2.0"])
    registry.deploy("m", "v1.1")
    registry.deploy("m", "v2.0")
    assert str(registry.rollback("m").version) == "1.1.0"
    assert vs(registry, "m") == ["1.0.0", "1.1.0", "2.0.0"]
    assert statuses(registry, "m") == {"1.0.0": "candidate", "1.1.0": "stable", "2.0.0": "failed"}
    assert registry.get("m", "v2.0").is_failed
    assert registry.load("m", "v2.0") == {"v": "v2.0"}  # still loadable
    assert registry.load("m") == {"v": "v1.1"}


# ---------------------------------------------------------------------------- deploy
def test_deploy_promotes_replaced_candidate_to_stable(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0", "1.2.0"])
    d1 = registry.deploy("m", "1.0.0")
    assert d1.status is Status.CANDIDATE  # deploying does not change the deployed status
    assert registry.history("m")[-1].changes == ()
    registry.deploy("m", "1.1.0")
    assert registry.get("m", "1.0.0").status is Status.STABLE
    assert registry.history("m")[-1].changes == (
        StatusChange(Version("1.0.0"), Status.CANDIDATE, Status.STABLE),
    )
    registry.deploy("m", "1.0.0")  # back to 1.0.0: the replaced 1.1.0 is promoted
    assert registry.history("m")[-1].changes == (
        StatusChange(Version("1.1.0"), Status.CANDIDATE, Status.STABLE),
    )
    registry.deploy("m", "1.2.0")  # replaced 1.0.0 is already stable: no change recorded
    assert registry.history("m")[-1].changes == ()
    assert statuses(registry, "m") == {"1.0.0": "stable", "1.1.0": "stable", "1.2.0": "candidate"}


def test_redeploy_of_current_version_promotes_nothing(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.0.0")
    event = registry.history("m")[-1]
    assert (str(event.from_version), str(event.to_version)) == ("1.0.0", "1.0.0")
    assert event.changes == ()
    assert registry.get("m", "1.0.0").status is Status.CANDIDATE


def test_deploy_replacing_a_failed_version_keeps_it_failed(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0")
    registry.mark_failed("m", "1.0.0", reason="broken")
    registry.deploy("m", "1.1.0")
    assert registry.get("m", "1.0.0").status is Status.FAILED
    assert registry.get("m", "1.0.0").failure_reason == "broken"
    assert registry.history("m")[-1].changes == ()


def test_deploy_of_failed_version_refused_unless_forced(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0")
    registry.mark_failed("m", "1.1.0", reason="bad auc")
    before = snapshot(registry, "m")
    with pytest.raises(ForbiddenTransitionError, match="force") as info:
        registry.deploy("m", "1.1.0")
    assert isinstance(info.value, ValueError)
    assert "bad auc" in str(info.value)
    assert snapshot(registry, "m") == before
    assert not registry.history("m")[-1].forced

    forced = registry.deploy("m", "1.1.0", force=True, reason="hotfix test")
    assert forced.status is Status.FAILED  # forcing does not clear the failure
    event = registry.history("m")[-1]
    assert event.forced is True
    assert event.action == "deploy"
    assert cur(registry, "m") == "1.1.0"
    assert "(forced)" in str(event)


def test_force_on_a_healthy_version_is_not_recorded_as_forced(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    registry.deploy("m", "1.0.0", force=True)
    assert registry.history("m")[-1].forced is False


def test_deploy_unknown_version(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    before = snapshot(registry, "m")
    with pytest.raises(VersionNotFoundError, match=r"1\.0\.0, 1\.1\.0"):
        registry.deploy("m", "9.9.9")
    assert snapshot(registry, "m") == before


# ---------------------------------------------------------------------------- rollback
def test_rollback_with_nothing_deployed(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.mark_stable("m", "1.0.0")
    before = snapshot(registry, "m")
    with pytest.raises(NoRollbackTargetError, match="nothing is deployed") as info:
        registry.rollback("m")
    assert isinstance(info.value, LookupError)
    with pytest.raises(NoRollbackTargetError):
        registry.rollback_target("m")
    registry.deploy("m", "1.1.0", env="staging")
    with pytest.raises(NoRollbackTargetError, match="production"):
        registry.rollback("m")  # production has nothing, whatever staging runs
    assert snapshot(registry, "m")[0] == before[0]


def test_rollback_with_no_stable_version_below(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0", "1.2.0", "2.0.0"])
    registry.mark_failed("m", "1.1.0", reason="oom")
    registry.mark_stable("m", "2.0.0")  # above: never a target
    registry.deploy("m", "1.2.0")
    before = snapshot(registry, "m")
    with pytest.raises(NoRollbackTargetError) as info:
        registry.rollback("m", reason="try")
    message = str(info.value)
    assert "1.0.0 candidate" in message
    assert "1.1.0 failed" in message
    assert "2.0.0" not in message
    assert snapshot(registry, "m") == before
    assert cur(registry, "m") == "1.2.0"
    assert registry.get("m", "1.2.0").status is Status.CANDIDATE
    with pytest.raises(NoRollbackTargetError):
        registry.rollback_target("m")


def test_rollback_of_lowest_version(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    registry.deploy("m", "1.0.0")
    before = snapshot(registry, "m")
    with pytest.raises(NoRollbackTargetError, match="none"):
        registry.rollback("m")
    assert snapshot(registry, "m") == before


def test_rollback_ignores_versions_above_current(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "2.0.0", "3.0.0"])
    registry.mark_stable("m", "1.0.0")
    registry.mark_stable("m", "3.0.0")
    registry.deploy("m", "2.0.0")
    assert str(registry.rollback_target("m").version) == "1.0.0"
    assert str(registry.rollback("m").version) == "1.0.0"


def test_rollback_picks_by_version_order_not_time(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["2.0.0", "3.0.0", "1.0.0", "1.5.0"])  # lower ones saved later
    registry.mark_stable("m", "2.0.0")
    registry.mark_stable("m", "1.5.0")  # stable more recently, but lower
    registry.mark_stable("m", "1.0.0")
    registry.deploy("m", "3.0.0")
    assert str(registry.rollback("m").version) == "2.0.0"


def test_rollback_target_is_a_dry_run(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    before = snapshot(registry, "m")
    assert str(registry.rollback_target("m").version) == "1.0.0"
    assert snapshot(registry, "m") == before


def test_rollback_of_a_failed_current_version_records_no_change(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    registry.mark_failed("m", "1.1.0", reason="first reason")
    registry.rollback("m", reason="second reason")
    assert registry.history("m")[-1].changes == ()
    assert registry.get("m", "1.1.0").failure_reason == "first reason"


def test_repeated_rollbacks_walk_down_the_stable_versions(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1", "2", "3", "4"])
    for v in ("1", "2", "3", "4"):
        registry.deploy("m", v)
    assert [str(registry.rollback("m").version) for _ in range(3)] == ["3.0.0", "2.0.0", "1.0.0"]
    with pytest.raises(NoRollbackTargetError):
        registry.rollback("m")
    assert statuses(registry, "m") == {
        "1.0.0": "stable",
        "2.0.0": "failed",
        "3.0.0": "failed",
        "4.0.0": "failed",
    }


# ---------------------------------------------------------------------------- mark_failed/stable
def test_mark_failed_never_moves_the_pointer(registry: ModelRegistry) -> None:
    registry.save("m", {"w": 1})
    registry.save("m", {"w": 2})
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    failed = registry.mark_failed("m", "1.1.0", reason="drift", env="production")
    assert failed.status is Status.FAILED
    assert failed.failure_reason == "drift"
    assert failed.failed_env == "production"
    current = registry.current("m")
    assert current is not None
    assert str(current.version) == "1.1.0"
    assert current.status is Status.FAILED
    assert registry.load("m") == {"w": 2}
    event = registry.history("m")[-1]
    assert (event.action, event.from_version, event.to_version) == ("mark_failed", None, None)


@pytest.mark.parametrize("reason", ["", "   ", "\n", None, 3])
def test_mark_failed_requires_a_reason(registry: ModelRegistry, reason: Any) -> None:
    registry.save("m", 1)
    before = snapshot(registry, "m")
    with pytest.raises(InvalidInputError, match="reason"):
        registry.mark_failed("m", "1.0.0", reason=reason)
    assert snapshot(registry, "m") == before
    with pytest.raises(TypeError):
        registry.mark_failed("m", "1.0.0")  # type: ignore[call-arg]


def test_mark_stable_overrides_a_failure(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.mark_failed("m", "1.0.0", reason="looked bad", env="staging")
    mv = registry.mark_stable("m", "1.0.0", reason="false alarm")
    assert mv.status is Status.STABLE
    assert mv.failure_reason is None and mv.failed_env is None
    event = registry.history("m")[-1]
    assert event.action == "mark_stable"
    assert event.reason == "false alarm"
    assert event.changes == (StatusChange(Version("1.0.0"), Status.FAILED, Status.STABLE),)
    registry.deploy("m", "1.1.0")
    assert str(registry.rollback("m").version) == "1.0.0"  # a rollback target again


def test_mark_unknown_version(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    before = snapshot(registry, "m")
    with pytest.raises(VersionNotFoundError):
        registry.mark_failed("m", "2.0.0", reason="x")
    with pytest.raises(VersionNotFoundError):
        registry.mark_stable("m", "2.0.0")
    assert snapshot(registry, "m") == before


# ---------------------------------------------------------------------------- not found
def test_unknown_model(registry: ModelRegistry) -> None:
    registry.save("known", 1)
    calls: list[Callable[[], Any]] = [
        lambda: registry.get("nope", "1.0.0"),
        lambda: registry.versions("nope"),
        lambda: registry.current("nope"),
        lambda: registry.history("nope"),
        lambda: registry.load("nope"),
        lambda: registry.load("nope", "1.0.0"),
        lambda: registry.envs("nope"),
        lambda: registry.deploy("nope", "1.0.0"),
        lambda: registry.rollback("nope"),
        lambda: registry.rollback_target("nope"),
        lambda: registry.mark_failed("nope", "1.0.0", reason="x"),
        lambda: registry.mark_stable("nope", "1.0.0"),
    ]
    before = registry.backend.list("")
    for call in calls:
        with pytest.raises(ModelNotFoundError, match="nope") as info:
            call()
        assert isinstance(info.value, LookupError)
        assert "known" in str(info.value)  # lists the models that exist
    assert registry.backend.list("") == before
    assert registry.models() == ["known"]


def test_unknown_version_lists_existing_versions(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0", "2.0.0"])
    for call in (
        lambda: registry.get("m", "3.0.0"),
        lambda: registry.load("m", "3.0.0"),
    ):
        with pytest.raises(VersionNotFoundError) as info:
            call()
        assert isinstance(info.value, LookupError)
        assert "3.0.0" in str(info.value)
        assert "1.0.0, 1.1.0, 2.0.0" in str(info.value)


def test_current_is_none_for_a_known_model_with_nothing_deployed(
    registry: ModelRegistry,
) -> None:
    registry.save("m", 1)
    assert registry.current("m") is None
    assert registry.envs("m") == {}
    registry.deploy("m", "1.0.0", env="staging")
    assert registry.current("m") is None
    assert cur(registry, "m", "staging") == "1.0.0"
    with pytest.raises(VersionNotFoundError, match="nothing is deployed"):
        registry.load("m")


# ---------------------------------------------------------------------------- envs
def test_envs_are_independent(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0", "1.2.0"])
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    registry.deploy("m", "1.0.0", env="staging")
    registry.deploy("m", "1.2.0", env="staging")
    assert cur(registry, "m") == "1.1.0"
    assert cur(registry, "m", "staging") == "1.2.0"
    assert str(registry.rollback("m", env="staging").version) == "1.0.0"
    assert cur(registry, "m") == "1.1.0"
    assert cur(registry, "m", "staging") == "1.0.0"
    assert {e: str(mv.version) for e, mv in registry.envs("m").items()} == {
        "production": "1.1.0",
        "staging": "1.0.0",
    }
    assert registry.load("m", env="staging") == {"v": "1.0.0"}
    assert registry.load("m") == {"v": "1.1.0"}


# ---------------------------------------------------------------------------- history
def test_history_records_every_change_exactly_once(backend: Backend) -> None:
    registry = ModelRegistry(backend, user="ana")
    host = socket.gethostname()
    calls: list[tuple[Callable[[], Any], dict[str, Any]]] = [
        (lambda: registry.save("m", 1), {"action": "save", "version": "1.0.0"}),
        (lambda: registry.save("m", 2), {"action": "save", "version": "1.1.0"}),
        (lambda: registry.save("m", 3, "2.0.0"), {"action": "save", "version": "2.0.0"}),
        (
            lambda: registry.deploy("m", "1.0.0", reason="first"),
            {"action": "deploy", "version": "1.0.0", "env": "production", "from": None,
             "to": "1.0.0", "reason": "first"},
        ),
        (
            lambda: registry.deploy("m", "1.1.0"),
            {"action": "deploy", "version": "1.1.0", "env": "production", "from": "1.0.0",
             "to": "1.1.0", "changes": [("1.0.0", "candidate", "stable")]},
        ),
        (
            lambda: registry.rollback("m", reason="auc dropped"),
            {"action": "rollback", "version": "1.0.0", "env": "production", "from": "1.1.0",
             "to": "1.0.0", "reason": "auc dropped", "changes": [("1.1.0", "candidate", "failed")]},
        ),
        (
            lambda: registry.mark_stable("m", "1.1.0", reason="was fine"),
            {"action": "mark_stable", "version": "1.1.0", "reason": "was fine",
             "changes": [("1.1.0", "failed", "stable")]},
        ),
        (
            lambda: registry.deploy("m", "2.0.0", env="staging"),
            {"action": "deploy", "version": "2.0.0", "env": "staging", "from": None, "to": "2.0.0"},
        ),
        (
            lambda: registry.mark_failed("m", "2.0.0", reason="oom", env="staging"),
            {"action": "mark_failed", "version": "2.0.0", "env": "staging", "reason": "oom",
             "changes": [("2.0.0", "candidate", "failed")]},
        ),
        (
            lambda: registry.deploy("m", "2.0.0", env="staging", force=True, reason="retry"),
            {"action": "deploy", "version": "2.0.0", "env": "staging", "from": "2.0.0",
             "to": "2.0.0", "reason": "retry", "forced": True},
        ),
    ]  # fmt: skip
    for n, (call, want) in enumerate(calls, start=1):
        call()
        history = registry.history("m")
        assert len(history) == n
        e = history[-1]
        assert isinstance(e, Event)
        assert e.seq == n
        assert e.name == "m"
        assert e.action == want["action"]
        assert str(e.version) == want["version"]
        assert e.env == want.get("env")
        assert (None if e.from_version is None else str(e.from_version)) == want.get("from")
        assert (None if e.to_version is None else str(e.to_version)) == want.get("to")
        assert e.reason == want.get("reason")
        assert e.user == "ana"
        assert e.host == host
        assert e.forced is want.get("forced", False)
        got_changes = [(str(c.version), c.old.value, c.new.value) for c in e.changes]
        assert got_changes == want.get("changes", [])
        text = str(e)
        assert "\n" not in text
        assert e.action in text and want["version"] in text
        if e.reason:
            assert text.endswith(f": {e.reason}")
        assert "ana@" in text
    history = registry.history("m")
    assert [e.seq for e in history] == list(range(1, len(calls) + 1))
    times = [e.time for e in history]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    json.dumps([e.to_dict() for e in history])


def test_failed_calls_add_no_history(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.mark_failed("m", "1.1.0", reason="bad")
    n = len(registry.history("m"))
    attempts: list[Callable[[], Any]] = [
        lambda: registry.save("m", 1, "1.0.0"),
        lambda: registry.deploy("m", "1.1.0"),
        lambda: registry.deploy("m", "5.0.0"),
        lambda: registry.rollback("m"),
        lambda: registry.mark_failed("m", "1.0.0", reason=""),
        lambda: registry.deploy("m", "1.0.0", env="bad env"),
    ]
    for attempt in attempts:
        with pytest.raises((ValueError, LookupError, FileExistsError)):
            attempt()
        assert len(registry.history("m")) == n


def test_history_env_filter(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0", env="staging")
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0", env="staging")
    registry.mark_failed("m", "1.1.0", reason="x", env="staging")
    registry.rollback("m", env="staging")
    staging = registry.history("m", env="staging")
    assert [(e.action, str(e.version)) for e in staging] == [
        ("deploy", "1.0.0"),
        ("deploy", "1.1.0"),
        ("mark_failed", "1.1.0"),
        ("rollback", "1.0.0"),
    ]
    assert all(e.env == "staging" for e in staging)
    production = registry.history("m", env="production")
    assert [(e.action, str(e.version)) for e in production] == [("deploy", "1.0.0")]
    assert registry.history("m", env="nowhere") == []
    with pytest.raises(InvalidNameError):
        registry.history("m", env="a/b")


def test_history_pointer_chain(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1", "2", "3", "4"])
    for env in ("production", "staging"):
        for v in ("1", "2", "3"):
            registry.deploy("m", v, env=env)
    registry.rollback("m")
    registry.deploy("m", "4", env="staging")
    registry.rollback("m", env="staging")  # 4 -> 2 (3 failed in production)
    registry.deploy("m", "4", force=True)
    registry.rollback("m")
    pointer_events = 0
    last: dict[str, Version | None] = {}
    for e in registry.history("m"):
        if e.action not in ("deploy", "rollback"):
            continue
        pointer_events += 1
        assert e.env is not None
        assert e.from_version == last.get(e.env), e
        assert e.to_version == e.version
        last[e.env] = e.to_version
    assert pointer_events == 11
    assert {env: mv.version for env, mv in registry.envs("m").items()} == last


def test_str_of_event_is_one_line_with_the_reason(registry: ModelRegistry) -> None:
    save_many(registry, "m", ["1.0.0", "1.1.0"])
    registry.deploy("m", "1.0.0")
    registry.deploy("m", "1.1.0")
    registry.rollback("m", reason="auc dropped to 0.61")
    text = str(registry.history("m")[-1])
    assert len(text.splitlines()) == 1
    assert " rollback m 1.0.0 [production] 1.1.0 -> 1.0.0 " in text
    assert "{1.1.0 candidate->failed}" in text
    assert text.endswith(": auc dropped to 0.61")


# ---------------------------------------------------------------------------- load / integrity
def _only_artifact(registry: ModelRegistry, name: str) -> str:
    keys = registry.backend.list(f"models/{name}/@artifacts/")
    assert len(keys) == 1, keys
    return keys[0]


def test_load_round_trip_and_default_env(registry: ModelRegistry) -> None:
    model = {"weights": [1.5, 2.5], "name": "ünï", "nested": ({"a": None},)}
    mv = registry.save("m", model)
    assert registry.load("m", mv.version) == model
    registry.deploy("m", mv.version)
    assert registry.load("m") == model
    assert registry.load("m", "1") == model


def test_identical_artifacts_are_stored_once(registry: ModelRegistry) -> None:
    a = registry.save("m", {"same": 1})
    b = registry.save("m", {"same": 1})
    assert a.sha256 == b.sha256
    assert registry.backend.list("models/m/@artifacts/") == [
        f"models/m/@artifacts/{a.sha256}.joblib"
    ]
    assert registry.load("m", "1.1.0") == {"same": 1}


def test_load_verifies_sha256_before_unpickling(registry: ModelRegistry) -> None:
    registry.save("m", Tracer("tag-AAAA"))
    registry.deploy("m", "1.0.0")
    UNPICKLED.clear()
    assert reopen(registry).load("m").tag == "tag-AAAA"  # the trace works ...
    assert UNPICKLED == ["tag-AAAA"]

    key = _only_artifact(registry, "m")
    data = registry.backend.read(key)
    assert data.count(b"tag-AAAA") == 1
    damaged = data.replace(b"tag-AAAA", b"tag-BBBB")  # still a perfectly loadable pickle
    registry.backend.delete(key)
    registry.backend.create(key, damaged)

    UNPICKLED.clear()
    for load in (lambda: registry.load("m"), lambda: reopen(registry).load("m", "1.0.0")):
        with pytest.raises(IntegrityError, match=r"1\.0\.0"):
            load()
    assert UNPICKLED == []  # ... and nothing was unpickled

    import joblib

    joblib.load(io.BytesIO(damaged))  # the damaged bytes would have run the trace
    assert UNPICKLED == ["tag-BBBB"]
    UNPICKLED.clear()


def test_load_detects_a_byte_flipped_in_place(tmp_path: Path) -> None:
    """On a local folder the file is damaged where it lies (other backends: see above)."""
    registry = ModelRegistry(tmp_path / "registry")
    mv = registry.save("m", Tracer("tag-CCCC"))
    key = _only_artifact(registry, "m")
    path = registry.backend.local_path(key)
    assert path is not None
    os.chmod(path, 0o644)  # stored read-only
    with open(path, "r+b") as fh:
        data = fh.read()
        fh.seek(data.index(b"tag-CCCC") + 7)
        fh.write(b"D")
    UNPICKLED.clear()
    with pytest.raises(IntegrityError):
        registry.load("m", mv.version)
    assert UNPICKLED == []


def test_load_detects_a_truncated_artifact(registry: ModelRegistry) -> None:
    registry.save("m", Tracer("tag-EEEE"))
    key = _only_artifact(registry, "m")
    data = registry.backend.read(key)
    registry.backend.delete(key)
    registry.backend.create(key, data[:-1])
    UNPICKLED.clear()
    with pytest.raises(IntegrityError):
        registry.load("m", "1.0.0")
    assert UNPICKLED == []


def test_load_of_a_missing_artifact_is_an_integrity_error(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    registry.backend.delete(_only_artifact(registry, "m"))
    with pytest.raises(IntegrityError, match="missing"):
        registry.load("m", "1.0.0")


def test_numpy_model_round_trip(registry: ModelRegistry) -> None:
    np = pytest.importorskip("numpy")
    model = {
        "coef": np.arange(300, dtype=np.float32).reshape(3, 100),
        "bias": np.array([1, -2, 3], dtype=np.int64),
        "meta": "x",
    }
    registry.save("np", model)
    registry.deploy("np", "1.0.0")
    for loaded in (registry.load("np"), reopen(registry).load("np", "1.0.0")):
        assert loaded["meta"] == "x"
        assert loaded["coef"].dtype == np.float32 and loaded["coef"].shape == (3, 100)
        np.testing.assert_array_equal(loaded["coef"], model["coef"])
        np.testing.assert_array_equal(loaded["bias"], model["bias"])


# ---------------------------------------------------------------------------- names
VALID_NAMES = ["team/churn", "a.b-c_d", "A1", "x" * 200, "a/b/c/d"]
INVALID_NAMES = [
    "",
    "a//b",
    "/a",
    "a/",
    ".",
    "..",
    "a/../b",
    "a/./b",
    "a b",
    " a",
    "a\tb",
    "modèle",
    "名前",
    "x" * 201,
    "a\\b",
    "a:b",
    ".hidden",
    "team/.x",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(registry: ModelRegistry, name: str) -> None:
    registry.save(name, {"n": name})
    registry.deploy(name, "1.0.0")
    assert registry.models() == [name]
    assert registry.load(name) == {"n": name}
    assert reopen(registry).models() == [name]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_rejected_before_storage(registry: ModelRegistry, name: str) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: registry.save(name, 1),
        lambda: registry.get(name, "1.0.0"),
        lambda: registry.versions(name),
        lambda: registry.current(name),
        lambda: registry.history(name),
        lambda: registry.load(name),
        lambda: registry.deploy(name, "1.0.0"),
        lambda: registry.rollback(name),
        lambda: registry.mark_failed(name, "1.0.0", reason="x"),
        lambda: registry.mark_stable(name, "1.0.0"),
    ]
    for call in calls:
        with pytest.raises(InvalidNameError) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert registry.backend.list("") == []


def test_names_are_not_namespaced_into_each_other(registry: ModelRegistry) -> None:
    registry.save("team", {"n": "team"})
    registry.save("team/churn", {"n": "team/churn"})
    registry.save("team/churn", {"n": "team/churn 2"})
    assert registry.models() == ["team", "team/churn"]
    assert vs(registry, "team") == ["1.0.0"]
    assert vs(registry, "team/churn") == ["1.0.0", "1.1.0"]
    assert registry.load("team", "1.0.0") == {"n": "team"}


@pytest.mark.parametrize("env", ["", "a/b", "prod uction", ".", "..", "é"])
def test_invalid_env_names(registry: ModelRegistry, env: str) -> None:
    registry.save("m", 1)
    before = snapshot(registry, "m")
    for call in (
        lambda: registry.deploy("m", "1.0.0", env=env),
        lambda: registry.current("m", env=env),
        lambda: registry.rollback("m", env=env),
        lambda: registry.load("m", env=env),
        lambda: registry.mark_failed("m", "1.0.0", reason="x", env=env),
    ):
        with pytest.raises(InvalidNameError):
            call()
    assert snapshot(registry, "m") == before


# ---------------------------------------------------------------------------- reopening
def _play(registry: ModelRegistry) -> None:
    save_many(registry, "a", ["1.0.0", "1.1.0", "2.0.0"])
    registry.save("team/b", {"b": 1}, metrics={"auc": 0.7})
    registry.deploy("a", "1.0.0")
    registry.deploy("a", "1.1.0")
    registry.deploy("a", "2.0.0")
    registry.rollback("a", reason="regression")
    registry.deploy("a", "1.0.0", env="staging")
    registry.mark_failed("a", "1.0.0", reason="flaky", env="staging")
    registry.deploy("team/b", "1.0.0")


def _observe(registry: ModelRegistry) -> dict[str, Any]:
    out: dict[str, Any] = {"models": registry.models()}
    for name in out["models"]:
        out[name] = (
            [mv.to_dict() for mv in registry.versions(name)],
            {env: mv.to_dict() for env, mv in registry.envs(name).items()},
            [e.to_dict() for e in registry.history(name)],
            registry.load(name),
        )
    return out


def test_reopen_sees_the_same_state(
    registry: ModelRegistry, backend_factory: BackendFactory, tmp_path: Path
) -> None:
    _play(registry)
    expected = _observe(registry)
    assert expected["models"] == ["a", "team/b"]
    assert expected["a"][1]["production"]["version"] == "1.1.0"
    assert _observe(reopen(registry)) == expected
    if not isinstance(registry.backend, MemoryBackend):
        other = backend_factory(tmp_path)  # a second backend object on the same location
        try:
            assert _observe(ModelRegistry(other)) == expected
        finally:
            other.close()


def test_two_registries_on_one_backend_see_each_others_changes(registry: ModelRegistry) -> None:
    other = reopen(registry)
    registry.save("m", 1)
    other.save("m", 2)
    registry.deploy("m", "1.1.0")
    assert str(other.save("m", 3).version) == "1.2.0"
    assert cur(other, "m") == "1.1.0"
    other.deploy("m", "1.2.0")
    assert registry.get("m", "1.1.0").status is Status.STABLE
    assert [e.action for e in registry.history("m")] == ["save", "save", "deploy", "save", "deploy"]


def test_reopen_after_many_events_uses_a_consistent_state(registry: ModelRegistry) -> None:
    """More than 64 events, so the state is also cached as a snapshot."""
    save_many(registry, "m", ["1.0.0", "2.0.0"])
    for i in range(62):  # with the saves, entry 64 is a snapshot
        registry.deploy("m", "2.0.0" if i % 2 else "1.0.0")  # ends on 2.0.0
    registry.rollback("m")
    expected = _observe(registry)
    assert len(expected["m"][2]) == 65
    assert registry.backend.list("models/m/@snapshots/")  # the reopened state starts there
    fresh = reopen(registry)
    assert _observe(fresh) == expected
    fresh.save("m", 3)
    assert vs(registry, "m") == ["1.0.0", "2.0.0", "2.1.0"]


_CHILD_WRITE = textwrap.dedent(
    """
    import sys
    from modelversions import ModelRegistry
    reg = ModelRegistry(sys.argv[1], user="child")
    reg.save("team/churn", {"w": [1, 2]}, metrics={"auc": 0.8})
    reg.save("team/churn", {"w": [3, 4]}, metrics={"auc": 0.6})
    reg.deploy("team/churn", "1.0.0")
    reg.deploy("team/churn", "1.1.0")
    reg.rollback("team/churn", reason="auc dropped")
    """
)

_CHILD_READ = textwrap.dedent(
    """
    import json, sys
    from modelversions import ModelRegistry
    reg = ModelRegistry(sys.argv[1])
    print(json.dumps({
        "versions": {str(m.version): m.status.value for m in reg.versions("team/churn")},
        "current": str(reg.current("team/churn").version),
        "actions": [e.action for e in reg.history("team/churn")],
        "model": reg.load("team/churn"),
    }))
    """
)


def test_registry_folder_shared_between_processes(tmp_path: Path) -> None:
    folder = str(tmp_path / "shared")
    subprocess.run([sys.executable, "-c", _CHILD_WRITE, folder], check=True, timeout=120)
    reg = ModelRegistry(folder)
    assert statuses(reg, "team/churn") == {"1.0.0": "stable", "1.1.0": "failed"}
    assert cur(reg, "team/churn") == "1.0.0"
    assert reg.load("team/churn") == {"w": [1, 2]}
    history = reg.history("team/churn")
    assert [e.action for e in history] == ["save", "save", "deploy", "deploy", "rollback"]
    assert {e.user for e in history} == {"child"}
    assert history[-1].reason == "auc dropped"
    assert dict(reg.get("team/churn", "1.0.0").metrics) == {"auc": 0.8}

    reg.save("team/churn", {"w": [5]})
    reg.deploy("team/churn", "1.2.0")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_READ, folder],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    seen = json.loads(out.stdout)
    assert seen == {
        "versions": {"1.0.0": "stable", "1.1.0": "failed", "1.2.0": "candidate"},
        "current": "1.2.0",
        "actions": ["save", "save", "deploy", "deploy", "rollback", "save", "deploy"],
        "model": {"w": [5]},
    }


# -- input hygiene ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_metrics_are_stored(registry: ModelRegistry, value: float) -> None:
    # Issue 9 changed this rule: NaN and infinities are kept (tagged in storage).
    mv = registry.save("m", {"w": 1}, metrics={"auc": value})
    got = reopen(registry).get("m", "1.0.0")
    assert got == mv
    assert repr(got.metrics["auc"]) == repr(value)


def test_failed_serialization_leaves_nothing_behind(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match="cannot be serialized"):
        registry.save("m", lambda x: x)
    assert registry.backend.list("") == []
    with pytest.raises(ModelNotFoundError):
        registry.versions("m")


def test_event_str_stays_one_line_with_multiline_reason(registry: ModelRegistry) -> None:
    registry.save("m", 1)
    registry.mark_failed("m", "1.0.0", reason="auc fell\nsee dashboard")
    line = str(registry.history("m")[-1])
    assert "\n" not in line
    assert "auc fell\\nsee dashboard" in line
