"""1,000 canvases × 2 years, the 4 canvas streams with breakdowns, with uniform and slow
responses: peak RSS (only with --cases: minutes of both cores)."""

from __future__ import annotations

from benchmarks import reports
from benchmarks.measure import Bench
from benchmarks.workloads import TAILS

COLUMNS = [
    reports.LABEL,
    reports.ENTITIES,
    reports.DAYS,
    reports.REQUESTS,
    reports.MINIMUM,
    reports.RECORDS,
    reports.STDOUT_MB,
    reports.WALL,
    reports.LOG_IDEAL,
    reports.TAP_CPU,
    reports.RSS,
    reports.FOREIGN,
]


def run(bench: Bench) -> str:
    n = bench.size["big_canvases"]
    results = [
        bench.measure(
            "memory_large",
            f"canvas (4 streams) n={n} {tail}",
            "canvas",
            n=n,
            days=730,
            latency=0.0,
            sandbox_extra={"tail_rate": rate, "tail_latency": seconds},
        )
        for tail, rate, seconds in (TAILS[0], TAILS[-1])
    ]
    return (
        f"## Memory: {n:,} canvases × 2 years, the 4 canvas streams "
        f"with breakdowns (latency 0, {bench.workers} workers)\n\n"
        + reports.case_table(results, COLUMNS)
    )
