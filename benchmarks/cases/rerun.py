"""A run right after a run: Braze's pool counts the first run's requests as others' use
during the second; the governor must not pace the second run for them."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.environment import wait_quiet
from benchmarks.measure import Bench
from benchmarks.processes import SandboxProcess, run_measured_tap
from benchmarks.reports import table
from benchmarks.workloads import FAMILIES, tap_config


def run(bench: Bench) -> str:
    text, data = case_rerun(bench.size, bench.workdir, bench.workers)
    bench.save("rerun", data)
    return text


def case_rerun(size: dict[str, Any], workdir: Path, workers: int, pairs: int = 3) -> tuple:
    """A run on a fresh pool, then the same run at once (the first run's requests now count
    as others' in Braze's pool); `pairs` times, each on a fresh sandbox, medians compared."""
    latency, days, n = 0.02, 365, size["rerun_events"]
    casedir = workdir / "rerun"
    casedir.mkdir(parents=True, exist_ok=True)
    firsts, seconds = [], []
    for _ in range(pairs):
        wait_quiet()
        with SandboxProcess(casedir, events=n, latency=latency) as sandbox:
            config = tap_config(sandbox.info["url"], sandbox.info["api_key"], days, workers)
            firsts.append(run_measured_tap(config, FAMILIES["events"]["streams"], casedir))
            seconds.append(run_measured_tap(config, FAMILIES["events"]["streams"], casedir))
            paced = Path(casedir / "tap-stderr.log").read_text().count("pacing requests to it.")
        print(
            f"  rerun      first {firsts[-1].wall:.2f} s, second {seconds[-1].wall:.2f} s "
            f"({seconds[-1].wall / firsts[-1].wall:.2f}x), CPU {firsts[-1].cpu:.2f} s / "
            f"{seconds[-1].cpu:.2f} s, pacing lines in the second {paced}",
            flush=True,
        )
    rows = []
    for label, runs in (("first run (fresh pool)", firsts), ("second run, right after", seconds)):
        rows.append(
            [
                label,
                ", ".join(f"{r.wall:.2f}" for r in runs),
                f"{statistics.median(r.wall for r in runs):.2f}",
                f"{statistics.median(r.cpu for r in runs):.2f}",
            ]
        )
    ratio = statistics.median(r.wall for r in seconds) / statistics.median(r.wall for r in firsts)
    text = (
        f"## A run right after a run (events daily, {n} events × {days} days = "
        f"{n * math.ceil(days / 100):,} series requests, latency {latency * 1000:g} ms, "
        f"{workers} workers; {pairs} pairs, each on a fresh sandbox, whose pool counts the "
        "first run's requests as others' during the second)\n\n"
        + table(["run", "wall s (each pair)", "median wall s", "median tap CPU s"], rows)
        + f"\n\nsecond / first (medians): {ratio:.2f}"
    )
    data = {
        "first": [{"wall": r.wall, "cpu": r.cpu} for r in firsts],
        "second": [{"wall": r.wall, "cpu": r.cpu} for r in seconds],
        "ratio": ratio,
    }
    return text, data
