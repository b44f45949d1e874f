"""The sandbox workspace: its entities (see entities.py) and the oracle of every value served.

Everything here is a pure function of the :class:`SandboxConfig` (and, for
values, of the bucket, the filters and ``now``). No I/O, no randomness beyond
blake2b hashes of the seed, so tests can use a :class:`Workspace` as the oracle
for what the server returns.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, tzinfo

from . import timeutil
from .channels import (
    CAMPAIGN_CHANNEL_METRICS,
    CANVAS_CHANNEL_METRICS,
    PUSH_CHANNELS,
    Recipe,
)
from .config import SandboxConfig
from .endpoints import COUNT_SERIES, SERIES
from .entities import Campaign, Canvas, EntityMaker, Messaging, Segment, Step
from .hashing import Hasher
from .timeutil import UTC, format_ts, to_utc

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

#: The conversion counters of a campaign day and of each of its message entries.
CONVERSION_COUNTERS: tuple[str, ...] = (
    "conversions",
    "conversions_by_send_time",
    *(f"conversions{n}{by}" for n in (1, 2, 3) for by in ("", "_by_send_time")),
)


class Workspace:
    """Entities of one fake Braze workspace plus the oracle for every value served."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.tz: tzinfo = self.config.tz
        self._hash = Hasher(self.config.seed)
        self.history_start: date = self.config.history_start
        self._history_start_utc = to_utc(timeutil.local_midnight(self.history_start, self.tz))

        self.apps: list[str] = list(self.config.apps)
        make = EntityMaker(self.config, self._hash)
        self.events: list[str] = make.events(self.config.n_events)
        self.products: list[str] = make.products(self.config.n_products)
        self.segments: list[Segment] = make.segments(self.config.n_segments)
        self.canvases: list[Canvas] = make.canvases(self.config.n_canvases)
        self.campaigns: list[Campaign] = make.campaigns(self.config.n_campaigns)

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
                        else self._hash.uuid("campaign-msg", camp.id, var.api_id, ch)
                    )
                    self._campaign_msg_ids[(camp.id, var.api_id, ch)] = mid

    # ----------------------------------------------------------------- lookups

    def canvas(self, canvas_id: str) -> Canvas:
        return self.canvas_by_id[canvas_id]

    def campaign(self, campaign_id: str) -> Campaign:
        return self.campaign_by_id[campaign_id]

    def created_day(self, entity: Messaging) -> date:
        """The day (company time zone) an entity was created: its ``created_at``'s."""
        return datetime.fromisoformat(entity.created_at).astimezone(self.tz).date()

    def first_live_day(self, entity: Messaging) -> date:
        """The first day with activity: Braze answers zeros for every day before it."""
        return max(self.history_start, self.created_day(entity))

    def _stats_day(self, entity: Messaging, day: date, now: datetime) -> tuple[str, float, bool]:
        """(``time`` label, maturity at ``now``, whether it has activity) of a stats day."""
        if isinstance(day, datetime):
            day = day.astimezone(self.tz).date()
        start = self.day_start(day)
        maturity = self.maturity(start, self.next_bucket(start, "day"), now)
        return day.isoformat(), maturity, day >= self.first_live_day(entity)

    def message_variation_id(self, campaign_id: str, variation_api_id: str, channel: str) -> str:
        """Id of a campaign variation's message on one channel.

        The first channel's message shares the variation's ``api_id``; further
        channels of a multichannel campaign get their own deterministic ids. These
        are the keys of ``/campaigns/details`` ``messages`` and the
        ``variation_api_id`` values of ``/campaigns/data_series``.
        """
        return self._campaign_msg_ids[(campaign_id, variation_api_id, channel)]

    def step_message_id(self, step_id: str, channel: str) -> str:
        return self._hash.uuid("canvas-step-msg", step_id, channel)

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
        e_u = self._hash.uniforms(3, "series-scale", field, ent)
        scale = 10 ** (lo + (hi - lo) * e_u[0])
        local = start.astimezone(self.tz)
        day = local.date()
        if field in _SMOOTH:
            phase = e_u[1] * 2 * math.pi
            u = self._hash.u("series", field, ent, unit, day.isoformat())
            base = scale * (1 + 0.08 * math.sin(day.toordinal() * 2 * math.pi / 45 + phase))
            base *= 0.99 + 0.02 * u
        else:
            key = day.isoformat() if unit == "day" else start.astimezone(UTC).isoformat()
            u, u_sparse = self._hash.uniforms(2, "series", field, ent, unit, key)
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
            base *= 0.15 + 0.6 * self._hash.u("app-share", field, ent, app_id, start.isoformat())
        if segment_id is not None:
            base *= 0.05 + 0.4 * self._hash.u(
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
        key, m, live = self._stats_day(canvas, day, now)

        total = {"revenue": 0.0, "conversions": 0, "conversions_by_entry_time": 0, "entries": 0}
        variant_stats: dict[str, dict] = {}
        c_u = self._hash.uniforms(2, "canvas-scale", canvas.id)
        for v in canvas.variants:
            vals = {"revenue": 0.0, "conversions": 0, "conversions_by_entry_time": 0, "entries": 0}
            if live:
                us = self._hash.uniforms(5, "canvas-variant-day", canvas.id, v.id, key)
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
        us = self._hash.uniforms(4, "canvas-step-day", step.id, key)
        base = 10 ** (1.0 + 2.0 * self._hash.u("canvas-step-scale", step.id)) * (0.6 + 0.8 * us[0])
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
        us = self._hash.uniforms(len(recipe) + 1, "channel-day", *ident, key)
        scale = 10 ** (1.0 + 2.2 * self._hash.u("channel-scale", *ident))
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
        if not live or self._hash.u("channel-empty", *ident, key) < 0.12:
            return []
        return [self._channel_metrics(recipe, ident, key, m)]

    # ----------------------------------------------------------------- campaigns

    def campaign_stats(self, campaign_id: str, day: date, *, now: datetime) -> dict:
        """One element of the ``data`` list of ``/campaigns/data_series``."""
        camp = self.campaign_by_id[campaign_id]
        key, m, live = self._stats_day(camp, day, now)
        top: dict = {
            "unique_recipients": 0,
            **dict.fromkeys(CONVERSION_COUNTERS, 0),
            "revenue": 0.0,
        }
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
                for k in ("unique_recipients", *CONVERSION_COUNTERS, "revenue"):
                    top[k] += entry[k]
            if ci == 0:
                for v in control:
                    ident = ("campaign-control", camp.id, v.api_id)
                    us = self._hash.uniforms(2, "control-day", camp.id, key)
                    enrolled = (
                        (
                            10 ** (1.0 + 1.5 * self._hash.u("control-scale", camp.id))
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
        us = self._hash.uniforms(9, "conv-day", *ident, key)
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
        first += timedelta(minutes=int(self._hash.u("first-entry", salt) * 600))
        if archived:
            last = max(first, datetime.fromisoformat(last_edited))
        else:
            last = now - timedelta(minutes=int(self._hash.u("last-entry", salt) * 120))
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
                subscription_group_id=self._hash.uuid("sms-group", mid),
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
        us = self._hash.uniforms(4, "conv-behaviors", salt)
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
        if kind not in _LIST_FIELDS:
            raise ValueError(kind)
        entities = {"canvases": self.canvases, "campaigns": self.campaigns}.get(kind, self.segments)
        return [
            {name: _copied(getattr(entity, name)) for name in _LIST_FIELDS[kind]}
            for entity in entities
        ]


#: The fields of a list row, in Braze's order.
_LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "canvases": ("id", "name", "last_edited", "tags"),
    "campaigns": ("id", "name", "is_api_campaign", "last_edited", "tags"),
    "segments": ("id", "name", "analytics_tracking_enabled", "tags"),
}


def _copied(value: object) -> object:
    """A list field copied (a row must not share the entity's list), any other as it is."""
    return list(value) if isinstance(value, list) else value


def _partial_factor(start: datetime, end: datetime, now: datetime) -> float:
    """Maturity of the bucket containing ``now``: grows with the elapsed fraction."""
    frac = (now - start) / (end - start)
    return PARTIAL_FACTOR * frac


__all__ = ["Workspace"]
