"""Slow responses: canvas_data_series alone, the 4 canvas streams, events hourly and daily,
each with uniform latency, 1 response in 10 taking 1 s more and 1 in 20 taking 2 s more
(the sandbox's latency tail: the same requests every run); wall vs the ideal from the
sandbox's request log, and whether the records (and their order) match."""

from __future__ import annotations

from benchmarks import reports
from benchmarks.measure import Bench
from benchmarks.workloads import CANVAS_STREAMS, TAILS


def _extra(key: str, header: str) -> reports.Column:
    return reports.Column(header, lambda result, _row: result.extra[key])


def columns(startup: float) -> list[reports.Column]:
    return [
        _extra("workload", "workload"),
        _extra("tail", "response times"),
        reports.ENTITIES,
        reports.REQUESTS,
        reports.MINIMUM,
        reports.N429,
        reports.Column("max in flight", lambda result, _row: result.log.get("max_in_flight", 0)),
        reports.WALL,
        reports.LOG_IDEAL,
        reports.Column(
            "wall/ideal", lambda result, row: f"{row['wall'] / result.extra['log_ideal']:.2f}"
        ),
        reports.Column(
            "(wall−startup)/ideal",
            lambda result, row: f"{(row['wall'] - startup) / result.extra['log_ideal']:.2f}",
        ),
        reports.SPAN,
        reports.RECORDS,
        _extra("same", "same records, same order as uniform"),
        reports.RSS,
        reports.FOREIGN,
    ]


def run(bench: Bench) -> str:
    size, startup = bench.size, bench.startup.wall
    workloads = (
        ("canvas_data_series", "canvas", ("canvas_data_series",), size["tail_canvases"]),
        ("canvas (4 streams)", "canvas", CANVAS_STREAMS, size["tail_canvases"]),
        ("events hourly", "events_hourly", None, size["tail_events_hourly"]),
        ("events daily", "events", None, size["tail_events"]),
    )
    results = []
    for workload, family, streams, n in workloads:
        uniform: dict[str, str] | None = None
        for tail, rate, seconds in TAILS:
            result = bench.measure(
                "tail",
                f"{workload} {tail}",
                family,
                n=n,
                days=365,
                streams=streams,
                sandbox_extra={"tail_rate": rate, "tail_latency": seconds},
                digest=True,
                extra={"workload": workload, "tail": tail},
            )
            if tail == TAILS[0][0]:
                uniform = result.run.digests
                same = "–"
            else:
                same = "yes" if uniform == result.run.digests else "NO"
            result.extra["same"] = same
            results.append(result)
    return (
        f"## Slow responses (latency {bench.latency * 1000:g} ms, {bench.workers} workers, "
        "365 days; which requests are slow is a hash of the request: the same ones every "
        "run)\n\n"
        + reports.case_table(results, columns(startup), startup)
        + "\n\nideal = max(sum of the response times in the sandbox's request log / "
        f"workers, the slowest response); startup = {startup:.2f} s."
    )
