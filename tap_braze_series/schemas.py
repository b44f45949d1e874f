"""Shared schema pieces: identity columns, time columns, metric columns."""

from __future__ import annotations

from collections.abc import Mapping

from singer_sdk import typing as th

from tap_braze_series.shapes import CAMPAIGN_METRICS, CANVAS_STAT_METRICS, MESSAGE_METRICS
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


def metric_columns(typed: Mapping[str, str]) -> list[th.Property]:
    columns = []
    for name, kind in typed.items():
        jtype = th.NumberType if kind == "number" else th.IntegerType
        columns.append(th.Property(name, jtype))
    return columns


CANVAS_ID = key("canvas_id", "Canvas API identifier.")
CANVAS_NAME = text("canvas_name", "Canvas name as Braze returned it with the series.")
CAMPAIGN_ID = key("campaign_id", "Campaign API identifier.")
APP_ID = key("app_id", "App API identifier, or '*' for the series of all apps.")

CANVAS_STAT_COLUMNS = metric_columns(CANVAS_STAT_METRICS)
MESSAGE_COLUMNS = metric_columns(MESSAGE_METRICS)
CAMPAIGN_COLUMNS = metric_columns(CAMPAIGN_METRICS)


def schema(*properties: th.Property) -> dict:
    return th.PropertiesList(*properties).to_dict()
