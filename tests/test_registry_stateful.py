"""A state machine drives the registry and a plain reference model side by side.

The reference below is written from the rules (not from the implementation): a dict of
version -> status, a pointer per env and the list of events each call must record.
After every step the registry must agree with it on versions, statuses, failure
reasons, current version per env and history; errors must happen exactly when the
reference says so, and change nothing. Steps include reopening the registry (a new
ModelRegistry on the same storage), so the stored log is checked, not only the cache.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from modelversions import (
    ForbiddenTransitionError,
    ModelNotFoundError,
    ModelRegistry,
    NoRollbackTargetError,
    VersionExistsError,
)
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend

NAME = "team/model"
ENVS = ("production", "staging")
#: Explicit versions to save; several collide (build metadata, lenient spellings).
EXPLICIT = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "1.0.0+b", "v2", "3.0", "0.5.0", "2.1.0+x"]
REASONS = st.sampled_from([None, "bad auc", "latency"])

Key = tuple[int, int, int]
#: What is compared of each event: action, version, env, from, to, forced, status changes.
EventView = tuple[
    str, str | None, str | None, str | None, str | None, bool, tuple[tuple[str, str, str], ...]
]


def parse(text: str) -> tuple[Key, str]:
    """(precedence key, canonical text) of the release versions used here."""
    core, _, build = text.lstrip("v").partition("+")
    parts = [int(p) for p in core.split(".")] + [0, 0]
    key = (parts[0], parts[1], parts[2])
    canon = ".".join(map(str, key)) + (f"+{build}" if build else "")
    return key, canon


def bump(key: Key, part: str) -> Key:
    major, minor, patch = key
    if part == "major":
        return (major + 1, 0, 0)
    if part == "minor":
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


@dataclass
class Ref:
    """The reference model: what the registry must show."""

    text: dict[Key, str] = field(default_factory=dict)  # key -> version as saved
    status: dict[Key, str] = field(default_factory=dict)
    reason: dict[Key, str | None] = field(default_factory=dict)
    pointer: dict[str, Key] = field(default_factory=dict)
    events: list[EventView] = field(default_factory=list)

    def t(self, key: Key | None) -> str | None:
        return None if key is None else self.text[key]

    def record(
        self,
        action: str,
        key: Key,
        env: str | None = None,
        frm: Key | None = None,
        to: Key | None = None,
        *,
        forced: bool = False,
        changes: tuple[tuple[Key, str, str], ...] = (),
    ) -> None:
        self.events.append(
            (
                action,
                self.text[key],
                env,
                self.t(frm),
                self.t(to),
                forced,
                tuple((self.text[k], old, new) for k, old, new in changes),
            )
        )

    def set_status(self, key: Key, new: str) -> tuple[Key, str, str]:
        old, self.status[key] = self.status[key], new
        return (key, old, new)

    def rollback_target(self, env: str) -> Key | None:
        current = self.pointer[env]
        stable = [k for k in self.text if k < current and self.status[k] == "stable"]
        return max(stable) if stable else None


class RegistryMachine(RuleBasedStateMachine):
    backend_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.folder: str | None = None
        if self.backend_kind == "local":
            self.folder = tempfile.mkdtemp(prefix="mv-stateful-")
        self.backend = self._open_backend()
        self.reg = ModelRegistry(self.backend)
        self.ref = Ref()

    def _open_backend(self) -> Backend:
        if self.folder is not None:
            return LocalBackend(self.folder)
        return MemoryBackend()

    def teardown(self) -> None:
        self.backend.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _expect(self, error: type[BaseException] | None, call: Any) -> Any:
        if error is None:
            return call()
        try:
            call()
        except error:
            return None
        raise AssertionError(f"expected {error.__name__}")

    def _fresh_model_is_not_found(self) -> None:
        try:
            self.reg.versions(NAME)
        except ModelNotFoundError:
            return
        raise AssertionError("a model exists before any save")

    # ------------------------------------------------------------------ rules
    @initialize(text=st.sampled_from([None, *EXPLICIT]))
    def first_save(self, text: str | None) -> None:
        self._fresh_model_is_not_found()
        if text is None:
            self.save_auto("minor", True)
        else:
            self.save_explicit(text)

    @rule(part=st.sampled_from(["major", "minor", "patch"]), default=st.booleans())
    def save_auto(self, part: str, default: bool) -> None:
        ref = self.ref
        key = bump(max(ref.text), part if not default else "minor") if ref.text else (1, 0, 0)
        mv = (
            self.reg.save(NAME, {"k": key})
            if default
            else self.reg.save(NAME, {"k": key}, bump=part)
        )
        assert mv.version.release == key
        ref.text[key] = ".".join(map(str, key))
        ref.status[key] = "candidate"
        ref.reason[key] = None
        ref.record("save", key)

    @rule(text=st.sampled_from(EXPLICIT))
    def save_explicit(self, text: str) -> None:
        key, canon = parse(text)
        ref = self.ref
        if key in ref.text:
            event("save: VersionExistsError")
            self._expect(VersionExistsError, lambda: self.reg.save(NAME, {"k": key}, text))
            return
        mv = self.reg.save(NAME, {"k": key}, text)
        assert str(mv.version) == canon
        ref.text[key] = canon
        ref.status[key] = "candidate"
        ref.reason[key] = None
        ref.record("save", key)

    @rule(data=st.data(), env=st.sampled_from(ENVS), force=st.booleans(), reason=REASONS)
    def deploy(self, data: st.DataObject, env: str, force: bool, reason: str | None) -> None:
        key = data.draw(st.sampled_from(sorted(self.ref.text)), label="version")
        self._deploy(key, env, force=force, reason=reason)

    def _deploy(self, key: Key, env: str, *, force: bool, reason: str | None) -> None:
        ref = self.ref
        version = ref.text[key]
        if ref.status[key] == "failed" and not force:
            event("deploy: ForbiddenTransitionError")
            self._expect(
                ForbiddenTransitionError,
                lambda: self.reg.deploy(NAME, version, env=env, reason=reason),
            )
            return
        if ref.status[key] == "failed":
            event("deploy: forced")
        self.reg.deploy(NAME, version, env=env, force=force, reason=reason)
        forced = ref.status[key] == "failed"
        before = ref.pointer.get(env)
        changes = []
        if before is not None and before != key and ref.status[before] == "candidate":
            changes.append(ref.set_status(before, "stable"))
        ref.pointer[env] = key
        ref.record("deploy", key, env, before, key, forced=forced, changes=tuple(changes))

    @rule(env=st.sampled_from(ENVS))
    def release_next(self, env: str) -> None:
        """The usual flow: deploy the next version above the current one (or the lowest)."""
        ref = self.ref
        current = ref.pointer.get(env)
        above = [k for k in sorted(ref.text) if current is None or k > current]
        healthy = [k for k in above if ref.status[k] != "failed"]
        key = (healthy or above or sorted(ref.text))[0]
        self._deploy(key, env, force=True, reason="release")

    @rule(data=st.data(), env=st.sampled_from(ENVS), force=st.booleans())
    def deploy_failed(self, data: st.DataObject, env: str, force: bool) -> None:
        """Try to deploy a failed version (refused without force), if there is one."""
        failed = sorted(k for k, s in self.ref.status.items() if s == "failed")
        if failed:
            key = data.draw(st.sampled_from(failed), label="failed version")
            self._deploy(key, env, force=force, reason=None)

    @rule(data=st.data(), env=st.sampled_from((None, *ENVS)), reason=st.sampled_from(["x", "y"]))
    def mark_failed(self, data: st.DataObject, env: str | None, reason: str) -> None:
        ref = self.ref
        key = data.draw(st.sampled_from(sorted(ref.text)), label="version")
        self.reg.mark_failed(NAME, ref.text[key], reason=reason, env=env)
        change = ref.set_status(key, "failed")
        ref.reason[key] = reason
        ref.record("mark_failed", key, env, changes=(change,))

    @rule(data=st.data())
    def mark_stable(self, data: st.DataObject) -> None:
        ref = self.ref
        key = data.draw(st.sampled_from(sorted(ref.text)), label="version")
        self.reg.mark_stable(NAME, ref.text[key])
        change = ref.set_status(key, "stable")
        ref.reason[key] = None
        ref.record("mark_stable", key, changes=(change,))

    @rule(env=st.sampled_from(ENVS), reason=REASONS)
    def rollback(self, env: str, reason: str | None) -> None:
        self._rollback(env, reason)

    @rule(env=st.sampled_from(ENVS))
    def bad_release(self, env: str) -> None:
        """Release the next version, find an issue, roll back."""
        self.release_next(env)
        self._rollback(env, "issue found")

    def _rollback(self, env: str, reason: str | None) -> None:
        ref = self.ref
        target = ref.rollback_target(env) if env in ref.pointer else None
        if target is None:
            event("rollback: NoRollbackTargetError")
            self._expect(NoRollbackTargetError, lambda: self.reg.rollback(NAME, env=env))
            return
        event("rollback: done")
        mv = self.reg.rollback(NAME, env=env, reason=reason)
        assert mv.version.release == target
        current = ref.pointer[env]
        changes = []
        if ref.status[current] != "failed":
            changes.append(ref.set_status(current, "failed"))
            ref.reason[current] = reason or f"rolled back in {env}"
        ref.pointer[env] = target
        ref.record("rollback", target, env, current, target, changes=tuple(changes))

    @rule()
    def reopen(self) -> None:
        if self.folder is not None:
            self.backend.close()
            self.backend = self._open_backend()
        self.reg = ModelRegistry(self.backend)

    # ------------------------------------------------------------------ checks
    @invariant()
    def registry_agrees_with_reference(self) -> None:
        ref = self.ref
        if not ref.events:
            self._fresh_model_is_not_found()
            return
        versions = self.reg.versions(NAME)
        assert [str(mv.version) for mv in versions] == [ref.text[k] for k in sorted(ref.text)]
        assert {str(mv.version): mv.status.value for mv in versions} == {
            ref.text[k]: s for k, s in ref.status.items()
        }
        assert {str(mv.version): mv.failure_reason for mv in versions} == {
            ref.text[k]: r for k, r in ref.reason.items()
        }
        for env in ENVS:
            current = self.reg.current(NAME, env=env)
            assert (None if current is None else str(current.version)) == ref.t(
                ref.pointer.get(env)
            ), env
        history = self.reg.history(NAME)
        got = [
            (
                e.action,
                None if e.version is None else str(e.version),
                e.env,
                None if e.from_version is None else str(e.from_version),
                None if e.to_version is None else str(e.to_version),
                e.forced,
                tuple((str(c.version), c.old.value, c.new.value) for c in e.changes),
            )
            for e in history
        ]
        assert got == ref.events
        assert [e.seq for e in history] == list(range(1, len(history) + 1))


SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None)


class LocalMachine(RegistryMachine):
    backend_kind = "local"


class MemoryMachine(RegistryMachine):
    backend_kind = "memory"


TestRegistryStateMachineLocal = LocalMachine.TestCase
TestRegistryStateMachineLocal.settings = SETTINGS
TestRegistryStateMachineMemory = MemoryMachine.TestCase
TestRegistryStateMachineMemory.settings = SETTINGS
