"""A server misbehaving in stranger ways: every row still right, or one clear error line.

- interim (1xx) answers before every answer, and answers nobody asked for: every row
  of every partition equals the oracle, and no connection that answered out of turn
  is used again;
- a list that ignores `page`: it ends at the first page naming only entities already
  listed, with one warning, in no more requests than a list of that size needs;
- an answer that cannot be decoded whole (a number like 1e999) or that inflates past
  the size bound (a gzip or deflate bomb): retried like invalid JSON; if it stays so,
  only its partition stops, its bookmark before it, everything else is synced;
- text that is not UTF-8: read with replacement characters and a warning;
- stdout on a full disk, stdout closed at start, the spool's folder full: one
  `tap-braze-series: error:` line naming the cause and the fix, no traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tap_braze_series.sandbox.faults import FaultInjector
from tests.harness.expected import assert_matches, oracle
from tests.harness.messages import bookmarks, bucket_order, keyed, keys_of
from tests.harness.running import CLI, catalog_for, run_cli, run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 3, 20)
APPS = ["app_ios"]
SERIES = [
    "canvas_data_series",
    "canvas_step_data_series",
    "event_data_series",
    "event_data_series_hourly",
    "session_data_series",
]


def _config(sb, **extra) -> dict:
    return tap_config(
        sb.url, sb.api_key, NOW, START.isoformat(), app_ids=APPS, max_workers=4, **extra
    )


def _assert_every_row_right(sb, run, streams=SERIES) -> None:
    for stream in streams:
        want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
        assert_matches(stream, keyed(run.records[stream], keys_of(stream)), want)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "tap-braze-series: error:" in line]


# --- 1. interim answers and answers out of turn -----------------------------------------


@pytest.mark.parametrize("kind", ["early_hints", "interim"])
def test_interim_answers_on_every_response_change_no_row(kind):
    with sandbox(now=NOW) as sb:
        sb.set_faults(rate=1.0, kinds=(kind,), max_repeats=10**6)
        run = run_tap(_config(sb), streams=SERIES)
        log = sb.request_log.snapshot()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "retry" not in run.stderr, run.stderr[-3000:]  # each answer was taken at once
    assert log
    assert all(r.fault == kind for r in log)
    _assert_every_row_right(sb, run)
    # Kept-alive connections were reused: interim answers do not cost connections.
    ports = [r.client_port for r in log]
    assert len(set(ports)) < len(ports) / 2, (len(set(ports)), len(ports))


def test_a_connection_that_answers_out_of_turn_is_not_used_again():
    with sandbox(now=NOW) as sb:
        sb.set_faults(rate=1.0, kinds=("unsolicited",), max_repeats=10**6)
        run = run_tap(_config(sb), streams=SERIES)
        log = sb.request_log.snapshot()
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_every_row_right(sb, run)
    # Every connection sent one unasked-for answer after its first: none carried a second.
    ports = [r.client_port for r in log]
    assert len(ports) == len(set(ports)), "a connection was reused after answering out of turn"


# --- 2. a list that ignores `page` ------------------------------------------------------


@pytest.mark.parametrize("n_canvases", [40, 100, 250])
def test_a_list_that_ignores_page_ends_in_the_requests_its_entities_need(n_canvases):
    page_size = 100
    with sandbox(now=NOW, n_canvases=n_canvases, lists_ignore_page=True) as sb:
        config = _config(sb, start_date="2024-04-28", include_archived=True)
        run = run_tap(config, streams=["canvases", "canvas_data_series"], timeout=120)
        lists = [r for r in sb.request_log if r.path == "/canvas/list"]
        page = requests.get(
            sb.url + "/canvas/list",
            params=lists[0].params,
            headers={"Authorization": f"Bearer {sb.api_key}"},
            timeout=10,
        ).json()["canvases"]
    assert run.returncode == 0, run.stderr[-3000:]
    # A right list of n needs n // 100 + 1 pages; one that repeats page 0 ends at page 1.
    assert len(lists) <= n_canvases // page_size + 1, len(lists)
    assert len(lists) == (1 if n_canvases < page_size else 2), [r.params for r in lists]
    warnings = [line for line in run.stderr.splitlines() if "ignore `page`" in line]
    assert len(warnings) == (0 if n_canvases < page_size else 1), warnings
    if warnings:
        assert "/canvas/list" in warnings[0]
    assert sorted(r["id"] for r in run.records["canvases"]) == sorted(c["id"] for c in page)
    assert len(page) == min(n_canvases, page_size)


# --- 3. and 7. answers that cannot be decoded, or are too large -----------------------


@contextlib.contextmanager
def _body_fault(kind: str, match: str, repeats: int | None, **extra) -> Iterator:
    with sandbox(
        now=NOW, body_fault=kind, body_fault_match=match, body_fault_repeats=repeats, **extra
    ) as sb:
        yield sb


@pytest.mark.parametrize("kind", ["huge_number", "gzip_bomb", "deflate_bomb"])
def test_an_undecodable_answer_once_is_retried_and_changes_nothing(kind):
    with sandbox(now=NOW) as probe:
        event = probe.workspace.events[0]
    with _body_fault(kind, f"event={event}&", 1, bomb_bytes=300 * 1024**2) as sb:
        run = run_tap(_config(sb), streams=SERIES)
        faulty = [r for r in sb.request_log if r.fault == kind]
    assert run.returncode == 0, run.stderr[-3000:]
    assert faulty
    assert "retry" in run.stderr
    _assert_every_row_right(sb, run)


@pytest.mark.parametrize("kind", ["huge_number", "gzip_bomb"])
def test_an_answer_that_stays_undecodable_stops_only_its_partition(kind):
    with sandbox(now=NOW) as probe:
        event = probe.workspace.events[1]
    # The daily event stream's second window for that event (the first is before its data).
    with _body_fault(kind, f"event={event}&", None, bomb_bytes=300 * 1024**2) as sb:
        config = _config(sb, max_retries=2)
        run = run_tap(config, streams=SERIES)
        asked = [r for r in sb.request_log if r.fault == kind]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert len(asked) >= 3  # each of its requests: asked, then retried twice
    warnings = [line for line in run.stderr.splitlines() if "Skipping /events/data_series" in line]
    assert warnings, run.stderr[-3000:]
    assert all(event in line for line in warnings)
    # Every other partition and stream is whole.
    _assert_every_row_right(sb, run, [s for s in SERIES if not s.startswith("event_")])
    for stream in ("event_data_series", "event_data_series_hourly"):
        want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
        others = {k: v for k, v in want.items() if k[0] != event}
        got = keyed([r for r in run.records[stream] if r["event_name"] != event], keys_of(stream))
        assert_matches(stream, got, others)
        assert not [r for r in run.records[stream] if r["event_name"] == event]
        # Its bookmark claims nothing: the next run reads it again.
        marks = bookmarks(run.state).get(stream, {})
        assert not [p for p in marks if dict(p).get("event_name") == event], marks


def test_text_that_is_not_utf8_is_read_with_replacement_characters():
    with _body_fault("bad_utf8", "/canvas/list", None) as sb:
        run = run_tap(_config(sb), streams=["canvases", "canvas_data_series"])
        names = {c.id: c.name for c in sb.workspace.canvases if not c.archived}
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "not UTF-8" in line]
    assert len(warnings) == 1, warnings  # one list page, asked once
    assert "/canvas/list" in warnings[0]
    got = {r["id"]: r["name"] for r in run.records["canvases"]}
    assert set(got) == set(names)
    mangled = [i for i, name in got.items() if name != names[i]]
    assert len(mangled) == 1, mangled
    assert got[mangled[0]] == "Caf\ufffd " + names[mangled[0]]
    assert run.records["canvas_data_series"]


# --- 5. output and the spool's folder ---------------------------------------------------


def _streams_run(
    tmp: Path, config: dict, streams: list[str], **popen
) -> subprocess.CompletedProcess:
    (tmp / "config.json").write_text(json.dumps(config))
    (tmp / "catalog.json").write_text(json.dumps(catalog_for(config, streams)))
    command = [CLI, "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")]
    return subprocess.run(command, timeout=120, **popen)


def test_stdout_on_a_full_disk_is_one_error_line(tmp_path):
    with sandbox(now=NOW) as sb, open("/dev/full", "wb") as full:
        proc = _streams_run(
            tmp_path, _config(sb), SERIES, stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "stdout cannot be written" in errors[0]
    assert "No space left on device" in errors[0]
    assert proc.stderr.rstrip().endswith(errors[0])


def test_stdout_closed_at_start_is_one_error_line(tmp_path):
    with sandbox(now=NOW) as sb:
        proc = _streams_run(
            tmp_path,
            _config(sb),
            SERIES,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.close(1),
        )
        sent = len(sb.request_log)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "tap-braze-series: error: stdout is closed (the tap was started with >&- or without "
        "an output); run it with stdout going to a target, a file or a pipe."
    ]
    assert sent == 0


@pytest.fixture
def tiny_tmpdir() -> Iterator[Path]:
    """A 1 MB file system, nearly full (mounting it needs root)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="tap-braze-series-tiny-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        filler = folder / "filler"
        with open(filler, "wb") as out, contextlib.suppress(OSError):
            out.write(b"\0" * (1024 * 1024 - 16 * 1024))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def test_the_spools_folder_full_is_one_error_line(tiny_tmpdir, tmp_path):
    canvas = [
        "canvas_data_series",
        "canvas_variant_data_series",
        "canvas_step_data_series",
        "canvas_step_message_data_series",
    ]
    with sandbox(now=NOW, n_canvases=6) as sb:
        config = {**_config(sb), "start_date": "2024-01-01"}
        proc = _streams_run(
            tmp_path,
            config,
            canvas,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(tiny_tmpdir)},
        )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr[-3000:]
    assert f"the temporary folder {tiny_tmpdir} is full" in errors[0]
    assert "TMPDIR" in errors[0]
    # What was written is whole Singer lines.
    for line in proc.stdout.splitlines():
        json.loads(line)


def test_an_odd_character_in_the_key_names_api_key_and_not_the_key(tmp_path):
    key = "f3a9c2d1-7b\u20118e4-4c6d-9a1b-2e3f4a5b6c7d"
    with sandbox(now=NOW) as sb:
        run = run_cli(tap_config(sb.url, key, NOW, "2024-04-01"))
        sent = len(sb.request_log)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    errors = _error_lines(run.stderr)
    assert len(errors) == 1, run.stderr[-2000:]
    assert "api_key" in errors[0]
    assert "U+2011" in errors[0]
    assert "Re-paste the key" in errors[0]
    assert key not in run.stderr
    assert key[:11] not in run.stderr
    assert sent == 0


def test_a_later_window_that_stays_undecodable_keeps_the_rows_before_it():
    """The partition's rows before the window are emitted, its bookmark stays before it."""
    stream = "event_data_series_hourly"
    with sandbox(now=NOW) as sb:
        event = sb.workspace.events[2]
        clean = run_tap(_config(sb), streams=[stream])
        windows = sorted(
            (
                r
                for r in sb.request_log
                if r.params.get("event") == event and "app_id" not in r.params
            ),
            key=lambda r: r.params["ending_at"],
        )
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert len(windows) >= 3, [r.params for r in windows]
    last = windows[-1]
    identity = FaultInjector.identity(last.path, last.params)
    with _body_fault("huge_number", identity, None) as sb:
        run = run_tap(_config(sb, max_retries=1), streams=[stream])
        asked = [r for r in sb.request_log if r.fault == "huge_number"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(asked) == 2  # asked, and once again
    want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
    got = keyed(run.records[stream], keys_of(stream))
    partition = (event, "*")
    missing = sorted(k for k in want.keys() - got.keys())
    assert missing, "the undecodable window's rows were emitted"
    assert {k[:2] for k in missing} == {partition}
    first_missing = bucket_order(missing[0][2])
    # Everything before the window is there and right; nothing from it on.
    assert_matches(stream, got, {k: v for k, v in want.items() if k not in set(missing)})
    assert all(bucket_order(k[2]) < first_missing for k in got if k[:2] == partition)
    mark = bookmarks(run.state)[stream][(("app_id", "*"), ("event_name", event))]
    assert bucket_order(mark) < first_missing
