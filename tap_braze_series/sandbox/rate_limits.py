"""Braze's rate limits as the sandbox plays them: fixed windows per pool, and the headers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping


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


_LIMIT, _REMAINING, _RESET = RATE_LIMIT_HEADERS

#: How the rate-limit headers are sent, by mode (SandboxConfig.rate_limit_headers): as
#: they should be, or in one of the odd forms a server, a proxy or a future Braze may send.
_FORMS: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    "valid": lambda h: h,
    "missing": lambda h: {k: v for k, v in h.items() if k not in RATE_LIMIT_HEADERS},
    "empty": lambda h: {**h, **EMPTY_RATE_LIMIT_HEADERS},  # all three empty, as on a real 401
    "nan": lambda h: {**h, _RESET: "nan"},
    "inf": lambda h: {**h, _RESET: "inf"},
    "milliseconds": lambda h: {**h, _RESET: str(int(h[_RESET]) * 1000)},  # epoch milliseconds
    "far": lambda h: {**h, _RESET: str(int(h[_RESET]) + 7 * 86400)},  # a reset a week away
    "negative": lambda h: {**h, _REMAINING: "-1"},
    "nan-remaining": lambda h: {**h, _REMAINING: "nan", _LIMIT: "inf"},
}
RATE_LIMIT_HEADER_MODES: tuple[str, ...] = tuple(_FORMS)


def rate_limit_headers(headers: Mapping[str, str], mode: str) -> dict[str, str]:
    """The rate-limit headers to send in ``mode`` (SandboxConfig.rate_limit_headers)."""
    form = _FORMS.get(mode)
    if form is None:
        raise ValueError(f"unknown rate_limit_headers mode {mode!r}")
    return form(dict(headers))
