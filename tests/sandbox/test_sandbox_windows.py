"""Window semantics, time zones, DST and restatement over HTTP."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from tap_braze_series.sandbox.timeutil import UTC


def _times(client, path="/sessions/data_series", **params):
    return [row["time"] for row in client.ok(path, **params)["data"]]


@pytest.mark.parametrize(
    ("ending_at", "last"),
    [
        ("2024-03-05T23:59:59+00:00", "2024-03-05"),  # last second of D -> ends at D
        ("2024-03-05T23:59:59Z", "2024-03-05"),
        ("2024-03-05T23:59:59.999999Z", "2024-03-05"),
        ("2024-03-05", "2024-03-04"),  # date-only D -> ends at D-1
        ("2024-03-06T00:00:00Z", "2024-03-05"),  # midnight belongs to the next day
        ("2024-03-06T00:00:01Z", "2024-03-06"),
        ("2024-03-05T23:59:59-5:00", "2024-03-06"),  # unpadded offset (UTC company tz)
        ("2024-03-05T12:00:00-05", "2024-03-05"),
        ("2024-03-05T22:00:00-0500", "2024-03-06"),
        ("2024-03-05T23:59:59", "2024-03-05"),  # naive = company time zone
        ("2030-01-01T00:00:00Z", "2024-03-15"),  # after now: clamps to the partial today
    ],
)
def test_ending_at(client, ending_at, last):
    times = _times(client, length=3, ending_at=ending_at)
    assert len(times) == 3
    assert times[-1] == last
    assert date.fromisoformat(times[0]) == date.fromisoformat(last) - timedelta(days=2)


def test_default_ending_at_is_now(client):
    assert _times(client, length=2) == ["2024-03-14", "2024-03-15"]


def test_ending_at_before_history_gives_zeros(client):
    data = client.ok("/sessions/data_series", length=5, ending_at="2023-01-02T12:00:00Z")["data"]
    assert [r["time"] for r in data] == [
        "2022-12-29",
        "2022-12-30",
        "2022-12-31",
        "2023-01-01",
        "2023-01-02",
    ]
    assert [r["sessions"] for r in data][:3] == [0, 0, 0]
    assert all(r["sessions"] > 0 for r in data[3:])


def test_hour_units_in_utc(client):
    times = _times(client, length=3, unit="hour", ending_at="2024-03-05T10:30:00Z")
    assert times == [
        "2024-03-05T08:00:00+00:00",
        "2024-03-05T09:00:00+00:00",
        "2024-03-05T10:00:00+00:00",
    ]
    times = _times(client, length=2, unit="hour", ending_at="2024-03-05T10:00:00Z")
    assert times[-1] == "2024-03-05T09:00:00+00:00"


def test_day_buckets_follow_company_time_zone(ny_client):
    # 2024-03-06T03:00Z is 2024-03-05 22:00 in New York
    assert _times(ny_client, length=1, ending_at="2024-03-06T03:00:00Z") == ["2024-03-05"]
    assert _times(ny_client, length=1, ending_at="2024-03-05T23:59:59-5:00") == ["2024-03-05"]
    assert _times(ny_client, length=1, ending_at="2024-03-05T23:59:59") == ["2024-03-05"]
    assert _times(ny_client, length=1, ending_at="2024-03-06") == ["2024-03-05"]


def _assert_dst_hours(client, four_hours, expected, next_midnight, day, hours_in_day):
    """Four hour buckets (`four_hours`: the request) equal `expected`, and the 100 hours
    ending at `next_midnight` hold `hours_in_day` buckets of `day`; returns those 100."""
    assert _times(client, **four_hours, length=4, unit="hour") == expected
    hundred = _times(client, length=100, unit="hour", ending_at=next_midnight)
    assert sum(t.startswith(day) for t in hundred) == hours_in_day
    return hundred


def test_hour_units_across_spring_forward(ny_client):
    _assert_dst_hours(
        ny_client,
        {
            "path": "/events/data_series",
            "event": ny_client.sandbox.workspace.events[0],
            "ending_at": "2024-03-10T04:00:00-04:00",
        },
        [
            "2024-03-09T23:00:00-05:00",
            "2024-03-10T00:00:00-05:00",
            "2024-03-10T01:00:00-05:00",
            "2024-03-10T03:00:00-04:00",
        ],
        "2024-03-11T00:00:00-04:00",
        "2024-03-10",
        23,
    )


def test_hour_units_across_fall_back(ny_client):
    day = _assert_dst_hours(
        ny_client,
        {"ending_at": "2024-11-03T03:00:00-5:00"},
        [
            "2024-11-03T00:00:00-04:00",
            "2024-11-03T01:00:00-04:00",
            "2024-11-03T01:00:00-05:00",
            "2024-11-03T02:00:00-05:00",
        ],
        "2024-11-04T00:00:00-05:00",
        "2024-11-03",
        25,
    )
    assert len(set(day)) == len(day) == 100
    data = ny_client.ok(
        "/sessions/data_series", length=4, unit="hour", ending_at="2024-11-03T03:00:00-05:00"
    )["data"]
    ws = ny_client.sandbox.workspace
    starts = ws.window(
        now=ny_client.sandbox.now(),
        length=4,
        unit="hour",
        ending_at=datetime(2024, 11, 3, 8, tzinfo=UTC),
    )
    assert [r["sessions"] for r in data] == [
        ws.series_value("/sessions/data_series", s, unit="hour", now=ny_client.sandbox.now())
        for s in starts
    ]


def test_canvas_days_follow_company_time_zone(ny_client):
    ws = ny_client.sandbox.workspace
    stats = ny_client.ok(
        "/canvas/data_series",
        canvas_id=ws.canvases[0].id,
        starting_at="2024-11-01T00:00:00-04:00",
        ending_at="2024-11-04T04:59:59Z",
    )["data"]["stats"]
    assert [s["time"] for s in stats] == ["2024-11-01", "2024-11-02", "2024-11-03"]


# ------------------------------------------------------------------- restatement


def test_restatement_over_http(fresh):
    now = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    sb, client = fresh(now=now, restatement_days=3)
    canvas = sb.workspace.canvases[0]

    def snapshot():
        series = client.ok("/sessions/data_series", length=10, ending_at="2024-03-15T23:59:59Z")[
            "data"
        ]
        stats = client.ok(
            "/canvas/data_series", canvas_id=canvas.id, length=10, ending_at="2024-03-15T23:59:59Z"
        )["data"]["stats"]
        return (
            {r["time"]: r["sessions"] for r in series},
            {s["time"]: s["total_stats"] for s in stats},
        )

    before_s, before_c = snapshot()
    sb.set_now(now + timedelta(days=1))
    after_s, after_c = snapshot()
    # bucket 03-14 ends 03-15 00:00: age 0 -> 1, still restating
    assert after_s["2024-03-14"] > before_s["2024-03-14"]
    assert after_c["2024-03-14"]["entries"] > before_c["2024-03-14"]["entries"]
    # bucket 03-12 ends 03-13 00:00: age 2 -> 3, changes one last time
    assert after_s["2024-03-12"] != before_s["2024-03-12"]
    # buckets aged >= 3 days before the move are frozen
    for day in ("2024-03-06", "2024-03-08", "2024-03-11"):
        assert after_s[day] == before_s[day]
        assert after_c[day] == before_c[day]
    # today (partial) grows
    assert after_s["2024-03-15"] > before_s["2024-03-15"]
    # the oracle agrees at the new now
    ws = sb.workspace
    assert after_s["2024-03-14"] == ws.series_value(
        "/sessions/data_series", date(2024, 3, 14), now=now + timedelta(days=1)
    )
    # later buckets exist only once now reaches them
    assert _times(client, length=1, ending_at="2024-03-20") == ["2024-03-16"]


def test_real_time_now(fresh):
    _sb, client = fresh(now=None)
    times = _times(client, length=1)
    today = datetime.now(UTC).date()
    assert times[0] in {today.isoformat(), (today - timedelta(days=1)).isoformat()}
