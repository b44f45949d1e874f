"""Canvases (the 4 canvas streams) and events (daily) at 10 / 100 / 1,000 entities:
requests vs the minimum, wall vs the ideal, records per CPU-second, peak RSS."""

from __future__ import annotations

from benchmarks import reports
from benchmarks.measure import Bench

COLUMNS = [
    reports.LABEL,
    reports.ENTITIES,
    reports.REQUESTS,
    reports.MINIMUM,
    reports.Column("extra requests", lambda result, _row: reports.extra_paths(result)),
    reports.N429,
    reports.WALL,
    reports.figure("ideal s", "ideal"),
    reports.ratio("wall/ideal", "ratio"),
    reports.ratio("(wall−startup)/ideal", "ratio_net"),
    reports.SPAN,
    reports.figure("mean in flight", "in_flight"),
    reports.RECORDS,
    reports.RECORDS_PER_S,
    reports.TAP_CPU,
    reports.RECORDS_PER_CPU,
    reports.SANDBOX_CPU,
    reports.RSS,
    reports.FOREIGN,
]


def run(bench: Bench) -> str:
    size, startup = bench.size, bench.startup.wall
    results = [
        bench.measure("scaling", f"{family} n={n} {days}d", family, n=n, days=days)
        for family, days in (("canvas", size["canvas_days"]), ("events", size["event_days"]))
        for n in size["scale_entities"]
    ]
    return (
        f"## Scaling (latency {bench.latency * 1000:g} ms, {bench.workers} workers; canvases = "
        f"the 4 canvas streams over {size['canvas_days']} days, events = event_data_series "
        f"over {size['event_days']} days)\n\n"
        + reports.case_table(results, COLUMNS, startup)
        + f"\n\nideal = minimum requests × latency / workers; startup = {startup:.2f} s "
        "(a run with no entities). Canvas n = canvases created; entities = active (listed) "
        "canvases."
    )
