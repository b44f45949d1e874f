"""Concurrent fetching for series streams, with one request serving several streams.

The SDK syncs partitions one after another on a single thread. A *family* is
the set of streams one request serves (the four canvas streams share
/canvas/data_series; every other endpoint and unit is a family of one). The
first selected member the tap syncs becomes the *driver*:

- it plans every partition's windows from the members' bookmarks and fetches
  them on a bounded thread pool across partitions, a new request as soon as a
  worker is free (scheduler.py: a slow response stalls no other worker);
- results come back in plan order, so records are emitted in a deterministic
  order, on the SDK's thread, which alone touches records and state;
- the rows a response holds for the other members are written to an on-disk
  spool per member (spool.py): one request, four streams, memory flat in the number of
  entities and the history length;
- each time a partition ends, the driver advances the other members' syncs
  over what their spools hold (`Family.follow`): their rows are written while
  the workers fetch the next partitions, not all after the last response.

If a driver stops early (an error, a record limit) the next member finds its
spool incomplete from that partition on and drives the rest itself.

Every response is checked once, before any member shapes it (`_check_coverage`):
its points are put in bucket order, one per bucket. A count series (an endpoint
that leaves out its zero buckets) gets a zero point for each bucket it lacks. In
another series a window with a bucket missing is asked again once; if the bucket
is still missing, every member gets the rows before it and the partition stops
there for this run, unless the bucket is older than the lookback reaches (Braze
no longer restates it): then the run moves past it, counted and warned of once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tap_braze_series.client import BrazeUndecodableError
from tap_braze_series.scheduler import DEFAULT_MAX_BUFFERED_BYTES, OrderedFetcher
from tap_braze_series.shapes import (
    NO_VALID_TIME,
    NOT_AN_OBJECT,
    Issues,
    PayloadError,
    Points,
    with_points,
    with_zeros,
)
from tap_braze_series.spool import Spool
from tap_braze_series.state import partition_key
from tap_braze_series.stopping import RunStopped, Stop
from tap_braze_series.windows import Bucket, Window, shift

if TYPE_CHECKING:
    from tap_braze_series.client import Response

logger = logging.getLogger("tap-braze-series.feed")


PASSED_HOLE = "bucket never answered, older than lookback_days (moved past)"
REREAD_HOLE = "bucket missing from a re-read of buckets already emitted (their rows stand)"
NOT_YET = "buckets at the run's end without a point yet (the next run reads them)"


@dataclass(frozen=True, slots=True)
class Partition:
    """One entity (and app) of a family: its state context and request parameters."""

    index: int
    context: Mapping[str, Any]
    params: Mapping[str, Any]


@dataclass(slots=True)
class PlannedPartition:
    """A partition with each member's first bucket and the windows covering them all."""

    partition: Partition
    starts: dict[str, Bucket]
    windows: list[Window]
    broken: bool = False
    # Whether Braze has had points for this entity: bookmarked before, or seen this run.
    has_data: bool = False
    # The last bucket every member reading this partition emitted in an earlier run.
    delivered: Bucket | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    planned: PlannedPartition
    window: Window | None  # None marks the end of a partition


def fetch_ordered(
    executor: Executor,
    fetch: Callable[[Any], Response],
    items: Iterable[Any],
    workers: int,
    stop: Stop | None = None,
) -> Iterator[tuple[Any, Response]]:
    """(item, fetch(item)) in item order, `workers` fetches running (see scheduler.py)."""
    fetcher = OrderedFetcher(executor, fetch, items, workers=workers, size=_response_size)
    _abort_at(stop, fetcher)
    yield from fetcher  # type: ignore[misc]


def _abort_at(stop: Stop | None, fetcher: OrderedFetcher) -> None:
    """When the run stops, the consumer raises RunStopped at once, not after the buffer."""
    if stop is not None:
        stop.on_stop(lambda: fetcher.abort(RunStopped(stop.reason)))


def _response_size(response: Response) -> int:
    return len(response.raw)


class Member(Protocol):
    """What a family needs from a stream it serves."""

    name: str

    @property
    def selected(self) -> bool:
        """Whether the stream syncs this run."""
        ...

    def partition_start(self, partition: Partition) -> Bucket | None:
        """First bucket to read for this partition (None: nothing to read)."""
        ...

    def shape(
        self, body: Mapping[str, Any], planned: PlannedPartition, window: Window, issues: Issues
    ) -> Iterator[dict[str, Any]]:
        """This member's records from one response."""
        ...

    def bookmark_bucket(self, partition: Partition) -> Bucket | None:
        """The last bucket a previous run emitted for this partition."""
        ...

    def read_points(
        self, body: Mapping[str, Any], window: Window, issues: Issues, where: str
    ) -> Points:
        """A response's usable points, one per bucket, in bucket order."""
        ...

    def last_bucket(self) -> Bucket | None:
        """The run's last bucket."""
        ...

    def open_bucket(self) -> Bucket | None:
        """The run's last bucket if the run ends inside it (Braze may not have it yet)."""
        ...

    @property
    def omits_zero_buckets(self) -> bool:
        """Whether Braze leaves out this series' buckets whose count is 0."""
        ...

    def zero_point(self, bucket: Bucket) -> dict[str, Any]:
        """The point of a bucket Braze left out of a count series."""
        ...

    def restated_from(self) -> Bucket | None:
        """The oldest bucket this run's lookback re-reads after this run (None: no range).

        Braze restates recent buckets; one older than this is settled.
        """
        ...


@dataclass
class FamilyStats:
    """Per-run counters for the end-of-run log and benchmarks."""

    zero_buckets: int = 0  # buckets a count series left out, emitted as 0
    holes_passed: int = 0  # buckets never answered, too old to wait for
    issues: Issues = field(default_factory=Issues)


class Family:
    """Streams served by the same requests; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        path: str,
        members: Sequence[Member],
        partitions: Callable[[], list[Partition]],
        plan: Callable[[Bucket], list[Window]],
        params: Callable[[Partition, Window, set[str]], dict[str, Any]],
        fetch: Callable[[str, dict[str, Any]], Response],
        executor: Callable[[], Executor],
        workers: int,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        stop: Stop | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.members = list(members)
        self._partitions_factory = partitions
        self._plan = plan
        self._params = params
        self._fetch = fetch
        self._executor = executor
        self._workers = workers
        self._max_buffered_bytes = max_buffered_bytes
        self._stop = stop
        self._partitions: list[Partition] | None = None
        self._index: dict[tuple, int] = {}
        self._pending: list[str] | None = None  # selected members not finished yet
        self._planned: list[PlannedPartition] | None = None  # the run's plan, see plan()
        self._plan_driven = False  # whether a driver took its jobs from that plan
        self._spools: dict[str, Spool] = {}
        self._driver: str | None = None
        self._results: Iterator[tuple[_Job, Mapping[str, Any] | None]] | None = None
        self._followers: dict[str, Iterator[Any]] = {}
        self._advancing: str | None = None  # the follower being advanced, if any
        self.stats = FamilyStats()

    # The partition list is shared by all members, so it is computed once.
    def partitions(self) -> list[Partition]:
        if self._partitions is None:
            self._partitions = self._partitions_factory()
            self._index = {partition_key(p.context): p.index for p in self._partitions}
        return self._partitions

    def selected(self) -> list[str]:
        """The members that sync this run, in the family's order."""
        return [m.name for m in self.members if m.selected]

    def start(self) -> None:
        """Set up the selected members' syncs (before the first one syncs)."""
        if self._pending is None:
            self._pending = self.selected()
            if len(self._pending) > 1:
                self._spools = {name: Spool() for name in self._pending}

    def plan(self) -> list[PlannedPartition]:
        """Every partition with its members' first buckets and its windows, planned once.

        The one plan the fetch, the progress lines and the cost line all read. Most
        partitions share their first bucket, and with it their windows.
        """
        if self._planned is None:
            windows: dict[Bucket, list[Window]] = {}
            names = self.selected()
            self._planned = [
                self._plan_partition(partition, names, windows) for partition in self.partitions()
            ]
        return self._planned

    def planned_requests(self) -> int:
        """The requests the plan sends: its windows over every partition."""
        return sum(len(planned.windows) for planned in self.plan())

    def _plan_partition(
        self, partition: Partition, names: Sequence[str], windows: dict[Bucket, list[Window]]
    ) -> PlannedPartition:
        by_name = {m.name: m for m in self.members}
        starts: dict[str, Bucket] = {}
        for name in names:
            start = by_name[name].partition_start(partition)
            if start is not None:
                starts[name] = start
        first = min(starts.values()) if starts else None
        if first is not None and first not in windows:
            windows[first] = self._plan(first)
        bookmarks = [by_name[name].bookmark_bucket(partition) for name in starts]
        return PlannedPartition(
            partition=partition,
            starts=starts,
            windows=[] if first is None else windows[first],
            has_data=any(bucket is not None for bucket in bookmarks),
            delivered=None if None in bookmarks or not bookmarks else min(bookmarks),
        )

    def follow(self, name: str, sync: Iterator[Any]) -> None:
        """Have the driver advance member `name`'s sync each time a partition ends.

        `sync` is the member's whole sync, emitting its records as it is advanced.
        A member that syncs only after its driver writes all its spooled rows after
        the last response, while no request is in flight. Followed, it writes each
        partition's rows on the driver's thread as soon as the partition ends,
        while the workers fetch the next ones. It is advanced only over rows its
        spool holds, so it never fetches; what is left of it (its last steps, or
        the partitions a driver stopped early did not end) runs when it syncs.
        """
        self._followers[name] = sync

    def records(self, member: Member, context: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The records of `member` for one partition, in bucket order."""
        self.partitions()
        index = self._index.get(partition_key(context))
        if index is None:
            return
        assert self._pending is not None, "Family.start() must run before records()"
        spool = self._spools.get(member.name)
        if spool is not None and index in spool.complete and self._driver != member.name:
            yield from spool.read(index)
        elif self._advancing == member.name:
            raise RuntimeError(
                f"{self.name}: {member.name} was advanced past the rows its spool holds"
            )
        else:
            yield from self._drive(member, index)
        if index == len(self._partitions or []) - 1:
            self._finish(member.name)

    def _finish(self, name: str) -> None:
        if self._pending and name in self._pending:
            self._pending.remove(name)
            if not self._pending:
                self.log_skipped()
        spool = self._spools.pop(name, None)
        if spool is not None:
            spool.close()
        if self._driver == name:
            self._close_results()

    def log_skipped(self) -> None:
        """Say once what this family's responses held that could not be used.

        (Requests and records are in the run's summary; see progress.py.)
        """
        stats = self.stats
        if stats.zero_buckets:
            logger.info(
                "%s: %d buckets without a point taken as 0 (Braze leaves out a count "
                "series' zero buckets).",
                self.path,
                stats.zero_buckets,
            )
        for reason, count in stats.issues.counts.most_common():
            logger.warning(
                "%s: skipped %d x %s (e.g. %s).",
                self.path,
                count,
                reason,
                stats.issues.examples.get(reason, ""),
            )

    def _close_results(self) -> None:
        if self._results is not None:
            self._results.close()  # type: ignore[attr-defined]
        self._results = None
        self._driver = None

    def _drive(self, member: Member, index: int) -> Iterator[dict[str, Any]]:
        if self._driver != member.name or self._results is None:
            self._close_results()
            self._driver = member.name
            self._results = self._fetch_in_order(self._jobs(index))
        others = [name for name in (self._pending or []) if name != member.name]
        by_name = {m.name: m for m in self.members}
        completed = False
        try:
            for job, body in self._results:
                planned = job.planned
                if planned.partition.index != index:
                    raise RuntimeError(
                        f"{self.name}: partition order broke ({planned.partition.index} != "
                        f"{index}); partitions must be synced in the family's order"
                    )
                if job.window is None:
                    for name in others:
                        if name in self._spools:
                            self._spools[name].end(index)
                    completed = True
                    self._advance_followers(member.name)
                    return
                if planned.broken or body is None:
                    continue
                try:
                    body, missing = self._check_coverage(member, body, planned, job.window)
                    own = list(member.shape(body, planned, job.window, self.stats.issues))
                    spooled = {
                        name: list(
                            by_name[name].shape(body, planned, job.window, self.stats.issues)
                        )
                        for name in others
                        if name in self._spools and name in planned.starts
                    }
                except (PayloadError, BrazeUndecodableError) as exc:
                    planned.broken = True
                    logger.warning(
                        "Skipping %s for %s from %s on: %s. Its bookmark stays at the last "
                        "bucket emitted, so the next run reads it again.",
                        self.path,
                        dict(planned.partition.context),
                        job.window.first,
                        exc,
                    )
                    continue
                for name, rows in spooled.items():
                    self._spools[name].write(index, rows)
                if missing is not None:
                    self._stop_at(planned, missing)
                yield from own
        finally:
            if not completed:
                # Stopped early: later members must fetch this partition themselves.
                self._close_results()

    def _advance_followers(self, driver: str) -> None:
        """Advance every followed member over the rows of the partitions ended so far."""
        for name, sync in self._followers.items():
            spool = self._spools.get(name)
            if name == driver or spool is None:
                continue
            self._advancing = name
            try:
                while spool.backlog() > 0 and next(sync, None) is not None:
                    pass
            finally:
                self._advancing = None

    def _check_coverage(
        self, member: Member, body: Mapping[str, Any], planned: PlannedPartition, window: Window
    ) -> tuple[Mapping[str, Any], Bucket | None]:
        """The response with one point per bucket in bucket order, and its first hole.

        A count series leaves out its zero buckets: each bucket without a point is a
        0 (`_with_zeros`), never a hole. In another series a window must hold a point
        for every bucket it asked for. Two exceptions: before an entity's first data
        Braze has no points (a leading empty part of a backfill is passed over), and
        at the run's end Braze may not have produced the last buckets yet (the
        current one, or more if it lags): no bookmark passes them, since nothing
        after them is emitted. A window with a hole is asked again once. If the hole
        stays, the response is cut before it and the hole is returned: the caller
        emits what comes before it and stops the partition there, so that no
        bookmark ever passes a bucket that was not emitted. A hole at or before the
        buckets every member already emitted in earlier runs stops nothing: those
        rows stand. Nor does a hole older than what the lookback re-reads: Braze no
        longer restates such a bucket, so waiting for it would hold the partition
        for ever; the run moves past it and counts it.
        """
        where = f"{self._streams(planned)} {dict(planned.partition.context)}"
        first_try = Issues()
        points = member.read_points(body, window, first_try, where)
        # A point that could not be read leaves its bucket unknown, not a 0: the window
        # is then checked as a zero-filled series' is.
        if member.omits_zero_buckets and not (
            first_try.counts[NOT_AN_OBJECT] or first_try.counts[NO_VALID_TIME]
        ):
            self.stats.issues.merge(first_try)
            return with_points(body, self._with_zeros(member, points, planned, window)), None
        missing = self._hole(member, points, planned, window, first_try, where)
        if missing is not None:
            logger.info(
                "%s answered no point for %s in %s (window ending %s): asking again.",
                self.path,
                missing.isoformat(),
                where,
                window.ending_at,
            )
            body = self._ask_again(planned, window)
            points = member.read_points(body, window, self.stats.issues, where)
            missing = self._hole(
                member, points, planned, window, self.stats.issues, where, final=True
            )
        else:
            self.stats.issues.merge(first_try)
        if missing is None:
            self._count_tail(member, points, planned, window, where)
        if not points.buckets and not planned.has_data:
            logger.warning(
                "%s answered no points for %s up to %s: taken as the time before it had data.",
                self.path,
                dict(planned.partition.context),
                window.last,
            )
        if points.buckets:
            planned.has_data = True
        if missing is not None:
            points = points.before(missing)
        return with_points(body, points), missing

    def _with_zeros(
        self, member: Member, points: Points, planned: PlannedPartition, window: Window
    ) -> Points:
        """A count series' points with a 0 for every bucket Braze left out, but two kinds.

        Not before a never-bookmarked partition's first point (the time before the
        entity had data: no rows), and not the run's open bucket (Braze may not have
        it yet; the next run's lookback reads it again). A bucket that has ended is a
        0 even at the run's end: a later point for it (Braze lagging) comes with the
        next run's lookback, like any restatement.
        """
        if points.buckets:
            first = window.first if planned.has_data else points.buckets[0]
            planned.has_data = True
        elif planned.has_data:
            first = window.first
        else:
            logger.debug(
                "%s answered no points for %s up to %s: taken as the time before it had data.",
                self.path,
                dict(planned.partition.context),
                window.last,
            )
            return points
        last = window.last
        open_bucket = member.open_bucket()
        if last == open_bucket and (not points.buckets or points.buckets[-1] != open_bucket):
            last = shift(last, -1, points.unit)
        if last < first:
            return points
        filled, added = with_zeros(points, first, last, member.zero_point)
        self.stats.zero_buckets += added
        return filled

    def _hole(
        self,
        member: Member,
        points: Points,
        planned: PlannedPartition,
        window: Window,
        issues: Issues,
        where: str,
        *,
        final: bool = False,
    ) -> Bucket | None:
        """The first missing bucket that matters (see _check_coverage), or None.

        With `final` (the window was asked twice), a hole older than the buckets the
        lookback re-reads is passed over and counted.
        """
        leading_ok = not planned.has_data
        tail_ok = window.last == member.last_bucket()
        after = planned.delivered
        missing = points.first_missing(window, leading_ok=leading_ok, tail_ok=tail_ok)
        settled = member.restated_from() if final else None
        while missing is not None:
            if after is not None and missing <= after:
                issues.add(REREAD_HOLE, f"{where}: {missing.isoformat()}")
            elif settled is not None and missing < settled:
                issues.add(PASSED_HOLE, f"{where}: {missing.isoformat()}")
                self.stats.holes_passed += 1
                logger.info(
                    "%s: no point for %s in %s, asked twice; it is older than the lookback "
                    "re-reads, so Braze will not restate it: moving past it.",
                    self.path,
                    missing.isoformat(),
                    where,
                )
            else:
                return missing
            after = missing if after is None or missing > after else after
            missing = points.first_missing(
                window, leading_ok=leading_ok, tail_ok=tail_ok, after=after
            )
        return None

    def _count_tail(
        self, member: Member, points: Points, planned: PlannedPartition, window: Window, where: str
    ) -> None:
        """Count the buckets at the run's end Braze has no point for yet, but the open one."""
        if window.last != member.last_bucket() or not (points.buckets or planned.has_data):
            return
        tail = points.after_last(window)
        if tail <= window.last and tail != member.open_bucket():
            self.stats.issues.add(NOT_YET, f"{where}: from {tail.isoformat()}")

    def _ask_again(self, planned: PlannedPartition, window: Window) -> Mapping[str, Any]:
        """The same request once more, on the pool, waited for (a rare path)."""
        params = self._params(planned.partition, window, set(self._pending or []))
        return self._executor().submit(self._fetch, self.path, params).result().body

    def _stop_at(self, planned: PlannedPartition, missing: Bucket) -> None:
        planned.broken = True
        logger.warning(
            "%s: no point for %s in %s %s, asked twice. The rows before it were emitted; "
            "the rest of this partition waits for the next run, which reads it again from "
            "there (the bookmark stays before %s).",
            self.path,
            missing.isoformat(),
            self._streams(planned),
            dict(planned.partition.context),
            missing.isoformat(),
        )

    def _body(self, job: _Job, response: Response) -> Mapping[str, Any] | None:
        """The decoded body; None, the partition stopped, if it stays undecodable."""
        try:
            return response.body
        except BrazeUndecodableError as exc:
            assert job.window is not None
            job.planned.broken = True
            logger.warning(
                "Skipping %s for %s from %s on: %s The rows before it were emitted; its "
                "bookmark stays before %s, so the next run reads it again. The other "
                "partitions and streams go on.",
                self.path,
                dict(job.planned.partition.context),
                job.window.first,
                exc,
                job.window.first,
            )
            return None

    def _streams(self, planned: PlannedPartition) -> str:
        return ", ".join(name for name in (self._pending or []) if name in planned.starts)

    def _jobs(self, first_index: int) -> Iterator[_Job]:
        """The windows to fetch from partition `first_index` on, each partition's end marked.

        The first driver fetches the run's plan. A member that drives after an earlier
        driver stopped plans what is left afresh, from the bookmarks and members
        pending now (what the stopped driver marked of a partition does not carry over).
        """
        if not self._plan_driven:
            self._plan_driven = True
            plans: Iterable[PlannedPartition] = self.plan()[first_index:]
        else:
            names, windows = list(self._pending or []), {}
            plans = (
                self._plan_partition(partition, names, windows)
                for partition in self.partitions()[first_index:]
            )
        for planned in plans:
            for window in planned.windows:
                yield _Job(planned, window)
            yield _Job(planned, None)

    def _fetch_in_order(
        self, jobs: Iterator[_Job]
    ) -> Iterator[tuple[_Job, Mapping[str, Any] | None]]:
        """Run jobs' requests concurrently; yield their decoded bodies in job order.

        A request starts as soon as a worker is free; responses that come before
        their turn wait undecoded, within a byte budget (see scheduler.py). None
        for a partition's end marker and for windows of a partition found broken
        before their request started.
        """
        selected = set(self._pending or [])

        def fetch(job: _Job) -> Response:
            assert job.window is not None
            return self._fetch(self.path, self._params(job.planned.partition, job.window, selected))

        fetcher: OrderedFetcher[_Job, Response] = OrderedFetcher(
            self._executor(),
            fetch,
            jobs,
            workers=self._workers,
            max_buffered_bytes=self._max_buffered_bytes,
            size=_response_size,
            wants=lambda job: job.window is not None and not job.planned.broken,
        )
        _abort_at(self._stop, fetcher)
        try:
            for job, response in fetcher:
                yield job, None if response is None else self._body(job, response)
        finally:
            fetcher.close()
