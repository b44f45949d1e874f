"""Settings: every problem named, before any request."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tap_braze_series.config import CONFIG_SCHEMA, SDK_SETTINGS, Settings, SettingsError

BASE = {"api_key": "k-123", "api_url": "https://rest.iad-01.braze.com", "start_date": "2024-01-01"}


def parse(**change):
    return Settings.parse({k: v for k, v in {**BASE, **change}.items() if v is not None})


def test_defaults():
    settings = parse()
    assert settings.lookback_days == 14
    assert settings.timezone.key == "UTC"
    assert settings.max_workers == 8
    assert settings.max_requests_per_hour == 100_000
    assert settings.end is None
    assert settings.app_ids == ()


@pytest.mark.parametrize(
    ("change", "setting", "words"),
    [
        ({"api_key": None}, "api_key", "missing"),
        ({"api_key": 123}, "api_key", "string"),
        ({"api_key": '"k-123"'}, "api_key", "quotes"),
        ({"api_url": None}, "api_url", "missing"),
        ({"api_url": "rest.iad-01.braze.com"}, "api_url", "http"),
        ({"api_url": "https://sdk.iad-01.braze.com"}, "api_url", "rest.iad-01.braze.com"),
        ({"api_url": "http://rest.iad-01.braze.com"}, "api_url", "loopback"),
        ({"api_url": "https://rest.iad-01.braze.com?api_key=x"}, "api_url", "query"),
        ({"start_date": None}, "start_date", "missing"),
        ({"start_date": "01/02/2024"}, "start_date", "ISO-8601"),
        ({"start_date": 20240101}, "start_date", "string"),
        ({"end_date": "2023-12-31"}, "end_date", "after start_date"),
        ({"end_date": "2024-01-01T00:00:00Z"}, "end_date", "after start_date"),
        ({"lookback_days": -1}, "lookback_days", "between 0 and 36500"),
        ({"lookback_days": 10_000_000}, "lookback_days", "between 0 and 36500"),
        ({"end_date": "9999-12-31"}, "end_date", "leave it empty"),
        ({"start_date": "1999-12-31"}, "start_date", "from 2000-01-01 to 9998-12-31"),
        ({"start_date": "0001-01-01T00:00:00+14:00"}, "start_date", "out of range"),
        ({"lookback_days": "many"}, "lookback_days", "integer"),
        ({"lookback_days": True}, "lookback_days", "integer"),
        ({"company_timezone": "Mars/Olympus"}, "company_timezone", "IANA"),
        ({"include_archived": "yes"}, "include_archived", "true or false"),
        ({"canvas_ids": "abc"}, "canvas_ids", "list"),
        ({"event_names": ["ok", 3]}, "event_names", "non-empty string"),
        ({"app_ids": [""]}, "app_ids", "non-empty string"),
        ({"request_timeout": 0}, "request_timeout", "between 0.001 and 3600"),
        ({"request_timeout": 1e12}, "request_timeout", "between 0.001 and 3600"),
        ({"max_workers": 0}, "max_workers", "between 1 and 64"),
        ({"max_workers": 65}, "max_workers", "between 1 and 64"),
        ({"max_requests_per_hour": 0}, "max_requests_per_hour", ">= 1"),
        ({"max_retries": -1}, "max_retries", "between 0 and 100"),
        ({"max_retries": 1_000_000}, "max_retries", "between 0 and 100"),
    ],
)
def test_each_problem_names_the_setting(change, setting, words):
    with pytest.raises(SettingsError) as info:
        parse(**change)
    assert info.value.setting == setting
    assert setting in str(info.value)
    assert words in str(info.value)
    assert "k-123" not in str(info.value)


def test_loopback_http_is_accepted_for_the_sandbox():
    for url in ("http://127.0.0.1:8979", "http://localhost:8979/", "http://[::1]:8979"):
        assert parse(api_url=url).api_url == url.rstrip("/")


def test_numbers_from_json_and_env():
    settings = parse(lookback_days=Decimal("7"), request_timeout=Decimal("2.5"), max_workers="4")
    assert (settings.lookback_days, settings.request_timeout, settings.max_workers) == (7, 2.5, 4)
    assert parse(max_requests_per_hour=10_000_000).max_requests_per_hour == 10_000_000


def test_date_bounds():
    settings = parse(end_date="2024-01-31", company_timezone="America/New_York")
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    # A date end includes that whole day, in the company time zone.
    assert settings.end_instant(now) == dt.datetime(2024, 2, 1, 5, tzinfo=dt.timezone.utc)
    assert settings.start_instant() == dt.datetime(2024, 1, 1, 5, tzinfo=dt.timezone.utc)
    # A datetime is an exclusive bound; the end never passes now.
    settings = parse(end_date="2024-01-31T12:00:00Z")
    assert settings.end_instant(now) == dt.datetime(2024, 1, 31, 12, tzinfo=dt.timezone.utc)
    assert parse().end_instant(now) == now


SECRET = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.mark.parametrize(
    ("odd", "code"),
    [("\u2011", "U+2011"), ("\u200b", "U+200B"), ("\u00ad", "U+00AD"), ("\u0435", "U+0435")],
    ids=["non-breaking hyphen", "zero-width space", "soft hyphen", "cyrillic e"],
)
def test_a_key_with_an_odd_character_names_it_never_the_key(odd, code):
    key = SECRET[:9] + odd + SECRET[9:]
    with pytest.raises(SettingsError) as raised:
        parse(api_key=key)
    message = str(raised.value)
    assert message.startswith("Setting 'api_key': ")
    assert code in message
    assert "character 10 of 37" in message
    assert "Re-paste the key" in message
    assert SECRET[:9] not in message
    assert SECRET[9:] not in message


@pytest.mark.parametrize(
    "api_url",
    [
        f"https://user:{SECRET}@rest.iad-01.braze.com",
        f"https://{SECRET}@rest.iad-01.braze.com",
        f"https://rest.iad-01.braze.com/?api_key={SECRET}",
        f"https://rest.iad-01.braze.com/#{SECRET}",
        SECRET,
        f"rest.iad-01.braze.com:{SECRET}",
        f"https://rest.iad-01.braze.com:{SECRET}",
    ],
)
def test_api_url_errors_never_repeat_what_may_be_a_secret(api_url):
    """Even when api_key is something else: the value itself is not repeated."""
    with pytest.raises(SettingsError) as raised:
        parse(api_url=api_url)
    assert "api_url" in str(raised.value)
    assert SECRET not in str(raised.value)


RANGED = [
    name
    for name, schema in CONFIG_SCHEMA["properties"].items()
    if "minimum" in schema and name not in SDK_SETTINGS
]


def test_every_numeric_setting_declares_its_range():
    # (The SDK adds its own settings to the schema when a tap is built: not the tap's.)
    assert sorted(RANGED) == sorted(
        name
        for name, schema in CONFIG_SCHEMA["properties"].items()
        if set(schema["type"]) & {"integer", "number"} and name not in SDK_SETTINGS
    )


@pytest.mark.parametrize("name", RANGED)
def test_the_declared_range_is_the_one_enforced(name):
    schema = CONFIG_SCHEMA["properties"][name]
    minimum, maximum = schema["minimum"], schema.get("maximum")
    assert getattr(parse(**{name: minimum}), name) == minimum
    step = 1 if "integer" in schema["type"] else 0.001
    outside = [minimum - step] + ([] if maximum is None else [maximum + step])
    if maximum is not None:
        assert getattr(parse(**{name: maximum}), name) == maximum
    for value in outside:
        with pytest.raises(SettingsError, match=f"Setting '{name}': .* out of range"):
            parse(**{name: value})
