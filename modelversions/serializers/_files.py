"""The files of path versions in storage: which are in use, collecting, checking.

Path versions share content-addressed files (``models/<name>/@files/<sha256>``). A
file may go only when a manifest that listed it goes (its version pruned or deleted)
and no manifest of an unpruned version lists it. A file that no committed manifest
ever listed may belong to a save still in flight (files first, then the manifest, then
the record): only ``verify(repair=True)`` removes those, after ``min_age``.
Manifests are read back and matched to their record's sha256 before they are trusted.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable

from modelversions import _state
from modelversions.backends import Backend
from modelversions.errors import IntegrityError
from modelversions.records import ModelVersion
from modelversions.serializers import PATH_FORMAT
from modelversions.serializers._manifest import Manifest, parse
from modelversions.serializers._paths import files_key, files_prefix

__all__ = [
    "collect_files",
    "files_in_use",
    "read_manifest",
    "stored_files",
    "verify_files",
]


def read_manifest(backend: Backend, mv: ModelVersion) -> Manifest:
    """The manifest of path version ``mv``, matched to its record.

    Raises:
        FileNotFoundError: it is not stored.
        IntegrityError: its bytes do not match the record, or it is malformed.
    """
    key = _state.artifact_key(mv.name, mv.sha256)
    data = backend.read(key)
    if hashlib.sha256(data).hexdigest() != mv.sha256 or len(data) != mv.size:
        raise IntegrityError(f"the manifest {key} does not match the record of {mv.version}")
    return parse(data, key)


def files_in_use(backend: Backend, records: Iterable[ModelVersion]) -> set[str] | None:
    """The file sha256s the unpruned path versions among ``records`` list (None: unknown)."""
    used: set[str] = set()
    for mv in records:
        if mv.pruned or mv.format != PATH_FORMAT:
            continue
        try:
            used.update(e.sha256 for e in read_manifest(backend, mv).files)
        except (OSError, IntegrityError):
            return None  # cannot tell what this version needs: remove nothing
    return used


def stored_files(backend: Backend, name: str) -> list[str]:
    """The sha256s under ``models/<name>/@files/``."""
    prefix = files_prefix(name)
    return [k[len(prefix) :] for k in backend.list(prefix)]


def collect_files(
    backend: Backend, name: str, removed: list[Manifest], records: Iterable[ModelVersion]
) -> None:
    """Delete the files of ``removed`` manifests that no unpruned version lists.

    ``records``: the model's newest records (read after the manifests were removed).
    """
    candidates = {e.sha256 for m in removed for e in m.files}
    if not candidates:
        return
    used = files_in_use(backend, records)
    if used is None:
        warnings.warn(
            f"a manifest of {name!r} could not be read: its files were kept "
            "(run verify() to see why)",
            stacklevel=4,
        )
        return
    for sha in sorted(candidates - used):
        backend.delete(files_key(name, sha))


#: One problem for verify(): (kind, detail, version or None).
Problem = tuple[str, str, "str | None"]


def verify_files(
    backend: Backend,
    name: str,
    records: list[ModelVersion],
    *,
    repair: bool,
    older_than: Callable[[str], bool],
    fresh: Callable[[], list[ModelVersion]],
) -> tuple[list[Problem], list[str], int]:
    """Hash every file the unpruned path versions list; find files none lists.

    Returns the problems, the keys removed (``repair``: orphaned files for which
    ``older_than(key)`` holds and that the ``fresh()`` records still do not list) and
    the number of files hashed. A manifest that cannot be read is reported by the
    artifact check; its files are then not checked and no file is removed.
    """
    from modelversions.serialization import hash_stream

    problems: list[Problem] = []
    hashed: dict[str, str | None] = {}
    readable = True
    for mv in records:
        if mv.pruned or mv.format != PATH_FORMAT:
            continue
        try:
            manifest = read_manifest(backend, mv)
        except (OSError, IntegrityError):
            readable = False
            continue
        for entry in manifest.files:
            key = files_key(name, entry.sha256)
            if entry.sha256 not in hashed:
                try:
                    with backend.open_read(key) as fh:
                        sha, size = hash_stream(fh)
                    bad = sha != entry.sha256 or size != entry.size
                    hashed[entry.sha256] = f"sha256 {sha} ({size} bytes)" if bad else None
                except FileNotFoundError:
                    hashed[entry.sha256] = "missing"
            err = hashed[entry.sha256]
            if err == "missing" and _gone_since(mv, fresh):
                continue  # pruned or deleted by a commit after verify's replay
            if err == "missing":
                problems.append(
                    ("artifact-missing", f"file {entry.path!r} ({key}) is missing", str(mv.version))
                )
            elif err is not None:
                problems.append(
                    (
                        "artifact-damaged",
                        f"file {entry.path!r} ({key}): {err}, "
                        f"expected {entry.sha256} ({entry.size} bytes)",
                        str(mv.version),
                    )
                )
    removed: list[str] = []
    if not readable:
        return problems, removed, len(hashed)
    for sha in stored_files(backend, name):
        if sha in hashed:
            continue
        key = files_key(name, sha)
        problems.append(("orphan-artifact", f"{key} is listed by no version", None))
        if repair and older_than(key):
            used = files_in_use(backend, fresh())
            if used is not None and sha not in used:
                backend.delete(key)
                removed.append(key)
    return problems, removed, len(hashed)


def _gone_since(mv: ModelVersion, fresh: Callable[[], list[ModelVersion]]) -> bool:
    """True if ``mv`` was pruned or deleted since (its files may go legitimately)."""
    try:
        now = {r.version: r for r in fresh()}.get(mv.version)
    except IntegrityError:
        return False
    return now is None or now.pruned or now.sha256 != mv.sha256
