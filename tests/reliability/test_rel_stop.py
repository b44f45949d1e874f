"""Stopping and stalling: signals while workers wait, stalled servers, a target that goes away.

Each stop situation is met once, with SIGTERM or SIGINT at a random moment
(seeded) after the situation is reached:

- waiting for a rate-limit reset (the pool was emptied by someone else: a 429);
- backing off between retries of 503s;
- every request hanging on a server that accepts and never answers;
- the stdout pipe full (a target that reads nothing until a second after the signal).

Each time: the tap exits within 5 s with 143 / 130, the sandbox logs no request
started after the signal, every line is whole, the output ends with a STATE, one
line says it was stopped and that the next run resumes; then a run resumed from
that STATE completes, and the two runs together hold every record the oracle
expects, each equal to it.

Stalls: a server that hangs, sends headers then nothing, or trickles a byte at a
time is given up on within about (max_retries + 1) x request_timeout, with one
worker or eight. A target that closes stdout while the tap is waiting on a slow
server stops the run at once: no traceback, no further request, a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from tests.harness.expected import oracle
from tests.harness.messages import record_key
from tests.harness.proxy import Proxy
from tests.harness.running import StreamedRun, run_until, write_inputs
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = "2024-03-10"
APPS = ["app_ios"]
STREAMS = ["event_data_series_hourly", "session_data_series"]
SITUATIONS = ("rate_limit_wait", "retry_backoff", "hanging_server", "full_pipe")
RNG = random.Random(20241202)
# SIGTERM for two situations, SIGINT for the other two (drawn), and a random delay
# after each situation is reached.
_SIGNALS = RNG.sample([signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGINT], 4)
PLAN = {s: (_SIGNALS[i], RNG.uniform(0.05, 0.8)) for i, s in enumerate(SITUATIONS)}
# A request the tap had already sent when the signal came may be read by the
# sandbox a moment later; anything later than this was sent after the signal.
SEND_SLACK = 0.5


@pytest.fixture(scope="module")
def sb():
    with sandbox(now=NOW, n_events=3) as sb:
        yield sb


@pytest.fixture(scope="module")
def expected(sb):
    return {
        s: oracle(
            sb.workspace,
            s,
            first=dt.date.fromisoformat(START),
            last=NOW.date(),
            now=NOW,
            app_ids=APPS,
        )
        for s in STREAMS
    }


def _after(delay: float, condition):
    """when(): true `delay` seconds after `condition()` first was."""
    since: list[float] = []

    def when() -> bool:
        if not since:
            if condition():
                since.append(time.monotonic())
            return False
        return time.monotonic() - since[0] >= delay

    return when


def _steady(sb, minimum: int, quiet: float = 0.4):
    """condition(): at least `minimum` requests, and none for `quiet` seconds."""
    seen = [0, time.monotonic()]

    def condition() -> bool:
        count = len(sb.request_log)
        if count != seen[0]:
            seen[:] = [count, time.monotonic()]
            return False
        return count >= minimum and time.monotonic() - seen[1] >= quiet

    return condition


def _exhaust_default_pool(sb, limit: int) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sb.api_key}"
    for _ in range(limit):
        session.get(sb.url + "/sessions/data_series", params={"length": 1, "other": 1}, timeout=10)
    session.close()


def _stop_run(sb, tmp: Path, situation: str) -> tuple[StreamedRun, dict]:
    signum, delay = PLAN[situation]
    extra: dict = {"app_ids": APPS, "max_workers": 4}
    paused = None
    log = sb.request_log
    if situation == "rate_limit_wait":
        # A window far longer than the test: the reset is never reached in it.
        sb.set_rate_limits({"default": (3, 3600.0)})
        _exhaust_default_pool(sb, 3)
        condition = lambda: any(r.status == 429 and "other" not in r.params for r in log)  # noqa: E731
    elif situation == "retry_backoff":
        sb.set_faults(rate=1.0, kinds=("503",), max_repeats=10**6)
        extra["retry_backoff_seconds"] = 30
        condition = lambda: any(r.status == 503 for r in log)  # noqa: E731
    elif situation == "hanging_server":
        sb.set_faults(rate=1.0, kinds=("hang",), max_repeats=10**6)
        extra["request_timeout"] = 300
        condition = lambda: sb.in_flight > 0  # noqa: E731
    else:
        paused = 1.0
        condition = _steady(sb, minimum=8)
    config = tap_config(sb.url, sb.api_key, NOW, START, **extra)
    sb.clear_log()
    try:
        run = run_until(
            write_inputs(tmp, config, streams=STREAMS, tag=situation),
            tmp / f"{situation}.err",
            signum=signum,
            when=_after(delay, condition),
            paused_reader=paused,
            timeout=60,
        )
    finally:
        sb.set_faults(rate=0.0)
        sb.set_rate_limits(None)
    return run, config


@pytest.mark.parametrize("situation", SITUATIONS)
def test_a_signal_stops_the_run_at_once_and_the_next_run_resumes(sb, expected, tmp_path, situation):
    signum, _ = PLAN[situation]
    run, config = _stop_run(sb, tmp_path, situation)
    assert run.killed, f"the run ended before the signal: {run.stderr[-2000:]}"
    late = [r for r in sb.request_log if r.started > run.signalled_at + SEND_SLACK]
    assert not late, f"{len(late)} requests after the signal, e.g. {late[0]}"
    assert run.exit_seconds < 5, run.exit_seconds
    assert run.returncode == 128 + signum, (run.returncode, run.stderr[-2000:])
    assert run.cut_line is None, run.cut_line[:200]
    assert run.messages, "nothing was written"
    assert run.messages[-1].kind == "STATE", run.messages[-1]
    said = [line for line in run.stderr.splitlines() if "stopped by" in line]
    assert len(said) == 1, run.stderr[-2000:]
    assert signal.Signals(signum).name in said[0]
    assert "next run resumes" in said[0]
    assert "Traceback" not in run.stderr

    resumed = run_until(
        write_inputs(
            tmp_path, config, streams=STREAMS, state=run.messages[-1].value, tag="resumed"
        ),
        tmp_path / "resumed.err",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    seen: dict[str, set] = defaultdict(set)
    for message in [*run.messages, *resumed.messages]:
        if message.kind != "RECORD":
            continue
        stream = message.stream
        key = record_key(stream, message.record)
        want = expected[stream][key]
        for name, value in want.items():
            got = message.record.get(name, (message.record.get("extra_metrics") or {}).get(name))
            assert got == value, (stream, key, name, got, value)
        seen[stream].add(key)
    for stream in STREAMS:
        missing = expected[stream].keys() - seen[stream]
        assert not missing, (stream, len(missing), sorted(missing)[:3])


# --- stalled servers ---------------------------------------------------------------------

TIMEOUT = 1.0
RETRIES = 2


@pytest.mark.parametrize(
    ("kinds", "workers"),
    [(("hang",), 1), (("hang", "stall", "trickle"), 8)],
    ids=["hang-1-worker", "hang-stall-trickle-8-workers"],
)
def test_a_stalled_server_is_given_up_on_within_the_request_deadlines(sb, tmp_path, kinds, workers):
    config = tap_config(
        sb.url,
        sb.api_key,
        NOW,
        "2024-01-01",
        app_ids=APPS,
        max_workers=workers,
        request_timeout=TIMEOUT,
        max_retries=RETRIES,
    )
    sb.clear_log()
    sb.set_faults(rate=1.0, kinds=kinds, max_repeats=10**6, trickle_interval=0.2)
    try:
        # Hourly sessions for two apps: many windows, no entity list before them.
        run = run_until(
            write_inputs(tmp_path, config, streams=["session_data_series_hourly"]),
            tmp_path / "stalled.err",
            timeout=60,
        )
        ended = time.time()
    finally:
        sb.set_faults(rate=0.0)
    log = sb.request_log.snapshot()
    assert run.returncode == 1, run.stderr[-2000:]
    assert "no complete answer within request_timeout" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.cut_line is None
    first = min(r.started for r in log)
    # (max_retries + 1) attempts of request_timeout each, the backoff (0.01 s here) and
    # a generous allowance for a busy machine; with 8 workers the same as with one.
    budget = (RETRIES + 1) * TIMEOUT
    assert ended - first < budget + 4.0, (ended - first, len(log))
    assert {r.fault for r in log} <= set(kinds), {r.fault for r in log}


# --- a target that goes away ----------------------------------------------------------------


def test_a_closed_stdout_stops_the_run_while_it_waits_on_the_server(sb, tmp_path):
    config = tap_config(sb.url, sb.api_key, NOW, START, app_ids=APPS, max_workers=2)
    sb.clear_log()
    sb.set_latency(0.3)  # the tap writes nothing while it waits for answers
    try:
        run = run_until(
            write_inputs(tmp_path, config, streams=STREAMS),
            tmp_path / "closed.err",
            signum=None,
            when=lambda: len(sb.request_log) >= 3,
            timeout=60,
        )
    finally:
        sb.set_latency(0.0)
    assert run.killed
    assert run.exit_seconds < 3, run.exit_seconds
    assert run.returncode not in (0, None), run.returncode
    said = [line for line in run.stderr.splitlines() if "closed the pipe" in line]
    assert len(said) == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "BrokenPipeError" not in run.stderr
    # Requests in flight when the pipe closed may finish; none starts a second later.
    late = [r for r in sb.request_log if r.started > run.signalled_at + 1.0]
    assert not late, late[:3]


# --- a forced exit while a long line goes to a slow reader ----------------------------------

BIG_LINE = 10 * 1024 * 1024  # a canvas name this long: a 10 MB RECORD line
READER_PACE = 1.3 * 1024 * 1024  # bytes a second


def _big_names(path, params, body):
    """Two canvases of /canvas/list named with BIG_LINE characters."""
    if path != "/canvas/list":
        return None
    for canvas in body["canvases"][:2]:
        canvas["name"] = "x" * BIG_LINE
    return body


def test_a_forced_exit_never_cuts_a_line_nor_starts_one_it_cannot_finish(sb, tmp_path):
    """SIGTERM while a 10 MB line goes to a reader taking 1.3 MB/s: the line under way is
    finished (past the 4.5 s forced exit, as long as the reader takes it), the next 10 MB
    line is not started, and the output ends on a whole line."""
    with Proxy(sb.url, mutate=_big_names) as proxy:
        config = tap_config(proxy.url, sb.api_key, NOW, START, app_ids=APPS)
        command = write_inputs(tmp_path, config, streams=["canvases"], tag="big")
        with (tmp_path / "big.err").open("w") as err:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err)
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            out = bytearray()
            signalled = None
            started = time.monotonic()
            while True:
                chunk = os.read(fd, 64 * 1024)
                if not chunk:
                    break
                out += chunk
                # Mid-way into the first big line: the stop.
                if signalled is None and len(out) > 2 * 1024 * 1024:
                    proc.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                time.sleep(len(chunk) / READER_PACE)
                assert time.monotonic() - started < 90
            proc.wait(timeout=30)
            ended = time.monotonic()
            proc.stdout.close()
        stderr = (tmp_path / "big.err").read_text()
    assert signalled is not None, stderr[-2000:]
    assert proc.returncode == 143, (proc.returncode, stderr[-2000:])
    assert out.endswith(b"\n"), out[-200:]
    lines = out.split(b"\n")[:-1]
    messages = [json.loads(line) for line in lines]  # every line whole
    names = [m["record"]["name"] for m in messages if m["type"] == "RECORD"]
    # The line under way when the stop came was finished; the second was never started.
    assert [len(n) for n in names if len(n) == BIG_LINE] == [BIG_LINE]
    # The forced exit waited for the line: later than 4.5 s, as the reader's pace allows.
    assert ended - signalled > 4.5
    assert ended - signalled < BIG_LINE / READER_PACE + 5
    said = [line for line in stderr.splitlines() if "tap-braze-series:" in line]
    assert said, stderr[-2000:]
    assert "Traceback" not in stderr
