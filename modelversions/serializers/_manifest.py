"""The manifest of a file or folder version: every relative path, size and sha256.

A path version is stored as its files (content-addressed, see
:mod:`modelversions.serializers._paths`) plus this manifest, a canonical JSON object::

    {"dirs": ["a", "a/empty"], "files": [{"path": "a/w.bin", "sha256": "...",
     "size": 3}], "kind": "dir", "name": "model", "schema": 1}

``kind`` is ``"file"`` (one entry, the file's own ``name``) or ``"dir"`` (``dirs`` lists
every folder below the root, empty ones included). Keys and lists are sorted, so equal
trees give equal bytes and the same sha256: the version record's ``sha256``/``size``
are the manifest's. :func:`parse` refuses anything that could leave the folder it is
materialized into (absolute paths, ``..``, empty or duplicate names, a file inside a
file). Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from modelversions.errors import IntegrityError

__all__ = ["Entry", "Manifest", "parse"]

SCHEMA = 1
_SHA = re.compile(r"[0-9a-f]{64}\Z")
_MAX_COMPONENT = 255


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One file: its path below the root (``/``-separated), sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class Manifest:
    """What a path version holds. ``name`` is the saved file's or folder's own name."""

    kind: str
    name: str
    files: tuple[Entry, ...]
    dirs: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def encode(self) -> bytes:
        """The canonical bytes (sorted keys and entries, ASCII JSON)."""
        doc = {
            "schema": SCHEMA,
            "kind": self.kind,
            "name": self.name,
            "dirs": sorted(self.dirs),
            "files": [
                {"path": e.path, "sha256": e.sha256, "size": e.size}
                for e in sorted(self.files, key=lambda e: e.path)
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def check_component(name: str, where: str) -> str:
    """``name`` if it is one acceptable path component, else IntegrityError."""
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\0" in name
        or len(name) > _MAX_COMPONENT
    )
    if bad:
        raise IntegrityError(f"{where}: unacceptable file name {name!r}")
    return name


def check_relpath(path: Any, where: str) -> str:
    if not isinstance(path, str):
        raise IntegrityError(f"{where}: a path must be a str, not {path!r}")
    for part in path.split("/"):
        check_component(part, where)
    return path


def parse(data: bytes, where: str) -> Manifest:
    """The manifest in ``data`` (bytes already matched to their sha256), checked.

    Raises:
        IntegrityError: not a manifest, or a path that could escape the folder, a
            duplicate, a file below a file, a folder missing from ``dirs``.

    >>> m = Manifest("dir", "m", (Entry("a/x", "0" * 64, 1),), ("a",))
    >>> parse(m.encode(), "test") == m
    True
    """
    try:
        doc = json.loads(data)
        kind, name, schema = doc["kind"], doc["name"], doc["schema"]
        raw_files, raw_dirs = doc["files"], doc["dirs"]
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{where} is not a manifest: {exc!r}") from exc
    if schema != SCHEMA or kind not in ("file", "dir"):
        raise IntegrityError(f"{where}: unknown manifest schema {schema!r} or kind {kind!r}")
    if not isinstance(raw_files, list) or not isinstance(raw_dirs, list):
        raise IntegrityError(f"{where}: files and dirs must be lists")
    check_component(name, where)
    dirs = tuple(check_relpath(d, where) for d in raw_dirs)
    files = []
    for item in raw_files:
        try:
            entry = Entry(check_relpath(item["path"], where), item["sha256"], item["size"])
        except (TypeError, KeyError) as exc:
            raise IntegrityError(f"{where}: malformed entry {item!r}") from exc
        ok_sha = isinstance(entry.sha256, str) and _SHA.match(entry.sha256)
        ok_size = type(entry.size) is int and entry.size >= 0
        if not ok_sha or not ok_size:
            raise IntegrityError(f"{where}: malformed entry {item!r}")
        files.append(entry)
    _check_tree(kind, name, files, dirs, where)
    return Manifest(kind, name, tuple(files), dirs)


def _check_tree(
    kind: str, name: str, files: list[Entry], dirs: tuple[str, ...], where: str
) -> None:
    if kind == "file":
        if len(files) != 1 or dirs or files[0].path != name:
            raise IntegrityError(f"{where}: a file manifest holds exactly its one file")
        return
    dir_set = set(dirs)
    paths = [e.path for e in files]
    if len(dir_set) != len(dirs) or len(set(paths)) != len(paths) or dir_set & set(paths):
        raise IntegrityError(f"{where}: a path is listed twice")
    for path in [*dirs, *paths]:
        parent = path.rpartition("/")[0]
        if parent and parent not in dir_set:
            raise IntegrityError(f"{where}: {path!r} is in a folder the manifest does not list")
