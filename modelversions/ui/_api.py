"""The JSON API of the web view: what each ``GET /api/...`` answers (never writes).

Every function here takes a :class:`Reader`: the five reading methods of
:class:`~modelversions.ModelRegistry` (``models``, ``versions``, ``envs``, ``get``,
``history``) and nothing else, so the type checker refuses a call that writes. The
answers are plain JSON values; the server turns them into bytes.

A model's history is append-only, so the number of its events (``seq``) is a complete
change token: the model answer carries it and the page redraws only when it moves.
:class:`EventCache` keeps each model's events, reading only the new ones on each call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from modelversions import Event, ModelVersion, Version

__all__ = ["MAX_LIMIT", "EventCache", "Reader", "model", "models", "page", "version"]

#: The most history events one ``/history`` request returns.
MAX_LIMIT = 500
_TIMELINE_ACTIONS = frozenset({"deploy", "rollback"})
_CHECK_FAILED = "deploy check failed"


class Reader(Protocol):
    """The read-only part of :class:`~modelversions.ModelRegistry` the view uses."""

    def models(self) -> list[str]: ...

    def versions(self, name: str) -> Sequence[ModelVersion]: ...

    def envs(self, name: str) -> dict[str, ModelVersion]: ...

    def get(self, name: str, version: str | Version) -> ModelVersion: ...

    def history(self, name: str, *, env: str | None = None, start: int = 1) -> list[Event]: ...


class EventCache:
    """Each model's events, oldest first; a call reads only those after the last seen."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def events(self, name: str) -> list[Event]:
        """The events of ``name`` now (a copy of the list; the events are immutable)."""
        with self._lock:
            known = self._events.get(name, [])
            new = self._reader.history(name, start=len(known) + 1)
            if new and new[0].seq != len(known) + 1:  # not the history we followed
                known, new = [], self._reader.history(name)
            known = known + new if new else known
            self._events[name] = known
            return known


def _version_json(mv: ModelVersion) -> dict[str, Any]:
    out = mv.to_dict()
    del out["name"]
    out.setdefault("format", mv.format)
    return out


def _event_json(e: Event) -> dict[str, Any]:
    out = e.to_dict()
    del out["name"]
    return out


def _timeline_json(e: Event) -> dict[str, Any]:
    """A pointer move, compact: what the timeline draws."""
    failed = [str(c.version) for c in e.changes if c.new.value == "failed"]
    kind = e.action
    if e.action == "rollback" and (e.reason or "").startswith(_CHECK_FAILED):
        kind = "check-failed"
    return {
        "seq": e.seq,
        "t": round(e.time.timestamp() * 1000),  # ms since the epoch, for the x axis
        "action": e.action,
        "kind": kind,
        "env": e.env,
        "from": None if e.from_version is None else str(e.from_version),
        "to": None if e.to_version is None else str(e.to_version),
        "failed": failed,
        "reason": e.reason,
        "user": e.user,
        "forced": e.forced,
    }


def models(reader: Reader, cache: EventCache, location: str | None) -> dict[str, Any]:
    """``GET /api/models``: the registry's location (as given, or None) and one entry per
    model: its deployments and its last change."""
    out = []
    for name in reader.models():
        events = cache.events(name)
        envs = reader.envs(name)
        last = events[-1] if events else None
        out.append(
            {
                "name": name,
                "seq": len(events),
                "versions": len(reader.versions(name)),
                "envs": {
                    env: {"version": str(mv.version), "status": mv.status.value}
                    for env, mv in envs.items()
                },
                "last_change": None if last is None else _event_json(last),
            }
        )
    return {"registry": location, "models": out}


def model(reader: Reader, cache: EventCache, name: str) -> dict[str, Any]:
    """``GET /api/models/<name>``: its versions, env pointers and deploy timeline."""
    # History first: the versions read after it are at least as new as its seq, so a
    # client that redraws when seq moves never keeps an older picture.
    events = cache.events(name)
    versions = reader.versions(name)
    envs = reader.envs(name)
    metric_keys = sorted(
        {
            k
            for mv in versions
            for k, v in mv.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )
    return {
        "name": name,
        "seq": len(events),
        "versions": [_version_json(mv) for mv in versions],
        "envs": {env: str(mv.version) for env, mv in envs.items()},
        "metric_keys": metric_keys,
        "timeline": [_timeline_json(e) for e in events if e.action in _TIMELINE_ACTIONS],
    }


def page(cache: EventCache, name: str, offset: int, limit: int) -> dict[str, Any]:
    """``GET /api/models/<name>/history?offset=&limit=``: events newest first;
    ``offset`` skips that many of the newest, ``limit`` (at most :data:`MAX_LIMIT`)."""
    events = cache.events(name)
    total = len(events)
    limit = min(limit, MAX_LIMIT)
    stop = max(total - offset, 0)
    chosen = events[max(stop - limit, 0) : stop]
    return {
        "name": name,
        "total": total,
        "offset": offset,
        "limit": limit,
        "events": [_event_json(e) for e in reversed(chosen)],
    }


def version(reader: Reader, cache: EventCache, name: str, text: str) -> dict[str, Any]:
    """``GET /api/models/<name>/versions/<version>``: the record, the events that
    changed it (deploys, rollbacks, status changes) and the envs that run it."""
    mv = reader.get(name, text)
    v = mv.version
    related = [
        _event_json(e)
        for e in cache.events(name)
        if e.version == v
        or e.from_version == v
        or e.to_version == v
        or any(c.version == v for c in e.changes)
        or v in e.pruned
    ]
    deployed = sorted(env for env, cur in reader.envs(name).items() if cur.version == v)
    return {"name": name, "record": _version_json(mv), "events": related, "deployed_in": deployed}
