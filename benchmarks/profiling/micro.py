"""Each step of the per-record path timed alone, without a profiler."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import wait_quiet
from benchmarks.profiling.record_paths import singer_output_counted
from benchmarks.reports import table


def micro_costs(
    config: dict, catalog: dict, workdir: Path, number: int = 100_000
) -> dict[str, Any]:
    """µs per hourly event record of each step of the per-record path, timed in isolation.

    No profiler: each step runs `number` times under time.perf_counter on one realistic
    record (the shapes step on a real 100-point response body), so these figures carry
    no profiler overhead. What the replayed run costs beyond their sum is the SDK's
    record loop itself (generators, counters, checks) and the response hand-off.
    """
    from singer_sdk.helpers._catalog import pop_deselected_record_properties
    from singer_sdk.helpers._typing import conform_record_data_types
    from singer_sdk.helpers._util import utc_now
    from singer_sdk.singerlib import RecordMessage

    from tap_braze_series import shapes
    from tap_braze_series.feed import Partition
    from tap_braze_series.tap import TapBrazeSeries
    from tap_braze_series.windows import plan_windows, read_time

    tap = TapBrazeSeries(config=config, catalog=catalog, state=None)
    stream = tap.streams["event_data_series_hourly"]
    tz = tap.runtime.tz
    first = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    window = plan_windows(first, first + dt.timedelta(hours=99), "hour", 100, tz)[0]
    body = {
        "message": "success",
        "data": [
            {"time": (first + dt.timedelta(hours=h)).isoformat(), "count": 1000 + h}
            for h in range(100)
        ],
    }
    partition = Partition(
        index=0, context={"event_name": "purchase_completed", "app_id": "*"}, params={}
    )
    times = [(first + dt.timedelta(hours=h)).isoformat() for h in range(number)]
    record = {"event_name": "purchase_completed", "app_id": "*", "time": times[0], "count": 1234}
    schema, mask = stream.schema, stream.mask
    stream_map = stream.stream_maps[0]
    results: list[tuple[str, float]] = []

    def timed(label: str, func: Any, n: int = number) -> None:
        start = time.perf_counter()
        func(n)
        results.append((label, 1e6 * (time.perf_counter() - start) / n))

    def shape(n: int) -> None:
        for _ in range(n // 100):
            for _row in shapes.simple_records(
                shapes.data_list(body),
                window,
                first,
                "hour",
                tz,
                partition.context,
                ("count",),
                shapes.Issues(),
            ):
                pass

    def read(n: int) -> None:
        # The hours of one year recur for every event, as in a run.
        for i in range(n):
            read_time(times[i % 8784], "hour", tz)

    def pop(n: int) -> None:
        for _ in range(n):
            pop_deselected_record_properties(dict(record), schema, mask)

    def copy_only(n: int) -> None:
        for _ in range(n):
            dict(record)

    def conform(n: int) -> None:
        for _ in range(n):
            conform_record_data_types(
                stream_name=stream.name,
                record=record,
                schema=schema,
                level=stream.TYPE_CONFORMANCE_LEVEL,
                logger=stream.logger,
            )

    def mapper(n: int) -> None:
        for _ in range(n):
            stream_map.transform(record)

    def message(n: int) -> None:
        for _ in range(n):
            RecordMessage(stream=stream.name, record=record, version=None, time_extracted=utc_now())

    msg = RecordMessage(stream=stream.name, record=record, version=None, time_extracted=utc_now())

    def write(n: int) -> None:
        for _ in range(n):
            tap.write_message(msg)

    def write_record(n: int) -> None:
        for _ in range(n):
            stream._write_record_message(dict(record))

    context = {"event_name": "purchase_completed", "app_id": "*"}

    def increment(n: int) -> None:
        for i in range(n):
            stream._increment_stream_state({**record, "time": times[i]}, context=context)

    def increment_copy_only(n: int) -> None:
        for i in range(n):
            {**record, "time": times[i]}

    steps = [
        ("tap shapes.simple_records incl. windows.read_time, per point", shape),
        ("  of which windows.read_time (a year of hours, recurring per event)", read),
        ("(dict copy, subtracted below)", copy_only),
        ("SDK pop_deselected_record_properties", pop),
        ("SDK conform_record_data_types (level NONE)", conform),
        ("SDK stream map transform (no maps configured)", mapper),
        ("SDK RecordMessage + utc_now()", message),
        ("writer: tap.write_message (msgspec encode + chunked write)", write),
        ("SDK _write_record_message (the 5 steps above, with its generator)", write_record),
        ("(dict build, subtracted below)", increment_copy_only),
        ("SDK _increment_stream_state → tap state.increment_state", increment),
    ]
    wait_quiet()
    with singer_output_counted(workdir / "micro-costs-stderr.log"):
        for _repeat in range(3):
            for label, func in steps:
                timed(label, func)
        flush = getattr(tap.message_writer, "flush", None)
        if callable(flush):
            flush()  # the tap's writer may hold a chunk: into the counter, not the terminal
    by: dict[str, float] = {}
    for label, us in results:  # best of the repeats
        by[label] = min(us, by.get(label, us))
    results = list(by.items())
    rows = []
    for label, us in results:
        if label.startswith("("):
            continue
        if "pop_deselected" in label or "_write_record_message" in label:
            us -= by["(dict copy, subtracted below)"]
        if "_increment_stream_state" in label:
            us -= by["(dict build, subtracted below)"]
        rows.append([label, us])
    return {"rows": rows, "table": table(["step (timed alone, no profiler)", "µs/record"], rows)}
