"""Every Braze endpoint the tap calls, described once, as data.

A reader looking for how an endpoint behaves (path, parameters, what it is read
for, value fields, units, maximum length, rate-limit pool, key permission) finds
it here and nowhere else. Streams, the runtime and the client read these
records; they do not repeat any of it.
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

#: The value of an axis's row over all its values (all apps, all products).
ALL = "*"


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
class DetailsEndpoint:
    """The details of one entity, read for each listed entity of `kind`."""

    kind: str
    path: str
    permission: str
    id_param: str
    pool: str = DEFAULT_POOL


@dataclass(frozen=True, slots=True)
class SkipRule:
    """Listed entities an endpoint keeps no series for, told by a field of the list item."""

    field: str
    value: object
    reason: str  # why, for the log line that names the skipped entity


@dataclass(frozen=True, slots=True)
class Axis:
    """One dimension an endpoint is read along: a partition takes one value of each axis.

    The values are the ids of the listed entities of `kind` (as the kind's own
    filter setting selects them, all by default) or, with `setting`, only the
    values that setting names (none by default), checked against Braze's list
    of `kind` when there is one. `all_row` puts first the series over all values,
    requested without `param`.
    """

    column: str  # the rows' column, and the partition's key in the state
    param: str  # the request parameter carrying the value
    kind: str | None = None
    setting: str | None = None
    skip: SkipRule | None = None
    all_row: bool = False
    # Whether the '*' row names the column in its partition's state context. An axis
    # added to an endpoint later leaves it out: the contexts that releases before it
    # wrote have no such column, and they resume as the '*' rows.
    all_in_context: bool = True
    # The column joins the primary key only when `setting` names values: a stream
    # read without the setting keeps the key it had before the setting existed.
    key_when_set: bool = False


@dataclass(frozen=True, slots=True)
class RequestFlag:
    """A request parameter set to true only when a selected stream uses what it adds."""

    param: str
    streams: frozenset[str]


@dataclass(frozen=True, slots=True)
class SeriesEndpoint:
    """A `*/data_series` (or purchases series) export endpoint."""

    path: str
    permission: str
    max_length: int
    units: tuple[Unit, ...]
    axes: tuple[Axis, ...]  # what it is read for: one partition per combination of values
    value_fields: tuple[str, ...] = ()  # simple series: the point's value field(s)
    value_kind: str = "integer"  # JSON type of the value fields: "integer" or "number"
    flags: tuple[RequestFlag, ...] = ()
    pool: str = DEFAULT_POOL
    # Whether Braze leaves out the buckets whose count is 0 rather than answering a
    # point with 0 for them. Evidence: in Airbyte's source-braze integration fixtures,
    # recorded against a live workspace on 2022-12-15, /events/data_series and the KPI
    # series (DAU, new users, uninstalls) answered `data: []` for a workspace without
    # that activity, while the canvas, campaign and segment series came zero-filled (a
    # point with `size: 0` or zero `total_stats` for every day, even for untracked
    # segments and for days before a canvas was edited). The count series (events,
    # sessions, KPIs, purchases) are declared so; hours are taken to behave as days.
    # For such an endpoint a bucket without a point is a 0, not a hole (feed.py).
    omits_zero_buckets: bool = False
    # Braze zero-fills an entity's series before it existed: with the details endpoint
    # whose `created_at` tells that day, a partition without a bookmark starts there.
    created_by: DetailsEndpoint | None = None


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

CANVAS_DETAILS = DetailsEndpoint(
    kind="canvases", path="/canvas/details", permission="canvas.details", id_param="canvas_id"
)
CAMPAIGN_DETAILS = DetailsEndpoint(
    kind="campaigns",
    path="/campaigns/details",
    permission="campaigns.details",
    id_param="campaign_id",
)

# Axes. A setting's axis has its '*' row: the series of all apps / products / users.
APPS = Axis(column="app_id", param="app_id", setting="app_ids", all_row=True, key_when_set=True)
PRODUCTS = Axis(
    column="product", param="product", kind="products", setting="product_names", all_row=True
)
UNTRACKED = SkipRule(
    field="analytics_tracking_enabled",
    value=False,
    reason="it has analytics tracking disabled, so Braze keeps no series for it",
)
TRACKED_SEGMENTS = Axis(column="segment_id", param="segment_id", kind="segments", skip=UNTRACKED)
# The users of each segment series_segment_ids names; '*' is all users.
SEGMENT_USERS = Axis(
    column="segment_id",
    param="segment_id",
    kind="segments",
    setting="series_segment_ids",
    skip=UNTRACKED,
    all_row=True,
    all_in_context=False,
    key_when_set=True,
)

# Breakdowns cost Braze work and bytes: ask only for what a selected stream uses.
_STEP_STREAMS = frozenset({"canvas_step_data_series", "canvas_step_message_data_series"})
CANVAS_SERIES = SeriesEndpoint(
    path="/canvas/data_series",
    permission="canvas.data_series",
    max_length=14,
    units=("day",),
    axes=(Axis(column="canvas_id", param="canvas_id", kind="canvases"),),
    created_by=CANVAS_DETAILS,
    flags=(
        RequestFlag("include_variant_breakdown", frozenset({"canvas_variant_data_series"})),
        RequestFlag("include_step_breakdown", _STEP_STREAMS),
        RequestFlag("include_deleted_step_data", _STEP_STREAMS),
    ),
)
CAMPAIGN_SERIES = SeriesEndpoint(
    path="/campaigns/data_series",
    permission="campaigns.data_series",
    max_length=100,
    units=("day",),
    axes=(Axis(column="campaign_id", param="campaign_id", kind="campaigns"),),
    pool=CAMPAIGN_SERIES_POOL,
    created_by=CAMPAIGN_DETAILS,
)
EVENT_SERIES = SeriesEndpoint(
    path="/events/data_series",
    permission="events.data_series",
    max_length=100,
    units=("day", "hour"),
    axes=(Axis(column="event_name", param="event", kind="events"), APPS, SEGMENT_USERS),
    value_fields=("count",),
    omits_zero_buckets=True,
)
SEGMENT_SERIES = SeriesEndpoint(
    path="/segments/data_series",
    permission="segments.data_series",
    max_length=100,
    units=("day",),
    axes=(TRACKED_SEGMENTS,),
    value_fields=("size",),
)
SESSION_SERIES = SeriesEndpoint(
    path="/sessions/data_series",
    permission="sessions.data_series",
    max_length=100,
    units=("day", "hour"),
    axes=(APPS, SEGMENT_USERS),
    value_fields=("sessions",),
    omits_zero_buckets=True,
)
KPI_DAU_SERIES = SeriesEndpoint(
    path="/kpi/dau/data_series",
    permission="kpi.dau.data_series",
    max_length=100,
    units=("day",),
    axes=(APPS,),
    value_fields=("dau",),
    omits_zero_buckets=True,
)
KPI_MAU_SERIES = SeriesEndpoint(
    path="/kpi/mau/data_series",
    permission="kpi.mau.data_series",
    max_length=100,
    units=("day",),
    axes=(APPS,),
    value_fields=("mau",),
    omits_zero_buckets=True,
)
KPI_NEW_USERS_SERIES = SeriesEndpoint(
    path="/kpi/new_users/data_series",
    permission="kpi.new_users.data_series",
    max_length=100,
    units=("day",),
    axes=(APPS,),
    value_fields=("new_users",),
    omits_zero_buckets=True,
)
KPI_UNINSTALLS_SERIES = SeriesEndpoint(
    path="/kpi/uninstalls/data_series",
    permission="kpi.uninstalls.data_series",
    max_length=100,
    units=("day",),
    axes=(APPS,),
    value_fields=("uninstalls",),
    omits_zero_buckets=True,
)
# Some Braze pages put the purchase series in the 1,000/hour pool with the
# product list; we budget them there, which is never wrong, only slower.
PURCHASE_QUANTITY_SERIES = SeriesEndpoint(
    path="/purchases/quantity_series",
    permission="purchases.quantity_series",
    max_length=100,
    units=("day", "hour"),
    axes=(PRODUCTS, APPS),
    value_fields=("purchase_quantity",),
    pool=SMALL_LISTS_POOL,
    omits_zero_buckets=True,
)
PURCHASE_REVENUE_SERIES = SeriesEndpoint(
    path="/purchases/revenue_series",
    permission="purchases.revenue_series",
    max_length=100,
    units=("day", "hour"),
    axes=(PRODUCTS, APPS),
    value_fields=("revenue",),
    value_kind="number",
    pool=SMALL_LISTS_POOL,
    omits_zero_buckets=True,
)

#: Every endpoint the tap calls.
ENDPOINTS: tuple[ListEndpoint | DetailsEndpoint | SeriesEndpoint, ...] = (
    *LISTS.values(),
    CANVAS_DETAILS,
    CAMPAIGN_DETAILS,
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

#: path -> permission, to name what a 403 lacks.
PERMISSIONS: dict[str, str] = {e.path: e.permission for e in ENDPOINTS}

#: path -> pool, for the rate governor.
POOLS: dict[str, str] = {e.path: e.pool for e in ENDPOINTS}


def pool_of(path: str) -> str:
    """The rate-limit pool a path counts against."""
    return POOLS.get(path, DEFAULT_POOL)
