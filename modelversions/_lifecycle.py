"""The lifecycle half of :class:`~modelversions.ModelRegistry`: deploy, rollback, marks.

Each method checks its arguments, picks the pure rule from :mod:`modelversions._rules`
and hands it to the commit loop (:class:`modelversions._commit.Log`); a deploy check
runs on the loaded model after the pointer moved, and a failing one commits the
restoring event. This room owns the guarded-deploy protocol; it never reads or writes
storage itself, and it never decides a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from modelversions import _rules
from modelversions._loading import check_failure
from modelversions._names import check_env, check_name
from modelversions._state import ModelState
from modelversions._util import check_callable, check_flag, check_text
from modelversions.errors import InvalidInputError, VersionNotFoundError
from modelversions.records import Event, ModelVersion
from modelversions.version import Version

if TYPE_CHECKING:
    from pathlib import Path

    from modelversions._commit import Log
    from modelversions._events import DeployEvent, MarkFailedEvent, RollbackEvent

__all__ = ["Check", "Lifecycle"]

#: A deploy check: called with the loaded model; raising or returning False fails it.
Check = Callable[[Any], Any]


class Lifecycle:
    """Deploy, promote, rollback and the status marks, over the registry's log."""

    _log: Log
    _checks: dict[str, Check]

    if TYPE_CHECKING:

        def current(self, name: str, *, env: str = ...) -> ModelVersion | None: ...

        def load(
            self,
            name: str,
            version: str | Version | None = ...,
            *,
            env: str = ...,
            mmap_mode: str | None = ...,
        ) -> Any: ...

        def load_path(
            self,
            name: str,
            version: str | Version | None = ...,
            *,
            env: str = ...,
            progress: bool | Callable[[int, int], None] | None = ...,
        ) -> Path: ...

    def deploy(
        self,
        name: str,
        version: str | Version,
        *,
        env: str = "production",
        reason: str | None = None,
        force: bool = False,
        check: Check | None = None,
    ) -> ModelVersion:
        """Point ``env`` at ``version``; the replaced version, unless failed, becomes stable.

        Args:
            env: the environment (default ``production``).
            reason: recorded in history.
            force: allow deploying a ``failed`` version.
            check: called as ``check(model)`` with the loaded model (for a file or folder
                version: its path, from :meth:`load_path`) once the pointer moved
                (default: the registry's check for ``name``, if any). If it raises or returns
                ``False``, the replaced version is put back at once, the new one is marked
                failed with the check's message, and :class:`DeployCheckFailedError` raised.

        Raises:
            VersionNotFoundError: no such version.
            ForbiddenTransitionError: the version is failed and ``force`` is not set.
            ArtifactPrunedError: the version's artifact was pruned.
            DeployCheckFailedError: the check failed; the replaced version is back.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", 1); _ = reg.save("m", 2)
        >>> _ = reg.deploy("m", "1.0.0"); _ = reg.deploy("m", "1.1.0")
        >>> reg.get("m", "1.0.0").status.value
        'stable'
        """
        check_callable(check)
        event, state = self._log.commit(name, self._deploy_rule(name, version, env, reason, force))
        deployed = state.records[event.version]
        guard = check if check is not None else self._checks.get(name)
        if guard is not None:
            self._run_check(name, env, guard, deployed, event.from_version)
        return deployed

    def plan_deploy(
        self,
        name: str,
        version: str | Version,
        *,
        env: str = "production",
        reason: str | None = None,
        force: bool = False,
    ) -> Event:
        """The event :meth:`deploy` would commit now, without changing anything (a dry run).

        The deploy's rules run on the newest state, so a deploy they refuse raises the
        error :meth:`deploy` would raise. ``seq`` and ``time`` are those the event would
        get if committed now. No deploy check is run.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://")
        >>> _ = reg.save("m", 1); _ = reg.save("m", 2); _ = reg.deploy("m", "1.0.0")
        >>> print(reg.plan_deploy("m", "1.1.0").changes[0])
        1.0.0 candidate->stable
        """
        return self._log.plan(name, self._deploy_rule(name, version, env, reason, force))

    @staticmethod
    def _deploy_rule(
        name: str, version: str | Version, env: str, reason: str | None, force: bool
    ) -> partial[DeployEvent]:
        """The deploy rule for these arguments, checked (shared by deploy and plan_deploy)."""
        check_env(env)
        check_name(name)
        target = Version(version)
        check_text(reason, "reason")
        check_flag(force, "force")
        return partial(_rules.deploy, target=target, env=env, reason=reason, force=force)

    def _run_check(
        self, name: str, env: str, guard: Check, deployed: ModelVersion, before: Version | None
    ) -> None:
        """Run a deploy check; if it fails, mark ``deployed`` failed, put ``before`` back."""
        # A file or folder version is checked through its verified local path.
        load = self.load_path if deployed.format == "path" else self.load
        message = check_failure(lambda: load(name, deployed.version), guard)
        if message is None:
            return
        seen: list[Version | None] = []  # where env pointed when the event was built

        def build(state: ModelState) -> MarkFailedEvent | RollbackEvent:
            seen[:] = [state.pointers.get(env)]
            return _rules.check_failed(
                state, deployed.version, env=env, before=before, message=message
            )

        event, _state_now = self._log.commit(name, build)
        raise _rules.check_failed_error(
            event, name=name, env=env, message=message, before=before, pointer=seen[0]
        )

    def set_check(self, name: str, check: Check | None) -> None:
        """Set (or with ``None`` remove) the default deploy check of model ``name``."""
        check_name(name)
        check_callable(check, "a check")
        if check is None:
            self._checks.pop(name, None)
        else:
            self._checks[name] = check

    def promote(
        self,
        name: str,
        *,
        from_env: str = "staging",
        to_env: str = "production",
        reason: str | None = None,
        force: bool = False,
        check: Check | None = None,
    ) -> ModelVersion:
        """Deploy to ``to_env`` the version ``from_env`` runs now.

        Raises:
            NotFoundError: nothing is deployed in ``from_env``.
        """
        check_env(from_env)
        check_env(to_env)
        check_text(reason, "reason")
        check_flag(force, "force")
        check_callable(check)
        mv = self.current(name, env=from_env)
        if mv is None:
            raise VersionNotFoundError(
                f"cannot promote model {name!r}: nothing is deployed in {from_env!r}"
            )
        return self.deploy(
            name,
            mv.version,
            env=to_env,
            force=force,
            check=check,
            reason=reason or f"promoted from {from_env}",
        )

    def rollback(
        self, name: str, *, env: str = "production", reason: str | None = None
    ) -> ModelVersion:
        """Deploy the latest stable version below the deployed one; mark that one failed.

        Returns the version now deployed.

        Raises:
            NoRollbackTargetError: nothing deployed, or no stable version below it
                (the message lists the versions below and their statuses); nothing changes.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://")
        >>> for i in range(3): _ = reg.save("m", i)
        >>> for v in ("1.0.0", "1.1.0", "1.2.0"): _ = reg.deploy("m", v)
        >>> str(reg.rollback("m", reason="bad auc").version)
        '1.1.0'
        >>> reg.get("m", "1.2.0").failure_reason
        'bad auc'
        """
        check_env(env)
        check_name(name)
        check_text(reason, "reason")
        event, state = self._log.commit(name, partial(_rules.rollback, env=env, reason=reason))
        assert event.to_version is not None  # a rollback rule always names its target
        return state.records[event.to_version]

    def plan_rollback(
        self, name: str, *, env: str = "production", reason: str | None = None
    ) -> Event:
        """The event :meth:`rollback` would commit now, without changing anything.

        Raises:
            NoRollbackTargetError: as :meth:`rollback` would.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://")
        >>> for i in range(2): _ = reg.save("m", i)
        >>> for v in ("1.0.0", "1.1.0"): _ = reg.deploy("m", v)
        >>> e = reg.plan_rollback("m"); str(e.to_version), str(e.changes[0])
        ('1.0.0', '1.1.0 candidate->failed')
        """
        check_env(env)
        check_name(name)
        check_text(reason, "reason")
        return self._log.plan(name, partial(_rules.rollback, env=env, reason=reason))

    def mark_failed(
        self, name: str, version: str | Version, *, reason: str, env: str | None = None
    ) -> ModelVersion:
        """Mark a version failed; no pointer moves (a deployed one keeps serving).

        Args:
            reason: why (required, recorded on the version and in history).
            env: where it failed, if env-specific.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("mark_failed needs a reason (a non-empty str)")
        check_text(reason, "reason")
        if env is not None:
            check_env(env)
        target = Version(version)
        check_name(name)
        build = partial(_rules.mark_failed, target=target, reason=reason, env=env)
        event, state = self._log.commit(name, build)
        return state.records[event.version]

    def mark_stable(
        self, name: str, version: str | Version, *, reason: str | None = None
    ) -> ModelVersion:
        """Mark a version stable (a rollback target), overriding a failure."""
        target = Version(version)
        check_name(name)
        check_text(reason, "reason")
        build = partial(_rules.mark_stable, target=target, reason=reason)
        event, state = self._log.commit(name, build)
        return state.records[event.version]
