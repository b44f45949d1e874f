"""A proxy that forwards to the sandbox and rewrites or refuses chosen responses."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

Mutation = Callable[[str, dict[str, str], dict[str, Any]], Any]


@dataclass
class ProxyLog:
    path: str
    params: dict[str, str]
    status: int
    mutated: bool


@dataclass
class Proxy:
    """A threaded HTTP proxy on 127.0.0.1:0 in front of the sandbox.

    `mutate(path, params, body)` may return a new JSON body (or None to forward
    the original). `fail(path, params)` may return an HTTP status to answer
    instead of forwarding (the upstream is not called).
    """

    upstream: str
    mutate: Mutation | None = None
    fail: Callable[[str, dict[str, str]], int | None] | None = None
    log: list[ProxyLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        with self._lock:
            for session in self._sessions:
                session.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        status = self.fail(split.path, params) if self.fail else None
        mutated = False
        headers: dict[str, str] = {}
        if status is not None:
            raw = json.dumps({"message": "Service Unavailable"}).encode()
            content_type = "application/json"
        else:
            upstream = self._session().get(
                self.upstream + h.path,
                headers={"Authorization": h.headers.get("Authorization", "")},
                timeout=60,
            )
            status, raw = upstream.status_code, upstream.content
            content_type = upstream.headers.get("Content-Type", "application/json")
            headers = {k: v for k, v in upstream.headers.items() if k.startswith("X-RateLimit")}
            if self.mutate is not None and status == 200:
                changed = self.mutate(split.path, params, json.loads(raw))
                if changed is not None:
                    raw, mutated = json.dumps(changed).encode(), True
        with self._lock:
            self.log.append(ProxyLog(split.path, params, status, mutated))
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)
