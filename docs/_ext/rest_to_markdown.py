"""A griffe extension for the docs site: reST habits in docstrings rendered as Markdown.

The docstrings use Google sections (``Args:``, ``Raises:``), plain doctests and a few
reST habits that mkdocstrings does not read. Without this extension they would show as
raw text on the site; with it:

- a Sphinx role (``:class:`Backend```, ``:meth:`~ModelRegistry.deploy```) becomes inline
  code with the name as a reader would write it (``~`` drops the dotted path, as Sphinx
  does);
- a doctest block (``>>>`` lines and their output, up to a blank line) becomes a fenced
  ``pycon`` code block, instead of lines run together into one paragraph;
- a paragraph ending in ``::`` (a reST literal block follows) ends in ``:``, and a
  doctest in that literal block becomes a fenced block too;
- a reST simple table (``=====  =====`` borders, no header row) becomes a list whose
  items are ``first column: the rest``.

The docstrings themselves stay as they are (pytest runs their doctests). Loaded by
mkdocs.yml; not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


_BORDER = re.compile(r"=+( +=+)+")


def _fence(lines: list[str], lang: str) -> list[str]:
    """``lines`` (dedented to their common indent) as one fenced code block."""
    indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
    return ["", f"```{lang}", *(x[indent:] for x in lines), "```", ""]


def _table_as_list(block: list[str]) -> list[str]:
    """A reST simple table without a header row as a list: ``- first: the rest``."""
    indent = len(block[0]) - len(block[0].lstrip())
    first_width = len(block[0].strip().split(" ")[0])  # the first column's border
    rows: list[list[str]] = []
    for line in block[1:-1]:
        body = line[indent:]
        if _BORDER.fullmatch(body.strip()):
            continue  # a header separator
        head, rest = body[:first_width].strip(), body[first_width:].strip()
        if head or not rows:
            rows.append([head, rest])
        else:
            rows[-1][1] += " " + rest  # a continuation line of the last row
    return ["", *(f"- {head}: {rest}" for head, rest in rows), ""]


def _markdown(text: str) -> str:
    text = _ROLE.sub(_code, text)
    lines = text.split("\n")
    out: list[str] = []
    literal = False  # the previous paragraph ended with "::": a literal block follows
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>") and (literal or not line.startswith("    ")):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += _fence(block, "pycon")
            literal = False
            continue
        if _BORDER.fullmatch(stripped):  # a reST simple table: keep it as it reads
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                i += 1
                if _BORDER.fullmatch(lines[i - 1].strip()) and (
                    i == len(lines) or not lines[i].strip()
                ):
                    break
            out += _table_as_list(block)
            continue
        if stripped:
            literal = line.endswith("::")
            if literal and stripped != "::":
                line = line[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring's reST habits as Markdown (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
