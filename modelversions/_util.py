"""Small helpers the registry's rooms share: argument checks, the storage-error boundary,
the clock, the user. Owns no state and never touches storage itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelversions.errors import InvalidInputError, ModelVersionsError, StorageError

if TYPE_CHECKING:
    from datetime import datetime as datetime
    from datetime import timezone as timezone
else:
    try:  # datetime's own classes, without running datetime.py first (~1.5 ms)
        from _datetime import datetime, timezone
    except ImportError:  # pragma: no cover (an interpreter without the C module)
        from datetime import datetime, timezone

#: The environment variable holding the signing key (``signing.ENV_KEY``); here so a
#: registry opened without keys can check it without importing :mod:`modelversions.signing`.
SIGNING_KEY_ENV = "MODELVERSIONS_SIGNING_KEY"


def login_name() -> str:
    """The user recorded in history by default: the login name, else the uid."""
    import getpass  # only when no user= is given: `import modelversions` does not need it

    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors when no user database entry exists
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def host_name() -> str:
    """The host's name as ``socket.gethostname()`` says (on POSIX without importing socket,
    which costs a fresh process ~3 ms)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


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


# ---------------------------------------------------------------------- argument checks
#: Longest text argument (a reason, a user name) in characters: each is kept in the history.
MAX_TEXT = 64 * 1024


def check_text(value: object, what: str, *, limit: int = MAX_TEXT) -> None:
    """Refuse a text argument that is neither a ``str`` nor ``None``, or longer than ``limit``."""
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str or None, not {type(value).__name__}")
    if value is not None and len(value) > limit:
        raise InvalidInputError(
            f"{what} is {len(value):,} characters long; at most {limit:,} are kept in the history"
        )


def check_flag(value: object, what: str) -> None:
    """Refuse a flag that is not a ``bool`` (``force="no"`` would otherwise be true)."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be True or False, not {value!r}")


def check_seconds(value: object, what: str) -> None:
    """Refuse a duration that is not a finite, non-negative int or float."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInputError(
            f"{what} must be a finite, non-negative number of seconds, not {value!r}"
        )


def check_callable(check: object, what: str = "check") -> None:
    if check is not None and not callable(check):
        raise InvalidInputError(f"{what} must be callable, not {type(check).__name__}")


def check_int(value: object, what: str, least: int) -> None:
    """Refuse a count that is not an ``int`` of at least ``least`` (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InvalidInputError(f"{what} must be an int >= {least}, not {value!r}")
