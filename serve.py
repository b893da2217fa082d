"""The app's server: `streamlit run serve.py` (`make run`) serves app.py as Streamlit does, with one thing more.

A page opened by its address (`/Browse?source=...`, a link, a bookmark, a reload) is Streamlit's own index.html
with one line added: where the server is, worked out in the browser from the address (the address less the page's
name). Streamlit's page otherwise has to find that out itself: it first asks `/Browse/_stcore/health`, gets a 404,
waits a back-off and asks `/_stcore/health`; told the server's address, it connects at once. On this machine that
makes a page's first render about 150-300 ms shorter (docs/curation.md, Responsiveness). The address is worked
out from the page's own, so the app still works under `--server.baseUrlPath` and behind a proxy that adds or
strips a prefix. Everything else (Home, the pages' other paths, static files, the websocket) is Streamlit's.

`streamlit run app.py` still serves the same app; pages opened by their address then connect the slower way.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st
from streamlit import config
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ui_pages import ADDRESSES

ROOT = Path(__file__).resolve().parent
INDEX = Path(st.__file__).resolve().parent / "static" / "index.html"
# Streamlit reads `window.__streamlit` once, as its page loads: BACKEND_BASE_URL is where the server answers
BASE_URL_SCRIPT = """<script>(() => {
  const parts = location.pathname.split("/");
  if (%s.includes(parts[parts.length - 1])) parts.pop();
  window.__streamlit = {BACKEND_BASE_URL: location.origin + parts.join("/")};
})();</script>""" % json.dumps(list(ADDRESSES))


def page_html(index: str) -> bytes:
    """Streamlit's index.html with the server's address set before any of its scripts runs."""
    head = index.index("<head>") + len("<head>")
    return (index[:head] + BASE_URL_SCRIPT + index[head:]).encode()


class PageAddresses:
    """Answers a GET of a page's address (`/Browse`, under the server's `--server.baseUrlPath` if it has one; no
    trailing slash) with `page_html`; passes every other request on to Streamlit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pages: frozenset[str] | None = None  # read on the first request, once Streamlit's options are
        self.html = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.pages is None:
            self.pages = page_paths(config.get_option("server.baseUrlPath"))
            self.html = page_html(INDEX.read_text(encoding="utf-8"))
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in self.pages:
            response = Response(self.html, media_type="text/html", headers={"Cache-Control": "no-cache"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def page_paths(base_url_path: str | None) -> frozenset[str]:
    """The server-side paths of the pages' addresses under Streamlit's `server.baseUrlPath`."""
    prefix = "/" + base_url_path.strip("/") if base_url_path and base_url_path.strip("/") else ""
    return frozenset(f"{prefix}/{name}" for name in ADDRESSES)


app = st.App(ROOT / "app.py", middleware=[Middleware(PageAddresses)])
