"""Small helpers the registry's rooms share: the storage-error boundary, the clock, the user.

Owns no state and never touches storage itself.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from modelversions.errors import ModelVersionsError, StorageError


def login_name() -> str:
    """The user recorded in history by default: the login name, else the uid."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors when no user database entry exists
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def now() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def storage(what: str) -> Iterator[None]:
    """Translate backend OSErrors into StorageError (FileNotFound/Exists pass through)."""
    try:
        yield
    except (FileNotFoundError, FileExistsError, ModelVersionsError):
        raise
    except OSError as exc:
        raise StorageError(f"storage failed while {what}: {exc}") from exc
