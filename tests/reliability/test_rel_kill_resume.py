"""SIGKILL, SIGTERM, SIGINT at 20+ points, resume from the last STATE: nothing lost or wrong.

A "chain" starts a run without state, kills it at a chosen output line, resumes
from the last STATE message the chain emitted (none if it emitted none), and so
on until a run completes. Kill points are drawn from a seeded generator, in four
kinds: right after a STATE message, between two partitions of a stream, in the
middle of a response window (two records of one response), and at any line.
Each kind is met with SIGKILL (the run keeps what it wrote up to that line) and
with SIGTERM and SIGINT (the run stops by itself: everything it wrote counts,
and it must end with whole lines, a final STATE and the signal's exit status).
Across each chain:

- every record any run emitted equals the sandbox's oracle (now is fixed, so a
  re-read bucket must carry the same values);
- every bucket the oracle expects was emitted by some run;
- every STATE message claims only what was already emitted: for each partition,
  every expected bucket up to its bookmark came before that STATE message (in
  its run or an earlier run of the chain);
- the completed run's bookmarks equal those of an uninterrupted run.

Chains alternate lookback_days 14 and 0 (with 0, a resumed run re-reads only the
bookmarked bucket, so a bookmark one bucket too far would lose data).

The whole runs under each reading of Braze (tests.harness.sandboxes.READINGS): 22 kills as
recorded, 5 under each other reading (every kind, SIGKILL and SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import signal
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.harness.expected import oracle, request_matches, window_labels
from tests.harness.messages import (
    STREAMS,
    Message,
    bookmarks,
    bucket_order,
    context_key,
    keys_of,
    partition_of,
    record_key,
    unit_of,
)
from tests.harness.running import StreamedRun, run_until, write_inputs
from tests.harness.sandboxes import READINGS, sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 2, 1)
APPS = ["app_ios"]
# In the order the tap syncs them: the canvas family (one driver, and two members it
# writes from its spool as each canvas ends), an hourly stream long enough for a STATE
# message in its middle (the SDK writes one every 10,000 records), then a small daily
# stream.
SELECTED = [
    "canvas_step_message_data_series",
    "canvas_step_data_series",
    "canvas_data_series",
    "event_data_series_hourly",
    "session_data_series",
]
KINDS = ("state", "partition", "window", "any")
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
MIN_KILLS = {"recorded": 22}
OTHER_READING_KILLS = 5
MAX_RUNS = 70


class Chain:
    """One kill/resume chain and what it emitted."""

    def __init__(self) -> None:
        self.runs: list[tuple[dict | None, StreamedRun]] = []  # (input state, run)
        self.signals: list[tuple[int, StreamedRun]] = []  # runs stopped by SIGTERM/SIGINT


@pytest.fixture(scope="module", params=list(READINGS))
def world(request, tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("kill")
    reading = request.param
    with sandbox(now=NOW, latency=0.002, **READINGS[reading]) as sb:
        config = tap_config(sb.url, sb.api_key, NOW, START.isoformat(), app_ids=APPS, max_workers=2)
        expected = {
            s: oracle(sb.workspace, s, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
            for s in SELECTED
        }
        # A resumed run re-reads a count series from its lookback's start: zeros there
        # are rows, even before the partition's first non-zero bucket.
        allowed = {
            s: oracle(
                sb.workspace,
                s,
                first=START,
                last=NOW.date(),
                now=NOW,
                app_ids=APPS,
                bookmarked=True,
            )
            for s in SELECTED
        }
        clean = run_until(
            write_inputs(tmp, config, streams=SELECTED, tag="clean"),
            tmp / "clean.err",
            lambda _prev, _msg: None,
        )
        assert clean.returncode == 0, clean.stderr[-3000:]
        min_kills = MIN_KILLS.get(reading, OTHER_READING_KILLS)
        chains, kills = _kill_and_resume(sb, config, tmp, len(clean.messages), min_kills)
        yield {
            "sb": sb,
            "reading": reading,
            "min_kills": min_kills,
            "expected": expected,
            "allowed": allowed,
            "clean": clean,
            "chains": chains,
            "kills": kills,
        }


def _same_response(sb, since: int, stream: str, a: Message, b: Message) -> bool:
    """Whether two records of a partition came from one logged response of this run."""
    path = STREAMS[stream][2]
    partition = partition_of(stream, a.record)
    unit = unit_of(stream)
    for entry in sb.request_log.snapshot()[since:]:
        if entry.path != path or entry.status != 200 or entry.fault:
            continue
        if not request_matches(stream, entry.params, partition):
            continue
        labels = window_labels(sb.workspace, NOW, entry.params, unit)
        if a.record["time"] in labels and b.record["time"] in labels:
            return True
    return False


def _planner(kind: str, threshold: int, sb, since: int):
    """kill_at(previous, current) for one kill of the given kind, not before `threshold`.

    "partition": before a stream's first record of a partition, whatever lines came
    since its record before (a family's members are written between its driver's
    partitions).
    """
    last_partition: dict[str, object] = {}

    def kill_at(previous: list[Message], current: Message) -> tuple[int, str] | None:
        if kind == "any":
            return (current.index + 1, "any") if current.index + 1 >= threshold else None
        if kind == "state":
            if current.kind == "STATE" and current.index + 1 >= threshold:
                return current.index + 1, "state"
            return None
        if kind == "partition":
            if current.kind != "RECORD":
                return None
            partition = partition_of(current.stream, current.record)
            before = last_partition.get(current.stream, partition)
            last_partition[current.stream] = partition
            if partition != before and current.index >= threshold:
                return current.index, "partition"
            return None
        prev = previous[-1] if previous else None
        if prev is None or prev.index + 1 < threshold:
            return None
        if not (prev.kind == current.kind == "RECORD" and prev.stream == current.stream):
            return None
        stream = current.stream
        same_partition = partition_of(stream, prev.record) == partition_of(stream, current.record)
        if kind == "window" and same_partition and _same_response(sb, since, stream, prev, current):
            return prev.index + 1, "window"
        return None

    return kill_at


def _kill_and_resume(
    sb, config, tmp: Path, n_lines: int, min_kills: int
) -> tuple[list[Chain], Counter]:
    rng = random.Random(20240430)
    chains: list[Chain] = []
    kills: Counter = Counter()
    runs = 0
    while sum(kills.values()) < min_kills:
        assert runs < MAX_RUNS, f"only {sum(kills.values())} kills in {runs} runs"
        chain = Chain()
        chains.append(chain)
        # Odd chains resume without a lookback: only the bookmarked bucket is read again.
        chain_config = {**config, "lookback_days": 14 if len(chains) % 2 else 0}
        state: dict | None = None
        while True:
            n = sum(kills.values())
            kind = KINDS[n % len(KINDS)]
            signum = SIGNALS[(n // len(KINDS)) % len(SIGNALS)]
            threshold = rng.randint(1, n_lines)
            since = len(sb.request_log)
            tag = f"c{len(chains)}r{len(chain.runs)}"
            run = run_until(
                write_inputs(tmp, chain_config, streams=SELECTED, state=state, tag=tag),
                tmp / f"{tag}.err",
                _planner(kind, threshold, sb, since),
                signum=signum,
            )
            runs += 1
            chain.runs.append((state, run))
            if not run.killed:
                assert run.returncode == 0, run.stderr[-3000:]
                break
            kills[run.kill_reason] += 1
            if signum != signal.SIGKILL:
                chain.signals.append((signum, run))
            emitted_states = run.states()
            if emitted_states:
                state = emitted_states[-1].value
    return chains, kills


def test_at_least_twenty_kills_of_every_kind(world):
    kills = world["kills"]
    assert sum(kills.values()) >= min(20, world["min_kills"]), kills
    assert set(kills) == set(KINDS), kills
    # Every chain ended with a run that completed.
    for chain in world["chains"]:
        assert not chain.runs[-1][1].killed


def test_signalled_runs_end_with_whole_lines_a_final_state_and_the_signal_status(world):
    stopped = [entry for chain in world["chains"] for entry in chain.signals]
    # Kills cycle through the signals by four: 5 kills send SIGKILL and SIGTERM.
    wanted = {signal.SIGTERM, signal.SIGINT} if world["min_kills"] > 8 else {signal.SIGTERM}
    assert {signum for signum, _ in stopped} >= wanted
    clean_marks = bookmarks(world["clean"].states()[-1].value)
    for signum, run in stopped:
        assert run.cut_line is None, run.cut_line[:200]
        assert run.messages[-1].kind == "STATE", run.messages[-1]
        assert run.exit_seconds is not None
        assert run.exit_seconds < 5, run.exit_seconds
        if run.returncode == 0:
            # The signal came as the run was exiting, its work done: a complete run.
            assert bookmarks(run.messages[-1].value) == clean_marks
            continue
        assert run.returncode == 128 + signum, (run.returncode, run.stderr[-2000:])
        name = signal.Signals(signum).name
        said = [line for line in run.stderr.splitlines() if f"stopped by {name}" in line]
        assert len(said) == 1, run.stderr[-2000:]
        assert "next run resumes" in said[0], said
        assert "Traceback" not in run.stderr


def test_every_emitted_record_equals_the_oracle(world):
    expected = world["allowed"]
    for chain in world["chains"]:
        for _, run in chain.runs:
            for message in run.messages:
                if message.kind != "RECORD":
                    continue
                stream = message.stream
                key = record_key(stream, message.record)
                assert key in expected[stream], (stream, key)
                for name, value in expected[stream][key].items():
                    got = message.record.get(
                        name, (message.record.get("extra_metrics") or {}).get(name)
                    )
                    assert got == value, (stream, key, name, got, value)


def test_the_union_of_each_chain_holds_every_expected_record(world):
    expected = world["expected"]
    for n, chain in enumerate(world["chains"]):
        seen: dict[str, set] = defaultdict(set)
        for _, run in chain.runs:
            for message in run.messages:
                if message.kind == "RECORD":
                    seen[message.stream].add(record_key(message.stream, message.record))
        for stream in SELECTED:
            missing = expected[stream].keys() - seen[stream]
            assert not missing, (n, stream, len(missing), sorted(missing)[:5])


def _expected_by_partition(expected: dict) -> dict[str, dict[tuple, list]]:
    out: dict[str, dict[tuple, list]] = {}
    for stream, rows in expected.items():
        by_partition: dict[tuple, list] = defaultdict(list)
        for key in rows:
            record = dict(zip(keys_of(stream), key, strict=True))
            by_partition[context_key(stream, record)].append((bucket_order(record["time"]), key))
        out[stream] = dict(by_partition)
    return out


def test_no_state_message_claims_a_bucket_not_yet_emitted(world):
    expected = _expected_by_partition(world["expected"])
    checked = 0
    for n, chain in enumerate(world["chains"]):
        emitted: dict[str, set] = defaultdict(set)
        for r, (_, run) in enumerate(chain.runs):
            for message in run.messages:
                if message.kind == "RECORD":
                    emitted[message.stream].add(record_key(message.stream, message.record))
                    continue
                if message.kind != "STATE":
                    continue
                for stream, marks in bookmarks(message.value).items():
                    for partition, value in marks.items():
                        limit = bucket_order(value)
                        rows = expected[stream].get(partition, [])
                        missing = [
                            k for order, k in rows if order <= limit and k not in emitted[stream]
                        ]
                        assert not missing, (
                            f"chain {n} run {r}: STATE at line {message.index} has "
                            f"{stream} {dict(partition)} at {value}, but {len(missing)} "
                            f"buckets up to it were never emitted, e.g. {missing[:3]}"
                        )
                        checked += 1
    assert checked > 100


def test_resumed_runs_start_from_the_state_they_were_given(world):
    """Each resumed run's first STATE keeps every bookmark it was given (none moves back)."""
    for chain in world["chains"]:
        for given, run in chain.runs:
            if given is None or not run.states():
                continue
            before = bookmarks(given)
            after = bookmarks(run.states()[0].value)
            for stream, marks in before.items():
                for partition, value in marks.items():
                    assert partition in after.get(stream, {}), (stream, partition)
                    assert bucket_order(after[stream][partition]) >= bucket_order(value)


def test_the_completed_runs_bookmarks_equal_an_uninterrupted_run(world):
    clean_state = world["clean"].states()[-1].value
    for chain in world["chains"]:
        final = chain.runs[-1][1].states()[-1].value
        assert bookmarks(final) == bookmarks(clean_state)


def test_the_uninterrupted_run_equals_the_oracle(world):
    expected = world["expected"]
    by_stream: dict[str, dict] = defaultdict(dict)
    for message in world["clean"].messages:
        if message.kind == "RECORD":
            key = record_key(message.stream, message.record)
            assert key not in by_stream[message.stream], ("duplicate", message.stream, key)
            by_stream[message.stream][key] = message.record
    for stream in SELECTED:
        assert by_stream[stream].keys() == expected[stream].keys(), stream
    # A STATE message in the middle of the hourly stream: kills right after it matter.
    messages = world["clean"].messages
    assert any(
        a.kind == "STATE" and b.kind == "RECORD" and b.stream == "event_data_series_hourly"
        for a, b in itertools.pairwise(messages)
    )
