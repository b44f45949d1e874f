"""tap-braze-series: settings, the stream list, and the command-line entry point."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path, PurePath
from typing import Any, ClassVar

import simplejson
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from typing_extensions import override

from tap_braze_series import shapes
from tap_braze_series.client import BrazeClient, BrazeError
from tap_braze_series.config import CONFIG_SCHEMA, Settings, SettingsError
from tap_braze_series.endpoints import DETAILS_PATHS, LISTS
from tap_braze_series.entities import EntityDirectory, entity_id
from tap_braze_series.feed import Family, Partition
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.state import StateError, validate_state
from tap_braze_series.streams import ENTITY_STREAMS, SERIES, SeriesSpec, SeriesStream
from tap_braze_series.windows import EPSILON, Bucket, Unit, Window, bucket_of, plan_windows
from tap_braze_series.writer import StateFlushingWriter

logger = logging.getLogger("tap-braze-series")

ALL = "*"  # app_id / product of the series over all apps / products


class Runtime:
    """What every stream of one run shares: settings, client, entities, thread pool."""

    def __init__(
        self,
        settings: Settings,
        streams_by_path: Mapping[str, list[str]] | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.settings = settings
        self.tz = settings.timezone
        self.now = now or dt.datetime.now(dt.UTC)
        self.governor = RateGovernor(settings.max_requests_per_hour)
        self.client = BrazeClient(
            api_url=settings.api_url,
            api_key=settings.api_key,
            timeout=settings.request_timeout,
            governor=self.governor,
            max_retries=settings.max_retries,
            backoff_base=settings.retry_backoff_seconds,
            # The workers, and the main thread that lists entities.
            connections=settings.max_workers + 1,
            streams_by_path=streams_by_path,
        )
        self.directory = EntityDirectory(self.client, settings)
        self._executor: ThreadPoolExecutor | None = None
        self._partition_count: int | None = None
        self._bounds: dict[str, tuple[Bucket, Bucket] | None] = {}
        self.families: dict[str, Family] = {}

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.max_workers, thread_name_prefix="braze"
            )
        return self._executor

    def fetch(self, path: str, params: dict[str, Any]) -> Mapping[str, Any]:
        return self.client.get(path, params).body

    # Time range of the run, the same for every partition but the bookmarks.

    def bounds(self, unit: Unit) -> tuple[Bucket, Bucket] | None:
        """(first, last) bucket of the run, or None for an empty range.

        The same for every partition (only bookmarks differ), so it is derived once
        per unit rather than for every member of every partition.
        """
        if unit not in self._bounds:
            start = self.settings.start_instant()
            end = self.settings.end_instant(self.now)
            self._bounds[unit] = (
                (bucket_of(start, unit, self.tz), bucket_of(end - EPSILON, unit, self.tz))
                if start < end
                else None
            )
        return self._bounds[unit]

    def first_bucket(self, unit: Unit) -> Bucket | None:
        bounds = self.bounds(unit)
        return bounds[0] if bounds else None

    def last_bucket(self, unit: Unit) -> Bucket | None:
        bounds = self.bounds(unit)
        return bounds[1] if bounds else None

    def plan(self, spec: SeriesSpec, starts: Mapping[str, Bucket]) -> list[Window]:
        last = self.last_bucket(spec.unit)
        if last is None or not starts:
            return []
        return plan_windows(
            min(starts.values()), last, spec.unit, spec.endpoint.max_length, self.tz
        )

    def partition_count(self) -> int:
        if self._partition_count is None:
            # Only families that sync this run: listing the others would cost requests.
            self._partition_count = sum(
                len(family.partitions())
                for family in self.families.values()
                if any(member.selected for member in family.members)  # type: ignore[attr-defined]
            )
        return self._partition_count

    # Partitions: which entities (and apps) each endpoint is read for.

    def apps(self) -> list[str]:
        return [ALL, *self.settings.app_ids]

    def partitions(self, spec: SeriesSpec) -> list[Partition]:
        endpoint = spec.endpoint
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (context, params)
        if endpoint.entity == "segments":
            for segment in self.directory.entities("segments"):
                segment_id = entity_id("segments", segment)
                if segment.get("analytics_tracking_enabled") is False:
                    logger.info(
                        "Segment %s (%s) has analytics tracking disabled: it has no size "
                        "series, so %s skips it.",
                        segment_id,
                        segment.get("name"),
                        spec.name,
                    )
                    continue
                rows.append(({"segment_id": segment_id}, {"segment_id": segment_id}))
        elif endpoint.entity in ("canvases", "campaigns"):
            key = endpoint.id_param or ""
            for identifier in self.directory.ids(endpoint.entity):
                rows.append(({key: identifier}, {key: identifier}))
        elif endpoint.entity == "events":
            for name in self.directory.ids("events"):
                for app in self.apps():
                    rows.append(
                        (
                            {"event_name": name, "app_id": app},
                            {"event": name, "app_id": None if app == ALL else app},
                        )
                    )
        elif endpoint.entity == "products":
            products = [ALL]
            if self.settings.entity_filters.get("products"):
                products += self.directory.ids("products")
            for product in products:
                for app in self.apps():
                    rows.append(
                        (
                            {"product": product, "app_id": app},
                            {
                                "product": None if product == ALL else product,
                                "app_id": None if app == ALL else app,
                            },
                        )
                    )
        else:
            for app in self.apps():
                rows.append(({"app_id": app}, {"app_id": None if app == ALL else app}))
        return [
            Partition(index=i, context=context, params=params)
            for i, (context, params) in enumerate(rows)
        ]

    def params(
        self, spec: SeriesSpec, partition: Partition, window: Window, selected: set[str]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            **partition.params,
            "length": window.length,
            "ending_at": window.ending_at,
        }
        if len(spec.endpoint.units) > 1:
            params["unit"] = spec.unit
        if spec.family == "canvas":
            # Breakdowns cost Braze work and bytes: ask only for what a selected stream uses.
            if "canvas_variant_data_series" in selected:
                params["include_variant_breakdown"] = True
            if selected & {"canvas_step_data_series", "canvas_step_message_data_series"}:
                params["include_step_breakdown"] = True
                params["include_deleted_step_data"] = True
        return params


class TapBrazeSeries(Tap):
    """Singer tap for Braze's time-series analytics exports."""

    name = "tap-braze-series"
    package_name = "tap-braze-series"
    config_jsonschema = CONFIG_SCHEMA
    # Primary keys depend on the settings (app_ids), so discovery reads them.
    dynamic_catalog = True
    message_writer_class = StateFlushingWriter
    message_writer: StateFlushingWriter
    # BATCH is left out: series streams emit per-partition records and state, which
    # the SDK's batch path would bypass.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *, state: Any = None, **kwargs: Any) -> None:
        # The SDK reads a string as the path of a state file: a JSON state holding a
        # string (or a list) is not one, and must not reach the SDK as such.
        if (
            state is not None
            and not isinstance(state, dict | PurePath)
            and not (isinstance(state, str) and Path(state).is_file())
        ):
            validate_state(state)
        super().__init__(state=state, **kwargs)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Our own checks first: they name the setting, say how to fix it and never
        # print a value (the SDK's schema errors print values, the API key included).
        try:
            settings = Settings.parse(self._config)
        except SettingsError as exc:
            if raise_errors:
                raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
            return [str(exc)]
        # The SDK then checks its built-in settings (stream maps, flattening, ...) on
        # a copy whose own settings carry their parsed values: numbers from
        # environment variables arrive as strings and are fine.
        original = self._config
        self._config = {**original, **settings.typed_values(original)}
        try:
            return super()._validate_config(raise_errors=raise_errors)
        finally:
            self._config = original

    @cached_property
    def runtime(self) -> Runtime:
        try:
            settings = Settings.parse(self.config)
        except SettingsError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        return Runtime(settings, streams_by_path())

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        validate_state(state)
        super().load_state(state)

    @override
    def load_streams(self) -> list[Stream]:
        # The SDK syncs streams by name. A family's members take the places its names
        # give them, in the family's own order (most rows first, see streams.SERIES):
        # the first to sync drives the requests, the others wait in its spool.
        streams = super().load_streams()
        for family in self.runtime.families.values():
            names = {member.name for member in family.members}
            places = [i for i, stream in enumerate(streams) if stream.name in names]
            by_name = {streams[i].name: streams[i] for i in places}
            ordered = [by_name[m.name] for m in family.members if m.name in by_name]
            for place, stream in zip(places, ordered, strict=True):
                streams[place] = stream
        return streams

    @override
    def discover_streams(self) -> list[Stream]:
        runtime = self.runtime
        streams: list[Stream] = [cls(tap=self) for cls in ENTITY_STREAMS]
        series = [SeriesStream(self, spec) for spec in SERIES]
        by_family: dict[str, list[SeriesStream]] = {}
        for stream in series:
            by_family.setdefault(stream.spec.family, []).append(stream)
        for name, members in by_family.items():
            spec = members[0].spec
            family = Family(
                name=name,
                path=spec.endpoint.path,
                members=members,
                partitions=lambda spec=spec: runtime.partitions(spec),
                plan=lambda _partition, starts, spec=spec: runtime.plan(spec, starts),
                params=lambda partition, window, selected, spec=spec: runtime.params(
                    spec, partition, window, selected
                ),
                fetch=runtime.fetch,
                count_points=shapes.point_count,
                executor=runtime.executor,
                lookahead=2 * runtime.settings.max_workers,
            )
            runtime.families[name] = family
            for stream in members:
                stream.family = family
        return [*streams, *series]


def streams_by_path() -> dict[str, list[str]]:
    """Which streams read each path: what to deselect when the key lacks a permission."""
    result: dict[str, list[str]] = {}
    for cls in ENTITY_STREAMS:
        result.setdefault(LISTS[cls.kind].path, []).append(cls.name)
        if cls.kind in DETAILS_PATHS and cls.name.endswith("_details"):
            result.setdefault(DETAILS_PATHS[cls.kind], []).append(cls.name)
    for spec in SERIES:
        result.setdefault(spec.endpoint.path, []).append(spec.name)
        if spec.endpoint.entity and (spec.endpoint.entity != "products"):
            result.setdefault(LISTS[spec.endpoint.entity].path, []).append(spec.name)
    return result


def main() -> None:
    """Console entry point: the SDK's CLI, with user errors as one line and no traceback."""
    try:
        TapBrazeSeries.cli()
    except (BrazeError, StateError, SettingsError) as exc:
        _fail(str(exc))
    except ConfigValidationError as exc:
        _fail("; ".join(exc.errors) if exc.errors else str(exc))
    except (json.JSONDecodeError, simplejson.JSONDecodeError) as exc:
        _fail(f"an input file (--config, --state or --catalog) is not valid JSON: {exc}")


def _fail(message: str) -> None:
    print(f"tap-braze-series: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
