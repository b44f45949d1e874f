"""The description of one series stream: what the SERIES table (streams.py) holds.

It lives apart from the stream classes so that the run's shared machinery
(runtime.py) can read a stream's description without importing the streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from singer_sdk import typing as th

from tap_braze_series import shapes
from tap_braze_series.endpoints import CANVAS_SERIES, SeriesEndpoint
from tap_braze_series.feed import Partition
from tap_braze_series.windows import Bucket, Unit, Window, format_bucket

# Rows of one response: (body, partition, window, first bucket, time zone, issues) -> rows.
Shaper = Callable[
    [Mapping[str, Any], Partition, Window, Bucket, ZoneInfo, shapes.Issues],
    Iterator[dict[str, Any]],
]


@dataclass(frozen=True, slots=True)
class SeriesSpec:
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
        if self.endpoint is CANVAS_SERIES:
            return shapes.canvas_data(body)[1]
        return shapes.data_list(body)


def unit_param(spec: SeriesSpec) -> str | None:
    """The `unit` parameter a stream's requests carry (only where the endpoint has several)."""
    return spec.unit if len(spec.endpoint.units) > 1 else None
