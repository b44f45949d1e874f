"""One measured case: the sandbox and the tap in their processes, on a quiet machine,
and what the sandbox's request log says of the run (requests, 429s, concurrency, the
ideal wall time)."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.environment import QUIET, calibrate, system_busy, wait_quiet
from benchmarks.processes import MeasuredRun, SandboxProcess, run_measured_tap
from benchmarks.workloads import (
    FAMILIES,
    HISTORY_START,
    canvas_minimum,
    minimum_requests,
    tap_config,
)


def log_stats(log: dict[str, Any], series_path: str) -> dict[str, Any]:
    requests = log.get("requests", [])
    by_path = Counter(r[0] for r in requests)
    statuses = Counter(r[1] for r in requests)
    series = [r for r in requests if r[0] == series_path]
    out: dict[str, Any] = {
        "requests": len(requests),
        "by_path": dict(by_path),
        "statuses": {str(k): v for k, v in statuses.items()},
        "n429": statuses.get(429, 0),
        "sandbox_cpu": log.get("cpu"),
        "internal_errors": log.get("internal_errors"),
    }
    if series:
        first = min(r[2] for r in series)
        last = max(r[2] + r[3] for r in series)
        span = max(last - first, 1e-9)
        out.update(
            series_first=first,
            series_span=span,
            mean_in_flight=sum(r[3] for r in series) / span,
            max_in_flight=max(r[4] for r in series),
            mean_duration_ms=1000 * statistics.fmean(r[3] for r in series),
        )
    return out


def log_ideal(log: dict[str, Any], workers: int) -> float:
    """The best wall time for the responses the sandbox served: all workers always busy.

    max(sum of response times / workers, the slowest response), from the request log.
    """
    durations = [r[3] for r in log.get("requests", [])]
    if not durations:
        return float("nan")
    return max(sum(durations) / workers, max(durations))


def rate_limit_ideal(
    n: int, limit: int, window: float, rate_cap: float, t0: float, latency: float
) -> float:
    """Earliest completion of n requests from t0 under a fixed-window limit.

    Fluid model: at most `rate_cap` requests/s (workers / latency), at most `limit`
    per window aligned on multiples of `window` from the epoch (how Braze and the
    sandbox count), the last response `latency` after its request.
    """
    t, left, used = t0, float(n), 0.0
    w_end = (math.floor(t0 / window) + 1) * window
    while left > 1e-9:
        k = min(left, limit - used, (w_end - t) * rate_cap if math.isfinite(rate_cap) else left)
        k = max(k, 0.0)
        t += k / rate_cap if math.isfinite(rate_cap) else 0.0
        left -= k
        used += k
        if left > 1e-9 and (used >= limit - 1e-9 or t >= w_end - 1e-9):
            t = max(t, w_end)
            w_end += window
            used = 0.0
    return t - t0 + latency


@dataclass
class CaseResult:
    case: str
    label: str
    family: str
    entities: int
    days: int
    latency: float
    workers: int
    minimum: dict[str, int]
    log: dict[str, Any]
    run: MeasuredRun
    sandbox_cpu: float
    ideal: float
    extra: dict[str, Any] = field(default_factory=dict)

    def progress_line(self, startup: float) -> str:
        """One line per measured run, printed as it ends."""
        d = self.row(startup)
        return (
            f"  {self.case:<10} {self.label:<28} requests {d['requests']:>6} "
            f"(min {d['minimum']}) 429s {d['n429']} wall {d['wall']:6.2f} s ideal "
            f"{d['ideal']:6.2f} s (from the request log {self.extra['log_ideal']:.2f} s) "
            f"records {d['records']:>8} CPU {d['cpu']:6.2f} s "
            f"({d['rec_per_cpu']:,.0f}/CPU-s) RSS {d['rss']:.0f} MB, other processes' CPU "
            f"{d['foreign']:.1f} s, calibration {d['calibration']:.0f} ms"
        )

    def row(self, startup: float) -> dict[str, Any]:
        run = self.run
        made = self.log["requests"]
        return {
            "label": self.label,
            "entities": self.entities,
            "days": self.days,
            "requests": made,
            "minimum": self.minimum["total"],
            "extra": made - self.minimum["total"],
            "n429": self.log["n429"],
            "wall": run.wall,
            "ideal": self.ideal,
            "ratio": run.wall / self.ideal if self.ideal > 0 else float("nan"),
            "ratio_net": (run.wall - startup) / self.ideal if self.ideal > 0 else float("nan"),
            "records": run.records,
            "rec_per_s": run.records / run.wall if run.wall else 0.0,
            "cpu": run.cpu,
            "user": run.user,
            "sys": run.sys,
            "rec_per_cpu": run.records / run.cpu if run.cpu else 0.0,
            "rss": run.maxrss_mb,
            "sandbox_cpu": self.sandbox_cpu,
            "in_flight": self.log.get("mean_in_flight", float("nan")),
            "req_ms": self.log.get("mean_duration_ms", float("nan")),
            "foreign": self.extra.get("foreign_cpu", float("nan")),
            "calibration": self.extra.get("calibration_ms", float("nan")),
        }


def run_case(
    case: str,
    label: str,
    family: str,
    *,
    n: int,
    days: int,
    latency: float,
    workers: int,
    workdir: Path,
    rate_limits: dict[str, tuple[int, float]] | None = None,
    tap_extra: dict[str, Any] | None = None,
    streams: tuple[str, ...] | None = None,
    sandbox_extra: dict[str, Any] | None = None,
    digest: bool = False,
) -> CaseResult:
    kind = FAMILIES[family]["entity"]
    spec: dict[str, Any] = {kind: n, "latency": latency, **(sandbox_extra or {})}
    if rate_limits:
        spec["rate_limits"] = rate_limits
    casedir = workdir / f"{case}-{label}".replace(" ", "_").replace("/", "_")
    casedir.mkdir(parents=True, exist_ok=True)
    best: tuple[float, MeasuredRun, float, SandboxProcess, float] | None = None
    attempts = 0
    for _attempt in range(1 + QUIET["retries"]):
        attempts += 1
        wait_quiet()
        calibration = calibrate()
        with SandboxProcess(casedir, **spec) as sandbox:
            config = tap_config(
                sandbox.info["url"], sandbox.info["api_key"], days, workers, **(tap_extra or {})
            )
            cpu0, busy0, own0 = sandbox.cpu(), system_busy(), time.process_time()
            run = run_measured_tap(
                config, streams or FAMILIES[family]["streams"], casedir, digest=digest
            )
            sandbox_cpu = sandbox.cpu() - cpu0
            # CPU the whole machine spent during the run that was neither the tap's, the
            # sandbox's nor this script's: other processes disturbing the measurement.
            foreign = max(
                system_busy() - busy0 - run.cpu - sandbox_cpu - (time.process_time() - own0), 0.0
            )
        calibration = (calibration + calibrate()) / 2  # before and after the run
        if best is None or foreign < best[0]:
            best = (foreign, run, sandbox_cpu, sandbox, calibration)
        if run.returncode != 0 or foreign <= QUIET["disturbed"] * max(run.wall, 1.0):
            break
        print(
            f"  ({case} {label}: other processes used {foreign:.1f} CPU-s during the run; "
            "measuring again)",
            flush=True,
        )
    assert best is not None
    foreign, run, sandbox_cpu, sandbox, calibration = best
    if run.returncode != 0:
        raise RuntimeError(f"{case} {label}: the tap failed ({run.returncode}):\n{run.stderr_tail}")
    counts = sandbox.info["counts"]
    minimum = minimum_requests(family, counts, days)
    if family == "canvas":
        minimum = canvas_minimum(minimum, {"history_start": HISTORY_START, **spec}, days)
    stats = log_stats(sandbox.log, FAMILIES[family]["series_path"])
    ideal = minimum["total"] * latency / workers
    extra: dict[str, Any] = {
        "counts": counts,
        "foreign_cpu": foreign,
        "attempts": attempts,
        "calibration_ms": calibration,
        "log_ideal": log_ideal(sandbox.log, workers),
    }
    if rate_limits:
        pool, (limit, window) = next(iter(rate_limits.items()))
        rate_cap = workers / latency if latency > 0 else math.inf
        steady = minimum["series"] * window / limit
        t0 = stats.get("series_first", time.time())
        phase = rate_limit_ideal(minimum["series"], limit, window, rate_cap, t0, latency)
        usage = window_usage(sandbox.log, window)
        phase_made = rate_limit_ideal(usage.get("made", 0), limit, window, rate_cap, t0, latency)
        extra.update(pool=pool, limit=limit, window=window, windows=usage)
        extra.update(steady_ideal=steady, phase_ideal=phase, phase_ideal_made=phase_made)
        ideal = max(ideal, steady)
    return CaseResult(
        case,
        label,
        family,
        minimum["entities"],
        days,
        latency,
        workers,
        minimum,
        stats,
        run,
        sandbox_cpu,
        ideal,
        extra,
    )


def window_usage(log: dict[str, Any], window: float) -> dict[str, Any]:
    """Requests per aligned rate-limit window (default pool), as the sandbox counted them,
    and how long after each window opened its first and last requests started."""
    per: dict[int, list[float]] = {}
    for path, status, started, _duration, *_ in log.get("requests", []):
        if path in ("/events/list", "/purchases/product_list"):
            continue  # lists_1000 pool
        if status == 429:
            continue
        per.setdefault(int(started // window), []).append(started)
    if not per:
        return {}
    first, last = min(per), max(per)
    counts = [len(per.get(i, [])) for i in range(first, last + 1)]
    starts = [min(per[i]) - i * window for i in range(first + 1, last + 1) if i in per]
    ends = [max(per[i]) - i * window for i in range(first, last + 1) if i in per]
    return {
        "per_window": counts,
        "max": max(counts),
        "full_windows": counts[1:-1],
        "first_request_after_open": [round(x, 3) for x in starts],
        "last_request_after_open": [round(x, 3) for x in ends],
        "made": sum(counts),
    }


def measure_startup(workdir: Path, workers: int) -> MeasuredRun:
    """The fixed cost: interpreter, imports, catalog, one list page, no series."""
    casedir = workdir / "startup"
    casedir.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(casedir, events=0, latency=0.0) as sandbox:
        config = tap_config(sandbox.info["url"], sandbox.info["api_key"], 3, workers)
        runs = []
        for _ in range(3):
            wait_quiet()
            runs.append(run_measured_tap(config, FAMILIES["events"]["streams"], casedir))
    return min(runs, key=lambda r: r.wall)


@dataclass
class Bench:
    """What every case is given: the sizes, where to work, the run's settings, and where
    its results go (printed as each run ends, and kept for the JSON file)."""

    size: dict[str, Any]
    workdir: Path
    latency: float
    workers: int
    startup: MeasuredRun
    rl_limit: int = 200
    rl_window: float = 5.0
    results: dict[str, Any] = field(default_factory=dict)

    def measure(
        self, case: str, label: str, family: str, *, extra: dict | None = None, **kwargs: Any
    ) -> CaseResult:
        """`run_case` in this benchmark's workdir and workers, printed and kept (with
        `extra` in its extra figures)."""
        kwargs.setdefault("latency", self.latency)
        result = run_case(case, label, family, workers=self.workers, workdir=self.workdir, **kwargs)
        result.extra.update(extra or {})
        self.record(result)
        return result

    def record(self, result: CaseResult) -> None:
        row = result.row(self.startup.wall)
        print(result.progress_line(self.startup.wall), flush=True)
        self.results.setdefault(result.case, []).append(
            {
                **{k: v for k, v in asdict(result).items() if k != "run"},
                "run": asdict(result.run),
                "row": row,
            }
        )

    def save(self, case: str, data: Any) -> None:
        self.results[case] = data
