"""A SerpAPI stand-in on 127.0.0.1 answering /search.json (and /search, where the client library asks).

    server = FakeSerpAPI({"grace darling birthplace": {"answer_box": {"answer": "Bamburgh"}}})
    os.environ["FIREACT_SERPAPI_URL"] = server.start()

A query without an entry gets an organic result whose snippet names the query; `delay_s` slows every answer.
"""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.fakes.http import QuietHandler, send_json, serve


class FakeSerpAPI:
    def __init__(self, results: dict[str, dict] | None = None, delay_s: float = 0.0):
        self.results = {k.lower(): v for k, v in (results or {}).items()}
        self.delay_s = delay_s
        self.queries: list[str] = []
        self.keys: set[str] = set()
        self.paths: list[str] = []  # each request's path and query string, as sent
        self.peers: set[tuple] = set()  # the client end of each connection that asked
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def respond(self, query: str) -> dict:
        found = self.results.get(query.lower())
        if found is not None:
            return found
        return {"search_metadata": {"status": "Success"},
                "organic_results": [{"position": 1, "title": query, "snippet": f"A page about {query}."}]}

    def start(self) -> str:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path not in ("/search.json", "/search"):
                    status, payload = 404, {"error": "not found"}
                else:
                    query = params.get("q", "")
                    with fake.lock:
                        fake.queries.append(query)
                        fake.keys.add(params.get("api_key", ""))
                        fake.paths.append(self.path)
                        fake.peers.add(self.client_address)
                    status, payload = 200, fake.respond(query)
                time.sleep(fake.delay_s)
                send_json(self, status, payload)

        self.server = serve(Handler)
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

