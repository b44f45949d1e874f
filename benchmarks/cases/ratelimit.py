"""A sandbox rate limit (default 200 requests / 5 s): 429s, requests per window, wall vs
the ideal the limit imposes."""

from __future__ import annotations

import statistics

from benchmarks import reports
from benchmarks.measure import Bench


def _extra(key: str, header: str) -> reports.Column:
    return reports.Column(header, lambda result, _row: result.extra[key])


def _windows(read, header: str) -> reports.Column:
    return reports.Column(header, lambda result, _row: read(result.extra.get("windows", {})))


def _mean(values) -> float:
    return statistics.fmean(values) if values else float("nan")


COLUMNS = [
    reports.LABEL,
    reports.Column(
        "limit", lambda result, _row: f"{result.extra['limit']}/{result.extra['window']:g}s"
    ),
    reports.REQUESTS,
    reports.MINIMUM,
    _windows(lambda w: w.get("made", 0), "in limited pool"),
    reports.N429,
    reports.Column(
        "governor waits ≥1 s logged", lambda result, _row: result.run.governor_waits_logged
    ),
    _windows(lambda w: w.get("max", 0), "max per window"),
    _windows(lambda w: _mean(w.get("full_windows") or []), "mean per full window"),
    _windows(
        lambda w: _mean(w.get("first_request_after_open") or []),
        "mean s from window open to its first request",
    ),
    reports.Column(
        "series span s", lambda result, _row: result.log.get("series_span", float("nan"))
    ),
    _extra("phase_ideal", "phase-aware ideal s (minimum)"),
    _extra("phase_ideal_made", "phase-aware ideal s (requests made)"),
    _extra("steady_ideal", "steady ideal s (N/limit·window)"),
    reports.Column("tap wall s", lambda _result, row: row["wall"]),
    reports.Column(
        "wall/steady ideal", lambda result, row: f"{row['wall'] / result.extra['steady_ideal']:.2f}"
    ),
    reports.Column(
        "span/phase-aware ideal",
        lambda result, _row: (
            f"{result.log.get('series_span', float('nan')) / result.extra['phase_ideal']:.2f}"
        ),
    ),
    reports.FOREIGN,
]


def run(bench: Bench) -> str:
    size = bench.size
    limit = (bench.rl_limit, bench.rl_window)
    result = bench.measure(
        "ratelimit",
        f"events n={size['rl_events']} {size['rl_days']}d",
        "events",
        n=size["rl_events"],
        days=size["rl_days"],
        rate_limits={"default": limit},
    )
    return (
        f"## Rate limit (sandbox default pool {limit[0]} requests / {limit[1]:g} s, latency "
        f"{bench.latency * 1000:g} ms, {bench.workers} workers)\n\n"
        + reports.case_table([result], COLUMNS)
        + "\n\nper-window counts (default pool, aligned windows): "
        + str(result.extra.get("windows", {}).get("per_window"))
    )
