"""The HTTP server of the web view: routing, static files, refusals (never writes).

One :class:`http.server.ThreadingHTTPServer`; the handler answers ``GET`` and ``HEAD``
only (any other method gets 405), serves a fixed table of static files shipped in the
package (no path from the request ever reaches the file system, so nothing outside the
table can be read) and the JSON API of :mod:`modelversions.ui._api`. Any other path is
a 404. Every answer carries a Content-Security-Policy that allows only the package's
own script and style: even a stored ``<script>`` that slipped past the page's escaping
would not run. A request whose ``Host`` is not the address served is refused (421), so
a web page elsewhere cannot read the view through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from modelversions import (
    InvalidInputError,
    ModelNotFoundError,
    ModelVersionsError,
    VersionNotFoundError,
)
from modelversions.ui import _api

__all__ = ["ViewServer", "is_loopback"]

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/charts.js": ("charts.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_NOT_FOUND = (ModelNotFoundError, VersionNotFoundError, InvalidInputError, LookupError)


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (``127.0.0.1``, ``::1``, ``localhost``).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(filename: str) -> bytes:
    return resources.files("modelversions.ui").joinpath("static").joinpath(filename).read_bytes()


class ViewServer(ThreadingHTTPServer):
    """The web view of one registry, on ``host:port`` (port 0: a free one).

    ``location`` is only shown (in the page's copy-paste lines).

    >>> from modelversions import ModelRegistry
    >>> server = ViewServer(ModelRegistry("memory://"), "127.0.0.1", 0)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.server_close()
    """

    daemon_threads = True

    def __init__(
        self, reader: _api.Reader, host: str, port: int, *, location: str | None = None
    ) -> None:
        super().__init__((host, port), _Handler)
        self.reader = reader
        self.location = location
        self.cache = _api.EventCache(reader)
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.files = {path: _static(name) for path, (name, _) in _STATIC.items()}
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.server_address[1]}/"
        port_text = str(self.server_address[1])
        # On loopback, only requests addressed to loopback (DNS rebinding); bound
        # elsewhere on purpose (--host), whatever name reaches it.
        self.hosts: set[str] | None = None
        if is_loopback(host):
            names = (shown, "127.0.0.1", "localhost", "[::1]")
            self.hosts = {f"{h}:{port_text}" for h in names}

    def cached(self, kind: str, name: str, build: Callable[[], dict[str, Any]]) -> bytes:
        """The answer ``build`` makes for ``name`` as bytes, built again only when the
        history moved (a page polls every few seconds; the answers of a model with
        10,000 versions take tens of milliseconds to build)."""
        seq, _sha = self.reader.head(name)
        hit = self.answers.get((kind, name))
        if hit is not None and hit[0] == seq:
            return hit[1]
        result = build()
        data = _dumps(result)
        # Read after the head: keep the answer only if no change landed meanwhile
        # (else the next request builds it again).
        if self.reader.head(name)[0] == result["seq"] == seq:
            if len(self.answers) >= 16:
                self.answers.clear()
            self.answers[(kind, name)] = (seq, data)
        return data

    def model_json(self, name: str) -> bytes:
        """``/api/models/<name>`` as bytes (see :meth:`cached`)."""
        return self.cached("model", name, lambda: _api.model(self.reader, name, self.location))

    def timeline_json(self, name: str) -> bytes:
        """``/api/models/<name>/timeline`` as bytes (see :meth:`cached`)."""
        return self.cached("timeline", name, lambda: _api.timeline(self.reader, self.cache, name))

    def warm(self) -> None:
        """Build every model's answers once (``modelversions ui`` runs this in a thread
        at start, so even the first view of a long history finds its timeline read)."""
        try:
            for name in self.reader.models():
                self.model_json(name)
                self.timeline_json(name)
        except ModelVersionsError:
            pass  # the page shows the error when it asks

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that leaves mid-answer is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (for tests and embedding); stop with ``shutdown()``."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="modelversions-ui"
        )
        thread.daemon = True
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    server_version = "modelversions-ui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per poll
        pass

    # ------------------------------------------------------------------ methods
    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, _error("read-only: only GET and HEAD"), True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    # ------------------------------------------------------------------ routing
    def _answer(self, *, body: bool) -> None:
        hosts = self.server.hosts
        if hosts is not None and self.headers.get("Host", "") not in hosts:
            self._send(HTTPStatus.MISDIRECTED_REQUEST, _error("unexpected Host header"), body)
            return
        parts = urlsplit(self.path)
        if parts.path in _STATIC:
            ctype = _STATIC[parts.path][1]
            self._send(HTTPStatus.OK, self.server.files[parts.path], body, ctype)
            return
        try:
            route = _route(parts.path, parse_qs(parts.query))
        except _BadRequest as exc:
            self._send(HTTPStatus.BAD_REQUEST, _error(str(exc)), body)
            return
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, _error(f"no such page: {parts.path}"), body)
            return
        try:
            result = route(self.server)
        except _NOT_FOUND as exc:
            self._send(HTTPStatus.NOT_FOUND, _error(str(exc)), body)
        except ModelVersionsError as exc:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _error(str(exc)), body)
        else:
            data = result if isinstance(result, bytes) else _dumps(result)
            self._send(HTTPStatus.OK, data, body)

    def _send(
        self, status: HTTPStatus, data: bytes, body: bool, ctype: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if body:
            self.wfile.write(data)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


Route = Callable[["ViewServer"], Any]


class _BadRequest(ValueError):
    """A query parameter that is not a count (answered 400)."""


def _route(path: str, query: dict[str, list[str]]) -> Route | None:
    """The API call a path names, or None (404); raises _BadRequest (400) for a bad
    ``offset``/``limit``. Each segment is percent-decoded after splitting, so a model
    name with ``/`` arrives as one segment (``team%2Fchurn``)."""
    segments = path.split("/")
    if segments[:2] != ["", "api"] or len(segments) < 3 or segments[2] != "models":
        return None
    try:
        args = [unquote(s, errors="strict") for s in segments[3:]]
    except UnicodeDecodeError:
        return None
    if not args:
        return lambda s: _api.models(s.reader, s.location)
    if any(not a for a in args):
        return None
    name = args[0]
    if len(args) == 1:
        return lambda s: s.model_json(name)
    if len(args) == 2 and args[1] == "timeline":
        return lambda s: s.timeline_json(name)
    if len(args) == 2 and args[1] in ("history", "versions"):
        offset = _number(query, "offset", 0)
        limit = _number(query, "limit", 50)
        if args[1] == "history":
            return lambda s: _api.page(s.reader, name, offset, limit)
        return lambda s: _api.versions_page(s.reader, name, offset, limit)
    if len(args) == 3 and args[1] == "versions":
        text = args[2]
        return lambda s: _api.version(s.reader, s.cache, name, text, s.location)
    return None


def _number(query: dict[str, list[str]], key: str, default: int) -> int:
    """The count ``key`` (digits only, under 10 of them), or ``default`` when absent."""
    values = query.get(key)
    if not values:
        return default
    text = values[-1]
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        raise _BadRequest(f"{key} must be a count (0 to 999999999), not {text!r}")
    return int(text)
