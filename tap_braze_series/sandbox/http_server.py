"""The sandbox's HTTP plumbing: a threading server that tracks its connections, and a
handler that writes whole responses (or heads alone, or one byte at a time)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Sandbox


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(address, SandboxHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, dropped faults) are expected; stay quiet.
        pass


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BrazeSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.server.sandbox._serve(self)

    def _not_allowed(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.sandbox._serve(self, method_allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def head(
        self, status: int, length: int, content_type: str, headers: Mapping[str, str]
    ) -> bytes:
        """The status line and headers of a response, as bytes."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")
        head = b"".join(self._headers_buffer)
        self._headers_buffer = []
        return head

    def send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        head = self.head(status, len(body), content_type, headers)
        # Headers and body in one write (no Nagle/delayed-ACK stalls on keep-alive).
        self.wfile.write(head if self.command == "HEAD" else head + body)
        self.wfile.flush()

    def send_head(
        self, status: int, length: int, content_type: str, headers: Mapping[str, str]
    ) -> None:
        self.wfile.write(self.head(status, length, content_type, headers))
        self.wfile.flush()

    def trickle(self, data: bytes, interval: float, stopping: threading.Event) -> None:
        """Send `data` one byte every `interval` seconds (until the client hangs up)."""
        self.close_connection = True
        for i in range(len(data)):
            if i and stopping.wait(interval):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def client_gone(self, timeout: float) -> bool:
        """Whether the client closed its side, waiting up to `timeout` to see it."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return False
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
            time.sleep(timeout)  # it sent more (it cannot be answered before this one)
            return False
        except (OSError, ValueError):
            return True
