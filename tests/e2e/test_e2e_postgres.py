"""End to end into a real warehouse: Meltano -> meltanolabs-target-postgres -> PostgreSQL.

Two runs against the same Meltano system database, the sandbox's clock moved forward
between them: the second run must re-read only the lookback window and the new days
(from Meltano's bookmark), add the new days, update the restated ones in place, and
leave exactly one row per primary key.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.harness.expected import assert_rows_equal, days, expected_rows, normalise, requested_days
from tests.harness.messages import bookmarks, keys_of
from tests.harness.running import PLUGIN
from tests.harness.sandboxes import MELTANO_NOW, tap_env

pytestmark = pytest.mark.e2e

START = dt.date(2024, 4, 15)
END = MELTANO_NOW.date()
LOOKBACK = 5
STEP = dt.timedelta(days=3)
STATE_ID = "dev:tap-braze-series-to-target-postgres"
SERIES = {  # stream -> (data-series path, request parameter naming the entity)
    "canvas_data_series": ("/canvas/data_series", "canvas_id"),
    "event_data_series": ("/events/data_series", "event"),
    "session_data_series": ("/sessions/data_series", None),
    "segment_data_series": ("/segments/data_series", "segment_id"),
}
STREAMS = [*SERIES, "canvases"]
#: The state context's column naming a partition's entity (None: one partition).
ENTITY_COLUMNS = {
    "canvas_data_series": "canvas_id",
    "event_data_series": "event_name",
    "session_data_series": None,
    "segment_data_series": "segment_id",
}


def assert_one_row_per_key(postgres, schema: str, stream: str) -> None:
    keys = ", ".join(f'"{k}"' for k in keys_of(stream))
    total, distinct = (
        postgres.psql(f'select count(*), count(distinct ({keys}, 0)) from "{schema}"."{stream}"')
        .strip()
        .split("|")
    )
    assert total == distinct, f"{stream}: {total} rows but {distinct} distinct keys"


@pytest.mark.parametrize("sandbox", ["recorded", "ends_by"], indirect=True)
def test_postgres_incremental_runs_follow_restatements(sandbox, meltano, postgres):
    """As recorded, and with `ending_at` read the other way (zero-filled count series,
    the third reading, give the rows the recorded one does: the JSONL test runs it).
    Each run ends at the sandbox's now, mid-day (the tap's own clock is not the
    sandbox's): today's bucket is the run's open one."""
    ws = sandbox.workspace
    schema = f"braze_e2e_{uuid.uuid4().hex[:8]}"
    settings = {"lookback_days": LOOKBACK}

    # --- run 1: the backfill, START..END, now = MELTANO_NOW --------------------------------
    env = {
        **tap_env(sandbox, start=START, end=MELTANO_NOW, streams=STREAMS, **settings),
        **postgres.target_env(schema),
    }
    meltano.run(PLUGIN, "target-postgres", extra_env=env)

    first = {s: expected_rows(ws, s, START, END, MELTANO_NOW) for s in STREAMS}
    for stream in STREAMS:
        assert_rows_equal(stream, postgres.rows(schema, stream), first[stream])
        assert_one_row_per_key(postgres, schema, stream)
    assert STATE_ID in meltano.state_list()
    first_marks = bookmarks(meltano.state_get(STATE_ID))
    assert sorted(first_marks) == sorted(SERIES)
    # Today's, but where Braze has no point for it (no partial day under "ends_by", a
    # count series' zero partial day left out).
    last_days = {END.isoformat(), (END - dt.timedelta(days=1)).isoformat()}
    for stream in SERIES:
        assert set(first_marks[stream].values()) <= last_days, stream

    # --- run 2: three days later ---------------------------------------------------
    now2, end2 = MELTANO_NOW + STEP, END + STEP
    sandbox.set_now(now2)
    sandbox.clear_log()
    env = {
        **tap_env(sandbox, start=START, end=now2, streams=STREAMS, **settings),
        **postgres.target_env(schema),
    }
    meltano.run(PLUGIN, "target-postgres", extra_env=env)

    second = {s: expected_rows(ws, s, START, end2, now2) for s in STREAMS}
    for stream in STREAMS:
        assert_rows_equal(stream, postgres.rows(schema, stream), second[stream])
        assert_one_row_per_key(postgres, schema, stream)

    # The run restated days it had loaded before: the oracle moved, and so did the table.
    for stream in SERIES:
        before = normalise(stream, first[stream])
        after = normalise(stream, second[stream])
        restated = {key[-1] for key in before if before[key] != after[key]}
        assert restated, f"{stream}: no value changed between the runs (test is vacuous)"
        assert min(restated) >= (END - dt.timedelta(days=LOOKBACK)).isoformat(), (
            f"{stream}: the oracle restated {sorted(restated)}, older than the lookback"
        )
        new_days = {key[-1] for key in after} - {key[-1] for key in before}
        assert len(new_days) == STEP.days, f"{stream}: new days {sorted(new_days)}"

    # Meltano handed the bookmark back: run 2 read only the lookback window and new days.
    requests = requested_days(sandbox)
    for stream, (path, entity_param) in SERIES.items():
        served = [r for r in requests if r.path == path]
        assert served, f"{stream}: no {path} request in run 2"
        per_entity: dict[str | None, set[dt.date]] = {}
        for r in served:
            per_entity.setdefault(r.entity, set()).update(r.days)
        marks = {
            dict(context).get(ENTITY_COLUMNS[stream]): value
            for context, value in first_marks[stream].items()
        }
        for entity, covered in per_entity.items():
            mark = dt.date.fromisoformat(marks[entity])
            wanted = set(days(mark - dt.timedelta(days=LOOKBACK), end2))
            assert covered == wanted, (
                f"{stream} ({entity_param}={entity}): run 2 requested "
                f"{min(covered)}..{max(covered)} ({len(covered)} days), expected "
                f"{min(wanted)}..{max(wanted)}: the bookmark minus lookback_days={LOOKBACK} "
                "to the new end"
            )
    last_days = {end2.isoformat(), (end2 - dt.timedelta(days=1)).isoformat()}
    for stream, marks in bookmarks(meltano.state_get(STATE_ID)).items():
        assert set(marks.values()) <= last_days, stream
