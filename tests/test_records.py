"""Records: Status, ModelVersion, StatusChange and Event are immutable values."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from modelversions import (
    Event,
    IntegrityError,
    ModelRegistry,
    ModelVersion,
    Status,
    StatusChange,
    Version,
)
from modelversions._state import event_from_payload

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def make_version(**overrides: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "name": "team/churn",
        "version": Version("1.2.0+build.5"),
        "status": Status.FAILED,
        "created_at": T0,
        "sha256": "ab" * 32,
        "size": 1234,
        "metrics": {"auc": 0.81, "per_class": [0.1, 0.2]},
        "params": {"depth": 3, "nested": {"x": None}},
        "tags": {"team": "risk"},
        "description": "ünïcode description",
        "failure_reason": "auc dropped",
        "failed_env": "production",
        "pruned": True,
    }
    fields.update(overrides)
    return ModelVersion(**fields)


def make_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "seq": 7,
        "time": T0,
        "action": "rollback",
        "name": "churn",
        "version": Version("1.0.0"),
        "env": "production",
        "from_version": Version("2.0.0"),
        "to_version": Version("1.0.0"),
        "reason": "bad auc",
        "user": "ana",
        "host": "box",
        "changes": (StatusChange(Version("2.0.0"), Status.CANDIDATE, Status.FAILED),),
        "forced": False,
    }
    fields.update(overrides)
    return Event(**fields)


# ---------------------------------------------------------------------------- Status
def test_status_is_a_str_enum() -> None:
    assert {s.value for s in Status} == {"candidate", "stable", "failed"}
    for s in Status:
        assert isinstance(s, str)
        assert s == s.value
        assert str(s) == s.value
        assert f"{s}" == s.value
        assert Status(s.value) is s
        assert json.dumps(s) == f'"{s.value}"'
    assert Status.STABLE == "stable"
    with pytest.raises(ValueError):
        Status("deployed")


# ---------------------------------------------------------------------------- ModelVersion
def test_model_version_is_immutable() -> None:
    mv = make_version()
    for field, value in [
        ("status", Status.STABLE),
        ("version", Version("9.0.0")),
        ("failure_reason", None),
        ("pruned", False),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(mv, field, value)
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        mv.extra = 1  # type: ignore[attr-defined]
    changed = dataclasses.replace(mv, status=Status.STABLE)
    assert changed.status is Status.STABLE and mv.status is Status.FAILED


def test_model_version_to_dict_is_json_ready() -> None:
    d = make_version().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {
        "name": "team/churn",
        "version": "1.2.0+build.5",
        "status": "failed",
        "created_at": "2026-01-02T03:04:05.678901Z",
        "sha256": "ab" * 32,
        "size": 1234,
        "metrics": {"auc": 0.81, "per_class": [0.1, 0.2]},
        "params": {"depth": 3, "nested": {"x": None}},
        "tags": {"team": "risk"},
        "description": "ünïcode description",
        "failure_reason": "auc dropped",
        "failed_env": "production",
        "pruned": True,
    }


@pytest.mark.parametrize(
    "mv",
    [
        make_version(),
        make_version(
            status=Status.CANDIDATE,
            metrics={},
            params={},
            tags={},
            description=None,
            failure_reason=None,
            failed_env=None,
            pruned=False,
            version=Version("0.1.0-rc.1"),
        ),
        make_version(created_at=datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_model_version_round_trip(mv: ModelVersion) -> None:
    back = ModelVersion.from_dict(json.loads(json.dumps(mv.to_dict())))
    assert back == mv
    assert str(back.version) == str(mv.version)  # build metadata kept
    assert back.created_at.utcoffset() == timedelta(0)
    assert back.to_dict() == mv.to_dict()
    with pytest.raises(TypeError):
        back.metrics["auc"] = 0  # type: ignore[index]


@pytest.mark.parametrize(
    "damage",
    [
        {"version": "not a version"},
        {"status": "deployed"},
        {"created_at": "yesterday"},
        {"size": "big"},
        {"sha256": None, "name": None, "version": None},
    ],
)
def test_model_version_from_bad_dict_is_an_integrity_error(damage: dict[str, Any]) -> None:
    d = make_version().to_dict()
    d.update(damage)
    with pytest.raises(IntegrityError):
        ModelVersion.from_dict(d)
    d = make_version().to_dict()
    del d["status"]
    with pytest.raises(IntegrityError, match="status"):
        ModelVersion.from_dict(d)


def test_model_version_str_and_is_failed() -> None:
    assert str(make_version()) == "team/churn 1.2.0+build.5 (failed pruned)"
    assert str(make_version(status=Status.STABLE, pruned=False)) == (
        "team/churn 1.2.0+build.5 (stable)"
    )
    assert make_version().is_failed
    assert not make_version(status=Status.CANDIDATE).is_failed


def test_records_returned_by_the_registry_are_immutable() -> None:
    reg = ModelRegistry("memory://")
    mv = reg.save("m", 1, metrics={"auc": 0.5}, tags={"t": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        mv.status = Status.STABLE  # type: ignore[misc]
    with pytest.raises(TypeError):
        mv.metrics["auc"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        mv.tags["t"] = "y"  # type: ignore[index]
    assert reg.get("m", "1.0.0").metrics["auc"] == 0.5
    event = reg.history("m")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.reason = "edited"  # type: ignore[misc]
    assert isinstance(event.changes, tuple)


# ---------------------------------------------------------------------------- StatusChange
def test_status_change() -> None:
    c = StatusChange(Version("1.0.0"), Status.CANDIDATE, Status.STABLE)
    assert str(c) == "1.0.0 candidate->stable"
    assert c == StatusChange(Version("1.0.0"), Status.CANDIDATE, Status.STABLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.new = Status.FAILED  # type: ignore[misc]


# ---------------------------------------------------------------------------- Event
def test_event_is_immutable() -> None:
    e = make_event()
    for field in ("seq", "action", "reason", "to_version", "changes", "forced"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(e, field, None)


def test_event_to_dict() -> None:
    d = make_event().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {
        "seq": 7,
        "time": "2026-01-02T03:04:05.678901Z",
        "action": "rollback",
        "name": "churn",
        "version": "1.0.0",
        "env": "production",
        "from_version": "2.0.0",
        "to_version": "1.0.0",
        "reason": "bad auc",
        "user": "ana",
        "host": "box",
        "changes": [{"version": "2.0.0", "from": "candidate", "to": "failed"}],
        "forced": False,
        "pruned": [],
    }


@pytest.mark.parametrize(
    "event",
    [
        make_event(),
        make_event(
            action="save",
            version=Version("3.0.0+b"),
            env=None,
            from_version=None,
            to_version=None,
            reason=None,
            user=None,
            host=None,
            changes=(),
        ),
        make_event(action="deploy", forced=True, from_version=None),
        make_event(version=None, to_version=None),  # a rollback that left nothing deployed
        make_event(
            action="prune",
            version=None,
            env=None,
            from_version=None,
            to_version=None,
            changes=(),
            pruned=(Version("1.0.0"), Version("1.1.0+b")),
        ),
    ],
)
def test_event_round_trip(event: Event) -> None:
    back = event_from_payload(json.loads(json.dumps(event.to_dict())))
    assert back == event
    assert back.to_dict() == event.to_dict()
    assert str(back) == str(event)


def test_event_str_format() -> None:
    assert str(make_event()) == (
        "2026-01-02T03:04:05Z #7 rollback churn 1.0.0 [production] 2.0.0 -> 1.0.0 "
        "{2.0.0 candidate->failed} by ana@box: bad auc"
    )
    save = make_event(
        seq=1,
        action="save",
        env=None,
        from_version=None,
        to_version=None,
        reason=None,
        changes=(),
    )
    assert str(save) == "2026-01-02T03:04:05Z #1 save churn 1.0.0 by ana@box"
    first_deploy = make_event(action="deploy", from_version=None, changes=(), forced=True)
    assert str(first_deploy) == (
        "2026-01-02T03:04:05Z #7 deploy churn 1.0.0 [production] - -> 1.0.0 (forced) "
        "by ana@box: bad auc"
    )
    emptied = make_event(version=None, to_version=None, user=None, host=None, changes=())
    assert str(emptied) == "2026-01-02T03:04:05Z #7 rollback churn [production] 2.0.0 -> -: bad auc"
    only_user = make_event(action="mark_stable", env=None, from_version=None, to_version=None,
                           host=None, reason=None, changes=())  # fmt: skip
    assert str(only_user) == "2026-01-02T03:04:05Z #7 mark_stable churn 1.0.0 by ana@?"


def test_event_str_of_a_prune() -> None:
    prune = make_event(
        action="prune",
        version=None,
        env=None,
        from_version=None,
        to_version=None,
        changes=(),
        reason=None,
        pruned=(Version("1.0.0"), Version("1.1.0")),
    )
    assert str(prune) == "2026-01-02T03:04:05Z #7 prune churn pruned 1.0.0, 1.1.0 by ana@box"


def test_event_str_uses_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    assert str(make_event(time=local)).startswith("2026-01-02T03:04:05Z #7 ")
