"""The stored layout: where each object lives, and how a JSON object is sealed.

Keys name every object a registry stores (``models/<name>/@log/<seq>.json``, snapshots,
artifacts, the ``index/`` markers); ``encode``/``decode`` turn a history entry or
snapshot into canonical, sealed JSON bytes and back. Pure functions: no I/O, no state.
:mod:`modelversions._state` re-exports them, so callers write ``_state.log_key``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from modelversions.errors import IntegrityError

# CPython's own sha256, ~3 ms cheaper to import than OpenSSL's (hashlib's); None when
# the interpreter has none (hashlib is then used for everything).
_builtin_sha256: Any
try:
    _builtin_sha256 = __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256").sha256
except ImportError:  # pragma: no cover (an interpreter without it)
    _builtin_sha256 = None

#: Bytes a process hashes with the builtin sha256 before switching to hashlib's
#: (OpenSSL: ~3 ms to import, ~6x the throughput: the builtin costs ~2.8 ms more per MiB,
#: so at most ~0.7 ms is lost when hashlib is needed after all). A CLI call or a fresh
#: registry reading a small history never imports hashlib; a large snapshot does.
_BUILTIN_BUDGET = 256 << 10
_budget = _BUILTIN_BUDGET


class Digest(Protocol):
    """What both sha256 implementations offer."""

    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def sha256(data: bytes | memoryview = b"", size: int | None = None) -> Digest:
    """A ``hashlib.sha256`` object over ``data``, from the cheapest implementation to
    import: the builtin one for the first :data:`_BUILTIN_BUDGET` bytes a process hashes
    (``size``: how many bytes will be hashed in all, if more than ``data``), OpenSSL's
    from then on. Both give the same digests."""
    global _budget
    size = len(data) if size is None else size
    if _builtin_sha256 is not None and size <= _budget:
        _budget -= size
        digest: Digest = _builtin_sha256(data)
        return digest
    _budget = 0
    import hashlib

    return hashlib.sha256(data)


SCHEMA = 1
POINTER_ACTIONS = frozenset({"deploy", "rollback"})


def log_key(name: str, seq: int) -> str:
    return f"models/{name}/@log/{seq:012d}.json"


def log_prefix(name: str) -> str:
    return f"models/{name}/@log/"


_SEQ_NAME = re.compile(r"[0-9]{12}\.json")


def key_seq(key: str, prefix: str) -> int | None:
    """The ``seq`` of a log entry or snapshot ``key`` under ``prefix``; None for a stray.

    Only ``<prefix><12 digits>.json`` with a seq of at least 1 is an entry (or a
    snapshot); anything else in those folders (a README, a ``.bak``) is a stray file.
    """
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    if not _SEQ_NAME.fullmatch(rest):
        return None
    seq = int(rest[:12])
    return seq if seq >= 1 else None


def entry_sha256(data: bytes) -> str:
    """The hash that chains the history: sha256 of an entry's exact stored bytes.

    Entry ``N`` records this hash of entry ``N-1`` as its ``prev`` (``null`` for entry
    1), and a snapshot at ``N`` records it for entry ``N`` as its ``head_sha256``.
    """
    return sha256(data).hexdigest()


def snapshot_prefix(name: str) -> str:
    return f"models/{name}/@snapshots/"


def snapshot_key(name: str, seq: int) -> str:
    return f"{snapshot_prefix(name)}{seq:012d}.json"


def artifact_key(name: str, sha256: str) -> str:
    return f"models/{name}/@artifacts/{sha256}.joblib"


def index_key(name: str) -> str:
    return f"index/{name}/@model"


# Every stored JSON object opens with its own checksum: {"sha256":"<hex>",...}. The
# digest is of the same bytes with 64 zeros in its place, so checking it is one hash of
# the raw bytes (no re-encoding), and a flipped bit that still parses (a pointer moved
# from "1.1.0" to "1.0.0") is caught on read rather than served.
_SEAL_HEAD = b'{"sha256":"'
_SEAL_ZEROS = b"0" * 64
_SEAL_END = len(_SEAL_HEAD) + 64


def seal(body: bytes) -> bytes:
    """Prefix a JSON object's bytes with their sha256 (see ``_SEAL_HEAD``)."""
    rest = body[1:] if body == b"{}" else b"," + body[1:]
    template = _SEAL_HEAD + _SEAL_ZEROS + b'"' + rest
    digest = sha256(template).hexdigest().encode()
    return _SEAL_HEAD + digest + template[_SEAL_END:]


def unseal(data: bytes) -> bytes:
    """The JSON object ``seal`` was given: ``data`` without its checksum field."""
    return b"{" + data[_SEAL_END + 2 :]


def check_seal(data: bytes, where: str) -> None:
    """Raise IntegrityError unless ``data`` opens with the sha256 of its content."""
    if not data.startswith(_SEAL_HEAD) or len(data) < _SEAL_END + 2:
        raise IntegrityError(f"{where} is damaged (no checksum: truncated or not ours)")
    stored = data[len(_SEAL_HEAD) : _SEAL_END]
    digest = sha256(_SEAL_HEAD + _SEAL_ZEROS, size=len(data))
    digest.update(memoryview(data)[_SEAL_END:])  # no copy of a large snapshot
    actual = digest.hexdigest().encode()
    if stored != actual:
        raise IntegrityError(
            f"{where} is damaged (checksum {stored.decode(errors='replace')} does not match "
            f"its content {actual.decode()})"
        )


# A signed object as signing.Keyring.sign stores it: the seal, the signature, then the
# signed (canonical) bytes after their "{".
_SIGNED = re.compile(
    rb'"signature":\{"alg":"hmac-sha256","key_id":"([0-9a-f]{16})","mac":"([0-9a-f]{64})"\},'
)


def signed_body(data: bytes) -> tuple[str, str, memoryview] | None:
    """The key id, MAC and signed bytes (without their opening ``{``) of sealed
    ``data`` stored in the layout signing writes; None for any other layout."""
    match = _SIGNED.match(data, _SEAL_END + 2)
    if match is None:
        return None
    return match[1].decode(), match[2].decode(), memoryview(data)[match.end() :]


def canonical_json(payload: Any) -> bytes:
    """``payload`` as stored JSON: compact, keys sorted, a bare NaN refused (records
    reach here normalized: NaN and infinities tagged, see _values)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def encode(payload: Mapping[str, Any]) -> bytes:
    return seal(canonical_json(payload))


def decode(data: bytes, where: str, *, sealed: bool = False) -> dict[str, Any]:
    """``data``'s JSON object, its seal checked (``sealed``: the caller checked it)."""
    if not sealed:
        check_seal(data, where)
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{where} is damaged (not valid JSON: {exc})") from exc
    if not isinstance(payload, dict):
        raise IntegrityError(f"{where} is damaged (not a JSON object)")
    payload.pop("sha256", None)
    if payload.get("schema") != SCHEMA:
        raise IntegrityError(
            f"{where} has schema {payload.get('schema')!r}; this library reads schema {SCHEMA}"
        )
    return payload
