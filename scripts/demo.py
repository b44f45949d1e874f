#!/usr/bin/env python3
"""The main job, end to end: Braze sandbox -> Meltano -> DuckDB, then a summary.

Run by `make demo` (which sets everything up first). Steps:

1. start the bundled Braze sandbox (`braze-sandbox`) on 127.0.0.1:8979, or on a free
   port when 8979 is taken, its clock stopped at the current time, and wait for its
   ready file;
2. `meltano run --full-refresh sandbox-to-duckdb` (tap-braze-series -> target-duckdb)
   into a new DuckDB file, the tap pointed at the sandbox through
   TAP_BRAZE_SERIES_API_URL and reading the last 30 days (TAP_BRAZE_SERIES_START_DATE,
   unless already set);
3. compare the rows of every DuckDB table with the RECORD counts the tap emitted (the
   `record_count` metrics in Meltano's log): every record must have landed, once;
4. `meltano run sandbox-to-duckdb` again, incremental from the bookmarks Meltano kept:
   it re-reads only the lookback window and upserts it (the row counts must not move);
5. print rows, emitted records, first and last day per stream, and the bookmarks;
6. stop the sandbox, also when a step failed.

Environment knobs: DEMO_DAYS (default 30), DEMO_SANDBOX_ARGS (extra `braze-sandbox`
options, e.g. "--events 30 --canvases 20"), MELTANO_BIN.
Exit code 0 only if the pipeline succeeded and every emitted record is in DuckDB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "output"
DUCKDB_FILE = OUTPUT / "braze_sandbox.duckdb"
SCHEMA = "braze"
JOB = "sandbox-to-duckdb"
STATE_ID = "dev:tap-braze-series-to-target-duckdb"
DEFAULT_PORT = 8979
# A modest workspace: every kind of entity, a few of each.
SANDBOX_ARGS = [
    "--canvases",
    "6",
    "--campaigns",
    "4",
    "--segments",
    "5",
    "--events",
    "8",
    "--products",
    "3",
]
METRIC = re.compile(r"METRIC: (\{.*\})\s*$")


def meltano_bin() -> Path:
    path = Path(os.environ.get("MELTANO_BIN", ROOT / ".tools/meltano/bin/meltano"))
    if not path.exists():
        sys.exit(f"demo: Meltano not found at {path}; run `make demo` (it installs it).")
    return path


def duckdb_python() -> Path:
    """target-duckdb's own interpreter: it has the very duckdb that wrote the file."""
    path = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
    if not path.exists():
        sys.exit(f"demo: {path} missing; run `make demo` (it runs `meltano install`).")
    return path


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def sandbox(workdir: Path, now: dt.datetime) -> Iterator[str]:
    """Run `braze-sandbox` as a subprocess, its clock stopped at `now`; yields its URL."""
    exe = Path(sys.executable).parent / "braze-sandbox"
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else 0
    ready = workdir / "sandbox.ready"
    log = workdir / "sandbox.log"
    extra = shlex.split(os.environ.get("DEMO_SANDBOX_ARGS", ""))
    cmd = [
        str(exe),
        "--port",
        str(port),
        "--ready-file",
        str(ready),
        "--now",
        now.isoformat(),
        *SANDBOX_ARGS,
        *extra,
    ]
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None:
                raise SystemExit(
                    f"demo: the sandbox exited ({proc.returncode}):\n"
                    + log.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                raise SystemExit("demo: the sandbox did not get ready within 30 s")
            time.sleep(0.05)
        url = ready.read_text().strip()
        print(f"Braze sandbox listening on {url} ({' '.join(SANDBOX_ARGS + extra)})")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"Braze sandbox stopped (exit code {proc.returncode})")


def meltano_log(full_refresh: bool) -> Path:
    return OUTPUT / f"demo-meltano-{'full' if full_refresh else 'incremental'}.log"


def run_meltano(meltano: Path, env: dict[str, str], *, full_refresh: bool) -> tuple[int, float]:
    args = ["run", *(["--full-refresh"] if full_refresh else []), JOB]
    log = meltano_log(full_refresh)
    shown = meltano.relative_to(ROOT) if meltano.is_relative_to(ROOT) else meltano
    print(f"$ {shown} {' '.join(args)}   (log: {log.relative_to(ROOT)})", flush=True)
    started = time.monotonic()
    cmd = [str(meltano), "--log-format=json", *args]
    with open(log, "wb") as log_fh:
        rc = subprocess.call(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return rc, time.monotonic() - started


def log_events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def emitted_records(events: list[dict]) -> Counter:
    """RECORD messages per stream, from the tap's `record_count` metrics (one per partition).

    Meltano parses the tap's structured log lines (meltano.yml: log_parser singer-sdk)
    and logs a metric's fields as `metric_info`; a plain line carries them in `event`.
    """
    counts: Counter = Counter()
    for event in events:
        if event.get("string_id") != "tap-braze-series":
            continue
        metric = event.get("metric_info")
        if not isinstance(metric, dict):
            match = METRIC.search(str(event.get("event", "")))
            if not match:
                continue
            metric = json.loads(match.group(1))
        if metric.get("metric") == "record_count":
            counts[metric["tags"]["stream"]] += int(metric["value"])
    return counts


DUCKDB_QUERY = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
catalog = con.execute("select current_database()").fetchone()[0]
out = {"duckdb": duckdb.__version__, "tables": {}}
tables = con.execute(
    "select table_name from information_schema.tables where table_schema = ? order by 1",
    [sys.argv[2]]).fetchall()
for (t,) in tables:
    q = f'"{catalog}"."{sys.argv[2]}"."{t}"'
    cols = [r[0] for r in con.execute(f"describe {q}").fetchall()]
    keys = [r[0] for r in con.execute(f"describe {q}").fetchall() if r[3] == "PRI"]
    rows = con.execute(f"select count(*) from {q}").fetchone()[0]
    distinct = (con.execute(f"select count(*) from (select distinct {', '.join(keys)} from {q})")
                .fetchone()[0] if keys else None)
    first = last = None
    if "time" in cols:
        first, last = con.execute(
            f"select min(time)::varchar, max(time)::varchar from {q}").fetchone()
    types = {r[0]: r[1] for r in con.execute(f"describe {q}").fetchall()}
    out["tables"][t] = {"rows": rows, "distinct_keys": distinct, "first": first, "last": last,
                        "types": types}
print(json.dumps(out))
"""


def duckdb_summary() -> dict:
    res = subprocess.run(
        [str(duckdb_python()), "-c", DUCKDB_QUERY, str(DUCKDB_FILE), SCHEMA],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        sys.exit(f"demo: querying {DUCKDB_FILE} failed:\n{res.stderr}")
    return json.loads(res.stdout)


# What target-duckdb 0.8 makes of the schemas: an integer with `maximum` (the int64
# range) is a BIGINT, a date-time a TIMESTAMP; a `format: date` string stays a VARCHAR
# (the loader maps no format to DATE), so day `time` and hourly `date` are ISO-8601
# text, in the same form: they join as they are and cast with `time::date`.
EXPECTED_TYPES = {
    "canvas_data_series": {"time": "VARCHAR", "entries": "BIGINT"},
    "event_data_series": {"time": "VARCHAR", "count": "BIGINT"},
    "event_data_series_hourly": {
        "time": "TIMESTAMP",
        "date": "VARCHAR",
        "hour": "SMALLINT",
        "count": "BIGINT",
    },
    "purchase_revenue_series": {"revenue": "DOUBLE"},
}


def column_type_problems(tables: dict) -> list[str]:
    problems = []
    for table, expected in EXPECTED_TYPES.items():
        types = tables.get(table, {}).get("types", {})
        for column, wanted in expected.items():
            if types.get(column) != wanted:
                problems.append(f"{table}.{column} is {types.get(column)}, not {wanted}")
    for table, info in tables.items():
        huge = [c for c, kind in info.get("types", {}).items() if kind == "HUGEINT"]
        if huge:
            problems.append(f"{table}: HUGEINT columns {huge} (an integer without maximum)")
    return problems


def bookmark_summary(meltano: Path, env: dict[str, str]) -> str:
    res = subprocess.run(
        [str(meltano), "state", "get", STATE_ID],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        state = json.loads(res.stdout)
    except ValueError:
        return f"(meltano state get {STATE_ID} failed: {res.stderr.strip()[-300:]})"
    values: dict[str, list[str]] = {}
    for name, stream in state.get("singer_state", {}).get("bookmarks", {}).items():
        for part in stream.get("partitions", [stream]):
            if part.get("replication_key_value") is not None:
                values.setdefault(name, []).append(str(part["replication_key_value"]))
    if not values:
        return f"Meltano state {STATE_ID}: no bookmarks"
    n = sum(len(v) for v in values.values())
    return (
        f"Meltano state {STATE_ID}: {n} bookmarks over {len(values)} series "
        f"streams, latest {max(max(v) for v in values.values())}"
    )


def fmt_day(value: str | None) -> str:
    return "-" if value is None else value[:16].replace(" ", "T")


def pipeline(meltano: Path, env: dict[str, str], *, full_refresh: bool) -> Counter | None:
    """One `meltano run`; the records the tap emitted per stream, None on failure."""
    rc, seconds = run_meltano(meltano, env, full_refresh=full_refresh)
    events = log_events(meltano_log(full_refresh))
    if rc != 0:
        print(f"\nmeltano run failed (exit code {rc}); last lines of its log:")
        for raw in meltano_log(full_refresh).read_text(errors="replace").splitlines()[-40:]:
            line = raw
            with contextlib.suppress(ValueError, AttributeError):
                line = str(json.loads(raw).get("event", raw))
            print("  ", line[:300])
        return None
    emitted = emitted_records(events)
    print(
        f"meltano run succeeded in {seconds:.1f} s: the tap emitted {sum(emitted.values())} records"
    )
    return emitted


def main() -> int:
    meltano = meltano_bin()
    duckdb_python()
    OUTPUT.mkdir(exist_ok=True)
    for path in (DUCKDB_FILE, Path(f"{DUCKDB_FILE}.wal")):
        path.unlink(missing_ok=True)
    days = int(os.environ.get("DEMO_DAYS", "30"))
    # The sandbox's clock is stopped at the demo's start, so that both runs see the
    # same data (today's partial bucket included).
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = (
        os.environ.get("TAP_BRAZE_SERIES_START_DATE")
        or (now.date() - dt.timedelta(days=days)).isoformat()
    )

    total_started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="braze-demo-") as tmp, sandbox(Path(tmp), now) as url:
        env = {
            **os.environ,
            "TAP_BRAZE_SERIES_API_URL": url,
            "TAP_BRAZE_SERIES_API_KEY": "sandbox-key",
            "TAP_BRAZE_SERIES_START_DATE": start,
            "TARGET_DUCKDB_FILEPATH": str(DUCKDB_FILE),
            "TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA": SCHEMA,
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        print(
            f"1. Full load from {start} to now ({now.isoformat()}) into "
            f"{DUCKDB_FILE.relative_to(ROOT)}"
        )
        emitted = pipeline(meltano, env, full_refresh=True)
        if emitted is None:
            return 1
        loaded = duckdb_summary()
        print("2. Incremental re-run from Meltano's bookmarks (lookback_days re-read, upserted)")
        emitted_again = pipeline(meltano, env, full_refresh=False)
        if emitted_again is None:
            return 1
        reloaded = duckdb_summary()
        state_line = bookmark_summary(meltano, env)

    tables = loaded["tables"]
    streams = sorted(set(emitted) | set(tables))
    print(
        f"\nLoaded into {DUCKDB_FILE.relative_to(ROOT)} (schema {SCHEMA}, "
        f"duckdb {loaded['duckdb']}) by the full load:"
    )
    header = f"{'stream':<34} {'rows':>8} {'emitted':>8}  {'first':<16}  {'last':<16}"
    print(header)
    print("-" * len(header))
    problems = []
    for stream in streams:
        info = tables.get(stream, {"rows": 0, "distinct_keys": None, "first": None, "last": None})
        n_emitted = emitted.get(stream, 0)
        flag = ""
        if info["rows"] != n_emitted:
            flag = "  <-- MISMATCH"
            problems.append(f"{stream}: {n_emitted} records emitted, {info['rows']} rows loaded")
        if info["distinct_keys"] is not None and info["distinct_keys"] != info["rows"]:
            flag += "  <-- DUPLICATE KEYS"
            problems.append(f"{stream}: {info['rows']} rows, {info['distinct_keys']} keys")
        print(
            f"{stream:<34} {info['rows']:>8} {n_emitted:>8}  {fmt_day(info['first']):<16}  "
            f"{fmt_day(info['last']):<16}{flag}"
        )
    total_rows = sum(t["rows"] for t in tables.values())
    total_emitted = sum(emitted.values())
    print("-" * len(header))
    print(f"{'total':<34} {total_rows:>8} {total_emitted:>8}")
    if not emitted:
        problems.append("no record_count metrics found in Meltano's log")

    again_rows = sum(t["rows"] for t in reloaded["tables"].values())
    print(
        f"\nIncremental re-run: {sum(emitted_again.values())} records re-read "
        f"(vs {total_emitted}), tables now hold {again_rows} rows"
    )
    for stream, info in reloaded["tables"].items():
        if info["rows"] != tables.get(stream, {}).get("rows"):
            problems.append(
                f"{stream}: {tables.get(stream, {}).get('rows')} rows after the "
                f"full load, {info['rows']} after the re-run"
            )
        if info["distinct_keys"] is not None and info["distinct_keys"] != info["rows"]:
            problems.append(f"{stream}: duplicate keys after the re-run")
    if not 0 < sum(emitted_again.values()) < total_emitted:
        problems.append("the re-run was not incremental")
    problems += column_type_problems(tables)
    print(state_line)
    print(f"Demo finished in {time.monotonic() - total_started:.1f} s")
    if problems:
        print("\nFAILED:")
        for p in problems:
            print("  -", p)
        return 1
    print(
        f"\nOK: all {total_emitted} records the tap emitted are in DuckDB "
        f"({len(tables)} tables, one row per primary key); the incremental re-run "
        "upserted its rows in place."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
