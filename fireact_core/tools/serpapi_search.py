"""Google search through SerpAPI (the `google-search-results` package), read in FireAct's order:
answer_box.answer, answer_box.snippet, answer_box.snippet_highlighted_words[0], organic_results[0].snippet,
else None. `FIREACT_SERPAPI_URL` points the client elsewhere (a local stand-in in tests)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..errors import PrerequisiteError, ToolError, missing_package


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
        if importlib.util.find_spec("serpapi") is None:  # imported at the first search, not before the first request
            raise missing_package("google-search-results")
        self._key = api_key or os.environ.get("SERPAPI_API_KEY") or os.environ.get("SERPAPI_KEY")
        self.base_url = (base_url or os.environ.get("FIREACT_SERPAPI_URL") or "").rstrip("/") or None
        if not self._key and not self.base_url:
            raise PrerequisiteError("SerpAPI search needs a key: set SERPAPI_API_KEY (or choose --search local)")
        self.timeout = timeout

    def search(self, query: str) -> str | None:
        from serpapi import GoogleSearch

        params = {"api_key": self._key or "none", "engine": "google", "q": query, "google_domain": "google.com",
                  "gl": "us", "hl": "en"}
        client = GoogleSearch(params)
        client.timeout = self.timeout
        if self.base_url:
            client.BACKEND = self.base_url
        try:
            res = client.get_dict()
        except Exception as exc:  # noqa: BLE001 - network and decoding errors become a tool error
            raise ToolError(self._scrub(f"{type(exc).__name__}: {exc}")[:200]) from None
        if "error" in res and not res.get("organic_results") and not res.get("answer_box"):
            if "hasn't returned any results" in str(res["error"]):
                return None
            raise ToolError(self._scrub(str(res["error"]))[:200])
        return extract_answer(res)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text
