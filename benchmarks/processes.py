"""The processes of a benchmark: the sandbox, and the tap measured from outside.

The sandbox runs in a process of its own (its CPU is not the tap's; it dumps its
request log at exit, from which requests, 429s and concurrency are counted). The tap
runs as a subprocess as Meltano would (its own `main()`, with --config and --catalog),
and its Singer output is counted here as it streams (bytes.count per chunk: a JSON
parse of millions of records would cost more than the tap). The tap's CPU (user +
sys) comes from `os.wait4()`, the rusage of that one child; its peak RSS is VmHWM,
written by an atexit hook in the child (ru_maxrss would include this script's memory:
Linux folds the pre-exec memory map into it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.environment import ROOT, process_cpu
from benchmarks.workloads import HISTORY_START, SANDBOX_NOW, sandbox_config
from tests.harness.running import catalog_for

PYTHON = sys.executable
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


# --- the sandbox process ------------------------------------------------------------


def sandbox_main(spec_path: str, ready_path: str, log_path: str) -> int:
    """Child process: serve the sandbox until SIGTERM, then dump its request log."""
    import resource

    from tap_braze_series.sandbox import Sandbox

    spec = json.loads(Path(spec_path).read_text())
    cfg = sandbox_config(spec)
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
                    "-m",
                    "benchmarks.processes",
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
        return process_cpu(self.proc.pid)

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


# --- the tap process ----------------------------------------------------------------


@dataclass
class MeasuredRun:
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


RECORD = b'{"type":"RECORD"'
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
        self.records += chunk.count(RECORD)
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


def run_measured_tap(
    config: dict[str, Any],
    streams: tuple[str, ...],
    workdir: Path,
    state: dict | None = None,
    timeout: float = 3600,
    digest: bool = False,
    save_stdout: Path | None = None,
) -> MeasuredRun:
    """Run the tap as a subprocess, count its output here, rusage from wait4()."""
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config))
    catalog_path = workdir / "tap-catalog.json"
    catalog_path.write_text(json.dumps(catalog_for(config, streams)))
    command = [*TAP_MEASURED, "--config", str(config_path), "--catalog", str(catalog_path)]
    if state is not None:
        state_path = workdir / "tap-state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    stderr_path = workdir / "tap-stderr.log"
    counter = SingerCounter(digest=digest)
    run = MeasuredRun()
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


if __name__ == "__main__":  # the sandbox's process (see SandboxProcess)
    sys.exit(sandbox_main(*sys.argv[1:4]))
