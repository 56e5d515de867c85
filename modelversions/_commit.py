"""The log of each model: reading its state, and the compare-and-swap that appends to it.

Every change is one event appended to the model's history log with an atomic
create-if-absent of ``@log/<seq>``: the writer that creates entry ``N+1`` is the one
that saw entries ``1..N``, so the log is a compare-and-swap on the model's whole state.
Losers re-read and retry. A save's artifact is written (and made durable) before its
entry, so no reader ever sees a version without its artifact.

:class:`Log` owns the backend handle, the lock, the cached states and history entries,
and who writes (user, host). It decides nothing: the events it appends come from the
rules (:mod:`modelversions._rules`). It never loads a model, and never deletes anything
but snapshots it has superseded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol

from modelversions import _moves, _state
from modelversions._names import check_name
from modelversions._snapshots import Snapshots
from modelversions._state import ModelState
from modelversions._util import host_name, login_name, now, storage
from modelversions.backends import Backend
from modelversions.errors import (
    ConcurrentUpdateError,
    IntegrityError,
    ModelNotFoundError,
    ModelVersionsError,
    StorageError,
)
from modelversions.records import Event, _ts

if TYPE_CHECKING:
    from modelversions._events import E, Payload
    from modelversions.signing import Guard


class Artifact(Protocol):
    """What a save stores (:mod:`modelversions._saving`): a serialized object or a path."""

    def write(self, backend: Backend, name: str) -> tuple[str, int, bool]:
        """Store it; return the sha256 and size the record keeps, and whether it was new."""

    def ensure(self, backend: Backend, name: str, sha256: str, created: bool) -> None:
        """After the commit: store again what a concurrent prune removed meanwhile."""


# Marks a cached history entry written before the hash chain (it has no "prev").
_UNCHAINED = object()


class Log(Snapshots):
    """The models' logs in one backend, as one registry object sees them."""

    def __init__(
        self,
        backend: Backend,
        *,
        user: str | None,
        max_retries: int,
        guard: Guard | None = None,
    ) -> None:
        self.backend = backend
        # Signing keys and pinned heads (modelversions.signing); None: neither is set.
        self.guard = guard
        self._user = user  # None: the login name, looked up by the first write
        self.host = host_name()
        self.max_retries = max_retries
        self.lock = threading.RLock()
        self.states: dict[str, ModelState] = {}
        # Per model: seq -> (event, sha256 of the entry's bytes, its "prev" or _UNCHAINED).
        self.events: dict[str, dict[int, tuple[Event, str, object]]] = {}

    @property
    def user(self) -> str:
        """Who writes: the ``user=`` given, else the login name (see ``login_name``)."""
        if self._user is None:
            self._user = login_name()
        return self._user

    # ------------------------------------------------------------------ state reading
    def refresh(self, name: str) -> ModelState:
        """Bring the cached state of ``name`` up to the newest committed event."""
        state = self.states.get(name)
        first = state is None
        if state is None:
            state = self._load_snapshot(name)
            if self.guard is not None:
                self.guard.start(state)
        while True:
            key = _state.log_key(name, state.seq + 1)
            try:
                with storage(f"reading {key}"):
                    data = self.backend.read(key)
            except FileNotFoundError:
                if first and self._gap_after(name, state.seq):
                    continue  # a writer committed the missing entry meanwhile: read on
                break
            payload, sha = _state.decode(data, key), _state.entry_sha256(data)
            if self.guard is None:
                state.apply(payload, sha256=sha)
            else:
                self.guard.apply(state, payload, key, sha)
        if first:  # cached only once whole: a damaged history is refused on every read
            self.states[name] = state
        if self.guard is not None:  # an unsigned entry or a head behind its pin: refused
            try:
                self.guard.finish(state, self.backend.read)
            except IntegrityError:
                self.states.pop(name, None)  # holds what was refused: read anew next time
                raise
        return state

    def _gap_after(self, name: str, seq: int) -> bool:
        """Entry ``seq + 1`` was not found: raise IntegrityError if ``seq + 2`` exists.

        One probe, on a model's first read: catches a deleted entry (verify() finds
        every gap). Returns True if entry ``seq + 1`` appeared since (no gap).
        """
        with storage(f"reading the history of {name!r}"):
            if not self.backend.exists(_state.log_key(name, seq + 2)):
                return False
            if self.backend.exists(_state.log_key(name, seq + 1)):
                return True  # both were committed after the first read
        raise IntegrityError(
            f"history entry {_state.log_key(name, seq + 1)} is missing but a later one "
            f"exists: the history of model {name!r} has a gap (run verify())"
        )

    def existing(self, name: str) -> ModelState:
        """The newest state of model ``name``; ModelNotFoundError if it has no history."""
        check_name(name)
        with self.lock:
            state = self.refresh(name)
        if state.seq == 0:
            raise ModelNotFoundError(self.not_found_message(name))
        return state

    def models(self) -> list[str]:
        """Names of the models that have at least one history entry, sorted."""
        with storage("listing models"):
            keys = self.backend.list("index/")
        names = [k[len("index/") : -len("/@model")] for k in keys if k.endswith("/@model")]
        out = []
        for name in names:
            with storage(f"checking model {name!r}"):
                if (name in self.states and self.states[name].seq > 0) or self.backend.exists(
                    _state.log_key(name, 1)
                ):
                    out.append(name)
        return sorted(out)

    def not_found_message(self, name: str) -> str:
        try:
            known = self.models()
        except ModelVersionsError:
            known = []
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        return f"no model {name!r} in {self.backend.url}; models: {shown or '(none)'}"

    def history(self, name: str, start: int) -> list[Event]:
        """Every event of ``name`` from ``start`` on, checked against the hash chain."""
        state = self.existing(name)
        with self.lock:
            events = self.events.setdefault(name, {})
            out = []
            # The sha256 of the entry before `seq`, when known (None before entry 1).
            before = events[start - 1][1] if start - 1 in events else None
            for seq in range(start, state.seq + 1):
                key = _state.log_key(name, seq)
                cached = events.get(seq)
                if cached is None:
                    with storage(f"reading {key}"):
                        try:
                            data = self.backend.read(key)
                        except FileNotFoundError as exc:
                            raise IntegrityError(f"history entry {key} is missing") from exc
                    payload = _state.decode(data, key)
                    prev = payload.get("prev", _UNCHAINED)
                    event = _state.event_from_payload(payload, state._version)
                    cached = (event, _state.entry_sha256(data), prev)
                event, sha, prev = cached
                if prev is not _UNCHAINED and (seq == 1 or before is not None) and prev != before:
                    raise IntegrityError(
                        f"history entry {_state.log_key(name, seq - 1)} was replaced or "
                        f"damaged: {key} records its sha256 as {prev}, it is {before} "
                        "(broken hash chain; run verify())"
                    )
                events[seq] = cached
                before = sha
                out.append(event)
            if start <= state.seq and state.head_sha256 is not None and before != state.head_sha256:
                raise IntegrityError(
                    f"history entry {_state.log_key(name, state.seq)} has sha256 {before}, "
                    f"not the {state.head_sha256} this registry's state was built from"
                )
        return out

    # ------------------------------------------------------------------ committing
    def _next_entry(
        self,
        name: str,
        build: Callable[[ModelState], E],
        *,
        new_model: bool = False,
        cached: bool = False,
    ) -> tuple[E, Payload, ModelState]:
        """The next event of ``name``, built from its newest state (caller holds the lock).

        Unless ``new_model``, a model without history raises ModelNotFoundError.
        ``cached``: build from the cached state without probing for newer entries (the
        caller refreshed it moments ago; the create-if-absent of the entry refuses it
        if another writer committed since, and the retry refreshes).
        """
        state = self.states.get(name) if cached else None
        if state is None:
            state = self.refresh(name)
        if state.seq == 0 and not new_model:
            raise ModelNotFoundError(self.not_found_message(name))
        event = build(state)
        payload = event.payload()
        payload["schema"] = _state.SCHEMA
        payload["seq"] = state.seq + 1
        payload["time"] = _ts(now())
        payload["name"] = name
        payload["user"] = self.user
        payload["host"] = self.host
        return event, payload, state

    def plan(self, name: str, build: Callable[[ModelState], E]) -> Event:
        """The event ``build`` makes from the newest state, not committed."""
        with self.lock:
            _event, payload, _now = self._next_entry(name, build)
        return _state.event_from_payload(payload)

    def commit(
        self,
        name: str,
        build: Callable[[ModelState], E],
        *,
        new_model: bool = False,
        refreshed: bool = False,
    ) -> tuple[E, ModelState]:
        """Append one event computed by ``build`` from the newest state; retry on races.

        ``refreshed``: the caller has just refreshed the state; the first attempt builds
        from it without probing again (a lost race costs one retry, as ever).
        """
        delay = 0.0005
        for attempt in range(self.max_retries):
            with self.lock:
                event, payload, state = self._next_entry(
                    name, build, new_model=new_model, cached=refreshed and attempt == 0
                )
                if state.seq == 0 or state.head_sha256 is not None:
                    payload["prev"] = state.head_sha256  # chains this entry to the last
                key = _state.log_key(name, payload["seq"])
                if self.guard is None:
                    data = _state.encode(payload)
                else:
                    data = self.guard.encode_entry(payload)
                try:
                    self.backend.create(key, data)
                except FileExistsError:
                    pass  # another writer committed entry `seq` first: re-read and retry
                except OSError as exc:
                    raise StorageError(self._commit_failed(key, data, exc)) from exc
                else:
                    sha = _state.entry_sha256(data)
                    state.apply(payload, sha256=sha)
                    if self.guard is not None:
                        self.guard.applied_own(state, payload, sha)
                    if self.snapshot_due(state):
                        self._write_snapshot(state)
                        _moves.write(self, state)  # the timeline's cache, same cadence
                    return event, state
            import random  # only a lost race needs it

            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.05)
        raise ConcurrentUpdateError(
            f"gave up changing model {name!r} after {self.max_retries} attempts: other "
            "writers kept committing first; nothing was changed by this call"
        )

    def _commit_failed(self, key: str, data: bytes, exc: OSError) -> str:
        try:
            landed = self.backend.read(key) == data
        except FileNotFoundError:
            landed = False
        except OSError as again:
            return (
                f"could not write {key}: {exc}; reading it back failed too ({again}), so the "
                "change may have been published: check history() before retrying"
            )
        if landed:
            return (
                f"the change was published as {key} but the storage then failed ({exc}); "
                "it is visible to readers, its durability is not confirmed"
            )
        return f"could not write {key}: {exc}; nothing was changed"

    def save(
        self,
        name: str,
        artifact: Artifact,
        check: Callable[[ModelState], object],
        rule: Callable[[str, int], Callable[[ModelState], E]],
    ) -> tuple[E, ModelState]:
        """Store ``artifact``, then commit the event ``rule(sha256, size)`` builds.

        ``check`` runs first on the newest state (e.g. the version choice): a refusal
        then leaves nothing behind; the commit runs the rule again on the newest state.
        """
        if self.guard is not None:
            self.guard.check_writable()  # before an artifact is written
        with self.lock:
            state = self.refresh(name)
            check(state)
            is_new = state.seq == 0
        sha256, size, created = self._write_artifact(name, artifact)
        if is_new:
            with storage(f"registering model {name!r}"), suppress(FileExistsError):
                self.backend.create(_state.index_key(name), b"{}")
        event, state = self.commit(name, rule(sha256, size), new_model=True, refreshed=True)
        with storage(f"checking the artifact of {name!r}"):
            artifact.ensure(self.backend, name, sha256, created)
        return event, state

    def _write_artifact(self, name: str, artifact: Artifact) -> tuple[str, int, bool]:
        """Store the artifact; return its sha256, size and whether it was new."""
        what = f"writing an artifact of {name!r}"
        try:
            with storage(what):
                return artifact.write(self.backend, name)
        except (FileNotFoundError, FileExistsError) as exc:
            # e.g. its temporary removed under it: nothing was stored, say so as a
            # StorageError (VersionExistsError and the like are not OSErrors here).
            if isinstance(exc, ModelVersionsError):
                raise
            raise StorageError(f"storage failed while {what}: {exc}; nothing was saved") from exc
