"""Every Braze endpoint the tap calls, described once, as data.

A reader looking for how an endpoint behaves (path, parameters, what it is read
for, value fields, units, maximum length, rate-limit pool, key permission) finds
it here and nowhere else. Streams, the runtime and the client read these
records; they do not repeat any of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_braze_series.windows import Unit

if TYPE_CHECKING:
    from tap_braze_series.config import Settings

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


def _permission_of(path: str) -> str:
    """Braze names an endpoint's permission after its path: /kpi/dau/data_series needs
    kpi.dau.data_series."""
    return path.strip("/").replace("/", ".")


@dataclass(frozen=True, slots=True)
class ListEndpoint:
    """A paged list that enumerates one kind of entity."""

    kind: str  # "canvases", "campaigns", "segments", "events", "products"
    path: str
    # The list setting naming the entities of this kind to sync (all when it names none).
    filter_setting: str
    page_size: int = 100
    # The item's fields that may hold its identifier, the first non-empty one wins.
    id_fields: tuple[str, ...] = ("id",)
    names: bool = False  # items may also be bare strings, their own identifier
    pool: str = DEFAULT_POOL
    supports_archived: bool = False  # accepts include_archived and sort_direction

    @property
    def permission(self) -> str:
        return _permission_of(self.path)

    @property
    def items_field(self) -> str:
        """The response field holding the page's items: Braze names it after the kind."""
        return self.kind

    def item_id(self, item: Any) -> str | None:
        """The identifier of one listed item, None if it has none."""
        if self.names and isinstance(item, str):
            return item
        if not isinstance(item, Mapping):
            return None
        for name in self.id_fields:
            value = item.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def request_params(self, settings: Settings) -> dict[str, Any]:
        """The parameters of every page request (the pager adds `page`)."""
        if not self.supports_archived:
            return {}
        # Configured ids are wanted whether archived or not.
        wanted = settings.ids(self.filter_setting)
        return {
            "include_archived": bool(wanted) or settings.include_archived,
            "sort_direction": "asc",
        }


@dataclass(frozen=True, slots=True)
class SkipRule:
    """Listed entities an endpoint keeps no series for, told by a field of the list item."""

    field: str
    value: object
    reason: str  # why, for the log line that names the skipped entity

    def skips(self, item: Any) -> bool:
        """Whether the listed item is one the endpoint keeps no series for."""
        return isinstance(item, Mapping) and item.get(self.field) is self.value


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
    description: str  # the column's, in the catalog
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
class DetailsEndpoint:
    """The details of one entity, read for each listed entity of its axis's kind."""

    path: str
    entity: Axis  # the entity asked: its kind, the id parameter, the rows' id column
    pool: str = DEFAULT_POOL

    @property
    def permission(self) -> str:
        return _permission_of(self.path)

    @property
    def kind(self) -> str:
        return self.entity.kind or ""

    @property
    def id_param(self) -> str:
        return self.entity.param


@dataclass(frozen=True, slots=True)
class RequestFlag:
    """A request parameter set to true only when a selected stream uses what it adds."""

    param: str
    streams: frozenset[str]


@dataclass(frozen=True, slots=True)
class SeriesTable:
    """A stream an endpoint's answers fill: its name, unit and catalog description.

    A simple series' table has one row per partition and bucket, with the value
    fields; the other tables' rows (canvas, campaign breakdowns) are cut as
    catalog.BREAKDOWNS says.
    """

    name: str
    unit: Unit
    description: str


@dataclass(frozen=True, slots=True)
class SeriesEndpoint:
    """A `*/data_series` (or purchases series) export endpoint."""

    path: str
    axes: tuple[Axis, ...]  # what it is read for: one partition per combination of values
    # Its streams, in the order the tap syncs them. One request serves the tables of a
    # unit: several form a family named `family` (see feed.py), a single one is its own.
    tables: tuple[SeriesTable, ...]
    family: str = ""
    # Whether requests carry `unit`: Braze's endpoints that take one (day or hour),
    # whichever units the tap reads them in.
    sends_unit: bool = False
    max_length: int = 100  # buckets one request may cover
    # Where a response's points sit: the `data` list, or the `stats` of the `data` object.
    points_at: str = "data"
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

    @property
    def permission(self) -> str:
        return _permission_of(self.path)

    @property
    def units(self) -> tuple[Unit, ...]:
        """The units the tap reads it in: those of its tables."""
        return tuple(dict.fromkeys(table.unit for table in self.tables))


def _day(name: str, description: str) -> SeriesTable:
    return SeriesTable(name, "day", description)


def _hour(name: str, description: str) -> SeriesTable:
    return SeriesTable(name, "hour", description)


CANVAS_LIST = ListEndpoint("canvases", "/canvas/list", "canvas_ids", supports_archived=True)
CAMPAIGN_LIST = ListEndpoint("campaigns", "/campaigns/list", "campaign_ids", supports_archived=True)
SEGMENT_LIST = ListEndpoint("segments", "/segments/list", "segment_ids")
# Events and products are names: a list item is the name, or an object holding it.
EVENT_LIST = ListEndpoint(
    "events",
    "/events/list",
    "event_names",
    page_size=250,
    id_fields=("name", "product_name"),
    names=True,
    pool=SMALL_LISTS_POOL,
)
PRODUCT_LIST = ListEndpoint(
    "products",
    "/purchases/product_list",
    "product_names",
    id_fields=("name", "product_name"),
    names=True,
    pool=SMALL_LISTS_POOL,
)

LISTS: dict[str, ListEndpoint] = {
    e.kind: e for e in (CANVAS_LIST, CAMPAIGN_LIST, SEGMENT_LIST, EVENT_LIST, PRODUCT_LIST)
}

# Axes. A setting's axis has its '*' row: the series of all apps / products / users.
CANVASES = Axis("canvas_id", "canvas_id", "Canvas API identifier.", kind="canvases")
CAMPAIGNS = Axis("campaign_id", "campaign_id", "Campaign API identifier.", kind="campaigns")
EVENTS = Axis("event_name", "event", "Custom event name.", kind="events")
APPS = Axis(
    "app_id",
    "app_id",
    "App API identifier, or '*' for the series of all apps.",
    setting="app_ids",
    all_row=True,
    key_when_set=True,
)
PRODUCTS = Axis(
    "product",
    "product",
    "Product name, or '*' for all products.",
    kind="products",
    setting="product_names",
    all_row=True,
)
UNTRACKED = SkipRule(
    field="analytics_tracking_enabled",
    value=False,
    reason="it has analytics tracking disabled, so Braze keeps no series for it",
)
TRACKED_SEGMENTS = Axis(
    "segment_id", "segment_id", "Segment API identifier.", kind="segments", skip=UNTRACKED
)
# The users of each segment series_segment_ids names; '*' is all users.
SEGMENT_USERS = Axis(
    "segment_id",
    "segment_id",
    "Segment API identifier, or '*' for all users.",
    kind="segments",
    setting="series_segment_ids",
    skip=UNTRACKED,
    all_row=True,
    all_in_context=False,
    key_when_set=True,
)

CANVAS_DETAILS = DetailsEndpoint("/canvas/details", CANVASES)
CAMPAIGN_DETAILS = DetailsEndpoint("/campaigns/details", CAMPAIGNS)

# Metrics of the canvas total, variant and step stats: typed columns.
CANVAS_STAT_METRICS: dict[str, str] = {
    "revenue": "number",
    "conversions": "integer",
    "conversions_by_entry_time": "integer",
    "entries": "integer",
}

# Recipients and conversions, of a campaign's day and of each message.
_CONVERSIONS = (
    "unique_recipients",
    "conversions",
    "conversions_by_send_time",
    "conversions1",
    "conversions1_by_send_time",
    "conversions2",
    "conversions2_by_send_time",
    "conversions3",
    "conversions3_by_send_time",
)

# Per-channel message metrics Braze documents, across channels (canvas steps and
# campaigns): typed columns.
MESSAGE_METRICS: dict[str, str] = {
    name: "integer"
    for name in (
        "sent",
        "opens",
        "unique_opens",
        "clicks",
        "unique_clicks",
        "bounces",
        "unsubscribes",
        "delivered",
        "reported_spam",
        "sent_to_carrier",
        "rejected",
        "delivery_failed",
        "opt_out",
        "help",
        "direct_opens",
        "total_opens",
        "body_clicks",
        "errors",
        "impressions",
        "first_button_clicks",
        "second_button_clicks",
        "total_impressions",
        "unique_impressions",
        "total_clicks",
        "total_dismissals",
        "unique_dismissals",
        "failed",
        "read",
        "enrolled",
        *_CONVERSIONS,
    )
} | {"revenue": "number"}

# Metrics of a campaign's day: typed columns.
CAMPAIGN_METRICS: dict[str, str] = dict.fromkeys(_CONVERSIONS, "integer") | {"revenue": "number"}

# Breakdowns cost Braze work and bytes: ask only for what a selected stream uses.
_STEP_STREAMS = frozenset({"canvas_step_data_series", "canvas_step_message_data_series"})
CANVAS_SERIES = SeriesEndpoint(
    "/canvas/data_series",
    axes=(CANVASES,),
    # Listed in the order the tap syncs them: the first selected drives the requests
    # and writes its rows as they arrive; the others' rows go through a spool.
    tables=(
        _day(
            "canvas_step_message_data_series",
            "Daily message stats per canvas step, channel and message entry.",
        ),
        _day("canvas_step_data_series", "Daily stats of each canvas step, deleted steps included."),
        _day("canvas_variant_data_series", "Daily stats of each canvas variant."),
        _day("canvas_data_series", "Daily total stats of each canvas."),
    ),
    family="canvas",
    max_length=14,
    points_at="data.stats",
    created_by=CANVAS_DETAILS,
    flags=(
        RequestFlag("include_variant_breakdown", frozenset({"canvas_variant_data_series"})),
        RequestFlag("include_step_breakdown", _STEP_STREAMS),
        RequestFlag("include_deleted_step_data", _STEP_STREAMS),
    ),
)
CAMPAIGN_SERIES = SeriesEndpoint(
    "/campaigns/data_series",
    axes=(CAMPAIGNS,),
    tables=(
        _day(
            "campaign_message_data_series",
            "Daily message stats per campaign, channel and variation.",
        ),
        _day("campaign_data_series", "Daily stats of each campaign."),
    ),
    family="campaign",
    pool=CAMPAIGN_SERIES_POOL,
    created_by=CAMPAIGN_DETAILS,
)


def _day_and_hour_counts(
    path: str, table: str, value_field: str, days: str, hours: str, *axes: Axis
) -> SeriesEndpoint:
    """A count read by day and by hour (the `unit` it carries), per `axes`, app and
    segment's users."""
    return SeriesEndpoint(
        path,
        axes=(*axes, APPS, SEGMENT_USERS),
        tables=(_day(table, days), _hour(f"{table}_hourly", hours)),
        sends_unit=True,
        value_fields=(value_field,),
        omits_zero_buckets=True,
    )


EVENT_SERIES = _day_and_hour_counts(
    "/events/data_series",
    "event_data_series",
    "count",
    "Daily occurrences of each custom event.",
    "Hourly occurrences of each custom event.",
    EVENTS,
)
SEGMENT_SERIES = SeriesEndpoint(
    "/segments/data_series",
    axes=(TRACKED_SEGMENTS,),
    tables=(
        _day(
            "segment_data_series", "Daily estimated size of each segment with analytics tracking."
        ),
    ),
    value_fields=("size",),
)
SESSION_SERIES = _day_and_hour_counts(
    "/sessions/data_series",
    "session_data_series",
    "sessions",
    "Daily sessions.",
    "Hourly sessions.",
)


def _kpi_series(metric: str, description: str) -> SeriesEndpoint:
    """/kpi/<metric>/data_series: one count a day, per app."""
    return SeriesEndpoint(
        f"/kpi/{metric}/data_series",
        axes=(APPS,),
        tables=(_day(f"kpi_{metric}_data_series", description),),
        value_fields=(metric,),
        omits_zero_buckets=True,
    )


KPI_DAU_SERIES = _kpi_series("dau", "Daily active users.")
KPI_MAU_SERIES = _kpi_series("mau", "Monthly active users (30-day rolling).")
KPI_NEW_USERS_SERIES = _kpi_series("new_users", "New users.")
KPI_UNINSTALLS_SERIES = _kpi_series("uninstalls", "Uninstalls.")


def _purchase_series(
    metric: str, value_field: str, value_kind: str, description: str
) -> SeriesEndpoint:
    """/purchases/<metric>_series: per product and app. Braze reads them by day or by hour
    (the `unit` they carry); the tap reads days. Some Braze pages put them in the
    1,000/hour pool with the product list; we budget them there, which is never wrong,
    only slower."""
    return SeriesEndpoint(
        f"/purchases/{metric}_series",
        axes=(PRODUCTS, APPS),
        tables=(_day(f"purchase_{metric}_series", description),),
        sends_unit=True,
        value_fields=(value_field,),
        value_kind=value_kind,
        pool=SMALL_LISTS_POOL,
        omits_zero_buckets=True,
    )


PURCHASE_QUANTITY_SERIES = _purchase_series(
    "quantity",
    "purchase_quantity",
    "integer",
    "Daily purchases, of all products ('*') and of each configured product.",
)
PURCHASE_REVENUE_SERIES = _purchase_series(
    "revenue",
    "revenue",
    "number",
    "Daily revenue, of all products ('*') and of each configured product.",
)

#: Every series endpoint, in the order of its streams in the catalog.
SERIES_ENDPOINTS: tuple[SeriesEndpoint, ...] = (
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

#: Every endpoint the tap calls.
ENDPOINTS: tuple[ListEndpoint | DetailsEndpoint | SeriesEndpoint, ...] = (
    *LISTS.values(),
    CANVAS_DETAILS,
    CAMPAIGN_DETAILS,
    *SERIES_ENDPOINTS,
)

#: path -> permission, to name what a 403 lacks.
PERMISSIONS: dict[str, str] = {e.path: e.permission for e in ENDPOINTS}

#: path -> pool, for the rate governor.
POOLS: dict[str, str] = {e.path: e.pool for e in ENDPOINTS}

#: list setting (canvas_ids, ...) -> the kind of entity it names.
FILTER_SETTINGS: dict[str, str] = {e.filter_setting: e.kind for e in LISTS.values()}


def pool_of(path: str) -> str:
    """The rate-limit pool a path counts against."""
    return POOLS.get(path, DEFAULT_POOL)


def request_unit(endpoint: SeriesEndpoint, unit: Unit) -> Unit | None:
    """The `unit` parameter of a request read in `unit` (only where the endpoint takes one)."""
    return unit if endpoint.sends_unit else None


def series_params(
    endpoint: SeriesEndpoint,
    unit: Unit,
    axis_params: Mapping[str, Any],
    length: int,
    ending_at: str,
    selected: Iterable[str] = (),
) -> dict[str, Any]:
    """The parameters of one series request: a partition's axis values, its window, the
    `unit` where the endpoint takes one, and the flags of the `selected` streams."""
    params: dict[str, Any] = {**axis_params, "length": length, "ending_at": ending_at}
    if (sent := request_unit(endpoint, unit)) is not None:
        params["unit"] = sent
    chosen = set(selected)
    for flag in endpoint.flags:
        if chosen & flag.streams:
            params[flag.param] = True
    return params
