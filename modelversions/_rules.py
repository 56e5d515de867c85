"""The lifecycle rules, as pure functions from a model's state and a request to an event.

Each rule reads a :class:`~modelversions._state.ModelState` and returns the typed event
(:mod:`modelversions._events`) that the change would append, or raises the error that
refuses it. The commit loop runs a rule on the newest state and runs it again when
another writer committed first, so a rule must be pure: no storage, no I/O, no clock
(times come in as arguments), no mutation of the state. Applying the event to the state
is :meth:`ModelState.apply`'s job; rules decide, the log records.

>>> from modelversions._state import replay
>>> state = replay("m", [])
>>> str(new_version(state, None, "minor"))
'1.0.0'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelversions._state import ModelState
from modelversions.errors import (
    ArtifactPrunedError,
    DeployCheckFailedError,
    ForbiddenTransitionError,
    NoRollbackTargetError,
    VersionExistsError,
    VersionNotFoundError,
)
from modelversions.records import ModelVersion, Status
from modelversions.version import Version

if TYPE_CHECKING:  # the events are imported by the rules that build them (reads need none)
    from modelversions._events import (
        Change,
        DeleteEvent,
        DeployEvent,
        MarkFailedEvent,
        MarkStableEvent,
        PruneEvent,
        RollbackEvent,
        SaveEvent,
    )

BUMPS = ("major", "minor", "patch")


def find(state: ModelState, version: str | Version) -> ModelVersion:
    """The record of ``version``; VersionNotFoundError lists the newest versions."""
    v = Version(version)
    mv = state.records.get(v)
    if mv is None:
        have = [str(x) for x in state.order]
        shown = ", ".join(have[-20:])
        more = f" (and {len(have) - 20} older)" if len(have) > 20 else ""
        raise VersionNotFoundError(
            f"model {state.name!r} has no version {v}; versions: {shown}{more}"
        )
    return mv


def resolve(state: ModelState, version: str | Version | None, env: str) -> ModelVersion:
    """The record of ``version``, or by default of the version deployed in ``env``."""
    if version is not None:
        return find(state, version)
    v = state.pointers.get(env)
    if v is None:
        raise VersionNotFoundError(
            f"nothing is deployed in {env!r} for model {state.name!r}; pass a version "
            f"or deploy one (versions: {', '.join(str(x) for x in state.order[-10:])})"
        )
    return state.records[v]


# ---------------------------------------------------------------------- save
def new_version(state: ModelState, explicit: Version | None, bump: str) -> Version:
    """The version a save would get now; raise if ``explicit`` is or was used.

    Version numbers are never reused: an automatic version is the highest version
    ever saved (deleted ones included) bumped by ``bump``.

    Raises:
        VersionExistsError: ``explicit`` exists, or existed and was deleted.
        InvalidVersionError: the bump would exceed ``Version``'s limits.
    """
    if explicit is not None:
        if explicit in state.records:
            have = state.records[explicit]
            same = "" if str(have.version) == str(explicit) else f" (stored as {have.version})"
            raise VersionExistsError(
                f"model {state.name!r} already has version {explicit}{same}, status "
                f"{have.status.value}; the highest is {state.order[-1]}"
            )
        when = state.deleted.get(explicit)
        if when is not None:
            raise VersionExistsError(
                f"model {state.name!r} had version {explicit}; it was deleted at {when} "
                f"and version numbers are never reused (highest ever saved: {state.highest})"
            )
        return explicit
    top = state.highest
    if state.order and (top is None or state.order[-1] > top):
        top = state.order[-1]
    return Version("1.0.0") if top is None else top.bump(bump)


def save(
    state: ModelState, *, explicit: Version | None, bump: str, fields: Mapping[str, Any]
) -> SaveEvent:
    """A new ``candidate`` record of the version :func:`new_version` chooses.

    ``fields``: the record's other fields (``created_at``, ``sha256``, ``size``,
    ``metrics``, ``params``, ``tags``, ``description``).
    """
    from modelversions._events import SaveEvent

    v = new_version(state, explicit, bump)
    return SaveEvent(record=ModelVersion(state.name, v, Status.CANDIDATE, **fields))


# ---------------------------------------------------------------------- deploy
def deploy(
    state: ModelState, target: Version, *, env: str, reason: str | None, force: bool
) -> DeployEvent:
    """Point ``env`` at ``target``; the replaced version, if a candidate, becomes stable.

    Raises:
        VersionNotFoundError, ArtifactPrunedError (pruned), ForbiddenTransitionError
        (failed, without ``force``).
    """
    from modelversions._events import Change, DeployEvent

    mv = find(state, target)
    if mv.pruned:
        raise ArtifactPrunedError(
            f"cannot deploy {state.name} {mv.version}: its artifact was pruned"
        )
    if mv.status is Status.FAILED and not force:
        raise ForbiddenTransitionError(
            f"cannot deploy {state.name} {mv.version}: it is failed "
            f"({mv.failure_reason or 'no reason given'}); pass force=True to deploy it"
        )
    before = state.pointers.get(env)
    changes: tuple[Change, ...] = ()
    if (
        before is not None
        and before != mv.version
        and state.records[before].status is Status.CANDIDATE
    ):
        changes = (Change(before, Status.CANDIDATE, Status.STABLE),)
    return DeployEvent(
        version=mv.version,
        env=env,
        from_version=before,
        changes=changes,
        reason=reason,
        forced=bool(force and mv.status is Status.FAILED),
    )


def check_failed(
    state: ModelState, deployed: Version, *, env: str, before: Version | None, message: str
) -> MarkFailedEvent | RollbackEvent:
    """After a failed deploy check: mark ``deployed`` failed and put ``before`` back.

    If ``env`` no longer points at ``deployed`` (someone moved it since), only the
    failure is recorded.
    """
    from modelversions._events import Change, MarkFailedEvent, RollbackEvent

    old = state.records[deployed].status
    changes = (Change(deployed, old, Status.FAILED, reason=message, env=env),)
    why = f"deploy check failed: {message}"
    if state.pointers.get(env) != deployed:
        return MarkFailedEvent(version=deployed, env=env, changes=changes, reason=why)
    return RollbackEvent(
        env=env, from_version=deployed, to_version=before, changes=changes, reason=why
    )


def check_failed_error(
    event: MarkFailedEvent | RollbackEvent,
    *,
    name: str,
    env: str,
    message: str,
    before: Version | None,
    pointer: Version | None,
) -> DeployCheckFailedError:
    """The error a failed deploy check raises, saying what ``env`` runs after ``event``.

    ``pointer`` is what ``env`` pointed at when ``event`` was built.
    """
    from modelversions._events import MarkFailedEvent, RollbackEvent

    new = str(event.from_version if isinstance(event, RollbackEvent) else event.version)
    old = None if before is None else str(before)
    now: str | None
    if isinstance(event, MarkFailedEvent):
        now = None if pointer is None else str(pointer)
        outcome = (
            f"{new} is marked failed; {env!r} was changed meanwhile "
            f"(to {now or 'nothing'}) and left as is"
        )
        restored = None
    elif old == new:
        now, restored = new, None
        outcome = (
            f"{new} is marked failed and, as it was already deployed there and there is "
            f"nothing to restore, it is still deployed in {env!r}: roll back or deploy "
            "another version to replace it"
        )
    elif old:
        now = restored = old
        outcome = f"{new} is marked failed and {old} is deployed again"
    else:
        now = restored = None
        outcome = (
            f"{new} is marked failed and, as nothing was deployed there before, "
            f"nothing is deployed now in {env!r}"
        )
    return DeployCheckFailedError(
        f"deploy of {name} {new} to {env!r} failed its check ({message}); {outcome}",
        name=name,
        version=new,
        restored=restored,
        deployed=now,
    )


# ---------------------------------------------------------------------- rollback
def rollback_target(state: ModelState, env: str) -> ModelVersion:
    """The latest stable, unpruned version below the one deployed in ``env``.

    Raises:
        NoRollbackTargetError: nothing deployed, or no such version (the message lists
            the versions below and their statuses).
    """
    current = state.pointers.get(env)
    if current is None:
        raise NoRollbackTargetError(
            f"cannot roll back model {state.name!r} in {env!r}: nothing is deployed there"
        )
    target = state.rollback_target(current)
    if target is None:
        below = state.below(current)
        listing = ", ".join(
            f"{mv.version} {mv.status.value}{' pruned' if mv.pruned else ''}" for mv in below[-20:]
        )
        raise NoRollbackTargetError(
            f"cannot roll back model {state.name!r} in {env!r} from {current}: no stable "
            f"version below it (below: {listing or 'none'})"
        )
    return target


def rollback(state: ModelState, *, env: str, reason: str | None) -> RollbackEvent:
    """Deploy :func:`rollback_target` in ``env``; the deployed version becomes failed."""
    from modelversions._events import Change, RollbackEvent

    target = rollback_target(state, env)
    current = state.records[state.pointers[env]]
    changes: tuple[Change, ...] = ()
    if current.status is not Status.FAILED:
        why = reason or f"rolled back in {env}"
        changes = (Change(current.version, current.status, Status.FAILED, why, env),)
    return RollbackEvent(
        env=env,
        from_version=current.version,
        to_version=target.version,
        changes=changes,
        reason=reason,
    )


# ---------------------------------------------------------------------- statuses
def mark_failed(
    state: ModelState, target: Version, *, reason: str, env: str | None
) -> MarkFailedEvent:
    """Mark ``target`` failed (``env``: where, if env-specific); no pointer moves."""
    from modelversions._events import Change, MarkFailedEvent

    mv = find(state, target)
    change = Change(mv.version, mv.status, Status.FAILED, reason=reason, env=env)
    return MarkFailedEvent(version=mv.version, env=env, changes=(change,), reason=reason)


def mark_stable(state: ModelState, target: Version, *, reason: str | None) -> MarkStableEvent:
    """Mark ``target`` stable (a rollback target), overriding a failure."""
    from modelversions._events import Change, MarkStableEvent

    mv = find(state, target)
    change = Change(mv.version, mv.status, Status.STABLE)
    return MarkStableEvent(version=mv.version, changes=(change,), reason=reason)


# ---------------------------------------------------------------------- retention
def prune_victims(state: ModelState, keep: int) -> list[Version]:
    """Unpruned versions older than the newest ``keep``, except protected ones.

    Protected: deployed versions and each env's rollback target.
    """
    protected = state.protected()
    old = state.order[: max(len(state.order) - keep, 0)]
    return [v for v in old if v not in protected and not state.records[v].pruned]


def prune(state: ModelState, *, keep: int, reason: str | None) -> PruneEvent:
    from modelversions._events import PruneEvent

    return PruneEvent(pruned=tuple(prune_victims(state, keep)), reason=reason)


def delete(state: ModelState, target: Version, *, reason: str | None) -> DeleteEvent:
    """Remove ``target``'s record.

    Raises:
        VersionNotFoundError; ForbiddenTransitionError: it is deployed in some env.
    """
    from modelversions._events import DeleteEvent

    mv = find(state, target)
    envs = sorted(e for e, v in state.pointers.items() if v == mv.version)
    if envs:
        raise ForbiddenTransitionError(
            f"cannot delete {state.name} {mv.version}: it is deployed in {', '.join(envs)}"
        )
    return DeleteEvent(record=mv, reason=reason)
