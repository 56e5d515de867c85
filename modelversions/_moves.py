"""Each model's pointer moves (deploys and rollbacks): a sealed cache of the log.

The deploy timeline needs every deploy and rollback of a model, which are scattered
through its log among saves and marks: reading them from the log reads every entry.
So, when a writer writes a snapshot (every 16 or 64 entries), it also writes
``models/<name>/@moves/<seq>.json``: every pointer move up to entry ``seq`` (each as
:meth:`Event.to_dict` gives it), sealed like every stored object, and anchored like a
snapshot: it records the sha256 of entry ``seq`` (``head_sha256``).

Reading (:func:`read`) takes the newest moves file that checks out, reads its entry
and those after it from the log (each checked against the hash chain up to the head
the registry trusts; its entry's sha256 must be the file's anchor) and adds their
moves. A
moves file that does not check out (damaged, of another model, not anchored to the
log) is ignored with a warning and the next older one, or the whole log, is used: like
a snapshot, it is only a cache of the log, which stays the single source of truth.
``verify()`` compares every moves file with the log.

A registry opened with signing keys neither writes nor reads moves files (they carry
no signature): it reads the signed log. Registries written before moves files read the
log until their next snapshot writes one.
"""

from __future__ import annotations

import json
import warnings
import weakref
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from modelversions import _lazy, _state
from modelversions._util import storage
from modelversions.errors import IntegrityError
from modelversions.records import Event
from modelversions.version import Version

if TYPE_CHECKING:
    from modelversions._commit import Log
    from modelversions._state import ModelState

__all__ = ["Seen", "check", "moves_key", "moves_prefix", "read", "write"]

_ACTIONS = frozenset(_state.POINTER_ACTIONS)
_KEEP = 2  # moves files kept per model (the newest two, like snapshots)


def moves_prefix(name: str) -> str:
    return f"models/{name}/@moves/"


def moves_key(name: str, seq: int) -> str:
    return f"{moves_prefix(name)}{seq:012d}.json"


def _stored(log: Log, name: str, below: int) -> list[tuple[int, str]]:
    """(seq, key) of the stored moves files of ``name`` up to entry ``below``, newest first."""
    prefix = moves_prefix(name)
    with storage(f"listing the moves of {name!r}"):
        keys = log.backend.list(prefix)
    found = [(_state.key_seq(k, prefix), k) for k in keys]
    return sorted(((s, k) for s, k in found if s is not None and s <= below), reverse=True)


def _load(log: Log, name: str, key: str, seq: int) -> tuple[str, list[dict[str, Any]]]:
    """The anchor and the moves of moves file ``key`` (of entry ``seq``), checked as a
    file: its seal, schema, model, seq and the shape of its moves. Raises
    IntegrityError (FileNotFoundError when it was removed meanwhile)."""
    with storage(f"reading {key}"):
        data = log.backend.read(key)
    payload = _state.decode(data, key)
    head, moves = payload.get("head_sha256"), payload.get("moves")
    if payload.get("name") != name or payload.get("seq") != seq:
        raise IntegrityError(
            f"{key} holds the moves of {payload.get('name')!r} to entry "
            f"{payload.get('seq')}, not of {name!r} to entry {seq}"
        )
    if not (isinstance(head, str) and len(head) == 64) or not isinstance(moves, list):
        raise IntegrityError(f"{key} is damaged (no head_sha256 or no moves)")
    last = 0
    for m in moves:
        if not (isinstance(m, dict) and m.get("action") in _ACTIONS):
            raise IntegrityError(f"{key} is damaged (a move that is not a deploy or rollback)")
        if not (isinstance(m.get("seq"), int) and last < m["seq"] <= seq):
            raise IntegrityError(f"{key} is damaged (moves out of order)")
        last = m["seq"]
    return head, moves


def _events(log: Log, name: str, moves: list[dict[str, Any]], where: str) -> list[Event]:
    state = log.states[name]
    # The model's own Version objects (parsed once, shared with its records), else its
    # cache of version strings (a deleted version).
    index = {text: i for i, text in enumerate(_lazy.order_texts(state.order))}
    seen: dict[Any, Version] = {}  # a version is named by many moves: look it up once

    def parse(text: Any) -> Version:
        v = seen.get(text) if isinstance(text, str) else None
        if v is None:
            i = index.get(text)
            v = state._version(text) if i is None else state.order[i]
            if isinstance(text, str):
                seen[text] = v
        return v

    try:
        return [_state.event_from_payload({**m, "name": name}, parse) for m in moves]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{where} is damaged: {exc!r}") from exc


def read(log: Log, name: str) -> list[Event]:
    """Every deploy and rollback of ``name``, oldest first: the newest moves file that
    checks out, then the log's entries after it (see the module docstring)."""
    state = log.existing(name)
    with log.lock:
        return _read(log, name, state.seq)


def _read(log: Log, name: str, last: int) -> list[Event]:
    for seq, key in _stored(log, name, last) if log.guard is None else []:
        try:
            head, moves = _load(log, name, key, seq)
            events = _events(log, name, moves, key)
        except FileNotFoundError:
            continue  # replaced by a newer one meanwhile
        except IntegrityError as exc:
            warnings.warn(f"ignoring damaged moves file: {exc}", stacklevel=3)
            continue
        # Entries seq.. of the log, each checked against the hash chain up to the head
        # the registry trusts (a damaged log raises); entry seq against the anchor.
        tail = log.history(name, seq)
        actual = log.events[name][seq][1]
        if actual != head:
            warnings.warn(
                f"ignoring moves file {key}: built from an entry {seq} with sha256 {head}, "
                f"but {_state.log_key(name, seq)} has sha256 {actual}",
                stacklevel=3,
            )
            continue
        return events + [e for e in tail[1:] if e.action in _ACTIONS]
    return [e for e in log.history(name, 1) if e.action in _ACTIONS]


def write(log: Log, state: ModelState) -> None:
    """Write the moves file of ``state.seq`` (a writer calls it with its snapshot).

    Builds on what this registry object wrote last (only the entries since are read),
    else on the newest moves file that checks out, else on the whole log. A failure
    only warns: the file is a cache. Written only by registries without signing keys.
    """
    if log.guard is not None or state.head_sha256 is None:
        return
    name = state.name
    written = _WRITTEN.setdefault(log, {})
    try:
        texts = _texts_since(log, name, written.get(name))
        # Reading refreshed ``state`` (the log's cached state of the model) to the newest
        # entry: the file is of that entry, which its moves reach.
        head = json.dumps(
            {"head_sha256": state.head_sha256, "name": name, "schema": _state.SCHEMA},
            separators=(",", ":"),
            sort_keys=True,
        )
        body = f'{head[:-1]},"seq":{state.seq},"moves":[{",".join(texts)}]}}'.encode()
        key = moves_key(name, state.seq)
        with suppress(FileExistsError):  # another writer's, of the same entry
            log.backend.create(key, _state.seal(body))
        written[name] = (state.seq, state.head_sha256, texts)
        for _seq, old in _stored(log, name, state.seq)[_KEEP:]:
            log.backend.delete(old)
    except (OSError, IntegrityError) as exc:
        written.pop(name, None)
        warnings.warn(
            f"could not write the moves file beside snapshot {state.seq} of {name!r} "
            f"(a cache only): {exc}",
            stacklevel=4,
        )


# What each registry object wrote last, per model: (seq, sha256 of that entry, the JSON
# text of each move), so the next write reads only the entries since.
_WRITTEN: weakref.WeakKeyDictionary[Log, dict[str, tuple[int, str, list[str]]]]
_WRITTEN = weakref.WeakKeyDictionary()


def _text(e: Event) -> str:
    return json.dumps({k: v for k, v in e.to_dict().items() if k != "name"}, separators=(",", ":"))


def _texts_since(log: Log, name: str, last: tuple[int, str, list[str]] | None) -> list[str]:
    if last is not None:
        seq, head, texts = last
        tail = log.history(name, seq)  # checked up to the head; entry seq is ours
        if log.events[name][seq][1] == head:
            return texts + [_text(e) for e in tail[1:] if e.action in _ACTIONS]
    return [_text(e) for e in read(log, name)]


class Seen:
    """The log as ``verify()`` replayed it, kept for :func:`check` so the log is read
    once: the sha256 of each entry and the payload of each pointer move."""

    __slots__ = ("moves", "shas")

    def __init__(self) -> None:
        self.shas: list[str] = []  # entry seq's at [seq - 1]
        self.moves: list[tuple[int, dict[str, Any]]] = []

    def add(self, payload: dict[str, Any], sha: str) -> None:
        """Entry ``len(shas) + 1``, once it was applied."""
        self.shas.append(sha)
        if payload.get("action") in _ACTIONS:
            self.moves.append((len(self.shas), payload))


def check(log: Log, name: str, seen: Seen) -> list[tuple[str, str]]:
    """``verify()``'s check, once it found the log sound (``seen``, entries 1..n): each
    moves file of ``name`` up to entry n against the log (its anchor, and every move).
    Returns (key, what is wrong) per damaged file."""
    out: list[tuple[str, str]] = []
    texts: list[tuple[int, str]] | None = None  # (seq, text) of each move in the log
    for seq, key in _stored(log, name, len(seen.shas)):
        try:
            head, moves = _load(log, name, key, seq)
            if head != seen.shas[seq - 1]:
                raise IntegrityError(f"{key} is not anchored to entry {seq} (its sha256 differs)")
            if texts is None:
                texts = [(at, _text(_state.event_from_payload(p))) for at, p in seen.moves]
            if [json.dumps(m, separators=(",", ":")) for m in moves] != [
                text for at, text in texts if at <= seq
            ]:
                raise IntegrityError(f"{key} differs from the log")
        except FileNotFoundError:
            continue
        except IntegrityError as exc:
            out.append((key, str(exc)))
    return out
