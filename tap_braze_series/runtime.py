"""What every stream of one run shares: settings, client, entities, thread pool, families.

The tap builds one `Runtime` per run. It answers the questions a series family
asks (which partitions, which windows, which request parameters) from the
endpoint descriptions of endpoints.py and the settings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from tap_braze_series import stopping
from tap_braze_series.catalog import SeriesStreamSpec
from tap_braze_series.client import (
    BrazeAuthError,
    BrazeClient,
    BrazeError,
    BrazePermissionError,
    Response,
)
from tap_braze_series.config import Settings
from tap_braze_series.endpoints import ALL, Axis, DetailsEndpoint, series_params
from tap_braze_series.entities import SINGULAR, EntityDirectory, entity_id
from tap_braze_series.feed import Family, Member, Partition, fetch_ordered
from tap_braze_series.progress import Budget, RunReport, plural, pool_budget
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.windows import (
    EPSILON,
    Bucket,
    Unit,
    Window,
    bucket_of,
    parse_instant,
    plan_windows,
)

logger = logging.getLogger("tap-braze-series")


class SeriesMember(Member, Protocol):
    """A series stream, as the runtime sees it: a family member with its description."""

    spec: SeriesStreamSpec
    family: Family
    selected: bool

    def report_future_bookmarks(self) -> None:
        """Warn of partitions whose bookmark is after the run's end."""
        ...


class DetailsReader(Protocol):
    """A details stream, as the runtime sees it: whether it syncs this run."""

    selected: bool


class Runtime:
    """What every stream of one run shares: settings, client, entities, thread pool."""

    def __init__(
        self,
        settings: Settings,
        streams_by_path: Mapping[str, list[str]] | None = None,
        now: dt.datetime | None = None,
        stop: stopping.Stop | None = None,
    ) -> None:
        self.settings = settings
        self.tz = settings.timezone
        self.now = now or dt.datetime.now(dt.timezone.utc)
        # The console script's stop (signals, closed stdout), or one of this run's own.
        self.stop = stop or stopping.installed() or stopping.Stop()
        self.governor = RateGovernor(settings.max_requests_per_hour, stop=self.stop)
        self.client = BrazeClient(
            api_url=settings.api_url,
            api_key=settings.api_key,
            timeout=settings.request_timeout,
            governor=self.governor,
            max_retries=settings.max_retries,
            backoff_base=settings.retry_backoff_seconds,
            max_in_flight=settings.max_workers,
            streams_by_path=streams_by_path,
            stop=self.stop,
        )
        self.directory = EntityDirectory(self.client, settings)
        self.report = RunReport(
            interval=settings.progress_interval, tally=self.client.tally, budget=self.budget
        )
        self._executor: ThreadPoolExecutor | None = None
        self._bounds: dict[str, tuple[Bucket, Bucket] | None] = {}
        self._axis_values: dict[Axis, list[str]] = {}
        self.families: dict[str, Family] = {}
        self._series: list[SeriesMember] = []
        self._range_reported = False
        self._members: dict[str, list[SeriesMember]] = {}  # family -> its streams
        self._started: set[str] = set()  # families whose plan the governor has
        # Entities' creation days, per kind, learnt from their details (see created()).
        self.details_streams: dict[str, DetailsReader] = {}  # kind -> its details stream
        self._created: dict[str, dict[str, Bucket]] = {}
        self._details_kept: dict[str, dict[str, Response]] = {}  # for the details stream
        self._details_lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.max_workers, thread_name_prefix="braze"
            )
        return self._executor

    def fetch(self, path: str, params: dict[str, Any]) -> Response:
        return self.client.get(path, params)

    def reporting_fetch(self, family: str) -> Callable[[str, dict[str, Any]], Response]:
        """`fetch` for a family's requests, which counts them for its progress lines."""
        report = self.report

        def fetch(path: str, params: dict[str, Any]) -> Response:
            response = self.client.get(path, params)
            report.request_done(family)
            return response

        return fetch

    def add_families(self, streams: Sequence[SeriesMember]) -> None:
        """Group series streams into families (streams one request serves) and attach them."""
        self._series.extend(streams)
        by_family: dict[str, list[SeriesMember]] = {}
        for stream in streams:
            by_family.setdefault(stream.spec.family, []).append(stream)
        for name, members in by_family.items():
            spec = members[0].spec
            family = Family(
                name=name,
                path=spec.endpoint.path,
                members=members,
                partitions=partial(self.partitions, spec),
                plan=partial(self.windows_from, spec),
                params=partial(self.params, spec),
                fetch=self.reporting_fetch(name),
                executor=self.executor,
                workers=self.settings.max_workers,
                stop=self.stop,
            )
            self.families[name] = family
            self._members[name] = members
            for stream in members:
                stream.family = family

    def report_range(self) -> None:
        """Once per run, before its first series request: what it cannot read, and why."""
        if self._range_reported:
            return
        self._range_reported = True
        syncing = [member for member in self._series if member.selected]
        if syncing and all(self.bounds(member.spec.unit) is None for member in syncing):
            end = self.settings.end_instant(self.now)
            logger.warning(
                "Nothing to export: start_date %s is not before this run's end (%s, %s), so "
                "no series is read. Set start_date to the first day to export%s.",
                self.settings.start.isoformat(),
                end.astimezone(self.tz).isoformat(timespec="seconds"),
                "end_date" if self.settings.end is not None else "now",
                "" if self.settings.end is None else ", before end_date",
            )
            return
        for member in syncing:
            member.report_future_bookmarks()

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

    def windows_from(self, spec: SeriesStreamSpec, first: Bucket) -> list[Window]:
        """The windows from `first` to the run's last bucket: every partition is planned alike."""
        last = self.last_bucket(spec.unit)
        if last is None:
            return []
        return plan_windows(first, last, spec.unit, spec.endpoint.max_length, self.tz)

    # Creation days: Braze zero-fills a canvas's or campaign's series before it existed.

    def created(self, spec: SeriesStreamSpec, partition: Partition) -> Bucket | None:
        """The day the partition's entity was created, where its details told it.

        Asked for a member without a bookmark: it starts at the later of this day
        and start_date. None where it is not known (not worth a request, no
        permission, not in the answer): that member starts at start_date.
        """
        details = spec.endpoint.created_by
        if details is None or spec.unit != "day":
            return None
        axis = spec.endpoint.axes[0]
        entity = partition.context.get(axis.column)
        if not isinstance(entity, str):
            return None
        with self._details_lock:
            if details.kind not in self._created:
                self._created[details.kind] = self._learn_creation(spec, details)
            return self._created[details.kind].get(entity)

    def _learn_creation(
        self, spec: SeriesStreamSpec, details: DetailsEndpoint
    ) -> dict[str, Bucket]:
        """Ask the details of the entities whose creation day can save requests.

        Only where a request can save requests: a member without a bookmark would
        read from start_date, and the entity was last edited (created at the latest)
        late enough that starting at its creation could skip two windows or more, or
        one if the details stream syncs this run: it asks every entity's details
        anyway, so the answers asked here are kept for it, and cost nothing more.
        The others wait for the stream's turn: the first records come no later.
        """
        stream = self.details_streams.get(details.kind)
        shared = stream is not None and stream.selected
        family = self.families[spec.family]
        edited = {
            entity_id(details.kind, item): item.get("last_edited")
            for item in self.directory.entities(details.kind)
            if isinstance(item, Mapping)
        }
        column = spec.endpoint.axes[0].column
        saving = 1 if shared else 2  # windows a request must be able to save
        ids = [
            entity
            for partition in family.partitions()
            if isinstance(entity := partition.context.get(column), str)
            and self._creation_pays(spec, family, partition, edited.get(entity), saving)
        ]
        created: dict[str, Bucket] = {}
        kept: dict[str, Response] = {}
        unreadable: list[str] = []
        try:
            for entity, response in self.read_details(details, ids, tolerant=True):
                if not response.raw:  # no usable answer: read from start_date
                    unreadable.append(entity)
                    continue
                if shared:
                    kept[entity] = response
                day = self.creation_day(response.body)
                if day is None:
                    unreadable.append(entity)
                else:
                    created[entity] = day
        except BrazePermissionError:
            logger.warning(
                "The API key lacks the '%s' permission: every %s is read from start_date, "
                "without learning the day it was created (Braze answers zeros before it). "
                "Grant it to save those requests.",
                details.permission,
                SINGULAR[details.kind],
            )
            return {}
        if unreadable:
            logger.warning(
                "%s gave no usable created_at for %s (e.g. %s): read from start_date.",
                details.path,
                plural(len(unreadable), "entity", "entities"),
                ", ".join(unreadable[:3]),
            )
        if shared:
            self._details_kept[details.kind] = kept
        return created

    def _creation_pays(
        self,
        spec: SeriesStreamSpec,
        family: Family,
        partition: Partition,
        last_edited: Any,
        saving: int,
    ) -> bool:
        first, last = self.first_bucket(spec.unit), self.last_bucket(spec.unit)
        if first is None or last is None:
            return False
        selected = [m for m in family.members if m.selected]
        if all(m.bookmark_bucket(partition) is not None for m in selected):
            return False  # every member resumes from its bookmark
        # Created at the latest when last edited; without that day, as late as can be.
        latest = last
        if isinstance(last_edited, str):
            with contextlib.suppress(ValueError):
                edited = bucket_of(parse_instant(last_edited, self.tz), "day", self.tz)
                latest = min(max(first, edited), last)
        from_start = len(self.windows_from(spec, first))
        at_best = len(self.windows_from(spec, latest))
        return from_start - at_best >= saving

    def read_details(
        self, details: DetailsEndpoint, ids: Sequence[str], *, tolerant: bool = False
    ) -> Iterator[tuple[str, Response]]:
        """(entity, its details answer) in `ids` order, `max_workers` requests running.

        `tolerant`: an entity whose request fails (a 404 for a canvas deleted since the
        list, an answer that cannot be decoded, Braze unavailable) gets an empty answer
        (no `raw` bytes) instead of stopping the run; a rejected key or a missing
        permission still raises.
        """
        self.governor.plan(details.pool, len(ids))
        param = details.id_param

        def fetch(entity: str) -> Response:
            params = {param: entity}
            try:
                response = self.fetch(details.path, params)
                if tolerant:
                    _ = response.body  # decoded here, where a failure is this entity's
                return response
            except (BrazeAuthError, BrazePermissionError):
                raise
            except BrazeError:
                if not tolerant:
                    raise
                return Response(details.path, params, b"")

        return fetch_ordered(self.executor(), fetch, ids, self.settings.max_workers, self.stop)

    def creation_day(self, body: Mapping[str, Any]) -> Bucket | None:
        """The creation day, in the company time zone, a details answer tells."""
        value = body.get("created_at") if body.get("message") == "success" else None
        if not isinstance(value, str):
            return None
        try:
            return bucket_of(parse_instant(value, self.tz), "day", self.tz)
        except ValueError:
            return None

    def kept_details(self, kind: str) -> dict[str, Response]:
        """Details answers asked for the series' sake, handed once to the details stream."""
        with self._details_lock:
            return self._details_kept.pop(kind, {})

    def note_details(self, kind: str, entity: str, body: Mapping[str, Any]) -> None:
        """The details stream read an entity: the series need not ask its creation day."""
        day = self.creation_day(body)
        with self._details_lock:
            created = self._created.setdefault(kind, {})
            if day is not None:
                created[entity] = day

    def family_started(self, family: Family, spec: SeriesStreamSpec) -> None:
        """A family's first partition starts: its plan goes to the governor and progress lines.

        Once per family: the governor counts its requests down as they are sent.
        """
        if family.name in self._started:
            return
        self._started.add(family.name)
        planned = family.planned_requests()
        self.governor.plan(spec.endpoint.pool, planned)
        self.report.family_started(
            family.name,
            (spec.endpoint.path, spec.unit_param),
            spec.endpoint.pool,
            len(family.partitions()),
            planned,
        )

    def budget(self, pool: str) -> Budget:
        """The limit that caps a pool's request rate, for progress lines."""
        limit, remaining, _reset = self.governor.pool_snapshot(pool)
        return pool_budget(
            pool,
            max_requests_per_hour=self.settings.max_requests_per_hour,
            sent_last_hour=self.governor.sent_in_window(),
            pool_limit=limit,
            pool_remaining=remaining,
        )

    def log_costs(self) -> None:
        """Say, before the first request, what each setting that multiplies partitions costs.

        A setting that names apps, products or segments multiplies the partitions of
        the series read along its axis, and so their requests: one line per such
        setting, with the partitions of each stream and the requests of this run.
        """
        synced = [
            name for name, members in self._members.items() if any(m.selected for m in members)
        ]
        axes: dict[Axis, list[str]] = {}  # axis -> families read along it this run
        for name in synced:
            for axis in self._members[name][0].spec.endpoint.axes:
                if axis.setting and self.settings.ids(axis.setting):
                    axes.setdefault(axis, []).append(name)
        for axis, families in axes.items():
            values = self.axis_values(axis)
            named = [value for value in values if value != ALL]
            if not named:
                continue  # every value it names was skipped, with a warning each
            streams, total, extra = [], 0, 0
            for name in families:
                spec = self._members[name][0].spec
                plan = self.families[name].plan()
                factors = " x ".join(
                    f"{len(self.axis_values(a))} {a.column}" for a in spec.endpoint.axes
                )
                streams.append(f"{name} ({factors} = {len(plan)})")
                for planned in plan:
                    requests = len(planned.windows)
                    total += requests
                    if planned.partition.context.get(axis.column, ALL) != ALL:
                        extra += requests
            logger.info(
                "%s: %d %s values (%s) multiply the partitions of %s. This run: %d requests "
                "for these streams, %d of them for %s.",
                axis.setting,
                len(values),
                axis.column,
                ", ".join(values),
                ", ".join(streams),
                total,
                extra,
                ", ".join(named),
            )

    # Partitions: the values of each axis an endpoint declares, combined.

    def partitions(self, spec: SeriesStreamSpec) -> list[Partition]:
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = [({}, {})]  # (context, params)
        for axis in spec.endpoint.axes:
            values = self.axis_values(axis)
            rows = [
                (
                    context
                    if value == ALL and not axis.all_in_context
                    else {**context, axis.column: value},
                    params if value == ALL else {**params, axis.param: value},
                )
                for context, params in rows
                for value in values
            ]
        return [
            Partition(index=i, context=context, params=params)
            for i, (context, params) in enumerate(rows)
        ]

    def axis_values(self, axis: Axis) -> list[str]:
        """The values an axis takes this run, worked out (and logged) once per run."""
        if axis not in self._axis_values:
            self._axis_values[axis] = self._find_axis_values(axis)
        return self._axis_values[axis]

    def _find_axis_values(self, axis: Axis) -> list[str]:
        values = [ALL] if axis.all_row else []
        named = self.settings.ids(axis.setting) if axis.setting else ()
        if axis.kind is None:
            return [*values, *named]
        if axis.setting and not named:
            return values  # nothing named: the list need not be read
        skipped: list[str] = []
        skip = axis.skip
        for item in self.directory.entities(axis.kind, axis.setting):
            identifier = entity_id(axis.kind, item)
            if skip and skip.skips(item):
                skipped.append(f"{identifier} ({item.get('name')})")
                continue
            if identifier:
                values.append(identifier)
        if skip and skipped:
            # One line whatever their number. Named by a setting, a skipped entity is
            # the user's mistake: a warning.
            logger.log(
                logging.WARNING if axis.setting else logging.INFO,
                "%s%s skipped (%s): %s%s.",
                f"{axis.setting}: " if axis.setting else "",
                plural(len(skipped), SINGULAR[axis.kind], axis.kind),
                skip.reason,
                ", ".join(skipped[:5]),
                ", ..." if len(skipped) > 5 else "",
            )
        return values

    def params(
        self, spec: SeriesStreamSpec, partition: Partition, window: Window, selected: set[str]
    ) -> dict[str, Any]:
        return series_params(
            spec.endpoint, spec.unit, partition.params, window.length, window.ending_at, selected
        )
