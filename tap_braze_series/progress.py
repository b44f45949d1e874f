"""What a run has done, for whoever watches its log: progress lines and a summary.

- `RequestTally`: HTTP requests, retries and 429 answers per endpoint (path and
  unit), counted by the client as they happen.
- `StreamTally`: the records, partitions and first and last bucket one stream
  emitted, counted as the SDK writes them.
- `RunReport`: during a long sync, at most one INFO line every
  `progress_interval` seconds for the family whose requests are running
  (partitions, requests, rate and the budget capping it, records, ETA); at the
  end of the run, one summary block.

Nothing here logs per partition or per request: the log stays the same size
whatever the number of entities.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tap_braze_series.endpoints import POOL_LIMITS

logger = logging.getLogger("tap-braze-series.progress")

#: An endpoint as the summary counts it: the path, and the `unit` parameter sent
#: (the daily and hourly series of one path are different streams).
EndpointKey = tuple[str, str | None]


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`1 request`, `2 requests`, `1,000 requests`; `1 canvas`, `2 canvases` given both.

    The one way the tap words a count (entity kinds' singulars: entities.SINGULAR).
    """
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count:,} {word}"


def duration(seconds: float) -> str:
    """A duration as people read it: 0.4 s, 12 s, 3 min 05 s, 2 h 07 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(slots=True)
class RequestCounts:
    """Requests sent to one endpoint (every attempt), retries, and 429 answers."""

    sent: int = 0
    retries: int = 0
    rate_limited: int = 0

    def add(self, other: RequestCounts) -> None:
        self.sent += other.sent
        self.retries += other.retries
        self.rate_limited += other.rate_limited


class RequestTally:
    """Per-endpoint request counters, shared by every worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[EndpointKey, RequestCounts] = {}

    def sent(self, path: str, unit: str | None, status: int | None) -> None:
        """One attempt was made (`status` None: no HTTP answer)."""
        with self._lock:
            counts = self._counts.setdefault((path, unit), RequestCounts())
            counts.sent += 1
            if status == 429:
                counts.rate_limited += 1

    def retried(self, path: str, unit: str | None) -> None:
        """A failed attempt is being tried again (429 waits are not retries)."""
        with self._lock:
            self._counts.setdefault((path, unit), RequestCounts()).retries += 1

    def counts(self) -> dict[EndpointKey, RequestCounts]:
        with self._lock:
            return {
                key: RequestCounts(c.sent, c.retries, c.rate_limited)
                for key, c in self._counts.items()
            }

    def answered(self, endpoint: EndpointKey) -> int:
        """Requests to `endpoint` that got their final answer.

        Every attempt is counted as sent: a retried failure adds a retry and a 429
        a rate-limited answer, each followed by one more attempt, so what is left is
        one attempt per request (a body asked again for cannot be decoded counts a
        retry too).
        """
        with self._lock:
            c = self._counts.get(endpoint)
            return 0 if c is None else c.sent - c.retries - c.rate_limited

    def total(self) -> RequestCounts:
        """Every endpoint's counts added up."""
        total = RequestCounts()
        for counts in self.counts().values():
            total.add(counts)
        return total


class StreamTally:
    """What one stream emitted this run.

    `records` counts RECORD messages as the stream writes them. Records of a
    partition come in bucket order, so the first and last bucket of the run are
    found by comparing each partition's first and last record only.
    """

    __slots__ = (
        "_first_key",
        "_last_key",
        "_mark",
        "endpoint",
        "family",
        "first",
        "last",
        "latest",
        "name",
        "order",
        "partitions",
        "records",
    )

    def __init__(
        self,
        name: str,
        endpoint: EndpointKey,
        family: str | None = None,
        order: Callable[[str], Any] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.family = family  # series streams: the family whose requests serve it
        self.order = order  # series streams: the order of `time` values
        self.records = 0
        self.partitions = 0
        self.first: str | None = None
        self.last: str | None = None
        self.latest: dict[str, Any] | None = None  # the last record written
        self._mark = 0
        self._first_key: Any = None
        self._last_key: Any = None

    def begin_partition(self) -> None:
        self._mark = self.records

    def end_partition(self, first_record: dict[str, Any] | None, *, complete: bool) -> None:
        """A partition ended (`complete` False: stopped before its end)."""
        if complete:
            self.partitions += 1
        if first_record is None or self.records == self._mark or self.order is None:
            return
        for record in (first_record, self.latest):
            value = record.get("time") if record is not None else None
            if not isinstance(value, str):
                continue
            key = self.order(value)
            if self._first_key is None or key < self._first_key:
                self.first, self._first_key = value, key
            if self._last_key is None or key > self._last_key:
                self.last, self._last_key = value, key


@dataclass
class FamilyProgress:
    """The figures of one family's progress lines."""

    name: str
    pool: str
    endpoint: EndpointKey  # the one endpoint a family's requests go to
    members: list[StreamTally]
    partitions: int
    planned: int
    started: float
    done: int = 0  # requests answered, as the request tally counts them
    # The previous line's (time, requests done): the rate is the recent one.
    last_time: float = 0.0
    last_done: int = 0

    @property
    def partitions_done(self) -> int:
        # The member that drives the requests is the one furthest on.
        return max((m.partitions for m in self.members), default=0)

    @property
    def records(self) -> int:
        return sum(m.records for m in self.members)


@dataclass
class Budget:
    """The tightest limit on one pool's requests, as requests per second."""

    name: str  # e.g. "max_requests_per_hour 100,000/hour"
    per_second: float
    headroom: float  # requests that may still go before the limit holds them back


class RunReport:
    """Progress lines during the run and the summary at its end."""

    def __init__(
        self,
        *,
        interval: float,
        tally: RequestTally,
        budget: Callable[[str], Budget],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.tally = tally
        self._budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self._last_line = self.started
        self.streams: dict[str, StreamTally] = {}
        self.families: dict[str, FamilyProgress] = {}
        self.lines = 0  # progress lines written

    # --- what the streams and families report -----------------------------------------

    def stream(
        self,
        name: str,
        endpoint: EndpointKey,
        *,
        family: str | None = None,
        order: Callable[[str], Any] | None = None,
    ) -> StreamTally:
        """The tally of a stream that starts syncing (the summary lists it)."""
        tally = self.streams.get(name)
        if tally is None:
            tally = self.streams[name] = StreamTally(name, endpoint, family, order)
        return tally

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def family_started(
        self, name: str, endpoint: EndpointKey, pool: str, partitions: int, planned: int
    ) -> None:
        """A family's first partition starts; `planned`: the requests its plan sends."""
        if not self.enabled or name in self.families:
            return
        members = [t for t in self.streams.values() if t.family == name]
        now = self._clock()
        self.families[name] = FamilyProgress(
            name=name,
            pool=pool,
            endpoint=endpoint,
            members=members,
            partitions=partitions,
            planned=planned,
            started=now,
            last_time=now,
        )

    def request_done(self, family: str) -> None:
        """A request of `family` was answered; write a progress line if one is due."""
        if not self.enabled:
            return
        with self._lock:
            progress = self.families.get(family)
            if progress is None:
                return
            progress.done = self.tally.answered(progress.endpoint)
            now = self._clock()
            if now - self._last_line < self.interval:
                return
            self._last_line = now
            line = self._progress_line(progress, now)
            progress.last_time, progress.last_done = now, progress.done
            self.lines += 1
        logger.info("%s", line)

    # --- the lines ---------------------------------------------------------------------

    def _progress_line(self, p: FamilyProgress, now: float) -> str:
        span = now - p.last_time
        if span <= 0 or p.done == p.last_done:
            span, recent = now - p.started, p.done
        else:
            recent = p.done - p.last_done
        rate = recent / span if span > 0 else 0.0
        budget = self._budget(p.pool)
        remaining = max(p.planned - p.done, 0)
        parts = [
            f"{p.name}: {p.partitions_done:,} of {plural(p.partitions, 'partition')}",
            f"{p.done:,} of {plural(p.planned, 'request')}"
            + (f" ({100 * p.done / p.planned:.0f}%)" if p.planned else ""),
            f"{rate:,.1f} requests/s (limit: {budget.name})",
            plural(p.records, "record"),
            f"ETA {_eta(remaining, rate, budget)}",
        ]
        return ", ".join(parts)

    def summary(
        self,
        stream_order: Iterable[str],
        skipped: Mapping[str, int],
        *,
        failed: bool = False,
        holes_passed: int = 0,
        unreachable: bool = False,
    ) -> str:
        """The end-of-run block: one row per synced stream, then the totals.

        `skipped` holds the points each family's responses had that could not be
        used (see shapes.Issues), by family name; `holes_passed` the buckets Braze
        never answered that the run moved past, being older than the lookback.
        `unreachable`: the run stopped because no connection to Braze could be made, so
        its attempts sent nothing.
        """
        counts = self.tally.counts()
        names = [n for n in stream_order if n in self.streams]
        rows: list[list[str]] = []
        shown: set[EndpointKey] = set()
        total_records = 0
        for name in names:
            t = self.streams[name]
            total_records += t.records
            is_series = t.order is not None
            row = [
                name,
                f"{t.records:,}",
                f"{t.partitions:,}" if is_series else "-",
                t.first or "-",
                t.last or "-",
            ]
            if t.endpoint in shown:
                row += ["", "", "", ""]  # the same requests as a stream above
            else:
                shown.add(t.endpoint)
                c = counts.get(t.endpoint, RequestCounts())
                points = skipped.get(t.family or "", 0) if is_series else 0
                row += [
                    f"{c.sent:,}",
                    f"{c.retries:,}",
                    f"{c.rate_limited:,}",
                    f"{points:,}" if is_series else "-",
                ]
            rows.append(row)
        others = RequestCounts()
        for key, c in counts.items():
            if key not in shown:
                others.add(c)
        if others.sent:
            rows.append(
                [
                    "(lists, details)",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"{others.sent:,}",
                    f"{others.retries:,}",
                    f"{others.rate_limited:,}",
                    "-",
                ]
            )
        total = RequestCounts()
        for c in counts.values():
            total.add(c)  # the same counts as the rows above, not read again
        header = [
            "stream",
            "records",
            "partitions",
            "first bucket",
            "last bucket",
            "requests",
            "retries",
            "429s",
            "skipped points",
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def fmt(row: list[str]) -> str:
            cells = [row[0].ljust(widths[0])]
            cells += [
                row[i].ljust(widths[i]) if i in (3, 4) else row[i].rjust(widths[i])
                for i in range(1, len(row))
            ]
            return "  " + "  ".join(cells).rstrip()

        elapsed = self._clock() - self.started
        title = "Run stopped before its end; what it did" if failed else "Run summary"
        lines = [f"{title}:", fmt(header), *(fmt(r) for r in rows)]
        if not rows:
            lines.append("  no stream synced")
        lines.append(
            f"  total: {plural(total_records, 'record')} from {plural(len(names), 'stream')}, "
            f"{plural(total.sent, 'request')} ({plural(total.retries, 'retry', 'retries')}, "
            f"{plural(total.rate_limited, '429 answer')}) in {duration(elapsed)}"
        )
        if unreachable:  # the counts are attempts, none of which reached Braze
            lines[-1] = (
                f"  total: {plural(total_records, 'record')} from "
                f"{plural(len(names), 'stream')}, no request sent "
                f"({plural(total.sent, 'connection attempt')} failed) in {duration(elapsed)}"
            )
        if holes_passed:
            lines.append(
                f"  moved past {plural(holes_passed, 'bucket')} Braze never answered, older "
                "than lookback_days re-reads (no row for them; see the warning above)"
            )
        if any(r[5] == "" for r in rows):
            lines.append("  (a blank request count: served by the requests of the stream above it)")
        return "\n".join(lines)


def _eta(remaining: int, rate: float, budget: Budget) -> str:
    """Time left: the recent rate until the budget's headroom is used, then its pace."""
    if remaining == 0:
        return "0 s"
    if rate <= 0:
        return "unknown"
    headroom = max(budget.headroom, 0.0)
    if remaining <= headroom or math.isinf(headroom):
        return duration(remaining / rate)
    capped = min(rate, budget.per_second)
    return duration(headroom / rate + (remaining - headroom) / capped)


def pool_budget(
    pool: str,
    *,
    max_requests_per_hour: int,
    sent_last_hour: int,
    pool_limit: int | None,
    pool_remaining: int | None,
) -> Budget:
    """The tightest of the tap's hourly budget and the pool's limit (announced or documented)."""
    own = Budget(
        f"max_requests_per_hour {max_requests_per_hour:,}/hour",
        max_requests_per_hour / 3600.0,
        float(max_requests_per_hour - sent_last_hour),
    )
    documented, window = POOL_LIMITS.get(pool, (None, 3600.0))
    limit = pool_limit if pool_limit is not None else documented
    if limit is None:
        return own
    per_second = limit / window
    if per_second >= own.per_second:
        return own
    unit = "hour" if window == 3600 else ("minute" if window == 60 else f"{window:g} s")
    return Budget(
        f"Braze pool '{pool}' {limit:,}/{unit}",
        per_second,
        float(pool_remaining) if pool_remaining is not None else math.inf,
    )
