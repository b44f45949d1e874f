"""The Braze endpoints the sandbox serves: paths, parameters, permissions, pools, page sizes."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SimpleSeriesEndpoint:
    """A "simple" data-series endpoint: ``data: [{"time": ..., <value_field>: ...}]``."""

    path: str
    value_field: str
    permission: str
    entity_param: str | None = None  # e.g. "event", "segment_id", "product"
    entity_required: bool = False
    units: tuple[str, ...] = ("day",)
    app_filter: bool = False
    segment_filter: bool = False
    is_float: bool = False
    max_length: int = 100


SERIES: dict[str, SimpleSeriesEndpoint] = {
    s.path: s
    for s in (
        SimpleSeriesEndpoint(
            "/events/data_series",
            "count",
            "events.data_series",
            entity_param="event",
            entity_required=True,
            units=("day", "hour"),
            app_filter=True,
            segment_filter=True,
        ),
        SimpleSeriesEndpoint(
            "/segments/data_series",
            "size",
            "segments.data_series",
            entity_param="segment_id",
            entity_required=True,
        ),
        SimpleSeriesEndpoint(
            "/sessions/data_series",
            "sessions",
            "sessions.data_series",
            units=("day", "hour"),
            app_filter=True,
            segment_filter=True,
        ),
        SimpleSeriesEndpoint("/kpi/dau/data_series", "dau", "kpi.dau.data_series", app_filter=True),
        SimpleSeriesEndpoint("/kpi/mau/data_series", "mau", "kpi.mau.data_series", app_filter=True),
        SimpleSeriesEndpoint(
            "/kpi/new_users/data_series",
            "new_users",
            "kpi.new_users.data_series",
            app_filter=True,
        ),
        SimpleSeriesEndpoint(
            "/kpi/uninstalls/data_series",
            "uninstalls",
            "kpi.uninstalls.data_series",
            app_filter=True,
        ),
        SimpleSeriesEndpoint(
            "/purchases/quantity_series",
            "purchase_quantity",
            "purchases.quantity_series",
            entity_param="product",
            units=("day", "hour"),
            app_filter=True,
        ),
        SimpleSeriesEndpoint(
            "/purchases/revenue_series",
            "revenue",
            "purchases.revenue_series",
            entity_param="product",
            units=("day", "hour"),
            app_filter=True,
            is_float=True,
        ),
    )
}

#: The count series: public recordings show Braze leaving out their zero buckets
#: (segment sizes, like canvas and campaign stats, come zero-filled).
COUNT_SERIES: frozenset[str] = frozenset(path for path in SERIES if path != "/segments/data_series")

CANVAS_SERIES_PATH = "/canvas/data_series"
CAMPAIGN_SERIES_PATH = "/campaigns/data_series"
CANVAS_MAX_LENGTH = 14

#: path -> permission the API key needs.
PERMISSIONS: dict[str, str] = {
    "/canvas/list": "canvas.list",
    "/canvas/details": "canvas.details",
    CANVAS_SERIES_PATH: "canvas.data_series",
    "/campaigns/list": "campaigns.list",
    "/campaigns/details": "campaigns.details",
    CAMPAIGN_SERIES_PATH: "campaigns.data_series",
    "/segments/list": "segments.list",
    "/events/list": "events.list",
    "/purchases/product_list": "purchases.product_list",
    **{path: endpoint.permission for path, endpoint in SERIES.items()},
}

#: path -> rate-limit pool (anything not listed, including unknown paths: "default").
POOLS: dict[str, str] = {
    CAMPAIGN_SERIES_PATH: "campaigns_data_series",
    "/events/list": "lists_1000",
    "/purchases/product_list": "lists_1000",
    "/purchases/quantity_series": "lists_1000",
    "/purchases/revenue_series": "lists_1000",
}


def pool_for(path: str) -> str:
    return POOLS.get(path, "default")


@dataclasses.dataclass(frozen=True)
class ListEndpoint:
    """A paged list endpoint: ``{<key>: [one page of rows], "message": "success"}``."""

    path: str
    key: str  # the body's list: "canvases", "events"...
    page_size: int
    sortable: bool = False  # takes sort_direction
    archivable: bool = False  # takes include_archived and last_edit.time[gt]


LISTS: dict[str, ListEndpoint] = {
    endpoint.path: endpoint
    for endpoint in (
        ListEndpoint("/canvas/list", "canvases", 100, sortable=True, archivable=True),
        ListEndpoint("/campaigns/list", "campaigns", 100, sortable=True, archivable=True),
        ListEndpoint("/segments/list", "segments", 100, sortable=True),
        ListEndpoint("/events/list", "events", 250),
        ListEndpoint("/purchases/product_list", "products", 100),
    )
}
