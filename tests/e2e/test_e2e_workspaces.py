"""Two Braze workspaces side by side: meltano.yml's `tap-braze-series-eu` and
`tap-braze-series-us` (each `inherit_from: tap-braze-series`) run at once, each against
its own sandbox, and each ends with its own complete rows and its own state."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from tap_braze_series.sandbox import Sandbox
from tests.harness.expected import assert_rows_equal, expected_rows
from tests.harness.messages import bookmarks
from tests.harness.sandboxes import MELTANO_NOW, sandbox_config

pytestmark = pytest.mark.e2e

START = dt.date(2024, 5, 1)
END = MELTANO_NOW.date()
SERIES = ["canvas_data_series", "event_data_series"]
STREAMS = [*SERIES, "canvases", "events"]
WORKSPACES = ("eu", "us")


def workspace_env(name: str, sb: Sandbox, out_dir: str) -> dict[str, str]:
    """A workspace's own variables: nothing of the other's, nor the parent's."""
    prefix = f"TAP_BRAZE_SERIES_{name.upper()}"
    return {
        f"{prefix}_API_URL": sb.url,
        f"{prefix}_API_KEY": sb.api_key,
        f"{prefix}_START_DATE": START.isoformat(),
        # The sandbox's now, not its day: the tap's clock is the real one, so an end at
        # the sandbox's (partial) day would be a complete day to it.
        f"{prefix}_END_DATE": MELTANO_NOW.isoformat(),
        f"{prefix}__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
        "TARGET_JSONL_DESTINATION_PATH": out_dir,
    }


def test_two_workspaces_run_at_once_each_with_its_rows_and_state(meltano, tmp_path):
    configs = {
        "eu": sandbox_config("meltano", seed=11, n_canvases=5, n_events=4, api_key="eu-key"),
        "us": sandbox_config("meltano", seed=12, n_canvases=7, n_events=3, api_key="us-key"),
    }
    # Meltano creates its system database on first use, and two runs at once on a new one
    # race to create its tables (docs/operations.md): one command first, as a user would.
    meltano.state_list()
    with Sandbox(configs["eu"]) as eu, Sandbox(configs["us"]) as us:
        sandboxes = {"eu": eu, "us": us}
        outs = {name: tmp_path / name for name in WORKSPACES}
        procs = {}
        for name in WORKSPACES:
            outs[name].mkdir()
            env = meltano.environ(workspace_env(name, sandboxes[name], str(outs[name])))
            procs[name] = subprocess.Popen(
                [
                    str(meltano.meltano),
                    "run",
                    "--no-install",
                    f"tap-braze-series-{name}",
                    "target-jsonl",
                ],
                cwd=meltano.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        outputs = {name: proc.communicate(timeout=600)[0] for name, proc in procs.items()}
        for name, proc in procs.items():
            assert proc.returncode == 0, outputs[name][-3000:]
            # Each sandbox accepts only its own workspace's key: no request was refused.
            assert {r.status for r in sandboxes[name].request_log} == {200}, name

    for name in WORKSPACES:
        ws = sandboxes[name].workspace
        for stream in STREAMS:
            lines = (outs[name] / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            assert_rows_equal(stream, rows, expected_rows(ws, stream, START, END, MELTANO_NOW))
        marks = bookmarks(meltano.state_get(f"dev:tap-braze-series-{name}-to-target-jsonl"))
        assert sorted(marks) == sorted(SERIES)
        canvases = {dict(c)["canvas_id"] for c in marks["canvas_data_series"]}
        assert canvases == {c.id for c in ws.active_canvases}, name
        assert len(marks["event_data_series"]) == len(ws.events)
        # Each partition is bookmarked at its last row: today (partial) for canvases, and
        # for an event the last day with a row (a zero partial day has none yet).
        for stream, entity in (
            ("canvas_data_series", "canvas_id"),
            ("event_data_series", "event_name"),
        ):
            last: dict[str, str] = {}
            for row in expected_rows(ws, stream, START, END, MELTANO_NOW):
                last[row[entity]] = max(last.get(row[entity], ""), row["time"])
            found = {dict(c)[entity]: mark for c, mark in marks[stream].items()}
            assert found == last, (name, stream)
    assert "dev:tap-braze-series-to-target-jsonl" not in meltano.state_list()
