"""The web view in a real browser: Debian's Chromium driven by Playwright (docs/ui.md).

``modelversions ui`` runs as a subprocess on 127.0.0.1 with a free port, on a folder
registry built here with deploys, a rollback, a failed guarded deploy and hostile text in
every name-safe field. The model page's screenshot is saved in the test's temporary
folder, and into docs/ (docs/ui.md shows it) with MODELVERSIONS_UPDATE_SCREENSHOTS=1,
so a plain test run leaves the worktree clean. The scale figures (10,000 versions,
20,000 events; the first view of a server just started, then later views) are taken
on a memory registry and on a folder holding the same bytes, served from a thread,
and printed, not asserted (see docs/ui.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from modelversions import ModelRegistry
from modelversions.backends import Backend
from modelversions.backends.local import LocalBackend
from modelversions.backends.memory import MemoryBackend
from modelversions.ui import ViewServer

import _ui  # isort: skip  (tests/ is on sys.path)

CHROMIUM = "/usr/bin/chromium"
_CLI = [sys.executable, "-m", "modelversions"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
ENC = quote(_ui.NAME, safe="")
REFRESH_S = 3  # app.js's REFRESH_MS
DASH = "\N{EN DASH}"  # the page writes ranges as 1\N{EN DASH}20


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"the web view's browser tests drive Debian's Chromium at {CHROMIUM}, which is "
            "not installed: run `apt-get install -y chromium` (.ci/run does it)",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui") / "reg"
    reg = ModelRegistry(path)
    _ui.build(reg, pause=0.25)  # spread in time, so the timeline's steps show apart
    for i in range(45):
        reg.save("long", i, metrics={"auc": i / 100})
    reg.save("live", 1)
    reg.save("live", 2)
    reg.deploy("live", "1.0.0")
    reg.deploy("live", "1.1.0")
    return path


@pytest.fixture(scope="module")
def url(folder: Path) -> Iterator[str]:
    with _ui.ui_process(folder) as (address, _):
        yield address


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def _model(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}#/m/{quote(name, safe='')}")
    page.wait_for_selector("body[data-seq]")


def test_models_table(page: Page, url: str) -> None:
    page.goto(url)
    row = page.locator(f'#models tr[data-model="{_ui.NAME}"]')
    expect(row).to_have_count(1)
    expect(row.locator('[data-env="production"]')).to_have_text("production: 1.1.0 stable")
    expect(row.locator('[data-env="staging"]')).to_have_text("staging: 1.1.0 stable")
    expect(row).to_contain_text("rollback 1.1.0 [production]")
    expect(page.locator("#models tbody tr")).to_have_count(4)
    row.locator("a").first.click()
    expect(page.locator("#model-name")).to_have_text(_ui.NAME)
    assert page.url.endswith(f"#/m/{ENC}")


def test_model_page_tables_timeline_and_metric_chart(page: Page, url: str, tmp_path: Path) -> None:
    _model(page, url, _ui.NAME)
    rows = page.locator("#versions tbody tr")
    expect(rows).to_have_count(4)
    assert rows.evaluate_all("rs => rs.map(r => [r.dataset.version, r.dataset.status])") == [
        ["1.3.0", "failed"],
        ["1.2.0", "failed"],
        ["1.1.0", "stable"],
        ["1.0.0", "stable"],
    ]
    expect(page.locator('#envs [data-env="production"]')).to_have_attribute("data-version", "1.1.0")
    lanes = page.locator("svg#timeline g.lane")
    assert lanes.evaluate_all("ls => ls.map(l => l.dataset.env)") == ["production", "staging"]
    rollback = page.locator('svg#timeline [data-kind="rollback"]')
    expect(rollback).to_have_count(1)
    assert rollback.get_attribute("data-env") == "production"
    assert rollback.get_attribute("data-version") == "1.1.0"
    assert rollback.get_attribute("data-from") == "1.2.0"
    title = rollback.locator("title").text_content() or ""
    assert "marked failed: 1.2.0" in title and _ui.HOSTILE[0] in title
    restore = page.locator('svg#timeline [data-kind="check-failed"]')
    expect(restore).to_have_count(1)
    assert restore.get_attribute("data-action") == "rollback"
    assert restore.get_attribute("data-from") == "1.3.0"
    assert "accuracy dropped" in (restore.locator("title").text_content() or "")
    expect(page.locator('svg#timeline [data-kind="deploy"]')).to_have_count(6)
    page.select_option("#metric-select", "auc")
    chart = page.locator("svg#metric-chart")
    expect(chart).to_have_attribute("data-metric", "auc")
    points = chart.locator("circle.metric-point")
    assert points.evaluate_all("ps => ps.map(p => [p.dataset.version, +p.dataset.value])") == [
        ["1.0.0", 0.7],
        ["1.1.0", 0.71],
        ["1.2.0", 0.72],
        ["1.3.0", 0.73],
    ]
    expect(page.locator('#history tbody tr[data-kind="check-failed"]')).to_have_count(1)
    shot = tmp_path / "ui-model.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("MODELVERSIONS_UPDATE_SCREENSHOTS") == "1":  # docs/ui.md's picture
        shutil.copyfile(shot, DOCS / "ui-model.png")


def test_history_and_versions_are_paged(page: Page, url: str) -> None:
    _model(page, url, "long")
    expect(page.locator("#history-range")).to_have_text(f"events 1{DASH}20 of 45, newest first")
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-seq", "45")
    page.click("#history-older")
    expect(page.locator("#history-range")).to_have_text(f"events 21{DASH}40 of 45, newest first")
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-seq", "25")
    page.click("#history-older")
    expect(page.locator("#history tbody tr")).to_have_count(5)
    expect(page.locator("#history-older")).to_be_disabled()
    page.click("#history-newer")
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-seq", "25")
    expect(page.locator("#versions tbody tr")).to_have_count(45)


def test_version_page_has_record_and_copy_lines(page: Page, url: str, folder: Path) -> None:
    page.goto(f"{url}#/m/{ENC}/v/1.2.0")
    expect(page.locator('#record tr[data-field="status"] td')).to_have_text("failed")
    text = page.locator("main").inner_text()
    assert f'ModelRegistry("{folder}").load("{_ui.NAME}", "1.2.0")' in text
    assert f"deploy '{_ui.NAME}' '1.2.0' --env production" in text
    expect(page.locator("#version-events tbody tr")).to_have_count(3)


def test_a_cli_rollback_shows_up_without_a_reload(page: Page, url: str, folder: Path) -> None:
    _model(page, url, "live")
    expect(page.locator('svg#timeline [data-action="rollback"]')).to_have_count(0)
    subprocess.run(
        [*_CLI, "--registry", str(folder), "rollback", "live", "--reason", "from the CLI"],
        check=True,
        env=_ui.env_for_child(),
        capture_output=True,
    )
    marker = page.locator('svg#timeline [data-action="rollback"][data-env="production"]')
    expect(marker).to_have_count(1, timeout=(REFRESH_S + 2) * 1000)
    assert marker.get_attribute("data-version") == "1.0.0"
    expect(page.locator('#envs [data-env="production"]')).to_have_attribute("data-version", "1.0.0")
    expect(page.locator("#history tbody tr").first).to_contain_text("from the CLI")


def test_stored_text_is_never_markup(page: Page, url: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    routes = ["", f"#/m/{ENC}"] + [f"#/m/{ENC}/v/1.{i}.0" for i in range(4)]
    body = ""
    for route in routes:
        page.goto(url + route)
        page.wait_for_selector("main table")
        for selector in ("td", "svg circle", "svg path", "svg rect", "option"):
            for node in page.locator(selector).all()[:60]:
                if node.is_visible():
                    node.hover(force=True, timeout=2000)
        assert page.evaluate("window.__pwned") is None, route
        bad = page.evaluate(
            "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
            "a => a.name.startsWith('on'))).length"
        )
        assert bad == 0, route
        assert page.locator("main img, main script, main iframe").count() == 0
        assert page.locator("script").count() == 2
        body += page.locator("main").inner_text()
    for text in _ui.HOSTILE:
        assert text in body  # shown as text
    _model(page, url, _ui.NAME)
    assert _ui.HOSTILE[0] in page.locator("#history").inner_text()
    assert _ui.HOSTILE[0] in page.locator("#metric-select").inner_text()
    assert dialogs == []


# Each API request of the last page load: its path and how long until its first byte.
_API_WAITS = """Object.fromEntries(performance.getEntriesByType("resource")
  .filter((e) => e.name.includes("/api/models/big"))
  .map((e) => [e.name.split("/api/models/big")[1].split("?")[0] || "/",
               Math.round(e.responseStart - e.startTime)]))"""


@pytest.fixture(scope="module")
def big() -> MemoryBackend:
    """10,000 versions and 20,000 events (10,000 saves, 10,000 deploys over two envs)."""
    backend = MemoryBackend()
    reg = ModelRegistry(backend)
    for i in range(10_000):
        reg.save("big", i, metrics={"auc": (i % 97) / 100})
    for mv in reg.versions("big"):
        reg.deploy("big", mv.version, env="production" if mv.version.minor % 3 else "staging")
    return backend


@pytest.mark.parametrize("where", ["memory", "folder"])
def test_ten_thousand_versions_render_fast(
    page: Page, big: MemoryBackend, where: str, tmp_path: Path
) -> None:
    """Figures for docs/ui.md (printed, not asserted): the first view of a server just
    started on a registry object just opened (nothing read yet), then later views."""
    backend: Backend = big
    if where == "folder":  # the same stored bytes, as files
        backend = LocalBackend(tmp_path / "reg", durable=False)
        for key in big.list(""):
            backend.create(key, big.read(key))
    server = ViewServer(ModelRegistry(backend), "127.0.0.1", 0)
    server.start()
    try:
        # The browser's own first navigation, from a static file (nothing is read from
        # the registry): the cold figure is the server's first view, not Chromium's.
        page.goto(f"{server.url}static/app.css")
        for attempt in ("cold", "warm", "warm", "warm"):
            start = time.perf_counter()
            _model(page, server.url, "big")
            total = time.perf_counter() - start
            dom = page.evaluate("window.mvRenderMs")
            waits = page.evaluate(_API_WAITS)
            figure = f"page {total:.3f} s, DOM {dom:.0f} ms, answers (ms) {waits}"
            print(f"\n10k versions/20k events, {where}, {attempt}: {figure}")
            page.goto("about:blank")
        _model(page, server.url, "big")
        expected = f"events 1{DASH}20 of 20000, newest first"
        expect(page.locator("#history-range")).to_have_text(expected)
        rows = page.locator("#versions tbody tr")
        expect(rows).to_have_count(50)
        expect(rows.first).to_have_attribute("data-version", "1.9999.0")
        page.click("#versions-older")
        expect(rows.first).to_have_attribute("data-version", "1.9949.0")
        expect(page.locator("#versions-range")).to_have_text(
            f"versions 51{DASH}100 of 10000, newest first"
        )
        assert page.locator("svg#timeline g.lane").count() == 2
        assert page.locator("svg#metric-chart").get_attribute("data-points") == "10000"
    finally:
        server.shutdown()
        server.server_close()
