"""`--check`: one line per stream, a bounded number of small requests, the exit code."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess

import pytest
from singer_sdk.plugin_base import _ConfigInput

from tap_braze_series.catalog import SERIES
from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tap_braze_series.streams import ENTITY_STREAMS
from tap_braze_series.tap import TapBrazeSeries
from tests.harness.proxy import Proxy
from tests.harness.running import TAP, catalog_for, run_tap

NOW = dt.datetime(2024, 3, 15, 12, tzinfo=dt.timezone.utc)
KEY = "sandbox-key-check-5e1d"  # distinctive, to grep for leaks
STREAMS = [cls.name for cls in ENTITY_STREAMS] + [spec.name for spec in SERIES]
# Five lists, eleven series endpoints, two details endpoints: one request each.
MOST_REQUESTS = 18


def sandbox(**overrides: object) -> Sandbox:
    base: dict = dict(seed=5, n_canvases=3, n_campaigns=2, n_events=3, n_segments=3, now=NOW)
    return Sandbox(SandboxConfig(**{**base, "api_key": KEY, **overrides}))


def config(url: str, **extra: object) -> dict:
    return {
        "api_key": KEY,
        "api_url": url,
        "start_date": "2024-01-01",
        "end_date": NOW.isoformat(),
        "retry_backoff_seconds": 0.01,
        **extra,
    }


def check(capsys, cfg: dict, streams: list[str] | None = None) -> tuple[int, dict[str, str], str]:
    """Run `--check` in this process: (exit code, stream -> its line, whole output)."""
    catalog = None if streams is None else io.StringIO(json.dumps(catalog_for(cfg, streams)))
    with pytest.raises(SystemExit) as exit_info:
        TapBrazeSeries.invoke(check=True, config=_ConfigInput(config=cfg), catalog=catalog)
    out = capsys.readouterr().out
    lines = {}
    for line in out.splitlines():
        match = re.match(r"^  (\S+)\s+(.*)$", line)
        if match and match.group(1) in STREAMS:
            lines[match.group(1)] = match.group(2)
    assert KEY not in out
    return int(exit_info.value.code or 0), lines, out


def test_a_good_key_checks_every_stream_with_few_requests_whatever_the_workspace_size(capsys):
    counts = []
    for size in (dict(n_canvases=2), dict(n_canvases=1500, n_events=2000, n_segments=700)):
        with sandbox(**size) as sb:
            code, lines, out = check(capsys, config(sb.url))
            assert code == 0, out
            assert sorted(lines) == sorted(STREAMS), out
            assert set(lines.values()) == {"ok"}, out
            log = sb.request_log.snapshot()
            assert {r.status for r in log} == {200}
            counts.append(len(log))
            assert all(r.params.get("page", "0") == "0" for r in log), "first pages only"
            assert all(r.params.get("length", "1") == "1" for r in log), "one bucket only"
            assert f"{len(log)} requests; every selected stream can sync." in out
    assert counts[0] == counts[1] == MOST_REQUESTS


def test_a_missing_permission_names_it_on_the_streams_it_blocks(capsys):
    with sandbox(denied_permissions={"segments.data_series", "canvas.list"}) as sb:
        code, lines, out = check(capsys, config(sb.url))
    assert code == 1
    assert "'segments.data_series' permission (403)" in lines["segment_data_series"]
    assert lines["segments"] == "ok"
    for name in ("canvases", "canvas_details", "canvas_data_series", "canvas_step_data_series"):
        assert lines[name].startswith("cannot sync:"), (name, lines[name])
        assert "'canvas.list' permission (403)" in lines[name]
    blocked = [n for n, line in lines.items() if line != "ok"]
    assert len(blocked) == 7  # the five canvas streams, details included, and segment sizes
    assert "7 of 24 selected streams cannot sync." in out


@pytest.mark.parametrize("settings", [{}, {"series_segment_ids": ["s1"]}])
def test_a_403_names_the_same_streams_to_deselect_in_a_run_and_in_the_check(capsys, settings):
    with sandbox(denied_permissions={"segments.list"}) as sb:
        cfg = config(sb.url, **settings)
        code, _, out = check(capsys, cfg)
        run = run_tap(cfg, streams=["segments", "segment_data_series", "event_data_series"])
    assert code == 1
    assert run.returncode == 1
    said = re.findall(r"or deselect: ([^.]+)\.", out)
    assert said, out
    in_run = re.findall(r"or deselect: ([^.]+)\.", run.stderr)
    assert in_run == said[:1], (in_run, said)
    if settings:
        assert "event_data_series" in said[0], "the segments list is read for the event series"


def test_only_the_selected_streams_count(capsys):
    with sandbox(denied_permissions={"segments.data_series"}) as sb:
        code, lines, out = check(capsys, config(sb.url), ["session_data_series", "events"])
        paths = {r.path for r in sb.request_log}
    assert code == 0, out
    assert lines["session_data_series"] == lines["events"] == "ok"
    assert lines["segment_data_series"] == "not selected"
    assert paths == {"/sessions/data_series", "/events/list"}


def test_a_workspace_without_entities_has_nothing_to_sync_and_is_not_an_error(capsys):
    with sandbox(n_canvases=0) as sb:
        code, lines, out = check(capsys, config(sb.url))
    assert code == 0, out
    assert lines["canvas_data_series"] == "no canvases found: nothing to sync"
    assert lines["campaign_data_series"] == "ok"
    assert "(6 with nothing to sync)" in out


def test_an_endpoint_that_cannot_be_reached_is_named(capsys):
    def fail(path: str, params: dict) -> int | None:
        return 503 if path == "/kpi/dau/data_series" else None

    with sandbox() as sb, Proxy(sb.url, fail=fail) as proxy:
        code, lines, out = check(capsys, config(proxy.url, max_retries=5))
        tries = [r for r in proxy.log if r.path == "/kpi/dau/data_series"]
    assert code == 1
    assert lines["kpi_dau_data_series"] == "cannot sync: /kpi/dau/data_series cannot be reached"
    assert lines["kpi_mau_data_series"] == "ok"
    assert len(tries) == 2, "one retry, whatever max_retries says"
    assert "1 of 24 selected streams cannot sync." in out


def test_a_rejected_key_is_said_once_and_stops_asking(capsys):
    with sandbox() as sb:
        code, lines, out = check(capsys, {**config(sb.url), "api_key": "wrong-" + KEY})
        sent = len(sb.request_log)
    assert code == 1
    assert set(lines.values()) == {"cannot sync: the API key is rejected (401)"}
    assert out.count("Braze rejected the API key (401)") == 1
    assert "wrong-" not in out
    assert sent <= 5 + 7  # the lists at once, and the series that need no list


def test_the_command_line_takes_a_catalog_and_exits_1_for_a_blocked_stream(tmp_path):
    with sandbox(denied_permissions={"events.data_series"}) as sb:
        cfg = config(sb.url)
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        catalog = catalog_for(cfg, ["event_data_series", "canvases"])
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        run = subprocess.run(
            [*TAP, "--config", "config.json", "--catalog", "catalog.json", "--check"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 1, run.stderr[-2000:]
    lines = [line.split() for line in run.stdout.splitlines()]
    assert ["canvases", "ok"] in lines
    assert any(line[:3] == ["event_data_series", "cannot", "sync:"] for line in lines)
    assert "'events.data_series' permission (403)" in run.stdout
    assert "Traceback" not in run.stderr
    assert KEY not in run.stdout + run.stderr
