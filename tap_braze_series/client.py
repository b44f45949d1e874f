"""The one HTTP client every stream uses: auth, URL, errors, retries, rate limits.

Thread-safe: each worker thread gets its own `requests.Session` (connection
pool), all share one `RateGovernor`. The API key travels only in the
Authorization header; it is never put in a URL, a log line or an error.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import PageNumberPaginator
from typing_extensions import override

from tap_braze_series.endpoints import PERMISSIONS, ListEndpoint, pool_of
from tap_braze_series.ratelimit import RateGovernor

logger = logging.getLogger("tap-braze-series.client")

BACKOFF_CAP = 60.0
# 429s are Braze telling us to wait, not a failure: they get a larger allowance.
RATE_LIMIT_TRIES = 50
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# Failures of the connection itself: retried like a 5xx.
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class BrazeError(Exception):
    """An error the tap reports as one line and stops on. Never contains the key."""


class BrazeAuthError(BrazeError):
    """401: wrong key, key of another instance, or a quoted key."""


class BrazePermissionError(BrazeError):
    """403: the key lacks the endpoint's permission."""


class BrazeRequestError(BrazeError):
    """Another 4xx: Braze rejected the request itself."""


class BrazeUnavailableError(BrazeError):
    """Transient failures persisted past the retry budget."""


class BrazeResponseError(BrazeError):
    """A 200 whose body contradicts the documented shape."""


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded successful response."""

    path: str
    params: Mapping[str, str]
    body: dict[str, Any]


def describe(path: str, params: Mapping[str, Any] | None) -> str:
    """`path?k=v&...` for messages (params never include the key)."""
    if not params:
        return path
    return path + "?" + "&".join(f"{k}={v}" for k, v in params.items())


class _RetryableError(Exception):
    def __init__(self, reason: str, response: requests.Response | None = None) -> None:
        super().__init__(reason)
        self.response = response


class BrazePagePaginator(PageNumberPaginator):
    """Braze list pages count from 0; a page shorter than the page size is the last."""

    def __init__(self, page_size: int, items_field: str) -> None:
        super().__init__(start_value=0)
        self._page_size = page_size
        self._items_field = items_field

    @override
    def has_more(self, response: requests.Response) -> bool:
        items = response.json().get(self._items_field)
        return isinstance(items, list) and len(items) >= self._page_size


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
        streams_by_path: Mapping[str, Sequence[str]] | None = None,
        user_agent: str = "tap-braze-series",
    ) -> None:
        self.api_url = api_url
        self._auth = BearerTokenAuthenticator(token=api_key)
        self._timeout = timeout
        self.governor = governor
        self._max_tries = max_retries + 1
        self._backoff_base = backoff_base
        self._user_agent = user_agent
        self._streams_by_path = streams_by_path or {}
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.retries = 0

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # requests re-reads proxy and CA settings from the environment on every
            # request, scanning os.environ each time; read them once per session.
            session.proxies.update(requests.utils.get_environ_proxies(self.api_url))
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
            session.trust_env = False
            session.auth = self._auth
            session.headers["User-Agent"] = self._user_agent
            session.headers["Accept"] = "application/json"
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every worker's connection pool."""
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """GET `path` and return its decoded body; retry what is transient."""
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        pool = pool_of(path)
        url = self.api_url + path
        failures = 0
        rate_limited = 0
        while True:
            self.governor.acquire(pool)
            response: requests.Response | None = None
            error: _RetryableError
            try:
                response = self._session().get(url, params=query, timeout=self._timeout)
            except NETWORK_ERRORS as exc:
                error = _RetryableError(_network_reason(exc))
            finally:
                self.governor.release(
                    pool,
                    response.headers if response is not None else None,
                    response.status_code if response is not None else None,
                )
            if response is not None:
                try:
                    return Response(
                        path=path, params=query, body=self._check(path, query, response)
                    )
                except _RetryableError as exc:
                    error = exc
            if response is not None and response.status_code == 429:
                # The governor now holds the pool until the announced reset.
                rate_limited += 1
                if rate_limited >= RATE_LIMIT_TRIES:
                    raise BrazeUnavailableError(
                        f"Braze kept answering 429 (rate limited) for {describe(path, query)} "
                        f"after {rate_limited} waits for the announced reset; lower "
                        "max_requests_per_hour or run later."
                    )
                logger.info("429 rate limited on %s; waiting for the reset.", path)
                continue
            failures += 1
            if failures >= self._max_tries:
                raise BrazeUnavailableError(
                    f"{describe(path, query)} failed {failures} times in a row (last: {error}); "
                    "Braze may be unavailable. The run stopped; its last STATE message is "
                    "valid, so the next run resumes from there."
                )
            wait = random.uniform(0, min(BACKOFF_CAP, self._backoff_base * 2 ** (failures - 1)))
            self.retries += 1
            logger.warning(
                "Request %s failed (%s); retry %d of %d in %.2f s.",
                describe(path, query),
                error,
                failures,
                self._max_tries - 1,
                wait,
            )
            time.sleep(wait)

    def _check(
        self, path: str, query: Mapping[str, str], response: requests.Response
    ) -> dict[str, Any]:
        """Classify a response: return its body, raise a retryable or a final error."""
        status = response.status_code
        if status == 429 or status in TRANSIENT_STATUSES or status >= 500:
            raise _RetryableError(f"HTTP {status}", response)
        if status == 401:
            raise BrazeAuthError(
                f"Braze rejected the API key (401) at {self.api_url}: "
                f"{_braze_message(response)}. Check that api_key is a REST API key of this "
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
                f"(or the plan does not include it): {_braze_message(response)}. Grant "
                f"'{permission}' to the key, or deselect: {streams}."
            )
        if status == 404:
            raise BrazeRequestError(
                f"Braze answered 404 for {describe(path, query)} at {self.api_url}; check that "
                "api_url is the workspace's REST endpoint."
            )
        if status >= 400:
            raise BrazeRequestError(
                f"Braze rejected {describe(path, query)} ({status}): {_braze_message(response)}"
            )
        try:
            body = response.json()
        except (ValueError, requests.exceptions.JSONDecodeError):
            raise _RetryableError("invalid JSON in a 200 response", response) from None
        if not isinstance(body, dict):
            raise _RetryableError("a 200 response whose JSON is not an object", response)
        return body

    def paginate(self, endpoint: ListEndpoint, params: Mapping[str, Any]) -> Iterator[Any]:
        """Yield every item of a paged list endpoint."""
        paginator = BrazePagePaginator(endpoint.page_size, endpoint.items_field)
        while not paginator.finished:
            page = self.get(endpoint.path, {**params, "page": paginator.current_value})
            items = page.body.get(endpoint.items_field)
            if not isinstance(items, list):
                raise BrazeResponseError(
                    f"{describe(endpoint.path, page.params)} answered without a "
                    f"'{endpoint.items_field}' list; cannot enumerate {endpoint.kind}."
                )
            yield from items
            paginator.advance(_PageView(page.body))


class _PageView:
    """The slice of requests.Response that the SDK paginator reads."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


def _network_reason(exc: Exception) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed or dropped"
    return f"broken response body ({type(exc).__name__})"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _braze_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason
    if isinstance(body, dict):
        message = body.get("message")
        errors = body.get("errors")
        text = str(message).rstrip(". ") if message else response.reason
        if errors:
            text += f" ({errors})"
        return text
    return response.reason
