#!/usr/bin/env python
"""Benchmarks of tap-braze-series against the bundled Braze sandbox.

Measures, does not optimise. Every case starts the sandbox in a process of its own
(its CPU is not the tap's; it dumps its request log at exit, from which requests,
429s and concurrency are counted), runs the tap as a subprocess as Meltano would
(the tap's own `main()`, with --config and --catalog), and counts the Singer output
in this process. The tap's CPU (user + sys) comes from `os.wait4()`, the rusage of
that one child; its peak RSS is VmHWM, written by an atexit hook in the child
(ru_maxrss would include this script's memory: Linux folds the pre-exec memory map
into it).

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

`--profile` instead runs the tap in-process (stdout to /dev/null) on three workloads
(hourly events, the canvas family, 10,000 partitions): CPU of the main thread and of
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
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TAP_CMD = [PYTHON, "-m", "tap_braze_series.tap"]
# The tap's own entry point, plus an atexit hook that records the process's peak RSS
# (VmHWM). rusage's ru_maxrss is no good here: Linux folds the pre-exec memory map
# into it, i.e. the *parent's* high-water mark when subprocess uses vfork.
TAP_MEASURED = [
    PYTHON,
    "-c",
    """
import atexit, os, sys

def _hwm():
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    with open(os.environ['BENCH_HWM_FILE'], 'w') as out:
                        out.write(line.split()[1])
    except Exception:
        pass

atexit.register(_hwm)
sys.argv[0] = 'tap-braze-series'
from tap_braze_series.tap import main
main()
""",
]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The sandbox's fixed "now" and the tap's end_date (a date includes its whole day).
# The tap's clock is real time; end_date <= sandbox now keeps both in agreement.
SANDBOX_NOW = "2025-01-01T12:00:00+00:00"
END_DATE = dt.date(2024, 12, 31)
HISTORY_START = "2022-12-01"

CANVAS_STREAMS = (
    "canvas_data_series",
    "canvas_variant_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
)
FAMILIES: dict[str, dict[str, Any]] = {
    # streams selected, entity kind, list page size, max length, unit
    "canvas": {
        "streams": CANVAS_STREAMS,
        "entity": "canvases",
        "page": 100,
        "max": 14,
        "unit": "day",
        "series_path": "/canvas/data_series",
    },
    "events": {
        "streams": ("event_data_series",),
        "entity": "events",
        "page": 250,
        "max": 100,
        "unit": "day",
        "series_path": "/events/data_series",
    },
    "events_hourly": {
        "streams": ("event_data_series_hourly",),
        "entity": "events",
        "page": 250,
        "max": 100,
        "unit": "hour",
        "series_path": "/events/data_series",
    },
}

SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "tail_canvases": 10,
        "tail_events_hourly": 3,
        "tail_events": 100,
        "big_canvases": 100,
        "scale_entities": [10, 100],
        "canvas_days": 56,
        "event_days": 365,
        "thr_events": 20,
        "thr_days": 365,
        "thr_repeat": 1,
        "mem_canvases": 20,
        "mem_events": 5,
        "mem_days": [30, 730],
        "state_entities": [100, 1000],
        "state_days": 3,
        "state_repeat": 1,
        "rl_events": 100,
        "rl_days": 365,
        "creation_canvases": 20,
        "creation_campaigns": 10,
        "rerun_events": 100,
    },
    "default": {
        "tail_canvases": 38,
        "tail_events_hourly": 10,
        "tail_events": 1000,
        "big_canvases": 1000,
        "scale_entities": [10, 100, 1000],
        "canvas_days": 56,
        "event_days": 365,
        "thr_events": 100,
        "thr_days": 365,
        "thr_repeat": 3,
        "mem_canvases": 100,
        "mem_events": 10,
        "mem_days": [30, 730],
        "state_entities": [100, 1000, 10000],
        "state_days": 3,
        "state_repeat": 3,
        "rl_events": 250,
        "rl_days": 365,
        "creation_canvases": 50,
        "creation_campaigns": 25,
        "rerun_events": 250,
    },
    "full": {
        "tail_canvases": 38,
        "tail_events_hourly": 10,
        "tail_events": 1000,
        "big_canvases": 1000,
        "scale_entities": [10, 100, 1000],
        "canvas_days": 91,
        "event_days": 365,
        "thr_events": 1000,
        "thr_days": 365,
        "thr_repeat": 2,
        "mem_canvases": 500,
        "mem_events": 100,
        "mem_days": [30, 730],
        "state_entities": [100, 1000, 10000],
        "state_days": 3,
        "state_repeat": 3,
        "rl_events": 500,
        "rl_days": 365,
        "creation_canvases": 50,
        "creation_campaigns": 25,
        "rerun_events": 1000,
    },
}
ALL_CASES = (
    "scaling",
    "throughput",
    "memory",
    "state",
    "ratelimit",
    "tail",
    "creation",
    "rerun",
    "memory_large",
)
DEFAULT_CASES = ALL_CASES[:-1]  # memory_large takes minutes of both cores: on request only
# Response-time distributions of the tail cases: (label, tail_rate, tail_latency s).
TAILS: tuple[tuple[str, float, float], ...] = (
    ("uniform", 0.0, 0.0),
    ("1 in 10 +1 s", 0.1, 1.0),
    ("1 in 20 +2 s", 0.05, 2.0),
)


# --------------------------------------------------------------------------- sandbox process


def sandbox_main(spec_path: str, ready_path: str, log_path: str) -> int:
    """Child process: serve the sandbox until SIGTERM, then dump its request log."""
    sys.path.insert(0, str(ROOT))
    import resource

    from tap_braze_series.sandbox import Sandbox, SandboxConfig

    spec = json.loads(Path(spec_path).read_text())
    limits = spec.get("rate_limits")
    cfg = SandboxConfig(
        seed=spec.get("seed", 7),
        n_canvases=spec.get("canvases", 0),
        n_campaigns=spec.get("campaigns", 0),
        n_segments=spec.get("segments", 0),
        n_events=spec.get("events", 0),
        n_products=spec.get("products", 0),
        now=dt.datetime.fromisoformat(spec["now"]),
        history_start=dt.date.fromisoformat(spec["history_start"]),
        latency=spec.get("latency", 0.0),
        tail_rate=spec.get("tail_rate", 0.0),
        tail_latency=spec.get("tail_latency", 1.0),
        rate_limits={k: (int(v[0]), float(v[1])) for k, v in limits.items()} if limits else None,
        denied_permissions=frozenset(spec.get("denied", ())),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sandbox = Sandbox(cfg, host="127.0.0.1", port=0)
    sandbox.start()
    ws = sandbox.workspace
    info = {
        "url": sandbox.url,
        "api_key": sandbox.api_key,
        "pid": os.getpid(),
        "counts": {
            "canvases": len(ws.canvases),
            "active_canvases": len(ws.active_canvases),
            "campaigns": len(ws.campaigns),
            "active_campaigns": len(ws.active_campaigns),
            "segments": len(ws.segments),
            "tracked_segments": sum(1 for s in ws.segments if s.analytics_tracking_enabled),
            "events": len(ws.events),
            "products": len(ws.products),
        },
    }
    tmp = ready_path + ".tmp"
    Path(tmp).write_text(json.dumps(info))
    os.replace(tmp, ready_path)
    while not stop.wait(0.2):
        pass
    sandbox.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    log = [
        [
            r.path,
            r.status,
            round(r.started, 6),
            round(r.duration, 6),
            r.in_flight,
            round(r.latency, 6),
        ]
        for r in sandbox.request_log.snapshot()
    ]
    Path(log_path).write_text(
        json.dumps(
            {
                "requests": log,
                "cpu": usage.ru_utime + usage.ru_stime,
                "internal_errors": len(sandbox.internal_errors),
            }
        )
    )
    return 0


# Other processes on the machine disturb every figure: wait for quiet before a case,
# and measure a case again (keeping the least disturbed run) when others used more than
# `disturbed` cores on average during it. Set from the command line.
QUIET: dict[str, float] = {"max_wait": 300.0, "threshold": 0.15, "disturbed": 0.1, "retries": 2}


def wait_quiet() -> float:
    """Wait (at most QUIET['max_wait'] s) until other processes use < threshold cores."""
    start = time.monotonic()
    while True:
        busy0 = _system_busy()
        time.sleep(1.0)
        load = _system_busy() - busy0
        if load < QUIET["threshold"] or time.monotonic() - start > QUIET["max_wait"]:
            return load


def calibrate() -> float:
    """ms of CPU for a fixed pure-Python workload: how fast this (shared) machine is now.

    On a VM the host's other tenants change the speed of a CPU-second from one minute
    to the next; compare records/CPU-s only between runs with similar calibrations.
    """
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        d: dict[int, str] = {}
        for i in range(300_000):
            d[i & 1023] = str(i)
            x = {"a": i, "b": d[i & 1023]}
            x.get("a")
        best = min(best, time.process_time() - start)
    return 1000 * best


def _system_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class SandboxProcess:
    """The sandbox in a separate process (its CPU is not counted as the tap's)."""

    def __init__(self, workdir: Path, **spec: Any) -> None:
        self.workdir = workdir
        self.spec = {"now": SANDBOX_NOW, "history_start": HISTORY_START, **spec}
        self.info: dict[str, Any] = {}
        self.log: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> SandboxProcess:
        spec_path = self.workdir / "sandbox-spec.json"
        self.ready = self.workdir / "sandbox-ready.json"
        self.log_path = self.workdir / "sandbox-log.json"
        for path in (self.ready, self.log_path):
            path.unlink(missing_ok=True)
        spec_path.write_text(json.dumps(self.spec))
        with open(self.workdir / "sandbox-stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    PYTHON,
                    str(Path(__file__).resolve()),
                    "_sandbox",
                    str(spec_path),
                    str(self.ready),
                    str(self.log_path),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited early; see {self.workdir}/sandbox-stderr.log")
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start within 120 s")
            time.sleep(0.05)
        self.info = json.loads(self.ready.read_text())
        return self

    def cpu(self) -> float:
        assert self.proc is not None
        return _proc_cpu(self.proc.pid)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_path.exists():
            self.log = json.loads(self.log_path.read_text())


# --------------------------------------------------------------------------- tap process


@dataclass
class TapRun:
    returncode: int = 0
    wall: float = 0.0
    user: float = 0.0
    sys: float = 0.0
    maxrss_mb: float = 0.0  # VmHWM of the tap process itself
    rusage_maxrss_mb: float = 0.0  # not used: includes the parent's high-water mark
    records: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)
    state_msgs: int = 0
    state_bytes: int = 0
    last_state_bytes: int = 0
    last_state_partitions: int = 0
    other_msgs: int = 0
    stdout_bytes: int = 0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    stderr_tail: str = ""
    governor_waits_logged: int = 0
    retries_logged: int = 0
    rate_limited_logged: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # records per stream, in order

    @property
    def cpu(self) -> float:
        return self.user + self.sys


_RECORD = b'{"type":"RECORD"'
_RECORD_STREAM = b'{"type":"RECORD","stream":"'
_STATE = b'{"type":"STATE"'
_SCHEMA = b'{"type":"SCHEMA","stream":"'


_TIME_EXTRACTED = re.compile(rb',"time_extracted":"[^"]*"')


class SingerCounter:
    """Counts Singer messages in a byte stream, chunk by chunk (cheap: bytes.count).

    With `digest`, also a hash per stream of its records in the order written (less
    `time_extracted`): two runs that wrote the same records in the same order match.
    """

    def __init__(self, digest: bool = False) -> None:
        self.digest = digest
        self.digests: dict[str, Any] = {}
        self.records = 0
        self.by_stream: Counter[str] = Counter()
        self.streams: list[bytes] = []
        self.state_msgs = 0
        self.state_bytes = 0
        self.last_state = b""
        self.lines = 0
        self.total = 0
        self._carry = b""

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        buf = self._carry + data
        cut = buf.rfind(b"\n") + 1
        self._carry = buf[cut:]
        if cut:
            self._count(buf[:cut])

    def close(self) -> None:
        if self._carry:
            self._count(self._carry + b"\n")
            self._carry = b""

    def _count(self, chunk: bytes) -> None:
        self.lines += chunk.count(b"\n")
        if self.digest:
            self._hash(chunk)
        pos = chunk.find(_SCHEMA)
        while pos >= 0:
            start = pos + len(_SCHEMA)
            name = chunk[start : chunk.index(b'"', start)]
            if name not in self.streams:
                self.streams.append(name)
            pos = chunk.find(_SCHEMA, start)
        self.records += chunk.count(_RECORD)
        for name in self.streams:
            n = chunk.count(_RECORD_STREAM + name + b'"')
            if n:
                self.by_stream[name.decode()] += n
        pos = chunk.find(_STATE)
        while pos >= 0:
            end = chunk.index(b"\n", pos)
            self.state_msgs += 1
            self.state_bytes += end - pos + 1
            self.last_state = chunk[pos:end]
            pos = chunk.find(_STATE, end)

    def _hash(self, chunk: bytes) -> None:
        for line in chunk.split(b"\n"):
            if line.startswith(_RECORD_STREAM):
                start = len(_RECORD_STREAM)
                name = line[start : line.index(b'"', start)].decode()
                if name not in self.digests:
                    self.digests[name] = hashlib.blake2b(digest_size=16)
                self.digests[name].update(_TIME_EXTRACTED.sub(b"", line) + b"\n")


_catalog_cache: dict[str, dict] = {}


def catalog_for(config: dict[str, Any], streams: tuple[str, ...], workdir: Path) -> dict:
    key = json.dumps({k: config.get(k) for k in ("app_ids",)}, sort_keys=True)
    if key not in _catalog_cache:
        path = workdir / "discover-config.json"
        path.write_text(json.dumps(config))
        out = subprocess.run(
            [*TAP_CMD, "--config", str(path), "--discover"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        _catalog_cache[key] = json.loads(out.stdout)
    catalog = json.loads(json.dumps(_catalog_cache[key]))
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    config: dict[str, Any],
    streams: tuple[str, ...],
    workdir: Path,
    state: dict | None = None,
    timeout: float = 3600,
    digest: bool = False,
    save_stdout: Path | None = None,
) -> TapRun:
    """Run the tap as a subprocess, count its output here, rusage from wait4()."""
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config))
    catalog_path = workdir / "tap-catalog.json"
    catalog_path.write_text(json.dumps(catalog_for(config, streams, workdir)))
    command = [*TAP_MEASURED, "--config", str(config_path), "--catalog", str(catalog_path)]
    if state is not None:
        state_path = workdir / "tap-state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    stderr_path = workdir / "tap-stderr.log"
    counter = SingerCounter(digest=digest)
    run = TapRun()
    samples: list[tuple[float, float]] = []
    hwm_path = workdir / "tap-vmhwm.txt"
    hwm_path.unlink(missing_ok=True)
    with open(stderr_path, "wb") as stderr:
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
            env={**os.environ, "BENCH_HWM_FILE": str(hwm_path)},
        )
        done = threading.Event()

        def sample_rss() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while not done.wait(0.1):
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) / 1024
                            samples.append((time.monotonic() - started, rss))
                            break
                except OSError:
                    return

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        assert proc.stdout is not None
        read = proc.stdout.read
        saved = open(save_stdout, "wb") if save_stdout else None  # noqa: SIM115
        while True:
            data = read(1 << 20)
            if not data:
                break
            counter.feed(data)
            if saved:
                saved.write(data)
        counter.close()
        if saved:
            saved.close()
        _, status, usage = os.wait4(proc.pid, 0)
        run.wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        killer.cancel()
        done.set()
        sampler.join()
    run.returncode = proc.returncode
    run.user, run.sys = usage.ru_utime, usage.ru_stime
    sampled = max((r for _, r in samples), default=0.0)
    try:
        run.maxrss_mb = int(hwm_path.read_text()) / 1024  # VmHWM at exit
    except (OSError, ValueError):
        run.maxrss_mb = sampled  # polled VmRSS (may miss a short peak)
    run.rusage_maxrss_mb = usage.ru_maxrss / 1024
    run.records = counter.records
    run.by_stream = dict(counter.by_stream)
    run.digests = {name: d.hexdigest() for name, d in counter.digests.items()}
    run.state_msgs = counter.state_msgs
    run.state_bytes = counter.state_bytes
    run.last_state_bytes = len(counter.last_state)
    if counter.last_state:
        value = json.loads(counter.last_state)["value"]
        run.last_state_partitions = sum(
            len(s.get("partitions", [])) for s in value.get("bookmarks", {}).values()
        )
    run.other_msgs = counter.lines - counter.records - counter.state_msgs
    run.stdout_bytes = counter.total
    run.rss_samples = [(round(t, 2), round(r, 1)) for t, r in samples]
    text = stderr_path.read_text(errors="replace")
    run.governor_waits_logged = text.count("Rate governor:")
    run.retries_logged = text.count("retry ")
    run.rate_limited_logged = text.count("answered 429 (rate limited)")
    if run.returncode != 0:
        run.stderr_tail = "\n".join(text.splitlines()[-15:])
    return run


# --------------------------------------------------------------------------- workloads


def tap_config(url: str, api_key: str, days: int, workers: int, **extra: Any) -> dict:
    start = END_DATE - dt.timedelta(days=days - 1)
    return {
        "api_url": url,
        "api_key": api_key,
        "start_date": start.isoformat(),
        "end_date": END_DATE.isoformat(),
        "company_timezone": "UTC",
        "max_workers": workers,
        **extra,
    }


def entity_count(family: str, counts: dict[str, int]) -> int:
    return counts["active_canvases"] if family == "canvas" else counts["events"]


def minimum_requests(family: str, counts: dict[str, int], days: int) -> dict[str, int]:
    """The fewest requests that read the workload: list pages + windows per entity.

    A paged list needs n // page + 1 pages (the client learns the end from a short
    page); a series needs ceil(buckets / max length) windows per partition.
    """
    fam = FAMILIES[family]
    n = entity_count(family, counts)
    buckets = days * (24 if fam["unit"] == "hour" else 1)  # UTC: no DST
    per_entity = math.ceil(buckets / fam["max"])
    pages = n // fam["page"] + 1
    return {
        "list": pages,
        "series": n * per_entity,
        "total": pages + n * per_entity,
        "per_entity": per_entity,
        "entities": n,
    }


def canvas_minimum(minimum: dict[str, int], spec: dict[str, Any], days: int) -> dict[str, int]:
    """The fewest canvas requests: each canvas from the later of the run's first day and
    its creation day (Braze has zeros before it), plus one details request per canvas
    created after the first day, which only its details can tell."""
    ws = creation_oracle(spec)
    start = END_DATE - dt.timedelta(days=days - 1)
    series = details = 0
    for canvas in ws.active_canvases:
        first = max(start, ws.created_day(canvas))
        series += math.ceil(max((END_DATE - first).days + 1, 0) / FAMILIES["canvas"]["max"])
        details += ws.created_day(canvas) > start
    total = minimum["list"] + series + details
    return {**minimum, "series": series, "details": details, "total": total}


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
    run: TapRun
    sandbox_cpu: float
    ideal: float
    extra: dict[str, Any] = field(default_factory=dict)

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
    best: tuple[float, TapRun, float, SandboxProcess, float] | None = None
    attempts = 0
    for _attempt in range(1 + QUIET["retries"]):
        attempts += 1
        wait_quiet()
        calibration = calibrate()
        with SandboxProcess(casedir, **spec) as sandbox:
            config = tap_config(
                sandbox.info["url"], sandbox.info["api_key"], days, workers, **(tap_extra or {})
            )
            cpu0, busy0, own0 = sandbox.cpu(), _system_busy(), time.process_time()
            run = run_tap(config, streams or FAMILIES[family]["streams"], casedir, digest=digest)
            sandbox_cpu = sandbox.cpu() - cpu0
            # CPU the whole machine spent during the run that was neither the tap's, the
            # sandbox's nor this script's: other processes disturbing the measurement.
            foreign = max(
                _system_busy() - busy0 - run.cpu - sandbox_cpu - (time.process_time() - own0), 0.0
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
        extra.update(
            pool=pool,
            limit=limit,
            window=window,
            steady_ideal=steady,
            phase_ideal=phase,
            phase_ideal_made=phase_made,
            windows=usage,
        )
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


def measure_startup(workdir: Path, workers: int) -> TapRun:
    """The fixed cost: interpreter, imports, catalog, one list page, no series."""
    casedir = workdir / "startup"
    casedir.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(casedir, events=0, latency=0.0) as sandbox:
        config = tap_config(sandbox.info["url"], sandbox.info["api_key"], 3, workers)
        runs = []
        for _ in range(3):
            wait_quiet()
            runs.append(run_tap(config, FAMILIES["events"]["streams"], casedir))
    return min(runs, key=lambda r: r.wall)


# --------------------------------------------------------------------------- report


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(r if isinstance(r, str) else fmt(r) for r in row) + " |")
    return "\n".join(lines)


def extra_paths(result: CaseResult) -> str:
    series_path = FAMILIES[result.family]["series_path"]
    list_path = {
        "canvas": "/canvas/list",
        "events": "/events/list",
        "events_hourly": "/events/list",
    }[result.family]
    others = {p: c for p, c in result.log["by_path"].items() if p not in (series_path, list_path)}
    parts = []
    made_series = result.log["by_path"].get(series_path, 0)
    if made_series != result.minimum["series"]:
        parts.append(f"{series_path} {made_series - result.minimum['series']:+d}")
    made_list = result.log["by_path"].get(list_path, 0)
    if made_list != result.minimum["list"]:
        parts.append(f"{list_path} {made_list - result.minimum['list']:+d}")
    parts += [f"{p} {c}" for p, c in sorted(others.items())]
    return ", ".join(parts) or "none"


def report_scaling(results: list[CaseResult], startup: float) -> str:
    rows = []
    for r in results:
        d = r.row(startup)
        rows.append(
            [
                r.label,
                d["entities"],
                d["requests"],
                d["minimum"],
                extra_paths(r),
                d["n429"],
                d["wall"],
                d["ideal"],
                f"{d['ratio']:.2f}",
                f"{d['ratio_net']:.2f}",
                r.log.get("series_span", float("nan")),
                d["in_flight"],
                d["records"],
                d["rec_per_s"],
                d["cpu"],
                d["rec_per_cpu"],
                d["sandbox_cpu"],
                d["rss"],
                d["foreign"],
            ]
        )
    return table(
        [
            "case",
            "entities",
            "requests",
            "minimum",
            "extra requests",
            "429s",
            "wall s",
            "ideal s",
            "wall/ideal",
            "(wall−startup)/ideal",
            "fetch span s",
            "mean in flight",
            "records",
            "records/s wall",
            "tap CPU s",
            "records/CPU-s",
            "sandbox CPU s",
            "peak RSS MB",
            "other processes' CPU s",
        ],
        rows,
    )


def report_throughput(results: list[CaseResult]) -> str:
    rows = []
    for r in results:
        d = r.row(0.0)
        rows.append(
            [
                r.label,
                d["entities"],
                d["days"],
                d["requests"],
                d["minimum"],
                d["records"],
                d["wall"],
                d["rec_per_s"],
                d["user"],
                d["sys"],
                d["cpu"],
                d["rec_per_cpu"],
                1e6 * d["cpu"] / max(d["records"], 1),
                d["sandbox_cpu"],
                d["rss"],
                d["foreign"],
                d["calibration"],
            ]
        )
    return table(
        [
            "case",
            "events",
            "days",
            "requests",
            "minimum",
            "records",
            "wall s",
            "records/s wall",
            "tap user s",
            "tap sys s",
            "tap CPU s",
            "records/CPU-s",
            "µs CPU/record",
            "sandbox CPU s",
            "peak RSS MB",
            "other processes' CPU s",
            "calibration ms",
        ],
        rows,
    )


def report_memory(results: list[CaseResult]) -> str:
    rows = []
    for r in results:
        d = r.row(0.0)
        late = [s for t, s in r.run.rss_samples if t >= r.run.wall / 2]
        rows.append(
            [
                r.label,
                d["entities"],
                d["days"],
                d["requests"],
                d["records"],
                r.run.stdout_bytes / 1e6,
                d["wall"],
                d["rss"],
                max(late) if late else float("nan"),
            ]
        )
    return table(
        [
            "case",
            "entities",
            "days",
            "requests",
            "records",
            "stdout MB",
            "wall s",
            "peak RSS MB",
            "max RSS 2nd half MB",
        ],
        rows,
    )


def report_tail(results: list[CaseResult], startup: float) -> str:
    rows = []
    uniform: dict[str, dict[str, str]] = {}
    for r in results:
        d = r.row(startup)
        workload, tail = r.extra["workload"], r.extra["tail"]
        if tail == TAILS[0][0]:
            uniform[workload] = r.run.digests
        same = uniform.get(workload)
        ideal = r.extra["log_ideal"]
        span = r.log.get("series_span", float("nan"))
        rows.append(
            [
                workload,
                tail,
                d["entities"],
                d["requests"],
                d["minimum"],
                d["n429"],
                r.log.get("max_in_flight", 0),
                d["wall"],
                ideal,
                f"{d['wall'] / ideal:.2f}",
                f"{(d['wall'] - startup) / ideal:.2f}",
                span,
                d["records"],
                "–" if same is None else ("yes" if same == r.run.digests else "NO"),
                d["rss"],
                d["foreign"],
            ]
        )
    return table(
        [
            "workload",
            "response times",
            "entities",
            "requests",
            "minimum",
            "429s",
            "max in flight",
            "wall s",
            "ideal s",
            "wall/ideal",
            "(wall−startup)/ideal",
            "fetch span s",
            "records",
            "same records, same order as uniform",
            "peak RSS MB",
            "other processes' CPU s",
        ],
        rows,
    )


def report_memory_large(results: list[CaseResult]) -> str:
    rows = []
    for r in results:
        d = r.row(0.0)
        rows.append(
            [
                r.label,
                d["entities"],
                d["days"],
                d["requests"],
                d["minimum"],
                d["records"],
                r.run.stdout_bytes / 1e6,
                d["wall"],
                r.extra["log_ideal"],
                d["cpu"],
                d["rss"],
                d["foreign"],
            ]
        )
    return table(
        [
            "case",
            "entities",
            "days",
            "requests",
            "minimum",
            "records",
            "stdout MB",
            "wall s",
            "ideal s",
            "tap CPU s",
            "peak RSS MB",
            "other processes' CPU s",
        ],
        rows,
    )


def report_state(results: list[CaseResult]) -> str:
    rows = []
    previous: CaseResult | None = None
    for r in results:
        d = r.row(0.0)
        cal = r.extra.get("calibration_ms", float("nan"))
        marginal = float("nan")
        if previous is not None:
            marginal = 1000 * (r.run.cpu - previous.run.cpu) / (r.entities - previous.entities)
        previous = r
        rows.append(
            [
                r.label,
                d["entities"],
                r.run.last_state_partitions,
                d["requests"],
                d["records"],
                r.run.state_msgs,
                r.run.state_bytes,
                r.run.last_state_bytes,
                r.run.state_bytes / max(r.entities, 1),
                d["cpu"],
                1000 * d["cpu"] / r.entities,
                marginal,
                cal,
                d["wall"],
                d["rss"],
                d["foreign"],
            ]
        )
    return table(
        [
            "case",
            "partitions",
            "in final STATE",
            "requests",
            "records",
            "STATE msgs",
            "STATE bytes",
            "last STATE bytes",
            "STATE bytes/partition",
            "tap CPU s",
            "ms CPU/partition",
            "marginal ms CPU/partition (vs previous row)",
            "calibration ms",
            "wall s",
            "peak RSS MB",
            "other processes' CPU s",
        ],
        rows,
    )


def state_verdict(results: list[CaseResult]) -> str:
    """Growth of STATE bytes and of the marginal CPU per partition, ÷ linear."""
    base, last = results[0], results[-1]
    scale = last.entities / base.entities
    growth = last.run.state_bytes / base.run.state_bytes
    text = (
        f"STATE bytes grew {growth:,.1f}× for {scale:,.0f}× the partitions "
        f"({growth / scale:.2f} of linear)"
    )
    if len(results) >= 3:

        def marginal(a: CaseResult, b: CaseResult) -> float:
            return (b.run.cpu - a.run.cpu) / (b.entities - a.entities)

        first = marginal(results[0], results[1])
        final = marginal(results[-2], results[-1])
        text += (
            f"; tap CPU per extra partition {1000 * first:.2f} ms "
            f"({results[0].entities:,}→{results[1].entities:,}) vs {1000 * final:.2f} ms "
            f"({results[-2].entities:,}→{results[-1].entities:,}): "
            f"{final / first:.2f}× (1.00 = linear)"
        )
    return text


def report_ratelimit(results: list[CaseResult]) -> str:
    rows = []
    for r in results:
        d = r.row(0.0)
        x = r.extra
        windows = x.get("windows", {})
        full = windows.get("full_windows") or []
        opened = windows.get("first_request_after_open") or []
        span = r.log.get("series_span", float("nan"))
        rows.append(
            [
                r.label,
                f"{x['limit']}/{x['window']:g}s",
                d["requests"],
                d["minimum"],
                windows.get("made", 0),
                d["n429"],
                r.run.governor_waits_logged,
                windows.get("max", 0),
                statistics.fmean(full) if full else float("nan"),
                statistics.fmean(opened) if opened else float("nan"),
                span,
                x["phase_ideal"],
                x["phase_ideal_made"],
                x["steady_ideal"],
                d["wall"],
                f"{d['wall'] / x['steady_ideal']:.2f}",
                f"{span / x['phase_ideal']:.2f}",
                d["foreign"],
            ]
        )
    return table(
        [
            "case",
            "limit",
            "requests",
            "minimum",
            "in limited pool",
            "429s",
            "governor waits ≥1 s logged",
            "max per window",
            "mean per full window",
            "mean s from window open to its first request",
            "series span s",
            "phase-aware ideal s (minimum)",
            "phase-aware ideal s (requests made)",
            "steady ideal s (N/limit·window)",
            "tap wall s",
            "wall/steady ideal",
            "span/phase-aware ideal",
            "other processes' CPU s",
        ],
        rows,
    )


# --------------------------------------------------------------------------- creation days

CREATION_DAYS = 730
CREATION_SERIES = {  # stream -> (series path, details path, entity kind, max length)
    "canvas_data_series": ("/canvas/data_series", "/canvas/details", "canvases", 14),
    "campaign_data_series": ("/campaigns/data_series", "/campaigns/details", "campaigns", 100),
}


def creation_oracle(spec: dict[str, Any]) -> Any:
    """The workspace the sandbox process serves, rebuilt here for its oracle."""
    sys.path.insert(0, str(ROOT))
    from tap_braze_series.sandbox import SandboxConfig, Workspace

    return Workspace(
        SandboxConfig(
            seed=spec.get("seed", 7),
            n_canvases=spec.get("canvases", 0),
            n_campaigns=spec.get("campaigns", 0),
            n_segments=0,
            n_events=0,
            n_products=0,
            now=dt.datetime.fromisoformat(SANDBOX_NOW),
            history_start=dt.date.fromisoformat(spec["history_start"]),
        )
    )


def check_creation_rows(ws: Any, stdout: Path, start: dt.date) -> dict[str, int]:
    """Rows against the oracle: from each entity's creation day, every day, exact values."""
    got: dict[tuple[str, str, str], dict[str, Any]] = {}
    with open(stdout, "rb") as lines:
        for line in lines:
            if not line.startswith(_RECORD_STREAM):
                continue
            message = json.loads(line)
            stream, record = message["stream"], message["record"]
            if stream in CREATION_SERIES:
                key = "canvas_id" if stream.startswith("canvas") else "campaign_id"
                got[(stream, record[key], record["time"])] = record
    out = {"rows": len(got), "before_creation": 0, "missing": 0, "wrong": 0}
    entities = [("canvas_data_series", c) for c in ws.active_canvases] + [
        ("campaign_data_series", c) for c in ws.active_campaigns
    ]
    for stream, entity in entities:
        created = ws.created_day(entity)
        day = start
        while day <= END_DATE:
            record = got.get((stream, entity.id, day.isoformat()))
            if day < created:
                out["before_creation"] += record is not None
            elif record is None:
                out["missing"] += 1
            else:
                if stream == "canvas_data_series":
                    want = ws.canvas_stats(entity.id, day, now=ws.config.now)["total_stats"]
                else:
                    stat = ws.campaign_stats(entity.id, day, now=ws.config.now)
                    want = {k: v for k, v in stat.items() if k not in ("time", "messages")}
                extra = record.get("extra_metrics") or {}
                out["wrong"] += any(record.get(k, extra.get(k)) != v for k, v in want.items())
            day += dt.timedelta(days=1)
    return out


def case_creation(size: dict[str, Any], workdir: Path, workers: int, latency: float) -> tuple:
    """Two-year backfill of canvases and campaigns created across it: requests and rows."""
    start = END_DATE - dt.timedelta(days=CREATION_DAYS - 1)
    spec: dict[str, Any] = {
        "canvases": size["creation_canvases"],
        "campaigns": size["creation_campaigns"],
        "latency": latency,
        "history_start": start.isoformat(),
    }
    ws = creation_oracle(spec)
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
            run = run_tap(
                config, (*CREATION_SERIES, *extra_streams), casedir, save_stdout=stdout
            )
        if run.returncode != 0:
            raise RuntimeError(f"creation {label}: the tap failed:\n{run.stderr_tail}")
        served = Counter(r[0] for r in sandbox.log["requests"] if r[1] == 200)
        series = sum(served[path] for path, *_ in CREATION_SERIES.values())
        details = sum(served[d] for _p, d, *_ in CREATION_SERIES.values())
        # With the details streams synced, every entity's details are asked anyway.
        minimum = series_min + (entities if extra_streams else new)
        check = check_creation_rows(ws, stdout, start)
        stdout.unlink()
        made = series + details
        rows.append([
            label, series, details, made, minimum, f"{100 * (made / minimum - 1):+.1f}%",
            check["rows"], check["before_creation"], check["missing"], check["wrong"],
            f"{run.wall:.2f}",
        ])
        data.append({"label": label, "series": series, "details": details, "minimum": minimum,
                     "series_minimum": series_min, "check": check, "wall": run.wall,
                     "cpu": run.cpu, "by_path": dict(served)})
        print(f"  creation   {label:<44} series {series} details {details} (minimum "
              f"{minimum}) rows {check['rows']} before creation {check['before_creation']} "
              f"missing {check['missing']} wrong {check['wrong']} wall {run.wall:.2f} s",
              flush=True)
    text = (
        f"## Backfill from creation days ({len(ws.active_canvases)} canvases and "
        f"{len(ws.active_campaigns)} campaigns, {new} of them created after start_date; "
        f"canvas_data_series + campaign_data_series over {CREATION_DAYS} days, latency "
        f"{latency * 1000:g} ms, {workers} workers)\n\n"
        + table(
            ["run", "series requests", "details requests", "series + details",
             "minimum", "over minimum", "rows", "rows before creation", "days missing",
             "rows wrong", "wall s"],
            rows,
        )
        + f"\n\nminimum = each entity's windows from the later of start_date and its "
        f"creation day ({series_min}) + one details request per entity created after "
        "start_date (with the details streams synced: per entity, which those streams need "
        "anyway)."
    )
    return text, data


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
            firsts.append(run_tap(config, FAMILIES["events"]["streams"], casedir))
            seconds.append(run_tap(config, FAMILIES["events"]["streams"], casedir))
            paced = Path(casedir / "tap-stderr.log").read_text().count("pacing requests to it.")
        print(f"  rerun      first {firsts[-1].wall:.2f} s, second {seconds[-1].wall:.2f} s "
              f"({seconds[-1].wall / firsts[-1].wall:.2f}x), CPU {firsts[-1].cpu:.2f} s / "
              f"{seconds[-1].cpu:.2f} s, pacing lines in the second {paced}", flush=True)
    rows = []
    for label, runs in (("first run (fresh pool)", firsts), ("second run, right after", seconds)):
        rows.append([
            label,
            ", ".join(f"{r.wall:.2f}" for r in runs),
            f"{statistics.median(r.wall for r in runs):.2f}",
            f"{statistics.median(r.cpu for r in runs):.2f}",
        ])
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


# --------------------------------------------------------------------------- main


def code_version() -> str:
    """The commit measured, and whether the tap's code differs from it (read-only git)."""
    if os.environ.get("BENCH_CODE"):  # e.g. measuring a `git archive` export
        return os.environ["BENCH_CODE"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tap_braze_series"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in tap_braze_series/" if dirty else "")


def quiet_check(seconds: float = 2.0) -> str:
    """How busy the machine is before we start (other processes skew every figure)."""
    busy0 = _system_busy()
    time.sleep(seconds)
    cores = (_system_busy() - busy0) / seconds
    note = f"machine load before start: {cores:.2f} cores busy"
    if cores > 0.2:
        note += " — WARNING: other processes are running; wall and CPU figures will be disturbed"
    return note


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GB"
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"singer-sdk {version('singer-sdk')}, msgspec {version('msgspec')}"
    )


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

    def progress(result: CaseResult) -> None:
        d = result.row(startup.wall)
        print(
            f"  {result.case:<10} {result.label:<28} requests {d['requests']:>6} "
            f"(min {d['minimum']}) 429s {d['n429']} wall {d['wall']:6.2f} s ideal "
            f"{d['ideal']:6.2f} s (from the request log {result.extra['log_ideal']:.2f} s) "
            f"records {d['records']:>8} CPU {d['cpu']:6.2f} s "
            f"({d['rec_per_cpu']:,.0f}/CPU-s) RSS {d['rss']:.0f} MB, other processes' CPU "
            f"{d['foreign']:.1f} s, calibration {d['calibration']:.0f} ms",
            flush=True,
        )
        out["cases"].setdefault(result.case, []).append(
            {
                **{k: v for k, v in asdict(result).items() if k not in ("run",)},
                "run": {k: v for k, v in asdict(result.run).items()},
                "row": d,
            }
        )

    sections: list[str] = []
    if "scaling" in cases:
        results = []
        for family, days in (("canvas", size["canvas_days"]), ("events", size["event_days"])):
            for n in size["scale_entities"]:
                r = run_case(
                    "scaling",
                    f"{family} n={n} {days}d",
                    family,
                    n=n,
                    days=days,
                    latency=lat,
                    workers=workers,
                    workdir=workdir,
                )
                progress(r)
                results.append(r)
        sections.append(
            f"## Scaling (latency {lat * 1000:g} ms, {workers} workers; canvases = the 4 canvas "
            f"streams over {size['canvas_days']} days, events = event_data_series over "
            f"{size['event_days']} days)\n\n"
            + report_scaling(results, startup.wall)
            + f"\n\nideal = minimum requests × latency / workers; startup = {startup.wall:.2f} s "
            "(a run with no entities). Canvas n = canvases created; entities = active (listed) "
            "canvases."
        )
    if "throughput" in cases:
        results = []
        summary = []
        for label, family, n in (
            (f"events hourly n={size['thr_events']}", "events_hourly", size["thr_events"]),
            (f"events daily n={size['thr_events'] * 10}", "events", size["thr_events"] * 10),
        ):
            rates = []
            for i in range(size["thr_repeat"]):
                r = run_case(
                    "throughput",
                    f"{label} #{i + 1}",
                    family,
                    n=n,
                    days=size["thr_days"],
                    latency=0.0,
                    workers=workers,
                    workdir=workdir,
                )
                progress(r)
                results.append(r)
                rates.append(r.run.records / r.run.cpu)
            summary.append(
                f"{label}: records per tap CPU-second median "
                f"{statistics.median(rates):,.0f}, best {max(rates):,.0f}, worst "
                f"{min(rates):,.0f} over {len(rates)} runs"
            )
        sections.append(
            "## Record throughput (latency 0)\n\n"
            + report_throughput(results)
            + "\n\n"
            + "\n".join(f"- {line}" for line in summary)
        )
    if "memory" in cases:
        results = []
        for family, n in (("canvas", size["mem_canvases"]), ("events_hourly", size["mem_events"])):
            for days in size["mem_days"]:
                r = run_case(
                    "memory",
                    f"{family} n={n} {days}d",
                    family,
                    n=n,
                    days=days,
                    latency=0.0,
                    workers=workers,
                    workdir=workdir,
                )
                progress(r)
                results.append(r)
        sections.append(
            "## Memory: same entities, short vs long history (latency 0)\n\n"
            + report_memory(results)
        )
    if "state" in cases:
        results = []
        for n in size["state_entities"]:
            runs = []
            for i in range(size["state_repeat"]):
                r = run_case(
                    "state",
                    f"events n={n} {size['state_days']}d #{i + 1}",
                    "events",
                    n=n,
                    days=size["state_days"],
                    latency=0.0,
                    workers=workers,
                    workdir=workdir,
                )
                progress(r)
                runs.append(r)
            # The least CPU of the repeats: the host's other tenants only ever add to it.
            results.append(min(runs, key=lambda x: x.run.cpu))
        sections.append(
            "## State cost vs partitions (events daily, latency 0; best of "
            f"{size['state_repeat']} per size)\n\n"
            + report_state(results)
            + "\n\n"
            + state_verdict(results)
        )
    if "ratelimit" in cases:
        results = []
        limit = (args.rl_limit, args.rl_window)
        r = run_case(
            "ratelimit",
            f"events n={size['rl_events']} {size['rl_days']}d",
            "events",
            n=size["rl_events"],
            days=size["rl_days"],
            latency=lat,
            workers=workers,
            workdir=workdir,
            rate_limits={"default": limit},
        )
        progress(r)
        results.append(r)
        sections.append(
            f"## Rate limit (sandbox default pool {limit[0]} requests / {limit[1]:g} s, latency "
            f"{lat * 1000:g} ms, {workers} workers)\n\n"
            + report_ratelimit(results)
            + "\n\nper-window counts (default pool, aligned windows): "
            + str(r.extra.get("windows", {}).get("per_window"))
        )

    if "tail" in cases:
        results = []
        workloads = (
            ("canvas_data_series", "canvas", ("canvas_data_series",), size["tail_canvases"]),
            ("canvas (4 streams)", "canvas", CANVAS_STREAMS, size["tail_canvases"]),
            ("events hourly", "events_hourly", None, size["tail_events_hourly"]),
            ("events daily", "events", None, size["tail_events"]),
        )
        for workload, family, streams, n in workloads:
            for tail, rate, seconds in TAILS:
                r = run_case(
                    "tail",
                    f"{workload} {tail}",
                    family,
                    n=n,
                    days=365,
                    latency=lat,
                    workers=workers,
                    workdir=workdir,
                    streams=streams,
                    sandbox_extra={"tail_rate": rate, "tail_latency": seconds},
                    digest=True,
                )
                r.extra.update(workload=workload, tail=tail)
                progress(r)
                results.append(r)
        sections.append(
            f"## Slow responses (latency {lat * 1000:g} ms, {workers} workers, 365 days; "
            "which requests are slow is a hash of the request: the same ones every run)\n\n"
            + report_tail(results, startup.wall)
            + "\n\nideal = max(sum of the response times in the sandbox's request log / "
            f"workers, the slowest response); startup = {startup.wall:.2f} s."
        )
    if "creation" in cases:
        text, out["cases"]["creation"] = case_creation(size, workdir, workers, lat)
        sections.append(text)
    if "rerun" in cases:
        text, out["cases"]["rerun"] = case_rerun(size, workdir, workers)
        sections.append(text)
    if "memory_large" in cases:
        results = []
        for tail, rate, seconds in (TAILS[0], TAILS[-1]):
            r = run_case(
                "memory_large",
                f"canvas (4 streams) n={size['big_canvases']} {tail}",
                "canvas",
                n=size["big_canvases"],
                days=730,
                latency=0.0,
                workers=workers,
                workdir=workdir,
                sandbox_extra={"tail_rate": rate, "tail_latency": seconds},
            )
            progress(r)
            results.append(r)
        sections.append(
            f"## Memory: {size['big_canvases']:,} canvases × 2 years, the 4 canvas streams "
            f"with breakdowns (latency 0, {workers} workers)\n\n" + report_memory_large(results)
        )

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


# --------------------------------------------------------------------------- profile

PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "writer: msgspec encode + stdout write/flush (SDK, tap writer.py)",
        (
            "tap_braze_series/writer",
            "singer_sdk/contrib/msgspec",
            "singer_sdk/singerlib/encoding",
            "singer_sdk/io_base",
            "msgspec",
            "BufferedWriter",
            "TextIOWrapper",
            "'write'",
            "'flush'",
        ),
    ),
    (
        "SDK messages (RecordMessage, to_dict, time_extracted)",
        (
            "singer_sdk/singerlib/messages",
            "singer_sdk/helpers/_util",
            "dataclasses",
            "singer_sdk/singerlib/_util",
        ),
    ),
    ("SDK stream maps", ("singer_sdk/mapper",)),
    (
        "SDK selection/conformance (pop_deselected, conform)",
        (
            "singer_sdk/helpers/_typing",
            "singer_sdk/helpers/_catalog",
            "singer_sdk/singerlib/catalog",
        ),
    ),
    ("SDK metrics/logging", ("singer_sdk/metrics", "logging/")),
    ("SDK state", ("singer_sdk/helpers/_state", "singer_sdk/streams/_state")),
    (
        "SDK record loop (core.py, tap)",
        ("singer_sdk/streams/core", "singer_sdk/tap_base", "singer_sdk/plugin_base"),
    ),
    ("tap shapes.py (shaping)", ("tap_braze_series/shapes",)),
    ("tap windows.py (time parsing/formatting)", ("tap_braze_series/windows",)),
    ("tap state.py (bookmarks)", ("tap_braze_series/state",)),
    ("tap feed.py (ordering, spool)", ("tap_braze_series/feed", "pickle", "tempfile")),
    ("tap streams.py / tap.py", ("tap_braze_series/streams", "tap_braze_series/tap")),
    ("tap client.py / ratelimit.py", ("tap_braze_series/client", "tap_braze_series/ratelimit")),
    (
        "HTTP: requests + urllib3 + http.client + socket",
        (
            "site-packages/requests/",
            "site-packages/urllib3/",
            "http/client",
            "socket",
            "http/cookiejar",
            "email/",
            "urllib/parse",
            "ssl",
            "select",
            "selectors",
        ),
    ),
    ("JSON decode (simplejson / json)", ("simplejson", "json/", "codecs")),
    ("benchmark harness (counting sink; not the tap's)", ("benchmarks/run.py",)),
    ("waiting for worker threads (future.result)", ("concurrent/futures", "threading", "acquire")),
]


def _category(func: tuple[str, int, str]) -> str | None:
    filename, _, name = func
    text = f"{filename}:{name}"
    for label, needles in PROFILE_CATEGORIES:
        if any(n in text for n in needles):
            return label
    return None


def attribute(stats: Any) -> dict[str, list[float]]:
    """[self time, calls] per category; a builtin is charged to its caller's category."""
    totals: dict[str, list[float]] = {}

    def add(category: str, seconds: float, calls: float) -> None:
        entry = totals.setdefault(category, [0.0, 0.0])
        entry[0] += seconds
        entry[1] += calls

    for func, (_cc, nc, tt, _ct, callers) in stats.stats.items():
        if func[0] == "~":
            # Builtins (C functions): own category if it names one, else their callers'.
            own = _category(func)
            if own is not None and own.startswith(("writer", "waiting")):
                add(own, tt, nc)
                continue
            spent, counted = 0.0, 0
            for caller, values in callers.items():
                add(
                    _category(caller) or f"other: {Path(caller[0]).name}:{caller[2]}",
                    values[2],
                    values[1],
                )
                spent += values[2]
                counted += values[1]
            if tt - spent > 1e-6 or nc > counted:
                add(f"other: {func[2]}", max(tt - spent, 0.0), max(nc - counted, 0))
            continue
        add(_category(func) or f"other: {Path(func[0]).name}:{func[2]}", tt, nc)
    return totals


def _short(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile_tables(
    stats: Any,
    records: int,
    unprofiled_cpu: float,
    top: int,
    unit: str = "record",
    correct: bool = True,
) -> dict[str, Any]:
    """Component and top-function tables, in µs per record of the unprofiled run.

    With `correct`, cProfile's own cost, estimated as (profiled total − unprofiled time)
    / calls, is subtracted from every function in proportion to its calls before the
    shares are taken; without it, the raw profile shares are scaled to the unprofiled
    time.
    """
    cats = attribute(stats)
    # Time blocked on futures is not CPU: left out (the unprofiled figure is CPU time).
    waiting = {k: v for k, v in cats.items() if k.startswith("waiting")}
    cats = {k: v for k, v in cats.items() if k not in waiting}
    total_tt = sum(v[0] for v in cats.values())
    total_calls = sum(v[1] for v in cats.values())
    per_call = max(total_tt - unprofiled_cpu, 0.0) / max(total_calls, 1) if correct else 0.0
    corrected = {k: max(tt - calls * per_call, 0.0) for k, (tt, calls) in cats.items()}
    scale = unprofiled_cpu / max(sum(corrected.values()), 1e-9)  # residual normalisation
    rows = []
    for name, (tt, calls) in sorted(cats.items(), key=lambda kv: -corrected[kv[0]]):
        est = corrected[name] * scale
        if est / max(unprofiled_cpu, 1e-9) < 0.005 and tt / total_tt < 0.01:
            continue
        row = [name, f"{100 * est / max(unprofiled_cpu, 1e-9):.1f}%", 1e6 * est / max(records, 1)]
        if correct:
            row.append(1e6 * tt * unprofiled_cpu / total_tt / max(records, 1))
        row += [calls / max(records, 1)]
        rows.append(row)
    headers = [
        "component (self time; builtins charged to their caller)",
        "share",
        f"µs/{unit}" + (" (overhead-corrected)" if correct else ""),
    ]
    if correct:
        headers.append(f"µs/{unit} (raw profile share)")
    headers.append(f"calls/{unit}")
    component_table = table(headers, rows)
    top_rows = []
    for func, (_cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[
        :top
    ]:
        filename, line, name = func
        est = max(tt - nc * per_call, 0.0) * scale
        top_rows.append(
            [f"`{_short(filename)}:{line}({name})`", nc, tt, ct, 1e6 * est / max(records, 1)]
        )
    top_table = table(
        [
            "function",
            "calls",
            "tottime s (profiled)",
            "cumtime s (profiled)",
            f"µs/{unit}" + (" (overhead-corrected)" if correct else ""),
        ],
        top_rows,
    )
    return {
        "components": component_table,
        "top": top_table,
        "per_call_us": 1e6 * per_call,
        "profile_total": total_tt,
        "calls": total_calls,
        "waiting_s": sum(v[0] for v in waiting.values()),
        "categories": {
            k: {"profiled_s": v[0], "calls": v[1], "est_s": corrected[k] * scale}
            for k, v in cats.items()
        },
    }


class _Replay:
    """Records every response of a real run, then serves them from memory.

    A replayed run does the main thread's work only (shaping, SDK, writing): the
    worker threads no longer compete for the GIL, so a wall-clock profile of the
    main thread is not inflated by GIL waits.
    """

    def __init__(self) -> None:
        self.bodies: dict[tuple, Any] = {}

    @staticmethod
    def key(path: str, params: Any) -> tuple:
        return path, tuple(sorted((k, str(v)) for k, v in (params or {}).items()))

    def recording(self, get: Any) -> Any:
        def wrapped(path: str, params: Any = None) -> Any:
            response = get(path, params)
            self.bodies[self.key(path, params)] = response
            return response

        return wrapped

    def replaying(self) -> Any:
        def wrapped(path: str, params: Any = None) -> Any:
            return self.bodies[self.key(path, params)]

        return wrapped


@contextlib.contextmanager
def record_path(variant: str) -> Any:
    """Run the tap with the writer, conformance level and per-record path of `variant`."""
    from singer_sdk.contrib.msgspec import MsgSpecWriter
    from singer_sdk.helpers.conform import TypeConformanceLevel
    from singer_sdk.io_base import SingerWriter

    from tap_braze_series.streams import BrazeStream
    from tap_braze_series.tap import TapBrazeSeries

    writer, level, sdk_path = RECORD_PATHS[variant]
    saved = (
        TapBrazeSeries.message_writer_class,
        BrazeStream.TYPE_CONFORMANCE_LEVEL,
        BrazeStream.records_pass_through,
    )
    TapBrazeSeries.message_writer_class = {
        "simplejson": SingerWriter,
        "msgspec": MsgSpecWriter,
        "tap": saved[0],
    }[writer]
    BrazeStream.TYPE_CONFORMANCE_LEVEL = getattr(TypeConformanceLevel, level)
    if sdk_path:
        BrazeStream.records_pass_through = lambda self: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        (
            TapBrazeSeries.message_writer_class,
            BrazeStream.TYPE_CONFORMANCE_LEVEL,
            BrazeStream.records_pass_through,
        ) = saved


# variant: (writer, TYPE_CONFORMANCE_LEVEL, whether every record takes the SDK's full path)
RECORD_PATHS: dict[str, tuple[str, str, bool]] = {
    "SDK defaults: simplejson writer (flush per line), RECURSIVE conformance": (
        "simplejson",
        "RECURSIVE",
        True,
    ),
    "msgspec writer (flush per line), RECURSIVE conformance": ("msgspec", "RECURSIVE", True),
    "msgspec writer (flush per line), conformance NONE": ("msgspec", "NONE", True),
    "tap writer (chunks flushed at STATE), conformance NONE": ("tap", "NONE", True),
    "the tap as shipped: + records written directly when the SDK's steps change nothing": (
        "tap",
        "NONE",
        False,
    ),
}


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

    sys.path.insert(0, str(ROOT))
    from tap_braze_series.tap import TapBrazeSeries

    casedir = workdir / f"profile-{family}"
    casedir.mkdir(parents=True, exist_ok=True)
    kind = FAMILIES[family]["entity"]
    result: dict[str, Any] = {"label": label}
    replay = _Replay()
    with SandboxProcess(casedir, **{kind: n, "latency": 0.0}) as sandbox:
        config = tap_config(sandbox.info["url"], sandbox.info["api_key"], days, workers)
        catalog = catalog_for(config, FAMILIES[family]["streams"], casedir)

        def once(mode: str, profiler: Any | None = None) -> dict[str, Any]:
            wait_quiet()
            tap = TapBrazeSeries(config=config, catalog=catalog, state=None, validate_config=True)
            client = tap.runtime.client
            if mode == "record":
                client.get = replay.recording(client.get)  # type: ignore[method-assign]
            elif mode == "replay":
                client.get = replay.replaying()  # type: ignore[method-assign]
            sink = _CountingStdout()
            saved_stdout = sys.stdout
            saved_fd2 = os.dup(2)
            err = os.open(
                casedir / f"profile-stderr-{mode}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            )
            os.dup2(err, 2)
            sys.stdout = sink  # type: ignore[assignment]
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
                sys.stdout = saved_stdout
                os.dup2(saved_fd2, 2)
                os.close(saved_fd2)
                os.close(err)
                sink.close()
            with contextlib.suppress(Exception):
                tap.runtime.executor().shutdown(wait=True)
            return {"wall": wall, "cpu": proc_cpu, "main": main_cpu, "records": sink.buffer.records}

        real = min((once("real"), once("record")), key=lambda r: r["cpu"])
        # The worker threads' side: client.get() of a full window, sequentially.
        client_result = profile_client(config, catalog, family, top) if per == "record" else None
    replayed = min((once("replay") for _ in range(3)), key=lambda r: r["main"])
    if variants:
        rows = []
        for variant in RECORD_PATHS:
            with record_path(variant):
                best = min((once("replay") for _ in range(2)), key=lambda r: r["main"])
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
        prof_file=str(_short(str(prof_path))),
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


class _CountingBuffer:
    """stdout.buffer for the in-process run: /dev/null, counting RECORD messages."""

    def __init__(self) -> None:
        self._file = open(os.devnull, "wb")  # noqa: SIM115  (a BufferedWriter, like stdout)
        self.records = 0

    def write(self, data: Any) -> int:
        self.records += data.count(_RECORD)  # one message or a chunk of them
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _CountingStdout:
    """sys.stdout stand-in: the SDK writes to .buffer and calls flush() per message."""

    def __init__(self) -> None:
        self.buffer = _CountingBuffer()

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        self.buffer.flush()

    def close(self) -> None:
        self.buffer.close()


def micro_costs(config: dict, catalog: dict, number: int = 100_000) -> dict[str, Any]:
    """µs per hourly event record of each step of the per-record path, timed in isolation.

    No profiler: each step runs `number` times under time.perf_counter on one realistic
    record (the shapes step on a real 100-point response body), so these figures carry
    no profiler overhead. What the replayed run costs beyond their sum is the SDK's
    record loop itself (generators, counters, checks) and the response hand-off.
    """
    from singer_sdk.helpers._catalog import pop_deselected_record_properties
    from singer_sdk.helpers._typing import conform_record_data_types
    from singer_sdk.helpers._util import utc_now
    from singer_sdk.singerlib import RecordMessage

    from tap_braze_series import shapes
    from tap_braze_series.feed import Partition
    from tap_braze_series.tap import TapBrazeSeries
    from tap_braze_series.windows import plan_windows, read_time

    tap = TapBrazeSeries(config=config, catalog=catalog, state=None)
    stream = tap.streams["event_data_series_hourly"]
    tz = tap.runtime.tz
    first = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    window = plan_windows(first, first + dt.timedelta(hours=99), "hour", 100, tz)[0]
    body = {
        "message": "success",
        "data": [
            {"time": (first + dt.timedelta(hours=h)).isoformat(), "count": 1000 + h}
            for h in range(100)
        ],
    }
    partition = Partition(
        index=0, context={"event_name": "purchase_completed", "app_id": "*"}, params={}
    )
    times = [(first + dt.timedelta(hours=h)).isoformat() for h in range(number)]
    record = {"event_name": "purchase_completed", "app_id": "*", "time": times[0], "count": 1234}
    schema, mask = stream.schema, stream.mask
    stream_map = stream.stream_maps[0]
    sink = _CountingStdout()
    saved = sys.stdout
    results: list[tuple[str, float]] = []

    def timed(label: str, func: Any, n: int = number) -> None:
        start = time.perf_counter()
        func(n)
        results.append((label, 1e6 * (time.perf_counter() - start) / n))

    def shape(n: int) -> None:
        for _ in range(n // 100):
            for _row in shapes.simple_records(
                shapes.data_list(body),
                window,
                first,
                "hour",
                tz,
                partition.context,
                ("count",),
                shapes.Issues(),
            ):
                pass

    def read(n: int) -> None:
        # The hours of one year recur for every event, as in a run.
        for i in range(n):
            read_time(times[i % 8784], "hour", tz)

    def pop(n: int) -> None:
        for _ in range(n):
            pop_deselected_record_properties(dict(record), schema, mask)

    def copy_only(n: int) -> None:
        for _ in range(n):
            dict(record)

    def conform(n: int) -> None:
        for _ in range(n):
            conform_record_data_types(
                stream_name=stream.name,
                record=record,
                schema=schema,
                level=stream.TYPE_CONFORMANCE_LEVEL,
                logger=stream.logger,
            )

    def mapper(n: int) -> None:
        for _ in range(n):
            stream_map.transform(record)

    def message(n: int) -> None:
        for _ in range(n):
            RecordMessage(stream=stream.name, record=record, version=None, time_extracted=utc_now())

    msg = RecordMessage(stream=stream.name, record=record, version=None, time_extracted=utc_now())

    def write(n: int) -> None:
        for _ in range(n):
            tap.write_message(msg)

    def write_record(n: int) -> None:
        for _ in range(n):
            stream._write_record_message(dict(record))

    context = {"event_name": "purchase_completed", "app_id": "*"}

    def increment(n: int) -> None:
        for i in range(n):
            stream._increment_stream_state({**record, "time": times[i]}, context=context)

    def increment_copy_only(n: int) -> None:
        for i in range(n):
            {**record, "time": times[i]}

    steps = [
        ("tap shapes.simple_records incl. windows.read_time, per point", shape),
        ("  of which windows.read_time (a year of hours, recurring per event)", read),
        ("(dict copy, subtracted below)", copy_only),
        ("SDK pop_deselected_record_properties", pop),
        ("SDK conform_record_data_types (level NONE)", conform),
        ("SDK stream map transform (no maps configured)", mapper),
        ("SDK RecordMessage + utc_now()", message),
        ("writer: tap.write_message (msgspec encode + chunked write)", write),
        ("SDK _write_record_message (the 5 steps above, with its generator)", write_record),
        ("(dict build, subtracted below)", increment_copy_only),
        ("SDK _increment_stream_state → tap state.increment_state", increment),
    ]
    wait_quiet()
    sys.stdout = sink  # type: ignore[assignment]
    try:
        for _repeat in range(3):
            for label, func in steps:
                timed(label, func)
        flush = getattr(tap.message_writer, "flush", None)
        if callable(flush):
            flush()  # the tap's writer may hold a chunk: into the sink, not the terminal
    finally:
        sys.stdout = saved
        sink.close()
    by: dict[str, float] = {}
    for label, us in results:  # best of the repeats
        by[label] = min(us, by.get(label, us))
    results = list(by.items())
    rows = []
    for label, us in results:
        if label.startswith("("):
            continue
        if "pop_deselected" in label or "_write_record_message" in label:
            us -= by["(dict copy, subtracted below)"]
        if "_increment_stream_state" in label:
            us -= by["(dict build, subtracted below)"]
        rows.append([label, us])
    return {"rows": rows, "table": table(["step (timed alone, no profiler)", "µs/record"], rows)}


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
                    workdir,
                ),
            )
        units = max(r["units"], 1)
        print(f"## {label}\n")
        what = f"records {r['records']:,}" + (f", {per}s {units:,}" if per != "record" else "")
        print(
            f"{what}; unprofiled in-process run (stdout = "
            f"/dev/null, best of 2): wall {r['wall']:.2f} s, process CPU {r['process_cpu']:.2f} s"
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
    print(f"raw results: {_short(str(path))}")
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_sandbox"]:
        return sandbox_main(*argv[1:4])
    args = build_parser().parse_args(argv)
    QUIET["max_wait"] = args.max_wait_quiet
    QUIET["retries"] = args.retries
    if args.profile:
        return main_profile(args)
    return main_bench(args)


if __name__ == "__main__":
    sys.exit(main())
