"""Log lines at INFO and above are for an operator: no set-up chatter, counts in words."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tap_braze_series.config import Settings
from tap_braze_series.entities import EntityDirectory
from tap_braze_series.tap import TapBrazeSeries

CONFIG = {"api_url": "http://127.0.0.1:9", "api_key": "k", "start_date": "2024-01-01"}


class ListedOnly:
    """A client whose list endpoints answer `items`."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def paginate(self, endpoint: Any, params: Mapping[str, Any]) -> Iterator[Any]:
        yield from self.items


@pytest.mark.parametrize(
    ("items", "wanted", "lines"),
    [
        (
            [{"id": "a"}, {"name": "no id"}],
            ["gone"],
            [
                "listed 1 canvas without an identifier; it was skipped.",
                "canvas_ids names 1 canvas that Braze does not list ('gone'); it is skipped.",
            ],
        ),
        (
            [{"name": "x"}, {"name": "y"}],
            ["gone", "lost"],
            [
                "listed 2 canvases without an identifier; they were skipped.",
                "names 2 canvases that Braze does not list ('gone', 'lost'); they are skipped.",
            ],
        ),
    ],
)
def test_entity_warnings_count_in_words(caplog, items, wanted, lines):
    settings = Settings.parse({**CONFIG, "canvas_ids": wanted})
    directory = EntityDirectory(ListedOnly(items), settings)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        assert directory.ids("canvases") == []
    for line in lines:
        assert line in caplog.text


def test_reading_the_settings_says_nothing_at_info(caplog):
    with caplog.at_level(logging.INFO):
        TapBrazeSeries(config=dict(CONFIG), parse_env_config=False)
        TapBrazeSeries(config=dict(CONFIG), parse_env_config=True)
    assert "env var" not in caplog.text, caplog.text
    with caplog.at_level(logging.DEBUG):
        TapBrazeSeries(config=dict(CONFIG), parse_env_config=False)
    assert "Skipping parse of env var settings" in caplog.text  # still there for debugging
