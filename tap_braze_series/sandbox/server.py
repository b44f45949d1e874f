"""The sandbox HTTP server: auth, rate limits, faults, latency and the request log."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import select
import socket
import threading
import time
import traceback
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import Api, error_body
from .config import CONNECTION_KINDS, SandboxConfig, resolve_rate_limits
from .endpoints import pool_for
from .hashing import digest, fraction, uniform
from .points import PointFaults
from .timeutil import UTC
from .workspace import Workspace

# --------------------------------------------------------------------------- request log


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One served request.

    ``started`` is wall-clock epoch seconds (``time.time()``) when the request
    had been read; ``duration`` is seconds until its response was about to be
    written (or the connection dropped) -- the record is appended at that moment,
    so a client holding a response always finds it in the log; ``in_flight``
    counts requests being served when this one started, itself included;
    ``status`` is 0 for a dropped connection; ``latency`` is the delay the
    sandbox added on purpose (``latency``, plus ``tail_latency`` for a request of
    the tail).
    """

    path: str
    params: dict[str, str]
    status: int
    started: float
    duration: float
    in_flight: int
    fault: str | None = None
    pool: str = "default"
    client_port: int = 0  # the client's TCP port: equal ports = a reused keep-alive connection
    latency: float = 0.0
    point_faults: tuple[str, ...] = ()  # "missing", "duplicate", "reordered" (see points.py)

    @property
    def ended(self) -> float:
        return self.started + self.duration


class RequestLog:
    """Thread-safe, list-like log of :class:`RequestRecord` (append-only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __getitem__(self, index: Any) -> Any:
        with self._lock:
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


# --------------------------------------------------------------------------- rate limits


class RateLimiter:
    """Fixed-window counters per pool, on the real wall clock.

    Windows are aligned on multiples of the window length counted from the Unix
    epoch; a fractional window length is rounded up to whole seconds, so every
    window ends on an integer epoch second and ``X-RateLimit-Reset`` is exact.
    """

    def __init__(self, limits: Mapping[str, tuple[int, float]]) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[int, int]] = {}
        self._state: dict[str, tuple[int, int]] = {}
        self.configure(limits)

    def configure(self, limits: Mapping[str, tuple[int, float]]) -> None:
        with self._lock:
            self._limits = {p: (int(lim), max(1, math.ceil(w))) for p, (lim, w) in limits.items()}
            self._state = {}

    def _window(self, pool: str, now: float) -> tuple[int, int, int]:
        limit, window = self._limits[pool]
        idx = int(now // window)
        cur_idx, count = self._state.get(pool, (idx, 0))
        return limit, idx, (count if cur_idx == idx else 0)

    def hit(self, pool: str, now: float | None = None) -> tuple[bool, dict[str, str]]:
        """Count one request; returns (allowed, headers)."""
        now = time.time() if now is None else now
        with self._lock:
            limit, idx, count = self._window(pool, now)
            allowed = count < limit
            if allowed:
                count += 1
            self._state[pool] = (idx, count)
            return allowed, self._headers(pool, limit, idx, count)

    def peek(self, pool: str, now: float | None = None) -> dict[str, str]:
        """Headers describing the pool without counting a request."""
        now = time.time() if now is None else now
        with self._lock:
            limit, idx, count = self._window(pool, now)
            return self._headers(pool, limit, idx, count)

    def _headers(self, pool: str, limit: int, idx: int, count: int) -> dict[str, str]:
        window = self._limits[pool][1]
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count)),
            "X-RateLimit-Reset": str((idx + 1) * window),
        }


RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
#: What a real 401 carries: the three headers, empty.
EMPTY_RATE_LIMIT_HEADERS = dict.fromkeys(RATE_LIMIT_HEADERS, "")


def rate_limit_headers(headers: Mapping[str, str], mode: str) -> dict[str, str]:
    """The rate-limit headers to send in ``mode`` (SandboxConfig.rate_limit_headers)."""
    out = dict(headers)
    if mode == "valid":
        return out
    if mode == "missing":
        return {k: v for k, v in out.items() if k not in RATE_LIMIT_HEADERS}
    if mode == "empty":
        return {**out, **EMPTY_RATE_LIMIT_HEADERS}
    reset = "X-RateLimit-Reset"
    if mode in ("nan", "inf"):
        out[reset] = mode
    elif mode == "milliseconds":
        out[reset] = str(int(out[reset]) * 1000)
    elif mode == "far":
        out[reset] = str(int(out[reset]) + 7 * 86400)
    elif mode == "negative":
        out["X-RateLimit-Remaining"] = "-1"
    elif mode == "nan-remaining":
        out["X-RateLimit-Remaining"] = "nan"
        out["X-RateLimit-Limit"] = "inf"
    else:
        raise ValueError(f"unknown rate_limit_headers mode {mode!r}")
    return out


# --------------------------------------------------------------------------- faults


class FaultInjector:
    """Decides, reproducibly, which requests get which fault."""

    def __init__(self, seed: int, rate: float, kinds: tuple[str, ...], max_repeats: int) -> None:
        self._lock = threading.Lock()
        self.configure(seed, rate, kinds, max_repeats)

    def configure(self, seed: int, rate: float, kinds: tuple[str, ...], max_repeats: int) -> None:
        with self._lock:
            self.seed, self.rate, self.kinds, self.max_repeats = seed, rate, kinds, max_repeats
            self._attempts: dict[str, list[int]] = {}  # identity -> [attempts, faults]

    @staticmethod
    def identity(path: str, params: Mapping[str, str]) -> str:
        return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))

    def decide(self, identity: str) -> str | None:
        with self._lock:
            if self.rate <= 0 or not self.kinds:
                return None
            counters = self._attempts.setdefault(identity, [0, 0])
            attempt = counters[0]
            counters[0] += 1
            if counters[1] >= self.max_repeats:
                return None
            raw = digest(("fault", self.seed, identity, attempt), 16)
            if fraction(raw[:8]) >= self.rate:
                return None
            counters[1] += 1
            return self.kinds[int.from_bytes(raw[8:], "big") % len(self.kinds)]


def tail_delay(seed: int, identity: str, rate: float, seconds: float) -> float:
    """Extra seconds for a request of the latency tail: the same requests every run."""
    if rate <= 0:
        return 0.0
    return seconds if uniform("tail", seed, identity) < rate else 0.0


# --------------------------------------------------------------------------- odd answers


def _rejected_key(
    cfg: SandboxConfig, token: str, pool_headers: Mapping[str, str]
) -> tuple[int, dict, dict[str, str]]:
    """A 401 for a wrong key: as recorded from real Braze, it repeats the key sent and its
    X-RateLimit-* headers are empty (``auth_error_echoes_key``)."""
    if cfg.auth_error_echoes_key:
        return (
            401,
            error_body(f"Invalid API key: {token.strip()}".rstrip()),
            {name: "" for name in pool_headers},
        )
    return (
        401,
        error_body(
            "Invalid API key: the key in the Authorization header is not a valid REST API "
            "key for this workspace."
        ),
        dict(pool_headers),
    )


class AnswerFaults:
    """Mangles 200 answers as ``body_fault`` says, counting asks per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asks: dict[str, int] = {}
        self._bombs: dict[tuple[str, int], bytes] = {}

    def apply(
        self, cfg: SandboxConfig, identity: str, raw: bytes, headers: Mapping[str, str]
    ) -> tuple[bytes, Mapping[str, str], str | None]:
        """(body, headers, fault name or None) of one answer."""
        kind = cfg.body_fault
        if kind is None or cfg.body_fault_match not in identity:
            return raw, headers, None
        with self._lock:
            asks = self._asks.get(identity, 0)
            self._asks[identity] = asks + 1
        if cfg.body_fault_repeats is not None and asks >= cfg.body_fault_repeats:
            return raw, headers, None
        if kind == "huge_number":
            # Valid JSON, and an object: only a full decode finds the number out of range.
            return raw[: raw.rindex(b"}")] + b', "sandbox_extra": 1e999}', headers, kind
        if kind == "bad_utf8":
            # A name with a latin-1 byte, as a system that is not UTF-8 would write it.
            mangled = raw.replace(b'"name": "', b'"name": "Caf\xe9 ', 1)
            if mangled == raw:
                mangled = raw[: raw.rindex(b"}")] + b', "sandbox_note": "Caf\xe9"}'
            return mangled, headers, kind
        encoding = "gzip" if kind == "gzip_bomb" else "deflate"
        return self._bomb(encoding, cfg.bomb_bytes), {**headers, "Content-Encoding": encoding}, kind

    def _bomb(self, encoding: str, size: int) -> bytes:
        """A compressed JSON object of `size` bytes once inflated (mostly spaces)."""
        with self._lock:
            cached = self._bombs.get((encoding, size))
            if cached is not None:
                return cached
            head, tail = b'{"message": "success", "data": []', b"}"
            packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            parts = [packer.compress(head)]
            left = size - len(head) - len(tail)
            block = b" " * (1024 * 1024)
            while left > 0:
                parts.append(packer.compress(block[: min(left, len(block))]))
                left -= len(block)
            parts += [packer.compress(tail), packer.flush()]
            self._bombs[(encoding, size)] = b"".join(parts)
            return self._bombs[(encoding, size)]


_INTERIM_HEADS = {
    "early_hints": b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n",
    "interim": (
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n"
        b"HTTP/1.1 199 Still Working\r\nX-Sandbox: interim\r\n\r\n"
    ),
}


def _answer_out_of_turn(
    ex: _Exchange,
    fault: str,
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    stopping: threading.Event,
) -> None:
    """Interim (1xx) heads before the answer, or a second answer nobody asked for."""
    h = ex.handler
    ex.finish(status, fault)
    if fault in _INTERIM_HEADS:
        h.wfile.write(_INTERIM_HEADS[fault])
        h.wfile.flush()
        stopping.wait(0.05)  # the real answer comes later, as a server computing it sends it
        h.send(status, raw, "application/json", headers)
        return
    answer = h.head(status, len(raw), "application/json", headers) + raw
    # Both in one write: the second is there when the client has read the first.
    h.wfile.write(answer + answer)
    h.wfile.flush()


_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_HTML_504 = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BrazeSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections
    server: _Server

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


class Sandbox:
    """A fake Braze REST endpoint served from a background thread.

    Use as a context manager (``with Sandbox(cfg) as sb: ...``) or call
    :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        workspace: Workspace | None = None,
    ) -> None:
        self._config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.workspace = workspace or Workspace(self._config)
        self.api = Api(self.workspace)
        self.request_log = RequestLog()
        #: Tracebacks of unexpected exceptions while serving (always empty unless buggy).
        self.internal_errors: list[str] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._limiter = RateLimiter(self._config.effective_rate_limits())
        self._faults = FaultInjector(
            self._config.seed,
            self._config.fault_rate,
            self._config.fault_kinds,
            self._config.fault_max_repeats,
        )
        self._points = PointFaults(self._config)
        self._answer_faults = AnswerFaults()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"braze-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- accessors

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self._config.api_key

    @property
    def config(self) -> SandboxConfig:
        return self._config

    def now(self) -> datetime:
        """The sandbox's current "now" (the configured one, else the real time)."""
        cfg_now = self._config.now
        return cfg_now if cfg_now is not None else datetime.now(UTC)

    @property
    def in_flight(self) -> int:
        """Requests being served right now (a hanging one included)."""
        with self._lock:
            return self._in_flight

    def clear_log(self) -> None:
        self.request_log.clear()

    def set_now(self, now: datetime | None) -> None:
        """Move "now" (aware datetime), or back to real time with ``None``."""
        with self._lock:
            self._config = dataclasses.replace(self._config, now=now)

    def set_faults(
        self,
        rate: float | None = None,
        kinds: tuple[str, ...] | list[str] | None = None,
        max_repeats: int | None = None,
        slow_seconds: float | None = None,
        trickle_interval: float | None = None,
        hang_seconds: float | None = None,
    ) -> None:
        """Change fault injection; resets the per-request fault bookkeeping."""
        with self._lock:
            changes: dict[str, Any] = {}
            if trickle_interval is not None:
                changes["trickle_interval"] = trickle_interval
            if hang_seconds is not None:
                changes["hang_seconds"] = hang_seconds
            if rate is not None:
                changes["fault_rate"] = rate
            if kinds is not None:
                changes["fault_kinds"] = tuple(kinds)
            if max_repeats is not None:
                changes["fault_max_repeats"] = max_repeats
            if slow_seconds is not None:
                changes["slow_seconds"] = slow_seconds
            cfg = dataclasses.replace(self._config, **changes)
            self._config = cfg
            self._faults.configure(cfg.seed, cfg.fault_rate, cfg.fault_kinds, cfg.fault_max_repeats)

    def set_point_faults(self, **changes: Any) -> None:
        """Change point misbehaviours (SandboxConfig names: point_order, duplicate_rate,
        duplicate_copies, duplicate_values, missing_rate, missing_repeats); resets the
        per-request ask counts."""
        with self._lock:
            cfg = dataclasses.replace(self._config, **changes)
            self._config = cfg
            self._points.configure(cfg)

    def set_rate_limits(self, limits: Mapping[str, tuple[int, float]] | None) -> None:
        """Override pools (others keep Braze defaults; ``None`` = all defaults); resets counters."""
        resolved = resolve_rate_limits(limits)
        with self._lock:
            self._config = dataclasses.replace(
                self._config, rate_limits=dict(limits) if limits is not None else None
            )
            self._limiter.configure(resolved)

    def set_latency(
        self,
        seconds: float | None = None,
        *,
        tail_rate: float | None = None,
        tail_latency: float | None = None,
    ) -> None:
        """Change the delay of every response and the heavy tail (None: unchanged)."""
        changes = {"latency": seconds, "tail_rate": tail_rate, "tail_latency": tail_latency}
        with self._lock:
            self._config = dataclasses.replace(
                self._config, **{k: v for k, v in changes.items() if v is not None}
            )

    def set_answer_faults(self, **changes: Any) -> None:
        """Change how answers misbehave (SandboxConfig names: auth_error_echoes_key,
        echo_key_statuses, lists_ignore_page, body_fault, body_fault_match,
        body_fault_repeats, bomb_bytes); resets the per-request ask counts."""
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            self._answer_faults = AnswerFaults()

    def set_rate_limit_headers(self, mode: str) -> None:
        """Send the rate-limit headers in ``mode`` (see SandboxConfig.rate_limit_headers)."""
        with self._lock:
            self._config = dataclasses.replace(self._config, rate_limit_headers=mode)

    def set_denied_permissions(self, permissions: frozenset[str] | set[str]) -> None:
        with self._lock:
            self._config = dataclasses.replace(
                self._config, denied_permissions=frozenset(permissions)
            )

    # ----------------------------------------------------------------- serving

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, h: _Handler, *, method_allowed: bool = True) -> None:
        with self._lock:
            self._in_flight += 1
            in_flight = self._in_flight
            cfg = self._config
        split = urlsplit(h.path)
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True, errors="replace"))
        pool = pool_for(path)
        ex = _Exchange(self, h, path, params, pool, in_flight)
        tail = tail_delay(
            cfg.seed, FaultInjector.identity(path, params), cfg.tail_rate, cfg.tail_latency
        )
        ex.latency = cfg.latency + tail
        try:
            self._sleep(tail)
            self._respond(ex, cfg, path, params, pool, method_allowed)
        except OSError:
            h.close_connection = True  # client went away
        except Exception:  # a sandbox bug: answer 500 and keep it for tests to see
            self.internal_errors.append(traceback.format_exc())
            h.close_connection = True
            if not ex.done:
                with contextlib.suppress(OSError):
                    ex.reply(
                        500,
                        json.dumps(error_body("sandbox internal error")).encode(),
                        "application/json",
                        self._limiter.peek(pool),
                        None,
                    )
        finally:
            ex.finish(0, None)  # no-op unless nothing was answered

    def _respond(
        self,
        ex: _Exchange,
        cfg: SandboxConfig,
        path: str,
        params: dict[str, str],
        pool: str,
        method_allowed: bool,
    ) -> None:
        h = ex.handler

        def send_json(
            status: int, body: dict, headers: Mapping[str, str], fault: str | None = None
        ) -> None:
            raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self._sleep(cfg.latency)
            ex.reply(status, raw, "application/json", headers, fault)

        if not method_allowed:
            send_json(
                405,
                error_body(f"Method {h.command} not allowed; use GET."),
                {"Allow": "GET", **self._limiter.peek(pool)},
            )
            return
        # 1. authentication (does not count against a pool)
        if "api_key" in params:
            send_json(
                401,
                error_body(
                    "Invalid API key: API keys in the query string are not supported; send the "
                    "key in the 'Authorization: Bearer <key>' header."
                ),
                EMPTY_RATE_LIMIT_HEADERS,  # as a real 401 sends them
            )
            return
        auth = h.headers.get("Authorization")
        if auth is None:
            send_json(
                401,
                error_body("Invalid API key: missing 'Authorization: Bearer <key>' header."),
                EMPTY_RATE_LIMIT_HEADERS,  # as a real 401 sends them
            )
            return
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or token.strip() != cfg.api_key:
            status, body, headers = _rejected_key(cfg, token, self._limiter.peek(pool))
            send_json(status, body, headers)
            return
        # 2. rate limit
        allowed, rl_headers = self._limiter.hit(pool)
        rl_headers = rate_limit_headers(rl_headers, cfg.rate_limit_headers)
        if not allowed:
            send_json(429, error_body("rate limit exceeded"), rl_headers)
            return
        # 3. injected faults
        fault = self._faults.decide(FaultInjector.identity(path, params))
        if fault == "hang":
            self._hang(ex, cfg, fault)
            return
        if fault == "drop":
            self._sleep(cfg.latency)
            ex.finish(0, fault)
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "500":
            send_json(
                500,
                error_body("Internal Server Error", ["internal error, please retry"]),
                rl_headers,
                fault,
            )
            return
        if fault == "503":
            send_json(
                503,
                error_body(
                    "Service Unavailable", ["service temporarily unavailable, please retry"]
                ),
                rl_headers,
                fault,
            )
            return
        if fault in ("502", "504"):
            self._sleep(cfg.latency)
            status = int(fault)
            ex.reply(
                status, _HTML_502 if status == 502 else _HTML_504, "text/html", rl_headers, fault
            )
            return
        # 4. the API proper
        now = cfg.now if cfg.now is not None else datetime.now(UTC)
        asked = {**params, "page": "0"} if cfg.lists_ignore_page and "page" in params else params
        status, body = self.api.handle(path, asked, now=now, denied=cfg.denied_permissions)
        if status == 200:
            body, ex.point_faults = self._points.apply(path, params, body)
        elif status in cfg.echo_key_statuses and isinstance(body.get("message"), str):
            body = {**body, "message": f"{body['message']} (API key: {token.strip()})"}
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        answer_headers: Mapping[str, str] = rl_headers
        if status == 200 and cfg.body_fault is not None:
            raw, answer_headers, body_fault = self._answer_faults.apply(
                cfg, FaultInjector.identity(path, params), raw, rl_headers
            )
            fault = fault or body_fault
        if fault in CONNECTION_KINDS:
            self._sleep(cfg.latency)
            _answer_out_of_turn(ex, fault, status, raw, answer_headers, self._stopping)
            return
        if fault == "slow":
            self._sleep(cfg.slow_seconds)
        if fault == "truncated":
            raw = raw[: len(raw) // 2]
            status = 200
        self._sleep(cfg.latency)
        if fault == "stall":
            ex.finish(status, fault)
            h.send_head(status, len(raw), "application/json", rl_headers)
            self._hang(ex, cfg, fault)
            return
        if fault == "trickle":
            ex.finish(status, fault)
            h.trickle(
                h.head(status, len(raw), "application/json", rl_headers) + raw,
                cfg.trickle_interval,
                self._stopping,
            )
            return
        ex.reply(status, raw, "application/json", answer_headers, fault)

    def _hang(self, ex: _Exchange, cfg: SandboxConfig, fault: str) -> None:
        """Answer nothing more until the client hangs up, hang_seconds pass or we stop."""
        h = ex.handler
        h.close_connection = True
        deadline = time.monotonic() + cfg.hang_seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if h.client_gone(0.05):
                break
        ex.finish(0, fault)
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)


class _Exchange:
    """One request being served: logs itself just before the response is written.

    Logging (and leaving the in-flight count) *before* the write means a client
    that has received a response always finds it in ``request_log``.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        handler: _Handler,
        path: str,
        params: dict[str, str],
        pool: str,
        in_flight: int,
    ) -> None:
        self.sandbox = sandbox
        self.handler = handler
        self.path = path
        self.params = {k: ("<redacted>" if k == "api_key" else v) for k, v in params.items()}
        self.pool = pool
        self.in_flight = in_flight
        self.started = time.time()
        self._t0 = time.monotonic()
        self.done = False
        self.latency = 0.0
        self.point_faults: tuple[str, ...] = ()

    def finish(self, status: int, fault: str | None) -> None:
        if self.done:
            return
        self.done = True
        sb = self.sandbox
        with sb._lock:
            sb._in_flight -= 1
        addr = self.handler.client_address
        sb.request_log.append(
            RequestRecord(
                path=self.path,
                params=self.params,
                status=status,
                started=self.started,
                duration=time.monotonic() - self._t0,
                in_flight=self.in_flight,
                fault=fault,
                pool=self.pool,
                client_port=int(addr[1]) if len(addr) > 1 else 0,
                latency=self.latency,
                point_faults=self.point_faults,
            )
        )

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
        fault: str | None,
    ) -> None:
        self.finish(status, fault)
        self.handler.send(status, body, content_type, headers)
