"""What the stand-in servers share: a quiet HTTP/1.1 handler, JSON replies, and serving on a free local port."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: object) -> None:
        return None


class LocalServer(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once; the default backlog of 5 resets them
    daemon_threads = True


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict | bytes,
              headers: dict[str, str] | None = None) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> LocalServer:
    """Serve on 127.0.0.1 at a free port, in a daemon thread."""
    server = LocalServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
