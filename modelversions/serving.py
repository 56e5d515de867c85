"""Serving: a handle that follows the version deployed in an env, in a running process.

:meth:`ModelRegistry.serve <modelversions.ModelRegistry.serve>` returns a
:class:`Served`: the deployed model, loaded and verified, and a daemon thread that
checks the registry every ``refresh`` seconds. When the deployed version changes
(deploy, rollback, a guarded deploy's restore, promote, by any process) the new version
is loaded beside the old one and swapped in with one assignment of a ``(model,
version)`` pair, so a reader always gets a whole pair. A version that fails to load
leaves the old one serving; the error is kept in :attr:`Served.last_error`, logged as a
warning (logger ``"modelversions"``) and the next check tries again.

An idle check is one storage request: the registry's cached state asks for the next
history entry (on a local folder one read of ``@log/<seq + 1>.json``, on S3 one
``GET``), whatever the number of versions.

This room sits above the facade, like ``cli/``: it uses only the registry's public
methods (``current``, and ``load`` or, for a file or folder version, ``load_path``:
then :attr:`Served.path` is its verified local path; or the ``load`` function it is
given) and never writes to the registry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from modelversions._names import check_env, check_name
from modelversions._util import check_callable, check_seconds
from modelversions.errors import InvalidInputError, ServingTimeoutError, VersionNotFoundError
from modelversions.records import ModelVersion
from modelversions.serializers import PATH_FORMAT
from modelversions.version import Version

if TYPE_CHECKING:
    from modelversions.registry import ModelRegistry

__all__ = ["Loaded", "OnChange", "Served"]

log = logging.getLogger("modelversions")

#: Called after each swap with the version served before (``None`` on the first load)
#: and the one served now.
OnChange = Callable[[ModelVersion | None, ModelVersion], object]

_JOIN_GUARD = 30.0  # seconds close() waits for a check in progress (a guard)
_POLL = 0.05  # seconds between checks of wait_for() on a handle without a checker


class Loaded(NamedTuple):
    """A model and the version it was loaded from: what a handle serves, read as one."""

    model: Any
    version: ModelVersion


def _same(a: ModelVersion, b: ModelVersion) -> bool:
    return a.version == b.version and a.sha256 == b.sha256


class Served:
    """The model deployed in an env, kept up to date by a daemon thread.

    Made by :meth:`ModelRegistry.serve <modelversions.ModelRegistry.serve>` (see there
    for the arguments). Read :attr:`model` and :attr:`version`, or :attr:`loaded` for
    both at once; a swap never leaves either half-loaded.

    >>> from modelversions import ModelRegistry
    >>> reg = ModelRegistry("memory://")
    >>> _ = reg.save("m", {"w": 1}); _ = reg.save("m", {"w": 2})
    >>> _ = reg.deploy("m", "1.0.0")
    >>> with reg.serve("m", refresh=None) as served:
    ...     _ = reg.deploy("m", "1.1.0")
    ...     served.refresh(), served.model, str(served.version.version)
    (True, {'w': 2}, '1.1.0')
    """

    def __init__(
        self,
        registry: ModelRegistry,
        name: str,
        *,
        env: str = "production",
        refresh: float | None = 5.0,
        on_change: OnChange | None = None,
        load: Callable[[ModelVersion], Any] | None = None,
    ) -> None:
        check_name(name)
        check_env(env)
        if refresh is not None:
            check_seconds(refresh, "refresh")
            if refresh <= 0:
                raise InvalidInputError(f"refresh must be positive seconds or None, not {refresh}")
        check_callable(on_change, "on_change")
        check_callable(load, "load")
        self._registry = registry
        self._name = name
        self._env = env
        self._interval = refresh
        self._on_change = on_change
        #: Loads a version's model; a path version's loader slots in here.
        self._load: Callable[[ModelVersion], Any] = load or self._load_model
        self._lock = threading.RLock()  # one check at a time; held across a fork
        self._swapped = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_error: Exception | None = None
        self._warned: tuple[str, str] | None = None  # the failure last logged as a warning
        mv = self._deployed()
        self._loaded = Loaded(self._load(mv), mv)
        _LIVE.add(self)
        self._notify(None, mv)
        self._start()

    # ------------------------------------------------------------------ reading
    @property
    def name(self) -> str:
        """The model served."""
        return self._name

    @property
    def env(self) -> str:
        """The env whose deployed version is served."""
        return self._env

    @property
    def loaded(self) -> Loaded:
        """The model and its version as one pair (read once per request)."""
        return self._loaded

    @property
    def model(self) -> Any:
        """The model of the version served now, loaded and verified."""
        return self._loaded.model

    @property
    def version(self) -> ModelVersion:
        """The record of the version served now."""
        return self._loaded.version

    @property
    def path(self) -> Path:
        """The verified local path of the file or folder version served now.

        Raises:
            InvalidInputError: the version served is a Python object (use ``model``).
        """
        loaded = self._loaded
        if loaded.version.format != PATH_FORMAT:
            raise InvalidInputError(
                f"{loaded.version.name} {loaded.version.version} is a Python object "
                f"({loaded.version.format}), not a file or folder: use served.model"
            )
        path: Path = loaded.model
        return path

    @property
    def last_error(self) -> Exception | None:
        """Why the last check failed (the old model kept serving); None if it succeeded."""
        return self._last_error

    @property
    def closed(self) -> bool:
        """True after :meth:`close`: the handle keeps its model, no longer follows."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"refresh={self._interval}"
        return (
            f"<Served {self._name!r} env={self._env!r} "
            f"version={str(self.version.version)!r} {state}>"
        )

    # ------------------------------------------------------------------ checking
    def refresh(self) -> bool:
        """Check the registry now; True when another version was swapped in.

        A failure to read the registry or to load the new version is not raised: the
        old model keeps serving and :attr:`last_error` holds the error.

        Raises:
            InvalidInputError: the handle is closed.
        """
        with self._lock:
            if self._closed:
                raise InvalidInputError(f"{self!r} is closed: it no longer follows the registry")
            return self._check()

    def wait_for(self, version: str | Version, timeout: float) -> ModelVersion:
        """Wait until ``version`` is served; return its record.

        With a checker thread this only waits for it (no extra storage requests);
        with ``refresh=None`` it checks every 0.05 s itself.

        Raises:
            ServingTimeoutError: ``version`` was not served within ``timeout`` seconds
                (the message names what is served and the last error).
            InvalidInputError: bad arguments.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> _ = reg.deploy("m", "1.0.0")
        >>> str(reg.serve("m", refresh=None).wait_for("1.0.0", timeout=1).version)
        '1.0.0'
        """
        want = Version(version)
        check_seconds(timeout, "timeout")
        deadline = time.monotonic() + timeout
        while True:
            mv = self.version
            if mv.version == want:
                return mv
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServingTimeoutError(
                    f"{self._name} {want} was not served in {self._env!r} within {timeout} s: "
                    f"serving {mv.version}; last error: {self._last_error}"
                )
            if self._thread is None or not self._thread.is_alive():
                if not self._closed:
                    self.refresh()
                time.sleep(min(_POLL, max(left, 0)))
                continue
            with self._swapped:
                if self.version is mv:
                    self._swapped.wait(min(left, threading.TIMEOUT_MAX))

    def _deployed(self) -> ModelVersion:
        """The record deployed in the env now (one storage request once cached)."""
        mv = self._registry.current(self._name, env=self._env)
        if mv is None:
            raise VersionNotFoundError(
                f"nothing is deployed in {self._env!r} for model {self._name!r}"
            )
        return mv

    def _load_model(self, mv: ModelVersion) -> Any:
        """A Python object through ``load``; a file or folder version through ``load_path``."""
        if mv.format == PATH_FORMAT:
            return self._registry.load_path(mv.name, mv.version)
        return self._registry.load(mv.name, mv.version)

    def _check(self) -> bool:
        """One check (the caller holds the lock): swap in a new version if there is one."""
        old = self._loaded
        mv: ModelVersion | None = None
        try:
            mv = self._deployed()
            if _same(mv, old.version):
                if mv != old.version:  # the same artifact, its record changed (a status)
                    self._loaded = Loaded(old.model, mv)
                self._last_error = None
                return False
            model = self._load(mv)
        except Exception as exc:  # missing, damaged, unpicklable, storage down: keep serving
            self._failed(mv, exc)
            return False
        if self._closed:
            return False  # closed while loading: keep what was served
        self._loaded = Loaded(model, mv)
        self._last_error = None
        self._warned = None
        log.info("serving %s %s in %r", self._name, mv.version, self._env)
        with self._swapped:
            self._swapped.notify_all()
        self._notify(old.version, mv)
        return True

    def _failed(self, mv: ModelVersion | None, exc: Exception) -> None:
        self._last_error = exc
        target = "the deployed version" if mv is None else str(mv.version)
        seen = (target, f"{type(exc).__name__}: {exc}")
        # A warning once per failure; the same failure again on later checks is debug.
        level = logging.DEBUG if seen == self._warned else logging.WARNING
        self._warned = seen
        log.log(
            level,
            "serving %s: could not load %s of %r (%s); still serving %s, retrying at the "
            "next check",
            self._name,
            target,
            self._env,
            seen[1],
            self.version.version,
        )

    def _notify(self, old: ModelVersion | None, new: ModelVersion) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(old, new)
        except Exception:  # user code: the swap stands, the checker carries on
            log.exception("serving %s: on_change(%s, %s) raised", self._name, old, new.version)

    # ------------------------------------------------------------------ the checker
    def _start(self) -> None:
        if self._interval is None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_checker,
            args=(weakref.ref(self), self._stop, min(self._interval, threading.TIMEOUT_MAX)),
            name=f"modelversions-serve-{self._name}-{self._env}",
            daemon=True,
        )
        self._thread.start()

    def _tick(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._check()
            except Exception:  # a bug must not end the checker silently
                log.exception("serving %s: the check failed", self._name)

    def close(self) -> None:
        """Stop following the registry; the last model stays readable. Idempotent."""
        self._closed = True
        self._stop.set()
        _LIVE.discard(self)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_GUARD)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """In a forked child: new locks, and a checker of its own if the parent ran one."""
        self._lock = threading.RLock()
        self._swapped = threading.Condition()
        running = self._thread is not None and not self._closed
        self._thread = None
        if running:
            self._start()


def _checker(ref: weakref.ref[Served], stop: threading.Event, interval: float) -> None:
    """The daemon thread: check every ``interval`` s until stopped or the handle is gone."""
    while not stop.wait(interval):
        served = ref()
        if served is None:
            return  # the handle was garbage-collected: nobody reads it any more
        served._tick()
        del served


# ---------------------------------------------------------------------- fork safety
# Before a fork, every live handle's lock is taken, so no check is half-way through (a
# checker holding the registry's lock at fork time would leave it locked forever in the
# child). The child gets new locks and starts its own checkers (gunicorn's --preload).
_LIVE: weakref.WeakSet[Served] = weakref.WeakSet()
_HELD: list[Served] = []


def _before_fork() -> None:
    for served in sorted(_LIVE, key=id):
        served._lock.acquire()
        _HELD.append(served)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    held = list(_HELD)
    _HELD.clear()
    for served in held:
        served._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
