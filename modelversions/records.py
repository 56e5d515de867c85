"""Immutable records: :class:`Status`, :class:`ModelVersion`, :class:`Event`, and
:class:`VersionList` (the read-only sequence of records ``versions()`` returns).

They are what the registry returns and what it stores, as JSON with a schema
number; versions are stored as their canonical strings, never pickled.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelversions._util import datetime, timezone
from modelversions._values import EMPTY, FrozenDict, from_json, normalize, to_json
from modelversions._version_list import VersionList
from modelversions.errors import IntegrityError
from modelversions.version import MAX_NUMBER, Version

if TYPE_CHECKING:  # type checkers see the dataclasses that _record.record builds
    from dataclasses import dataclass as record
    from dataclasses import field
else:  # without importing dataclasses (~6 ms of a fresh process): see _record
    from modelversions._record import field, record

__all__ = ["Event", "ModelVersion", "Status", "StatusChange", "VersionList"]

_EMPTY: Mapping[str, Any] = EMPTY


class Status(str, enum.Enum):
    """The lifecycle status of a version.

    ``candidate``: saved, not yet proven. ``stable``: served and was replaced without
    failing, or marked stable by hand; a rollback target. ``failed``: marked bad, never a
    rollback target, deployed again only with ``force=True``.

    >>> Status("stable") is Status.STABLE
    True
    """

    CANDIDATE = "candidate"
    STABLE = "stable"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


def _ts(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Stored versions are canonical strings; most are plain ``MAJOR.MINOR.PATCH``. Reading
# those without the lenient parser halves the cost of each when loading a long history.
_PLAIN = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_STATUS = {s.value: s for s in Status}


def _parse_version(text: Any) -> Version:
    """A stored version string as a :class:`Version` (fast path for plain releases)."""
    match = _PLAIN.fullmatch(text) if isinstance(text, str) else None
    if match is None or len(text) > 60:
        return Version(text)  # the full parser, with its errors for bad input
    major, minor, patch = int(match[1]), int(match[2]), int(match[3])
    if major > MAX_NUMBER or minor > MAX_NUMBER or patch > MAX_NUMBER:
        return Version(text)  # raises, naming the limit
    return Version._from_parts(major, minor, patch)


def _parse_status(text: Any) -> Status:
    status = _STATUS.get(text) if isinstance(text, str) else None
    return Status(text) if status is None else status


def _opt_text(value: Any) -> str | None:
    """Stored optional text; a non-str (written before text arguments were checked)
    is shown as its JSON text rather than breaking readers."""
    return value if value is None or type(value) is str else json.dumps(value)


def _format(stored: Any) -> str:
    if type(stored) is not str or not stored:
        raise ValueError(f"format must be a non-empty str, not {stored!r}")
    return stored


def _frozen(stored: Any) -> Mapping[str, Any]:
    """A stored ``metrics``/``params``/``tags`` object as a read-only mapping."""
    if not stored:
        return _EMPTY
    value = from_json(stored)
    if type(value) is not FrozenDict:
        raise ValueError(f"expected a JSON object, got {type(stored).__name__}")
    return value


@record(frozen=True, slots=True)
class ModelVersion:
    """One stored version of a model, as the registry knows it now.

    Attributes:
        name: the model name, e.g. ``"team/churn"``.
        version: its :class:`~modelversions.Version`.
        status: its :class:`Status`.
        created_at: when it was saved (UTC).
        sha256: hex digest of the artifact bytes; checked before every unpickle.
        size: artifact size in bytes.
        metrics, params, tags: what ``save`` was given, as a JSON round trip gives it
            back (read-only at every depth: see ``docs/concepts.md``).
        description: free text given to ``save``.
        failure_reason: why it was marked failed (``None`` unless failed).
        failed_env: the env in which it failed, where known.
        pruned: its artifact was deleted by ``prune``; metadata and history remain.
        format: how it is stored: ``"joblib"`` (the default, and every version saved
            before formats existed), ``"npz"``, ``"skops"``, another serializer's name,
            or ``"path"`` (a file or folder saved with ``save(path=...)``; ``sha256`` and
            ``size`` are then those of its manifest, see ``docs/formats.md``).
        format_info: what the format recorded (JSON, read-only): ``compress`` for a
            compressed joblib version; ``kind`` (``"file"``/``"dir"``), ``files`` and
            ``bytes`` for a path version; ``requires`` (what to ``pip install``) for a
            serializer that is not built in.

    >>> mv = ModelVersion(name="churn", version=Version("1.0.0"), status=Status.CANDIDATE,
    ...                   created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    ...                   sha256="0" * 64, size=10)
    >>> str(mv)
    'churn 1.0.0 (candidate)'
    """

    name: str
    version: Version
    status: Status
    created_at: datetime
    sha256: str
    size: int
    metrics: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    description: str | None = None
    failure_reason: str | None = None
    failed_env: str | None = None
    pruned: bool = False
    format: str = "joblib"
    format_info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # A record holds deep read-only copies; from_dict and _replace (which skip
        # __init__) only ever pass values that are already such copies.
        for field in ("metrics", "params", "tags", "format_info"):
            value = getattr(self, field)
            if not isinstance(value, FrozenDict):
                object.__setattr__(self, field, normalize(value, field))

    def __str__(self) -> str:
        extra = " pruned" if self.pruned else ""
        return f"{self.name} {self.version} ({self.status.value}{extra})"

    @property
    def is_failed(self) -> bool:
        """True when the status is ``failed``."""
        return self.status is Status.FAILED

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form: plain dicts and lists, versions as strings, times as
        ISO 8601 UTC, NaN and infinities as ``{"$float": "nan"}`` (``"inf"``, ``"-inf"``).
        ``format`` and ``format_info`` appear only when not the defaults (joblib, empty),
        so a pickled version is stored as it was before formats existed."""
        out = {
            "name": self.name,
            "version": str(self.version),
            "status": self.status.value,
            "created_at": _ts(self.created_at),
            "sha256": self.sha256,
            "size": self.size,
            "metrics": to_json(self.metrics),
            "params": to_json(self.params),
            "tags": to_json(self.tags),
            "description": self.description,
            "failure_reason": self.failure_reason,
            "failed_env": self.failed_env,
            "pruned": self.pruned,
        }
        if self.format != "joblib":
            out["format"] = self.format
        if self.format_info:
            out["format_info"] = to_json(self.format_info)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Rebuild a record from :meth:`to_dict` output."""
        try:
            get = data.get
            values = (
                str(data["name"]),
                _parse_version(data["version"]),
                _parse_status(data["status"]),
                _parse_ts(data["created_at"]),
                str(data["sha256"]),
                int(data["size"]),
                _frozen(get("metrics")),
                _frozen(get("params")),
                _frozen(get("tags")),
                _opt_text(get("description")),
                _opt_text(get("failure_reason")),
                _opt_text(get("failed_env")),
                bool(get("pruned", False)),
                _format(get("format", "joblib")),
                _frozen(get("format_info")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed version record: {exc!r}") from exc
        if cls is not ModelVersion or _SLOT_SETTERS is None:
            return cls(*values)
        # Loading a long history builds thousands of records: fill the slots directly
        # (about 3x cheaper than the frozen dataclass __init__, which has no other logic).
        record = _new(ModelVersion)
        for setter, value in zip(_SLOT_SETTERS, values, strict=True):
            setter(record, value)
        return record


_FROM_DICT_ORDER = (
    "name",
    "version",
    "status",
    "created_at",
    "sha256",
    "size",
    "metrics",
    "params",
    "tags",
    "description",
    "failure_reason",
    "failed_env",
    "pruned",
    "format",
    "format_info",
)
_new = object.__new__
_FIELDS = frozenset(_FROM_DICT_ORDER)
# The slot setters in from_dict's order, or None (use __init__) if the fields ever change.
_SLOT_SETTERS: tuple[Any, ...] | None = (
    tuple(getattr(ModelVersion, f).__set__ for f in _FROM_DICT_ORDER)
    # __post_init__ only freezes metrics/params/tags, which from_dict already passes frozen.
    if ModelVersion.__match_args__ == _FROM_DICT_ORDER
    else None
)


def _replace(record: ModelVersion, **changes: Any) -> ModelVersion:
    """``dataclasses.replace`` for a record, about 3x cheaper (replaying a long history)."""
    if _SLOT_SETTERS is None or type(record) is not ModelVersion:
        import dataclasses

        return dataclasses.replace(record, **changes)
    unknown = changes.keys() - _FIELDS
    if unknown:
        raise TypeError(f"ModelVersion has no field {sorted(unknown)[0]!r}")
    new = _new(ModelVersion)
    for name, setter in zip(_FROM_DICT_ORDER, _SLOT_SETTERS, strict=True):
        setter(new, changes[name] if name in changes else getattr(record, name))
    return new


@record(frozen=True, slots=True)
class StatusChange:
    """A status change made by a call: ``version`` went from ``old`` to ``new``."""

    version: Version
    old: Status
    new: Status

    def __str__(self) -> str:
        return f"{self.version} {self.old.value}->{self.new.value}"


@record(frozen=True, slots=True)
class Event:
    """One entry of a model's history; every state-changing call writes exactly one.

    Attributes:
        seq: position in the model's history (1, 2, ...).
        time: when it was committed (UTC).
        action: the call: ``save``, ``deploy``, ``rollback``, ``mark_failed``,
            ``mark_stable``, ``prune`` or ``delete``. A failed deploy check is recorded
            as a ``rollback`` whose reason starts with ``deploy check failed``.
        name: the model.
        version: the version acted on (for deploy and rollback: the one deployed;
            ``None`` when a rollback left nothing deployed).
        env: the environment, for pointer moves and env-specific failures.
        from_version, to_version: the env's pointer before and after (deploy, rollback).
        reason, user, host: who did it and why.
        changes: status changes the call made (a deploy's promotion, a rollback's failure).
        forced: a deploy of a failed version with ``force=True``.
        pruned: the versions whose artifacts a ``prune`` removed.

    >>> e = Event(seq=3, time=datetime(2026, 1, 1, tzinfo=timezone.utc), action="rollback",
    ...           name="churn", version=Version("1.0.0"), env="production",
    ...           from_version=Version("2.0.0"), to_version=Version("1.0.0"),
    ...           reason="bad auc", user="ana", host="box")
    >>> print(e)
    2026-01-01T00:00:00Z #3 rollback churn 1.0.0 [production] 2.0.0 -> 1.0.0 by ana@box: bad auc
    """

    seq: int
    time: datetime
    action: str
    name: str
    version: Version | None
    env: str | None = None
    from_version: Version | None = None
    to_version: Version | None = None
    reason: str | None = None
    user: str | None = None
    host: str | None = None
    changes: tuple[StatusChange, ...] = ()
    forced: bool = False
    pruned: tuple[Version, ...] = ()

    def __str__(self) -> str:
        when = self.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = [when, f"#{self.seq}", self.action, self.name]
        if self.version is not None:
            parts.append(str(self.version))
        if self.env is not None:
            parts.append(f"[{self.env}]")
        if self.action in ("deploy", "rollback") or self.from_version or self.to_version:
            parts.append(f"{self.from_version or '-'} -> {self.to_version or '-'}")
        if self.forced:
            parts.append("(forced)")
        if self.pruned:
            parts.append("pruned " + ", ".join(str(v) for v in self.pruned))
        if self.changes:
            parts.append("{" + ", ".join(str(c) for c in self.changes) + "}")
        text = " ".join(parts)
        if self.user or self.host:
            text += f" by {self.user or '?'}@{self.host or '?'}"
        if self.reason:
            text += ": " + self.reason.replace("\r", "\\r").replace("\n", "\\n")
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, as shown by ``modelversions history --json``."""
        return {
            "seq": self.seq,
            "time": _ts(self.time),
            "action": self.action,
            "name": self.name,
            "version": None if self.version is None else str(self.version),
            "env": self.env,
            "from_version": None if self.from_version is None else str(self.from_version),
            "to_version": None if self.to_version is None else str(self.to_version),
            "reason": self.reason,
            "user": self.user,
            "host": self.host,
            "changes": [
                {"version": str(c.version), "from": c.old.value, "to": c.new.value}
                for c in self.changes
            ],
            "forced": self.forced,
            "pruned": [str(v) for v in self.pruned],
        }


def event_from_payload(
    payload: Mapping[str, Any], parse: Callable[[Any], Version] = _parse_version
) -> Event:
    """The public :class:`Event` for a stored log entry; ``parse`` reads its versions (the
    log passes the model's ``ModelState._version``, which remembers each)."""
    v, v_from, v_to = payload.get("version"), payload.get("from_version"), payload.get("to_version")
    return Event(
        seq=int(payload["seq"]),
        time=_parse_ts(payload["time"]),
        action=str(payload["action"]),
        name=str(payload["name"]),
        version=None if v is None else parse(v),
        env=payload.get("env"),
        from_version=None if v_from is None else parse(v_from),
        to_version=None if v_to is None else parse(v_to),
        reason=_opt_text(payload.get("reason")),
        user=_opt_text(payload.get("user")),
        host=_opt_text(payload.get("host")),
        changes=tuple(
            StatusChange(parse(c["version"]), _parse_status(c["from"]), _parse_status(c["to"]))
            for c in payload.get("changes", ())
        ),
        forced=bool(payload.get("forced", False)),
        pruned=tuple(parse(v) for v in payload.get("pruned", ())),
    )
