"""The benchmark's tables: Markdown, one row per measured run, columns declared once.

A case lists its columns as `Column`s (a header and how to read the value from a run
and its row of figures, `CaseResult.row`); `case_table` lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.measure import CaseResult
from benchmarks.workloads import FAMILIES


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(r if isinstance(r, str) else fmt(r) for r in row) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[CaseResult, dict[str, Any]], Any]


def figure(header: str, key: str) -> Column:
    """A column of the run's row of figures (`CaseResult.row`)."""
    return Column(header, lambda _result, row: row[key])


def ratio(header: str, key: str) -> Column:
    """A ratio of the row, printed with two decimals (never with thousands separators)."""
    return Column(header, lambda _result, row: f"{row[key]:.2f}")


def case_table(
    results: Iterable[CaseResult], columns: Sequence[Column], startup: float = 0.0
) -> str:
    rows = []
    for result in results:
        row = result.row(startup)
        rows.append([column.value(result, row) for column in columns])
    return table([column.header for column in columns], rows)


# The columns most cases share.
LABEL = Column("case", lambda result, _row: result.label)
ENTITIES = figure("entities", "entities")
DAYS = figure("days", "days")
REQUESTS = figure("requests", "requests")
MINIMUM = figure("minimum", "minimum")
N429 = figure("429s", "n429")
WALL = figure("wall s", "wall")
RECORDS = figure("records", "records")
TAP_CPU = figure("tap CPU s", "cpu")
RECORDS_PER_S = figure("records/s wall", "rec_per_s")
RECORDS_PER_CPU = figure("records/CPU-s", "rec_per_cpu")
SANDBOX_CPU = figure("sandbox CPU s", "sandbox_cpu")
RSS = figure("peak RSS MB", "rss")
FOREIGN = figure("other processes' CPU s", "foreign")
CALIBRATION = figure("calibration ms", "calibration")
SPAN = Column("fetch span s", lambda result, _row: result.log.get("series_span", float("nan")))
STDOUT_MB = Column("stdout MB", lambda result, _row: result.run.stdout_bytes / 1e6)
LOG_IDEAL = Column("ideal s", lambda result, _row: result.extra["log_ideal"])


def extra_paths(result: CaseResult) -> str:
    """The requests beyond the minimum, by path."""
    series_path = FAMILIES[result.family]["series_path"]
    list_path = {
        "canvas": "/canvas/list",
        "events": "/events/list",
        "events_hourly": "/events/list",
    }[result.family]
    others = {p: c for p, c in result.log["by_path"].items() if p not in (series_path, list_path)}
    parts = []
    made_series = result.log["by_path"].get(series_path, 0)
    if made_series != result.minimum["series"]:
        parts.append(f"{series_path} {made_series - result.minimum['series']:+d}")
    made_list = result.log["by_path"].get(list_path, 0)
    if made_list != result.minimum["list"]:
        parts.append(f"{list_path} {made_list - result.minimum['list']:+d}")
    parts += [f"{p} {c}" for p, c in sorted(others.items())]
    return ", ".join(parts) or "none"
