"""Configuration of the Braze sandbox."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .rate_limits import RATE_LIMIT_HEADER_MODES
from .timeutil import ENDING_AT_READINGS, UTC

#: Orders of series points: Braze's (oldest first), newest first, or a permutation per request.
POINT_ORDERS: tuple[str, ...] = ("asc", "desc", "shuffled")
#: What the extra copies of a duplicated point carry: the same numbers, or others.
DUPLICATE_VALUES: tuple[str, ...] = ("equal", "different")
#: How count series answer their zero buckets: left out (as recorded) or a point with 0.
COUNT_ZERO_BUCKETS: tuple[str, ...] = ("omitted", "filled")

#: The fault kinds injected by default: each answers (or drops) the request at once.
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "504", "drop", "slow", "truncated")
#: Stalls, injected only when asked for: "hang" reads the request and never answers,
#: "stall" sends the headers and never the body, "trickle" sends the whole response one
#: byte every ``trickle_interval`` seconds. A hang or stall lasts until the client hangs
#: up, ``hang_seconds`` pass, or the sandbox stops.
STALL_KINDS: tuple[str, ...] = ("hang", "stall", "trickle")
#: Answers out of turn, injected only when asked for: "early_hints" sends a
#: ``103 Early Hints`` and the answer 50 ms later; "interim" sends 102, 103 and 199
#: heads before the answer; "unsolicited" sends the answer, then the same answer again,
#: which nothing asked for, on the kept-alive connection.
CONNECTION_KINDS: tuple[str, ...] = ("early_hints", "interim", "unsolicited")
#: Answers that pass a JSON check but not a full decode, or are too large (see
#: ``body_fault``): a number out of range, text that is not UTF-8, a small gzip or
#: deflate body that inflates to ``bomb_bytes``.
BODY_FAULTS: tuple[str, ...] = ("huge_number", "bad_utf8", "gzip_bomb", "deflate_bomb")

#: Rate-limit pools and Braze's documented defaults: ``pool -> (limit, window_seconds)``.
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "default": (250_000, 3600.0),
    "campaigns_data_series": (50_000, 60.0),
    "lists_1000": (1_000, 3600.0),
}


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes a sandbox workspace and its server.

    The object is immutable; the :class:`~tap_braze_series.sandbox.Sandbox` offers
    setters (``set_now``, ``set_faults``, ``set_rate_limits``...) that swap in a
    modified copy while the server runs.
    """

    seed: int = 7
    n_canvases: int = 12
    n_campaigns: int = 8
    n_segments: int = 10
    n_events: int = 30
    n_products: int = 5
    apps: tuple[str, ...] = ("app_ios", "app_android")
    timezone: str = "UTC"
    now: datetime | None = None
    restatement_days: int = 3
    history_start: date = date(2023, 1, 1)
    api_key: str = "sandbox-key"
    denied_permissions: frozenset[str] = frozenset()
    latency: float = 0.0
    rate_limits: Mapping[str, tuple[int, float]] | None = None
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_max_repeats: int = 2
    slow_seconds: float = 5.0
    # A heavy tail of response times: this fraction of requests (chosen by a hash of
    # seed and request, so the same ones every run) take `tail_latency` s more.
    tail_rate: float = 0.0
    tail_latency: float = 1.0
    # Misbehaving points of series responses (see points.py).
    point_order: str = "asc"
    duplicate_rate: float = 0.0
    duplicate_copies: int = 1
    duplicate_values: str = "equal"
    missing_rate: float = 0.0
    missing_repeats: int | None = None
    trickle_interval: float = 1.0
    hang_seconds: float = 600.0
    # How this Braze reads what public recordings leave open (docs/braze.md). A datetime
    # `ending_at`: "instant", the last bucket holds the instant just before it (the
    # current, partial bucket included when the bound is in the future); "ends_by", the
    # last bucket is the last one that ends by it, or by now (no partial bucket). A date
    # is its local midnight, exclusive, under both, as recorded. Count series (events,
    # sessions, KPIs, purchases): "omitted" leaves out their zero buckets, as recorded;
    # "filled" answers a point with 0 for them, as canvas, campaign and segment series do.
    ending_at_reading: str = "instant"
    count_zero_buckets: str = "omitted"
    # --- answers as public recordings of real Braze show them, and stranger ones ---
    # A 401 says "Invalid API key: <the key sent>" with empty X-RateLimit-* values, as a
    # recorded real 401 does; False: a message without the key, and the pool's values.
    auth_error_echoes_key: bool = True
    # Statuses (400, 403) whose messages repeat the key sent, too.
    echo_key_statuses: frozenset[int] = frozenset()
    # Lists answer page 0 whatever `page` asks: a list that never ends.
    lists_ignore_page: bool = False
    # One of BODY_FAULTS, applied to 200s of requests whose "path?k=v&..." (sorted
    # parameters) contains body_fault_match, on their first body_fault_repeats asks
    # (None: every ask).
    body_fault: str | None = None
    body_fault_match: str = ""
    body_fault_repeats: int | None = None
    bomb_bytes: int = 1024**3
    # Rate-limit headers as sent: "valid", or one of the odd forms of
    # RATE_LIMIT_HEADER_MODES (missing, empty, not finite, negative, absurd resets).
    rate_limit_headers: str = "valid"

    def __post_init__(self) -> None:
        # Normalise container types so callers may pass lists/sets.
        object.__setattr__(self, "apps", tuple(self.apps))
        object.__setattr__(self, "fault_kinds", tuple(self.fault_kinds))
        object.__setattr__(self, "denied_permissions", frozenset(self.denied_permissions))
        if self.rate_limits is not None:
            object.__setattr__(self, "rate_limits", dict(self.rate_limits))
        for name in ("n_canvases", "n_campaigns", "n_segments", "n_events", "n_products"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not self.apps or any(not isinstance(a, str) or not a for a in self.apps):
            raise ValueError("apps must be a non-empty sequence of non-empty strings")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        if self.now is not None and (
            not isinstance(self.now, datetime) or self.now.utcoffset() is None
        ):
            raise ValueError("now must be an aware datetime or None")
        if isinstance(self.history_start, datetime) or not isinstance(self.history_start, date):
            raise ValueError("history_start must be a date")
        if self.restatement_days < 0:
            raise ValueError("restatement_days must be >= 0")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.latency < 0 or self.slow_seconds < 0:
            raise ValueError("latency and slow_seconds must be >= 0")
        if not 0.0 <= self.tail_rate <= 1.0 or not self.tail_latency >= 0:
            raise ValueError("tail_rate must be between 0 and 1 and tail_latency >= 0")
        if not self.trickle_interval > 0 or self.hang_seconds < 0:
            raise ValueError("trickle_interval must be > 0 and hang_seconds >= 0")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        known = [*FAULT_KINDS, *STALL_KINDS, *CONNECTION_KINDS]
        unknown = [k for k in self.fault_kinds if k not in known]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {known}")
        if self.fault_rate > 0 and not self.fault_kinds:
            raise ValueError("fault_kinds must not be empty when fault_rate > 0")
        if self.fault_max_repeats < 0:
            raise ValueError("fault_max_repeats must be >= 0")
        resolve_rate_limits(self.rate_limits)  # validates
        if self.rate_limit_headers not in RATE_LIMIT_HEADER_MODES:
            raise ValueError(
                f"unknown rate_limit_headers {self.rate_limit_headers!r}; "
                f"known: {', '.join(RATE_LIMIT_HEADER_MODES)}"
            )
        self._check_point_faults()
        if self.ending_at_reading not in ENDING_AT_READINGS:
            raise ValueError(f"ending_at_reading must be one of {list(ENDING_AT_READINGS)}")
        if self.count_zero_buckets not in COUNT_ZERO_BUCKETS:
            raise ValueError(f"count_zero_buckets must be one of {list(COUNT_ZERO_BUCKETS)}")
        self._check_answer_faults()

    def _check_answer_faults(self) -> None:
        object.__setattr__(self, "echo_key_statuses", frozenset(self.echo_key_statuses))
        if not self.echo_key_statuses <= {400, 403}:
            raise ValueError("echo_key_statuses may hold 400 and 403")
        if self.body_fault is not None and self.body_fault not in BODY_FAULTS:
            raise ValueError(f"body_fault must be one of {list(BODY_FAULTS)} or None")
        if self.body_fault_repeats is not None and self.body_fault_repeats < 1:
            raise ValueError("body_fault_repeats must be >= 1, or None for every ask")
        if self.bomb_bytes < 64:
            raise ValueError("bomb_bytes must be >= 64")

    def _check_point_faults(self) -> None:
        if self.point_order not in POINT_ORDERS:
            raise ValueError(f"point_order must be one of {list(POINT_ORDERS)}")
        if self.duplicate_values not in DUPLICATE_VALUES:
            raise ValueError(f"duplicate_values must be one of {list(DUPLICATE_VALUES)}")
        for name in ("duplicate_rate", "missing_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.duplicate_copies < 1:
            raise ValueError("duplicate_copies must be >= 1")
        if self.missing_repeats is not None and self.missing_repeats < 1:
            raise ValueError("missing_repeats must be >= 1, or None for every ask")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def effective_now(self) -> datetime:
        """The configured "now", else the real time."""
        return self.now if self.now is not None else datetime.now(UTC)

    def effective_rate_limits(self) -> dict[str, tuple[int, float]]:
        return resolve_rate_limits(self.rate_limits)


def resolve_rate_limits(
    overrides: Mapping[str, tuple[int, float]] | None,
) -> dict[str, tuple[int, float]]:
    """Braze defaults, with ``overrides`` replacing the pools they name."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for pool, value in (overrides or {}).items():
        if pool not in DEFAULT_RATE_LIMITS:
            raise ValueError(
                f"unknown rate-limit pool {pool!r}; known: {sorted(DEFAULT_RATE_LIMITS)}"
            )
        limit, window = value
        if int(limit) < 0 or not float(window) > 0 or not math.isfinite(float(window)):
            raise ValueError(f"bad rate limit for {pool!r}: {value!r}")
        limits[pool] = (int(limit), float(window))
    return limits
