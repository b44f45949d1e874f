"""Static description of the Braze endpoints the sandbox serves."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SeriesSpec:
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


SERIES: dict[str, SeriesSpec] = {
    s.path: s
    for s in (
        SeriesSpec(
            "/events/data_series",
            "count",
            "events.data_series",
            entity_param="event",
            entity_required=True,
            units=("day", "hour"),
            app_filter=True,
            segment_filter=True,
        ),
        SeriesSpec(
            "/segments/data_series",
            "size",
            "segments.data_series",
            entity_param="segment_id",
            entity_required=True,
        ),
        SeriesSpec(
            "/sessions/data_series",
            "sessions",
            "sessions.data_series",
            units=("day", "hour"),
            app_filter=True,
            segment_filter=True,
        ),
        SeriesSpec("/kpi/dau/data_series", "dau", "kpi.dau.data_series", app_filter=True),
        SeriesSpec("/kpi/mau/data_series", "mau", "kpi.mau.data_series", app_filter=True),
        SeriesSpec(
            "/kpi/new_users/data_series",
            "new_users",
            "kpi.new_users.data_series",
            app_filter=True,
        ),
        SeriesSpec(
            "/kpi/uninstalls/data_series",
            "uninstalls",
            "kpi.uninstalls.data_series",
            app_filter=True,
        ),
        SeriesSpec(
            "/purchases/quantity_series",
            "purchase_quantity",
            "purchases.quantity_series",
            entity_param="product",
            units=("day", "hour"),
            app_filter=True,
        ),
        SeriesSpec(
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
    **{path: spec.permission for path, spec in SERIES.items()},
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


#: Page sizes of the list endpoints.
PAGE_SIZES: dict[str, int] = {
    "/canvas/list": 100,
    "/campaigns/list": 100,
    "/segments/list": 100,
    "/events/list": 250,
    "/purchases/product_list": 100,
}

#: Every channel name the sandbox uses in stats and details.
CHANNELS: tuple[str, ...] = (
    "email",
    "sms",
    "ios_push",
    "android_push",
    "web_push",
    "kindle_push",
    "webhook",
    "in_app_message",
    "content_cards",
    "whats_app",
)
PUSH_CHANNELS = ("ios_push", "android_push", "web_push", "kindle_push")

# Channel metric recipes: (metric, parent metric or None for the root, low, high ratio).
_PUSH = (
    ("sent", None, 0, 0),
    ("direct_opens", "sent", 0.02, 0.12),
    ("total_opens", "direct_opens", 1.1, 1.6),
    ("bounces", "sent", 0.0, 0.05),
    ("body_clicks", "direct_opens", 0.4, 0.9),
)
_EXTRA_PUSH = (("influenced_opens", "direct_opens", 0.1, 0.5),)

CANVAS_CHANNEL_METRICS: dict[str, tuple[tuple[str, str | None, float, float], ...]] = {
    "email": (
        ("sent", None, 0, 0),
        ("opens", "sent", 0.2, 0.55),
        ("unique_opens", "opens", 0.6, 0.9),
        ("clicks", "opens", 0.05, 0.3),
        ("unique_clicks", "clicks", 0.6, 0.95),
        ("bounces", "sent", 0.005, 0.05),
        ("unsubscribes", "sent", 0.0, 0.01),
        ("delivered", "sent", 0.9, 0.99),
        ("spam", "sent", 0.0, 0.003),
        ("machine_open", "opens", 0.1, 0.4),  # undocumented extra
    ),
    "sms": (
        ("sent", None, 0, 0),
        ("sent_to_carrier", "sent", 0.95, 1.0),
        ("delivered", "sent_to_carrier", 0.9, 0.99),
        ("rejected", "sent", 0.0, 0.03),
        ("delivery_failed", "sent_to_carrier", 0.0, 0.05),
        ("clicks", "delivered", 0.0, 0.1),
        ("opt_out", "delivered", 0.0, 0.02),
        ("help", "delivered", 0.0, 0.005),
    ),
    "ios_push": _PUSH + _EXTRA_PUSH,
    "android_push": _PUSH + _EXTRA_PUSH,
    "web_push": _PUSH,
    "kindle_push": _PUSH,
    "webhook": (("sent", None, 0, 0), ("errors", "sent", 0.0, 0.03)),
    "in_app_message": (
        ("impressions", None, 0, 0),
        ("clicks", "impressions", 0.02, 0.2),
        ("first_button_clicks", "clicks", 0.3, 0.7),
        ("second_button_clicks", "clicks", 0.05, 0.3),
    ),
    "content_cards": (
        ("sent", None, 0, 0),
        ("total_impressions", "sent", 0.3, 1.5),
        ("unique_impressions", "total_impressions", 0.5, 0.9),
        ("total_clicks", "total_impressions", 0.02, 0.2),
        ("unique_clicks", "total_clicks", 0.6, 0.95),
        ("total_dismissals", "total_impressions", 0.05, 0.3),
        ("unique_dismissals", "total_dismissals", 0.6, 0.95),
    ),
    "whats_app": (
        ("sent", None, 0, 0),
        ("delivered", "sent", 0.9, 0.99),
        ("failed", "sent", 0.0, 0.05),
        ("read", "delivered", 0.4, 0.9),
    ),
}

#: /campaigns/data_series uses the campaign docs' names where they differ.
CAMPAIGN_CHANNEL_METRICS: dict[str, tuple[tuple[str, str | None, float, float], ...]] = {
    **CANVAS_CHANNEL_METRICS,
    "email": (
        ("sent", None, 0, 0),
        ("opens", "sent", 0.2, 0.55),
        ("unique_opens", "opens", 0.6, 0.9),
        ("clicks", "opens", 0.05, 0.3),
        ("unique_clicks", "clicks", 0.6, 0.95),
        ("unsubscribes", "sent", 0.0, 0.01),
        ("bounces", "sent", 0.005, 0.05),
        ("delivered", "sent", 0.9, 0.99),
        ("reported_spam", "sent", 0.0, 0.003),
        ("machine_open", "opens", 0.1, 0.4),  # undocumented extra
    ),
    "sms": (
        ("sent", None, 0, 0),
        ("delivered", "sent", 0.9, 0.99),
        ("undelivered", "sent", 0.0, 0.05),
        ("delivery_failed", "sent", 0.0, 0.05),
    ),
}

#: Metrics the sandbox emits that Braze's reference pages do not list.
UNDOCUMENTED_METRICS: dict[str, tuple[str, ...]] = {
    "email": ("machine_open",),
    "ios_push": ("influenced_opens",),
    "android_push": ("influenced_opens",),
}
