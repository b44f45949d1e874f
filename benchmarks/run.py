#!/usr/bin/env python
"""Benchmarks of tap-braze-series against the bundled Braze sandbox.

Measures, does not optimise. Every case starts the sandbox in a process of its own
and runs the tap as a subprocess as Meltano would (processes.py: the tap's CPU from
its rusage, its peak RSS from its VmHWM, its Singer output counted as it streams).

Layout: run.py (this entry point), environment.py (the machine, quiet checks,
calibration, the code measured), processes.py (the sandbox's and the tap's processes),
workloads.py (sizes, families, the tap's config, minimum requests), measure.py (one
measured case), reports.py (tables), cases/ (one module per case), profiling/
(--profile).

Cases:

  scaling     canvases (the 4 canvas streams) and events (daily) at 10 / 100 / 1,000
              entities: requests vs the minimum, wall vs the ideal, records/CPU-s, RSS
  throughput  events hourly over a year at latency 0: records per CPU-second of the tap
  memory      the same entities over 30 days vs 2 years: peak RSS should stay flat
  state       100 / 1,000 / 10,000 partitions (events daily, 3 days, latency 0):
              STATE bytes, STATE messages and tap CPU, and whether they grow linearly
  ratelimit   a sandbox limit (default 200 requests / 5 s): 429s, requests per window,
              wall vs the limit-imposed ideal
  tail        slow responses: canvas_data_series alone, the 4 canvas streams, events
              hourly and daily (1,000 events), each with uniform latency, 1 response in
              10 taking 1 s more and 1 in 20 taking 2 s more (the sandbox's latency tail:
              the same requests every run); wall vs the ideal computed from the
              sandbox's request log, and whether the records (and their order) match
  memory_large  (only with --cases) 1,000 canvases × 2 years, the 4 canvas streams with
              breakdowns, with and without slow responses: peak RSS

Other processes skew every figure: before each case the script waits for the machine
to go quiet, measures the CPU other processes used during the case, and measures the
case again when that exceeds 0.1 core. A calibration loop (ms, lower = faster) is
printed with each case: on a shared VM the speed of a CPU-second drifts.

`--profile` instead runs the tap in-process (subclasses of the tap that choose the
writer and the record path and replay responses, see profiling/record_paths.py; stdout
into a pipe that `grep -c` reads) on three workloads (hourly events, the canvas
family, 10,000 partitions): CPU of the main thread and of
the worker threads; a cProfile of the main thread on a replay of the recorded
responses (no HTTP, no GIL contention) by component; each per-record step timed alone;
and the CPU per request of the HTTP client the workers run.

Examples:

  .venv/bin/python benchmarks/run.py --quick              # about a minute
  .venv/bin/python benchmarks/run.py                      # default, about 8 minutes
  .venv/bin/python benchmarks/run.py --cases state,ratelimit --latency 0.05 --workers 8
  .venv/bin/python benchmarks/run.py --full               # 8.8M-record throughput, etc.
  .venv/bin/python benchmarks/run.py --profile            # about 3 minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# The benchmark's modules, the tap and the tests' harness, importable from the checkout.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import profiling  # noqa: E402
from benchmarks.cases import CASES  # noqa: E402
from benchmarks.environment import (  # noqa: E402
    QUIET,
    calibrate,
    code_version,
    machine,
    quiet_check,
)
from benchmarks.measure import Bench, measure_startup  # noqa: E402
from benchmarks.workloads import ALL_CASES, DEFAULT_CASES, SIZES  # noqa: E402

HERE = Path(__file__).resolve().parent


def main_bench(args: argparse.Namespace) -> int:
    size = SIZES["quick" if args.quick else "full" if args.full else "default"]
    cases = [c.strip() for c in args.cases.split(",")] if args.cases else list(DEFAULT_CASES)
    for case in cases:
        if case not in ALL_CASES:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(ALL_CASES)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tap-braze-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lat, workers = args.latency, args.workers
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": "quick" if args.quick else "full" if args.full else "default",
        "latency": lat,
        "workers": workers,
        "sizes": size,
        "cases": {},
    }
    print(f"# tap-braze-series benchmarks — {out['date']}")
    print(f"machine: {out['machine']}")
    print(f"code: {out['code']}")
    out["load"] = quiet_check()
    print(out["load"])
    out["calibration_ms"] = calibrate()
    print(
        f"calibration (fixed pure-Python loop, lower = faster machine): "
        f"{out['calibration_ms']:.0f} ms"
    )
    print(
        f"mode: {out['mode']}, latency {lat * 1000:g} ms, max_workers {workers}, "
        f"workdir {workdir}\n",
        flush=True,
    )

    startup = measure_startup(workdir, workers)
    out["startup"] = {"wall": startup.wall, "cpu": startup.cpu, "rss": startup.maxrss_mb}
    print(
        f"startup (0 entities, best of 3): wall {startup.wall:.2f} s, tap CPU "
        f"{startup.cpu:.2f} s, peak RSS {startup.maxrss_mb:.0f} MB\n",
        flush=True,
    )
    bench = Bench(
        size,
        workdir,
        lat,
        workers,
        startup,
        rl_limit=args.rl_limit,
        rl_window=args.rl_window,
        results=out["cases"],
    )
    sections = [module.run(bench) for name, module in CASES.items() if name in cases]
    print()
    for section in sections:
        print(section + "\n")
    results_path = (
        Path(args.json)
        if args.json
        else HERE
        / "results"
        / (f"{out['mode']}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    )
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(out, indent=1, default=str))
    print(f"raw results: {results_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Benchmark tap-braze-series against the sandbox: requests vs "
        "minimum, wall vs ideal, 429s, records per CPU-second, peak RSS, STATE cost.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Cases: "
        + ", ".join(ALL_CASES)
        + ". Sizes per mode:\n"
        + "\n".join(f"  {mode}: {json.dumps(s)}" for mode, s in SIZES.items()),
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="sandbox latency per response in seconds for the scaling and "
        "rate-limit cases (default: %(default)s); throughput, memory and "
        "state run at 0",
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="the tap's max_workers (default: %(default)s)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    mode.add_argument(
        "--full",
        action="store_true",
        help="large sizes (1,000 events × 1 year hourly = 8.8M records, ...)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_CASES)} (default: all but memory_large)",
    )
    parser.add_argument(
        "--rl-limit",
        type=int,
        default=200,
        help="rate-limit case: requests per window (default: %(default)s)",
    )
    parser.add_argument(
        "--rl-window",
        type=float,
        default=5.0,
        help="rate-limit case: window seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait-quiet",
        type=float,
        default=300.0,
        help="before each case, wait up to this many seconds for other "
        "processes to go quiet (default: %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure a case again, up to this many times, when other "
        "processes used > 0.1 core during it (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the cases, profile an in-process run under cProfile",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=25,
        help="--profile: how many functions to list (default: %(default)s)",
    )
    parser.add_argument(
        "--json", default=None, help="where to write raw results (default: benchmarks/results/)"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="keep configs, logs and sandbox logs here (default: a temp dir)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    QUIET["max_wait"] = args.max_wait_quiet
    QUIET["retries"] = args.retries
    if args.profile:
        return profiling.main_profile(args)
    return main_bench(args)


if __name__ == "__main__":
    sys.exit(main())
