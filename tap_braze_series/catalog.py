"""The series streams the tap offers: one `SeriesStreamSpec` per table of endpoints.py.

A simple series' stream follows from its endpoint's declaration alone (its axes'
columns, its value fields); a breakdown's (canvas, campaign) adds the key and
metric columns of `BREAKDOWNS` and the function that cuts its rows. The run's shared
machinery (runtime.py) reads these descriptions without importing the streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from singer_sdk import typing as th

from tap_braze_series import schemas as sc
from tap_braze_series import shapes
from tap_braze_series.endpoints import (
    ALL,
    CAMPAIGN_METRICS,
    CANVAS_STAT_METRICS,
    MESSAGE_METRICS,
    SERIES_ENDPOINTS,
    SeriesEndpoint,
    SeriesTable,
    request_unit,
)
from tap_braze_series.feed import Partition
from tap_braze_series.windows import Bucket, Unit, Window, format_bucket

# Rows of one response: (body, partition, window, first bucket, time zone, issues) -> rows.
Shaper = Callable[
    [Mapping[str, Any], Partition, Window, Bucket, ZoneInfo, shapes.Issues],
    Iterator[dict[str, Any]],
]


@dataclass(frozen=True, slots=True)
class SeriesStreamSpec:
    """Everything that distinguishes one series stream from another."""

    name: str
    endpoint: SeriesEndpoint
    unit: Unit
    family: str
    identity: tuple[th.Property, ...]  # key columns before `time`
    columns: tuple[th.Property, ...]  # non-key columns
    shaper: Shaper
    extra_keys: tuple[str, ...] = ()  # key columns after `time`
    # (column, setting): the column joins the key when the setting names values (app_ids).
    setting_keys: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def zero_point(self, bucket: Bucket, tz: ZoneInfo) -> shapes.ZeroPoint:
        """The point Braze leaves out for a bucket whose count is 0 (count series only)."""
        zero = 0 if self.endpoint.value_kind == "integer" else 0.0
        return shapes.ZeroPoint(
            {
                "time": format_bucket(bucket, self.unit, tz),
                **dict.fromkeys(self.endpoint.value_fields, zero),
            }
        )

    def point_list(self, body: Mapping[str, Any]) -> list[Any]:
        """The list of points of one response (PayloadError if the body is malformed)."""
        return shapes.point_list(body, self.endpoint.points_at)

    @property
    def unit_param(self) -> Unit | None:
        """The `unit` parameter the stream's requests carry, if any."""
        return request_unit(self.endpoint, self.unit)


# Rows of one entity's response: (body, what the cut needs) -> rows.
Rows = Callable[[Mapping[str, Any], shapes.Cut], Iterator[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A table whose rows break each point down (by step, variant, channel, ...)."""

    rows: Rows  # shapes' function cutting one entity's rows from a response
    metrics: Mapping[str, str]  # the typed metric columns
    keys: tuple[th.Property, ...] = ()  # key columns after the entity's, before `time`
    extra_keys: tuple[th.Property, ...] = ()  # key columns after `time`
    texts: tuple[th.Property, ...] = ()  # names Braze returns with the rows


def _breakdown(breakdown: Breakdown, column: str) -> Shaper:
    rows, typed = breakdown.rows, breakdown.metrics

    def shape(body, partition, window, start, tz, issues):  # noqa: ANN001
        cut = shapes.Cut(window, start, tz, column, partition.context[column], issues, typed)
        return rows(body, cut)

    return shape


# Canvas answers name their canvas: every canvas row carries it.
CANVAS_NAME = sc.text("canvas_name", "Canvas name as Braze returned it with the series.")
STEP_ID = sc.key("step_id", "Canvas step API identifier.")
STEP_NAME = sc.text("step_name", "Step name.")

#: Table name -> how its rows break each point down.
BREAKDOWNS: dict[str, Breakdown] = {
    "canvas_step_message_data_series": Breakdown(
        shapes.canvas_step_message_records,
        MESSAGE_METRICS,
        keys=(STEP_ID,),
        extra_keys=(
            sc.key("channel", "Messaging channel (email, sms, ios_push, webhook, ...)."),
            th.Property(
                "message_index",
                sc.count_type(),
                required=True,
                description="Position of the message entry in the channel's list.",
            ),
        ),
        texts=(CANVAS_NAME, STEP_NAME),
    ),
    "canvas_step_data_series": Breakdown(
        shapes.canvas_step_records,
        CANVAS_STAT_METRICS,
        keys=(STEP_ID,),
        texts=(CANVAS_NAME, STEP_NAME),
    ),
    "canvas_variant_data_series": Breakdown(
        shapes.canvas_variant_records,
        CANVAS_STAT_METRICS,
        keys=(sc.key("variant_id", "Canvas variant API identifier."),),
        texts=(CANVAS_NAME, sc.text("variant_name", "Variant name.")),
    ),
    "canvas_data_series": Breakdown(
        shapes.canvas_total_records, CANVAS_STAT_METRICS, texts=(CANVAS_NAME,)
    ),
    "campaign_message_data_series": Breakdown(
        shapes.campaign_message_records,
        MESSAGE_METRICS,
        extra_keys=(
            sc.key("channel", "Messaging channel."),
            sc.key("variation_api_id", "Message variation API identifier (control groups too)."),
        ),
        texts=(sc.text("variation_name", "Variation name."),),
    ),
    "campaign_data_series": Breakdown(shapes.campaign_records, CAMPAIGN_METRICS),
}


def _simple(endpoint: SeriesEndpoint, unit: Unit) -> Shaper:
    columns = tuple(axis.column for axis in endpoint.axes)

    # A context without an axis's column is that axis's '*' row (see endpoints.Axis).
    def shape(body, partition, window, start, tz, issues):  # noqa: ANN001
        return shapes.simple_records(
            shapes.data_list(body),
            window,
            start,
            unit,
            tz,
            {column: partition.context.get(column, ALL) for column in columns},
            endpoint.value_fields,
            issues,
            endpoint.value_kind,
        )

    return shape


def _spec(endpoint: SeriesEndpoint, table: SeriesTable) -> SeriesStreamSpec:
    family = endpoint.family or table.name
    breakdown = BREAKDOWNS.get(table.name)
    if breakdown is not None:
        [entity] = endpoint.axes
        return SeriesStreamSpec(
            name=table.name,
            endpoint=endpoint,
            unit=table.unit,
            family=family,
            identity=(sc.axis_column(entity), *breakdown.keys),
            extra_keys=tuple(p.name for p in breakdown.extra_keys),
            columns=(
                *breakdown.extra_keys,
                *breakdown.texts,
                *sc.metric_columns(breakdown.metrics),
                sc.EXTRA_METRICS,
            ),
            shaper=_breakdown(breakdown, entity.column),
            description=table.description,
        )
    # The columns of the axes a setting adds (app_ids, series_segment_ids) are on every
    # row, and in the key when the setting is set.
    optional = [axis for axis in endpoint.axes if axis.key_when_set]
    values = sc.metric_columns({field: endpoint.value_kind for field in endpoint.value_fields})
    return SeriesStreamSpec(
        name=table.name,
        endpoint=endpoint,
        unit=table.unit,
        family=family,
        identity=tuple(sc.axis_column(a) for a in endpoint.axes if not a.key_when_set),
        columns=(*(sc.axis_column(axis) for axis in optional), *values),
        shaper=_simple(endpoint, table.unit),
        setting_keys=tuple((axis.column, axis.setting or "") for axis in optional),
        description=table.description,
    )


#: Every series stream, in catalog order: each endpoint's tables in its order.
SERIES: tuple[SeriesStreamSpec, ...] = tuple(
    _spec(endpoint, table) for endpoint in SERIES_ENDPOINTS for table in endpoint.tables
)
