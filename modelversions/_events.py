"""Typed history events: one frozen record per action, each making its stored payload.

A rule in :mod:`modelversions._rules` returns one of these; the commit loop
(:mod:`modelversions._commit`) adds the envelope (``schema``, ``seq``, ``time``, ``name``,
``user``, ``host``, ``prev``) and stores it. Every key of a stored entry is written here
once, in a :class:`Payload` (a ``TypedDict``), so a misspelt key is a type error. The
stored JSON is sorted by key, so the order below does not matter. Reading entries back
is :mod:`modelversions._state`'s job; the public :class:`~modelversions.records.Event`
is built from the stored payload. Nothing here reads or writes storage.

>>> from modelversions.version import Version
>>> change = Change(Version("1.2.0"), Status.FAILED, Status.STABLE)
>>> MarkStableEvent(version=Version("1.2.0"), changes=(change,), reason=None).payload()["changes"]
[{'version': '1.2.0', 'from': 'failed', 'to': 'stable'}]
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, TypedDict, TypeVar

from modelversions.records import ModelVersion, Status
from modelversions.version import Version

# "from" is a Python keyword: the functional form names it.
ChangePayload = TypedDict(
    "ChangePayload",
    {"version": str, "from": str, "to": str, "reason": str | None, "env": str | None},
    total=False,
)


class Payload(TypedDict, total=False):
    """Every key a stored history entry may have."""

    # the event (see the records below)
    action: str
    version: str | None
    record: dict[str, Any]
    env: str | None
    from_version: str | None
    to_version: str | None
    changes: list[ChangePayload]
    reason: str | None
    forced: bool
    pruned: list[str]
    # the envelope, added by the commit loop
    schema: int
    seq: int
    time: str
    name: str
    user: str
    host: str
    prev: str | None


def _opt(v: Version | None) -> str | None:
    return None if v is None else str(v)


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """A status change an event makes; a change to ``failed`` also stores its reason and env."""

    version: Version
    old: Status
    new: Status
    reason: str | None = None
    env: str | None = None

    def payload(self) -> ChangePayload:
        out: ChangePayload = {
            "version": str(self.version),
            "from": self.old.value,
            "to": self.new.value,
        }
        if self.new is Status.FAILED:
            out["reason"] = self.reason
            out["env"] = self.env
        return out


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _StatusEvent:
    """The part of an event that changes statuses: its ``changes`` and ``reason``."""

    changes: tuple[Change, ...]
    reason: str | None

    def _payload(self, action: str, version: Version) -> Payload:
        changed = [c.payload() for c in self.changes]
        return {
            "action": action,
            "version": str(version),
            "changes": changed,
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SaveEvent:
    """A new version, with its whole record."""

    action: ClassVar[str] = "save"
    record: ModelVersion

    @property
    def version(self) -> Version:
        return self.record.version

    def payload(self) -> Payload:
        record = self.record.to_dict()
        return {"action": self.action, "version": str(self.version), "record": record}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeployEvent(_StatusEvent):
    """``env`` moves from ``from_version`` to ``version``."""

    action: ClassVar[str] = "deploy"
    version: Version
    env: str
    from_version: Version | None
    forced: bool

    def payload(self) -> Payload:
        return {
            **self._payload(self.action, self.version),
            "env": self.env,
            "from_version": _opt(self.from_version),
            "to_version": str(self.version),
            "forced": self.forced,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RollbackEvent(_StatusEvent):
    """``env`` moves back from ``from_version`` to ``to_version`` (None: nothing deployed)."""

    action: ClassVar[str] = "rollback"
    env: str
    from_version: Version
    to_version: Version | None

    @property
    def version(self) -> Version | None:
        return self.to_version

    def payload(self) -> Payload:
        return {
            **self._payload(self.action, self.from_version),
            "version": _opt(self.to_version),
            "env": self.env,
            "from_version": str(self.from_version),
            "to_version": _opt(self.to_version),
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MarkFailedEvent(_StatusEvent):
    """``version`` becomes failed; no pointer moves."""

    action: ClassVar[str] = "mark_failed"
    version: Version
    env: str | None

    def payload(self) -> Payload:
        return {**self._payload(self.action, self.version), "env": self.env}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MarkStableEvent(_StatusEvent):
    """``version`` becomes stable (a rollback target)."""

    action: ClassVar[str] = "mark_stable"
    version: Version

    def payload(self) -> Payload:
        return self._payload(self.action, self.version)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PruneEvent:
    """The artifacts of ``pruned`` are to be deleted; their records stay, flagged."""

    action: ClassVar[str] = "prune"
    pruned: tuple[Version, ...]
    reason: str | None

    def payload(self) -> Payload:
        pruned = [str(v) for v in self.pruned]
        return {"action": self.action, "version": None, "pruned": pruned, "reason": self.reason}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeleteEvent:
    """``record``'s version is removed (its number stays used)."""

    action: ClassVar[str] = "delete"
    record: ModelVersion
    reason: str | None

    def payload(self) -> Payload:
        return {"action": self.action, "version": str(self.record.version), "reason": self.reason}


class LogEvent(Protocol):
    """What the commit loop stores: any of the events above."""

    @property
    def action(self) -> str: ...

    def payload(self) -> Payload: ...


E = TypeVar("E", bound=LogEvent)
