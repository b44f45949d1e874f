"""The sandbox workspace: deterministic entities and the value oracle.

Everything here is a pure function of the :class:`SandboxConfig` (and, for
values, of the bucket, the filters and ``now``). No I/O, no randomness beyond
blake2b hashes of the seed, so tests can use a :class:`Workspace` as the oracle
for what the server returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from datetime import date, datetime, timedelta, tzinfo

from . import timeutil
from .channels import (
    CAMPAIGN_CHANNEL_METRICS,
    CANVAS_CHANNEL_METRICS,
    CHANNELS,
    PUSH_CHANNELS,
    Recipe,
)
from .config import SandboxConfig
from .endpoints import COUNT_SERIES, SERIES
from .timeutil import UTC, format_ts, to_utc

# --------------------------------------------------------------------------- entities


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


@dataclasses.dataclass(frozen=True)
class Canvas:
    id: str
    name: str
    archived: bool
    last_edited: str
    tags: list[str]
    variants: list[Variant]
    steps: list[Step]
    created_at: str = ""
    description: str = ""
    schedule_type: str = "date"
    draft: bool = False


@dataclasses.dataclass(frozen=True)
class Variation:
    api_id: str
    name: str
    is_control: bool


@dataclasses.dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    archived: bool
    last_edited: str
    tags: list[str]
    is_api_campaign: bool
    channels: tuple[str, ...]
    variations: list[Variation]
    created_at: str = ""
    description: str = ""
    schedule_type: str = "time_based"
    draft: bool = False


@dataclasses.dataclass(frozen=True)
class Segment:
    id: str
    name: str
    analytics_tracking_enabled: bool
    tags: list[str]
    created_at: str = ""


#: Event names that need URL encoding; the workspace always starts with these.
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

# Restatement curve: a partial bucket carries <= PARTIAL_FACTOR of its final value;
# a completed bucket of age k < R carries MATURE_FLOOR + (1-MATURE_FLOOR)*(k+1)/(R+1).
PARTIAL_FACTOR = 0.6
MATURE_FLOOR = 0.6

_SERIES_SCALE = {  # log10 range of the per-day magnitude
    "count": (1.0, 4.0),
    "size": (3.0, 5.5),
    "sessions": (3.5, 4.7),
    "dau": (3.0, 4.2),
    "mau": (4.0, 5.0),
    "new_users": (1.7, 3.0),
    "uninstalls": (0.8, 2.0),
    "purchase_quantity": (1.0, 3.0),
    "revenue": (2.0, 4.5),
}
_SMOOTH = ("size", "mau")


def _split(raw: bytes) -> list[float]:
    return [int.from_bytes(raw[i : i + 4], "big") / 4294967296.0 for i in range(0, len(raw), 4)]


class _Hasher:
    """Deterministic uniforms in [0, 1) from the seed and any tuple of keys."""

    def __init__(self, seed: int) -> None:
        self._key = hashlib.blake2b(repr(("braze-sandbox", seed)).encode(), digest_size=32).digest()

    def digest(self, parts: tuple, size: int = 32) -> bytes:
        data = repr(parts).encode("utf-8")
        return hashlib.blake2b(data, digest_size=size, key=self._key).digest()

    def uniforms(self, n: int, *parts: object) -> list[float]:
        size = max(8, min(64, 4 * n))
        raw = self.digest(parts, size)
        out = _split(raw)
        while len(out) < n:  # more than 16 requested: chain
            out += _split(self.digest((*parts, len(out)), 64))
        return out[:n]

    def u(self, *parts: object) -> float:
        return self.uniforms(1, *parts)[0]

    def uuid(self, *parts: object) -> str:
        return str(uuid.UUID(bytes=self.digest(parts, 16), version=4))


# --------------------------------------------------------------------------- workspace


class Workspace:
    """Entities of one fake Braze workspace plus the oracle for every value served."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.tz: tzinfo = self.config.tz
        self._h = _Hasher(self.config.seed)
        self.history_start: date = self.config.history_start
        self._history_start_utc = to_utc(timeutil.local_midnight(self.history_start, self.tz))
        hs_utc = datetime(
            self.history_start.year, self.history_start.month, self.history_start.day, tzinfo=UTC
        )
        self._anchor = (
            self.config.now.astimezone(UTC)
            if self.config.now is not None
            else hs_utc + timedelta(days=730)
        )
        self._hs_utc = hs_utc

        self.apps: list[str] = list(self.config.apps)
        self.events: list[str] = self._make_events(self.config.n_events)
        self.products: list[str] = self._make_products(self.config.n_products)
        self.segments: list[Segment] = self._make_segments(self.config.n_segments)
        self.canvases: list[Canvas] = self._make_canvases(self.config.n_canvases)
        self.campaigns: list[Campaign] = self._make_campaigns(self.config.n_campaigns)

        self.canvas_by_id: dict[str, Canvas] = {c.id: c for c in self.canvases}
        self.campaign_by_id: dict[str, Campaign] = {c.id: c for c in self.campaigns}
        self.segment_by_id: dict[str, Segment] = {s.id: s for s in self.segments}
        self.event_set: frozenset[str] = frozenset(self.events)
        self.product_set: frozenset[str] = frozenset(self.products)
        self.app_set: frozenset[str] = frozenset(self.apps)
        self.active_canvases: list[Canvas] = [c for c in self.canvases if not c.archived]
        self.active_campaigns: list[Campaign] = [c for c in self.campaigns if not c.archived]
        # message variation ids -> (campaign, variation, channel)
        self._campaign_msg_ids: dict[tuple[str, str, str], str] = {}
        for camp in self.campaigns:
            for var in camp.variations:
                for i, ch in enumerate(camp.channels):
                    mid = (
                        var.api_id
                        if i == 0 or var.is_control
                        else self._h.uuid("campaign-msg", camp.id, var.api_id, ch)
                    )
                    self._campaign_msg_ids[(camp.id, var.api_id, ch)] = mid

    # ----------------------------------------------------------------- generation

    def _make_events(self, n: int) -> list[str]:
        names = list(SPECIAL_EVENTS[:n])
        i = 0
        while len(names) < n:
            names.append(f"{_EVENT_WORDS[i % len(_EVENT_WORDS)]}_{i + 1}")
            i += 1
        return sorted(names)

    def _make_products(self, n: int) -> list[str]:
        names = list(SPECIAL_PRODUCTS[:n])
        i = 0
        while len(names) < n:
            names.append(f"sku_{1001 + i}")
            i += 1
        return sorted(names)

    def _tags(self, *parts: object) -> list[str]:
        us = self._h.uniforms(len(_TAGS), "tags", *parts)
        return [t for t, u in zip(_TAGS, us, strict=True) if u < 0.25]

    def _times(self, kind: str, i: int, old: bool) -> tuple[datetime, datetime]:
        """(created_at, last_edited) in UTC, deterministic."""
        u1, u2 = self._h.uniforms(2, "times", kind, i)
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

    def _make_segments(self, n: int) -> list[Segment]:
        out = []
        for i in range(n):
            u = self._h.u("segment", i)
            enabled = (u >= 0.2 and i != 1) or i == 0
            created, _ = self._times("segment", i, old=False)
            out.append(
                Segment(
                    id=self._h.uuid("segment", i),
                    name=f"{_ADJ[i % len(_ADJ)]} users {i + 1}",
                    analytics_tracking_enabled=enabled,
                    tags=self._tags("segment", i),
                    created_at=format_ts(created),
                )
            )
        out.sort(key=lambda s: (s.created_at, s.id))
        return out

    def _make_canvases(self, n: int) -> list[Canvas]:
        out = []
        for i in range(n):
            us = self._h.uniforms(8, "canvas", i)
            cid = self._h.uuid("canvas", i)
            archived = i == 2 or (i > 2 and us[0] < 0.2)
            old = i == 1 or (i > 2 and us[1] < 0.08)
            created, edited = self._times("canvas", i, old)
            n_var = 1 + int(us[2] * 3)
            if i == 0:
                n_var = 3
            variants = [
                Variant(self._h.uuid("canvas-variant", cid, k), f"Variant {chr(65 + k)}")
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
                    su = self._h.uniforms(6, "canvas-step", cid, j)
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
                sid = self._h.uuid("canvas-step-id", cid, j)
                if chans:
                    stype, sname = "message", f"Step {j + 1}: {' + '.join(chans)}"
                else:
                    stype = CANVAS_STEP_TYPES_WITHOUT_CHANNEL[
                        int(self._h.u("step-type", sid) * len(CANVAS_STEP_TYPES_WITHOUT_CHANNEL))
                    ]
                    sname = f"Step {j + 1}: {stype.replace('_', ' ')}"
                steps.append(Step(sid, sname, chans, deleted, stype))
            name = f"{_ADJ[int(us[4] * len(_ADJ))]} {_NOUN[int(us[5] * len(_NOUN))]} {i + 1}"
            if i == 0:
                name = "Showcase — every channel"
            out.append(
                Canvas(
                    id=cid,
                    name=name,
                    archived=archived,
                    last_edited=format_ts(edited),
                    tags=self._tags("canvas", i),
                    variants=variants,
                    steps=steps,
                    created_at=format_ts(created),
                    description=f"Sandbox canvas #{i + 1}",
                    schedule_type=("date", "action_trigger", "api_trigger")[int(us[6] * 3)],
                    draft=False,
                )
            )
        out.sort(key=lambda c: (c.created_at, c.id))
        return out

    def _make_campaigns(self, n: int) -> list[Campaign]:
        out = []
        for i in range(n):
            us = self._h.uniforms(8, "campaign", i)
            cid = self._h.uuid("campaign", i)
            archived = i == 2 or (i > 2 and us[0] < 0.2)
            old = i == 1 or (i > 2 and us[1] < 0.08)
            created, edited = self._times("campaign", i, old)
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
                Variation(self._h.uuid("campaign-variation", cid, k), f"Variant {k + 1}", False)
                for k in range(n_var)
            ]
            if control:
                variations.append(
                    Variation(
                        self._h.uuid("campaign-variation", cid, "control"), "Control Group", True
                    )
                )
            name = f"{_ADJ[int(us[7] * len(_ADJ))]} campaign {i + 1}"
            if i == 0:
                name = "Showcase campaign (multichannel + control)"
            out.append(
                Campaign(
                    id=cid,
                    name=name,
                    archived=archived,
                    last_edited=format_ts(edited),
                    tags=self._tags("campaign", i),
                    is_api_campaign=(i != 0 and us[1] > 0.75),
                    channels=channels,
                    variations=variations,
                    created_at=format_ts(created),
                    description=f"Sandbox campaign #{i + 1}",
                    schedule_type=("time_based", "action_based", "api_triggered")[int(us[4] * 3)],
                    draft=False,
                )
            )
        out.sort(key=lambda c: (c.created_at, c.id))
        return out

    # ----------------------------------------------------------------- lookups

    def canvas(self, canvas_id: str) -> Canvas:
        return self.canvas_by_id[canvas_id]

    def campaign(self, campaign_id: str) -> Campaign:
        return self.campaign_by_id[campaign_id]

    def created_day(self, entity: Canvas | Campaign) -> date:
        """The day (company time zone) an entity was created: its ``created_at``'s."""
        return datetime.fromisoformat(entity.created_at).astimezone(self.tz).date()

    def first_live_day(self, entity: Canvas | Campaign) -> date:
        """The first day with activity: Braze answers zeros for every day before it."""
        return max(self.history_start, self.created_day(entity))

    def message_variation_id(self, campaign_id: str, variation_api_id: str, channel: str) -> str:
        """Id of a campaign variation's message on one channel.

        The first channel's message shares the variation's ``api_id``; further
        channels of a multichannel campaign get their own deterministic ids. These
        are the keys of ``/campaigns/details`` ``messages`` and the
        ``variation_api_id`` values of ``/campaigns/data_series``.
        """
        return self._campaign_msg_ids[(campaign_id, variation_api_id, channel)]

    def step_message_id(self, step_id: str, channel: str) -> str:
        return self._h.uuid("canvas-step-msg", step_id, channel)

    # ----------------------------------------------------------------- time

    def bucket_start(self, instant: datetime, unit: str = "day") -> datetime:
        return timeutil.bucket_start(instant, unit, self.tz)

    def next_bucket(self, start: datetime, unit: str = "day") -> datetime:
        return timeutil.next_bucket(start, unit, self.tz)

    def prev_bucket(self, start: datetime, unit: str = "day") -> datetime:
        return timeutil.prev_bucket(start, unit, self.tz)

    def bucket_label(self, start: datetime, unit: str = "day") -> str:
        return timeutil.bucket_label(start, unit, self.tz)

    def day_start(self, day: date) -> datetime:
        return timeutil.local_midnight(day, self.tz)

    def window(
        self,
        *,
        now: datetime,
        length: int | None = None,
        unit: str = "day",
        ending_at: datetime | None = None,
        starting_at: datetime | None = None,
    ) -> list[datetime]:
        """Bucket starts (oldest first) a data-series request returns.

        ``end = min(ending_at or now, now)``; the last bucket is the one the
        configured reading of ``end`` names (``config.ending_at_reading``; see
        ``timeutil.last_bucket_for``); with ``starting_at`` the series runs from the
        bucket containing it, otherwise it holds ``length`` buckets.
        """
        now_u = to_utc(now)
        if ending_at is None or to_utc(ending_at) >= now_u:
            last = timeutil.last_bucket_for(now_u, unit, self.tz, self.config.ending_at_reading)
        else:
            last = timeutil.last_bucket_for(ending_at, unit, self.tz, self.config.ending_at_reading)
        if starting_at is not None:
            first = to_utc(self.bucket_start(starting_at, unit))
            out = []
            cur = last
            while to_utc(cur) >= first:
                out.append(cur)
                cur = self.prev_bucket(cur, unit)
                if len(out) > 10_000:
                    raise ValueError("window too long")
            return out[::-1]
        if length is None or length < 1:
            raise ValueError("length must be >= 1")
        out = [last]
        for _ in range(length - 1):
            out.append(self.prev_bucket(out[-1], unit))
        return out[::-1]

    def maturity(self, start: datetime, end: datetime, now: datetime) -> float:
        """Fraction of its final value a bucket ``[start, end)`` shows at ``now``."""
        start, end, now = to_utc(start), to_utc(end), to_utc(now)
        if now < start:
            raise ValueError(f"bucket starting {start.isoformat()} is after now")
        if now < end:
            return _partial_factor(start, end, now)
        age = (now - end) // timedelta(days=1)
        r = self.config.restatement_days
        if age >= r:
            return 1.0
        return MATURE_FLOOR + (1.0 - MATURE_FLOOR) * (age + 1) / (r + 1)

    # ----------------------------------------------------------------- simple series

    def series_value(
        self,
        path: str,
        bucket_start: datetime | date,
        *,
        unit: str = "day",
        entity: str | None = None,
        app_id: str | None = None,
        segment_id: str | None = None,
        now: datetime,
    ) -> int | float:
        """The value field of one bucket of a simple data-series endpoint."""
        endpoint = SERIES[path]
        if unit not in endpoint.units:
            raise ValueError(f"{path} does not support unit={unit}")
        start = self._as_bucket(bucket_start, unit)
        end = self.next_bucket(start, unit)
        m = self.maturity(start, end, now)
        if to_utc(start) < self._history_start_utc:
            return 0.0 if endpoint.is_float else 0
        final = self._series_final(endpoint.value_field, start, unit, entity, app_id, segment_id)
        if endpoint.is_float:
            return round(final * m, 2)
        return int(final * m)

    def series(
        self,
        path: str,
        *,
        now: datetime,
        length: int,
        unit: str = "day",
        ending_at: datetime | None = None,
        entity: str | None = None,
        app_id: str | None = None,
        segment_id: str | None = None,
    ) -> list[dict]:
        """The whole ``data`` list of a simple data-series response."""
        field = SERIES[path].value_field
        points = [
            {
                "time": self.bucket_label(b, unit),
                field: self.series_value(
                    path, b, unit=unit, entity=entity, app_id=app_id, segment_id=segment_id, now=now
                ),
            }
            for b in self.window(now=now, length=length, unit=unit, ending_at=ending_at)
        ]
        if self.omits_zero_buckets(path):
            return [p for p in points if p[field] != 0]
        return points

    def omits_zero_buckets(self, path: str) -> bool:
        """Whether a series leaves out its zero buckets: the count series, unless the
        workspace is configured to fill them (segment sizes are always filled)."""
        return path in COUNT_SERIES and self.config.count_zero_buckets == "omitted"

    def _as_bucket(self, value: datetime | date, unit: str) -> datetime:
        if isinstance(value, datetime):
            return self.bucket_start(value, unit)
        if unit != "day":
            raise ValueError("a date is only a bucket for unit='day'")
        return self.day_start(value)

    def _series_final(
        self,
        field: str,
        start: datetime,
        unit: str,
        entity: str | None,
        app_id: str | None,
        segment_id: str | None,
    ) -> float:
        ent = entity or ""
        lo, hi = _SERIES_SCALE[field]
        e_u = self._h.uniforms(3, "series-scale", field, ent)
        scale = 10 ** (lo + (hi - lo) * e_u[0])
        local = start.astimezone(self.tz)
        day = local.date()
        if field in _SMOOTH:
            phase = e_u[1] * 2 * math.pi
            u = self._h.u("series", field, ent, unit, day.isoformat())
            base = scale * (1 + 0.08 * math.sin(day.toordinal() * 2 * math.pi / 45 + phase))
            base *= 0.99 + 0.02 * u
        else:
            key = day.isoformat() if unit == "day" else start.astimezone(UTC).isoformat()
            u, u_sparse = self._h.uniforms(2, "series", field, ent, unit, key)
            if field == "count" and e_u[2] < 0.15 and u_sparse < 0.5:
                return 0.0  # a sparse event: many days without occurrences
            if field == "count" and e_u[2] < 0.5 and u_sparse < 0.25:
                return 0.0  # about 1 bucket in 4 without occurrences
            weekday = 0.8 if day.weekday() >= 5 else 1.0
            base = scale * weekday * (0.75 + 0.5 * u)
            if unit == "hour":
                h = local.hour
                profile = 0.25
                if h >= 6:
                    profile += 1.5 * max(0.0, math.sin((h - 6) * math.pi / 18))
                base = base / 24 * profile
        if app_id is not None:
            base *= 0.15 + 0.6 * self._h.u("app-share", field, ent, app_id, start.isoformat())
        if segment_id is not None:
            base *= 0.05 + 0.4 * self._h.u(
                "segment-share", field, ent, segment_id, start.isoformat()
            )
        return base

    # ----------------------------------------------------------------- canvas

    def canvas_stats(
        self,
        canvas_id: str,
        day: date,
        *,
        now: datetime,
        include_variant_breakdown: bool = True,
        include_step_breakdown: bool = True,
        include_deleted_step_data: bool = True,
    ) -> dict:
        """One element of ``data.stats`` of ``/canvas/data_series``."""
        canvas = self.canvas_by_id[canvas_id]
        if isinstance(day, datetime):
            day = day.astimezone(self.tz).date()
        start = self.day_start(day)
        end = self.next_bucket(start, "day")
        m = self.maturity(start, end, now)
        live = day >= self.first_live_day(canvas)
        key = day.isoformat()

        total = {"revenue": 0.0, "conversions": 0, "conversions_by_entry_time": 0, "entries": 0}
        variant_stats: dict[str, dict] = {}
        c_u = self._h.uniforms(2, "canvas-scale", canvas.id)
        for v in canvas.variants:
            vals = {"revenue": 0.0, "conversions": 0, "conversions_by_entry_time": 0, "entries": 0}
            if live:
                us = self._h.uniforms(5, "canvas-variant-day", canvas.id, v.id, key)
                entries = 10 ** (1.3 + 2.0 * c_u[0]) * (0.6 + 0.8 * us[0])
                conv = entries * (0.02 + 0.13 * us[1])
                vals = {
                    "revenue": round(conv * (10 + 70 * us[3]) * m, 2),
                    "conversions": int(conv * m),
                    "conversions_by_entry_time": int(conv * (0.7 + 0.4 * us[2]) * m),
                    "entries": int(entries * m),
                }
            for k in total:
                total[k] += vals[k]
            variant_stats[v.id] = {"name": v.name, **vals}
        total["revenue"] = round(total["revenue"], 2)

        step_stats: dict[str, dict] = {}
        if include_step_breakdown:
            for s in canvas.steps:
                if s.deleted and not include_deleted_step_data:
                    continue
                step_stats[s.id] = self._canvas_step_day(canvas, s, key, m, live)
        return {
            "time": key,
            "total_stats": total,
            "variant_stats": variant_stats if include_variant_breakdown else {},
            "step_stats": step_stats,
        }

    def _canvas_step_day(self, canvas: Canvas, step: Step, key: str, m: float, live: bool) -> dict:
        us = self._h.uniforms(4, "canvas-step-day", step.id, key)
        base = 10 ** (1.0 + 2.0 * self._h.u("canvas-step-scale", step.id)) * (0.6 + 0.8 * us[0])
        conv = base * (0.01 + 0.07 * us[1]) if live else 0.0
        messages: dict[str, list] = {}
        for ch in step.channels:
            messages[ch] = self._channel_entries(
                CANVAS_CHANNEL_METRICS[ch], ("canvas", step.id, ch), key, m, live
            )
        return {
            "name": step.name,
            "revenue": round(conv * (10 + 50 * us[3]) * m, 2),
            "conversions": int(conv * m),
            "conversions_by_entry_time": int(conv * (0.7 + 0.4 * us[2]) * m),
            "messages": messages,
        }

    def _channel_metrics(
        self,
        recipe: Recipe,
        ident: tuple,
        key: str,
        m: float,
    ) -> dict[str, int]:
        us = self._h.uniforms(len(recipe) + 1, "channel-day", *ident, key)
        scale = 10 ** (1.0 + 2.2 * self._h.u("channel-scale", *ident))
        final: dict[str, float] = {}
        for i, (metric, parent, lo, hi) in enumerate(recipe):
            if parent is None:
                final[metric] = float(int(scale * (0.5 + us[0])))
            else:
                final[metric] = float(int(final[parent] * (lo + (hi - lo) * us[i + 1])))
        return {k: int(v * m) for k, v in final.items()}

    def _channel_entries(
        self,
        recipe: Recipe,
        ident: tuple,
        key: str,
        m: float,
        live: bool,
    ) -> list[dict]:
        # Braze returns empty arrays for channels without activity that day.
        if not live or self._h.u("channel-empty", *ident, key) < 0.12:
            return []
        return [self._channel_metrics(recipe, ident, key, m)]

    # ----------------------------------------------------------------- campaigns

    def campaign_stats(self, campaign_id: str, day: date, *, now: datetime) -> dict:
        """One element of the ``data`` list of ``/campaigns/data_series``."""
        camp = self.campaign_by_id[campaign_id]
        if isinstance(day, datetime):
            day = day.astimezone(self.tz).date()
        start = self.day_start(day)
        end = self.next_bucket(start, "day")
        m = self.maturity(start, end, now)
        live = day >= self.first_live_day(camp)
        key = day.isoformat()
        conv_keys = (
            "conversions",
            "conversions_by_send_time",
            "conversions1",
            "conversions1_by_send_time",
            "conversions2",
            "conversions2_by_send_time",
            "conversions3",
            "conversions3_by_send_time",
        )
        top: dict = {"unique_recipients": 0, **dict.fromkeys(conv_keys, 0), "revenue": 0.0}
        messages: dict[str, list] = {}
        control = [v for v in camp.variations if v.is_control]
        for ci, ch in enumerate(camp.channels):
            entries: list[dict] = []
            for v in camp.variations:
                if v.is_control:
                    continue
                ident = ("campaign", camp.id, v.api_id, ch)
                metrics = (
                    self._channel_metrics(CAMPAIGN_CHANNEL_METRICS[ch], ident, key, 1.0)
                    if live
                    else {k[0]: 0 for k in CAMPAIGN_CHANNEL_METRICS[ch]}
                )
                root = next(iter(metrics.values()))
                conv = self._conversions(root, ident, key, m)
                entry = {
                    "variation_api_id": self.message_variation_id(camp.id, v.api_id, ch),
                    "variation_name": v.name,
                    **{k: int(val * m) for k, val in metrics.items()},
                    **conv,
                }
                entries.append(entry)
                for k in ("unique_recipients", *conv_keys, "revenue"):
                    top[k] += entry[k]
            if ci == 0:
                for v in control:
                    ident = ("campaign-control", camp.id, v.api_id)
                    us = self._h.uniforms(2, "control-day", camp.id, key)
                    enrolled = (
                        (
                            10 ** (1.0 + 1.5 * self._h.u("control-scale", camp.id))
                            * (0.6 + 0.8 * us[0])
                        )
                        if live
                        else 0.0
                    )
                    conv = self._conversions(enrolled, ident, key, m)
                    conv["unique_recipients"] = 0
                    entries.append(
                        {
                            "variation_api_id": v.api_id,
                            "variation_name": v.name,
                            "enrolled": int(enrolled * m),
                            **conv,
                        }
                    )
            messages[ch] = entries
        top["revenue"] = round(top["revenue"], 2)
        return {"time": key, **top, "messages": messages}

    def _conversions(self, base: float, ident: tuple, key: str, m: float) -> dict:
        us = self._h.uniforms(9, "conv-day", *ident, key)
        conv = base * (0.01 + 0.09 * us[0])
        out = {
            "revenue": round(conv * (8 + 60 * us[1]) * m, 2),
            "unique_recipients": int(base * (0.9 + 0.1 * us[2]) * m),
            "conversions": int(conv * m),
            "conversions_by_send_time": int(conv * (0.8 + 0.3 * us[3]) * m),
        }
        for n in (1, 2, 3):
            c = base * 0.05 * us[3 + n]
            out[f"conversions{n}"] = int(c * m)
            out[f"conversions{n}_by_send_time"] = int(c * (0.8 + 0.3 * us[6]) * m)
        return out

    # ----------------------------------------------------------------- details

    def _entry_bounds(
        self, created_at: str, last_edited: str, archived: bool, salt: str, now: datetime
    ) -> tuple[str | None, str | None]:
        now = to_utc(now)
        created = datetime.fromisoformat(created_at)
        first = max(created, self._history_start_utc)
        first += timedelta(minutes=int(self._h.u("first-entry", salt) * 600))
        if archived:
            last = max(first, datetime.fromisoformat(last_edited))
        else:
            last = now - timedelta(minutes=int(self._h.u("last-entry", salt) * 120))
        if now < first:
            return None, None
        return format_ts(first), format_ts(min(last, now))

    def _message_body(self, channel: str, name: str, mid: str) -> dict:
        body: dict = {"channel": channel, "name": name}
        if channel in PUSH_CHANNELS:
            body.update(alert=f"{name}: we have news for you", extras={})
        elif channel == "email":
            body.update(
                subject=f"{name} — hello",
                body="<html><body>Hello {{${first_name}}}</body></html>",
                **{"from": "Sandbox <hello@example.com>"},
                reply_to="reply@example.com",
                title=name,
                extras={},
            )
        elif channel == "sms":
            body.update(
                body="Hi! Reply STOP to opt out.",
                **{"from": ["+15555550100"]},
                subscription_group_id=self._h.uuid("sms-group", mid),
            )
        elif channel == "webhook":
            body.update(
                url="https://example.com/hook",
                body='{"hello": "world"}',
                type="application/json",
                headers={},
                method="POST",
            )
        elif channel == "in_app_message":
            body.update(type="modal", message=f"{name}: in-app", extras={})
        elif channel == "content_cards":
            body.update(type="classic", title=name, extras={})
        elif channel == "whats_app":
            body.update(type="template", body="Hello from WhatsApp")
        return body

    def _conversion_behaviors(self, salt: str) -> list[dict]:
        us = self._h.uniforms(4, "conv-behaviors", salt)
        options = [{"type": "Makes Any Purchase", "window": 86400 * (1 + int(us[1] * 7))}]
        if self.events:
            options.append(
                {
                    "type": "Performs Custom Event",
                    "window": 259200,
                    "custom_event_name": self.events[int(us[2] * len(self.events))],
                }
            )
        if self.products:
            options.append(
                {
                    "type": "Makes Specific Purchase",
                    "window": 604800,
                    "product": self.products[int(us[3] * len(self.products))],
                }
            )
        options.append({"type": "Starts Session", "window": 86400, "app_ids": None})
        return options[: 1 + int(us[0] * len(options))]

    def canvas_details(self, canvas_id: str, *, now: datetime) -> dict:
        """Body of ``/canvas/details`` (without ``message``)."""
        c = self.canvas_by_id[canvas_id]
        first_entry, last_entry = self._entry_bounds(
            c.created_at, c.last_edited, c.archived, c.id, now
        )
        live_steps = [s for s in c.steps if not s.deleted]
        channels = sorted({ch for s in live_steps for ch in s.channels})
        steps = []
        for j, s in enumerate(live_steps):
            nxt = [live_steps[j + 1].id] if j + 1 < len(live_steps) else []
            steps.append(
                {
                    "name": s.name,
                    "type": s.type,
                    "id": s.id,
                    "next_step_ids": nxt,
                    "next_paths": [{"name": None, "next_step_id": x} for x in nxt],
                    "channels": list(s.channels),
                    "messages": {
                        self.step_message_id(s.id, ch): self._message_body(
                            ch, f"{s.name} ({ch})", self.step_message_id(s.id, ch)
                        )
                        for ch in s.channels
                    },
                }
            )
        variants = []
        for v in c.variants:
            first = [live_steps[0].id] if live_steps else []
            entry = {"name": v.name, "id": v.id, "first_step_ids": first}
            if len(first) == 1:
                entry["first_step_id"] = first[0]
            variants.append(entry)
        return {
            "created_at": c.created_at,
            "updated_at": c.last_edited,
            "name": c.name,
            "description": c.description,
            "archived": c.archived,
            "draft": c.draft,
            "schedule_type": c.schedule_type,
            "first_entry": first_entry,
            "last_entry": last_entry,
            "channels": channels,
            "variants": variants,
            "tags": list(c.tags),
            "steps": steps,
            "conversion_behaviors": self._conversion_behaviors(c.id),
        }

    def campaign_details(self, campaign_id: str, *, now: datetime) -> dict:
        """Body of ``/campaigns/details`` (without ``message``)."""
        c = self.campaign_by_id[campaign_id]
        first_sent, last_sent = self._entry_bounds(
            c.created_at, c.last_edited, c.archived, c.id, now
        )
        messages: dict[str, dict] = {}
        for v in c.variations:
            if v.is_control:
                messages[v.api_id] = {"channel": c.channels[0], "name": v.name, "type": "control"}
                continue
            for ch in c.channels:
                mid = self.message_variation_id(c.id, v.api_id, ch)
                messages[mid] = self._message_body(ch, v.name, mid)
        return {
            "created_at": c.created_at,
            "updated_at": c.last_edited,
            "archived": c.archived,
            "draft": c.draft,
            "name": c.name,
            "description": c.description,
            "schedule_type": c.schedule_type,
            "channels": list(c.channels),
            "first_sent": first_sent,
            "last_sent": last_sent,
            "tags": list(c.tags),
            "messages": messages,
            "conversion_behaviors": self._conversion_behaviors(c.id),
        }

    # ----------------------------------------------------------------- lists

    def list_rows(self, kind: str) -> list[dict]:
        """Rows of /canvas/list, /campaigns/list or /segments/list for every entity."""
        if kind == "canvases":
            return [
                {"id": c.id, "name": c.name, "last_edited": c.last_edited, "tags": list(c.tags)}
                for c in self.canvases
            ]
        if kind == "campaigns":
            return [
                {
                    "id": c.id,
                    "name": c.name,
                    "is_api_campaign": c.is_api_campaign,
                    "last_edited": c.last_edited,
                    "tags": list(c.tags),
                }
                for c in self.campaigns
            ]
        if kind == "segments":
            return [
                {
                    "id": s.id,
                    "name": s.name,
                    "analytics_tracking_enabled": s.analytics_tracking_enabled,
                    "tags": list(s.tags),
                }
                for s in self.segments
            ]
        raise ValueError(kind)


def _partial_factor(start: datetime, end: datetime, now: datetime) -> float:
    """Maturity of the bucket containing ``now``: grows with the elapsed fraction."""
    frac = (now - start) / (end - start)
    return PARTIAL_FACTOR * frac


__all__ = [
    "Campaign",
    "Canvas",
    "Segment",
    "Step",
    "Variant",
    "Variation",
    "Workspace",
]
