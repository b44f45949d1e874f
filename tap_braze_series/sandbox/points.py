"""Misbehaving points in series responses: out of order, duplicated, missing.

Real series responses list one point per bucket, oldest first. A workspace
configured with point faults answers otherwise, reproducibly (every decision is
a hash of the seed, the request and the bucket):

- ``point_order``: ``asc`` (Braze's order), ``desc`` (newest first) or
  ``shuffled`` (a permutation per request);
- ``duplicate_rate`` of the buckets are sent ``1 + duplicate_copies`` times.
  With ``duplicate_values="different"`` the extra copies carry other numbers and
  come *before* the point with the workspace's value (as a stale copy would), so
  that the oracle's value is the last one given for its bucket, in any order;
- ``missing_rate`` of a response's inner points (never its first or last, which
  cannot be told from the time before an entity's data or a bucket Braze has not
  produced yet) are left out: a bucket is missing in every response of that
  entity that covers it, on the first ``missing_repeats`` asks of each request
  (``None``: on every ask). Only in the zero-filled series (canvas, campaign,
  segment): a count series' bucket without a point is a 0 (Braze leaves its zero
  buckets out), so a point missing there cannot be told from a zero.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

from .config import SandboxConfig
from .endpoints import CAMPAIGN_SERIES_PATH, CANVAS_SERIES_PATH, COUNT_SERIES, SERIES
from .hashing import uniform

SERIES_PATHS = frozenset({*SERIES, CANVAS_SERIES_PATH, CAMPAIGN_SERIES_PATH})
# Parameters that choose the window, not the series: a bucket's fate ignores them.
_WINDOW_PARAMS = frozenset({"length", "ending_at", "starting_at"})


class PointFaults:
    """Rewrites the point list of series responses as the config says (thread-safe)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.Lock()
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """Play ``config``'s point faults from now on; resets the per-request ask counts."""
        with self._lock:
            self._config = config
            self._asks: dict[str, int] = {}

    def apply(
        self, path: str, params: Mapping[str, str], body: dict
    ) -> tuple[dict, tuple[str, ...]]:
        """(the body to send, the faults it carries: "missing", "duplicate", "reordered")."""
        cfg = self._config
        active = cfg.point_order != "asc" or cfg.duplicate_rate > 0 or cfg.missing_rate > 0
        if path not in SERIES_PATHS or not active:
            return body, ()
        data = body.get("data")
        points = data.get("stats") if isinstance(data, dict) else data
        if not isinstance(points, list) or not points:
            return body, ()
        series = repr(sorted((k, v) for k, v in params.items() if k not in _WINDOW_PARAMS))
        request = repr(sorted(params.items()))
        with self._lock:
            ask = self._asks.get(request, 0)
            self._asks[request] = ask + 1
        kept = _without_missing(cfg, points, path, series, ask)
        sent = _with_duplicates(cfg, kept, path, series)
        out = _reordered(cfg, sent, path, request)
        faults = [
            fault
            for fault, done in (
                ("missing", len(kept) != len(points)),
                ("duplicate", len(sent) != len(kept)),
                ("reordered", out != sent),
            )
            if done
        ]
        if not faults:
            return body, ()
        if isinstance(data, dict):
            return {**body, "data": {**data, "stats": out}}, tuple(faults)
        return {**body, "data": out}, tuple(faults)


def _without_missing(cfg: SandboxConfig, points: list, path: str, series: str, ask: int) -> list:
    if cfg.missing_rate <= 0 or path in COUNT_SERIES:
        return points
    if cfg.missing_repeats is not None and ask >= cfg.missing_repeats:
        return points
    last = len(points) - 1
    kept = [
        p
        for i, p in enumerate(points)
        if i in (0, last)
        or uniform(cfg.seed, "missing", path, series, _label(p)) >= cfg.missing_rate
    ]
    return kept


def _with_duplicates(cfg: SandboxConfig, points: list, path: str, series: str) -> list:
    if cfg.duplicate_rate <= 0:
        return points
    out: list = []
    for point in points:
        if uniform(cfg.seed, "duplicate", path, series, _label(point)) < cfg.duplicate_rate:
            for copy in range(cfg.duplicate_copies):
                if cfg.duplicate_values == "different":
                    out.append(_perturbed(point, copy + 1))
                else:
                    out.append(point)  # the same object: JSON sends it again, equal
        out.append(point)
    return out


def _reordered(cfg: SandboxConfig, points: list, path: str, request: str) -> list:
    if cfg.point_order == "asc" or len(points) < 2:
        return points
    if cfg.point_order == "desc":
        groups: dict[Any, list] = defaultdict(list)
        for point in points:
            groups[_label(point)].append(point)  # copies of a bucket keep their order
        out = [p for label in reversed(list(groups)) for p in groups[label]]
    else:
        keys = [uniform(cfg.seed, "order", path, request, i) for i in range(len(points))]
        shuffled = [points[i] for i in sorted(range(len(points)), key=keys.__getitem__)]
        # Copies of one bucket keep their relative order (the right value last).
        queues: dict[Any, deque] = defaultdict(deque)
        for point in points:
            queues[_label(point)].append(point)
        out = [queues[_label(p)].popleft() for p in shuffled]
    return out


def _label(point: Any) -> Any:
    return point.get("time") if isinstance(point, dict) else repr(point)


def _perturbed(value: Any, by: int) -> Any:
    """A copy of a point whose numbers differ from the original's (strings kept)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value + by
    if isinstance(value, float):
        return round(value + by + 0.25, 2)
    if isinstance(value, dict):
        return {k: _perturbed(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [_perturbed(v, by) for v in value]
    return value
