"""`--check`: which of the selected streams can this API key sync?

One small request per endpoint the selected streams read, whatever the size of
the workspace: the first page of each entity list, then one bucket (length 1)
of each series endpoint and one details request, for the first entity listed.
Each stream gets one line: ok, the permission the key lacks, no entities to
sync, or the endpoint that cannot be reached. Nothing is synced and the API key
is never printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
from tap_braze_series.endpoints import (
    DETAILS_ID_PARAMS,
    DETAILS_PATHS,
    DETAILS_PERMISSIONS,
    LISTS,
    ListEndpoint,
    SeriesEndpoint,
)
from tap_braze_series.entities import entity_id
from tap_braze_series.progress import plural
from tap_braze_series.ratelimit import RateGovernor
from tap_braze_series.windows import EPSILON, bucket_of, plan_windows

# A check should take seconds: one retry of a transient failure, a short timeout.
CHECK_RETRIES = 1
CHECK_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Needs:
    """The endpoints one stream reads, in the order they are asked."""

    stream: str
    list_kind: str | None = None  # the entity list it fans out over
    series: SeriesEndpoint | None = None
    details_kind: str | None = None  # canvases / campaigns: one details request each


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request told: ok, no entities, or why the stream cannot sync."""

    ok: bool
    text: str  # short, for the stream's line
    detail: str | None = None  # the full error, printed once per endpoint
    empty: bool = False  # an entity list with nothing to sync
    entity: str | None = None  # the first entity listed, for the requests that need one


@dataclass(frozen=True, slots=True)
class StreamResult:
    stream: str
    selected: bool
    can_sync: bool
    text: str


def needs_of(streams: Iterable[Any], settings: Settings) -> list[Needs]:
    """What each stream reads, from its declaration (see streams.py / endpoints.py)."""
    out = []
    for stream in streams:
        spec = getattr(stream, "spec", None)
        if spec is not None:
            entity = spec.endpoint.entity
            # Purchase series read the product list only for configured products.
            if entity == "products" and not settings.entity_filters.get("products"):
                entity = None
            out.append(Needs(stream.name, list_kind=entity, series=spec.endpoint))
        elif stream.name.endswith("_details"):
            out.append(Needs(stream.name, list_kind=stream.kind, details_kind=stream.kind))
        else:
            out.append(Needs(stream.name, list_kind=stream.kind))
    return out


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
        params: dict[str, Any] = {"page": 0}
        wanted = self.settings.entity_filters.get(endpoint.kind, ())
        if endpoint.supports_archived:
            params["include_archived"] = bool(wanted) or self.settings.include_archived
            params["sort_direction"] = "asc"
        body = self._ask(endpoint.path, endpoint.permission, params)
        if isinstance(body, Outcome):
            return body
        items = body.get(endpoint.items_field)
        if not isinstance(items, list):
            return Outcome(
                False,
                f"{endpoint.path} answered without a '{endpoint.items_field}' list",
            )
        if endpoint.kind == "segments":
            # Only segments with analytics tracking have a size series.
            tracked = [i for i in items if isinstance(i, Mapping)]
            tracked = [i for i in tracked if i.get("analytics_tracking_enabled") is not False]
            ids = [entity_id("segments", i) for i in tracked]
        else:
            ids = [entity_id(endpoint.kind, i) for i in items]
        ids = [i for i in ids if i]
        if wanted:
            # The configured ids are what the run reads; the first page may not list them.
            listed = [i for i in ids if i in wanted]
            return Outcome(True, "ok", entity=listed[0] if listed else wanted[0])
        if not ids:
            return Outcome(True, f"no {endpoint.kind} found: nothing to sync", empty=True)
        return Outcome(True, "ok", entity=ids[0])

    def series_bucket(self, endpoint: SeriesEndpoint, entity: str | None) -> Outcome:
        unit = endpoint.units[0]
        start = self.settings.start_instant()
        end = self.settings.end_instant(self.now)
        last = bucket_of((end if start < end else self.now) - EPSILON, unit, self.tz)
        window = plan_windows(last, last, unit, 1, self.tz)[0]
        params: dict[str, Any] = {"length": window.length, "ending_at": window.ending_at}
        if len(endpoint.units) > 1:
            params["unit"] = unit
        if endpoint.id_param and entity is not None:
            params[endpoint.id_param] = entity
        body = self._ask(endpoint.path, endpoint.permission, params)
        if isinstance(body, Outcome):
            return body
        return Outcome(True, "ok")

    def details(self, kind: str, entity: str) -> Outcome:
        path = DETAILS_PATHS[kind]
        body = self._ask(path, DETAILS_PERMISSIONS[kind], {DETAILS_ID_PARAMS[kind]: entity})
        return body if isinstance(body, Outcome) else Outcome(True, "ok")

    # --- the check ----------------------------------------------------------------------

    def run(self, needs: Sequence[Needs], workers: int) -> dict[str, Outcome]:
        """Every stream's outcome, asking each endpoint at most once."""
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="check") as pool:
            kinds = sorted({n.list_kind for n in needs if n.list_kind})
            listing = {k: pool.submit(self.list_first_page, LISTS[k]) for k in kinds}
            lists = {k: future.result() for k, future in listing.items()}
            # Then each series and details endpoint once, for the first entity listed.
            asked: dict[tuple[str, str | None], Future[Outcome]] = {}
            for n in needs:
                for key, ask in self._requests(n, lists.get(n.list_kind or "")):
                    if key not in asked:
                        asked[key] = pool.submit(ask)
            answers = {key: future.result() for key, future in asked.items()}
        out: dict[str, Outcome] = {}
        for n in needs:
            listed = lists.get(n.list_kind or "")
            outcome = listed or Outcome(True, "ok")
            if listed is None or (listed.ok and not listed.empty):
                failed = [
                    answers[key]
                    for key, _ in self._requests(n, listed)
                    if key in answers and not answers[key].ok
                ]
                outcome = failed[0] if failed else outcome
            out[n.stream] = outcome
        return out

    def _requests(
        self, needs: Needs, listed: Outcome | None
    ) -> list[tuple[tuple[str, str | None], Callable[[], Outcome]]]:
        """The series and details requests of a stream whose list (if any) has an entity."""
        if listed is not None and (not listed.ok or listed.empty):
            return []  # the stream's line is the list's outcome
        entity = listed.entity if listed is not None else None
        out: list[tuple[tuple[str, str | None], Callable[[], Outcome]]] = []
        if needs.series is not None:
            series = needs.series
            out.append(((series.path, entity), lambda: self.series_bucket(series, entity)))
        if needs.details_kind is not None and entity is not None:
            kind = needs.details_kind
            out.append(((DETAILS_PATHS[kind], entity), lambda: self.details(kind, entity)))
        return out


def check_streams(
    settings: Settings,
    streams: Sequence[Any],
    *,
    now: Any,
    out: TextIO,
    streams_by_path: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Check the streams (`stream.selected` says which count), print the lines; exit code."""
    client = BrazeClient(
        api_url=settings.api_url,
        api_key=settings.api_key,
        timeout=min(settings.request_timeout, CHECK_TIMEOUT),
        governor=RateGovernor(settings.max_requests_per_hour),
        max_retries=min(settings.max_retries, CHECK_RETRIES),
        backoff_base=min(settings.retry_backoff_seconds, 1.0),
        connections=settings.max_workers,
    )
    selected = [s for s in streams if s.selected]
    checker = Checker(settings, client, now)
    outcomes = checker.run(needs_of(selected, settings), settings.max_workers)
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
