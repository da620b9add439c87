"""A real HTTP server on 127.0.0.1 for the network features' tests.

It serves files from a folder (with ``Range`` support, as Zenodo does) and can be told to
misbehave on chosen requests the way survey services do: a 429 or 5xx status, an HTML error
page sent with 200, a body cut off before its Content-Length, no answer until a timeout, or a
server that ignores ``Range``. Nothing is mocked: httpx talks to this server over a socket.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["LocalServer"]


class LocalServer:
    """``script[substring]`` is a list of behaviours used, one per request, by requests whose
    path+query contains ``substring``; when the list is empty the file is served normally.

    Behaviours: ``("status", code)``, ``"html"``, ``"truncate"``, ``("sleep", seconds)``,
    ``"norange"``, ``"redirect_loop"`` (a 302 to itself), ``("drip", seconds)`` (one byte of a
    never-ending body per ``seconds``), ``("gzip_bomb", nbytes)`` (zeros, gzip-encoded). ``by_ra[ra_text]`` names the file served for a cutout at that RA."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.script: dict[str, list[Any]] = {}
        self.by_ra: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path+query, Range header)
        self.delay = 0.0  # seconds before answering each request (to see concurrency)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    server._handle(self)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _behaviour(self, target: str) -> Any:
        with self._lock:
            self.requests.append((target, None))
            for key, steps in self.script.items():
                if key in target and steps:
                    return steps.pop(0)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        b = self._behaviour(h.path)
        with self._lock:
            self.requests[-1] = (h.path, rng)
        if isinstance(b, tuple) and b[0] == "sleep":
            time.sleep(b[1])
            b = None
        if b == "redirect_loop":  # a redirect back to itself, for as long as the script says
            h.send_response(302)
            h.send_header("Location", h.path)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if isinstance(b, tuple) and b[0] == "drip":  # a byte every b[1] seconds, never finishing
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            try:
                for _ in range(100000):
                    h.wfile.write(b"\xff")
                    h.wfile.flush()
                    time.sleep(b[1])
            except OSError:  # the client gave up
                pass
            h.close_connection = True
            return
        if isinstance(b, tuple) and b[0] == "gzip_bomb":  # b[1] bytes of zeros, gzip-encoded
            import zlib

            z = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(1 << 20)
            body = b"".join(z.compress(block) for _ in range(b[1] >> 20)) + z.flush()
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            try:
                h.wfile.write(body)
            except OSError:
                pass
            return
        if isinstance(b, tuple) and b[0] == "status":
            body = f"error {b[1]}".encode()
            h.send_response(b[1])
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(body)))
            if b[1] == 429:
                h.send_header("Retry-After", "0")
            h.end_headers()
            h.wfile.write(body)
            return
        if b == "html":
            body = b"<!DOCTYPE html><html><body>No such cutout: server error</body></html>"
            self._send(h, 200, body, "text/html; charset=utf-8")
            return
        parts = urlsplit(h.path)
        ra = parse_qs(parts.query).get("ra", [None])[0]
        name = self.by_ra.get(ra or "", Path(parts.path).name)
        f = self.root / name
        if not f.is_file():
            self._send(h, 404, b"not found", "text/plain")
            return
        data = f.read_bytes()
        ctype = "image/jpeg" if name.endswith(".jpg") else "application/octet-stream"
        if b == "truncate":
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        if rng and b != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            h.send_header("Content-Length", str(len(data) - start))
            h.end_headers()
            h.wfile.write(data[start:])
            return
        self._send(h, 200, data, ctype)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
