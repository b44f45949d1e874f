"""The command line and a large workspace."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
import requests

from tap_braze_series.sandbox import Sandbox, SandboxConfig, Workspace
from tap_braze_series.sandbox.__main__ import build_parser, config_from_args, main
from tap_braze_series.sandbox.timeutil import UTC

OPTIONS = [
    "--host",
    "--port",
    "--seed",
    "--canvases",
    "--campaigns",
    "--segments",
    "--events",
    "--products",
    "--apps",
    "--timezone",
    "--now",
    "--restatement-days",
    "--history-start",
    "--api-key",
    "--latency",
    "--rate-limit",
    "--fault-rate",
    "--fault-kinds",
    "--fault-max-repeats",
    "--slow-seconds",
    "--deny",
    "--ready-file",
]


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in OPTIONS:
        assert opt in out, opt


def test_args_to_config():
    args = build_parser().parse_args(
        [
            "--seed",
            "3",
            "--canvases",
            "5",
            "--apps",
            "a,b,c",
            "--timezone",
            "Europe/Paris",
            "--now",
            "2024-03-10T12:00:00",
            "--history-start",
            "2023-06-01",
            "--rate-limit",
            "default=25/2",
            "--rate-limit",
            "lists_1000=7/60",
            "--fault-rate",
            "0.25",
            "--fault-kinds",
            "500,drop",
            "--deny",
            "events.list",
            "--deny",
            "canvas.details",
            "--latency",
            "0.1",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.seed == 3
    assert cfg.n_canvases == 5
    assert cfg.apps == ("a", "b", "c")
    assert cfg.now == datetime(2024, 3, 10, 11, 0, tzinfo=UTC)
    assert cfg.history_start.isoformat() == "2023-06-01"
    assert cfg.rate_limits == {"default": (25, 2.0), "lists_1000": (7, 60.0)}
    assert cfg.fault_kinds == ("500", "drop")
    assert cfg.fault_rate == 0.25
    assert cfg.denied_permissions == {"events.list", "canvas.details"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--rate-limit", "nopool=1/1"])


def test_cli_serves_and_stops_on_sigterm(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tap_braze_series.sandbox",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--api-key",
            "k-123",
            "--now",
            "2024-03-15T12:00:00Z",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "sandbox did not become ready"
            time.sleep(0.05)
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = requests.get(
            url + "/kpi/dau/data_series",
            params={"length": 2},
            headers={"Authorization": "Bearer k-123"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert [r["time"] for r in resp.json()["data"]] == ["2024-03-14", "2024-03-15"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"Braze sandbox listening on {url} (api key: k-123)" in out.splitlines()[0]


def test_large_workspace_builds_fast_and_serves_fast():
    cfg = SandboxConfig(
        n_canvases=1000,
        n_events=1000,
        n_campaigns=1000,
        n_segments=1000,
        n_products=1000,
        now=datetime(2024, 3, 15, 12, tzinfo=UTC),
        count_zero_buckets="filled",  # every hour a point: the full size is timed
    )
    t0 = time.perf_counter()
    ws = Workspace(cfg)
    assert time.perf_counter() - t0 < 2.0
    assert len(ws.canvases) == 1000
    assert len(ws.events) == 1000
    with Sandbox(cfg, workspace=ws) as sb, requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {sb.api_key}"
        durations = []
        for canvas in (ws.canvases[0], ws.canvases[500], ws.canvases[-1]):
            t = time.perf_counter()
            r = s.get(
                sb.url + "/canvas/data_series",
                params={
                    "canvas_id": canvas.id,
                    "length": 14,
                    "include_variant_breakdown": "true",
                    "include_step_breakdown": "true",
                    "include_deleted_step_data": "true",
                },
                timeout=10,
            )
            durations.append(time.perf_counter() - t)
            assert r.status_code == 200
        for event in (ws.events[0], ws.events[999]):
            t = time.perf_counter()
            r = s.get(
                sb.url + "/events/data_series",
                params={"event": event, "length": 100, "unit": "hour"},
                timeout=10,
            )
            durations.append(time.perf_counter() - t)
            assert r.status_code == 200
            assert len(r.json()["data"]) == 100
        r = s.get(sb.url + "/events/list", params={"page": 3}, timeout=10)
        assert len(r.json()["events"]) == 250
        assert max(durations) < 1.0
        assert sb.internal_errors == []
