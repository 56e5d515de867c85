"""The web view's JSON API and server, checked without a browser (modelversions/ui/)."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from modelversions import ModelRegistry
from modelversions.ui import MAX_LIMIT, ViewServer, is_loopback

import _ui  # isort: skip  (tests/ is on sys.path)

ENC = quote(_ui.NAME, safe="")  # what encodeURIComponent gives: team%2Fchurn


def _request(
    url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def _get(url: str, path: str) -> Any:
    status, headers, body = _request(url, path)
    assert status == 200, (path, status, body)
    assert headers["content-type"] == "application/json"
    return json.loads(body)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _ui.build(ModelRegistry(tmp_path / "reg"))
    return tmp_path / "reg"


@pytest.fixture
def url(folder: Path) -> Iterator[str]:
    server = ViewServer(ModelRegistry(folder), "127.0.0.1", 0, location=str(folder))
    server.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


def test_models_lists_each_model_with_deployments_and_last_change(url: str, folder: Path) -> None:
    data = _get(url, "/api/models")
    assert data["registry"] == str(folder)
    by_name = {m["name"]: m for m in data["models"]}
    assert sorted(by_name) == ["plain", _ui.NAME]
    churn = by_name[_ui.NAME]
    assert churn["versions"] == 4
    assert churn["envs"] == {
        "production": {"version": "1.1.0", "status": "stable"},
        "staging": {"version": "1.1.0", "status": "stable"},
    }
    last = churn["last_change"]
    assert last["action"] == "rollback" and last["reason"].startswith("deploy check failed")
    assert last["seq"] == churn["seq"] == 12
    assert by_name["plain"]["envs"] == {} and by_name["plain"]["last_change"]["action"] == "save"


def test_model_has_pointers_and_metric_columns(url: str, folder: Path) -> None:
    data = _get(url, f"/api/models/{ENC}")
    assert data["name"] == _ui.NAME and data["seq"] == 12 and data["count"] == 4
    assert data["registry"] == str(folder)
    assert data["envs"] == {
        "production": {"version": "1.1.0", "status": "stable"},
        "staging": {"version": "1.1.0", "status": "stable"},
    }
    assert data["metric_keys"] == sorted(["auc", "loss", _ui.HOSTILE[0]])
    metrics = data["metrics"]
    assert metrics["versions"] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert metrics["status"] == ["stable", "stable", "failed", "failed"]
    assert metrics["values"]["auc"] == [0.7, 0.71, 0.72, 0.73]
    assert sorted(metrics["values"]) == data["metric_keys"]


def test_timeline_is_every_pointer_move(url: str) -> None:
    data = _get(url, f"/api/models/{ENC}/timeline")
    assert data["seq"] == 12 and data["versions"] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    kinds = [(e["kind"], e["env"], e["from"], e["to"]) for e in data["moves"]]
    assert kinds == [
        ("deploy", "staging", None, "1.0.0"),
        ("deploy", "production", None, "1.0.0"),
        ("deploy", "production", "1.0.0", "1.1.0"),
        ("deploy", "production", "1.1.0", "1.2.0"),
        ("rollback", "production", "1.2.0", "1.1.0"),
        ("deploy", "staging", "1.0.0", "1.1.0"),
        ("deploy", "production", "1.1.0", "1.3.0"),
        ("check-failed", "production", "1.3.0", "1.1.0"),
    ]
    rollback = data["moves"][4]
    assert rollback["failed"] == ["1.2.0"] and rollback["reason"] == _ui.HOSTILE[0]
    assert data["moves"][7]["failed"] == ["1.3.0"]


def _timeline_from_history(reg: ModelRegistry, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each env's deploys, rollbacks and guarded restores, as the whole history says."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for e in reg.history(name):
        if e.action in ("deploy", "rollback"):
            assert e.env is not None
            row = (e.seq, e.action, str(e.from_version), str(e.to_version), e.reason)
            out.setdefault(e.env, []).append(row)
    return out


@pytest.mark.parametrize("moves_files", [True, False])
def test_timeline_equals_what_the_whole_history_says(tmp_path: Path, moves_files: bool) -> None:
    """Long enough for moves files (written every 16 entries) and entries after them;
    without them (an older registry) the timeline is read from the log alone."""
    reg = ModelRegistry(tmp_path / "reg")
    _ui.build(reg)
    for i in range(30):
        mv = reg.save(_ui.NAME, {"w": i}, metrics={"auc": i / 100})
        reg.deploy(_ui.NAME, mv.version, env=("staging", "production")[i % 2])
    reg.rollback(_ui.NAME, env="production", reason="late rollback")
    moves = sorted((tmp_path / "reg").rglob("@moves/*.json"))
    assert [int(p.stem) for p in moves] == [48, 64]
    if not moves_files:
        for p in moves:
            p.unlink()
    server = ViewServer(ModelRegistry(tmp_path / "reg"), "127.0.0.1", 0)
    server.start()
    try:
        data = _get(server.url, f"/api/models/{ENC}/timeline")
    finally:
        server.shutdown()
        server.server_close()
    shown: dict[str, list[tuple[Any, ...]]] = {}
    for m in data["moves"]:
        row = (m["seq"], m["action"], str(m["from"]), str(m["to"]), m["reason"])
        shown.setdefault(m["env"], []).append(row)
    assert shown == _timeline_from_history(reg, _ui.NAME)
    assert data["seq"] == reg.head(_ui.NAME)[0] == 73


def test_versions_are_paged_newest_first(url: str) -> None:
    path = f"/api/models/{ENC}/versions"
    first = _get(url, f"{path}?offset=0&limit=3")
    assert first["total"] == 4 and first["seq"] == 12
    assert [v["version"] for v in first["versions"]] == ["1.3.0", "1.2.0", "1.1.0"]
    assert first["versions"][2]["deployed_in"] == ["production", "staging"]
    assert first["versions"][0]["sha256"] and first["versions"][0]["format"] == "joblib"
    assert [v["version"] for v in _get(url, f"{path}?offset=3&limit=3")["versions"]] == ["1.0.0"]
    assert _get(url, f"{path}?offset=4")["versions"] == []
    assert _get(url, path)["limit"] == 50
    assert _get(url, f"{path}?limit=100000")["limit"] == MAX_LIMIT


@pytest.mark.parametrize("which", ["history", "versions"])
@pytest.mark.parametrize(
    "bad", ["offset=-1", "limit=x", "offset=1e3", "limit=99999999999", "offset=%D9%A3", "limit=+1"]
)
def test_a_bad_count_is_400(url: str, which: str, bad: str) -> None:
    status, _, body = _request(url, f"/api/models/{ENC}/{which}?{bad}")
    assert status == 400 and "must be a count" in json.loads(body)["error"], (which, bad)


def test_history_is_paged_newest_first(url: str) -> None:
    path = f"/api/models/{ENC}/history"
    first = _get(url, f"{path}?offset=0&limit=4")
    assert first["total"] == 12 and [e["seq"] for e in first["events"]] == [12, 11, 10, 9]
    second = _get(url, f"{path}?offset=4&limit=4")
    assert [e["seq"] for e in second["events"]] == [8, 7, 6, 5]
    last = _get(url, f"{path}?offset=9&limit=4")
    assert [e["seq"] for e in last["events"]] == [3, 2, 1]
    assert _get(url, f"{path}?offset=50")["events"] == []
    assert _get(url, path)["limit"] == 50
    assert _get(url, f"{path}?limit=100000")["limit"] == MAX_LIMIT


def test_version_page_has_record_events_and_envs(url: str) -> None:
    data = _get(url, f"/api/models/{ENC}/versions/1.2.0")
    assert data["record"]["status"] == "failed" and data["deployed_in"] == []
    assert [e["seq"] for e in data["events"]] == [3, 8, 9]
    assert _get(url, f"/api/models/{ENC}/versions/v1.1")["record"]["version"] == "1.1.0"
    assert _get(url, f"/api/models/{ENC}/versions/1.1.0")["deployed_in"] == [
        "production",
        "staging",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/team/churn",  # the name not encoded: two segments
        "/api/models/nope",
        f"/api/models/{ENC}/versions/9.9.9",
        f"/api/models/{ENC}/versions/not-a-version",
        f"/api/models/{ENC}/other",
        f"/api/models/{ENC}/timeline/x",
        "/api/models/team/churn/versions",  # "team" has no "churn/versions"
        "/api/models/nope/timeline",
        "/api/models/nope/versions",
        "/api/models/%2e%2e",
        "/api/models/%ff%fe",
        "/api/models//history",
        "/api",
        "/api/modelsx",
        "/index.html",
        "/static/",
        "/static/app.py",
        "/static/../_server.py",
        "/static/%2e%2e/_server.py",
        "/../../pyproject.toml",
        "/etc/passwd",
        "//etc/passwd",
        "/static/app.js/",
    ],
)
def test_anything_else_is_404(url: str, path: str) -> None:
    status, _headers, body = _request(url, path)
    assert status == 404, (path, status)
    assert "error" in json.loads(body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/models", f"/api/models/{ENC}", "/nope"])
def test_methods_other_than_get_and_head_are_refused(
    url: str, folder: Path, method: str, path: str
) -> None:
    status, headers, _ = _request(url, path, method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_gives_headers_without_a_body(url: str) -> None:
    status, headers, body = _request(url, "/api/models", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_static_files_ship_with_a_strict_policy(url: str) -> None:
    for path, kind in [
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/charts.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ]:
        status, headers, body = _request(url, path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    page = _request(url, "/")[2].decode()
    assert "http" not in page.replace("http-equiv", "")  # nothing from the network
    script = _request(url, "/static/app.js")[2].decode()
    assert "innerHTML" not in script and "encodeURIComponent" in script


def test_a_foreign_host_header_is_refused(url: str) -> None:
    """A page elsewhere that rebinds its DNS name to 127.0.0.1 cannot read the view."""
    status, _, _ = _request(url, "/api/models", headers={"Host": "evil.example:80"})
    assert status == 421
    port = urlsplit(url).port
    assert _request(url, "/api/models", headers={"Host": f"localhost:{port}"})[0] == 200


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            st = os.stat(os.path.join(root, n))
            out[os.path.join(root, n)] = (st.st_size, st.st_mtime_ns)
    return out


def test_serving_writes_nothing(url: str, folder: Path) -> None:
    before = _files(folder)
    for path in [
        "/api/models",
        f"/api/models/{ENC}",
        f"/api/models/{ENC}/history?offset=0&limit=500",
        f"/api/models/{ENC}/timeline",
        f"/api/models/{ENC}/versions?offset=0&limit=500",
        f"/api/models/{ENC}/versions/1.0.0",
        "/api/models/plain",
        "/api/models/new-model",
    ]:
        _request(url, path)
    assert _files(folder) == before


def test_a_change_made_elsewhere_shows_on_the_next_request(url: str, folder: Path) -> None:
    assert _get(url, f"/api/models/{ENC}")["seq"] == 12
    other = ModelRegistry(folder)
    other.deploy(_ui.NAME, "1.0.0", env="production", reason="manual")
    data = _get(url, f"/api/models/{ENC}")
    assert data["seq"] == 13 and data["envs"]["production"]["version"] == "1.0.0"
    assert _get(url, f"/api/models/{ENC}/timeline")["moves"][-1]["reason"] == "manual"
    page = _get(url, f"/api/models/{ENC}/history?limit=1")
    assert page["total"] == 13 and page["events"][0]["reason"] == "manual"


def test_every_backend_serves_the_same_answers(registry: ModelRegistry) -> None:
    _ui.build(registry)
    server = ViewServer(registry, "127.0.0.1", 0)
    server.warm()
    assert sorted(server.answers) == sorted(
        (kind, name) for kind in ("model", "timeline") for name in ("plain", _ui.NAME)
    )
    server.start()
    try:
        data = _get(server.url, f"/api/models/{ENC}")
        assert {env: d["version"] for env, d in data["envs"].items()} == {
            "production": "1.1.0",
            "staging": "1.1.0",
        }
        assert len(_get(server.url, f"/api/models/{ENC}/timeline")["moves"]) == 8
        assert _get(server.url, f"/api/models/{ENC}/versions?limit=2")["total"] == 4
        assert _get(server.url, f"/api/models/{ENC}/history?limit=3")["total"] == 12
    finally:
        server.shutdown()
        server.server_close()


class _OnlyReads:
    """The seven reading methods and nothing else: what the view is allowed to call."""

    def __init__(self, reg: ModelRegistry) -> None:
        self.models, self.versions, self.envs = reg.models, reg.versions, reg.envs
        self.get, self.head, self.history, self.moves = reg.get, reg.head, reg.history, reg.moves


def test_the_view_needs_only_the_reading_methods(folder: Path) -> None:
    server = ViewServer(_OnlyReads(ModelRegistry(folder)), "127.0.0.1", 0)
    server.start()
    try:
        for path in [
            "/api/models",
            f"/api/models/{ENC}",
            f"/api/models/{ENC}/history?offset=3&limit=3",
            f"/api/models/{ENC}/timeline",
            f"/api/models/{ENC}/versions?offset=1",
            f"/api/models/{ENC}/versions/1.3.0",
        ]:
            _get(server.url, path)
    finally:
        server.shutdown()
        server.server_close()


def test_cli_ui_prints_its_url_and_serves(folder: Path) -> None:
    with _ui.ui_process(folder) as (url, proc):
        assert url.startswith("http://127.0.0.1:")
        assert [m["name"] for m in _get(url, "/api/models")["models"]] == ["plain", _ui.NAME]
        assert proc.poll() is None


def test_cli_ui_warns_when_not_on_loopback(folder: Path) -> None:
    with _ui.ui_process(folder, "--host", "0.0.0.0") as (url, proc):
        assert url.startswith("http://0.0.0.0:")
        port = urlsplit(url).port
        # Bound to every address on purpose: reached by whatever name the network uses.
        status, _, _ = _request(url, "/api/models", headers={"Host": f"box.lan:{port}"})
        assert status == 200
        os.kill(proc.pid, 15)
        proc.wait(timeout=10)
        assert proc.stderr is not None
        assert "no authentication" in proc.stderr.read()


def test_cli_ui_refuses_a_bad_port_and_a_missing_registry(tmp_path: Path) -> None:
    from modelversions import cli

    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["ui", "--port", "70000"])
    assert exc.value.code == 2
    assert cli.main(["--registry", str(tmp_path / "missing"), "ui"]) == cli.EXIT_NOT_FOUND


def test_is_loopback() -> None:
    assert is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
