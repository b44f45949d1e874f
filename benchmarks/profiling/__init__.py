"""`--profile`: where the tap's CPU goes, on three workloads (hourly events, the canvas
family, 10,000 partitions), run in-process: CPU of the main thread and of the worker
threads; a cProfile of the main thread on a replay of the recorded responses (no HTTP,
no GIL contention) by component; the writers and record paths on the same replay; each
per-record step timed alone; and the CPU per request of the HTTP client the workers run."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from benchmarks.environment import calibrate, code_version, machine, quiet_check
from benchmarks.profiling.components import short_path
from benchmarks.profiling.micro import micro_costs
from benchmarks.profiling.workload import HERE, profile_workload
from benchmarks.workloads import FAMILIES, tap_config
from tests.harness.running import catalog_for


def main_profile(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tap-braze-profile-"))
    n_events = 20 if args.quick else 50
    n_canvas = 20 if args.quick else 50
    n_parts = 2000 if args.quick else 10000
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"# tap-braze-series profile — {started}")
    print(f"machine: {machine()}")
    print(f"code: {code_version()}")
    print(quiet_check())
    print(f"calibration (fixed pure-Python loop, lower = faster machine): {calibrate():.0f} ms\n")
    results = []
    for label, family, n, days, per in (
        (
            f"events hourly, {n_events} events × 365 days, latency 0",
            "events_hourly",
            n_events,
            365,
            "record",
        ),
        (
            f"canvas family (4 streams), {n_canvas} canvases × 91 days, latency 0",
            "canvas",
            n_canvas,
            91,
            "record",
        ),
        (
            f"many partitions: events daily, {n_parts} events × 3 days, latency 0",
            "events",
            n_parts,
            3,
            "partition",
        ),
    ):
        r = profile_workload(
            label,
            family,
            n,
            days,
            args.workers,
            workdir,
            args.top,
            per,
            variants=family == "events_hourly",
        )
        results.append(r)
        if family == "events_hourly":
            r["micro"] = micro_costs(
                tap_config("http://127.0.0.1:1", "k", days, args.workers),
                catalog_for(
                    tap_config("http://127.0.0.1:1", "k", days, args.workers),
                    FAMILIES[family]["streams"],
                ),
                workdir,
            )
        units = max(r["units"], 1)
        print(f"## {label}\n")
        what = f"records {r['records']:,}" + (f", {per}s {units:,}" if per != "record" else "")
        print(
            f"{what}; unprofiled in-process run (stdout = a pipe to a counting process, "
            f"best of 2): wall {r['wall']:.2f} s, process CPU {r['process_cpu']:.2f} s"
            f" = {1e6 * r['process_cpu'] / units:.1f} µs/{per} "
            f"({r['records'] / max(r['process_cpu'], 1e-9):,.0f} records/CPU-s); main thread "
            f"{r['main_thread_cpu']:.2f} s = {1e6 * r['main_thread_cpu'] / units:.1f} µs/{per}, "
            f"worker threads {r['worker_threads_cpu']:.2f} s = "
            f"{1e6 * r['worker_threads_cpu'] / units:.1f} µs/{per}."
        )
        rp, pr = r["replay"], r["profiled"]
        print(
            f"replayed from memory (no HTTP, no GIL contention; best of 3): wall "
            f"{rp['wall']:.2f} s, main thread {rp['main']:.2f} s = "
            f"{1e6 * rp['main'] / units:.1f} µs/{per}; under cProfile: wall {pr['wall']:.2f} s "
            f"(of which {r['waiting_s']:.2f} s blocked on futures, left out); estimated "
            f"profiler overhead per call {r['per_call_us']:.3f} µs; {r['prof_file']}\n"
        )
        print("Main thread (replayed run), by component:\n")
        print(r["components"] + "\n")
        print(f"Main thread (replayed run), top {args.top} functions by self time:\n")
        print(r["top"] + "\n")
        if r.get("record_paths"):
            print(
                "Writers, conformance levels and the record path, on the same replayed "
                "responses (main thread only; best of 2 each):\n"
            )
            print(r["record_paths"] + "\n")
        if r.get("micro"):
            print("Per-record steps timed in isolation (hourly event record):\n")
            print(r["micro"]["table"] + "\n")
        c = r["client"]
        if c:
            print(
                f"Worker side: {c['requests']} sequential client.get({c['path']}) of "
                f"{c['points_per_response']} points: {c['cpu_per_request_ms']:.2f} ms CPU per "
                f"request = {1000 * c['cpu_per_request_ms'] / c['points_per_response']:.1f} µs "
                "per point\n"
            )
            print(c["components"] + "\n")
            print(c["top"] + "\n", flush=True)
    path = HERE / "results" / f"profile-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"raw results: {short_path(str(path))}")
    return 0
