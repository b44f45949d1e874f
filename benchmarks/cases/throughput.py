"""Events hourly and daily over a year at latency 0: records per CPU-second of the tap."""

from __future__ import annotations

import statistics

from benchmarks import reports
from benchmarks.measure import Bench

COLUMNS = [
    reports.LABEL,
    reports.figure("events", "entities"),
    reports.DAYS,
    reports.REQUESTS,
    reports.MINIMUM,
    reports.RECORDS,
    reports.WALL,
    reports.RECORDS_PER_S,
    reports.figure("tap user s", "user"),
    reports.figure("tap sys s", "sys"),
    reports.TAP_CPU,
    reports.RECORDS_PER_CPU,
    reports.Column("µs CPU/record", lambda _result, row: 1e6 * row["cpu"] / max(row["records"], 1)),
    reports.SANDBOX_CPU,
    reports.RSS,
    reports.FOREIGN,
    reports.CALIBRATION,
]


def run(bench: Bench) -> str:
    size = bench.size
    results, summary = [], []
    for label, family, n in (
        (f"events hourly n={size['thr_events']}", "events_hourly", size["thr_events"]),
        (f"events daily n={size['thr_events'] * 10}", "events", size["thr_events"] * 10),
    ):
        runs = [
            bench.measure(
                "throughput", f"{label} #{i + 1}", family, n=n, days=size["thr_days"], latency=0.0
            )
            for i in range(size["thr_repeat"])
        ]
        results += runs
        rates = [r.run.records / r.run.cpu for r in runs]
        summary.append(
            f"{label}: records per tap CPU-second median "
            f"{statistics.median(rates):,.0f}, best {max(rates):,.0f}, worst "
            f"{min(rates):,.0f} over {len(rates)} runs"
        )
    return (
        "## Record throughput (latency 0)\n\n"
        + reports.case_table(results, COLUMNS)
        + "\n\n"
        + "\n".join(f"- {line}" for line in summary)
    )
