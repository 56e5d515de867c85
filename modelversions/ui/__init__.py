"""The read-only web view of a registry: ``modelversions ui`` (see ``docs/ui.md``).

The rooms:

- ``_api``: what each ``GET /api/...`` answers, from the registry's reading methods only.
- ``_server``: the standard library's HTTP server, the fixed table of static files,
  404 for any other path, 405 for any method but ``GET`` and ``HEAD``.
- ``static/``: the page (HTML, CSS, JS, SVG), shipped as package data; it builds every
  element with ``textContent``/``createElementNS``, never from HTML text, and loads
  nothing from the network.

This package never writes to a registry: :class:`ViewServer` is given a
:class:`~modelversions.ui._api.Reader`, the seven reading methods of
:class:`~modelversions.ModelRegistry` it uses.
"""

from __future__ import annotations

from modelversions.ui._api import MAX_LIMIT
from modelversions.ui._server import ViewServer, is_loopback

__all__ = ["MAX_LIMIT", "ViewServer", "is_loopback"]
