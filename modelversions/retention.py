"""Retention: prune old artifacts, delete versions, and collect the artifacts they free.

The choice of what goes is a rule (:func:`modelversions._rules.prune_victims`,
:func:`~modelversions._rules.delete`): never a deployed version, never a version some env
would roll back to. This module commits that choice, then deletes the artifacts no
unpruned version references any more, re-reading the newest state right before each
delete. It never deletes a record or a history entry (``prune`` flags versions, ``delete``
appends an event), and never an artifact that no committed version ever referenced: that
may belong to a save still in flight, and is left to ``verify(repair=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from modelversions import _rules, _state
from modelversions._commit import Log
from modelversions._names import check_name
from modelversions._state import ModelState
from modelversions._util import check_flag, check_int, check_text, storage
from modelversions._values import EMPTY
from modelversions.errors import IntegrityError
from modelversions.records import ModelVersion
from modelversions.version import Version

if TYPE_CHECKING:
    from modelversions._events import DeleteEvent, PruneEvent


def commit_prune(
    log: Log, name: str, *, keep: int, reason: str | None, dry_run: bool
) -> list[ModelVersion]:
    """Prune ``name`` down to its newest ``keep`` versions; return the pruned ones."""
    if dry_run:
        with log.lock:
            state = log.refresh(name)
            return [state.records[v] for v in _rules.prune_victims(state, keep)]

    def build(state: ModelState) -> PruneEvent:
        return _rules.prune(state, keep=keep, reason=reason)

    event, state = log.commit(name, build)
    with log.lock:
        shas = {mv.sha256 for mv in state.records.values() if mv.pruned}
        paths = {mv.sha256: mv for mv in state.records.values() if mv.pruned}
    collect_artifacts(log, name, shas, paths=paths)
    return [state.records[v] for v in event.pruned]


def commit_delete(log: Log, name: str, target: Version, *, reason: str | None) -> None:
    """Delete version ``target`` of ``name`` and, if no other version uses it, its artifact."""

    def build(state: ModelState) -> DeleteEvent:
        return _rules.delete(state, target, reason=reason)

    event, _state_now = log.commit(name, build)
    collect_artifacts(log, name, [event.record.sha256], paths={event.record.sha256: event.record})


def collect_artifacts(
    log: Log, name: str, candidates: Iterable[str], *, paths: Mapping[str, ModelVersion] = EMPTY
) -> None:
    """Delete the artifacts among ``candidates`` (sha256s) no unpruned version uses.

    Only artifacts of pruned or deleted versions are candidates: an artifact that no
    committed version references may belong to a save still in flight (its record
    is committed after its artifact), so it is left to ``verify(repair=True)``.
    ``paths``: the records of the candidates; the files a path version's manifest
    lists go too unless a kept version lists them (:mod:`modelversions.serializers._files`).
    """
    from modelversions.serializers import _files

    removed = []
    for sha in sorted(set(candidates)):
        # Re-read right before each delete: a save committed meanwhile may reuse it.
        with log.lock:
            state = log.refresh(name)
            if sha in state.referenced_artifacts():
                continue
        mv = paths.get(sha)
        with storage(f"collecting artifacts of {name!r}"):
            if mv is not None and mv.format == "path":
                with suppress(FileNotFoundError, IntegrityError):
                    removed.append(_files.read_manifest(log.backend, mv))
            log.backend.delete(_state.artifact_key(name, sha))
    if removed:
        with log.lock:
            records = list(log.refresh(name).records.values())
        with storage(f"collecting files of {name!r}"):
            _files.collect_files(log.backend, name, removed, records)


class Retention:
    """``prune`` and ``delete``: the retention half of :class:`~modelversions.ModelRegistry`."""

    _log: Log

    def prune(
        self, name: str, *, keep: int, reason: str | None = None, dry_run: bool = False
    ) -> list[ModelVersion]:
        """Delete the artifacts of versions older than the newest ``keep``.

        Never prunes a deployed version or a version some env would roll back to.
        Records and history stay; the versions are flagged ``pruned``. Artifacts shared
        with kept versions (same sha256) stay too. Returns the versions pruned (with
        ``dry_run=True``: that would be pruned now, changing nothing).
        """
        check_int(keep, "keep", 0)
        check_name(name)
        check_text(reason, "reason")
        check_flag(dry_run, "dry_run")
        return commit_prune(self._log, name, keep=keep, reason=reason, dry_run=dry_run)

    def delete(self, name: str, version: str | Version, *, reason: str | None = None) -> None:
        """Remove a version (record and, if unshared, artifact); history keeps its events.

        Its version number stays used: a later ``save`` never gives it out again, and an
        explicit ``save`` of it raises :class:`VersionExistsError`.

        Raises:
            ForbiddenTransitionError: the version is deployed in some env.
        """
        target = Version(version)
        check_name(name)
        check_text(reason, "reason")
        commit_delete(self._log, name, target, reason=reason)
