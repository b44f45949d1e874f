"""The message channels of canvas and campaign stats and the metrics each one reports."""

from __future__ import annotations

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
Recipe = tuple[tuple[str, str | None, float, float], ...]

_PUSH: Recipe = (
    ("sent", None, 0, 0),
    ("direct_opens", "sent", 0.02, 0.12),
    ("total_opens", "direct_opens", 1.1, 1.6),
    ("bounces", "sent", 0.0, 0.05),
    ("body_clicks", "direct_opens", 0.4, 0.9),
)
_EXTRA_PUSH: Recipe = (("influenced_opens", "direct_opens", 0.1, 0.5),)

#: Email metrics: (parent, low, high ratio) by name; canvases and campaigns list them in
#: their own docs' orders, and campaigns call spam "reported_spam".
_EMAIL: dict[str, tuple[str | None, float, float]] = {
    "sent": (None, 0, 0),
    "opens": ("sent", 0.2, 0.55),
    "unique_opens": ("opens", 0.6, 0.9),
    "clicks": ("opens", 0.05, 0.3),
    "unique_clicks": ("clicks", 0.6, 0.95),
    "bounces": ("sent", 0.005, 0.05),
    "unsubscribes": ("sent", 0.0, 0.01),
    "delivered": ("sent", 0.9, 0.99),
    "spam": ("sent", 0.0, 0.003),
    "machine_open": ("opens", 0.1, 0.4),  # undocumented extra
}
_EMAIL_OPENS_AND_CLICKS = ("sent", "opens", "unique_opens", "clicks", "unique_clicks")


def _email(*names: str, spam: str = "spam") -> Recipe:
    return tuple((spam if n == "spam" else n, *_EMAIL[n]) for n in names)


CANVAS_CHANNEL_METRICS: dict[str, Recipe] = {
    "email": _email(
        *_EMAIL_OPENS_AND_CLICKS, "bounces", "unsubscribes", "delivered", "spam", "machine_open"
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
CAMPAIGN_CHANNEL_METRICS: dict[str, Recipe] = {
    **CANVAS_CHANNEL_METRICS,
    "email": _email(
        *_EMAIL_OPENS_AND_CLICKS,
        "unsubscribes",
        "bounces",
        "delivered",
        "spam",
        "machine_open",
        spam="reported_spam",
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
