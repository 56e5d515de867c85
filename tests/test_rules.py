"""The lifecycle rules are pure: a plain ModelState in, a typed event (or an error) out.

No backend anywhere in this file: states are built by applying event payloads, exactly
as replaying a history does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from modelversions import _rules
from modelversions._events import (
    Change,
    DeleteEvent,
    DeployEvent,
    LogEvent,
    MarkFailedEvent,
    RollbackEvent,
)
from modelversions._state import SCHEMA, ModelState
from modelversions.errors import (
    ArtifactPrunedError,
    ForbiddenTransitionError,
    NoRollbackTargetError,
    VersionExistsError,
    VersionNotFoundError,
)
from modelversions.records import Status
from modelversions.version import Version

T0 = datetime(2026, 1, 2, tzinfo=timezone.utc)
FIELDS: dict[str, Any] = {"created_at": T0, "size": 3, "metrics": {}, "params": {}}


def apply(state: ModelState, event: LogEvent) -> ModelState:
    """Append ``event`` as the commit loop would (without storage)."""
    payload = dict(event.payload())
    payload.update(schema=SCHEMA, seq=state.seq + 1, time="2026-01-02T00:00:00Z", name=state.name)
    state.apply(payload)
    return state


def save(state: ModelState, version: str | None = None, sha: str = "a") -> ModelState:
    fields = {**FIELDS, "sha256": sha * 64, "tags": {}, "description": None}
    explicit = None if version is None else Version(version)
    return apply(state, _rules.save(state, explicit=explicit, bump="minor", fields=fields))


def model(n: int) -> ModelState:
    """A model with versions 1.0.0 .. 1.(n-1).0, all candidates, nothing deployed."""
    state = ModelState(name="m")
    for i in range(n):
        save(state, sha="0123456789abcdef"[i % 16])
    return state


def deploy(state: ModelState, version: str, env: str = "production") -> ModelState:
    return apply(state, _rules.deploy(state, Version(version), env=env, reason=None, force=False))


def statuses(state: ModelState) -> dict[str, str]:
    return {str(v): state.records[v].status.value for v in state.order}


def test_versions_count_up_from_1_0_0_and_never_reuse_a_deleted_number() -> None:
    state = ModelState(name="m")
    assert str(_rules.new_version(state, None, "minor")) == "1.0.0"
    save(state)
    assert str(_rules.new_version(state, None, "major")) == "2.0.0"
    assert str(_rules.new_version(state, None, "patch")) == "1.0.1"
    save(state, "1.5.0")
    apply(state, _rules.delete(state, Version("1.5.0"), reason="oops"))
    assert str(_rules.new_version(state, None, "minor")) == "1.6.0"  # past the deleted one
    with pytest.raises(VersionExistsError, match=r"was deleted at .* never reused"):
        _rules.new_version(state, Version("1.5.0"), "minor")
    with pytest.raises(VersionExistsError, match=r"version 1.0.0\+other \(stored as 1.0.0\)"):
        _rules.new_version(state, Version("1.0.0+other"), "minor")


def test_a_rule_changes_nothing_in_the_state_it_reads() -> None:
    state = deploy(deploy(model(3), "1.0.0"), "1.1.0")
    before = state.to_snapshot()
    _rules.deploy(state, Version("1.2.0"), env="production", reason=None, force=False)
    _rules.rollback(state, env="production", reason=None)
    _rules.mark_failed(state, Version("1.0.0"), reason="x", env=None)
    _rules.prune(state, keep=0, reason=None)
    assert state.to_snapshot() == before


def test_deploy_makes_the_replaced_candidate_stable() -> None:
    state = deploy(model(2), "1.0.0")
    event = _rules.deploy(state, Version("1.1.0"), env="production", reason="go", force=False)
    assert event == DeployEvent(
        version=Version("1.1.0"),
        env="production",
        from_version=Version("1.0.0"),
        changes=(Change(Version("1.0.0"), Status.CANDIDATE, Status.STABLE),),
        reason="go",
        forced=False,
    )
    assert event.payload() == {
        "action": "deploy",
        "version": "1.1.0",
        "env": "production",
        "from_version": "1.0.0",
        "to_version": "1.1.0",
        "changes": [{"version": "1.0.0", "from": "candidate", "to": "stable"}],
        "reason": "go",
        "forced": False,
    }
    apply(state, event)
    assert statuses(state) == {"1.0.0": "stable", "1.1.0": "candidate"}
    # deploying the deployed version again changes no status
    assert deploy(state, "1.1.0").pointers == {"production": Version("1.1.0")}
    assert statuses(state) == {"1.0.0": "stable", "1.1.0": "candidate"}


def test_deploy_refuses_failed_unless_forced_and_pruned_always() -> None:
    state = model(3)
    apply(state, _rules.mark_failed(state, Version("1.1.0"), reason="bad", env=None))
    with pytest.raises(ForbiddenTransitionError, match=r"it is failed \(bad\); pass force=True"):
        _rules.deploy(state, Version("1.1.0"), env="production", reason=None, force=False)
    forced = _rules.deploy(state, Version("1.1.0"), env="production", reason=None, force=True)
    assert forced.forced
    assert not _rules.deploy(state, Version("1.2.0"), env="p", reason=None, force=True).forced
    apply(state, _rules.prune(state, keep=1, reason=None))
    with pytest.raises(ArtifactPrunedError, match="its artifact was pruned"):
        _rules.deploy(state, Version("1.0.0"), env="production", reason=None, force=True)
    with pytest.raises(VersionNotFoundError, match=r"has no version 9\.0\.0; versions: 1\.0\.0"):
        _rules.deploy(state, Version("9.0.0"), env="production", reason=None, force=False)


def test_rollback_goes_to_the_latest_stable_below_and_fails_the_deployed() -> None:
    state = model(3)
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        deploy(state, v)
    assert str(_rules.rollback_target(state, "production").version) == "1.1.0"
    event = _rules.rollback(state, env="production", reason=None)
    assert event == RollbackEvent(
        env="production",
        from_version=Version("1.2.0"),
        to_version=Version("1.1.0"),
        changes=(
            Change(
                Version("1.2.0"),
                Status.CANDIDATE,
                Status.FAILED,
                reason="rolled back in production",
                env="production",
            ),
        ),
        reason=None,
    )
    assert event.payload()["changes"] == [
        {
            "version": "1.2.0",
            "from": "candidate",
            "to": "failed",
            "reason": "rolled back in production",
            "env": "production",
        }
    ]
    apply(state, event)
    assert state.pointers["production"] == Version("1.1.0")
    assert statuses(state)["1.2.0"] == "failed"


def test_rollback_refusals_say_why() -> None:
    state = model(2)
    with pytest.raises(NoRollbackTargetError, match="nothing is deployed there"):
        _rules.rollback(state, env="production", reason=None)
    deploy(state, "1.1.0")
    with pytest.raises(NoRollbackTargetError, match=r"below: 1.0.0 candidate\)"):
        _rules.rollback_target(state, "production")


def test_mark_stable_overrides_a_failure_and_makes_a_rollback_target() -> None:
    state = deploy(model(2), "1.1.0")
    apply(state, _rules.mark_failed(state, Version("1.0.0"), reason="bad", env="staging"))
    assert state.records[Version("1.0.0")].failed_env == "staging"
    event = _rules.mark_stable(state, Version("1.0.0"), reason=None)
    assert event.payload()["changes"] == [{"version": "1.0.0", "from": "failed", "to": "stable"}]
    apply(state, event)
    assert state.records[Version("1.0.0")].failure_reason is None
    assert str(_rules.rollback_target(state, "production").version) == "1.0.0"


def test_prune_keeps_deployed_versions_and_their_rollback_targets() -> None:
    state = model(6)
    deploy(state, "1.1.0")
    deploy(state, "1.2.0")  # 1.1.0 becomes stable: the rollback target
    assert [str(v) for v in _rules.prune_victims(state, keep=2)] == ["1.0.0", "1.3.0"]
    apply(state, _rules.prune(state, keep=2, reason=None))
    assert _rules.prune_victims(state, keep=2) == []  # already pruned ones are not again
    assert _rules.prune(state, keep=0, reason="x").payload() == {
        "action": "prune",
        "version": None,
        "pruned": ["1.4.0", "1.5.0"],
        "reason": "x",
    }


def test_delete_refuses_a_deployed_version_and_carries_the_record() -> None:
    state = deploy(model(2), "1.1.0", env="staging")
    with pytest.raises(ForbiddenTransitionError, match="it is deployed in staging"):
        _rules.delete(state, Version("1.1.0"), reason=None)
    event = _rules.delete(state, Version("1.0.0"), reason="gone")
    assert isinstance(event, DeleteEvent)
    assert event.record.sha256 == "0" * 64
    assert event.payload() == {"action": "delete", "version": "1.0.0", "reason": "gone"}


def test_a_failed_deploy_check_restores_the_replaced_version() -> None:
    state = deploy(deploy(model(2), "1.0.0"), "1.1.0")
    before = Version("1.0.0")
    event = _rules.check_failed(
        state, Version("1.1.0"), env="production", before=before, message="m"
    )
    assert isinstance(event, RollbackEvent)
    assert (event.from_version, event.to_version) == (Version("1.1.0"), before)
    assert event.reason == "deploy check failed: m"
    error = _rules.check_failed_error(
        event, name="m", env="production", message="m", before=before, pointer=None
    )
    assert (error.restored, error.deployed) == ("1.0.0", "1.0.0")
    assert "1.1.0 is marked failed and 1.0.0 is deployed again" in str(error)


def test_a_failed_deploy_check_leaves_a_moved_pointer_alone() -> None:
    state = deploy(deploy(model(3), "1.1.0"), "1.2.0")  # someone moved production on
    event = _rules.check_failed(state, Version("1.1.0"), env="production", before=None, message="m")
    assert isinstance(event, MarkFailedEvent)
    assert event.payload()["changes"][0]["reason"] == "m"
    error = _rules.check_failed_error(
        event, name="m", env="production", message="m", before=None, pointer=Version("1.2.0")
    )
    assert (error.restored, error.deployed) == (None, "1.2.0")
    assert "changed meanwhile (to 1.2.0) and left as is" in str(error)
