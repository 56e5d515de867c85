"""A save's history entry, written and fsynced while the artifact it names is made durable.

A durable save on a local folder waits for four fsyncs: the artifact, its folder, the
entry, the history folder. The entry may be written before the artifact is published,
as long as it is published after: :func:`create_after` stages the entry (a temporary
file, :meth:`~modelversions.backends.local.LocalBackend.stage`), fsyncs it in a worker
thread while the caller's ``ready()`` makes the artifact durable, and links it in only
once both are done. One fsync less to wait for; the order of durability is unchanged.

This module owns those worker threads and that order. It decides nothing about what
is written (:mod:`modelversions._commit` builds the entry and retries lost races).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from modelversions.backends import Backend

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

_T = TypeVar("_T")

# The threads that fsync a staged entry (per process: made anew in a forked child).
_workers: tuple[int, ThreadPoolExecutor] | None = None
_workers_lock = threading.Lock()


class Waited(Exception):
    """What ``ready()`` raised in :func:`create_after`, to be passed on as it is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def start(fn: Callable[[], _T]) -> Future[_T]:
    """Run ``fn`` in a worker thread; return once it has begun.

    The caller resumes when the worker gives up the interpreter lock, at its first
    blocking call, so the order of I/O calls is the same from run to run (the failure
    injection tests fail each call in turn).
    """
    global _workers
    with _workers_lock:
        if _workers is None or _workers[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(4, thread_name_prefix="modelversions-sync")
            _workers = (os.getpid(), pool)
        pool = _workers[1]
    begun = threading.Event()

    def run() -> _T:
        begun.set()
        return fn()

    future = pool.submit(run)
    begun.wait()
    return future


def create_after(backend: Backend, key: str, data: bytes, ready: Callable[[], object]) -> None:
    """``backend.create(key, data)`` once ``ready()`` returned: published after it.

    With a backend that stages (``stage(data, sync=False)``), the bytes are written
    first and fsynced in a worker while ``ready()`` runs. What ``ready`` raises comes
    out as :class:`Waited` (nothing is published then); the rest as ``create`` would.
    """
    stage = getattr(backend, "stage", None)
    if stage is None:
        try:
            ready()
        except Exception as exc:
            raise Waited(exc) from exc
        backend.create(key, data)
        return
    staged = stage(data, sync=False)
    try:
        syncing = start(staged.sync) if staged.durable else None
        try:
            ready()
        except Exception as exc:
            raise Waited(exc) from exc
        finally:
            error = None if syncing is None else syncing.exception()
        if error is not None:
            raise error
        created = staged.publish(key)
    except BaseException:
        staged.discard()
        raise
    if not created:
        raise FileExistsError(errno.EEXIST, "object exists", key)
