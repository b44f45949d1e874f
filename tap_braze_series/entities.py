"""The entities a workspace has (canvases, campaigns, segments, events, products).

Each list is fetched at most once per run and shared by the entity streams and
by the series streams that fan out over it. Configured id lists restrict the
entities; ids that Braze does not list are reported, not requested.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tap_braze_series.client import BrazeClient, describe
from tap_braze_series.config import Settings
from tap_braze_series.endpoints import LISTS
from tap_braze_series.progress import plural

logger = logging.getLogger("tap-braze-series.entities")

SINGULAR = {
    "canvases": "canvas",
    "campaigns": "campaign",
    "segments": "segment",
    "events": "event",
    "products": "product",
}


def entity_id(kind: str, item: Any) -> str | None:
    """The identifier of a listed item of `kind` (see ListEndpoint.id_fields)."""
    return LISTS[kind].item_id(item)


class EntityDirectory:
    """Lazily listed, cached entities of the workspace."""

    def __init__(self, client: BrazeClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._listed: dict[str, list[Any]] = {}  # kind -> every entity Braze lists
        self._selected: dict[tuple[str, str], list[Any]] = {}  # (kind, setting) -> entities
        self._lock = threading.Lock()

    def entities(self, kind: str, setting: str | None = None) -> list[Any]:
        """The listed entities of `kind` a setting names, in its order; all if it names none.

        The setting is the kind's own filter (canvas_ids, ...) unless another is given.
        """
        setting = setting or LISTS[kind].filter_setting
        with self._lock:
            if kind not in self._listed:
                self._listed[kind] = self._load(kind)
            if (kind, setting) not in self._selected:
                self._selected[kind, setting] = self._select(kind, setting)
            return self._selected[kind, setting]

    def ids(self, kind: str) -> list[str]:
        return [i for i in (entity_id(kind, item) for item in self.entities(kind)) if i]

    def _load(self, kind: str) -> list[Any]:
        endpoint = LISTS[kind]
        params = endpoint.request_params(self._settings)
        items: list[Any] = []
        seen: set[str] = set()
        skipped = 0
        for item in self._client.paginate(endpoint, params):
            identifier = endpoint.item_id(item)
            if identifier is None:
                skipped += 1
                continue
            if identifier in seen:
                continue  # a list that shifted between pages repeats an item
            seen.add(identifier)
            items.append(item)
        if skipped:
            logger.warning(
                "%s listed %s without an identifier; %s skipped.",
                describe(endpoint.path, params),
                plural(skipped, SINGULAR[kind], kind),
                "it was" if skipped == 1 else "they were",
            )
        return items

    def _select(self, kind: str, setting: str) -> list[Any]:
        items = self._listed[kind]
        wanted = self._settings.ids(setting)
        if not wanted:
            return items
        by_id = {entity_id(kind, item): item for item in items}
        missing = [w for w in wanted if w not in by_id]
        if missing:
            logger.warning(
                "%s names %s that Braze does not list (%s); %s skipped.",
                setting,
                plural(len(missing), SINGULAR[kind], kind),
                ", ".join(repr(m) for m in missing[:10]),
                "it is" if len(missing) == 1 else "they are",
            )
        return [by_id[w] for w in wanted if w in by_id]
