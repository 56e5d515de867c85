"""The ``progress=`` argument: ``None``/``False`` (silent), ``True`` (tqdm) or a callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelversions.errors import InvalidInputError

__all__ = ["make_progress"]

Progress = Callable[[int, int], None]


def make_progress(progress: Any) -> Progress | None:
    """A ``(done_bytes, total_bytes)`` callable for ``progress``, or None.

    ``True`` draws a tqdm bar (on stderr) when tqdm is installed, else nothing.

    Raises:
        InvalidInputError: not None, a bool or a callable.

    >>> seen = []; make_progress(lambda d, t: seen.append((d, t)))(5, 10); seen
    [(5, 10)]
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return _Bar(tqdm)
    if callable(progress):
        return progress  # type: ignore[no-any-return]
    raise InvalidInputError(f"progress must be True, False, None or a callable, not {progress!r}")


class _Bar:
    """Feeds a tqdm bar from ``(done, total)`` reports; closes it at the total."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=total, unit="B", unit_scale=True, leave=False)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()
