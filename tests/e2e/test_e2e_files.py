"""End to end into files and DuckDB: `meltano run tap-braze-series target-jsonl|target-duckdb`.

The tap runs under Meltano against an in-process sandbox with a fixed `now`; every
loaded row must equal what the sandbox's oracle says, no more, no less.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from tests.harness.expected import assert_rows_equal, expected_rows
from tests.harness.messages import bookmarks
from tests.harness.running import PLUGIN, ROOT
from tests.harness.sandboxes import MELTANO_NOW, READINGS, tap_env

pytestmark = pytest.mark.e2e

START = dt.date(2024, 4, 15)
END = MELTANO_NOW.date()  # today: its bucket is partial, and loaded as such
ONE_DAY = dt.timedelta(days=1)
SERIES = ["canvas_data_series", "event_data_series", "session_data_series", "segment_data_series"]
STREAMS = [*SERIES, "canvases", "events"]


@pytest.mark.parametrize("sandbox", list(READINGS), indirect=True)
def test_jsonl_rows_equal_the_oracle(sandbox, meltano, tmp_path):
    """Under each reading of Braze; the run ends at the sandbox's now, mid-day (the
    tap's own clock is not the sandbox's): today's bucket is the run's open one."""
    out = tmp_path / "jsonl"
    out.mkdir()
    env = tap_env(sandbox, start=START, end=MELTANO_NOW, streams=STREAMS)
    env["TARGET_JSONL_DESTINATION_PATH"] = str(out)

    meltano.run(PLUGIN, "target-jsonl", extra_env=env)

    assert sorted(p.stem for p in out.glob("*.jsonl")) == sorted(STREAMS), (
        "exactly the selected streams are written"
    )
    ws = sandbox.workspace
    for stream in STREAMS:
        lines = (out / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        assert_rows_equal(stream, rows, expected_rows(ws, stream, START, END, MELTANO_NOW))

    # Meltano kept the bookmarks: every partition of every series stream is at its last
    # row: today's, but where Braze has no point for it (no partial day under "ends_by",
    # a count series' zero partial day left out).
    marks = bookmarks(meltano.state_get("dev:tap-braze-series-to-target-jsonl"))
    assert sorted(marks) == sorted(SERIES)
    assert len(marks["canvas_data_series"]) == len(ws.active_canvases)
    assert len(marks["event_data_series"]) == len(ws.events)
    today = {END.isoformat()} if ws.config.ending_at_reading == "instant" else set()
    for stream in SERIES:
        last_days = {(END - dt.timedelta(days=1)).isoformat(), *today}
        assert set(marks[stream].values()) <= last_days, stream
    assert set(marks["canvas_data_series"].values()) == (today or {(END - ONE_DAY).isoformat()})


DUCKDB_ROWS = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for table in sys.argv[3:]:
    cur = con.execute(f'select * from "{sys.argv[2]}"."{table}"')
    names = [d[0] for d in cur.description]
    out[table] = [dict(zip(names, row)) for row in cur.fetchall()]
print(json.dumps(out, default=str))
"""


def test_duckdb_rows_equal_the_oracle(sandbox, meltano, tmp_path):
    """The demo's loader: every row lands (target-duckdb + duckdb>=1.3 drops rows)."""
    db = tmp_path / "e2e.duckdb"
    env = tap_env(sandbox, start=START, end=MELTANO_NOW, streams=STREAMS)
    env.update({"TARGET_DUCKDB_FILEPATH": str(db), "TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA": "braze"})

    meltano.run(PLUGIN, "target-duckdb", extra_env=env)

    python = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
    res = subprocess.run(
        [str(python), "-c", DUCKDB_ROWS, str(db), "braze", *STREAMS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    tables = json.loads(res.stdout)
    for stream in STREAMS:
        rows = tables[stream]
        if stream == "canvases":  # target-duckdb stores arrays as JSON text
            rows = [{**r, "tags": json.loads(r["tags"])} for r in rows]
        assert_rows_equal(
            stream, rows, expected_rows(sandbox.workspace, stream, START, END, MELTANO_NOW)
        )


def test_a_missing_permission_fails_the_run_and_names_it(sandbox, meltano, tmp_path):
    """A key without `segments.data_series`: Meltano's run fails and says what to grant."""
    sandbox.set_denied_permissions({"segments.data_series"})
    out = tmp_path / "jsonl"
    out.mkdir()
    env = tap_env(sandbox, start=START, end=END, streams=STREAMS)
    env["TARGET_JSONL_DESTINATION_PATH"] = str(out)

    proc = meltano.run(PLUGIN, "target-jsonl", extra_env=env, check=False)

    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "segments.data_series" in log
    assert "403" in log
