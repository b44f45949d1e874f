"""Hourly rows carry the company's day and hour (`date`, `hour`): in every loader they
group and join on the same local day as the day series' `time`, whatever the loader
makes of an hour's `time` (PostgreSQL and DuckDB keep it as a UTC timestamp)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import pytest

from tap_braze_series.sandbox import Sandbox
from tests.harness.running import PLUGIN, ROOT
from tests.harness.sandboxes import sandbox_config, tap_env

pytestmark = pytest.mark.e2e

TZ = "America/New_York"  # the evening hours of a local day are the next day in UTC
START, END = dt.date(2024, 6, 10), dt.date(2024, 6, 12)
STREAMS = ["event_data_series", "event_data_series_hourly"]


def local_config() -> object:
    return sandbox_config("meltano", n_events=2, timezone=TZ)


def test_postgres_hour_rows_join_the_day_rows_on_the_local_day(meltano, postgres):
    schema = f"braze_local_{uuid.uuid4().hex[:8]}"
    with Sandbox(local_config()) as sb:
        env = {
            **tap_env(sb, start=START, end=END, streams=STREAMS, company_timezone=TZ),
            **postgres.target_env(schema),
        }
        meltano.run(PLUGIN, "target-postgres", extra_env=env)
    types = postgres.psql(
        "select column_name || ':' || data_type from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = 'event_data_series_hourly' "
        "and column_name in ('time', 'date', 'hour', 'count') order by 1"
    ).splitlines()
    assert types == [
        "count:bigint",
        "date:date",
        "hour:smallint",
        "time:timestamp without time zone",
    ], types
    hourly = f'"{schema}".event_data_series_hourly'
    daily = f'"{schema}".event_data_series'
    # `time` is kept as UTC: its date is not the company's day for the evening hours.
    wrong, total = (
        postgres.psql(f"select count(*) filter (where time::date <> date), count(*) from {hourly}")
        .strip()
        .split("|")
    )
    assert int(wrong) > 0
    assert int(total) == 2 * 24 * 3
    # `date` and `hour` are the local day and hour of `time`, and join the day rows.
    shifted = postgres.psql(
        f"select count(*) from {hourly} where (time at time zone 'UTC' at time zone '{TZ}') "
        "<> date + make_interval(hours => hour)"
    )
    assert shifted.strip() == "0"
    unmatched = postgres.psql(
        f"select count(*) from (select distinct event_name, date from {hourly}) h "
        f"left join {daily} d on d.event_name = h.event_name and d.time = h.date "
        "where d.time is null"
    ).strip()
    assert unmatched == "0"


DUCKDB_CHECK = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
types = {r[0]: r[1] for r in con.execute("describe braze.event_data_series_hourly").fetchall()}
day_types = {r[0]: r[1] for r in con.execute("describe braze.event_data_series").fetchall()}
unmatched = con.execute(
    "select count(*) from (select distinct event_name, date from braze.event_data_series_hourly) h "
    "left join braze.event_data_series d on d.event_name = h.event_name and d.time = h.date "
    "where d.time is null").fetchone()[0]
days = con.execute("select count(distinct date) from braze.event_data_series_hourly").fetchone()[0]
print(json.dumps({"types": types, "day_types": day_types, "unmatched": unmatched, "days": days}))
"""


def test_duckdb_hour_rows_join_the_day_rows_on_the_local_day(meltano, tmp_path):
    db = tmp_path / "local.duckdb"
    with Sandbox(local_config()) as sb:
        env = tap_env(sb, start=START, end=END, streams=STREAMS, company_timezone=TZ)
        env.update(
            {"TARGET_DUCKDB_FILEPATH": str(db), "TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA": "braze"}
        )
        meltano.run(PLUGIN, "target-duckdb", extra_env=env)
    python = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
    out = subprocess.run(
        [str(python), "-c", DUCKDB_CHECK, str(db)], capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout)
    types = found["types"]
    assert (types["time"], types["date"], types["hour"], types["count"]) == (
        "TIMESTAMP",
        "VARCHAR",
        "SMALLINT",
        "BIGINT",
    ), types
    assert found["day_types"]["time"] == "VARCHAR", "target-duckdb 0.8 maps no format to DATE"
    assert found["unmatched"] == 0
    assert found["days"] == 3
