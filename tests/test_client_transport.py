"""The HTTP client's transport: TLS verification, CA bundle and proxy from the environment.

Against local servers only (127.0.0.1): an HTTPS endpoint with a throwaway
self-signed certificate, a plain forward proxy, and one that redirects.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tap_braze_series.client import (
    CONNECT_TIMEOUT_CAP,
    BrazeClient,
    BrazeConnectionError,
    BrazeRequestError,
    BrazeTLSError,
    BrazeUnavailableError,
)
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.sandbox import Sandbox, SandboxConfig

BODY = json.dumps({"message": "success", "data": [{"time": "2024-03-01", "dau": 5}]}).encode()
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in (*PROXY_VARIABLES, *(v.lower() for v in PROXY_VARIABLES)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


class _Recorder(BaseHTTPRequestHandler):
    """Answers BODY to every GET and records the request line and headers."""

    log: list[tuple[str, dict[str, str]]]
    status = 200
    location: str | None = None

    def do_GET(self) -> None:
        self.log.append((self.path, dict(self.headers)))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: GET http://host:port/path, passed on as is."""

    log: list[str]

    def do_GET(self) -> None:
        self.log.append(self.path)
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream.request("GET", target.path + "?" + target.query, headers=headers)
        response = upstream.getresponse()
        body = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type, context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("Handler", (_Recorder,), {"log": []})
    for url in _serve(handler, context):
        yield url, handler.log


def client(url: str, **overrides: object) -> BrazeClient:
    options = {
        "api_url": url,
        "api_key": "secret-key",
        "timeout": 5.0,
        "governor": RateGovernor(1_000),
        "max_retries": 0,
        "backoff_base": 0.01,
    }
    return BrazeClient(**{**options, **overrides})  # type: ignore[arg-type]


def test_a_certificate_not_in_the_trusted_bundle_is_refused_at_once(https_server):
    url, log = https_server
    tap_client = client(url, max_retries=5, backoff_base=10.0)
    with pytest.raises(BrazeTLSError, match=r"not trusted.*REQUESTS_CA_BUNDLE"):
        tap_client.get("/kpi/dau/data_series", {"length": 1})
    assert tap_client.tally.total().retries == 0  # it would fail the same way every time
    assert log == []  # the request (and its key) never reached the server


def test_the_ca_bundle_of_the_environment_is_trusted(https_server, certificate, monkeypatch):
    url, log = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    body = client(url).get("/kpi/dau/data_series", {"length": 1}).body
    assert body["data"] == [{"time": "2024-03-01", "dau": 5}]
    path, headers = log[0]
    assert path == "/kpi/dau/data_series?length=1"
    assert headers["Authorization"] == "Bearer secret-key"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(seed=3, now=dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc))) as sb:
        yield sb


@pytest.fixture
def proxy():
    handler = type("Proxy", (_ForwardProxy,), {"log": []})
    for url in _serve(handler):
        yield url, handler.log


def test_requests_go_through_the_proxy_of_the_environment(sandbox, proxy, monkeypatch):
    proxy_url, log = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    tap_client = client(sandbox.url, api_key=sandbox.api_key)
    params = {"length": 2, "ending_at": "2024-03-02T23:59:59+00:00"}
    body = tap_client.get("/kpi/dau/data_series", params).body
    assert [point["time"] for point in body["data"]] == ["2024-03-01", "2024-03-02"]
    assert len(log) == 1
    assert log[0].startswith(sandbox.url + "/kpi/dau/data_series?")
    assert sandbox.api_key not in log[0]


def test_no_proxy_bypasses_the_proxy(sandbox, proxy, monkeypatch):
    proxy_url, log = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    tap_client = client(sandbox.url, api_key=sandbox.api_key)
    assert tap_client.get("/kpi/dau/data_series", {"length": 1}).body["message"] == "success"
    assert log == []


def test_a_redirect_is_not_followed_and_says_where_it_points():
    handler = type(
        "Redirect", (_Recorder,), {"log": [], "status": 302, "location": "https://elsewhere/"}
    )
    for url in _serve(handler):
        with pytest.raises(BrazeRequestError, match=r"redirect.*elsewhere"):
            client(url).get("/kpi/dau/data_series", {"length": 1})
        assert len(handler.log) == 1


def test_max_in_flight_bounds_every_caller_and_the_connections_kept():
    # max_workers is "requests in flight at once": worker threads and the main
    # thread (listing entities) share one bound.
    config = SandboxConfig(
        seed=3, now=dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc), latency=0.05
    )
    with Sandbox(config) as sb:
        tap_client = client(sb.url, api_key=sb.api_key, max_in_flight=2)
        start = threading.Barrier(6)

        def ask(length: int) -> None:
            start.wait()
            tap_client.get("/kpi/dau/data_series", {"length": length})

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(1, 6)]
        for thread in threads:
            thread.start()
        start.wait()
        tap_client.get("/canvas/list", {"page": 0})
        for thread in threads:
            thread.join(30)
        log = sb.request_log.snapshot()
    assert len(log) == 6
    assert max(r.in_flight for r in log) <= 2
    assert len({r.client_port for r in log}) <= 2  # one keep-alive connection per slot


# A connection that cannot be made before Braze ever answered: stop at once, say why.

CONNECTION_HINTS = ("api_url", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE")


def _stops_at_once(url: str, **overrides: object) -> str:
    tap_client = client(url, max_retries=5, backoff_base=10.0, **overrides)
    started = time.monotonic()
    with pytest.raises(BrazeConnectionError) as caught:
        tap_client.get("/kpi/dau/data_series", {"length": 1})
    assert time.monotonic() - started < 5
    assert tap_client.tally.total().retries == 0  # it would fail the same way every time
    message = str(caught.value)
    for hint in CONNECTION_HINTS:
        assert hint in message, message
    assert "secret-key" not in message
    assert "STATE" not in message  # the client knows nothing of the run's state
    return message


def test_a_refused_connection_stops_at_once_naming_the_host():
    message = _stops_at_once("http://127.0.0.1:9")
    assert "127.0.0.1:9" in message
    assert "refused" in message


def test_a_name_that_does_not_resolve_stops_at_once_naming_it():
    # .invalid never resolves (RFC 6761), and fails locally without a network.
    message = _stops_at_once("https://rest.no-such-instance.invalid")
    assert "rest.no-such-instance.invalid:443" in message
    assert "does not resolve" in message


def test_tls_spoken_to_a_plain_http_server_stops_at_once(sandbox):
    url = sandbox.url.replace("http://", "https://")
    message = _stops_at_once(url, api_key=sandbox.api_key)
    assert url.removeprefix("https://") in message
    assert "TLS handshake" in message


def test_a_proxy_that_cannot_be_reached_is_named_without_its_credentials(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:proxy-password@127.0.0.1:9")
    message = _stops_at_once("https://rest.iad-01.braze.com")
    assert "rest.iad-01.braze.com:443" in message
    assert "through the proxy http://127.0.0.1:9" in message
    assert "proxy-password" not in message
    assert "refused" in message


def test_the_connect_timeout_is_short_whatever_the_request_timeout():
    tap_client = client("http://127.0.0.1:9", timeout=600.0)
    timeout = tap_client._http.timeout  # type: ignore[union-attr]
    assert timeout.connect_timeout == CONNECT_TIMEOUT_CAP
    assert timeout.read_timeout == 600.0


def test_once_braze_has_answered_a_lost_connection_is_retried_with_backoff():
    with Sandbox(SandboxConfig(seed=3, now=dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc))) as sb:
        tap_client = client(sb.url, api_key=sb.api_key, max_retries=2, backoff_base=0.01)
        assert tap_client.get("/kpi/dau/data_series", {"length": 1}).body["message"] == "success"
        no_retry = client(sb.url, api_key=sb.api_key, max_retries=0)
        assert no_retry.get("/kpi/dau/data_series", {"length": 1}).body["message"] == "success"
    # The sandbox is gone: its port now refuses connections, as a restarting Braze might.
    with pytest.raises(BrazeUnavailableError, match="failed 3 times in a row") as caught:
        tap_client.get("/kpi/dau/data_series", {"length": 1})
    assert tap_client.tally.total().retries == 2
    assert "STATE" not in str(caught.value)
    with pytest.raises(BrazeUnavailableError, match=r"series\?length=1 failed once \(last"):
        no_retry.get("/kpi/dau/data_series", {"length": 1})


def test_a_connection_nobody_accepts_stops_after_the_connect_timeout():
    # A listener whose backlog is full: the SYNs of a new connection go unanswered,
    # as behind a firewall that drops them.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            message = _stops_at_once(f"http://127.0.0.1:{port}", timeout=1.0)
        finally:
            for filler in fillers:
                filler.close()
    assert f"127.0.0.1:{port}" in message
    assert "no answer to the connection attempt" in message


def test_a_proxy_that_refuses_to_tunnel_is_named_with_its_answer(proxy, monkeypatch):
    proxy_url, _ = proxy  # answers 501 to CONNECT: it only forwards plain GETs
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    message = _stops_at_once("https://rest.iad-01.braze.com")
    assert f"through the proxy {proxy_url}" in message
    assert "501" in message


# Interim answers and answers out of turn, on one kept-alive connection.


class _Scripted(BaseHTTPRequestHandler):
    """Answers each GET with `before` (raw heads), BODY as a 200, then `after` (raw)."""

    protocol_version = "HTTP/1.1"
    log: list[tuple[str, int]]
    before = b""
    after = b""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.log.append((self.path, self.client_address[1]))
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode()
        self.wfile.write(self.before)
        self.wfile.flush()
        time.sleep(0.02)
        self.wfile.write(head + BODY + self.after)
        self.wfile.flush()


@pytest.mark.parametrize(
    "heads",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 199 Odd\r\n\r\n",
    ],
    ids=["103", "100-102-199"],
)
def test_interim_answers_are_skipped_and_the_connection_kept(heads):
    handler = type("Interim", (_Scripted,), {"log": [], "before": heads})
    for url in _serve(handler):
        tap_client = client(url, max_in_flight=1)
        bodies = [tap_client.get("/kpi/dau/data_series", {"length": n}).body for n in (1, 2, 3)]
        assert bodies == [json.loads(BODY)] * 3
        assert tap_client.tally.total().retries == 0
        assert len({port for _, port in handler.log}) == 1  # one connection, reused


def test_a_101_nobody_asked_for_is_a_broken_answer():
    handler = type("Upgrade", (_Scripted,), {"log": [], "before": b"HTTP/1.1 101 Upgrade\r\n\r\n"})
    for url in _serve(handler):
        with pytest.raises(BrazeUnavailableError, match="connection failed or dropped"):
            client(url).get("/kpi/dau/data_series", {"length": 1})


def test_a_connection_that_sent_more_than_its_answer_is_not_reused():
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
    handler = type("Unsolicited", (_Scripted,), {"log": [], "after": extra})
    for url in _serve(handler):
        tap_client = client(url, max_in_flight=1)
        for n in (1, 2, 3):
            assert tap_client.get("/kpi/dau/data_series", {"length": n}).body == json.loads(BODY)
        ports = [port for _, port in handler.log]
        assert len(set(ports)) == 3, ports
