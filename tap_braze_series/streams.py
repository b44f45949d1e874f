"""Stream classes: entity lists (full table) and one generic series stream.

Every series stream is an instance of `SeriesStream` configured by a
`SeriesStreamSpec` of catalog.SERIES: the endpoint it reads (see endpoints.py),
its unit, its identity columns, its metric columns and the function that
flattens a response into its rows. Streams that one request serves share a
`family` (see feed.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from singer_sdk import Stream, Tap, metrics
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.metrics import Metric, Tag
from singer_sdk.singerlib import SelectionMask
from typing_extensions import override

from tap_braze_series import schemas as sc
from tap_braze_series import sdk, shapes
from tap_braze_series.catalog import SERIES, SeriesStreamSpec
from tap_braze_series.client import BrazeError
from tap_braze_series.config import Settings
from tap_braze_series.endpoints import (
    CAMPAIGN_DETAILS,
    CANVAS_DETAILS,
    LISTS,
    Axis,
    DetailsEndpoint,
)
from tap_braze_series.feed import Family, Partition, PlannedPartition
from tap_braze_series.progress import EndpointKey, StreamTally
from tap_braze_series.runtime import Runtime
from tap_braze_series.state import REPLICATION_KEY, PartitionedStateManager, parse_bookmark
from tap_braze_series.windows import (
    Bucket,
    Window,
    bucket_end,
    format_bucket,
    lookback_start,
    parse_time,
)
from tap_braze_series.writer import StateFlushingWriter


class RunningTap(Protocol):
    """What a stream needs of its tap: the run's runtime and message writer."""

    runtime: Runtime
    message_writer: StateFlushingWriter


def _running(tap: Tap) -> RunningTap:
    return tap  # type: ignore[return-value]


class BrazeStream(Stream):
    """Base of every stream: access to the run's shared client and settings."""

    # Records are built with exact types already; conformance would only cost time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    _pass_through_mask: SelectionMask | None = None
    _pass_through: bool = False

    @property
    def runtime(self) -> Runtime:
        return _running(self._tap).runtime

    @override
    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        # A BrazeError is not unhandled: the run stops with the tap's own error line,
        # which says what is wrong. The SDK's line before it would only mislead.
        if message == sdk.UNHANDLED_ERROR and isinstance(sys.exc_info()[1], BrazeError):
            return
        super().log(message, *args, level=level, **kwargs)

    def records_pass_through(self) -> bool:
        """Whether the SDK's per-record steps would leave every record as it is.

        They do when every property is selected (nothing to pop), conformance is off
        and the only stream map is the identity (no alias, filter, flattening). The
        SDK still runs each step for every record: a third of a sync's CPU for
        hourly series, spent on no change.
        """
        mask = self.mask
        if mask is not self._pass_through_mask:  # selection changed (or first call)
            maps = self.stream_maps
            self._pass_through = (
                self.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
                and len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and not maps[0].flattening_enabled
                and maps[0].stream_alias == self.name
                and all(mask.values())
            )
            self._pass_through_mask = mask
        return self._pass_through

    def counted_endpoint(self) -> EndpointKey:
        """The endpoint whose requests the run's summary counts for this stream."""
        raise NotImplementedError

    @override
    def get_record_counter(
        self,
        *,
        endpoint: str | None = None,
        log_interval: float = metrics.DEFAULT_LOG_INTERVAL,
    ) -> metrics.Counter:
        tags = {Tag.STREAM: self.name}
        if endpoint:
            tags[Tag.ENDPOINT] = endpoint
        return sdk.PartitionRecordCounter(
            Metric.RECORD_COUNT, tags, tally=self.tally, log_interval=log_interval
        )

    @override
    def get_sync_timer(self) -> metrics.Timer:
        return sdk.StreamSyncTimer(Metric.SYNC_DURATION, {Tag.STREAM: self.name})

    @cached_property
    def tally(self) -> StreamTally:
        """What this stream emitted this run (the summary lists it once it syncs)."""
        return self.runtime.report.stream(self.name, self.counted_endpoint())

    @override
    def _write_record_message(self, record: dict[str, Any]) -> None:
        if type(record) is shapes.ZeroRow and not self.runtime.settings.zero_rows:
            return  # a 0 Braze left out, not written; the bookmark still passes it
        tally = self.tally
        tally.records += 1
        tally.latest = record
        if not self.records_pass_through():
            super()._write_record_message(record)
            return
        # What the SDK's path writes for such a stream, without the steps that change
        # nothing.
        sdk.write_unchanged_record(self, _running(self._tap).message_writer, record)


# --- entity streams ----------------------------------------------------------------


class EntityStream(BrazeStream):
    """A full-table list of one kind of entity."""

    kind: str
    primary_keys = ("id",)
    replication_key = None

    def to_record(self, item: Any) -> dict[str, Any] | None:
        return dict(item) if isinstance(item, Mapping) else None

    @override
    def counted_endpoint(self) -> EndpointKey:
        return (LISTS[self.kind].path, None)

    @override
    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        _ = self.tally  # listed in the summary, even with no record
        for item in self.runtime.directory.entities(self.kind):
            record = self.to_record(item)
            if record is not None:
                yield record


TAGS = th.Property("tags", th.ArrayType(th.StringType))


def _listed_entity_schema(noun: str, *columns: th.Property) -> dict:
    """A list item of canvases, campaigns or segments: its id, name, `columns`, tags."""
    return sc.schema(
        sc.key("id", f"{noun} API identifier."),
        sc.text("name", f"{noun} name."),
        *columns,
        TAGS,
    )


class CanvasesStream(EntityStream):
    name = "canvases"
    kind = "canvases"
    schema = _listed_entity_schema("Canvas", th.Property("last_edited", th.DateTimeType))


class CampaignsStream(EntityStream):
    name = "campaigns"
    kind = "campaigns"
    schema = _listed_entity_schema(
        "Campaign",
        th.Property("is_api_campaign", th.BooleanType),
        th.Property("last_edited", th.DateTimeType),
    )


class SegmentsStream(EntityStream):
    name = "segments"
    kind = "segments"
    schema = _listed_entity_schema(
        "Segment",
        th.Property(
            "analytics_tracking_enabled",
            th.BooleanType,
            description="Only segments with analytics tracking have a size series.",
        ),
    )


class NamesStream(EntityStream):
    """A list of names (events, products): one row per name, its primary key."""

    @override
    def to_record(self, item: Any) -> dict[str, Any] | None:
        name = LISTS[self.kind].item_id(item)
        return {self.primary_keys[0]: name} if name else None


class EventsStream(NamesStream):
    name = "events"
    kind = "events"
    primary_keys = ("name",)
    schema = sc.schema(sc.key("name", "Custom event name."))


class ProductsStream(NamesStream):
    name = "products"
    kind = "products"
    primary_keys = ("product_name",)
    schema = sc.schema(sc.key("product_name", "Product name (product_id of purchases)."))


# --- dimension (details) streams --------------------------------------------------

OBJECTS = th.ArrayType(th.ObjectType(additional_properties=True))
STRINGS = th.ArrayType(th.StringType)
EXTRA = th.Property(
    "extra",
    th.ObjectType(additional_properties=True),
    description="Fields Braze returned that this tap does not document as columns.",
)


def _id_list(entries: Any, id_field: str) -> list[dict[str, Any]] | None:
    """A map keyed by ids as a list of objects carrying the id: warehouse-friendly."""
    if not isinstance(entries, Mapping):
        return entries if isinstance(entries, list) else None
    return [
        {id_field: key, **(value if isinstance(value, Mapping) else {"value": value})}
        for key, value in entries.items()
    ]


class DetailsStream(BrazeStream):
    """One /*/details row per canvas or campaign: names and structure to join series to."""

    endpoint: DetailsEndpoint
    replication_key = None
    columns: tuple[str, ...]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.primary_keys = (cls.endpoint.entity.column,)  # the entity's axis column

    def flatten(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {name: body.get(name) for name in self.columns}

    @override
    def counted_endpoint(self) -> EndpointKey:
        return (self.endpoint.path, None)

    def __init__(self, tap: Tap, *args: Any, **kwargs: Any) -> None:
        super().__init__(tap, *args, **kwargs)
        # The series of this kind ask these details for creation days: they share them.
        self.runtime.details_streams[self.endpoint.kind] = self

    @override
    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        _ = self.tally  # listed in the summary, even with no record
        runtime = self.runtime
        path = self.endpoint.path
        kind = self.endpoint.kind
        ids = runtime.directory.ids(kind)
        # Answers the series already asked (for creation days) are not asked again.
        kept = runtime.kept_details(kind)
        asked = iter(runtime.read_details(self.endpoint, [i for i in ids if i not in kept]))
        for entity in ids:
            response = kept.pop(entity, None)
            if response is None:
                _asked, response = next(asked)
            body = response.body
            runtime.note_details(kind, entity, body)
            if body.get("message") != "success":
                self.logger.warning(
                    "Skipping %s for %s: Braze answered message=%r.",
                    path,
                    entity,
                    body.get("message"),
                )
                continue
            record = self.flatten(body)
            record[self.endpoint.entity.column] = entity
            known = {*self.columns, "message"}
            record["extra"] = {k: v for k, v in body.items() if k not in known} or None
            yield record


DETAIL_COMMON = (
    sc.text("name", "Name."),
    sc.text("description", "Description."),
    th.Property("created_at", th.DateTimeType),
    th.Property("updated_at", th.DateTimeType),
    th.Property("archived", th.BooleanType),
    th.Property("draft", th.BooleanType),
    th.Property("enabled", th.BooleanType),
    sc.text("schedule_type", "How it is scheduled."),
    th.Property("channels", STRINGS),
    th.Property("tags", STRINGS),
    th.Property("teams", STRINGS),
    th.Property("conversion_behaviors", OBJECTS),
)


class CanvasDetailsStream(DetailsStream):
    name = "canvas_details"
    endpoint = CANVAS_DETAILS
    columns = (
        *(p.name for p in DETAIL_COMMON),
        "first_entry",
        "last_entry",
        "variants",
        "steps",
    )
    schema = sc.schema(
        sc.axis_column(CANVAS_DETAILS.entity),
        *DETAIL_COMMON,
        th.Property("first_entry", th.DateTimeType),
        th.Property("last_entry", th.DateTimeType),
        th.Property("variants", OBJECTS, description="Variants: id, name, first steps."),
        th.Property(
            "steps",
            OBJECTS,
            description="Steps: id, name, type, channels, next_step_ids, and `messages` as a "
            "list of objects with their `message_id`.",
        ),
        EXTRA,
    )

    @override
    def flatten(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = super().flatten(body)
        steps = record.get("steps")
        if isinstance(steps, list):
            record["steps"] = [
                {**step, "messages": _id_list(step.get("messages"), "message_id")}
                if isinstance(step, Mapping)
                else step
                for step in steps
            ]
        return record


class CampaignDetailsStream(DetailsStream):
    name = "campaign_details"
    endpoint = CAMPAIGN_DETAILS
    columns = (*(p.name for p in DETAIL_COMMON), "first_sent", "last_sent", "messages")
    schema = sc.schema(
        sc.axis_column(CAMPAIGN_DETAILS.entity),
        *DETAIL_COMMON,
        th.Property("first_sent", th.DateTimeType),
        th.Property("last_sent", th.DateTimeType),
        th.Property(
            "messages",
            OBJECTS,
            description="Message variations as a list of objects with their "
            "`message_variation_id` (the variation_api_id of campaign_message_data_series).",
        ),
        EXTRA,
    )

    @override
    def flatten(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = super().flatten(body)
        record["messages"] = _id_list(record.get("messages"), "message_variation_id")
        return record


ENTITY_STREAMS: tuple[type[EntityStream] | type[DetailsStream], ...] = (
    CanvasesStream,
    CampaignsStream,
    SegmentsStream,
    EventsStream,
    ProductsStream,
    CanvasDetailsStream,
    CampaignDetailsStream,
)


@dataclass(frozen=True, slots=True)
class StreamReads:
    """The endpoints one stream reads, from the declarations (endpoints.py, catalog.py)."""

    stream: str
    list_kind: str | None = None  # the entity list it reads or fans out over
    axis: Axis | None = None  # the series' axis along that list (its parameter, skip rule)
    series: SeriesStreamSpec | None = None
    details: DetailsEndpoint | None = None  # one details request per listed entity
    named_lists: tuple[str, ...] = ()  # lists a setting's values are checked against

    def paths(self) -> list[str]:
        """Every path the stream reads (what to deselect when the key lacks one)."""
        lists = [LISTS[kind].path for kind in (self.list_kind, *self.named_lists) if kind]
        if self.series is not None:
            return [self.series.endpoint.path, *lists]
        if self.details is not None:
            return [*lists, self.details.path]
        return lists


def _series_reads(spec: SeriesStreamSpec, settings: Settings | None) -> StreamReads:
    axes = spec.endpoint.axes
    # The axis whose values are listed entities; an axis with a row over all values
    # (apps, products) reads its list only for the values a setting names.
    listed = next((a for a in axes if a.kind and not a.all_row), None)
    named = tuple(
        a.kind
        for a in axes
        if a.kind and a.all_row and a.setting and settings and settings.ids(a.setting)
    )
    return StreamReads(
        spec.name,
        list_kind=listed.kind if listed else None,
        axis=listed,
        series=spec,
        named_lists=named,
    )


def stream_reads(settings: Settings | None = None) -> dict[str, StreamReads]:
    """Stream name -> what it reads, for every stream, in catalog order.

    A list that only a setting's values need (product_names, series_segment_ids) is
    read by the series along that setting's axis only when it names values.
    """
    reads: list[StreamReads] = []
    for cls in ENTITY_STREAMS:
        if issubclass(cls, DetailsStream):
            reads.append(StreamReads(cls.name, cls.endpoint.kind, details=cls.endpoint))
        else:
            reads.append(StreamReads(cls.name, cls.kind))
    reads += [_series_reads(spec, settings) for spec in SERIES]
    return {r.stream: r for r in reads}


# --- series streams ---------------------------------------------------------------


class SeriesStream(BrazeStream):
    """One Braze series as rows keyed by identity and `time`, bookmarked per partition."""

    replication_key = REPLICATION_KEY
    is_sorted = True  # bookmarks advance record by record: resumable after a kill
    check_sorted = False  # the lookback re-reads older buckets on purpose

    def __init__(self, tap: Tap, spec: SeriesStreamSpec) -> None:
        self.spec = spec
        super().__init__(tap, schema=self._schema(spec, tap), name=spec.name)
        self.family: Family  # attached by Runtime.add_families once every member exists
        key_names = [p.name for p in spec.identity]
        settings = _running(tap).runtime.settings
        key_names += [column for column, setting in spec.setting_keys if settings.ids(setting)]
        self.primary_keys = [*key_names, "time", *spec.extra_keys]

    @staticmethod
    def _schema(spec: SeriesStreamSpec, tap: Tap) -> dict:
        return sc.schema(
            *spec.identity,
            sc.time_column(spec.unit),
            *sc.local_time_columns(spec.unit),
            *spec.columns,
        )

    @property
    @override
    def state_manager(self) -> sdk.StreamStateManager:
        return sdk.own_state_manager(self, self._new_state_manager)

    def _new_state_manager(self, tap_state: dict) -> PartitionedStateManager:
        unit, tz = self.spec.unit, self.runtime.tz
        return PartitionedStateManager(
            order=lambda value: shapes.bucket_key(value, unit, tz),
            tap_name=self.tap_name,
            stream_name=self.name,
            tap_state=tap_state,
            state_partitioning_keys=self.state_partitioning_keys,
            is_sorted=self.is_sorted,
            check_sorted=self.check_sorted,
        )

    @cached_property
    def STATE_MSG_FREQUENCY(self) -> int:  # type: ignore[override]
        # Every STATE message carries the whole state: space them by its size so that
        # the bytes spent on state stay proportional to the records, whatever the
        # number of partitions. The state holds the partitions read from the input
        # state and those of the streams synced so far; this stream's own are added.
        # (Counting the families still to sync would list every entity of the
        # workspace before the first record.)
        bookmarks = sdk.tap_state(self).get("bookmarks") or {}
        known = sum(len(entry.get("partitions") or ()) for entry in bookmarks.values())
        return max(10_000, 10 * (known + len(self.family.partitions())))

    @property
    @override
    def partitions(self) -> list[dict] | None:
        return [dict(p.context) for p in self.family.partitions()]

    @override
    def counted_endpoint(self) -> EndpointKey:
        return (self.spec.endpoint.path, self.spec.unit_param)

    @cached_property
    @override
    def tally(self) -> StreamTally:
        unit, tz = self.spec.unit, self.runtime.tz
        return self.runtime.report.stream(
            self.name,
            self.counted_endpoint(),
            family=self.spec.family,
            order=lambda value: shapes.bucket_key(value, unit, tz),
        )

    @override
    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        tally = self.tally
        if not context:
            return
        self.runtime.report_range()
        family = self.family
        family.start()
        tally.begin_partition()
        first: dict[str, Any] | None = None
        complete = False
        try:
            # At the family's first partition: its plan, and the creation days it needs.
            self.runtime.family_started(family, self.spec)
            records = iter(family.records(self, context))
            first = next(records, None)
            if first is not None:
                yield first
                yield from records
            complete = True
        except BrazeError:
            # The run stops here: hand the target the progress made so far, so that
            # the next run does not read finished partitions again. Bookmarks only
            # ever cover emitted records, so this STATE is as valid as any other.
            sdk.write_state_message(self)
            raise
        finally:
            tally.end_partition(first, complete=complete)

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Mapping[str, Any] | None
    ) -> Iterable[dict[str, Any] | None]:
        return ()  # series streams have no children; skip the per-record default

    def sync_steps(self) -> Iterator[dict[str, Any]]:
        """What `sync()` does for the whole stream, one record per step.

        For a member its family's driver follows (see Family.follow): the driver
        advances it as partitions end, and the tap runs what is left of it in the
        stream's turn. Streams that read no spool sync with `sync()`.
        """
        return sdk.stream_sync_steps(self)

    # Family member protocol.

    def partition_start(self, partition: Partition) -> Bucket | None:
        runtime = self.runtime
        unit = self.spec.unit
        first = runtime.first_bucket(unit)
        last = runtime.last_bucket(unit)
        if first is None or last is None:
            return None
        bucket = self.bookmark_bucket(partition)
        # A bookmark before the run's range re-reads nothing before it (and is not
        # moved back by the lookback, which could not even represent an ancient date).
        if bucket is not None and bucket >= first:
            first = max(
                first, lookback_start(bucket, runtime.settings.lookback_days, unit, runtime.tz)
            )
        elif bucket is None and (created := runtime.created(self.spec, partition)) is not None:
            # Braze answers zeros for the days before the entity existed: none is read.
            first = max(first, created)
        return first if first <= last else None

    def bookmark_bucket(self, partition: Partition) -> Bucket | None:
        """The last bucket a previous run emitted for this partition, if any."""
        manager: PartitionedStateManager = self.state_manager  # type: ignore[assignment]
        bookmark = manager.bookmark(partition.context)
        if bookmark is None:
            return None
        unit, tz = self.spec.unit, self.runtime.tz
        return parse_bookmark(
            bookmark, lambda v: parse_time(v, unit, tz), self.name, partition.context
        )

    def report_future_bookmarks(self) -> None:
        """Warn, once per run, of partitions whose bookmark is after the run's last bucket.

        Such a partition reads at most what its lookback reaches and its bookmark
        cannot move: a state from another clock, or an end_date before the bookmark.
        """
        runtime = self.runtime
        unit, tz = self.spec.unit, runtime.tz
        last = runtime.last_bucket(unit)
        if last is None:
            return
        manager: PartitionedStateManager = self.state_manager  # type: ignore[assignment]
        late = [
            (context, value)
            for context, value in manager.bookmarks()
            if parse_bookmark(value, lambda v: parse_time(v, unit, tz), self.name, context) > last
        ]
        if not late:
            return
        end = format_bucket(last, unit, tz)
        fix = (
            "Remove {which} from the state (or clear the state to backfill from start_date), "
            "or correct end_date or the system clock if they are wrong."
        )
        if len(late) == 1:
            [(context, value)] = late
            self.logger.warning(
                "Stream '%s', partition %s: its bookmark %s is after this run's end (%s), so "
                "it reads nothing past its lookback and its bookmark stays there. %s",
                self.name,
                context,
                value,
                end,
                fix.format(which="that bookmark"),
            )
            return
        examples = "; ".join(f"{context} at {value}" for context, value in late[:3])
        self.logger.warning(
            "Stream '%s': %d partitions have a bookmark after this run's end (%s), e.g. %s: "
            "they read nothing past their lookback and their bookmarks stay there. %s",
            self.name,
            len(late),
            end,
            examples,
            fix.format(which="those bookmarks"),
        )

    def read_points(
        self, body: Mapping[str, Any], window: Window, issues: shapes.Issues, where: str
    ) -> shapes.Points:
        """A response's points, one per bucket, in bucket order (see shapes.ordered_points)."""
        return shapes.ordered_points(
            self.spec.point_list(body), window, self.spec.unit, self.runtime.tz, issues, where
        )

    def last_bucket(self) -> Bucket | None:
        return self.runtime.last_bucket(self.spec.unit)

    def open_bucket(self) -> Bucket | None:
        """The run's last bucket when the run ends inside it (Braze may not have it yet)."""
        runtime = self.runtime
        unit = self.spec.unit
        last = runtime.last_bucket(unit)
        if last is None:
            return None
        end = runtime.settings.end_instant(runtime.now)
        return last if bucket_end(last, unit, runtime.tz) > end else None

    @property
    def omits_zero_buckets(self) -> bool:
        return self.spec.endpoint.omits_zero_buckets

    def zero_point(self, bucket: Bucket) -> dict[str, Any]:
        return self.spec.zero_point(bucket, self.runtime.tz)

    def restated_from(self) -> Bucket | None:
        runtime = self.runtime
        last = runtime.last_bucket(self.spec.unit)
        if last is None:
            return None
        return lookback_start(last, runtime.settings.lookback_days, self.spec.unit, runtime.tz)

    def shape(
        self,
        body: Mapping[str, Any],
        planned: PlannedPartition,
        window: Window,
        issues: shapes.Issues,
    ) -> Iterator[dict[str, Any]]:
        start = planned.starts.get(self.name)
        if start is None:
            return iter(())
        return self.spec.shaper(body, planned.partition, window, start, self.runtime.tz, issues)
