"""An in-process run of the tap under the profiler: the main thread's and the worker
threads' CPU, a replay of the recorded responses by component, the record paths, and the
CPU per request of the HTTP client."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import wait_quiet
from benchmarks.processes import SandboxProcess
from benchmarks.profiling.components import profile_tables, short_path
from benchmarks.profiling.record_paths import (
    RECORD_PATHS,
    Replay,
    profiled_tap,
    singer_output_counted,
)
from benchmarks.reports import table
from benchmarks.workloads import FAMILIES, tap_config
from tests.harness.running import catalog_for

HERE = Path(__file__).resolve().parent.parent


def profile_workload(
    label: str,
    family: str,
    n: int,
    days: int,
    workers: int,
    workdir: Path,
    top: int,
    per: str = "record",
    variants: bool = False,
) -> dict[str, Any]:
    import cProfile
    import pstats

    casedir = workdir / f"profile-{family}"
    casedir.mkdir(parents=True, exist_ok=True)
    kind = FAMILIES[family]["entity"]
    result: dict[str, Any] = {"label": label}
    replay = Replay()
    with SandboxProcess(casedir, **{kind: n, "latency": 0.0}) as sandbox:
        config = tap_config(sandbox.info["url"], sandbox.info["api_key"], days, workers)
        catalog = catalog_for(config, FAMILIES[family]["streams"])

        def once(
            mode: str, profiler: Any | None = None, variant: str | None = None
        ) -> dict[str, Any]:
            wait_quiet()
            tap_class = profiled_tap(variant, replay, replaying=mode == "replay")
            tap = tap_class(config=config, catalog=catalog, state=None, validate_config=True)
            with singer_output_counted(casedir / f"profile-stderr-{mode}.log") as output:
                wall0, proc0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
                try:
                    if profiler is not None:
                        profiler.enable()
                    tap.sync_all()
                finally:
                    if profiler is not None:
                        profiler.disable()
                    wall = time.perf_counter() - wall0
                    proc_cpu = time.process_time() - proc0
                    main_cpu = time.thread_time() - thread0
                    flush = getattr(tap.message_writer, "flush", None)
                    if callable(flush):
                        flush()  # what the tap's writer may hold, into the counter
            with contextlib.suppress(Exception):
                tap.runtime.executor().shutdown(wait=True)
            return {"wall": wall, "cpu": proc_cpu, "main": main_cpu, "records": output.records}

        real = min((once("real"), once("record")), key=lambda r: r["cpu"])
        # The worker threads' side: client.get() of a full window, sequentially.
        client_result = profile_client(config, catalog, family, top) if per == "record" else None
        # The replays still read the entity lists from the sandbox.
        replayed = min((once("replay") for _ in range(3)), key=lambda r: r["main"])
        if variants:
            rows = []
            for variant in RECORD_PATHS:
                best = min(
                    (once("replay", variant=variant) for _ in range(2)), key=lambda r: r["main"]
                )
                us = 1e6 * best["main"] / max(best["records"], 1)
                rows.append([variant, us, 1e6 / us])
            result["record_paths"] = table(
                [
                    "writer and record path (replayed, main thread)",
                    "µs/record",
                    "records per main-thread CPU-s",
                ],
                rows,
            )
        profiler = cProfile.Profile()  # wall clock; in a replay, main-thread wall ≈ its CPU
        profiled = once("replay", profiler)
    prof_path = HERE / "results" / f"profile-{family}.prof"
    prof_path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(prof_path)
    stats = pstats.Stats(profiler)
    records = real["records"]
    if per == "partition":
        units = n  # one partition per event (no app_ids)
        tables = profile_tables(stats, units, replayed["main"], top, unit="partition")
    else:
        units = profiled["records"]
        tables = profile_tables(stats, units, replayed["main"], top)
    result.update(
        records=records,
        wall=real["wall"],
        process_cpu=real["cpu"],
        main_thread_cpu=real["main"],
        worker_threads_cpu=real["cpu"] - real["main"],
        replay=replayed,
        profiled=profiled,
        prof_file=str(short_path(str(prof_path))),
        client=client_result,
        per=per,
        units=units,
        **tables,
    )
    return result


def profile_client(
    config: dict, catalog: dict, family: str, top: int, n: int = 300
) -> dict[str, Any]:
    """CPU per request of the tap's HTTP client (what each worker thread does)."""
    import cProfile
    import pstats

    from tap_braze_series.tap import TapBrazeSeries

    tap = TapBrazeSeries(config=config, catalog=catalog, state=None)
    client = tap.runtime.client
    if family == "canvas":
        canvas = client.get("/canvas/list", {"page": 0}).body["canvases"][0]["id"]
        path = "/canvas/data_series"
        params = {
            "canvas_id": canvas,
            "length": 14,
            "ending_at": "2024-12-31T23:59:59+00:00",
            "include_variant_breakdown": True,
            "include_step_breakdown": True,
            "include_deleted_step_data": True,
        }
        points = 14
    else:
        event = client.get("/events/list", {"page": 0}).body["events"][0]
        path = "/events/data_series"
        unit = FAMILIES[family]["unit"]
        params = {
            "event": event,
            "length": 100,
            "ending_at": "2024-12-31T23:59:59+00:00",
            "unit": unit,
        }
        points = 100
    for _ in range(20):  # warm up the connection
        client.get(path, params)
    wait_quiet()
    t0 = time.thread_time()
    for _ in range(n):
        client.get(path, params)
    cpu = time.thread_time() - t0
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(n):
        client.get(path, params)
    profiler.disable()
    prof_path = HERE / "results" / f"profile-client-{family}.prof"
    prof_path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(prof_path)
    stats = pstats.Stats(profiler)
    tables = profile_tables(stats, n, cpu, min(top, 15), unit="request", correct=False)
    return {
        "path": path,
        "points_per_response": points,
        "requests": n,
        "cpu_per_request_ms": 1000 * cpu / n,
        **tables,
    }
