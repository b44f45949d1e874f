"""The same entities over 30 days and over 2 years (latency 0): peak RSS should stay flat."""

from __future__ import annotations

from benchmarks import reports
from benchmarks.measure import Bench


def _late_rss(result, _row) -> float:
    """The highest RSS sampled in the second half of the run."""
    late = [rss for t, rss in result.run.rss_samples if t >= result.run.wall / 2]
    return max(late) if late else float("nan")


COLUMNS = [
    reports.LABEL,
    reports.ENTITIES,
    reports.DAYS,
    reports.REQUESTS,
    reports.RECORDS,
    reports.STDOUT_MB,
    reports.WALL,
    reports.RSS,
    reports.Column("max RSS 2nd half MB", _late_rss),
]


def run(bench: Bench) -> str:
    size = bench.size
    results = [
        bench.measure("memory", f"{family} n={n} {days}d", family, n=n, days=days, latency=0.0)
        for family, n in (("canvas", size["mem_canvases"]), ("events_hourly", size["mem_events"]))
        for days in size["mem_days"]
    ]
    return "## Memory: same entities, short vs long history (latency 0)\n\n" + reports.case_table(
        results, COLUMNS
    )
