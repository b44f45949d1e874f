"""Routing and validation of the fake Braze REST export API (no I/O).

``Api.handle(path, params, now=..., denied=...)`` returns ``(status, body)``;
the HTTP server adds authentication, rate limits, faults and latency around it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

from . import timeutil
from .endpoints import (
    CAMPAIGN_SERIES_PATH,
    CANVAS_MAX_LENGTH,
    CANVAS_SERIES_PATH,
    LISTS,
    PERMISSIONS,
    SERIES,
    ListEndpoint,
    SimpleSeriesEndpoint,
)
from .workspace import Workspace

Body = dict
Result = tuple[int, Body]

_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class ParamError(Exception):
    """A 400: ``param`` is the offending parameter's name."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def error_body(message: str, errors: list | None = None) -> Body:
    body: Body = {"message": message}
    if errors is not None:
        body["errors"] = errors
    return body


class Api:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.tz = workspace.tz
        self._routes: dict[str, Callable[[Mapping[str, str], datetime], Body]] = {
            "/canvas/details": self._canvas_details,
            "/campaigns/details": self._campaign_details,
            CANVAS_SERIES_PATH: self._canvas_series,
            CAMPAIGN_SERIES_PATH: self._campaign_series,
        }
        for path, endpoint in SERIES.items():
            self._routes[path] = self._simple_series_handler(endpoint)
        for path, listing in LISTS.items():
            self._routes[path] = self._list_handler(listing)
        # Pre-built list rows (lists are served by slicing, O(page)).
        self._rows: dict[str, list] = {
            "canvases": self.ws.list_rows("canvases"),
            "campaigns": self.ws.list_rows("campaigns"),
            "segments": self.ws.list_rows("segments"),
            "events": self.ws.events,
            "products": self.ws.products,
        }
        self._active_rows = {
            key: [r for r, e in zip(self._rows[key], entities, strict=True) if not e.archived]
            for key, entities in (("canvases", self.ws.canvases), ("campaigns", self.ws.campaigns))
        }

    def handle(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        now: datetime,
        denied: frozenset[str] = frozenset(),
    ) -> Result:
        handler = self._routes.get(path)
        if handler is None:
            return 404, error_body(f"Not Found: no endpoint at {path}")
        perm = PERMISSIONS[path]
        if perm in denied:
            return 403, error_body(
                f"You do not have permission to access this resource: the API key "
                f"lacks the '{perm}' permission."
            )
        try:
            data = handler(params, now)
        except ParamError as exc:
            return 400, error_body(exc.message, [exc.message])
        return 200, data

    # ----------------------------------------------------------------- params

    @staticmethod
    def _required(params: Mapping[str, str], name: str) -> str:
        value = params.get(name)
        if value is None or value == "":
            raise ParamError(name, f"Missing required parameter '{name}'.")
        return value

    @staticmethod
    def _int(
        params: Mapping[str, str],
        name: str,
        lo: int,
        hi: int | None,
        *,
        required: bool,
        default: int | None = None,
    ) -> int | None:
        raw = params.get(name)
        if raw is None:
            if required:
                raise ParamError(name, f"Missing required parameter '{name}'.")
            return default
        if not _INT_RE.match(raw):
            raise ParamError(name, f"Invalid '{name}': {raw!r} is not an integer.")
        value = int(raw)
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi} (inclusive)" if hi is not None else f">= {lo}"
            raise ParamError(name, f"Invalid '{name}': must be {bound}, got {value}.")
        return value

    @staticmethod
    def _bool(params: Mapping[str, str], name: str, default: bool = False) -> bool:
        raw = params.get(name)
        if raw is None:
            return default
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParamError(name, f"Invalid '{name}': expected true or false, got {raw!r}.")

    def _time(self, params: Mapping[str, str], name: str) -> datetime | None:
        raw = params.get(name)
        if raw is None:
            return None
        try:
            value, _ = timeutil.parse_iso(raw, self.tz)
        except (ValueError, OverflowError):
            raise ParamError(
                name, f"Invalid '{name}': {raw!r} is not an ISO-8601 date or datetime."
            ) from None
        if not 1971 <= value.year <= 9998:
            raise ParamError(name, f"Invalid '{name}': {raw!r} is out of range.")
        return value

    def _unit(self, params: Mapping[str, str], supported: tuple[str, ...], path: str) -> str:
        unit = params.get("unit")
        if unit is None:
            return "day"
        if unit not in ("day", "hour"):
            raise ParamError("unit", f"Invalid 'unit': must be 'day' or 'hour', got {unit!r}.")
        if unit not in supported:
            raise ParamError("unit", f"Invalid 'unit': {path} only supports unit=day.")
        return unit

    def _app_filter(self, params: Mapping[str, str]) -> str | None:
        app_id = params.get("app_id")
        if app_id is None:
            return None
        if app_id not in self.ws.app_set:
            raise ParamError("app_id", f"Invalid 'app_id': no app with id {app_id!r}.")
        return app_id

    def _segment(self, params: Mapping[str, str], *, required: bool) -> str | None:
        segment_id = params.get("segment_id")
        if segment_id is None:
            if required:
                raise ParamError("segment_id", "Missing required parameter 'segment_id'.")
            return None
        seg = self.ws.segment_by_id.get(segment_id)
        if seg is None:
            raise ParamError("segment_id", f"Invalid 'segment_id': no segment {segment_id!r}.")
        if not seg.analytics_tracking_enabled:
            raise ParamError(
                "segment_id",
                f"Invalid 'segment_id': segment {segment_id!r} does not have analytics "
                "tracking enabled.",
            )
        return segment_id

    def _check_known(self, kind: str, entity_id: str) -> None:
        """A 400 unless the workspace has the canvas or campaign ``entity_id``."""
        known = self.ws.canvas_by_id if kind == "canvas" else self.ws.campaign_by_id
        if entity_id not in known:
            raise ParamError(f"{kind}_id", f"Invalid '{kind}_id': no {kind} {entity_id!r}.")

    # ----------------------------------------------------------------- lists

    def _page(self, params: Mapping[str, str]) -> int:
        return self._int(params, "page", 0, None, required=False, default=0)  # type: ignore[return-value]

    def _sort_direction(self, params: Mapping[str, str]) -> str:
        direction = params.get("sort_direction", "asc")
        if direction not in ("asc", "desc"):
            raise ParamError(
                "sort_direction",
                f"Invalid 'sort_direction': must be 'asc' or 'desc', got {direction!r}.",
            )
        return direction

    @staticmethod
    def _slice(rows: list, page: int, size: int, desc: bool) -> list:
        if desc:
            n = len(rows)
            lo, hi = max(0, n - (page + 1) * size), max(0, n - page * size)
            return rows[lo:hi][::-1]
        return rows[page * size : (page + 1) * size]

    def _list_handler(self, listing: ListEndpoint) -> Callable[[Mapping[str, str], datetime], Body]:
        def handler(params: Mapping[str, str], now: datetime) -> Body:
            return {listing.key: self._list_page(listing, params), "message": "success"}

        return handler

    def _list_page(self, listing: ListEndpoint, params: Mapping[str, str]) -> list:
        page = self._page(params)
        include_archived = listing.archivable and self._bool(params, "include_archived", False)
        desc = listing.sortable and self._sort_direction(params) == "desc"
        after = self._time(params, "last_edit.time[gt]") if listing.archivable else None
        if listing.archivable and not include_archived:
            rows = self._active_rows[listing.key]
        else:
            rows = self._rows[listing.key]
        if after is not None:
            rows = [r for r in rows if datetime.fromisoformat(r["last_edited"]) > after]
        return self._slice(rows, page, listing.page_size, desc)

    # ----------------------------------------------------------------- details

    def _canvas_details(self, params: Mapping[str, str], now: datetime) -> Body:
        cid = self._required(params, "canvas_id")
        self._check_known("canvas", cid)
        return {**self.ws.canvas_details(cid, now=now), "message": "success"}

    def _campaign_details(self, params: Mapping[str, str], now: datetime) -> Body:
        cid = self._required(params, "campaign_id")
        self._check_known("campaign", cid)
        return {**self.ws.campaign_details(cid, now=now), "message": "success"}

    # ----------------------------------------------------------------- series

    def _simple_series_handler(
        self, endpoint: SimpleSeriesEndpoint
    ) -> Callable[[Mapping[str, str], datetime], Body]:
        def handler(params: Mapping[str, str], now: datetime) -> Body:
            return self._simple_series(endpoint, params, now)

        return handler

    def _simple_series(
        self, endpoint: SimpleSeriesEndpoint, params: Mapping[str, str], now: datetime
    ) -> Body:
        entity: str | None = None
        if endpoint.entity_param is not None:
            if endpoint.entity_required:
                entity = self._required(params, endpoint.entity_param)
            else:
                entity = params.get(endpoint.entity_param)
        length = self._int(params, "length", 1, endpoint.max_length, required=True)
        unit = self._unit(params, endpoint.units, endpoint.path)
        ending_at = self._time(params, "ending_at")
        app_id = self._app_filter(params) if endpoint.app_filter else None
        segment_id = self._segment(params, required=False) if endpoint.segment_filter else None
        if endpoint.entity_param == "event" and entity not in self.ws.event_set:
            raise ParamError("event", f"Invalid 'event': no custom event named {entity!r}.")
        if endpoint.entity_param == "segment_id":
            self._segment(params, required=True)
        if (
            endpoint.entity_param == "product"
            and entity is not None
            and entity not in self.ws.product_set
        ):
            raise ParamError("product", f"Invalid 'product': no product named {entity!r}.")
        data = self.ws.series(
            endpoint.path,
            now=now,
            length=length,
            unit=unit,
            ending_at=ending_at,  # type: ignore[arg-type]
            entity=entity,
            app_id=app_id,
            segment_id=segment_id,
        )
        return {"message": "success", "data": data}

    def _canvas_series(self, params: Mapping[str, str], now: datetime) -> Body:
        cid = self._required(params, "canvas_id")
        length = self._int(params, "length", 1, CANVAS_MAX_LENGTH, required=False)
        self._unit(params, ("day",), CANVAS_SERIES_PATH)
        ending_at = self._time(params, "ending_at")
        starting_at = self._time(params, "starting_at")
        inc_var = self._bool(params, "include_variant_breakdown")
        inc_step = self._bool(params, "include_step_breakdown")
        inc_del = self._bool(params, "include_deleted_step_data")
        self._check_known("canvas", cid)
        if length is None and starting_at is None:
            raise ParamError("length", "Either 'length' or 'starting_at' is required.")
        if starting_at is not None:
            now_u = timeutil.to_utc(now)
            end = now_u if ending_at is None else min(timeutil.to_utc(ending_at), now_u)
            last = self.ws.bucket_start(end - timeutil.ONE_MICROSECOND, "day")
            first = self.ws.bucket_start(starting_at, "day")
            if timeutil.to_utc(first) > timeutil.to_utc(last):
                raise ParamError(
                    "starting_at", "Invalid 'starting_at': must be before 'ending_at'."
                )
            days = (last.date() - first.date()).days + 1
            if days > CANVAS_MAX_LENGTH:
                raise ParamError(
                    "starting_at",
                    f"Invalid 'starting_at': the range from 'starting_at' to 'ending_at' spans "
                    f"{days} days; at most {CANVAS_MAX_LENGTH} are allowed.",
                )
            buckets = self.ws.window(
                now=now, unit="day", ending_at=ending_at, starting_at=starting_at
            )
        else:
            buckets = self.ws.window(now=now, length=length, unit="day", ending_at=ending_at)
        canvas = self.ws.canvas_by_id[cid]
        stats = [
            self.ws.canvas_stats(
                cid,
                b.date(),
                now=now,
                include_variant_breakdown=inc_var,
                include_step_breakdown=inc_step,
                include_deleted_step_data=inc_del,
            )
            for b in buckets
        ]
        return {"data": {"name": canvas.name, "stats": stats}, "message": "success"}

    def _campaign_series(self, params: Mapping[str, str], now: datetime) -> Body:
        cid = self._required(params, "campaign_id")
        length = self._int(params, "length", 1, 100, required=True)
        self._unit(params, ("day",), CAMPAIGN_SERIES_PATH)
        ending_at = self._time(params, "ending_at")
        self._check_known("campaign", cid)
        buckets = self.ws.window(now=now, length=length, unit="day", ending_at=ending_at)
        data = [self.ws.campaign_stats(cid, b.date(), now=now) for b in buckets]
        return {"message": "success", "data": data}
