"""Settings: the JSON schema advertised to Meltano, and the checks behind it.

`Settings.parse` turns a raw config mapping into typed values or raises
`SettingsError` naming the setting at fault and how to fix it. Nothing here
does I/O, and no message ever contains the API key.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import (
    BATCH_CONFIG,
    EMIT_ACTIVATE_VERSION_CONFIG,
    FLATTENING_CONFIG,
    STREAM_MAPS_CONFIG,
)

from tap_braze_series import redact
from tap_braze_series.endpoints import FILTER_SETTINGS

DEFAULT_LOOKBACK_DAYS = 14
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_WORKERS = 8
DEFAULT_MAX_REQUESTS_PER_HOUR = 100_000
DEFAULT_MAX_RETRIES = 8
DEFAULT_RETRY_BACKOFF = 1.0
DEFAULT_PROGRESS_INTERVAL = 60.0
MAX_WORKERS_LIMIT = 64
# Ranges beyond which a setting is a mistake (and date arithmetic would overflow).
EARLIEST_DATE = dt.date(2000, 1, 1)  # Braze has no data before
LATEST_DATE = dt.date(9998, 12, 31)
MAX_LOOKBACK_DAYS = 36_500
MAX_TIMEOUT = 3_600.0
MAX_RETRIES = 100


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it and says how to fix it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"Setting '{setting}': {problem}")
        self.setting = setting


def _list_property(name: str, what: str) -> th.Property:
    return th.Property(
        name,
        th.ArrayType(th.StringType),
        title=name.replace("_", " ").capitalize(),
        description=f"Only sync these {what}. Default: all of them.",
    )


CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        title="API key",
        description=(
            "Braze REST API key with the `*.data_series` and `*.list` permissions of the "
            "streams you select. Sent only in the Authorization header."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        required=True,
        title="REST endpoint",
        description=(
            "Your workspace's REST endpoint, e.g. https://rest.iad-01.braze.com or "
            "https://rest.fra-01.braze.eu (not the sdk.* endpoint). https only; http is "
            "accepted for a loopback host such as the bundled sandbox."
        ),
    ),
    th.Property(
        "start_date",
        th.StringType,
        required=True,
        title="Start date",
        description=(
            "First day (YYYY-MM-DD) or instant (ISO-8601 datetime) to export. A new "
            "entity backfills from here."
        ),
    ),
    th.Property(
        "end_date",
        th.StringType,
        title="End date",
        description=(
            "Last day to export. A date includes that whole day; a datetime is an "
            "exclusive bound. Default: now (the current, partial bucket included)."
        ),
    ),
    th.Property(
        "lookback_days",
        th.IntegerType(minimum=0, maximum=MAX_LOOKBACK_DAYS),
        default=DEFAULT_LOOKBACK_DAYS,
        title="Lookback days",
        description=(
            "Days before each bookmark that every run reads again, because Braze "
            "restates recent buckets and today's bucket is partial."
        ),
    ),
    th.Property(
        "company_timezone",
        th.StringType,
        default="UTC",
        title="Company time zone",
        description=(
            "IANA time zone of the Braze company (Company Settings). Day and hour "
            "buckets, and every window bound, are expressed in it."
        ),
    ),
    th.Property(
        "include_archived",
        th.BooleanType,
        default=False,
        title="Include archived",
        description="Also sync archived canvases and campaigns.",
    ),
    th.Property(
        "zero_rows",
        th.BooleanType,
        default=True,
        title="Zero rows",
        description=(
            "Emit a row with 0 for each bucket Braze leaves out of a count series "
            "(events, sessions, KPIs, purchases: Braze answers no point for a day "
            "without activity), so that a day restated to zero overwrites its old value. "
            "Set false for sparse tables; the bookmarks advance over those buckets alike."
        ),
    ),
    _list_property("canvas_ids", "canvas API ids"),
    _list_property("campaign_ids", "campaign API ids"),
    _list_property("segment_ids", "segment API ids"),
    _list_property("event_names", "custom event names"),
    th.Property(
        "product_names",
        th.ArrayType(th.StringType),
        title="Product names",
        description=(
            "Products whose purchase series are synced one by one, in addition to the "
            "all-products series. Default: none (only the all-products series)."
        ),
    ),
    th.Property(
        "app_ids",
        th.ArrayType(th.StringType),
        title="App ids",
        description=(
            "App API identifiers. Session, event, KPI and purchase series are then also "
            "synced per app; every row of those streams carries `app_id` ('*' for the "
            "all-apps series)."
        ),
    ),
    th.Property(
        "series_segment_ids",
        th.ArrayType(th.StringType),
        title="Series segment ids",
        description=(
            "Segment API identifiers (segments with analytics tracking enabled). Event and "
            "session series are then also synced for the users of each segment; every row "
            "of those streams carries `segment_id` ('*' for all users). Each segment adds "
            "as many requests as all users cost. Default: none (all users only)."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType(minimum=0.001, maximum=MAX_TIMEOUT),
        default=DEFAULT_TIMEOUT,
        title="Request timeout",
        description=(
            "Seconds a request may take as a whole, from connecting to the last byte of "
            "the answer, before it is retried."
        ),
    ),
    th.Property(
        "max_workers",
        th.IntegerType(minimum=1, maximum=MAX_WORKERS_LIMIT),
        default=DEFAULT_MAX_WORKERS,
        title="Concurrent requests",
        description=f"HTTP requests in flight at once (1-{MAX_WORKERS_LIMIT}).",
    ),
    th.Property(
        "max_requests_per_hour",
        th.IntegerType(minimum=1),
        default=DEFAULT_MAX_REQUESTS_PER_HOUR,
        title="Request budget per hour",
        description=(
            "The tap's share of the workspace's hourly request budget (Braze's default "
            "is 250,000/hour, shared with your other integrations). The tap never sends "
            "more than this in any rolling hour."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=MAX_RETRIES),
        default=DEFAULT_MAX_RETRIES,
        title="Retries",
        description=(
            "Retries of a request that failed transiently (5xx, timeout, dropped "
            "connection, invalid JSON) before the run stops with an error."
        ),
    ),
    th.Property(
        "retry_backoff_seconds",
        th.NumberType(minimum=0.0),
        default=DEFAULT_RETRY_BACKOFF,
        title="Retry backoff",
        description=(
            "Base of the exponential backoff between retries (with full jitter, capped at 60 s)."
        ),
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0.0),
        default=DEFAULT_PROGRESS_INTERVAL,
        title="Progress interval",
        description=(
            "Seconds between progress lines (partitions, requests, rate, records, ETA) "
            "during a sync; 0 turns them off."
        ),
    ),
).to_dict()


# Settings the SDK reads itself, whichever the tap declares (stream maps, flattening,
# batch files, ACTIVATE_VERSION messages): known, though not in CONFIG_SCHEMA.
SDK_SETTINGS = frozenset(
    name
    for schema in (
        STREAM_MAPS_CONFIG,
        FLATTENING_CONFIG,
        BATCH_CONFIG,
        EMIT_ACTIVATE_VERSION_CONFIG,
    )
    for name in schema["properties"]
)


def unknown_settings(config: Mapping[str, Any]) -> list[str]:
    """A warning for each setting of `config` that nothing reads: likely a typo."""
    known = sorted(set(CONFIG_SCHEMA["properties"]) | SDK_SETTINGS)
    warnings = []
    for name in sorted(set(config) - set(known)):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = (
            f"did you mean {close[0]}?"
            if close
            else "`tap-braze-series --about` lists the settings."
        )
        warnings.append(f"Unknown setting '{name}' (ignored): {hint}")
    return warnings


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings."""

    api_key: str
    api_url: str
    start: dt.date | dt.datetime  # a date, or an aware datetime
    end: dt.date | dt.datetime | None  # a date (inclusive day), an aware datetime (exclusive)
    lookback_days: int
    timezone: ZoneInfo
    include_archived: bool
    zero_rows: bool
    entity_filters: Mapping[str, tuple[str, ...]]  # entity kind -> wanted ids/names
    app_ids: tuple[str, ...]
    series_segment_ids: tuple[str, ...]
    request_timeout: float
    max_workers: int
    max_requests_per_hour: int
    max_retries: int
    retry_backoff_seconds: float
    progress_interval: float

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> Settings:
        """Check every setting; raise SettingsError on the first problem."""
        # Known before any message is worded: a setting error (or anything later) that
        # repeats the key, say one pasted into api_url, has it taken out.
        redact.register(config.get("api_key"))
        timezone = _timezone(config.get("company_timezone", "UTC"))
        start = _bound(config, "start_date", timezone, required=True)
        end = _bound(config, "end_date", timezone, required=False)
        if (
            start is not None
            and end is not None
            and _end_instant(end, timezone) <= _as_instant(start, timezone)
        ):
            raise SettingsError(
                "end_date",
                f"{config['end_date']!r} is not after start_date {config['start_date']!r}; "
                "set an end_date after start_date or leave it empty to read up to now.",
            )
        return cls(
            api_key=_api_key(config.get("api_key")),
            api_url=_api_url(config.get("api_url")),
            start=start,  # type: ignore[arg-type]
            end=end,
            lookback_days=_integer(config, "lookback_days"),
            timezone=timezone,
            include_archived=_boolean(config, "include_archived"),
            zero_rows=_boolean(config, "zero_rows"),
            entity_filters={
                kind: _string_list(config, name) for name, kind in FILTER_SETTINGS.items()
            },
            app_ids=_string_list(config, "app_ids"),
            series_segment_ids=_string_list(config, "series_segment_ids"),
            request_timeout=_number(config, "request_timeout"),
            max_workers=_integer(config, "max_workers"),
            max_requests_per_hour=_integer(config, "max_requests_per_hour"),
            max_retries=_integer(config, "max_retries"),
            retry_backoff_seconds=_number(config, "retry_backoff_seconds"),
            progress_interval=_number(config, "progress_interval"),
        )

    def typed_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The settings present in `config`, as JSON-schema-valid values."""
        values = {
            "api_key": self.api_key,
            "api_url": self.api_url,
            "lookback_days": self.lookback_days,
            "company_timezone": self.timezone.key,
            "include_archived": self.include_archived,
            "zero_rows": self.zero_rows,
            "app_ids": list(self.app_ids),
            "series_segment_ids": list(self.series_segment_ids),
            "request_timeout": self.request_timeout,
            "max_workers": self.max_workers,
            "max_requests_per_hour": self.max_requests_per_hour,
            "max_retries": self.max_retries,
            "retry_backoff_seconds": self.retry_backoff_seconds,
            "progress_interval": self.progress_interval,
            **{name: list(self.entity_filters[kind]) for name, kind in FILTER_SETTINGS.items()},
        }
        return {name: value for name, value in values.items() if name in config}

    def ids(self, setting: str) -> tuple[str, ...]:
        """The values a list setting (canvas_ids, ..., app_ids) names; empty if unset."""
        if setting in FILTER_SETTINGS:
            return self.entity_filters[FILTER_SETTINGS[setting]]
        return getattr(self, setting)

    def start_instant(self) -> dt.datetime:
        """The first instant to export."""
        return _as_instant(self.start, self.timezone)

    def end_instant(self, now: dt.datetime) -> dt.datetime:
        """The exclusive end of the export: end_date (a date includes its day), at most now."""
        if self.end is None:
            return now
        return min(_end_instant(self.end, self.timezone), now)


def _api_key(value: object) -> str:
    if value is None or value == "":
        raise SettingsError("api_key", "missing; set it to a Braze REST API key.")
    if not isinstance(value, str):
        raise SettingsError("api_key", f"must be a string, not {type(value).__name__}.")
    if value != value.strip():
        raise SettingsError("api_key", "has leading or trailing whitespace; remove it.")
    if value[0] in "'\"" or value[-1] in "'\"":
        raise SettingsError(
            "api_key", "is wrapped in quotes; Braze rejects quoted keys. Remove the quotes."
        )
    if any(ch.isspace() for ch in value):
        raise SettingsError("api_key", "contains whitespace; paste the key exactly.")
    odd = next((i for i, ch in enumerate(value) if not (ch.isascii() and ch.isprintable())), None)
    if odd is not None:
        # Braze keys are plain ASCII; a key copied from a web page or a chat can carry an
        # invisible character (a zero-width space, a soft or non-breaking hyphen) that no
        # HTTP header can hold. Its position helps; the key itself is never printed.
        raise SettingsError(
            "api_key",
            f"contains an invisible or unusual character (U+{ord(value[odd]):04X}, "
            f"character {odd + 1} of {len(value)}); Braze keys are plain letters, digits "
            "and dashes. Re-paste the key without it, or type that character again.",
        )
    return value


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_url(value: object) -> str:
    hint = "set it to your REST endpoint, e.g. https://rest.iad-01.braze.com."
    if value is None or value == "":
        raise SettingsError("api_url", f"missing; {hint}")
    if not isinstance(value, str):
        raise SettingsError("api_url", f"must be a string, not {type(value).__name__}; {hint}")
    parts = urlsplit(value.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        # Not repeated: a value that is no URL at all may be a secret pasted in the
        # wrong setting (the API key itself, say).
        shown = f"{value!r} is" if "://" in value and "@" not in value else "the value is"
        raise SettingsError("api_url", f"{shown} not an http(s) URL; {hint}")
    if parts.query or parts.fragment or parts.username or parts.password:
        # Credentials or a query may hold a key: the value is not repeated.
        what = [
            name
            for name, present in (
                ("credentials (user:password@)", parts.username or parts.password),
                ("a query (?...)", parts.query),
                ("a fragment (#...)", parts.fragment),
            )
            if present
        ]
        raise SettingsError(
            "api_url",
            f"carries {' and '.join(what)}, which it must not (the API key goes in api_key, "
            f"never in the URL); {hint}",
        )
    if host.lower().startswith("sdk."):
        suggestion = "rest." + host[4:]
        raise SettingsError(
            "api_url",
            f"{host} is Braze's SDK endpoint, which rejects REST API keys; use the REST "
            f"endpoint of the same instance (likely https://{suggestion}).",
        )
    if parts.scheme == "http" and not _is_loopback(host):
        raise SettingsError(
            "api_url",
            f"http is only accepted for a loopback host (the sandbox); use https://{host}.",
        )
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError("api_url", f"{host} has an invalid port; {hint}") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _timezone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise SettingsError(
            "company_timezone", f"{value!r} is not an IANA time zone name such as 'UTC'."
        )
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            "company_timezone",
            f"{value!r} is not a known IANA time zone; use a name such as "
            "'America/New_York' or 'Europe/Paris' (Braze: Company Settings > Time Zone).",
        ) from exc


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _bound(
    config: Mapping[str, Any], name: str, tz: ZoneInfo, *, required: bool
) -> dt.date | dt.datetime | None:
    value = config.get(name)
    if value is None or value == "":
        if required:
            raise SettingsError(name, "missing; set it to a date such as 2024-01-01.")
        return None
    if not isinstance(value, str):
        raise SettingsError(
            name, f"must be an ISO-8601 date or datetime string, not {type(value).__name__}."
        )
    text = value.strip()
    try:
        if _DATE_RE.match(text):
            parsed: dt.date | dt.datetime = dt.date.fromisoformat(text)
        else:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SettingsError(
            name,
            f"{value!r} is not an ISO-8601 date (2024-01-31) or datetime (2024-01-31T00:00:00Z).",
        ) from exc
    day = parsed.date() if isinstance(parsed, dt.datetime) else parsed
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        hint = " (or leave it empty to read up to now)" if name == "end_date" else ""
        raise SettingsError(
            name,
            f"{value!r} is out of range; use a date from {EARLIEST_DATE} to {LATEST_DATE}{hint}.",
        )
    if isinstance(parsed, dt.datetime) and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _as_instant(value: dt.date | dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    return dt.datetime.combine(value, dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc)


def _end_instant(value: dt.date | dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    return _as_instant(value + dt.timedelta(days=1), tz)


def _declared(name: str) -> tuple[Any, Any, Any]:
    """(default, minimum, maximum) of a setting, as CONFIG_SCHEMA declares them."""
    schema = CONFIG_SCHEMA["properties"][name]
    return schema["default"], schema["minimum"], schema.get("maximum")


def _integer(config: Mapping[str, Any], name: str) -> int:
    default, minimum, maximum = _declared(name)
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float | decimal.Decimal) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(name, f"{value!r} is not an integer.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(name, f"{value} is out of range; it must be {bound}.")
    return value


def _number(config: Mapping[str, Any], name: str) -> float:
    default, minimum, maximum = _declared(name)
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, str | decimal.Decimal) and not isinstance(value, bool):
        # The SDK reads JSON numbers as Decimal; env vars arrive as strings.
        try:
            value = float(value)
        except (ValueError, decimal.InvalidOperation):
            raise SettingsError(name, f"{value!r} is not a number.") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(name, f"{value!r} is not a number.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise SettingsError(name, f"{value:g} is out of range; it must be {bound}.")
    return float(value)


def _boolean(config: Mapping[str, Any], name: str) -> bool:
    default = CONFIG_SCHEMA["properties"][name]["default"]
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise SettingsError(name, f"{value!r} is not true or false.")
    return value


def _string_list(config: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = config.get(name)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SettingsError(name, f'must be a list of strings, e.g. ["a", "b"], not {value!r}.')
    result: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise SettingsError(name, f"every entry must be a non-empty string; got {item!r}.")
        if item not in result:
            result.append(item)
    return tuple(result)
