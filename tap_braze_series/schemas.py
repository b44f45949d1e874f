"""Shared schema pieces: identity columns, time columns, metric columns."""

from __future__ import annotations

from collections.abc import Mapping

from singer_sdk import typing as th

from tap_braze_series.endpoints import Axis
from tap_braze_series.windows import Unit

EXTRA_METRICS = th.Property(
    "extra_metrics",
    th.ObjectType(additional_properties=True),
    description="Metrics Braze returned that this tap does not document as columns.",
)


def key(name: str, description: str) -> th.Property:
    """A primary-key column: a string that is never null."""
    return th.Property(name, th.StringType, required=True, description=description)


def text(name: str, description: str) -> th.Property:
    return th.Property(name, th.StringType, description=description)


def time_column(unit: Unit) -> th.Property:
    """`time`: a date for day series, a datetime with its offset for hour series."""
    if unit == "day":
        return th.Property(
            "time",
            th.DateType,
            required=True,
            description="The day (company time zone) this row counts.",
        )
    return th.Property(
        "time",
        th.DateTimeType,
        required=True,
        description="Start of the hour (company time zone, with its offset) this row counts.",
    )


def local_time_columns(unit: Unit) -> tuple[th.Property, ...]:
    """`date` and `hour` of hour series: the bucket's local day and hour, as loaded.

    Loaders store an hour's `time` as a UTC instant (its offset dropped), so the
    company's day cannot be read back from it; these columns keep it, and group and
    join with the `time` of day series.
    """
    if unit == "day":
        return ()
    return (
        th.Property(
            "date",
            th.DateType,
            required=True,
            description="The day (company time zone) of this row's hour: the `time` of "
            "the day series it adds up to.",
        ),
        th.Property(
            "hour",
            th.IntegerType(minimum=0, maximum=23),
            required=True,
            description="The hour of the day (company time zone), 0-23. On the day "
            "clocks go back, two rows share an hour; on the day they go forward, one is "
            "missing.",
        ),
    )


# Integer columns declare the 64-bit range: a loader that sizes its integer types by
# `maximum` (target-duckdb makes an unbounded integer a 128-bit HUGEINT) then makes
# them BIGINT, the type every warehouse and client reads.
INT64_MAX = 2**63 - 1


def count_type() -> th.IntegerType:
    return th.IntegerType(maximum=INT64_MAX)


def metric_columns(typed: Mapping[str, str]) -> list[th.Property]:
    columns = []
    for name, kind in typed.items():
        jtype = th.NumberType if kind == "number" else count_type()
        columns.append(th.Property(name, jtype))
    return columns


def axis_column(axis: Axis) -> th.Property:
    """The key column of an endpoint's axis (canvas_id, app_id, ...)."""
    return key(axis.column, axis.description)


def schema(*properties: th.Property) -> dict:
    return th.PropertiesList(*properties).to_dict()
