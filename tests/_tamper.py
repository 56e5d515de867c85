"""Damage done by hand to a registry's storage, for the tests that must detect it.

``overwrite`` changes or plants stored bytes in place, as a disk or a careless hand
would, bypassing the backends' create-if-absent (local folders and memory only).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from modelversions import _lazy, _state, _texts
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.signing import Keyring


def overwrite(backend: Backend, key: str, data: bytes) -> None:
    """Change or plant stored bytes in place, as damage would (no create-if-absent)."""
    if isinstance(backend, LocalBackend):
        path = Path(backend._path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(0o644)  # artifacts are stored read-only
        path.write_bytes(data)
    else:
        assert isinstance(backend, MemoryBackend)
        backend._data[key] = data


def stored(backend: Backend) -> dict[str, bytes]:
    """Every stored object, by key."""
    return {k: backend.read(k) for k in backend.list("")}


def payload(backend: Backend, key: str) -> dict[str, Any]:
    """The decoded JSON of a stored history entry or snapshot (its checksum checked;
    a snapshot as layout 1 holds it: see :func:`snapshot_payload`)."""
    return snapshot_payload(backend.read(key), key)


def snapshot_payload(data: bytes, key: str = "snapshot") -> dict[str, Any]:
    """A snapshot's content as one JSON object, as layout 1 stores it (``versions``
    inline, ``index`` with offsets); a layout-2 snapshot's head seal and block
    digests are checked, its ``records`` description dropped."""
    nl = data.find(b"\n")
    if nl < 0:
        return _state.decode(data, key)
    head = _state.decode(data[:nl], key)
    desc = head.pop("records")
    lines = data[nl + 1 :].split(b"\n")[:-1]  # one record per line
    n = desc["block"]
    blocks = [b"\n".join(lines[i : i + n]) for i in range(0, len(lines), n)]
    assert [hashlib.sha256(b).hexdigest() for b in blocks] == desc["digests"]
    versions = json.loads(b"[" + b",".join(lines) + b"]")
    parts = [json.dumps(v, separators=(",", ":"), sort_keys=True) for v in versions]
    assert "base" not in desc, "a snapshot that leaves blocks in a base"
    texts = [
        text
        for i, chunk in enumerate(head["index"]["order"])
        for text in _texts.unpack(chunk, min(n, len(lines) - i * n))
    ]
    head["index"] = _lazy.encode_index(texts, list(head["index"]["flags"]), parts)
    head["versions"] = versions
    return head


def as_layout1(backend: Backend, key: str, *, sign: Keyring | None = None) -> bytes:
    """Store snapshot ``key`` again as layout 1 (as the library wrote it before
    layout 2; signed with ``sign``); return the new bytes."""
    payload = snapshot_payload(backend.read(key), key)
    payload.pop("signature", None)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    data = _state.seal(body) if sign is None else sign.sign(b"snapshot", body)
    overwrite(backend, key, data)
    return data
