"""A small HTTP/1.1 JSON client on asyncio streams, for the OpenAI-compatible backend.

Why not the openai package (or httpx, its transport): importing openai takes about a second, and httpx's
connection pool looks at every open connection for every request, which at a few hundred requests in flight
costs more CPU than the requests themselves. Here a request takes an idle keep-alive connection from a stack
(or opens one), writes the request and reads one response (Content-Length, chunked, or until close); a
connection that went stale while idle is replaced once. https uses the system's certificates. When a proxy is
set for the URL ($HTTPS_PROXY / $HTTP_PROXY, not bypassed by $NO_PROXY), requests go through httpx instead,
which speaks to proxies.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass


class JSONClient:
    def __init__(self, base_url: str, headers: dict[str, str], timeout: float, max_idle: int = 512):
        url = urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.host, self.prefix, self.timeout, self.max_idle = url.hostname, url.path, timeout, max_idle
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        default_port = self.port == (443 if url.scheme == "https" else 80)
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.head = {"Host": netloc if default_port else f"{netloc}:{self.port}", "Accept": "application/json",
                     "Content-Type": "application/json", "User-Agent": "fireact-studio", **headers}
        self._idle: list[_Conn] = []
        self._proxied = None
        self.on_sent: Callable[[], None] | None = None  # called once, when the first request is out (or failed)
        proxies = urllib.request.getproxies()
        if proxies.get(url.scheme) and not urllib.request.proxy_bypass(self.host):
            import httpx  # only behind a proxy

            self._proxied = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def post(self, path: str, body: dict) -> Response:
        """POST `body` as JSON to base URL + `path`; raises asyncio.TimeoutError after `timeout` seconds and
        OSError (ConnectionError, IncompleteReadError...) when the connection fails."""
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            if self._proxied is not None:
                r = await self._proxied.post(path, content=data, headers={"Content-Type": "application/json"})
                return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
            lines = [f"POST {self.prefix}{path} HTTP/1.1"] + [f"{k}: {v}" for k, v in self.head.items()]
            request = ("\r\n".join(lines) + f"\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
            return await asyncio.wait_for(self._exchange(request), self.timeout)
        finally:
            self._sent()

    def _sent(self) -> None:
        callback, self.on_sent = self.on_sent, None
        if callback is not None:
            callback()

    async def _exchange(self, request: bytes) -> Response:
        for attempt in (0, 1):
            conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = _Conn(*await asyncio.open_connection(self.host, self.port, ssl=self.ssl))
            try:
                conn.writer.write(request)
                await conn.writer.drain()
                self._sent()
                response, keep = await _read_response(conn.reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle connection: once more on a new one
                raise
            except BaseException:
                conn.close()
                raise
            if keep and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()
            return response
        raise ConnectionError("no connection")  # not reached: the second attempt returns or raises

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
        if self._proxied is not None:
            await self._proxied.aclose()


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    parts = status_line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    version, status = parts[0], int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()
        return Response(status, headers, body), False
    keep = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
    return Response(status, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
