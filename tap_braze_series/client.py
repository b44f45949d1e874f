"""The one HTTP client every stream uses: auth, URL, errors, retries, rate limits.

Thread-safe: all threads share one urllib3 connection pool (one keep-alive
connection per request in flight), one bound on requests in flight and one
`RateGovernor`. The API key travels only in the Authorization header; it is
never put in a URL, a log line or an error.

Why urllib3 and not a `requests.Session`: requests is a convenience layer over
urllib3 whose per-request work (merging settings, hooks, cookie jars, building a
PreparedRequest, re-encoding the URL) cost about 0.6 ms of CPU per request,
more than decoding and shaping the 100 points a response holds. Bodies are
decoded with msgspec for the same reason.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import msgspec
import requests.utils
import urllib3
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import PageNumberPaginator
from typing_extensions import override

from tap_braze_series.endpoints import PERMISSIONS, ListEndpoint, pool_of
from tap_braze_series.progress import RequestTally
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.stopping import POLL_SECONDS, Stop
from tap_braze_series.watchdog import Deadlines

logger = logging.getLogger("tap-braze-series.client")

BACKOFF_CAP = 60.0
# A TCP or TLS connection to Braze takes milliseconds: one that is not made within this
# many seconds is refused by a firewall or a proxy, whatever request_timeout allows for
# Braze to compute an answer.
CONNECT_TIMEOUT_CAP = 10.0
# 429s are Braze telling us to wait, not a failure: they get a larger allowance.
RATE_LIMIT_TRIES = 50
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# Failures of the connection or of the response body: retried like a 5xx.
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


class BrazeError(Exception):
    """An error the tap reports as one line and stops on. Never contains the key."""


class BrazeAuthError(BrazeError):
    """401: wrong key, key of another instance, or a quoted key."""


class BrazePermissionError(BrazeError):
    """403: the key lacks the endpoint's permission."""


class BrazeRequestError(BrazeError):
    """Another 4xx: Braze rejected the request itself."""


class BrazeTLSError(BrazeError):
    """The endpoint's TLS certificate is not trusted: a set-up problem, not a passing one."""


class BrazeConnectionError(BrazeError):
    """No connection to Braze could be made before it ever answered: a set-up problem."""


class BrazeUnavailableError(BrazeError):
    """Transient failures persisted past the retry budget."""


class BrazeResponseError(BrazeError):
    """A 200 whose body contradicts the documented shape."""


class BrazeUndecodableError(BrazeResponseError):
    """A 200 whose JSON could not be decoded whole, however often it was asked again."""


# A decoded answer larger than this is not Braze's: a series answer holds at most 100
# buckets (a canvas 14 days, with its steps and variants), a list page 100 entities; the
# sandbox's largest canvas answer, every breakdown on, is 35 KB. Past it, the body is not
# read further (1 MB of gzip can inflate to 1 GB: 2.1 GB of memory when it was read
# whole) and the answer counts as invalid: retried, then its partition stops.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


# A body checked to be one JSON object, its values left undecoded: much cheaper
# than decoding it all, and what a worker needs to know to retry or not.
_JSON_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Response:
    """A successful response: its body as received, decoded when first read.

    Undecoded bytes are several times smaller than the objects they decode to:
    responses that wait their turn (see scheduler.py) are kept as bytes. A body
    that passed the arrival check can still fail the full decode (a number out of
    range such as 1e999): it is then asked for again, like invalid JSON, through
    `refetch`, and BrazeUndecodableError says it stayed so.
    """

    __slots__ = ("_body", "_refetch", "failed", "params", "path", "raw")

    def __init__(
        self,
        path: str,
        params: Mapping[str, str],
        raw: bytes,
        refetch: Callable[[Response, str], dict[str, Any]] | None = None,
        failed: str | None = None,
    ) -> None:
        self.path = path
        self.params = params
        self.raw = raw
        self._refetch = refetch
        # Why every answer to this request was unusable (too large), if it was.
        self.failed = failed
        self._body: dict[str, Any] | None = None

    @property
    def body(self) -> dict[str, Any]:
        if self.failed is not None:
            raise BrazeUndecodableError(self.failed)
        if self._body is None:
            try:
                self._body = decode_body(self.raw, describe(self.path, self.params))
            except msgspec.DecodeError as exc:
                if self._refetch is None:
                    raise BrazeUndecodableError(
                        f"{describe(self.path, self.params)} answered a 200 whose JSON cannot "
                        f"be decoded ({exc})."
                    ) from None
                self._body = self._refetch(self, str(exc))
        return self._body


def decode_body(raw: bytes, where: str) -> dict[str, Any]:
    """The decoded JSON of a body that passed the arrival check (which reads no strings).

    Text that is not UTF-8 is read with replacement characters (see `_as_utf8`).
    """
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        replaced = _as_utf8(raw, where)
        if replaced is None:
            raise
        return msgspec.json.decode(replaced)


def _as_utf8(raw: bytes, where: str) -> bytes | None:
    """`raw` with bytes that are not UTF-8 replaced (U+FFFD), or None if it is UTF-8.

    Braze's text (a canvas name) is UTF-8; a body that is not is read, not refused:
    its odd bytes become replacement characters, with a warning.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        logger.warning(
            "%s answered text that is not UTF-8 (byte 0x%02x at offset %d); read with "
            "replacement characters (U+FFFD) in its place.",
            where,
            raw[exc.start],
            exc.start,
        )
        return raw.decode("utf-8", "replace").encode("utf-8")
    return None


def describe(path: str, params: Mapping[str, Any] | None) -> str:
    """`path?k=v&...` for messages (params never include the key)."""
    if not params:
        return path
    return path + "?" + "&".join(f"{k}={v}" for k, v in params.items())


class _RetryableError(Exception):
    """A failure worth another attempt; its message says what failed."""


class _TooLarge(_RetryableError):
    """An answer past MAX_RESPONSE_BYTES."""


class _UnusableAnswers(Exception):
    """Every answer to a request was too large (see Response.failed)."""


class BrazePagePaginator(PageNumberPaginator):
    """Braze list pages count from 0; a page shorter than the page size is the last."""

    def __init__(self, page_size: int, items_field: str) -> None:
        super().__init__(start_value=0)
        self._page_size = page_size
        self._items_field = items_field

    @override
    def has_more(self, response: Any) -> bool:
        items = response.json().get(self._items_field)
        return isinstance(items, list) and len(items) >= self._page_size


def connection_pool(
    api_url: str,
    *,
    connections: int,
    timeout: float,
    headers: Mapping[str, str],
    deadlines: Deadlines | None = None,
) -> tuple[urllib3.HTTPConnectionPool | urllib3.ProxyManager, str]:
    """Keep-alive connections to `api_url`, and the prefix of the URLs to request.

    Without a proxy the pool is the host's own connection pool, asked for paths
    (a PoolManager would parse and route every absolute URL once more). Proxy
    (HTTPS_PROXY, NO_PROXY, ...) and CA bundle (REQUESTS_CA_BUNDLE,
    CURL_CA_BUNDLE) settings are read from the environment once, the way
    requests reads them.
    """
    options: dict[str, Any] = {
        "maxsize": connections,
        "block": False,
        "headers": dict(headers),
        "retries": False,  # retries are ours: backoff, the governor, clear errors
        "timeout": urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT_CAP), read=timeout),
    }
    parts = urlsplit(api_url)
    if parts.scheme == "https":
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        bundle = bundle or certifi.where()
        options["cert_reqs"] = "CERT_REQUIRED"
        options["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    proxy = environment_proxy(api_url)
    if proxy:
        manager = urllib3.ProxyManager(proxy, num_pools=1, **options)
        if deadlines is not None:
            manager.pool_classes_by_scheme = {
                scheme: deadlines.watched_pool(cls)
                for scheme, cls in manager.pool_classes_by_scheme.items()
            }
        return manager, api_url
    pool = urllib3.connection_from_url(api_url, **options)
    if deadlines is not None:
        pool.ConnectionCls = deadlines.watched_connection(pool.ConnectionCls)
    return pool, parts.path


def environment_proxy(api_url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) sets for `api_url`."""
    return requests.utils.select_proxy(api_url, requests.utils.get_environ_proxies(api_url))


class BrazeClient:
    """GET Braze export endpoints with retries, backoff and the rate governor."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        timeout: float,
        governor: RateGovernor,
        max_retries: int,
        backoff_base: float,
        max_in_flight: int = 8,
        streams_by_path: Mapping[str, Sequence[str]] | None = None,
        user_agent: str = "tap-braze-series",
        stop: Stop | None = None,
    ) -> None:
        self.api_url = api_url
        auth = BearerTokenAuthenticator(token=api_key)
        self._stop = stop or Stop()
        self._timeout = timeout
        self._deadlines = Deadlines(self._stop)
        self._http, self._url_prefix = connection_pool(
            api_url,
            connections=max_in_flight,
            timeout=timeout,
            deadlines=self._deadlines,
            headers={
                **auth.auth_headers,
                "User-Agent": user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            },
        )
        self.governor = governor
        # `max_workers` means requests in flight, whichever thread asks (the workers,
        # and the main thread listing entities): one bound for every caller.
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self._max_tries = max_retries + 1
        self._backoff_base = backoff_base
        self._streams_by_path = streams_by_path or {}
        self._proxy = environment_proxy(api_url)
        # Until Braze answers once, a connection that cannot be made is a set-up problem
        # (address, DNS, proxy, firewall, CA bundle) that retrying will not fix.
        self._answered = False
        self.tally = RequestTally()  # per endpoint, for the run's summary

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """GET `path` and return its body, checked; retry what is transient."""
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            raw = self._get_raw(path, query)
        except _UnusableAnswers as exc:
            # Like a body that cannot be decoded: the reader of the body decides (a series
            # partition stops, a list stops the run).
            return Response(path, query, b"", failed=str(exc))
        return Response(path, query, raw, self._refetch)

    def _refetch(self, response: Response, reason: str) -> dict[str, Any]:
        """Ask again for an answer that could not be decoded whole, as for invalid JSON."""
        path, query = response.path, response.params
        failures = 1
        while True:
            if failures >= self._max_tries:
                raise BrazeUndecodableError(
                    f"{describe(path, query)} answered a 200 whose JSON cannot be decoded "
                    f"({reason}), {'once' if failures == 1 else f'{failures} times in a row'}."
                )
            self._back_off(path, query, f"a 200 whose JSON cannot be decoded: {reason}", failures)
            try:
                raw = self._get_raw(path, query)
            except _UnusableAnswers as exc:
                raise BrazeUndecodableError(str(exc)) from None
            try:
                return decode_body(raw, describe(path, query))
            except msgspec.DecodeError as exc:
                reason = str(exc)
                failures += 1

    def _back_off(self, path: str, query: Mapping[str, str], error: object, failures: int) -> None:
        wait = random.uniform(0, min(BACKOFF_CAP, self._backoff_base * 2 ** (failures - 1)))
        self.tally.retried(path, query.get("unit"))
        logger.warning(
            "Request %s failed (%s); retry %d of %d in %.2f s.",
            describe(path, query),
            error,
            failures,
            self._max_tries - 1,
            wait,
        )
        self._stop.sleep(wait)

    def _get_raw(self, path: str, query: Mapping[str, str]) -> bytes:
        pool = pool_of(path)
        url = self._url_prefix + path
        if query:
            url += "?" + urlencode(query)
        failures = 0
        rate_limited = 0
        while True:
            response: urllib3.BaseHTTPResponse | None = None
            raw: bytes | None = None
            error: _RetryableError
            self._enter_in_flight()
            try:
                self.governor.acquire(pool)  # raises RunStopped once the run must stop
                try:
                    with self._deadlines.watch(self._timeout) as watch:
                        response = self._http.urlopen(
                            "GET", url, redirect=False, preload_content=False
                        )
                        raw = _read_bounded(response)
                    self._answered = True
                except NETWORK_ERRORS as exc:
                    self._stop.check()  # its socket was shut down by the stop: not a failure
                    _raise_if_untrusted(exc, self.api_url)
                    if not self._answered:
                        _raise_if_unreachable(exc, self.api_url, self._proxy)
                    reason = _network_reason(exc)
                    if watch.expired:
                        reason = f"no complete answer within request_timeout ({self._timeout:g} s)"
                    error = _RetryableError(reason)
                    response = None
                except _RetryableError as exc:  # too large: the rest is not read
                    self._answered = True
                    error = exc
                finally:
                    status = response.status if response is not None else None
                    self.governor.release(
                        pool, response.headers if response is not None else None, status
                    )
                    self.tally.sent(path, query.get("unit"), status)
            finally:
                self._in_flight.release()
            if response is not None and raw is not None:
                try:
                    return self._check(path, query, response, raw)
                except _RetryableError as exc:
                    error = exc
            if response is not None and response.status == 429:
                # The governor now holds the pool until the announced reset.
                rate_limited += 1
                if rate_limited >= RATE_LIMIT_TRIES:
                    raise BrazeUnavailableError(
                        f"Braze kept answering 429 (rate limited) for {describe(path, query)} "
                        f"after {rate_limited} waits for the announced reset; lower "
                        "max_requests_per_hour or run later."
                    )
                continue  # the governor's line says so, once a minute per pool
            self._stop.check()
            failures += 1
            if failures >= self._max_tries and isinstance(error, _TooLarge):
                raise _UnusableAnswers(
                    f"{describe(path, query)} answered "
                    f"{'once' if failures == 1 else f'{failures} times in a row'} with {error}"
                )
            if failures >= self._max_tries:
                raise BrazeUnavailableError(
                    f"{describe(path, query)} failed "
                    f"{'once' if failures == 1 else f'{failures} times in a row'} (last: {error}); "
                    "Braze may be unavailable."
                )
            self._back_off(path, query, error, failures)

    def _enter_in_flight(self) -> None:
        """Take a slot among the requests in flight; RunStopped if the run stops first."""
        while not self._in_flight.acquire(timeout=POLL_SECONDS):
            self._stop.check()

    def _check(
        self, path: str, query: Mapping[str, str], response: urllib3.BaseHTTPResponse, raw: bytes
    ) -> bytes:
        """Classify a response: return its body, raise a retryable or a final error."""
        status = response.status
        if status == 429 or status in TRANSIENT_STATUSES or status >= 500:
            raise _RetryableError(f"HTTP {status}")
        if status == 401:
            raise BrazeAuthError(
                f"Braze rejected the API key (401) at {self.api_url}: "
                f"{_braze_message(response, raw)}. Check that api_key is a REST API key of this "
                "workspace, unquoted, and that api_url is the REST endpoint of the instance "
                "the key belongs to (an EU key fails against a US endpoint)."
            )
        if status == 403:
            permission = PERMISSIONS.get(path, path)
            streams = (
                ", ".join(self._streams_by_path.get(path, ())) or f"the streams reading {path}"
            )
            raise BrazePermissionError(
                f"Braze refused {path} (403): the API key lacks the '{permission}' permission "
                f"(or the plan does not include it): {_braze_message(response, raw)}. Grant "
                f"'{permission}' to the key, or deselect: {streams}."
            )
        if status == 404:
            raise BrazeRequestError(
                f"Braze answered 404 for {describe(path, query)} at {self.api_url}; check that "
                "api_url is the workspace's REST endpoint."
            )
        if status >= 400:
            raise BrazeRequestError(
                f"Braze rejected {describe(path, query)} ({status}): "
                f"{_braze_message(response, raw)}"
            )
        if status >= 300:
            raise BrazeRequestError(
                f"Braze answered {describe(path, query)} with a redirect ({status}) to "
                f"{response.headers.get('Location')!r}; set api_url to the REST endpoint itself."
            )
        try:
            _JSON_OBJECT.decode(raw)
        except msgspec.ValidationError:
            raise _RetryableError("a 200 response whose JSON is not an object") from None
        except msgspec.DecodeError:
            replaced = _as_utf8(raw, describe(path, query))
            if replaced is None:
                raise _RetryableError("invalid JSON in a 200 response") from None
            return self._check(path, query, response, replaced)
        return raw

    def paginate(self, endpoint: ListEndpoint, params: Mapping[str, Any]) -> Iterator[Any]:
        """Yield every item of a paged list endpoint.

        A list that ignores `page` answers the same page for ever: a page naming
        only items already listed ends the list (with one warning), so a list
        never costs more requests than its items need.
        """
        paginator = BrazePagePaginator(endpoint.page_size, endpoint.items_field)
        listed: set[Any] = set()
        while not paginator.finished:
            page = self.get(endpoint.path, {**params, "page": paginator.current_value})
            items = page.body.get(endpoint.items_field)
            if not isinstance(items, list):
                raise BrazeResponseError(
                    f"{describe(endpoint.path, page.params)} answered without a "
                    f"'{endpoint.items_field}' list; cannot enumerate {endpoint.kind}."
                )
            identities = {_list_identity(item) for item in items}
            if items and paginator.current_value and identities <= listed:
                logger.warning(
                    "%s answered page %s with only %s already listed on earlier pages (it "
                    "seems to ignore `page`); the list ends there, with the %d listed.",
                    endpoint.path,
                    paginator.current_value,
                    endpoint.kind,
                    len(listed),
                )
                return
            listed |= identities
            yield from items
            paginator.advance(_PageView(page.body))


def _list_identity(item: Any) -> Any:
    """What names a list item: its id or name, else the whole item."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        for field in ("id", "name", "product_name"):
            value = item.get(field)
            if isinstance(value, str) and value:
                return (field, value)
    return msgspec.json.encode(item)


class _PageView:
    """The slice of a response that the SDK paginator reads."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


def _raise_if_untrusted(exc: Exception, api_url: str) -> None:
    """A certificate that fails verification will fail every retry: stop at once."""
    cause = exc.args[0] if isinstance(exc, urllib3.exceptions.SSLError) and exc.args else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        raise BrazeTLSError(
            f"The TLS certificate of {api_url} is not trusted ({cause.verify_message}). "
            "Check api_url; behind a TLS-inspecting proxy, set REQUESTS_CA_BUNDLE to the "
            "CA bundle that signs its certificates."
        ) from None


def _raise_if_unreachable(exc: Exception, api_url: str, proxy: str | None) -> None:
    """A connection to Braze that cannot be made: stop, naming the host, why and what to check."""
    cause = _connection_failure(exc)
    if cause is None:
        return
    parts = urlsplit(api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy_name = _without_credentials(proxy) if proxy else None
    route = f" through the proxy {proxy_name}" if proxy_name else ""
    proxies = f"now {proxy_name}" if proxy_name else "none set"
    raise BrazeConnectionError(
        f"Cannot connect to Braze at {parts.hostname}:{port}{route}: {cause}; nothing was "
        f"sent. Check that api_url ({api_url}) is your workspace's REST endpoint, the proxy "
        f"variables HTTPS_PROXY and NO_PROXY ({proxies}) and, behind a TLS-inspecting "
        "proxy, REQUESTS_CA_BUNDLE."
    ) from None


def _connection_failure(exc: BaseException | None) -> str | None:
    """Why a connection could not be made; None if it was made (or `exc` is not about that)."""
    if isinstance(exc, urllib3.exceptions.ProxyError):
        inner = next((a for a in exc.args if isinstance(a, BaseException)), exc.__cause__)
        return f"the proxy failed: {_connection_failure(inner) or inner or exc.args[0]}"
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return f"the name does not resolve ({_os_reason(exc)})"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        if isinstance(exc.__cause__, ConnectionRefusedError):
            return "the connection was refused"
        return f"the connection could not be made ({_os_reason(exc)})"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "no answer to the connection attempt (a firewall dropping it, or a proxy needed)"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"the TLS handshake failed ({_os_reason(exc)})"
    return None


def _os_reason(exc: Exception) -> str:
    cause = exc.__cause__ or next((a for a in exc.args if isinstance(a, BaseException)), None)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause or exc)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _network_reason(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "could not connect"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS error ({exc})"
    if isinstance(exc, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection failed or dropped"
    return f"broken response ({type(exc).__name__})"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_bounded(response: urllib3.BaseHTTPResponse) -> bytes:
    """The decoded body, read in chunks; _RetryableError once it passes MAX_RESPONSE_BYTES."""
    body = bytearray()
    try:
        for chunk in response.stream(_READ_CHUNK, decode_content=True):
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise _TooLarge(
                    f"an answer larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB once "
                    "decompressed; not read further"
                )
    except _TooLarge:
        body.clear()
        response.close()  # the rest is never read: the connection is not reused
        raise
    response.release_conn()
    return bytes(body)


def _braze_message(response: urllib3.BaseHTTPResponse, raw: bytes) -> str:
    reason = response.reason or f"HTTP {response.status}"
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw[:200].decode("utf-8", "replace").strip() or reason
    if isinstance(body, dict):
        message = body.get("message")
        errors = body.get("errors")
        text = str(message).rstrip(". ") if message else reason
        if errors:
            text += f" ({errors})"
        return text
    return reason
