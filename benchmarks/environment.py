"""The machine a benchmark runs on: what it is, how busy it is, how fast a CPU-second is.

Other processes skew every figure: before each case the benchmark waits for the
machine to go quiet, measures the CPU other processes used during the case (from
/proc/stat), and measures the case again when that exceeds `QUIET["disturbed"]` core.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Other processes on the machine disturb every figure: wait for quiet before a case,
# and measure a case again (keeping the least disturbed run) when others used more than
# `disturbed` cores on average during it. Set from the command line.
QUIET: dict[str, float] = {"max_wait": 300.0, "threshold": 0.15, "disturbed": 0.1, "retries": 2}


def wait_quiet() -> float:
    """Wait (at most QUIET['max_wait'] s) until other processes use < threshold cores."""
    start = time.monotonic()
    while True:
        busy0 = system_busy()
        time.sleep(1.0)
        load = system_busy() - busy0
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


def system_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def process_cpu(pid: int) -> float:
    """utime + stime of a live process, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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
    busy0 = system_busy()
    time.sleep(seconds)
    cores = (system_busy() - busy0) / seconds
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
