"""Code that runs in child processes for the concurrency and crash tests.

Children are started with the ``spawn`` or ``forkserver`` context (never ``fork``:
the parent runs threads), so everything they run must be importable by name:
module-level functions here. :func:`run_together` starts one process per argument
tuple, lines them up on a barrier so they really race, and returns their results or
raises with every child's traceback.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import multiprocessing
import os
import queue as queue_module
import random
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from modelversions import (
    ForbiddenTransitionError,
    ModelRegistry,
    NoRollbackTargetError,
    VersionExistsError,
)

#: How long the parent waits for children before calling it a hang (a guard, not a measure).
HANG_GUARD = 300.0


def _entry(
    queue: Any, index: int, barrier: Barrier, target: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    try:
        result = target(barrier, *args)
    except BaseException:
        queue.put((index, False, traceback.format_exc()))
        barrier.abort()  # release siblings waiting on the barrier
    else:
        queue.put((index, True, result))


def run_together(target: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(barrier, *a)`` in one spawned process per ``a``; return the results.

    ``target`` must call ``barrier.wait()`` once it is ready to race. A child that dies
    without reporting fails the call at once (no waiting for the hang guard).
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(len(args))
    procs = [
        ctx.Process(target=_entry, args=(queue, i, barrier, target, a)) for i, a in enumerate(args)
    ]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    failures: list[str] = []
    deadline = time.monotonic() + HANG_GUARD
    try:
        while len(results) + len(failures) < len(procs):
            try:
                index, ok, value = queue.get(timeout=0.2)
            except queue_module.Empty:
                died = [i for i, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if died or time.monotonic() > deadline:
                    codes = {i: procs[i].exitcode for i in range(len(procs))}
                    failures.append(f"children died or hung without reporting: {codes}")
                    break
                continue
            if ok:
                results[index] = value
            else:
                failures.append(f"--- child {index}:\n{value}")
    finally:
        for p in procs:
            p.join(timeout=HANG_GUARD)
            if p.is_alive():
                p.kill()
                p.join()
    if failures:
        raise AssertionError("child processes failed:\n" + "\n".join(failures))
    return [results[i] for i in range(len(procs))]


# ---------------------------------------------------------------------- saves
def save_many(barrier: Barrier, root: str, name: str, n: int, tag: int) -> list[str]:
    """Save ``n`` distinct small models with automatic versions; return the versions."""
    reg = ModelRegistry(root)
    barrier.wait()
    out = []
    for i in range(n):
        out.append(str(reg.save(name, {"tag": tag, "i": i}, tags={"tag": tag, "i": i}).version))
    return out


def race_explicit(barrier: Barrier, root: str, name: str, rounds: int, tag: int) -> list[bool]:
    """In each round, every process saves version ``<round>.0.0``; return who won."""
    reg = ModelRegistry(root)
    won = []
    for r in range(1, rounds + 1):
        barrier.wait()
        try:
            reg.save(name, {"round": r, "tag": tag}, f"{r}.0.0", tags={"tag": tag})
        except VersionExistsError:
            won.append(False)
        else:
            won.append(True)
    barrier.wait()
    return won


# ---------------------------------------------------------------------- lifecycle
EXPECTED_REFUSALS = (ForbiddenTransitionError, NoRollbackTargetError)


def lifecycle_ops(
    barrier: Barrier, root: str, name: str, n: int, seed: int, envs: tuple[str, ...]
) -> dict[str, int]:
    """Random deploy / mark_failed / rollback; return how often each outcome happened.

    A few ``mark_stable`` keep rollback targets around (without them every version
    ends up failed and most rollbacks are refused). Refusals the rules make (deploying
    a failed version without force, nothing to roll back to) are expected and counted;
    anything else fails the child.
    """
    reg = ModelRegistry(root)
    rng = random.Random(seed)
    versions = [str(mv.version) for mv in reg.versions(name)]
    counts: dict[str, int] = {}
    ops = ("deploy", "mark_failed", "rollback", "mark_stable")
    barrier.wait()
    for _ in range(n):
        env = rng.choice(envs)
        op = rng.choices(ops, weights=(5, 1, 4, 2))[0]
        try:
            if op == "deploy":
                force = rng.random() < 0.2
                reg.deploy(name, rng.choice(versions), env=env, force=force)
                op += "-forced" if force else ""
            elif op == "mark_failed":
                reg.mark_failed(name, rng.choice(versions), reason=f"pid {os.getpid()}", env=env)
            elif op == "rollback":
                reg.rollback(name, env=env, reason=f"pid {os.getpid()}")
            else:
                reg.mark_stable(name, rng.choice(versions), reason=f"pid {os.getpid()}")
        except EXPECTED_REFUSALS as exc:
            op += f" refused ({type(exc).__name__})"
        counts[op] = counts.get(op, 0) + 1
    return counts


def flip_pointer(barrier: Barrier, root: str, name: str, n: int, seed: int) -> int:
    """Deploy (forced) and roll back ``n`` times; re-stabilize when nothing is below."""
    reg = ModelRegistry(root)
    rng = random.Random(seed)
    versions = [str(mv.version) for mv in reg.versions(name)]
    barrier.wait()
    moves = 0
    for _ in range(n):
        if rng.random() < 0.5:
            reg.deploy(name, rng.choice(versions), force=True)
            moves += 1
            continue
        try:
            reg.rollback(name, reason="flip")
            moves += 1
        except NoRollbackTargetError:
            reg.mark_stable(name, rng.choice(versions[:3]))
    return moves


def read_loop(
    barrier: Barrier, root: str, name: str, stop: Event, expected: dict[str, Any]
) -> dict[str, Any]:
    """Read ``current()`` and ``load()`` until ``stop``; collect every exception."""
    reg = ModelRegistry(root)
    errors: list[str] = []
    iterations = 0
    barrier.wait()
    while not stop.is_set() or iterations == 0:
        iterations += 1
        if iterations % 25 == 0:
            reg = ModelRegistry(root)  # also read through a fresh cache (snapshots)
        try:
            mv = reg.current(name)
            if mv is None:
                errors.append("current() returned None while a version was deployed")
                continue
            v = str(mv.version)
            if v not in expected:
                errors.append(f"current() names unknown version {v}")
                continue
            if reg.load(name, v) != expected[v]:
                errors.append(f"load({v}) returned another model")
            if reg.load(name) not in expected.values():
                errors.append("load() returned an unknown model")
        except Exception:
            errors.append(traceback.format_exc())
            if len(errors) > 20:
                break
    return {"iterations": iterations, "errors": errors}


# ---------------------------------------------------------------------- crashes
def _warm_up(model: Any) -> None:
    """Import and run the save path once, so the first timed save is a typical one
    (the package imports its modules on first use: a first save imports the rules,
    the serializers and joblib)."""
    reg = ModelRegistry("memory://")
    reg.deploy("warm-up", reg.save("warm-up", model).version)


def crash_loop(root: str, name: str, seed: int, size: int, ready: Event) -> None:
    """Save a numpy model, deploy it, sometimes roll back; forever (until killed)."""
    import numpy as np

    reg = ModelRegistry(root)
    rng = random.Random(seed)
    weights = np.random.default_rng(seed).random(size)
    counter = seed * 1_000_000
    _warm_up(weights)
    ready.set()
    while True:
        counter += 1
        weights[0] = counter
        mv = reg.save(name, {"w": weights}, metrics={"counter": counter})
        reg.deploy(name, mv.version)
        if rng.random() < 0.4:
            with contextlib.suppress(NoRollbackTargetError):
                reg.rollback(name, reason="crash test")


# ---------------------------------------------------------------------- I/O traps
#: The I/O calls a trap counts by default: what can fail in the write path (``os.*``
#: by name; ``file.*`` are the builtin ``open`` and the buffered files it returns).
IO_CALLS = frozenset(
    {"open", "write", "fsync", "link", "replace", "rename", "mkdir"}
    | {"file.open", "file.write", "file.flush"}
)
#: Kill points: every call above plus the ones between them.
KILL_CALLS = IO_CALLS | {"unlink", "close", "file.close"}


class IOTrap:
    """Counts the local backend's I/O calls and acts at call number ``at``.

    Installed by replacing the names ``os`` and ``open`` inside
    :mod:`modelversions.backends.local` and its blob (and ``os`` inside its folder
    walk, :mod:`modelversions.backends._safepath`, and its unnamed files) with
    wrappers: ``os.write``, ``os.fsync``, ``os.link``, ``os.mkdir``, ``os.open`` ...
    and the ``write``/``flush`` of the buffered files it opens for writing are
    counted. ``file.open`` is the builtin ``open`` (the blob's temporary and every
    read). At call ``at`` the trap raises
    ``OSError(EIO)`` (``action="raise"``) or SIGKILLs its own process (``"kill"``),
    before the real call runs; calls numbered in ``also`` raise too (failures that
    follow the first). ``trace`` records ``(call, path)`` for every counted call.
    """

    def __init__(
        self,
        at: int | None = None,
        *,
        action: str = "raise",
        calls: frozenset[str] = IO_CALLS,
        also: frozenset[int] = frozenset(),
    ) -> None:
        self.at = at
        self.also = also
        self.action = action
        self.calls = calls
        self.count = 0
        self.trace: list[tuple[str, str]] = []
        self.fired: tuple[str, str] | None = None
        self._fds: dict[int, str] = {}
        self._saved: dict[str, Any] = {}

    def hit(self, call: str, path: str) -> None:
        if call not in self.calls:
            return
        self.count += 1
        self.trace.append((call, path))
        if self.count == self.at:
            self.fired = (call, path)
            if self.action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.EIO, f"injected failure at I/O call {self.count} ({call})", path)
        if self.count in self.also:
            raise OSError(errno.EIO, f"injected failure at I/O call {self.count} ({call})", path)

    def fd_path(self, fd: Any) -> str:
        return self._fds.get(fd, f"fd {fd}") if isinstance(fd, int) else str(fd)

    def at_path(self, path: Any, dir_fd: int | None) -> str:
        """The path a ``*at`` call (``dir_fd=``) names, as the folder was opened."""
        return str(path) if dir_fd is None else f"{self.fd_path(dir_fd)}/{path}"

    # -- installing -------------------------------------------------------------------
    def install(self) -> IOTrap:
        from modelversions.backends import _local_blob, _safepath, _unnamed, local

        self._saved = {"os": local.os}
        for module in (local, _local_blob):
            self._saved[module.__name__] = module.__dict__.get("open")
            module.open = self._open  # type: ignore[attr-defined]
        local.os = _safepath.os = _unnamed.os = _local_blob.os = _OsProxy(self)  # type: ignore[assignment]
        return self

    def uninstall(self) -> None:
        from modelversions.backends import _local_blob, _safepath, _unnamed, local

        local.os = _safepath.os = _unnamed.os = _local_blob.os = self._saved["os"]
        for module in (local, _local_blob):
            if self._saved[module.__name__] is None:
                del module.open  # type: ignore[attr-defined]
            else:
                module.open = self._saved[module.__name__]  # type: ignore[attr-defined]

    def __enter__(self) -> IOTrap:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _open(self, file: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        self.hit("file.open", str(file))
        fh = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 - returned open
        self._fds[fh.fileno()] = str(file)
        if any(c in mode for c in "wxa+"):
            return _FileProxy(self, fh, str(file))
        return fh


class _OsProxy:
    """``os`` with the trapped functions wrapped; everything else passes through."""

    def __init__(self, trap: IOTrap) -> None:
        self._trap = trap

    def __getattr__(self, attr: str) -> Any:
        real = getattr(os, attr)
        trap = self._trap
        if attr not in KILL_CALLS or not callable(real):
            return real
        if attr == "open":

            def opened(path: Any, *args: Any, **kwargs: Any) -> Any:
                where = trap.at_path(path, kwargs.get("dir_fd"))
                trap.hit("open", where)
                fd = real(path, *args, **kwargs)
                trap._fds[fd] = where
                return fd

            return opened

        def call(first: Any, *args: Any, **kwargs: Any) -> Any:
            if attr in ("write", "fsync", "close"):
                where = trap.fd_path(first)
            elif attr in ("link", "replace", "rename"):
                src = trap.at_path(first, kwargs.get("src_dir_fd"))
                where = f"{src} -> {trap.at_path(args[0], kwargs.get('dst_dir_fd'))}"
            else:
                where = trap.at_path(first, kwargs.get("dir_fd"))
            trap.hit(attr, where)
            return real(first, *args, **kwargs)

        return call


class _FileProxy:
    """A writable file whose ``write``, ``flush`` and ``close`` the trap counts."""

    def __init__(self, trap: IOTrap, fh: Any, path: str) -> None:
        self._trap = trap
        self._fh = fh
        self._path = path

    def write(self, data: Any) -> int:
        self._trap.hit("file.write", self._path)
        return int(self._fh.write(data))

    def flush(self) -> None:
        self._trap.hit("file.flush", self._path)
        self._fh.flush()

    def close(self) -> None:
        self._trap.hit("file.close", self._path)
        self._fh.close()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._fh, attr)


def crash_at_call(root: str, name: str, k: int, size: int, done: Event) -> None:
    """Save, deploy and roll back one model, SIGKILLing this process at I/O call ``k``."""
    import numpy as np

    reg = ModelRegistry(root)
    weights = np.random.default_rng(7).random(size)
    with IOTrap(k, action="kill", calls=KILL_CALLS):
        crash_cycle(reg, name, weights)
    done.set()


def crash_cycle(reg: ModelRegistry, name: str, weights: Any) -> None:
    """The operations the crash tests interrupt: one save, its deploy, one rollback."""
    mv = reg.save(name, {"w": weights}, metrics={"counter": float(weights[0])})
    reg.deploy(name, mv.version)
    reg.rollback(name, reason="crash test")
