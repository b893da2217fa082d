"""serve.py, the app's server: a page opened by its address is told where the server is, so it connects without
first asking `/Page/_stcore/health`; everything else is Streamlit's. Over HTTP and in real Chromium, at the root
and under `--server.baseUrlPath`."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

import serve
from fireact_core.store import Store
from tests.conftest import wait_for_app
from tests.helpers.runs import make_run
from ui_pages import ADDRESSES

pytestmark = pytest.mark.timeout(300)
WAIT = 90_000  # ms: the test machine may be busy


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode()


@pytest.fixture
def small_db(tmp_path) -> Path:
    store = Store(tmp_path / "serve.duckdb")
    make_run(store, "gpt4-react", [1.0] * 6 + [0.0] * 4, model="gpt-4", method="react")
    return store.path


def test_page_html_adds_one_script_before_streamlits_own():
    index = serve.INDEX.read_text(encoding="utf-8")
    html = serve.page_html(index).decode()
    assert html.replace(serve.BASE_URL_SCRIPT, "", 1) == index
    assert html.index("window.__streamlit") < html.index('<script type="module"')
    assert all(f'"{name}"' in serve.BASE_URL_SCRIPT for name in ADDRESSES)
    assert serve.page_paths(None) == serve.page_paths("") == {f"/{name}" for name in ADDRESSES}
    assert serve.page_paths("/studio/") == serve.page_paths("studio") == {f"/studio/{name}" for name in ADDRESSES}


def test_page_addresses_over_http(streamlit_app, small_db):
    base = streamlit_app(small_db)
    status, headers, home = get(f"{base}/")
    assert status == 200 and "window.__streamlit" not in home  # Home needs no help: its address is the server's
    for name in ADDRESSES:
        status, headers, body = get(f"{base}/{name}?source=gpt4-react")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert headers["cache-control"] == "no-cache"
        assert body.replace(serve.BASE_URL_SCRIPT, "", 1) == home
    status, headers, _ = get(f"{base}/Browse/")  # Streamlit's own answer: to the address without the slash
    assert status == 301 and headers["location"] == "/Browse"
    assert get(f"{base}/Browse/_stcore/health")[0] == 404  # what Streamlit's page would otherwise ask first
    assert get(f"{base}/_stcore/health")[0] == 200
    for other_path in ("/NoSuchPage", "/somewhere/Browse"):  # not a page's address: Streamlit's page as it is
        status, _, other = get(f"{base}{other_path}")
        assert status == 200 and other == home


@pytest.mark.parametrize("prefix", ["", "/studio"])
def test_a_page_opened_by_address_connects_at_once(streamlit_app, page, small_db, prefix):
    options = ("--server.baseUrlPath", prefix.strip("/")) if prefix else ()
    base = streamlit_app(small_db, *options)
    asked: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{base}{prefix}/Dashboard")
    wait_for_app(page, timeout=WAIT)
    page.locator('[data-testid="fa-pick-table"]').first.wait_for(timeout=WAIT)
    expect(page.get_by_test_id("stMain").get_by_text("gpt4-react").first).to_be_visible()
    health = [url for url in asked if url.endswith("/_stcore/health")]
    assert health and all(url == f"{base}{prefix}/_stcore/health" for url in health), health
    assert sockets and all(url.startswith(f"{base.replace('http', 'ws')}{prefix}/_stcore/stream") for url in sockets)
    # the sidebar's links keep the prefix
    page.get_by_test_id("stSidebarNav").get_by_text("Browse", exact=True).click()
    page.wait_for_url(f"{base}{prefix}/Browse**", timeout=WAIT)
    expect(page.get_by_test_id("stMain").get_by_text("10 trajectories match")).to_be_visible(timeout=WAIT)
