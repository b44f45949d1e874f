"""`--check`: which of the selected streams can this API key sync?

One small request per endpoint the selected streams read, whatever the size of
the workspace: the first page of each entity list, then one bucket (length 1)
of each series endpoint and one details request, for the first entity listed.
Each stream gets one line: ok, the permission the key lacks, no entities to
sync, or the endpoint that cannot be reached. Nothing is synced and the API key
is never printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from tap_braze_series.client import (
    BrazeAuthError,
    BrazeClient,
    BrazeError,
    BrazePermissionError,
    BrazeRequestError,
)
from tap_braze_series.config import Settings
from tap_braze_series.endpoints import LISTS, DetailsEndpoint, ListEndpoint, series_params
from tap_braze_series.progress import plural
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.redact import RedactingStream
from tap_braze_series.streams import StreamReads, stream_reads
from tap_braze_series.windows import EPSILON, bucket_of, plan_windows

# A check should take seconds: one retry of a transient failure, a short timeout.
CHECK_RETRIES = 1
CHECK_TIMEOUT = 15.0

EndpointAsk = tuple[str, str | None]  # (path, entity) of one request


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request told: ok, no entities, or why the stream cannot sync."""

    ok: bool
    text: str  # short, for the stream's line
    detail: str | None = None  # the full error, printed once per endpoint
    empty: bool = False  # an entity list with nothing to sync
    items: tuple[Any, ...] = ()  # a list's first page


@dataclass(frozen=True, slots=True)
class StreamResult:
    stream: str
    selected: bool
    can_sync: bool
    text: str


class Checker:
    """Runs the requests of a check and words their outcomes."""

    def __init__(self, settings: Settings, client: BrazeClient, now: Any) -> None:
        self.settings = settings
        self.client = client
        self.tz = settings.timezone
        self.now = now
        self._key_rejected: Outcome | None = None

    # --- one request each ---------------------------------------------------------------

    def _ask(self, path: str, permission: str, params: Mapping[str, Any]) -> Outcome | Any:
        """The response body, or the Outcome of a failure."""
        if self._key_rejected is not None:
            return self._key_rejected
        try:
            return self.client.get(path, params).body
        except BrazeAuthError as exc:
            self._key_rejected = Outcome(False, "the API key is rejected (401)", str(exc))
            return self._key_rejected
        except BrazePermissionError as exc:
            lacks = f"the API key lacks the '{permission}' permission (403)"
            return Outcome(False, lacks, str(exc))
        except BrazeRequestError as exc:
            return Outcome(False, f"Braze rejected the request to {path}", str(exc))
        except BrazeError as exc:
            return Outcome(False, f"{path} cannot be reached", str(exc))

    def list_first_page(self, endpoint: ListEndpoint) -> Outcome:
        params = {"page": 0, **endpoint.request_params(self.settings)}
        body = self._ask(endpoint.path, endpoint.permission, params)
        if isinstance(body, Outcome):
            return body
        items = body.get(endpoint.items_field)
        if not isinstance(items, list):
            return Outcome(
                False, f"{endpoint.path} answered without a '{endpoint.items_field}' list"
            )
        return Outcome(True, "ok", items=tuple(items))

    def first_entity(self, needs: StreamReads, listed: Outcome) -> Outcome | str:
        """The entity a stream's requests are checked with, or why there is none."""
        kind = needs.list_kind or ""
        skip = needs.axis.skip if needs.axis else None
        items = [item for item in listed.items if not (skip and skip.skips(item))]
        ids = [i for i in map(LISTS[kind].item_id, items) if i]
        wanted = self.settings.ids(LISTS[kind].filter_setting)
        if wanted:
            # The run reads the configured ids; the first page may not list them.
            return next((i for i in ids if i in wanted), wanted[0])
        if ids:
            return ids[0]
        if listed.items and len(listed.items) >= LISTS[kind].page_size:
            # Only skipped entities on the first page: there may be others after it.
            return Outcome(True, f"not checked: none of the first {kind} listed has a series")
        return Outcome(True, f"no {kind} found: nothing to sync", empty=True)

    def series_bucket(self, needs: StreamReads, entity: str | None) -> Outcome:
        assert needs.series is not None
        # Checked in the endpoint's first unit: one request serves each endpoint's streams.
        endpoint = needs.series.endpoint
        unit = endpoint.units[0]
        start = self.settings.start_instant()
        end = self.settings.end_instant(self.now)
        last = bucket_of((end if start < end else self.now) - EPSILON, unit, self.tz)
        window = plan_windows(last, last, unit, 1, self.tz)[0]
        axis = {needs.axis.param: entity} if needs.axis and entity is not None else {}
        params = series_params(endpoint, unit, axis, window.length, window.ending_at)
        body = self._ask(endpoint.path, endpoint.permission, params)
        return body if isinstance(body, Outcome) else Outcome(True, "ok")

    def details(self, endpoint: DetailsEndpoint, entity: str) -> Outcome:
        body = self._ask(endpoint.path, endpoint.permission, {endpoint.id_param: entity})
        return body if isinstance(body, Outcome) else Outcome(True, "ok")

    # --- the check ----------------------------------------------------------------------

    def run(self, needs: Sequence[StreamReads], workers: int) -> dict[str, Outcome]:
        """Every stream's outcome, asking each endpoint at most once."""
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="check") as pool:
            kinds = sorted(
                {k for n in needs for k in (n.list_kind, *n.named_lists) if k is not None}
            )
            listing = {k: pool.submit(self.list_first_page, LISTS[k]) for k in kinds}
            lists = {k: future.result() for k, future in listing.items()}
            # Then each series and details endpoint once, for the first entity listed.
            asked: dict[EndpointAsk, Future[Outcome]] = {}
            for n in needs:
                for key, ask in self._requests(n, lists):
                    if key not in asked:
                        asked[key] = pool.submit(ask)
            answers = {key: future.result() for key, future in asked.items()}
        out: dict[str, Outcome] = {}
        for n in needs:
            out[n.stream] = self._verdict(n, lists, answers)
        return out

    def _entity(self, needs: StreamReads, lists: Mapping[str, Outcome]) -> Outcome | str | None:
        """The entity to check with; an Outcome when the stream's lists decide its line."""
        for kind in needs.named_lists:
            if not lists[kind].ok:
                return lists[kind]
        if needs.list_kind is None:
            return None
        listed = lists[needs.list_kind]
        return listed if not listed.ok else self.first_entity(needs, listed)

    def _requests(
        self, needs: StreamReads, lists: Mapping[str, Outcome]
    ) -> list[tuple[EndpointAsk, Callable[[], Outcome]]]:
        """The series and details requests of a stream, with the entity they need."""
        entity = self._entity(needs, lists)
        if isinstance(entity, Outcome):
            return []  # the stream's line is its list's outcome
        out: list[tuple[EndpointAsk, Callable[[], Outcome]]] = []
        if needs.series is not None:
            path = needs.series.endpoint.path
            out.append(((path, entity), lambda: self.series_bucket(needs, entity)))
        details = needs.details
        if details is not None and entity is not None:
            out.append(((details.path, entity), lambda: self.details(details, entity)))
        return out

    def _verdict(
        self,
        needs: StreamReads,
        lists: Mapping[str, Outcome],
        answers: Mapping[EndpointAsk, Outcome],
    ) -> Outcome:
        entity = self._entity(needs, lists)
        if isinstance(entity, Outcome):
            return entity
        for key, _ in self._requests(needs, lists):
            if not answers[key].ok:
                return answers[key]
        return Outcome(True, "ok")


def check_streams(
    settings: Settings,
    streams: Sequence[Any],
    *,
    now: Any,
    out: TextIO,
    streams_by_path: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Check the streams (`stream.selected` says which count), print the lines; exit code."""
    out = RedactingStream(out)  # Braze's messages may repeat the key (a 401 does)
    client = BrazeClient(
        api_url=settings.api_url,
        api_key=settings.api_key,
        timeout=min(settings.request_timeout, CHECK_TIMEOUT),
        governor=RateGovernor(settings.max_requests_per_hour),
        max_retries=min(settings.max_retries, CHECK_RETRIES),
        backoff_base=min(settings.retry_backoff_seconds, 1.0),
        max_in_flight=settings.max_workers,
        streams_by_path=streams_by_path,  # a 403 names the streams to deselect, as a run does
    )
    selected = [s for s in streams if s.selected]
    checker = Checker(settings, client, now)
    reads = stream_reads(settings)
    outcomes = checker.run([reads[s.name] for s in selected], settings.max_workers)
    results = [
        StreamResult(
            s.name,
            s.selected,
            outcomes[s.name].ok if s.selected else True,
            outcomes[s.name].text if s.selected else "not selected",
        )
        for s in streams
    ]
    width = max((len(r.stream) for r in results), default=0)
    print(
        f"Checking {plural(len(selected), 'selected stream')} against {settings.api_url}:",
        file=out,
    )
    for r in results:
        verdict = "" if r.can_sync or not r.selected else "cannot sync: "
        print(f"  {r.stream.ljust(width)}  {verdict}{r.text}", file=out)
    details = list(dict.fromkeys(o.detail for o in outcomes.values() if o.detail and not o.ok))
    for detail in details:
        print(f"  - {detail}", file=out)
    failing = sum(1 for r in results if r.selected and not r.can_sync)
    empty = sum(1 for s in selected if outcomes[s.name].empty)
    sent = sum(c.sent for c in client.tally.counts().values())
    if failing:
        verdict = f"{failing} of {plural(len(selected), 'selected stream')} cannot sync."
    else:
        verdict = "every selected stream can sync" + (
            f" ({empty} with nothing to sync)." if empty else "."
        )
    print(f"{plural(sent, 'request')}; {verdict}", file=out)
    return 1 if failing else 0
