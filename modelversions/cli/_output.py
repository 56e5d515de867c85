"""Everything the command line prints goes through here: escaping, tables, colour.

Stored text (reasons, descriptions, tags, metric keys, users, hosts) is whatever some
writer put there, so every line written to the terminal passes through :func:`_safe`,
which shows control and invisible formatting characters as escapes (the one place that
does; its adversarial tests are in ``tests/test_cli_hardening.py``). Status words are
coloured only on a terminal, and only by :class:`_Out` itself. JSON output is escaped by
``json.dumps``. Nothing here reads a registry.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from modelversions import Status
from modelversions.cli._shell import PROG

# Characters a terminal may act on or that change how a line reads: C0/C1 controls
# (newline, ESC...), format characters (bidi overrides such as U+202E, zero-width
# marks), line and paragraph separators, surrogates and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    import unicodedata  # only for text that is not printable (see _safe)

    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    if unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _safe(text: object) -> str:
    r"""``text`` with every control or invisible formatting character shown as an escape.

    Everything the command line prints passes through here (a newline shows as ``\n``,
    ESC as ``\x1b``, U+202E as ``\u202e``), so stored text (reasons, descriptions, tags,
    metric keys, users, hosts) can neither start a new line nor drive the terminal.
    Backslashes are printed as they are. JSON output is escaped by ``json.dumps``.

    >>> print(_safe("ok\n\x1b[2J\u202egnp.exe"))
    ok\n\x1b[2J\u202egnp.exe
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) for ch in text)


_COLORS = {Status.STABLE.value: "32", Status.CANDIDATE.value: "33", Status.FAILED.value: "31"}


def _use_color(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Out:
    """Where and how a command prints."""

    def __init__(self, stream: IO[str], as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.color = not as_json and _use_color(stream)

    def line(self, text: str = "", *, status: str | None = None) -> None:
        """Print ``text`` (escaped: see :func:`_safe`) as one line, then ``status``
        (colored on a terminal when it is a status word)."""
        tail = "" if status is None else self._paint(status)
        self.stream.write(_safe(text) + tail + "\n")

    def _paint(self, word: str) -> str:
        if self.color and word in _COLORS:
            return f"\x1b[{_COLORS[word]}m{word}\x1b[0m"
        return _safe(word)

    def json(self, value: Any) -> None:
        self.stream.write(json.dumps(value, indent=2) + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Left-aligned columns (cells escaped: see :func:`_safe`); status words are
        colored on a terminal."""
        rows = [[_safe(cell) for cell in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        self.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            cells = []
            for cell, width in zip(row, widths, strict=True):
                padded = cell.ljust(width)
                if self.color and cell in _COLORS:
                    padded = self._paint(cell) + " " * (width - len(cell))
                cells.append(padded)
            self.stream.write("  ".join(cells).rstrip() + "\n")  # cells are escaped


def _error(message: str) -> None:
    """Print an error as one escaped line on stderr (it may quote stored text)."""
    print(f"{PROG}: error: {_safe(message)}", file=sys.stderr)
