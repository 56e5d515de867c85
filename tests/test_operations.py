"""Operating a registry: guarded deploys, environments, promote, dry-run plans,
retention (prune, delete) and content-addressed artifacts.

Every test runs once per backend in ``conftest.BACKENDS``.
"""

from __future__ import annotations

import itertools
import pickle
import threading
from typing import Any

import pytest

from modelversions import (
    ArtifactPrunedError,
    DeployCheckFailedError,
    ForbiddenTransitionError,
    InvalidInputError,
    InvalidNameError,
    ModelRegistry,
    ModelVersion,
    NoRollbackTargetError,
    NotFoundError,
    Status,
    VersionNotFoundError,
)
from modelversions.backends import Backend
from modelversions.serialization import dump_model


def _three(reg: ModelRegistry, name: str = "m") -> None:
    """Versions 1.0.0, 1.1.0, 1.2.0 holding {"w": 0}, {"w": 1}, {"w": 2}."""
    for i in range(3):
        reg.save(name, {"w": i})


def _artifacts(reg: ModelRegistry, name: str = "m") -> list[str]:
    return reg.backend.list(f"models/{name}/@artifacts/")


def _actions(reg: ModelRegistry, name: str = "m") -> list[str]:
    return [e.action for e in reg.history(name)]


# ---------------------------------------------------------------------- guarded deploys
class TestGuardedDeploy:
    def test_check_raising_restores_the_replaced_version(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        seen: list[Any] = []

        def check(model: Any) -> None:
            seen.append(model)
            raise RuntimeError("auc 0.41 < 0.8")

        with pytest.raises(DeployCheckFailedError) as info:
            registry.deploy("m", "1.1.0", check=check, reason="weekly retrain")
        err = info.value
        assert (err.name, err.version, err.restored) == ("m", "1.1.0", "1.0.0")
        assert "auc 0.41 < 0.8" in str(err) and "1.0.0 is deployed again" in str(err)
        assert seen == [{"w": 1}]  # called with the loaded model
        assert str(registry.current("m").version) == "1.0.0"
        assert registry.load("m") == {"w": 0}
        failed = registry.get("m", "1.1.0")
        assert failed.status is Status.FAILED
        assert failed.failed_env == "production"
        assert failed.failure_reason == "the check raised RuntimeError: auc 0.41 < 0.8"
        # The replaced version served and was replaced: stable, a rollback target later.
        assert registry.get("m", "1.0.0").status is Status.STABLE

    def test_history_shows_deploy_failed_check_and_rollback(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        with pytest.raises(DeployCheckFailedError):
            registry.deploy("m", "1.1.0", check=lambda model: False)
        deploy, rollback = registry.history("m")[-2:]
        assert deploy.action == "deploy"
        assert (str(deploy.from_version), str(deploy.to_version)) == ("1.0.0", "1.1.0")
        assert rollback.action == "rollback"
        assert rollback.env == "production"
        assert (str(rollback.from_version), str(rollback.to_version)) == ("1.1.0", "1.0.0")
        assert str(rollback.version) == "1.0.0"
        assert rollback.reason == "deploy check failed: the check returned False"
        [change] = rollback.changes
        assert (str(change.version), change.new) == ("1.1.0", Status.FAILED)
        assert registry.get("m", "1.1.0").failure_reason == "the check returned False"

    @pytest.mark.parametrize("result", [None, True, 0, "ok"])
    def test_passing_check_keeps_the_deploy(self, registry: ModelRegistry, result: Any) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        before = len(registry.history("m"))
        mv = registry.deploy("m", "1.1.0", check=lambda model: result)
        assert str(mv.version) == "1.1.0"
        assert str(registry.current("m").version) == "1.1.0"
        assert len(registry.history("m")) == before + 1  # only the deploy
        assert registry.get("m", "1.1.0").status is Status.CANDIDATE

    def test_first_deploy_failing_leaves_nothing_deployed(self, registry: ModelRegistry) -> None:
        _three(registry)

        def check(model: Any) -> bool:
            raise ValueError("no")

        with pytest.raises(DeployCheckFailedError) as info:
            registry.deploy("m", "1.0.0", check=check)
        assert info.value.restored is None
        assert info.value.version == "1.0.0"
        assert "nothing is deployed now" in str(info.value)
        assert registry.current("m") is None
        assert registry.envs("m") == {}
        rollback = registry.history("m")[-1]
        assert rollback.action == "rollback"
        assert rollback.version is None and rollback.to_version is None
        assert str(rollback.from_version) == "1.0.0"
        with pytest.raises(NoRollbackTargetError):
            registry.rollback("m")

    def test_default_check_from_constructor(self, backend: Backend) -> None:
        calls: list[Any] = []

        def check(model: Any) -> bool:
            calls.append(model)
            return model["w"] != 1

        reg = ModelRegistry(backend, checks={"m": check})
        _three(reg)
        _three(reg, "other")
        reg.deploy("m", "1.0.0")
        with pytest.raises(DeployCheckFailedError):
            reg.deploy("m", "1.1.0")
        reg.deploy("m", "1.2.0")
        reg.deploy("other", "1.1.0")  # the check is per model: not called for "other"
        assert calls == [{"w": 0}, {"w": 1}, {"w": 2}]
        assert str(reg.current("m").version) == "1.2.0"

    def test_set_check_and_removing_it(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.set_check("m", lambda model: False)
        with pytest.raises(DeployCheckFailedError):
            registry.deploy("m", "1.0.0")
        registry.set_check("m", None)
        registry.deploy("m", "1.1.0")
        assert str(registry.current("m").version) == "1.1.0"
        registry.set_check("m", None)  # removing an absent check is fine

    def test_set_check_validates(self, registry: ModelRegistry) -> None:
        with pytest.raises(InvalidInputError, match="callable"):
            registry.set_check("m", 42)  # type: ignore[arg-type]
        with pytest.raises(InvalidNameError):
            registry.set_check("bad name", lambda model: True)
        with pytest.raises(InvalidInputError, match="callable"):
            ModelRegistry("memory://", checks={"m": "nope"})  # type: ignore[dict-item]

    def test_explicit_check_overrides_the_default(self, backend: Backend) -> None:
        default_calls: list[Any] = []
        reg = ModelRegistry(backend, checks={"m": lambda model: default_calls.append(model)})
        _three(reg)
        reg.deploy("m", "1.0.0", check=lambda model: True)
        assert default_calls == []
        with pytest.raises(DeployCheckFailedError):
            reg.deploy("m", "1.1.0", check=lambda model: False)
        assert default_calls == []
        reg.deploy("m", "1.2.0")
        assert default_calls == [{"w": 2}]

    def test_check_runs_outside_the_registry_lock(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        seen: dict[str, Any] = {}

        def check(model: Any) -> bool:
            # Calling back into the registry, from this thread and from another one.
            seen["here"] = str(registry.current("m").version)
            seen["history"] = len(registry.history("m"))
            out: list[str] = []
            worker = threading.Thread(target=lambda: out.append(str(registry.current("m").version)))
            worker.start()
            worker.join(timeout=60)  # a deadlock would leave the worker blocked
            seen["alive"] = worker.is_alive()
            seen["other"] = out
            return False

        with pytest.raises(DeployCheckFailedError):
            registry.deploy("m", "1.1.0", check=check)
        assert seen == {"here": "1.1.0", "history": 5, "alive": False, "other": ["1.1.0"]}

    def test_pointer_moved_during_the_check_is_left_alone(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")

        def check(model: Any) -> bool:
            registry.deploy("m", "1.2.0", check=lambda model: True)  # another deploy meanwhile
            return False

        with pytest.raises(DeployCheckFailedError) as info:
            registry.deploy("m", "1.1.0", check=check)
        assert info.value.version == "1.1.0"
        assert info.value.restored is None
        assert "changed meanwhile" in str(info.value)
        assert str(registry.current("m").version) == "1.2.0"
        assert registry.get("m", "1.1.0").status is Status.FAILED
        last = registry.history("m")[-1]
        assert (last.action, str(last.version)) == ("mark_failed", "1.1.0")

    def test_failing_check_in_staging_fails_the_version_everywhere(
        self, registry: ModelRegistry
    ) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        with pytest.raises(DeployCheckFailedError):
            registry.deploy("m", "1.1.0", env="staging", check=lambda model: False)
        mv = registry.get("m", "1.1.0")
        assert (mv.status, mv.failed_env) == (Status.FAILED, "staging")
        assert registry.current("m", env="staging") is None
        assert str(registry.current("m").version) == "1.0.0"
        with pytest.raises(ForbiddenTransitionError):
            registry.deploy("m", "1.1.0")

    def test_forced_redeploy_of_failed_version_with_check(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        registry.mark_failed("m", "1.1.0", reason="suspect")
        registry.deploy("m", "1.1.0", force=True, check=lambda model: True)
        assert registry.history("m")[-1].forced
        assert registry.get("m", "1.1.0").status is Status.FAILED

    def test_error_pickles_with_its_versions(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        with pytest.raises(DeployCheckFailedError) as info:
            registry.deploy("m", "1.1.0", check=lambda model: False)
        copy = pickle.loads(pickle.dumps(info.value))
        assert (copy.name, copy.version, copy.restored) == ("m", "1.1.0", "1.0.0")
        assert str(copy) == str(info.value)


# ---------------------------------------------------------------------- environments
class TestEnvironments:
    def test_each_env_has_its_own_pointer(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0", env="production")
        registry.deploy("m", "1.2.0", env="staging")
        registry.deploy("m", "1.1.0", env="canary-eu.1")
        assert {e: str(mv.version) for e, mv in registry.envs("m").items()} == {
            "canary-eu.1": "1.1.0",
            "production": "1.0.0",
            "staging": "1.2.0",
        }
        assert list(registry.envs("m")) == ["canary-eu.1", "production", "staging"]
        assert registry.load("m", env="staging") == {"w": 2}
        assert registry.load("m") == {"w": 0}
        assert registry.current("m", env="nowhere") is None

    def test_envs_of_a_model_never_deployed(self, registry: ModelRegistry) -> None:
        _three(registry)
        assert registry.envs("m") == {}
        with pytest.raises(NotFoundError):
            registry.envs("absent")

    def test_each_env_has_its_own_rollback_chain(self, registry: ModelRegistry) -> None:
        _three(registry)
        for v in ("1.0.0", "1.1.0"):
            registry.deploy("m", v, env="production")
        for v in ("1.0.0", "1.2.0"):
            registry.deploy("m", v, env="staging")
        assert str(registry.rollback("m", env="staging", reason="bad").version) == "1.0.0"
        assert str(registry.current("m").version) == "1.1.0"  # production untouched
        assert str(registry.current("m", env="staging").version) == "1.0.0"
        # The chains: each pointer event's from is the previous one's to, per env.
        for env in ("production", "staging"):
            events = registry.history("m", env=env)
            moves = [e for e in events if e.action in ("deploy", "rollback")]
            for prev, nxt in itertools.pairwise(moves):
                assert nxt.from_version == prev.to_version
        assert [e.action for e in registry.history("m", env="staging")] == [
            "deploy",
            "deploy",
            "rollback",
        ]

    def test_statuses_are_shared_across_envs(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0", env="staging")
        registry.deploy("m", "1.1.0", env="staging")
        registry.rollback("m", env="staging", reason="latency doubled")
        mv = registry.get("m", "1.1.0")
        assert mv.status is Status.FAILED
        assert (mv.failed_env, mv.failure_reason) == ("staging", "latency doubled")
        with pytest.raises(ForbiddenTransitionError, match="latency doubled"):
            registry.deploy("m", "1.1.0", env="production")
        registry.deploy("m", "1.1.0", env="production", force=True)
        event = registry.history("m")[-1]
        assert event.forced and event.env == "production"
        assert registry.get("m", "1.1.0").failed_env == "staging"  # still failed, same record

    def test_mark_failed_with_env(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.mark_failed("m", "1.2.0", reason="oom", env="gpu")
        mv = registry.get("m", "1.2.0")
        assert (mv.failed_env, mv.failure_reason) == ("gpu", "oom")
        assert registry.history("m", env="gpu")[-1].action == "mark_failed"
        registry.mark_stable("m", "1.2.0")
        mv = registry.get("m", "1.2.0")
        assert (mv.status, mv.failed_env, mv.failure_reason) == (Status.STABLE, None, None)

    @pytest.mark.parametrize("env", ["", "a/b", "..", "pro duction", "x" * 201])
    def test_invalid_env_names(self, registry: ModelRegistry, env: str) -> None:
        _three(registry)
        before = len(registry.history("m"))
        with pytest.raises(InvalidNameError):
            registry.deploy("m", "1.0.0", env=env)
        with pytest.raises(InvalidNameError):
            registry.promote("m", from_env=env)
        with pytest.raises(InvalidNameError):
            registry.current("m", env=env)
        assert len(registry.history("m")) == before


class TestPromote:
    def test_promote_staging_to_production(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0", env="production")
        registry.deploy("m", "1.1.0", env="staging")
        mv = registry.promote("m")
        assert str(mv.version) == "1.1.0"
        assert str(registry.current("m").version) == "1.1.0"
        assert str(registry.current("m", env="staging").version) == "1.1.0"
        event = registry.history("m")[-1]
        assert (event.action, event.env, event.reason) == (
            "deploy",
            "production",
            "promoted from staging",
        )
        assert str(event.from_version) == "1.0.0"
        assert registry.get("m", "1.0.0").status is Status.STABLE  # replaced candidate

    def test_promote_custom_envs_and_reason(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.2.0", env="qa")
        registry.promote("m", from_env="qa", to_env="canary", reason="qa passed")
        assert str(registry.current("m", env="canary").version) == "1.2.0"
        assert registry.history("m")[-1].reason == "qa passed"

    def test_promote_with_nothing_in_the_source_env(self, registry: ModelRegistry) -> None:
        _three(registry)
        with pytest.raises(VersionNotFoundError, match="nothing is deployed in 'staging'"):
            registry.promote("m")
        with pytest.raises(NotFoundError):
            registry.promote("absent")

    def test_promote_failed_version_needs_force(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.1.0", env="staging")
        registry.mark_failed("m", "1.1.0", reason="flaky")
        with pytest.raises(ForbiddenTransitionError):
            registry.promote("m")
        assert registry.current("m") is None
        registry.promote("m", force=True)
        assert registry.history("m")[-1].forced

    def test_promote_runs_the_check(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        registry.deploy("m", "1.1.0", env="staging")
        with pytest.raises(DeployCheckFailedError) as info:
            registry.promote("m", check=lambda model: False)
        assert info.value.restored == "1.0.0"
        assert str(registry.current("m").version) == "1.0.0"
        # The version failed its production check: failed everywhere, still in staging.
        assert str(registry.current("m", env="staging").version) == "1.1.0"
        assert registry.get("m", "1.1.0").failed_env == "production"


# ---------------------------------------------------------------------- dry-run plans
class TestPlans:
    def test_plan_deploy_changes_nothing(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.0.0")
        before = registry.history("m")
        event = registry.plan_deploy("m", "1.1.0", reason="try")
        assert registry.history("m") == before
        assert str(registry.current("m").version) == "1.0.0"
        assert registry.get("m", "1.0.0").status is Status.CANDIDATE
        assert (event.action, event.env, event.reason) == ("deploy", "production", "try")
        assert (str(event.from_version), str(event.to_version)) == ("1.0.0", "1.1.0")
        assert [str(c) for c in event.changes] == ["1.0.0 candidate->stable"]
        assert event.seq == before[-1].seq + 1
        # The real deploy commits the same event.
        registry.deploy("m", "1.1.0", reason="try")
        real = registry.history("m")[-1]
        assert (real.seq, real.from_version, real.to_version, real.changes) == (
            event.seq,
            event.from_version,
            event.to_version,
            event.changes,
        )

    def test_plan_deploy_refusals(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.mark_failed("m", "1.1.0", reason="bad")
        with pytest.raises(ForbiddenTransitionError, match="failed"):
            registry.plan_deploy("m", "1.1.0")
        assert registry.plan_deploy("m", "1.1.0", force=True).forced
        with pytest.raises(VersionNotFoundError):
            registry.plan_deploy("m", "9.0.0")
        with pytest.raises(NotFoundError):
            registry.plan_deploy("absent", "1.0.0")
        registry.prune("m", keep=0)
        with pytest.raises(ArtifactPrunedError):
            registry.plan_deploy("m", "1.0.0")

    def test_plan_deploy_ignores_checks(self, backend: Backend) -> None:
        reg = ModelRegistry(backend, checks={"m": lambda model: pytest.fail("check called")})
        _three(reg)
        assert reg.plan_deploy("m", "1.0.0").from_version is None

    def test_plan_rollback(self, registry: ModelRegistry) -> None:
        _three(registry)
        for v in ("1.0.0", "1.1.0", "1.2.0"):
            registry.deploy("m", v)
        before = registry.history("m")
        event = registry.plan_rollback("m", reason="auc fell")
        assert registry.history("m") == before
        assert (str(event.from_version), str(event.to_version)) == ("1.2.0", "1.1.0")
        assert [str(c) for c in event.changes] == ["1.2.0 candidate->failed"]
        assert event.version == registry.rollback_target("m").version
        with pytest.raises(NoRollbackTargetError):
            registry.plan_rollback("m", env="staging")


# ---------------------------------------------------------------------- retention
class TestPrune:
    def test_prune_keeps_the_newest(self, registry: ModelRegistry) -> None:
        for i in range(5):
            registry.save("m", {"w": i})
        pruned = registry.prune("m", keep=2, reason="disk")
        assert [str(mv.version) for mv in pruned] == ["1.0.0", "1.1.0", "1.2.0"]
        assert all(mv.pruned for mv in pruned)
        assert [mv.pruned for mv in registry.versions("m")] == [True, True, True, False, False]
        assert len(_artifacts(registry)) == 2
        event = registry.history("m")[-1]
        assert (event.action, event.reason) == ("prune", "disk")
        assert _actions(registry).count("save") == 5  # history stays
        with pytest.raises(ArtifactPrunedError, match="was pruned"):
            registry.load("m", "1.0.0")
        assert registry.load("m", "1.4.0") == {"w": 4}
        assert registry.prune("m", keep=2) == []  # idempotent

    def test_pruned_record_keeps_its_metadata(self, registry: ModelRegistry) -> None:
        registry.save("m", {"w": 0}, metrics={"auc": 0.9}, tags={"data": "2026-01"})
        registry.save("m", {"w": 1})
        before = registry.get("m", "1.0.0")
        registry.prune("m", keep=1)
        after = registry.get("m", "1.0.0")
        assert after.pruned and str(after) == "m 1.0.0 (candidate pruned)"
        assert {**after.to_dict(), "pruned": False} == before.to_dict()

    def test_prune_never_touches_deployed_or_rollback_targets(
        self, registry: ModelRegistry
    ) -> None:
        for i in range(6):
            registry.save("m", {"w": i})
        for v in ("1.0.0", "1.1.0", "1.2.0"):
            registry.deploy("m", v)  # production: 1.2.0, rollback target 1.1.0
        registry.deploy("m", "1.3.0", env="staging")  # staging: 1.3.0, target 1.1.0
        registry.deploy("m", "1.0.0", env="old")  # old: 1.0.0, no target
        pruned = registry.prune("m", keep=0)
        assert [str(mv.version) for mv in pruned] == ["1.4.0", "1.5.0"]
        kept = {str(mv.version) for mv in registry.versions("m") if not mv.pruned}
        assert kept == {"1.0.0", "1.1.0", "1.2.0", "1.3.0"}
        assert str(registry.rollback("m").version) == "1.1.0"
        assert registry.load("m") == {"w": 1}

    def test_rollback_skips_pruned_stable_versions(self, registry: ModelRegistry) -> None:
        for i in range(4):
            registry.save("m", {"w": i})
        for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
            registry.deploy("m", v)  # 1.0.0..1.2.0 stable; target is 1.2.0
        registry.prune("m", keep=0)  # 1.0.0 and 1.1.0 pruned
        registry.rollback("m")  # to 1.2.0
        with pytest.raises(NoRollbackTargetError, match="pruned"):
            registry.rollback("m")

    def test_prune_dry_run_changes_nothing(self, registry: ModelRegistry) -> None:
        _three(registry)
        history = registry.history("m")
        artifacts = _artifacts(registry)
        would = registry.prune("m", keep=1, dry_run=True)
        assert [str(mv.version) for mv in would] == ["1.0.0", "1.1.0"]
        assert not any(mv.pruned for mv in would)
        assert registry.history("m") == history
        assert _artifacts(registry) == artifacts
        assert [str(mv.version) for mv in registry.prune("m", keep=1)] == ["1.0.0", "1.1.0"]

    @pytest.mark.parametrize("keep", [-1, True, 1.5, "2", None])
    def test_prune_validates_keep(self, registry: ModelRegistry, keep: Any) -> None:
        _three(registry)
        with pytest.raises(InvalidInputError, match="keep"):
            registry.prune("m", keep=keep)

    def test_prune_of_unknown_model(self, registry: ModelRegistry) -> None:
        with pytest.raises(NotFoundError):
            registry.prune("absent", keep=1)

    def test_prune_leaves_artifacts_of_saves_in_flight(self, registry: ModelRegistry) -> None:
        """An artifact no committed version references yet may belong to a save that
        has written its artifact but not committed its record: prune must not take it."""
        _three(registry)
        blob = registry.backend.open_blob()
        sha, _size = dump_model({"w": "in flight"}, blob)
        key = f"models/m/@artifacts/{sha}.joblib"
        assert blob.commit(key)
        registry.prune("m", keep=0)
        registry.delete("m", "1.0.0")
        assert registry.backend.exists(key)
        report = registry.verify()
        assert report.ok
        assert [p.kind for p in report.problems] == ["orphan-artifact"]
        assert registry.verify(repair=True, min_age=0).removed == (key,)
        assert not registry.backend.exists(key)


class TestDelete:
    def test_delete_removes_the_record_keeps_history(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.delete("m", "1.1.0", reason="leaked data")
        assert [str(mv.version) for mv in registry.versions("m")] == ["1.0.0", "1.2.0"]
        with pytest.raises(VersionNotFoundError):
            registry.get("m", "1.1.0")
        event = registry.history("m")[-1]
        assert (event.action, str(event.version), event.reason) == (
            "delete",
            "1.1.0",
            "leaked data",
        )
        assert _actions(registry).count("save") == 3
        assert len(_artifacts(registry)) == 2

    def test_delete_refuses_a_deployed_version(self, registry: ModelRegistry) -> None:
        _three(registry)
        registry.deploy("m", "1.1.0", env="staging")
        registry.deploy("m", "1.1.0", env="production")
        history = registry.history("m")
        with pytest.raises(
            ForbiddenTransitionError,
            match=r"cannot delete m 1\.1\.0: it is deployed in production, staging",
        ):
            registry.delete("m", "1.1.0")
        assert registry.history("m") == history
        assert len(_artifacts(registry)) == 3

    def test_delete_unknown(self, registry: ModelRegistry) -> None:
        _three(registry)
        with pytest.raises(VersionNotFoundError):
            registry.delete("m", "7.0.0")
        with pytest.raises(NotFoundError):
            registry.delete("absent", "1.0.0")


# ---------------------------------------------------------------------- content addressing
class TestContentAddressed:
    def test_same_content_is_stored_once(self, registry: ModelRegistry) -> None:
        a = registry.save("m", {"w": [1, 2, 3]})
        b = registry.save("m", {"w": [1, 2, 3]}, metrics={"auc": 0.9})
        assert a.sha256 == b.sha256 and a.version != b.version
        assert _artifacts(registry) == [f"models/m/@artifacts/{a.sha256}.joblib"]
        assert registry.load("m", a.version) == registry.load("m", b.version) == {"w": [1, 2, 3]}
        assert registry.verify().problems == ()

    def test_artifacts_are_per_model(self, registry: ModelRegistry) -> None:
        a = registry.save("a", {"w": 1})
        b = registry.save("b", {"w": 1})
        assert a.sha256 == b.sha256
        assert len(_artifacts(registry, "a")) == len(_artifacts(registry, "b")) == 1

    def test_pruning_one_of_two_sharing_versions_keeps_the_artifact(
        self, registry: ModelRegistry
    ) -> None:
        shared = registry.save("m", {"w": "same"})  # 1.0.0
        registry.save("m", {"w": "same"})  # 1.1.0, same artifact
        [pruned] = registry.prune("m", keep=1)
        assert pruned.version == shared.version
        assert _artifacts(registry) == [f"models/m/@artifacts/{shared.sha256}.joblib"]
        assert registry.load("m", "1.1.0") == {"w": "same"}
        with pytest.raises(ArtifactPrunedError):
            registry.load("m", "1.0.0")
        assert registry.verify().problems == ()
        registry.prune("m", keep=0)  # now no version uses it
        assert _artifacts(registry) == []
        assert registry.verify().problems == ()

    def test_deleting_one_of_two_sharing_versions_keeps_the_artifact(
        self, registry: ModelRegistry
    ) -> None:
        registry.save("m", {"w": "same"})
        registry.save("m", {"w": "same"})
        registry.delete("m", "1.0.0")
        assert len(_artifacts(registry)) == 1
        assert registry.load("m", "1.1.0") == {"w": "same"}
        registry.delete("m", "1.1.0")
        assert _artifacts(registry) == []

    def test_unchanged_model_costs_metadata_only(self, registry: ModelRegistry) -> None:
        registry.save("m", {"w": "big" * 1000})
        keys = set(registry.backend.list(""))
        registry.save("m", {"w": "big" * 1000})
        added = set(registry.backend.list("")) - keys
        assert added == {"models/m/@log/000000000002.json"}
        assert registry.backend.cleanup(min_age=0, dry_run=True) == []  # no temporaries left


# ---------------------------------------------------------------------- history paging
def test_history_from_a_start(registry: ModelRegistry) -> None:
    _three(registry)
    registry.deploy("m", "1.0.0", env="staging")
    registry.deploy("m", "1.1.0")
    everything = registry.history("m")
    assert [e.seq for e in everything] == [1, 2, 3, 4, 5]
    assert registry.history("m", start=4) == everything[3:]
    assert registry.history("m", start=4, env="production") == everything[4:]
    assert registry.history("m", start=6) == []
    fresh = ModelRegistry(registry.backend)  # reads only the asked-for entries
    assert fresh.history("m", start=5) == everything[4:]
    assert fresh.history("m") == everything
    for bad in (0, -1, True, "2"):
        with pytest.raises(InvalidInputError, match="start"):
            registry.history("m", start=bad)  # type: ignore[arg-type]


def test_save_reusing_an_artifact_that_a_concurrent_prune_removes(backend: Backend) -> None:
    """A save finds its bytes already stored (dedupe); a prune in another process then
    deletes them before the save commits. The save must leave a loadable version."""
    reg = ModelRegistry(backend)
    other = ModelRegistry(backend)  # "another process": its own cached state
    reg.save("m", {"w": "shared"})  # 1.0.0, artifact X
    reg.save("m", {"w": "other"})  # 1.1.0
    real_commit = reg._log.commit
    pruned: list[ModelVersion] = []

    def commit_after_a_prune(name: str, build: Any, **kw: Any) -> Any:
        if kw.get("new_model") is not None and not pruned:
            pruned.extend(other.prune("m", keep=1))  # prunes 1.0.0, deletes X
        return real_commit(name, build, **kw)

    reg._log.commit = commit_after_a_prune  # type: ignore[method-assign]
    mv = reg.save("m", {"w": "shared"})  # reuses X, then X is deleted under it
    assert [str(p.version) for p in pruned] == ["1.0.0"]
    assert mv.sha256 == reg.get("m", "1.0.0").sha256
    assert ModelRegistry(backend).load("m", mv.version) == {"w": "shared"}
    assert ModelRegistry(backend).verify().ok
