"""Points out of order, duplicated or missing: one row per key, the right values, no bucket lost.

The sandbox misbehaves as configured (`point_order`, `duplicate_*`, `missing_*`;
see tap_braze_series/sandbox/points.py) and logs what it did to each response.
The tap's records are compared with the sandbox's oracle, which knows the right
value of every bucket (different-valued duplicates come before the right point,
so the oracle's value is the last one given for a bucket, in any order).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict

from tests.harness.expected import assert_matches, oracle
from tests.harness.messages import (
    TapRun,
    bookmarks,
    bucket_order,
    context_key,
    keyed,
    keys_of,
    record_key,
)
from tests.harness.running import run_tap, run_until, write_inputs
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 3, 1)
APPS = ["app_ios"]
# Two members of the canvas family (one fed from the other's spool), daily and
# hourly events (hours: many windows), and a series without entities.
STREAMS = [
    "canvas_step_message_data_series",
    "canvas_data_series",
    "event_data_series",
    "event_data_series_hourly",
    "session_data_series",
]


def config(sb, start: dt.date = START, **extra) -> dict:
    return tap_config(
        sb.url, sb.api_key, NOW, start.isoformat(), app_ids=APPS, max_workers=2, **extra
    )


def expected(sb, stream: str, start: dt.date = START) -> dict:
    return oracle(sb.workspace, stream, first=start, last=NOW.date(), now=NOW, app_ids=APPS)


def warnings(run: TapRun, *words: str) -> list[str]:
    return [
        line
        for line in run.stderr.splitlines()
        if "WARNING" in line and all(w in line for w in words)
    ]


def by_partition(stream: str, keys) -> dict[tuple, list]:
    """Partition -> its keys' buckets, sorted."""
    out: dict[tuple, list] = defaultdict(list)
    for key in keys:
        record = dict(zip(keys_of(stream), key, strict=True))
        out[context_key(stream, record)].append(bucket_order(record["time"]))
    return {partition: sorted(set(times)) for partition, times in out.items()}


def test_points_out_of_order_and_duplicated_give_one_row_per_key_with_the_right_values():
    with sandbox(
        now=NOW,
        point_order="shuffled",
        duplicate_rate=0.2,
        duplicate_copies=3,
        duplicate_values="different",
    ) as sb:
        run = run_tap(config(sb), streams=STREAMS)
        faults = Counter(f for r in sb.request_log for f in r.point_faults)
        want = {s: expected(sb, s) for s in STREAMS}
    assert run.returncode == 0, run.stderr[-3000:]
    assert faults["reordered"] > 20, faults
    assert faults["duplicate"] > 20, faults
    marks = bookmarks(run.state)
    for stream in STREAMS:
        got = keyed(run.records[stream], keys_of(stream))  # fails on a duplicate key
        assert_matches(stream, got, want[stream])
        # Emitted in bucket order within each partition: what keeps STATE honest.
        seen: dict[tuple, list] = defaultdict(list)
        for record in run.records[stream]:
            seen[context_key(stream, record)].append(bucket_order(record["time"]))
        for partition, times in seen.items():
            assert times == sorted(times), (stream, partition)
        for partition, times in by_partition(stream, want[stream]).items():
            assert bucket_order(marks[stream][partition]) == times[-1], (stream, partition)
    # Counted, and said once per run and endpoint, with an example.
    for path in ("/canvas/data_series", "/sessions/data_series"):
        [line] = warnings(run, path, "already given")
        assert re.search(r"skipped \d+ x .*\(e\.g\. .*\d{4}-\d{2}-\d{2}", line), line


def test_a_hundred_thousand_copies_of_a_bucket_make_one_row():
    with sandbox(now=NOW, duplicate_rate=0.05, duplicate_copies=100_000) as sb:
        run = run_tap(config(sb), streams=["session_data_series"])
        duplicated = [r for r in sb.request_log if "duplicate" in r.point_faults]
        want = expected(sb, "session_data_series")
    assert run.returncode == 0, run.stderr[-3000:]
    assert duplicated
    got = keyed(run.records["session_data_series"], keys_of("session_data_series"))
    assert_matches("session_data_series", got, want)
    [line] = warnings(run, "/sessions/data_series", "already given")
    count = int(re.search(r"skipped (\d+) x", line).group(1))
    assert count > 0, line
    assert count % 100_000 == 0, line


def test_a_window_with_a_missing_bucket_is_asked_again_once_and_healed():
    # Points go missing in the zero-filled series only (canvas here): a count series'
    # bucket without a point is a 0.
    with sandbox(now=NOW, point_order="desc", missing_rate=0.25, missing_repeats=1) as sb:
        run = run_tap(config(sb), streams=STREAMS)
        log = [r for r in sb.request_log if r.path.endswith("series")]
        want = {s: expected(sb, s) for s in STREAMS}
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in STREAMS:
        assert_matches(stream, keyed(run.records[stream], keys_of(stream)), want[stream])
    asks: dict[tuple, list] = defaultdict(list)
    for r in log:
        asks[(r.path, tuple(sorted(r.params.items())))].append("missing" in r.point_faults)
    holes = [a for a in asks.values() if a[0]]
    assert len(holes) > 8, len(holes)
    # A request is asked twice exactly when its first answer had a hole.
    for request, answers in asks.items():
        assert answers in ([False], [True, False]), (request, answers)
    assert not warnings(run, "asked twice")


def test_a_bucket_missing_for_good_stops_its_partition_before_it_until_a_later_run():
    """Within what the lookback re-reads: Braze may still answer it."""
    streams = ["canvas_step_message_data_series", "canvas_data_series", "segment_data_series"]
    start = NOW.date() - dt.timedelta(days=13)
    with sandbox(now=NOW, missing_rate=0.3) as sb:
        first = run_tap(config(sb, start, lookback_days=14), streams=streams)
        sb.set_point_faults(missing_rate=0.0)
        second = run_tap(config(sb, start, lookback_days=14), streams=streams, state=first.state)
        want = {s: expected(sb, s, start) for s in streams}
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    marks = bookmarks(first.state)
    cuts: dict[str, dict[tuple, object]] = {}
    stopped = 0
    for stream in streams:
        emitted = by_partition(stream, keyed(first.records[stream], keys_of(stream)))
        cuts[stream] = {}
        for partition, times in by_partition(stream, want[stream]).items():
            got = emitted.get(partition, [])
            # What was emitted is every bucket before the first hole, nothing after it.
            assert got == times[: len(got)], (stream, partition)
            if len(got) < len(times):
                hole = times[len(got)]
                cuts[stream][partition] = hole
                names = [f"'{value}'" for _, value in partition]  # the partition's values
                assert warnings(first, stream, hole.isoformat(), "asked twice", *names), (
                    stream,
                    partition,
                    hole,
                )
                stopped += 1
            if got:
                assert bucket_order(marks[stream][partition]) == got[-1], (stream, partition)
            else:
                assert partition not in marks.get(stream, {}), (stream, partition)
    assert stopped >= 3, stopped
    # The members of one family get the same cut.
    assert cuts["canvas_data_series"] == cuts["canvas_step_message_data_series"]
    # The next run reads from the bookmark on: nothing is lost.
    for stream in streams:
        union = {
            **keyed(first.records[stream], keys_of(stream)),
            **keyed(second.records[stream], keys_of(stream)),
        }
        assert_matches(stream, union, want[stream])
        for partition, times in by_partition(stream, want[stream]).items():
            assert bucket_order(bookmarks(second.state)[stream][partition]) == times[-1]


def test_a_bucket_missing_for_good_older_than_the_lookback_is_passed_once_warned_and_counted():
    """Braze restates nothing older than the lookback: waiting for it would hold the
    partition for ever, run after run."""
    streams = ["canvas_data_series", "segment_data_series"]
    with sandbox(now=NOW, missing_rate=0.05) as sb:
        first = run_tap(config(sb, lookback_days=14), streams=streams)
        want = {s: expected(sb, s) for s in streams}
    recent = NOW.date() - dt.timedelta(days=14)
    assert first.returncode == 0, first.stderr[-3000:]
    passed = 0
    for stream in streams:
        got = keyed(first.records[stream], keys_of(stream))
        assert not set(got) - set(want[stream]), stream
        assert_matches(stream, got, {k: v for k, v in want[stream].items() if k in got})
        emitted = by_partition(stream, got)
        for partition, times in by_partition(stream, want[stream]).items():
            rows = set(emitted.get(partition, []))
            # A hole the lookback still reads stops its partition before it (see the test
            # above); every older hole was moved past: the rows after it are there.
            stop = next((t for t in times if t >= recent and t not in rows), None)
            kept = [t for t in times if stop is None or t < stop]
            assert rows <= set(kept), (stream, partition)
            holes = [t for t in kept if t not in rows]
            assert all(t < recent for t in holes), (stream, partition, holes)
            passed += len(holes)
            if stop is None:
                assert bucket_order(bookmarks(first.state)[stream][partition]) == times[-1]
    assert passed >= 5, passed
    for path in ("/canvas/data_series", "/segments/data_series"):
        [line] = warnings(first, path, "older than lookback_days")
        assert re.search(r"skipped \d+ x bucket never answered", line), line
    summary = first.stderr[first.stderr.index("Run summary") :]
    count = int(re.search(r"moved past (\d+) buckets? Braze never answered", summary).group(1))
    assert count >= 5  # buckets, across the canvas family's members and segments


def test_killed_right_after_a_state_with_newest_first_points_resumes_without_a_loss(tmp_path):
    """A STATE in the middle of a window must not claim a bucket of it not yet emitted."""
    streams = ["event_data_series_hourly", "session_data_series"]
    start = dt.date(2024, 2, 1)  # 12,960 hourly records: a STATE amid them (every 10,000)
    with sandbox(
        now=NOW, point_order="desc", duplicate_rate=0.1, duplicate_values="different"
    ) as sb:
        cfg = config(sb, start, lookback_days=0)
        want = {s: expected(sb, s, start) for s in streams}
        expected_by_partition = {s: by_partition(s, want[s]) for s in streams}

        def after_state(previous, current):
            before = previous[-1] if previous else None
            if (
                before is not None
                and before.kind == "STATE"
                and current.kind == "RECORD"
                and current.stream == "event_data_series_hourly"
            ):
                return current.index, "state"  # the target read the STATE, not this record
            return None

        def mid_stream(previous, current):
            if current.kind == "RECORD" and current.index >= 1_000:
                return current.index + 1, "record"
            return None

        runs = []
        state = None
        for n, kill_at in enumerate([after_state, mid_stream, lambda _p, _c: None]):
            run = run_until(
                write_inputs(tmp_path, cfg, streams=streams, state=state, tag=f"r{n}"),
                tmp_path / f"r{n}.err",
                kill_at,
            )
            runs.append(run)
            states = run.states()
            state = states[-1].value if states else state
    assert [r.killed for r in runs] == [True, True, False], [r.kill_reason for r in runs]
    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    emitted: dict[str, set] = defaultdict(set)
    claims = 0
    for run in runs:
        for message in run.messages:
            if message.kind == "RECORD":
                key = record_key(message.stream, message.record)
                assert key in want[message.stream], (message.stream, key)
                emitted[message.stream].add(key)
                continue
            if message.kind != "STATE":
                continue
            for stream, marks in bookmarks(message.value).items():
                for partition, value in marks.items():
                    rows = by_partition(stream, emitted[stream]).get(partition, [])
                    wanted = expected_by_partition[stream][partition]
                    below = [t for t in wanted if t <= bucket_order(value)]
                    assert below == rows[: len(below)], (stream, partition, value)
                    claims += 1
    assert claims > 10
    for stream in streams:
        assert emitted[stream] == set(want[stream]), stream
