"""A griffe extension for the docs site: reST habits in docstrings rendered as Markdown.

The docstrings use Google sections (``Args:``, ``Raises:``), plain doctests and a few
reST habits that mkdocstrings does not read. Without this extension they would show as
raw text on the site; with it:

- a Sphinx role (``:class:`Backend```, ``:meth:`~ModelRegistry.deploy```) becomes inline
  code with the name as a reader would write it (``~`` drops the dotted path, as Sphinx
  does);
- a doctest block (``>>>`` lines and their output, up to a blank line) becomes a fenced
  ``pycon`` code block, instead of lines run together into one paragraph;
- a paragraph ending in ``::`` (a reST literal block follows) ends in ``:``.

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


def _markdown(text: str) -> str:
    text = _ROLE.sub(_code, text)
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        if line.endswith("::") and not line.endswith(":::") and stripped != "::":
            line = line[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring's reST habits as Markdown (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
