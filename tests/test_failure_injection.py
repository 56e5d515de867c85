"""I/O failures at every step of a save, deploy and rollback on a local folder.

For each operation, one clean run counts the local backend's I/O calls (``os.open``,
``os.write``, ``os.fsync``, ``os.link``, ``os.mkdir`` ..., the builtin ``open`` and
the buffered file's ``write``/``flush``; see :class:`_workers.IOTrap`). Then, for
every ``k``, the operation runs again on a fresh copy of the same folder with call
``k`` raising ``OSError(EIO)``. Whatever ``k`` is:

* the operation fails with :class:`StorageError` (an ``OSError`` and a
  ``ModelVersionsError``) whose message says what it was doing, the injected error
  chained;
* the listing and the deployed versions are as before, in this registry object and
  in a new one; nothing is left in ``<root>/.tmp``; ``verify()`` is ok;
* the same operation without injection then succeeds.

One exception, by design: a failure of the folder ``fsync`` *after* the ``os.link``
that published the history entry. The change is visible to every process by then
and cannot be taken back safely, so the error says it was published and its
durability is not confirmed, and the registry holds the change. Failures while
writing a snapshot (a cache, written after the commit) only warn.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _workers
import pytest

from modelversions import ModelRegistry, ModelVersionsError, StorageError

Op = Callable[[ModelRegistry], Any]


def _template(root: Path, name: str) -> None:
    reg = ModelRegistry(root)
    if name == "m":
        for i in range(4):
            reg.save("m", {"i": i})
        for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
            reg.deploy("m", v)
        reg.deploy("m", "1.0.0", env="staging")
    else:  # one event short of a snapshot (written every 64 events)
        reg.save(name, {"s": 0})
        reg.save(name, {"s": 1})
        for i in range(61):
            reg.deploy(name, ("1.0.0", "1.1.0")[i % 2])


# name: (model, template, operation)
OPS: dict[str, tuple[str, str, Op]] = {
    "save": ("m", "m", lambda reg: reg.save("m", {"i": 99}, metrics={"auc": 0.5})),
    "save-new-model": ("n", "m", lambda reg: reg.save("n", {"n": 1})),
    "deploy": ("m", "m", lambda reg: reg.deploy("m", "1.1.0", reason="injected")),
    "rollback": ("m", "m", lambda reg: reg.rollback("m", reason="injected")),
    "deploy-with-snapshot": ("s", "s", lambda reg: reg.deploy("s", "1.0.0")),
}


@dataclasses.dataclass(frozen=True)
class Seen:
    """What readers see of a model: its versions and env pointers."""

    versions: tuple[tuple[str, str, str, bool], ...]
    envs: tuple[tuple[str, str], ...]


def seen(reg: ModelRegistry, name: str) -> Seen | None:
    if name not in reg.models():
        return None
    return Seen(
        tuple(
            (str(mv.version), mv.status.value, mv.sha256, mv.pruned) for mv in reg.versions(name)
        ),
        tuple((env, str(mv.version)) for env, mv in reg.envs(name).items()),
    )


def log_link(trace: list[tuple[str, str]]) -> int:
    """The index of the ``os.link`` that published the history entry."""
    return max(i for i, (call, path) in enumerate(trace) if call == "link" and "/@log/" in path)


def phases(trace: list[tuple[str, str]]) -> list[str]:
    """For each call of a clean run: what a failure there must do.

    ``before``: up to and including the link of the history entry; nothing changes.
    ``published``: the folder fsync right after it; the change stays, the error says so.
    ``after``: later calls (a snapshot); the operation succeeds with a warning.
    """
    link = log_link(trace)
    log_dir = trace[link][1].split(" -> ")[1].rsplit("/", 1)[0]
    fsynced = next(i for i in range(link, len(trace)) if trace[i] == ("fsync", log_dir))
    return [
        "before" if i <= link else "published" if i <= fsynced else "after"
        for i in range(len(trace))
    ]


def assert_artifact_durable_before_commit(trace: list[tuple[str, str]], where: str) -> None:
    """A save fsyncs the artifact's folder before it links the entry that uses it.

    Also when the artifact was already there (stored by an earlier save that failed
    after publishing it, or by another writer): its folder entry may not be durable.
    """
    folders = {path for call, path in trace[: log_link(trace)] if call == "fsync"}
    assert any(f.endswith("/@artifacts") for f in folders), f"{where}: {trace}"


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("templates")
    for name in ("m", "s"):
        _template(base / name, name)
    return {name: base / name for name in ("m", "s")}


@pytest.mark.parametrize("op_name", sorted(OPS))
def test_io_failure_at_every_call(templates: dict[str, Path], tmp_path: Path, op_name: str) -> None:
    name, template_name, op = OPS[op_name]
    template = templates[template_name]
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    reg = ModelRegistry(clean)
    seen(reg, name)  # the injected runs read the state first too: same calls
    with _workers.IOTrap() as trap:
        op(reg)
    expected_after = seen(ModelRegistry(clean), name)
    expected_phases = phases(trace := trap.trace)
    if os.environ.get("SHOW_TRACE"):
        for call, phase in zip(trace, expected_phases, strict=True):
            print(op_name, phase, *call)
    assert {c for c, _ in trace} >= {"open", "write", "fsync", "link"}
    if op_name == "save-new-model":
        assert "mkdir" in {c for c, _ in trace}
    if op_name == "save":
        assert {"file.write", "file.flush"} <= {c for c, _ in trace}
    if op_name.startswith("save"):
        assert_artifact_durable_before_commit(trace, op_name)
    if op_name == "deploy-with-snapshot":
        assert "after" in expected_phases and any("/@snapshots" in p for _, p in trace)

    for k, phase in enumerate(expected_phases, start=1):
        where = f"{op_name}: failure at call {k} of {len(trace)}: {trace[k - 1]} ({phase})"
        root = tmp_path / f"k{k}"
        shutil.copytree(template, root)
        reg = ModelRegistry(root)
        before = seen(reg, name)
        error: BaseException | None = None
        with warnings.catch_warnings(record=True) as warned, _workers.IOTrap(k) as trap:
            warnings.simplefilter("always")
            try:
                op(reg)
            except BaseException as exc:
                error = exc
        assert trap.fired is not None and trap.fired[0] == trace[k - 1][0], where
        assert os.listdir(root / ".tmp") == [], where

        if phase == "after":
            assert error is None, f"{where}: {error!r}"
            assert any("snapshot" in str(w.message) for w in warned), where
        else:
            assert isinstance(error, StorageError), f"{where}: {error!r}"
            assert isinstance(error, OSError) and isinstance(error, ModelVersionsError)
            assert "injected failure" in str(error.__cause__), where
            message = str(error)
            if phase == "published":
                assert "was published" in message, where
                assert "durability is not confirmed" in message, where
            else:
                assert "was published" not in message, where
                assert "while" in message or "nothing was changed" in message, where
        now = expected_after if phase != "before" else before
        assert seen(reg, name) == now, where
        assert seen(ModelRegistry(root), name) == now, where
        report = ModelRegistry(root).verify()
        assert report.ok, f"{where}\n{report}"
        assert {p.kind for p in report.problems} <= {"orphan-artifact"}, f"{where}\n{report}"

        # The same registry object carries on without injection.
        with _workers.IOTrap() as rerun:
            op(reg)
        if op_name.startswith("save"):
            assert_artifact_durable_before_commit(rerun.trace, where)
        assert ModelRegistry(root).verify().ok, where
        assert os.listdir(root / ".tmp") == [], where


@pytest.mark.parametrize("op_name", ["deploy", "rollback"])
def test_unknown_outcome_is_not_reported_as_nothing_changed(
    templates: dict[str, Path], tmp_path: Path, op_name: str
) -> None:
    """The folder fsync after the link fails, and so does reading the entry back.

    The registry cannot tell whether its change was published; it must not claim
    that nothing changed (retrying a rollback on that word would roll back twice).
    """
    name, template_name, op = OPS[op_name]
    clean = tmp_path / "clean"
    shutil.copytree(templates[template_name], clean)
    reg = ModelRegistry(clean)
    seen(reg, name)
    with _workers.IOTrap() as trap:
        op(reg)
    phase = phases(trap.trace)
    k = phase.index("published") + 1  # the first call after the history entry's link
    root = tmp_path / "k"
    shutil.copytree(templates[template_name], root)
    reg = ModelRegistry(root)
    seen(reg, name)
    # Every call from k on fails: the fsync, then the read-back of the entry.
    with _workers.IOTrap(k, also=frozenset(range(k, k + 50))), pytest.raises(StorageError) as info:
        op(reg)
    message = str(info.value)
    assert "nothing was changed" not in message
    assert "may have been published" in message
    assert seen(ModelRegistry(root), name) == seen(ModelRegistry(clean), name)  # it was
