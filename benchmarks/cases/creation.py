"""A two-year backfill of canvases and campaigns created across it: each partition from
its entity's creation day saves the requests (and the rows of zeros) before it. Three
runs: without the details permissions (from start_date), from creation days, and with
the details streams synced; the rows are checked against the sandbox's oracle."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.environment import wait_quiet
from benchmarks.measure import Bench
from benchmarks.processes import SandboxProcess, run_measured_tap
from benchmarks.reports import table
from benchmarks.workloads import END_DATE, tap_config, workspace
from tests.harness.expected import oracle
from tests.harness.messages import TapRun, keyed, parse_messages

CREATION_DAYS = 730
CREATION_SERIES = {  # stream -> (series path, details path, entity kind, max length)
    "canvas_data_series": ("/canvas/data_series", "/canvas/details", "canvases", 14),
    "campaign_data_series": ("/campaigns/data_series", "/campaigns/details", "campaigns", 100),
}


def check_rows(ws: Any, stdout: Path, start: dt.date) -> dict[str, int]:
    """The rows against the tests' oracle (every day from each entity's creation day,
    every value exact), counted rather than asserted."""
    messages = TapRun(0, "", "")
    parse_messages(stdout.read_text(), messages)
    created = {e.id: ws.created_day(e) for e in (*ws.active_canvases, *ws.active_campaigns)}
    out = {"rows": 0, "before_creation": 0, "missing": 0, "wrong": 0}
    for stream in CREATION_SERIES:
        entity_column = "canvas_id" if stream.startswith("canvas") else "campaign_id"
        got = keyed(messages.records.get(stream, []), (entity_column, "time"))
        want = oracle(ws, stream, first=start, last=END_DATE, now=ws.config.now)
        out["rows"] += len(got)
        out["missing"] += len(want.keys() - got.keys())
        for key in got.keys() - want.keys():
            entity, day = key[0], dt.date.fromisoformat(key[1])
            if entity in created and day < created[entity]:
                out["before_creation"] += 1
            else:
                out["wrong"] += 1
        for key in want.keys() & got.keys():
            row, extra = got[key], got[key].get("extra_metrics") or {}
            out["wrong"] += any(
                row.get(name, extra.get(name)) != value for name, value in want[key].items()
            )
    return out


def run(bench: Bench) -> str:
    text, data = case_creation(bench.size, bench.workdir, bench.workers, bench.latency)
    bench.save("creation", data)
    return text


def case_creation(size: dict[str, Any], workdir: Path, workers: int, latency: float) -> tuple:
    """Two-year backfill of canvases and campaigns created across it: requests and rows."""
    start = END_DATE - dt.timedelta(days=CREATION_DAYS - 1)
    spec: dict[str, Any] = {
        "canvases": size["creation_canvases"],
        "campaigns": size["creation_campaigns"],
        "latency": latency,
        "history_start": start.isoformat(),
    }
    ws = workspace(spec)
    active = {"canvases": ws.active_canvases, "campaigns": ws.active_campaigns}
    series_min = 0
    new = 0  # entities created after start_date: the only ones whose day saves requests
    for _stream, (_path, _details, kind, max_length) in CREATION_SERIES.items():
        for entity in active[kind]:
            first = max(start, ws.created_day(entity))
            series_min += math.ceil(((END_DATE - first).days + 1) / max_length)
            new += ws.created_day(entity) > start
    entities = sum(len(v) for v in active.values())
    variants = (
        ("from start_date (no details permission)", (), ["canvas.details", "campaigns.details"]),
        ("from creation days", (), []),
        ("from creation days, details streams synced", ("canvas_details", "campaign_details"), []),
    )
    rows, data = [], []
    for label, extra_streams, denied in variants:
        casedir = workdir / f"creation-{len(data)}"
        casedir.mkdir(parents=True, exist_ok=True)
        wait_quiet()
        with SandboxProcess(casedir, **spec, denied=denied) as sandbox:
            url, key = sandbox.info["url"], sandbox.info["api_key"]
            config = tap_config(url, key, CREATION_DAYS, workers)
            stdout = casedir / "tap-stdout.jsonl"
            run = run_measured_tap(
                config, (*CREATION_SERIES, *extra_streams), casedir, save_stdout=stdout
            )
        if run.returncode != 0:
            raise RuntimeError(f"creation {label}: the tap failed:\n{run.stderr_tail}")
        served = Counter(r[0] for r in sandbox.log["requests"] if r[1] == 200)
        series = sum(served[path] for path, *_ in CREATION_SERIES.values())
        details = sum(served[d] for _p, d, *_ in CREATION_SERIES.values())
        # With the details streams synced, every entity's details are asked anyway.
        minimum = series_min + (entities if extra_streams else new)
        check = check_rows(ws, stdout, start)
        stdout.unlink()
        made = series + details
        rows.append(
            [
                label,
                series,
                details,
                made,
                minimum,
                f"{100 * (made / minimum - 1):+.1f}%",
                check["rows"],
                check["before_creation"],
                check["missing"],
                check["wrong"],
                f"{run.wall:.2f}",
            ]
        )
        data.append(
            {
                "label": label,
                "series": series,
                "details": details,
                "minimum": minimum,
                "series_minimum": series_min,
                "check": check,
                "wall": run.wall,
                "cpu": run.cpu,
                "by_path": dict(served),
            }
        )
        print(
            f"  creation   {label:<44} series {series} details {details} (minimum "
            f"{minimum}) rows {check['rows']} before creation {check['before_creation']} "
            f"missing {check['missing']} wrong {check['wrong']} wall {run.wall:.2f} s",
            flush=True,
        )
    text = (
        f"## Backfill from creation days ({len(ws.active_canvases)} canvases and "
        f"{len(ws.active_campaigns)} campaigns, {new} of them created after start_date; "
        f"canvas_data_series + campaign_data_series over {CREATION_DAYS} days, latency "
        f"{latency * 1000:g} ms, {workers} workers)\n\n"
        + table(
            [
                "run",
                "series requests",
                "details requests",
                "series + details",
                "minimum",
                "over minimum",
                "rows",
                "rows before creation",
                "days missing",
                "rows wrong",
                "wall s",
            ],
            rows,
        )
        + f"\n\nminimum = each entity's windows from the later of start_date and its "
        f"creation day ({series_min}) + one details request per entity created after "
        "start_date (with the details streams synced: per entity, which those streams need "
        "anyway)."
    )
    return text, data
