"""The running sandbox: its settings while it serves, and each request's way through
authentication, rate limits, faults, latency and the API to its answer and log record."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import Api, error_body
from .config import CONNECTION_KINDS, SandboxConfig, resolve_rate_limits
from .endpoints import pool_for
from .faults import HTML_502, HTML_504, INTERIM_HEADS, AnswerFaults, FaultInjector, tail_delay
from .http_server import SandboxHandler, SandboxHTTPServer
from .points import PointFaults
from .rate_limits import EMPTY_RATE_LIMIT_HEADERS, RateLimiter, rate_limit_headers
from .request_log import RequestLog, RequestRecord
from .workspace import Workspace


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
    if fault in INTERIM_HEADS:
        h.wfile.write(INTERIM_HEADS[fault])
        h.wfile.flush()
        stopping.wait(0.05)  # the real answer comes later, as a server computing it sends it
        h.send(status, raw, "application/json", headers)
        return
    answer = h.head(status, len(raw), "application/json", headers) + raw
    # Both in one write: the second is there when the client has read the first.
    h.wfile.write(answer + answer)
    h.wfile.flush()


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
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._server = SandboxHTTPServer((self.host, self.port), self)
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
        return self._config.effective_now()

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
            self._reconfigure(now=now)

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
        changes = _given(
            fault_rate=rate,
            fault_kinds=None if kinds is None else tuple(kinds),
            fault_max_repeats=max_repeats,
            slow_seconds=slow_seconds,
            trickle_interval=trickle_interval,
            hang_seconds=hang_seconds,
        )
        with self._lock:
            cfg = self._reconfigure(**changes)
            self._faults.configure(cfg.seed, cfg.fault_rate, cfg.fault_kinds, cfg.fault_max_repeats)

    def set_point_faults(self, **changes: Any) -> None:
        """Change point misbehaviours (SandboxConfig names: point_order, duplicate_rate,
        duplicate_copies, duplicate_values, missing_rate, missing_repeats); resets the
        per-request ask counts."""
        with self._lock:
            self._points.configure(self._reconfigure(**changes))

    def set_rate_limits(self, limits: Mapping[str, tuple[int, float]] | None) -> None:
        """Override pools (others keep Braze defaults; ``None`` = all defaults); resets counters."""
        resolved = resolve_rate_limits(limits)
        with self._lock:
            self._reconfigure(rate_limits=dict(limits) if limits is not None else None)
            self._limiter.configure(resolved)

    def set_latency(
        self,
        seconds: float | None = None,
        *,
        tail_rate: float | None = None,
        tail_latency: float | None = None,
    ) -> None:
        """Change the delay of every response and the heavy tail (None: unchanged)."""
        changes = _given(latency=seconds, tail_rate=tail_rate, tail_latency=tail_latency)
        with self._lock:
            self._reconfigure(**changes)

    def set_answer_faults(self, **changes: Any) -> None:
        """Change how answers misbehave (SandboxConfig names: auth_error_echoes_key,
        echo_key_statuses, lists_ignore_page, body_fault, body_fault_match,
        body_fault_repeats, bomb_bytes); resets the per-request ask counts."""
        with self._lock:
            self._reconfigure(**changes)
            self._answer_faults = AnswerFaults()

    def set_rate_limit_headers(self, mode: str) -> None:
        """Send the rate-limit headers in ``mode`` (see SandboxConfig.rate_limit_headers)."""
        with self._lock:
            self._reconfigure(rate_limit_headers=mode)

    def set_denied_permissions(self, permissions: frozenset[str] | set[str]) -> None:
        with self._lock:
            self._reconfigure(denied_permissions=frozenset(permissions))

    def _reconfigure(self, **changes: Any) -> SandboxConfig:
        """Swap in a copy of the config with ``changes`` (validated); the lock is held."""
        self._config = dataclasses.replace(self._config, **changes)
        return self._config

    # ----------------------------------------------------------------- serving

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, h: SandboxHandler, *, method_allowed: bool = True) -> None:
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
                status, HTML_502 if status == 502 else HTML_504, "text/html", rl_headers, fault
            )
            return
        # 4. the API proper
        now = cfg.effective_now()
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
        handler: SandboxHandler,
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


def _given(**settings: Any) -> dict[str, Any]:
    """The settings a setter was given (``None``: left as they are)."""
    return {name: value for name, value in settings.items() if value is not None}
