"""Bad config or state: a non-zero exit, a line naming the problem, no traceback, no request.

Every case runs the `tap-braze-series` console script against a sandbox of its
own (so "no request" is exact), several at a time; the parametrized tests then
check each outcome.
"""

from __future__ import annotations

import copy
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness.messages import bookmarks
from tests.harness.running import catalog_for, run_cli, run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
KEY = "badinput-key-8e2f4a"
STREAMS = [
    "canvas_data_series",
    "event_data_series",
    "event_data_series_hourly",
    "session_data_series",
]
MISSING = object()


def config_for(url: str, **extra) -> dict:
    return tap_config(url, KEY, NOW, "2024-03-01", app_ids=["app_ios"], **extra)


CONFIG_CASES = [
    # required settings missing (absent, null or empty)
    ("api_key", MISSING),
    ("api_key", None),
    ("api_key", ""),
    ("api_url", MISSING),
    ("api_url", ""),
    ("start_date", MISSING),
    ("start_date", None),
    # wrong types
    ("api_key", 12345),
    ("api_url", 8080),
    ("api_url", ["http://127.0.0.1"]),
    ("start_date", 20240301),
    ("end_date", True),
    ("lookback_days", "two weeks"),
    ("lookback_days", 1.5),
    ("company_timezone", 0),
    ("include_archived", "yes"),
    ("canvas_ids", "one-canvas"),
    ("app_ids", {"app_ios": True}),
    ("request_timeout", "fast"),
    ("max_workers", True),
    ("max_workers", "many"),
    ("max_requests_per_hour", 1.5),
    ("max_retries", [3]),
    ("retry_backoff_seconds", "soon"),
    # out of range
    ("lookback_days", -1),
    ("request_timeout", 0),
    ("request_timeout", -5),
    ("max_workers", 0),
    ("max_workers", 65),
    ("max_requests_per_hour", 0),
    ("max_retries", -1),
    ("retry_backoff_seconds", -0.5),
    ("end_date", "9999-12-31"),
    ("end_date", "9999-12-31T23:59:59-05:00"),
    ("start_date", "1999-12-31"),
    ("start_date", "0001-01-01T00:00:00+14:00"),
    ("lookback_days", 10_000_000),
    ("request_timeout", 1e12),
    ("max_retries", 1_000_000),
    # bad values
    ("start_date", "yesterday"),
    ("start_date", "2024-02-30"),
    ("end_date", "2024-13-01"),
    ("company_timezone", "Mars/Olympus_Mons"),
    ("company_timezone", ""),
    ("api_url", "http://rest.iad-01.braze.com"),
    ("api_url", "http://10.1.2.3:8080"),
    ("api_url", "https://sdk.iad-01.braze.com"),
    ("api_url", "https://sdk.fra-01.braze.eu/"),
    ("api_url", "ftp://127.0.0.1"),
    ("api_url", "not a url"),
    ("api_url", "https://rest.iad-01.braze.com?api_key=x"),
    ("api_key", f" {KEY} "),
    ("api_key", f'"{KEY}"'),
    # pasted from a web page: a non-breaking hyphen, a zero-width space, a soft hyphen
    ("api_key", KEY.replace("-", "\u2011", 1)),
    ("api_key", KEY[:6] + "\u200b" + KEY[6:]),
    ("api_key", KEY[:6] + "\u00ad" + KEY[6:]),
    # the key pasted into api_url: as credentials, in the query, as the whole value
    ("api_url", f"https://user:{KEY}@rest.iad-01.braze.com"),
    ("api_url", f"https://{KEY}@rest.iad-01.braze.com"),
    ("api_url", f"https://rest.iad-01.braze.com/?api_key={KEY}"),
    ("api_url", KEY),
    ("end_date", "2024-02-01"),  # before start_date
    ("end_date", "2024-03-01T00:00:00+00:00"),  # an exclusive end equal to the start
    # lists with entries that are not (non-empty) strings
    ("canvas_ids", [1]),
    ("campaign_ids", [None]),
    ("segment_ids", [{"id": "x"}]),
    ("event_names", [["nested"]]),
    ("event_names", [""]),
    ("product_names", [1.5]),
    ("app_ids", [True]),
    ("app_ids", ["app_ios", 7]),
]


def _id(case) -> str:
    setting, value = case
    return f"{setting}={'<missing>' if value is MISSING else repr(value)[:40]}"


# Discovery reads the settings too (it names streams and keys): a representative subset.
DISCOVERED = {
    "api_key",
    "api_url",
    "start_date",
    "end_date",
    "company_timezone",
    "max_workers",
    "app_ids",
}
DISCOVER_CASES = [case for case in CONFIG_CASES if case[0] in DISCOVERED]


def _bad_config(url: str, case) -> dict:
    setting, value = case
    config = config_for(url)
    if value is MISSING:
        config.pop(setting, None)
    else:
        config[setting] = value
    return config


def _isolated(make_config, **kwargs):
    """Run the CLI against a fresh sandbox; (run, paths the sandbox was asked for)."""
    with sandbox(now=NOW, api_key=KEY) as sb:
        run = run_cli(make_config(sb.url), **kwargs)
        return run, [r.path for r in sb.request_log]


def _partition(stream_state: dict) -> dict:
    return stream_state["partitions"][0]


STATE_CASES = {
    "a list": lambda s: ["not", "an", "object"],
    "a string": lambda s: "bookmarks",
    "a number": lambda s: 42,
    "bookmarks not an object": lambda s: {"bookmarks": ["event_data_series"]},
    "stream state not an object": lambda s: {"bookmarks": {"event_data_series": "2024-03-01"}},
    "partitions not a list": lambda s: {
        "bookmarks": {"event_data_series": {"partitions": {"context": {}}}}
    },
    "partition without context": lambda s: {
        "bookmarks": {
            "event_data_series": {
                "partitions": [{"replication_key": "time", "replication_key_value": "2024-03-01"}]
            }
        }
    },
    "context not an object": lambda s: {
        "bookmarks": {
            "event_data_series": {
                "partitions": [{"context": "app_ios", "replication_key_value": "2024-03-01"}]
            }
        }
    },
    "partition not an object": lambda s: {
        "bookmarks": {"session_data_series": {"partitions": ["app_ios"]}}
    },
    "unparseable day bookmark": lambda s: _with_value(s, "session_data_series", "last tuesday"),
    "impossible day bookmark": lambda s: _with_value(s, "session_data_series", "2024-02-30"),
    "numeric bookmark": lambda s: _with_value(s, "session_data_series", 20240301),
    "unparseable hour bookmark": lambda s: _with_value(
        s, "event_data_series_hourly", "2024-04-01T25:00:00+00:00"
    ),
    "duplicate partition": lambda s: _duplicated(s, "event_data_series"),
    "duplicate partition, other bookmark": lambda s: _duplicated(
        s, "session_data_series", "2024-03-05"
    ),
}


def _with_value(state: dict, stream: str, value: object) -> dict:
    _partition(state["bookmarks"][stream])["replication_key_value"] = value
    return state


FUTURE = {
    "session_data_series": "2099-01-01",
    "event_data_series_hourly": "2099-01-01T00:00:00+00:00",
}


def _in_the_future(state: dict) -> dict:
    """The good state with one partition of two streams bookmarked in 2099."""
    for stream, value in FUTURE.items():
        _partition(state["bookmarks"][stream])["replication_key_value"] = value
    return state


def _starts_in_the_future(url: str) -> dict:
    config = {**config_for(url), "start_date": "2099-01-01"}
    config.pop("end_date")
    return config


def _duplicated(state: dict, stream: str, value: str | None = None) -> dict:
    partitions = state["bookmarks"][stream]["partitions"]
    twin = dict(partitions[0])
    if value is not None:
        twin["replication_key_value"] = value
    partitions.append(twin)
    return state


ODD_BUT_VALID_STATES = {
    "hour bookmark as a date": lambda s: _with_value(s, "event_data_series_hourly", "2024-04-20"),
    "hour bookmark without offset": lambda s: _with_value(
        s, "event_data_series_hourly", "2024-04-20T05:00:00"
    ),
    "hour bookmark in Z form": lambda s: _with_value(
        s, "event_data_series_hourly", "2024-04-20T05:00:00Z"
    ),
    "day bookmark as a datetime": lambda s: _with_value(
        s, "session_data_series", "2024-04-20T00:00:00+00:00"
    ),
}


@pytest.fixture(scope="module")
def catalog():
    with sandbox(now=NOW, api_key=KEY) as sb:
        return catalog_for(config_for(sb.url), STREAMS)


@pytest.fixture(scope="module")
def good_state():
    with sandbox(now=NOW, api_key=KEY) as sb:
        run = run_tap(config_for(sb.url), streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.state


@pytest.fixture(scope="module")
def outcomes(catalog, good_state):
    """Every case's (run, requested paths), computed four at a time."""
    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for case in CONFIG_CASES:
            jobs[("sync", _id(case))] = pool.submit(
                _isolated, lambda url, case=case: _bad_config(url, case)
            )
        for case in DISCOVER_CASES:
            jobs[("discover", _id(case))] = pool.submit(
                _isolated, lambda url, case=case: _bad_config(url, case), args=["--discover"]
            )
        for name, make in STATE_CASES.items():
            jobs[("state", name)] = pool.submit(
                _isolated, config_for, catalog=catalog, state=make(copy.deepcopy(good_state))
            )
        for name, make in ODD_BUT_VALID_STATES.items():
            jobs[("odd", name)] = pool.submit(
                _isolated, config_for, catalog=catalog, state=make(copy.deepcopy(good_state))
            )
        jobs[("good", "")] = pool.submit(_isolated, config_for, catalog=catalog, state=good_state)
        jobs[("future", "")] = pool.submit(
            _isolated, config_for, catalog=catalog, state=_in_the_future(copy.deepcopy(good_state))
        )
        jobs[("nothing", "")] = pool.submit(_isolated, _starts_in_the_future, catalog=catalog)
        return {key: job.result() for key, job in jobs.items()}


def _assert_rejected(outcome, *words: str) -> None:
    """A non-zero exit, no request, and exactly the promised line: one error, no other."""
    run, requested = outcome
    assert run.returncode != 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for text in (run.stderr, run.stdout):
        assert KEY not in text
        assert KEY.lower() not in text
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("tap-braze-series: error: "), errors
    assert all(w in errors[0] for w in words), (words, errors)
    assert "| ERROR" not in run.stderr
    assert requested == [], requested
    assert '"RECORD"' not in run.stdout


@pytest.mark.parametrize("case", CONFIG_CASES, ids=_id)
def test_bad_setting_is_rejected_before_any_request(outcomes, case):
    _assert_rejected(outcomes[("sync", _id(case))], case[0])


@pytest.mark.parametrize("case", DISCOVER_CASES, ids=_id)
def test_bad_setting_is_rejected_by_discovery_too(outcomes, case):
    _assert_rejected(outcomes[("discover", _id(case))], case[0])


@pytest.mark.parametrize("mode", [(), ("--discover",)], ids=["sync", "discover"])
@pytest.mark.parametrize("value", [[KEY], {"key": KEY}], ids=["list", "object"])
def test_api_key_of_a_wrong_type_is_not_echoed(value, mode):
    run, requested = _isolated(lambda url: {**config_for(url), "api_key": value}, args=mode)
    assert run.returncode != 0
    assert "api_key" in run.stderr
    assert requested == []
    assert KEY not in run.stderr, [line for line in run.stderr.splitlines() if KEY in line]


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_malformed_state_is_rejected_before_any_request(outcomes, case):
    run, requested = outcomes[("state", case)]
    assert run.returncode != 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "tap-braze-series: error:" in line]
    assert len(lines) == 1, run.stderr[-2000:]
    assert "state" in lines[0].lower(), lines[0]
    assert '"RECORD"' not in run.stdout
    assert requested == [], requested


def test_the_good_state_itself_is_accepted(outcomes):
    run, requested = outcomes[("good", "")]
    assert run.returncode == 0, run.stderr[-2000:]
    assert requested


@pytest.mark.parametrize("case", list(ODD_BUT_VALID_STATES))
def test_state_the_validator_accepts_never_crashes_the_run(outcomes, good_state, case):
    """Bookmarks in another ISO form than the tap writes (older versions, hand edits)."""
    run, _ = outcomes[("odd", case)]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert run.records["event_data_series_hourly"]
    assert run.records["session_data_series"]
    assert bookmarks(run.state) == bookmarks(good_state)


def test_a_bookmark_after_the_runs_end_is_reported_at_start(outcomes, good_state):
    run, _ = outcomes[("future", "")]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if "after this run's end" in line]
    assert len(lines) == len(FUTURE), lines
    for stream, value in FUTURE.items():
        context = _partition(good_state["bookmarks"][stream])["context"]
        [line] = [line for line in lines if f"'{stream}'" in line]
        assert "WARNING" in line
        assert value in line
        assert all(f"'{v}'" in line for v in context.values()), line
        assert "Remove that bookmark" in line
    # The other partitions sync as usual; the future bookmarks are kept as they were.
    assert run.records["session_data_series"]
    marks = bookmarks(run.state)
    for stream, value in FUTURE.items():
        assert value in marks[stream].values(), (stream, marks[stream])


def test_a_run_with_nothing_to_do_says_so_in_one_line(outcomes):
    run, requested = outcomes[("nothing", "")]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if "Nothing to export" in line]
    assert len(lines) == 1, run.stderr[-3000:]
    assert "start_date 2099-01-01" in lines[0]
    assert not [path for path in requested if "series" in path], requested
    assert '"RECORD"' not in run.stdout
