"""Google search through SerpAPI, read in FireAct's order: answer_box.answer, answer_box.snippet,
answer_box.snippet_highlighted_words[0], organic_results[0].snippet, else None. `FIREACT_SERPAPI_URL` points the
client elsewhere (a local stand-in in tests).

The request is the one the `google-search-results` package (FireAct's client) sends: GET /search with the same
parameters. It is sent over a keep-alive connection per thread rather than through that package, which opens a
new connection and reads every environment variable for each search, CPU that a run of hundreds of searches in
parallel feels. Behind a proxy ($HTTPS_PROXY / $HTTP_PROXY, not bypassed by $NO_PROXY) the package sends it."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import ssl
import threading
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from ...errors import PrerequisiteError, ToolError, missing_package

DEFAULT_URL = "https://serpapi.com"


def extract_answer(res: dict[str, Any]) -> str | None:
    box = res.get("answer_box") or {}
    if "answer" in box:
        return box["answer"]
    if "snippet" in box:
        return box["snippet"]
    if box.get("snippet_highlighted_words"):
        return box["snippet_highlighted_words"][0]
    organic = res.get("organic_results") or []
    if organic and "snippet" in organic[0]:
        return organic[0]["snippet"]
    return None


class SerpAPISearch:
    name = "serpapi"
    cache_key = "serpapi"

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: float = 30.0, **_: object):
        self._key = api_key or os.environ.get("SERPAPI_API_KEY") or os.environ.get("SERPAPI_KEY")
        self.base_url = (base_url or os.environ.get("FIREACT_SERPAPI_URL") or "").rstrip("/") or None
        if not self._key and not self.base_url:
            raise PrerequisiteError("SerpAPI search needs a key: set SERPAPI_API_KEY (or choose --search local)")
        self.timeout = timeout
        url = urlsplit(self.base_url or DEFAULT_URL)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise PrerequisiteError(f"FIREACT_SERPAPI_URL: not an http(s) URL: {self.base_url}")
        self._scheme, self._host, self._port, self._prefix = url.scheme, url.hostname, url.port, url.path
        self._origin = f"{url.scheme}://{url.netloc.rpartition('@')[2]}"
        self._proxied = bool(urllib.request.getproxies().get(url.scheme)) and not urllib.request.proxy_bypass(url.hostname)
        if self._proxied and importlib.util.find_spec("serpapi") is None:
            raise missing_package("google-search-results")
        self._local = threading.local()

    def search(self, query: str) -> str | None:
        params = {"api_key": self._key or "none", "engine": "google", "q": query, "google_domain": "google.com",
                  "gl": "us", "hl": "en"}
        try:
            res = self._get_via_package(params) if self._proxied else self._get(params)
        except Exception as exc:  # noqa: BLE001 - network and decoding errors become a tool error
            where = "" if self._proxied else f"GET {self._origin}{self._target(params)}: "
            raise ToolError(self._scrub(f"{where}{type(exc).__name__}: {exc}")[:300]) from None
        if not isinstance(res, dict):
            raise ToolError(f"SerpAPI answered with {type(res).__name__}, not an object")
        if "error" in res and not res.get("organic_results") and not res.get("answer_box"):
            if "hasn't returned any results" in str(res["error"]):
                return None
            raise ToolError(self._scrub(str(res["error"]))[:200])
        return extract_answer(res)

    def _get(self, params: dict[str, str]) -> Any:
        """GET /search as the package sends it (its `output` and `source` parameters last), on this thread's
        keep-alive connection; a connection the server closed while idle is replaced once."""
        target = self._target(params)
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = self._connect()
            try:
                conn.request("GET", target, headers={"Accept": "application/json", "User-Agent": "fireact-studio"})
                body = conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if reused and attempt == 0:
                    continue
                raise
            return json.loads(body)
        raise ConnectionError("no connection")  # not reached: the second attempt returns or raises

    def _target(self, params: dict[str, str]) -> str:
        return f"{self._prefix}/search?" + urlencode({**params, "output": "json", "source": "python"})

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _get_via_package(self, params: dict[str, str]) -> Any:
        from serpapi import GoogleSearch

        client = GoogleSearch(params)
        client.timeout = self.timeout
        client.BACKEND = self.base_url or DEFAULT_URL
        return client.get_dict()

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text
