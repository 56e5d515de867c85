"""The JSON API of the web view: what each ``GET /api/...`` answers (never writes).

Every function here takes a :class:`Reader`: the seven reading methods of
:class:`~modelversions.ModelRegistry` (``models``, ``versions``, ``envs``, ``get``,
``head``, ``history``, ``moves``) and nothing else, so the type checker refuses a call that
writes. The answers are plain JSON values; the server turns them into bytes.

A model's history is append-only, so the number of its events (``seq``, from
``head``) is a complete change token: every model answer carries it and the page
redraws only when it moves. Nothing here reads the whole history: a history page reads
only the entries it shows and those after them (``history(start=)`` checks each
against the hash chain back to the trusted head), the model answer is built from the
state (pointers, one column per numeric metric), the versions table is paged, and the
deploy timeline is the model's pointer moves (``moves()``, from the moves file writers
keep beside their snapshots): :class:`EventCache` keeps them, reading only the new
entries on each later call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from modelversions import Event, ModelVersion, Version

__all__ = [
    "MAX_LIMIT",
    "EventCache",
    "Reader",
    "model",
    "models",
    "page",
    "timeline",
    "version",
    "versions_page",
]

#: The most history events or versions one paged request returns.
MAX_LIMIT = 500
_TIMELINE_ACTIONS = frozenset({"deploy", "rollback"})
_CHECK_FAILED = "deploy check failed"


class Reader(Protocol):
    """The read-only part of :class:`~modelversions.ModelRegistry` the view uses."""

    def models(self) -> list[str]: ...

    def versions(self, name: str) -> Sequence[ModelVersion]: ...

    def envs(self, name: str) -> dict[str, ModelVersion]: ...

    def get(self, name: str, version: str | Version) -> ModelVersion: ...

    def head(self, name: str) -> tuple[int, str]: ...

    def history(self, name: str, *, env: str | None = None, start: int = 1) -> list[Event]: ...

    def moves(self, name: str, *, env: str | None = None) -> list[Event]: ...


class EventCache:
    """Each model's events, oldest first; a call reads only those after the last seen.

    ``moves(name)`` keeps only the pointer moves (what the timeline draws) and
    ``events(name)`` every event (what a version's page filters); each reads the log
    once per model and then only its new entries.
    """

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        # name -> (seq read up to, the events kept); one table per filter.
        self._kept: dict[tuple[str, bool], tuple[int, list[Event]]] = {}
        self._lock = threading.Lock()

    def events(self, name: str) -> list[Event]:
        """Every event of ``name`` now (a copy of the list; the events are immutable)."""
        return self._read(name, moves=False)

    def moves(self, name: str) -> list[Event]:
        """The deploys and rollbacks of ``name`` now, oldest first."""
        return self._read(name, moves=True)

    def _read(self, name: str, *, moves: bool) -> list[Event]:
        with self._lock:
            seen, kept = self._kept.get((name, moves), (0, []))
            new = self._reader.history(name, start=seen + 1) if seen else []
            if seen and new and new[0].seq != seen + 1:  # not the history we followed
                seen, kept, new = 0, [], []
            if not seen and moves:  # the first time: from the writers' moves file
                seen, _sha = self._reader.head(name)
                kept = self._reader.moves(name)
                seen = max(seen, kept[-1].seq if kept else 0)
            elif not seen:
                new = self._reader.history(name)
            if new:
                seen = new[-1].seq
                kept = kept + [e for e in new if not moves or e.action in _TIMELINE_ACTIONS]
            self._kept[(name, moves)] = (seen, kept)
            return kept


def _version_json(mv: ModelVersion) -> dict[str, Any]:
    out = mv.to_dict()
    del out["name"]
    out.setdefault("format", mv.format)
    return out


def _event_json(e: Event) -> dict[str, Any]:
    out = e.to_dict()
    del out["name"]
    return out


def _move_json(e: Event) -> dict[str, Any]:
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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def models(reader: Reader, location: str | None) -> dict[str, Any]:
    """``GET /api/models``: the registry's location (as given, or None) and one entry per
    model: its deployments and its last change (one entry read, checked by the head)."""
    out = []
    for name in reader.models():
        seq, _sha = reader.head(name)
        last = reader.history(name, start=seq)[-1:]
        out.append(
            {
                "name": name,
                "seq": seq,
                "versions": len(reader.versions(name)),
                "envs": {
                    env: {"version": str(mv.version), "status": mv.status.value}
                    for env, mv in reader.envs(name).items()
                },
                "last_change": _event_json(last[0]) if last else None,
            }
        )
    return {"registry": location, "models": out}


def model(reader: Reader, name: str, location: str | None) -> dict[str, Any]:
    """``GET /api/models/<name>``: the env pointers, the number of versions and each
    numeric metric as a column across the versions (ascending), for the chart."""
    # The head first: what is read after it is at least as new as its seq, so a client
    # that redraws when seq moves never keeps an older picture.
    seq, _sha = reader.head(name)
    versions = reader.versions(name)
    keys = sorted({k for mv in versions for k, v in mv.metrics.items() if _is_number(v)})
    columns: dict[str, list[Any]] = {k: [] for k in keys}
    for mv in versions:
        for k, column in columns.items():
            value = mv.metrics.get(k)
            column.append(value if _is_number(value) else None)
    return {
        "name": name,
        "registry": location,
        "seq": seq,
        "count": len(versions),
        "envs": {
            env: {"version": str(mv.version), "status": mv.status.value}
            for env, mv in reader.envs(name).items()
        },
        "metric_keys": keys,
        "metrics": {
            "versions": [str(mv.version) for mv in versions],
            "status": [mv.status.value for mv in versions],
            "values": columns,
        },
    }


def _window(total: int, offset: int, limit: int) -> tuple[int, int, int]:
    """A newest-first page of ``total`` items as the slice ``[start, stop)`` of the
    oldest-first sequence, and the ``limit`` it was clamped to (:data:`MAX_LIMIT`)."""
    limit = min(limit, MAX_LIMIT)
    stop = max(total - offset, 0)
    return max(stop - limit, 0), stop, limit


def versions_page(reader: Reader, name: str, offset: int, limit: int) -> dict[str, Any]:
    """``GET /api/models/<name>/versions?offset=&limit=``: records newest first;
    ``offset`` skips that many of the newest, ``limit`` (at most :data:`MAX_LIMIT`)."""
    seq, _sha = reader.head(name)
    versions = reader.versions(name)
    total = len(versions)
    start, stop, limit = _window(total, offset, limit)
    chosen = versions[start:stop]
    deployed: dict[Version, list[str]] = {}
    for env, mv in reader.envs(name).items():
        deployed.setdefault(mv.version, []).append(env)
    return {
        "name": name,
        "seq": seq,
        "total": total,
        "offset": offset,
        "limit": limit,
        "versions": [
            {**_version_json(mv), "deployed_in": deployed.get(mv.version, [])}
            for mv in reversed(chosen)
        ],
    }


def timeline(reader: Reader, cache: EventCache, name: str) -> dict[str, Any]:
    """``GET /api/models/<name>/timeline``: every pointer move (deploy, rollback, a failed
    guarded deploy's restore), oldest first, and the versions they name, ascending."""
    seq, _sha = reader.head(name)
    moves = cache.moves(name)
    # In the order they were deployed: mostly ascending already, so sorting is quick.
    named = dict.fromkeys(v for e in moves for v in (e.from_version, e.to_version) if v is not None)
    return {
        "name": name,
        "seq": max(seq, moves[-1].seq if moves else 0),
        "versions": [str(v) for v in sorted(named)],
        "moves": [_move_json(e) for e in moves],
    }


def page(reader: Reader, name: str, offset: int, limit: int) -> dict[str, Any]:
    """``GET /api/models/<name>/history?offset=&limit=``: events newest first;
    ``offset`` skips that many of the newest, ``limit`` (at most :data:`MAX_LIMIT`).

    Reads only the entries from the oldest one shown to the head, each checked against
    the hash chain back from the head the registry trusts."""
    total, _sha = reader.head(name)
    start, stop, limit = _window(total, offset, limit)  # stop: the newest seq shown
    chosen = reader.history(name, start=start + 1) if stop else []
    chosen = [e for e in chosen if e.seq <= stop]  # not the entries committed since
    return {
        "name": name,
        "total": total,
        "offset": offset,
        "limit": limit,
        "events": [_event_json(e) for e in reversed(chosen)],
    }


def version(
    reader: Reader, cache: EventCache, name: str, text: str, location: str | None
) -> dict[str, Any]:
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
    return {
        "name": name,
        "registry": location,
        "record": _version_json(mv),
        "events": related,
        "deployed_in": deployed,
    }
