"""The README stays true to the product: settings table, streams, commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tap_braze_series.streams import ENTITY_STREAMS, SERIES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def about_settings_table() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "tap_braze_series.tap", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    section = out.split("## Settings", 1)[1]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_settings_table_is_the_one_about_prints():
    table = about_settings_table()
    assert len(table) > 15
    for line in table:
        assert line in README, f"README's settings table is stale: {line[:80]}"


def test_every_stream_is_documented():
    names = [cls.name for cls in ENTITY_STREAMS] + [spec.name for spec in SERIES]
    for name in names:
        assert f"`{name}`" in README, name


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in README
    assert ci.strip().splitlines()[-1].strip() == "make test"
    assert "make demo" in README
