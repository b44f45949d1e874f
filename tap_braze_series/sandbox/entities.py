"""The entities of a sandbox workspace (canvases, campaigns, segments, events, products)
and how they are drawn from the seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from .channels import CHANNELS
from .config import SandboxConfig
from .hashing import Hasher
from .timeutil import UTC, format_ts


@dataclasses.dataclass(frozen=True)
class Variant:
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Step:
    id: str
    name: str
    channels: tuple[str, ...]
    deleted: bool
    type: str = "message"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Messaging:
    """What a canvas and a campaign have alike: their list rows and most of their details."""

    id: str
    name: str
    archived: bool
    last_edited: str
    tags: list[str]
    created_at: str
    description: str
    schedule_type: str
    draft: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Canvas(Messaging):
    variants: list[Variant]
    steps: list[Step]


@dataclasses.dataclass(frozen=True)
class Variation:
    api_id: str
    name: str
    is_control: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class Campaign(Messaging):
    is_api_campaign: bool
    channels: tuple[str, ...]
    variations: list[Variation]


@dataclasses.dataclass(frozen=True)
class Segment:
    id: str
    name: str
    analytics_tracking_enabled: bool
    tags: list[str]
    created_at: str = ""


SPECIAL_EVENTS: tuple[str, ...] = (
    "app opened",
    "checkout/completed",
    "search & filter",
    "utm=summer",
    "what?",
    "100% done",
    "a+b test",
    "#hashtag",
    "café ouvert",
    "🎉 celebrated",
    "mix: a/b & c=d? 50% +1 #x café 🚀",
)
_EVENT_WORDS = (
    "added_to_cart",
    "viewed_product",
    "started_trial",
    "completed_level",
    "shared_link",
    "opened_email_link",
    "rated_app",
    "joined_waitlist",
    "redeemed_coupon",
    "upgraded_plan",
    "watched_video",
    "left_review",
)
SPECIAL_PRODUCTS: tuple[str, ...] = ("Gift Card", "Salt & Pepper")
_TAGS = ("onboarding", "retention", "promo", "transactional", "winback", "beta", "Été 2024")
_ADJ = (
    "Welcome",
    "Winback",
    "Spring",
    "Loyalty",
    "Abandoned cart",
    "Re-engagement",
    "Holiday",
    "Feedback",
    "Upsell",
    "Reactivation",
    "Birthday",
    "Relance",
)
_NOUN = ("journey", "flow", "series", "nudge", "drip", "push", "sequence", "parcours")

CANVAS_STEP_TYPES_WITHOUT_CHANNEL = ("delay", "decision_split", "audience_paths")


class EntityMaker:
    """Draws a workspace's entities from its config (the same ones every time)."""

    def __init__(self, config: SandboxConfig, hasher: Hasher) -> None:
        self._hash = hasher
        start = config.history_start
        self._hs_utc = datetime(start.year, start.month, start.day, tzinfo=UTC)
        # Edits of live entities run up to now (or two years after the history's start).
        self._anchor = (
            config.now.astimezone(UTC)
            if config.now is not None
            else self._hs_utc + timedelta(days=730)
        )

    def events(self, n: int) -> list[str]:
        return _names(SPECIAL_EVENTS, n, lambda i: f"{_EVENT_WORDS[i % len(_EVENT_WORDS)]}_{i + 1}")

    def products(self, n: int) -> list[str]:
        return _names(SPECIAL_PRODUCTS, n, lambda i: f"sku_{1001 + i}")

    def _tags(self, *parts: object) -> list[str]:
        us = self._hash.uniforms(len(_TAGS), "tags", *parts)
        return [t for t, u in zip(_TAGS, us, strict=True) if u < 0.25]

    def _times(self, kind: str, i: int, old: bool) -> tuple[datetime, datetime]:
        """(created_at, last_edited) in UTC, deterministic."""
        u1, u2 = self._hash.uniforms(2, "times", kind, i)
        hs = self._hs_utc
        if old:
            created = hs - timedelta(days=800) + timedelta(seconds=int(u1 * 380 * 86400))
            limit = hs - timedelta(days=2)
            edited = created + (limit - created) * u2
        else:
            lo = hs - timedelta(days=200)
            hi = max(lo + timedelta(days=1), self._anchor - timedelta(days=30))
            created = lo + (hi - lo) * u1
            edited = created + (self._anchor - created) * u2
        return created.replace(microsecond=0), edited.replace(microsecond=0)

    def segments(self, n: int) -> list[Segment]:
        out = []
        for i in range(n):
            u = self._hash.u("segment", i)
            enabled = (u >= 0.2 and i != 1) or i == 0
            created, _ = self._times("segment", i, old=False)
            out.append(
                Segment(
                    id=self._hash.uuid("segment", i),
                    name=f"{_ADJ[i % len(_ADJ)]} users {i + 1}",
                    analytics_tracking_enabled=enabled,
                    tags=self._tags("segment", i),
                    created_at=format_ts(created),
                )
            )
        out.sort(key=lambda s: (s.created_at, s.id))
        return out

    def _messaging(self, kind: str, i: int) -> dict:
        """The draws of the ``i``-th canvas or campaign and the fields they share."""
        us = self._hash.uniforms(8, kind, i)
        archived = i == 2 or (i > 2 and us[0] < 0.2)
        old = i == 1 or (i > 2 and us[1] < 0.08)
        created, edited = self._times(kind, i, old)
        return {
            "us": us,
            "id": self._hash.uuid(kind, i),
            "archived": archived,
            "last_edited": format_ts(edited),
            "tags": self._tags(kind, i),
            "created_at": format_ts(created),
            "description": f"Sandbox {kind} #{i + 1}",
        }

    def canvases(self, n: int) -> list[Canvas]:
        out = []
        for i in range(n):
            fields = self._messaging("canvas", i)
            us, cid = fields.pop("us"), fields["id"]
            n_var = 1 + int(us[2] * 3)
            if i == 0:
                n_var = 3
            variants = [
                Variant(self._hash.uuid("canvas-variant", cid, k), f"Variant {chr(65 + k)}")
                for k in range(n_var)
            ]
            if i == 0:
                plan = [
                    (("email", "sms", "ios_push"), False),
                    ((), False),
                    (("webhook", "in_app_message", "content_cards"), False),
                    (("whats_app", "android_push"), True),
                    (("web_push", "kindle_push"), False),
                ]
            else:
                plan = []
                for j in range(1 + int(us[3] * 5)):
                    su = self._hash.uniforms(6, "canvas-step", cid, j)
                    deleted = su[0] < 0.1
                    if su[1] < 0.2:
                        chans: tuple[str, ...] = ()
                    else:
                        k = 1 if su[2] < 0.7 else 2 + int(su[3] * 2)
                        first = int(su[4] * len(CHANNELS))
                        stride = 1 + int(su[5] * (len(CHANNELS) - 1))
                        chans = tuple(
                            dict.fromkeys(
                                CHANNELS[(first + m * stride) % len(CHANNELS)] for m in range(k)
                            )
                        )
                    plan.append((chans, deleted))
            steps = []
            for j, (chans, deleted) in enumerate(plan):
                sid = self._hash.uuid("canvas-step-id", cid, j)
                if chans:
                    stype, sname = "message", f"Step {j + 1}: {' + '.join(chans)}"
                else:
                    stype = CANVAS_STEP_TYPES_WITHOUT_CHANNEL[
                        int(self._hash.u("step-type", sid) * len(CANVAS_STEP_TYPES_WITHOUT_CHANNEL))
                    ]
                    sname = f"Step {j + 1}: {stype.replace('_', ' ')}"
                steps.append(Step(sid, sname, chans, deleted, stype))
            name = f"{_ADJ[int(us[4] * len(_ADJ))]} {_NOUN[int(us[5] * len(_NOUN))]} {i + 1}"
            if i == 0:
                name = "Showcase — every channel"
            schedule_type = ("date", "action_trigger", "api_trigger")[int(us[6] * 3)]
            out.append(
                Canvas(
                    **fields, name=name, schedule_type=schedule_type, variants=variants, steps=steps
                )
            )
        out.sort(key=lambda c: (c.created_at, c.id))
        return out

    def campaigns(self, n: int) -> list[Campaign]:
        out = []
        for i in range(n):
            fields = self._messaging("campaign", i)
            us, cid = fields.pop("us"), fields["id"]
            if i == 0:
                channels: tuple[str, ...] = ("email", "ios_push")
                n_var, control = 2, True
            else:
                first = int(us[2] * len(CHANNELS))
                if us[3] < 0.2:
                    second = (first + 1 + int(us[4] * (len(CHANNELS) - 1))) % len(CHANNELS)
                    channels = (CHANNELS[first], CHANNELS[second])
                else:
                    channels = (CHANNELS[first],)
                n_var = 1 + int(us[5] * 3)
                control = n_var > 1 and us[6] < 0.5
            variations = [
                Variation(self._hash.uuid("campaign-variation", cid, k), f"Variant {k + 1}", False)
                for k in range(n_var)
            ]
            if control:
                variations.append(
                    Variation(
                        self._hash.uuid("campaign-variation", cid, "control"), "Control Group", True
                    )
                )
            name = f"{_ADJ[int(us[7] * len(_ADJ))]} campaign {i + 1}"
            if i == 0:
                name = "Showcase campaign (multichannel + control)"
            out.append(
                Campaign(
                    **fields,
                    name=name,
                    schedule_type=("time_based", "action_based", "api_triggered")[int(us[4] * 3)],
                    is_api_campaign=(i != 0 and us[1] > 0.75),
                    channels=channels,
                    variations=variations,
                )
            )
        out.sort(key=lambda c: (c.created_at, c.id))
        return out


def _names(specials: tuple[str, ...], n: int, generated: Callable[[int], str]) -> list[str]:
    """``n`` names, sorted: the special ones first, then ``generated(0)``, ``generated(1)``..."""
    names = list(specials[:n])
    names += [generated(i) for i in range(n - len(names))]
    return sorted(names)
