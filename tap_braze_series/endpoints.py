"""Every Braze endpoint the tap calls, described once, as data.

A reader looking for how an endpoint behaves (path, id parameter, value
fields, units, maximum length, rate-limit pool, key permission, filters)
finds it here and nowhere else. Streams and the client read these records;
they do not repeat any of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tap_braze_series.windows import Unit

# Rate-limit pools: Braze counts requests per workspace in these buckets.
DEFAULT_POOL = "default"  # 250,000 requests per hour
CAMPAIGN_SERIES_POOL = "campaigns_data_series"  # 50,000 requests per minute
SMALL_LISTS_POOL = "lists_1000"  # 1,000 requests per hour, shared

#: Braze's documented limits: pool -> (requests, window in seconds).
POOL_LIMITS: dict[str, tuple[int, float]] = {
    DEFAULT_POOL: (250_000, 3600.0),
    CAMPAIGN_SERIES_POOL: (50_000, 60.0),
    SMALL_LISTS_POOL: (1_000, 3600.0),
}


@dataclass(frozen=True, slots=True)
class ListEndpoint:
    """A paged list that enumerates one kind of entity."""

    kind: str  # "canvases", "campaigns", "segments", "events", "products"
    path: str
    permission: str
    items_field: str  # the response field holding the page's items
    page_size: int
    pool: str = DEFAULT_POOL
    supports_archived: bool = False  # accepts include_archived


@dataclass(frozen=True, slots=True)
class SeriesEndpoint:
    """A `*/data_series` (or purchases series) export endpoint."""

    path: str
    permission: str
    max_length: int
    units: tuple[Unit, ...]
    entity: str | None = None  # entity kind whose ids feed `id_param`
    id_param: str | None = None
    id_required: bool = True
    value_fields: tuple[str, ...] = ()
    app_filter: bool = False  # accepts app_id
    pool: str = DEFAULT_POOL
    nested: bool = False  # `data` is an object with breakdowns (canvas) or carries messages


CANVAS_LIST = ListEndpoint(
    kind="canvases",
    path="/canvas/list",
    permission="canvas.list",
    items_field="canvases",
    page_size=100,
    supports_archived=True,
)
CAMPAIGN_LIST = ListEndpoint(
    kind="campaigns",
    path="/campaigns/list",
    permission="campaigns.list",
    items_field="campaigns",
    page_size=100,
    supports_archived=True,
)
SEGMENT_LIST = ListEndpoint(
    kind="segments",
    path="/segments/list",
    permission="segments.list",
    items_field="segments",
    page_size=100,
)
EVENT_LIST = ListEndpoint(
    kind="events",
    path="/events/list",
    permission="events.list",
    items_field="events",
    page_size=250,
    pool=SMALL_LISTS_POOL,
)
PRODUCT_LIST = ListEndpoint(
    kind="products",
    path="/purchases/product_list",
    permission="purchases.product_list",
    items_field="products",
    page_size=100,
    pool=SMALL_LISTS_POOL,
)

LISTS: dict[str, ListEndpoint] = {
    e.kind: e for e in (CANVAS_LIST, CAMPAIGN_LIST, SEGMENT_LIST, EVENT_LIST, PRODUCT_LIST)
}

CANVAS_SERIES = SeriesEndpoint(
    path="/canvas/data_series",
    permission="canvas.data_series",
    max_length=14,
    units=("day",),
    entity="canvases",
    id_param="canvas_id",
    nested=True,
)
CAMPAIGN_SERIES = SeriesEndpoint(
    path="/campaigns/data_series",
    permission="campaigns.data_series",
    max_length=100,
    units=("day",),
    entity="campaigns",
    id_param="campaign_id",
    pool=CAMPAIGN_SERIES_POOL,
    nested=True,
)
EVENT_SERIES = SeriesEndpoint(
    path="/events/data_series",
    permission="events.data_series",
    max_length=100,
    units=("day", "hour"),
    entity="events",
    id_param="event",
    value_fields=("count",),
    app_filter=True,
)
SEGMENT_SERIES = SeriesEndpoint(
    path="/segments/data_series",
    permission="segments.data_series",
    max_length=100,
    units=("day",),
    entity="segments",
    id_param="segment_id",
    value_fields=("size",),
)
SESSION_SERIES = SeriesEndpoint(
    path="/sessions/data_series",
    permission="sessions.data_series",
    max_length=100,
    units=("day", "hour"),
    value_fields=("sessions",),
    app_filter=True,
)
KPI_DAU_SERIES = SeriesEndpoint(
    path="/kpi/dau/data_series",
    permission="kpi.dau.data_series",
    max_length=100,
    units=("day",),
    value_fields=("dau",),
    app_filter=True,
)
KPI_MAU_SERIES = SeriesEndpoint(
    path="/kpi/mau/data_series",
    permission="kpi.mau.data_series",
    max_length=100,
    units=("day",),
    value_fields=("mau",),
    app_filter=True,
)
KPI_NEW_USERS_SERIES = SeriesEndpoint(
    path="/kpi/new_users/data_series",
    permission="kpi.new_users.data_series",
    max_length=100,
    units=("day",),
    value_fields=("new_users",),
    app_filter=True,
)
KPI_UNINSTALLS_SERIES = SeriesEndpoint(
    path="/kpi/uninstalls/data_series",
    permission="kpi.uninstalls.data_series",
    max_length=100,
    units=("day",),
    value_fields=("uninstalls",),
    app_filter=True,
)
# Some Braze pages put the purchase series in the 1,000/hour pool with the
# product list; we budget them there, which is never wrong, only slower.
PURCHASE_QUANTITY_SERIES = SeriesEndpoint(
    path="/purchases/quantity_series",
    permission="purchases.quantity_series",
    max_length=100,
    units=("day", "hour"),
    entity="products",
    id_param="product",
    id_required=False,
    value_fields=("purchase_quantity",),
    app_filter=True,
    pool=SMALL_LISTS_POOL,
)
PURCHASE_REVENUE_SERIES = SeriesEndpoint(
    path="/purchases/revenue_series",
    permission="purchases.revenue_series",
    max_length=100,
    units=("day", "hour"),
    entity="products",
    id_param="product",
    id_required=False,
    value_fields=("revenue",),
    app_filter=True,
    pool=SMALL_LISTS_POOL,
)

DETAILS_PATHS = {"canvases": "/canvas/details", "campaigns": "/campaigns/details"}
DETAILS_PERMISSIONS = {"canvases": "canvas.details", "campaigns": "campaigns.details"}
DETAILS_ID_PARAMS = {"canvases": "canvas_id", "campaigns": "campaign_id"}

#: path -> permission, for every endpoint, to name what a 403 lacks.
PERMISSIONS: dict[str, str] = {
    **{e.path: e.permission for e in LISTS.values()},
    **{
        e.path: e.permission
        for e in (
            CANVAS_SERIES,
            CAMPAIGN_SERIES,
            EVENT_SERIES,
            SEGMENT_SERIES,
            SESSION_SERIES,
            KPI_DAU_SERIES,
            KPI_MAU_SERIES,
            KPI_NEW_USERS_SERIES,
            KPI_UNINSTALLS_SERIES,
            PURCHASE_QUANTITY_SERIES,
            PURCHASE_REVENUE_SERIES,
        )
    },
    DETAILS_PATHS["canvases"]: DETAILS_PERMISSIONS["canvases"],
    DETAILS_PATHS["campaigns"]: DETAILS_PERMISSIONS["campaigns"],
}

#: path -> pool, for the rate governor.
POOLS: dict[str, str] = {
    **{e.path: e.pool for e in LISTS.values()},
    CAMPAIGN_SERIES.path: CAMPAIGN_SERIES.pool,
    PURCHASE_QUANTITY_SERIES.path: PURCHASE_QUANTITY_SERIES.pool,
    PURCHASE_REVENUE_SERIES.path: PURCHASE_REVENUE_SERIES.pool,
}


def pool_of(path: str) -> str:
    """The rate-limit pool a path counts against."""
    return POOLS.get(path, DEFAULT_POOL)
