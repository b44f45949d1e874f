"""Helpers of the end-to-end tests: Meltano as a subprocess, the oracle, PostgreSQL.

The tests run the real `meltano run` from the repository root, with the plugins that
`make setup` installed into `.meltano/`. Nothing here installs anything: a missing
Meltano or plugin fails the test with a message saying how to set up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig, Workspace

ROOT = Path(__file__).resolve().parents[2]
TAP = "tap-braze-series"
PLUGIN_EXECUTABLES = {
    "tap-braze-series": ".meltano/extractors/tap-braze-series/venv/bin/tap-braze-series",
    "target-jsonl": ".meltano/loaders/target-jsonl/venv/bin/target-jsonl",
    "target-duckdb": ".meltano/loaders/target-duckdb/venv/bin/target-duckdb",
    "target-postgres": ".meltano/loaders/target-postgres/venv/bin/target-postgres",
}
SETUP_HINT = "run `make setup` (or `make test`, which sets up first) from the repository root"

# Environment variables of the caller that would leak into Meltano's configuration.
_LEAKY_PREFIXES = (
    "MELTANO_",
    "TAP_BRAZE_SERIES_",
    "TARGET_JSONL_",
    "TARGET_DUCKDB_",
    "TARGET_POSTGRES_",
)


def meltano_executable() -> Path:
    return Path(os.environ.get("MELTANO_BIN", ROOT / ".tools/meltano/bin/meltano"))


def check_installed(plugins: Iterable[str]) -> Path:
    """Meltano's executable; fails the test (never skips) if it or a plugin is missing."""
    meltano = meltano_executable()
    missing = [] if meltano.exists() else [f"Meltano ({meltano})"]
    missing += [
        f"{p} ({ROOT / PLUGIN_EXECUTABLES[p]})"
        for p in plugins
        if not (ROOT / PLUGIN_EXECUTABLES[p]).exists()
    ]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; {SETUP_HINT}", pytrace=False)
    return meltano


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- sandbox

#: The sandbox's fixed "now" (mid-day: today's bucket is partial).
NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.timezone.utc)


def sandbox_config(**overrides: object) -> SandboxConfig:
    """A small workspace: a few entities of each kind, special event names included."""
    base: dict = {
        "seed": 11,
        "n_canvases": 3,  # the third is archived: two are synced
        "n_campaigns": 1,
        "n_segments": 4,  # the second has no analytics tracking: no size series
        "n_events": 4,  # 'app opened', 'checkout/completed', 'search & filter', 'utm=summer'
        "n_products": 1,
        "now": NOW,
        "restatement_days": 3,
    }
    base.update(overrides)
    return SandboxConfig(**base)


# --------------------------------------------------------------------------- Meltano


@dataclass
class MeltanoProject:
    """`meltano` in the repository, with its own system database (and so its own state)."""

    meltano: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    root: Path = ROOT  # the project's directory (see project_copy)

    @property
    def database_uri(self) -> str:
        return f"sqlite:///{self.workdir / 'meltano.db'}"

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
        env.update(
            {
                "MELTANO_DATABASE_URI": self.database_uri,
                "MELTANO_ENVIRONMENT": "dev",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_AUTO_INSTALL": "false",
                "NO_COLOR": "1",
            }
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        cmd = [str(self.meltano), *args]
        proc = subprocess.run(
            cmd,
            cwd=self.root,
            env=self.environ(extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        log = self.workdir / "meltano.log"
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ meltano {' '.join(args)}  -> {proc.returncode}\n")
            fh.write(proc.stdout)
            fh.write(proc.stderr)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
            pytest.fail(
                f"`meltano {' '.join(args)}` exited {proc.returncode}; "
                f"full log in {log}; last lines:\n{tail}",
                pytrace=False,
            )
        return proc

    def run(self, *blocks: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self("run", "--no-install", *blocks, **kwargs)

    def state_get(self, state_id: str) -> dict:
        proc = self("state", "get", state_id)
        return json.loads(proc.stdout)

    def state_list(self) -> list[str]:
        proc = self("state", "list")
        return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def project_copy(meltano: MeltanoProject, edit: Callable[[str], str]) -> MeltanoProject:
    """The repository's project with `edit` applied to its meltano.yml, in a directory
    of its own that shares the installed plugins (.meltano/) and the tap's sources."""
    root = meltano.workdir / "project"
    root.mkdir()
    (root / "meltano.yml").write_text(edit((ROOT / "meltano.yml").read_text()))
    (root / ".meltano").symlink_to(ROOT / ".meltano")
    return MeltanoProject(meltano.meltano, meltano.workdir, dict(meltano.env), root)


def tap_env(
    sandbox: Sandbox,
    *,
    start: dt.date,
    end: dt.date | dt.datetime,
    streams: Sequence[str],
    **settings: object,
) -> dict[str, str]:
    """Environment configuring tap-braze-series for `sandbox` and selecting `streams`."""
    env = {
        "TAP_BRAZE_SERIES_API_URL": sandbox.url,
        "TAP_BRAZE_SERIES_API_KEY": sandbox.api_key,
        "TAP_BRAZE_SERIES_START_DATE": start.isoformat(),
        "TAP_BRAZE_SERIES_END_DATE": end.isoformat(),
        "TAP_BRAZE_SERIES__SELECT": json.dumps([f"{s}.*" for s in streams]),
    }
    for name, value in settings.items():
        env[f"TAP_BRAZE_SERIES_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, list | dict) else str(value)
        )
    return env


def bookmarks(state: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """`meltano state get` output -> {stream: {partition key: bookmark}}."""
    out: dict[str, dict[str, str]] = {}
    for stream, entry in state.get("singer_state", {}).get("bookmarks", {}).items():
        parts = entry.get("partitions")
        if parts is None:
            if "replication_key_value" not in entry:
                continue  # a full-table stream: no bookmark
            parts = [dict(entry, context={})]
        out[stream] = {
            json.dumps(p.get("context", {}), sort_keys=True): p.get("replication_key_value")
            for p in parts
        }
    return out


# --------------------------------------------------------------------------- oracle

#: Columns compared per stream (the oracle knows them exactly).
KEYS = {
    "canvas_data_series": ("canvas_id", "time"),
    "event_data_series": ("event_name", "time"),
    "session_data_series": ("time",),
    "segment_data_series": ("segment_id", "time"),
    "canvases": ("id",),
    "events": ("name",),
}


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def expected_rows(
    ws: Workspace, stream: str, first: dt.date, last: dt.date, now: dt.datetime
) -> list[dict]:
    """What `stream` must hold for days first..last with the sandbox at `now`.

    As the sandbox's reading of Braze answers (see tests.tapkit.READINGS): under the
    "ends_by" reading of `ending_at` today's partial day never appears; a count
    series whose zero buckets Braze leaves out has no row before its first non-zero
    day, nor for a zero partial day.
    """
    span = days(first, last)
    if ws.config.ending_at_reading != "instant":
        span = [d for d in span if ws.day_start(d + dt.timedelta(days=1)) <= now]
    if stream == "canvas_data_series":
        rows = []
        for canvas in ws.active_canvases:
            for day in (d for d in span if d >= ws.created_day(canvas)):
                total = ws.canvas_stats(canvas.id, day, now=now)["total_stats"]
                rows.append(
                    {
                        "canvas_id": canvas.id,
                        "canvas_name": canvas.name,
                        "time": day.isoformat(),
                        **total,
                    }
                )
        return rows
    if stream == "event_data_series":
        return [
            row
            for event in ws.events
            for row in _as_answered(
                ws,
                "/events/data_series",
                now,
                [
                    {
                        "event_name": event,
                        "app_id": "*",
                        "time": day.isoformat(),
                        "count": ws.series_value("/events/data_series", day, entity=event, now=now),
                    }
                    for day in span
                ],
                "count",
            )
        ]
    if stream == "session_data_series":
        return _as_answered(
            ws,
            "/sessions/data_series",
            now,
            [
                {
                    "app_id": "*",
                    "time": day.isoformat(),
                    "sessions": ws.series_value("/sessions/data_series", day, now=now),
                }
                for day in span
            ],
            "sessions",
        )
    if stream == "segment_data_series":
        return [
            {
                "segment_id": seg.id,
                "time": day.isoformat(),
                "size": ws.series_value("/segments/data_series", day, entity=seg.id, now=now),
            }
            for seg in ws.segments
            if seg.analytics_tracking_enabled
            for day in span
        ]
    if stream == "canvases":
        active = {c.id for c in ws.active_canvases}
        return [row for row in ws.list_rows("canvases") if row["id"] in active]
    if stream == "events":
        return [{"name": event} for event in ws.events]
    raise ValueError(stream)


def _as_answered(
    ws: Workspace, path: str, now: dt.datetime, rows: list[dict], field: str
) -> list[dict]:
    """One partition's day rows as a run without state exports them: where Braze leaves
    out zero buckets, none before the first non-zero day and none for a zero partial day."""
    if not ws.omits_zero_buckets(path):
        return rows
    kept = []
    for row in rows:
        day = dt.date.fromisoformat(row["time"])
        partial = ws.day_start(day + dt.timedelta(days=1)) > now
        if row[field] == 0 and (partial or not kept):
            continue
        kept.append(row)
    return kept


def normalise(
    stream: str, rows: Iterable[Mapping[str, Any]], columns: Iterable[str] | None = None
) -> dict[tuple, dict]:
    """Rows keyed by primary key, restricted to `columns` (the expected row's columns).

    Fails on a duplicate key. Dates and timestamps become ISO strings.
    """
    out: dict[tuple, dict] = {}
    keys = KEYS[stream]
    for row in rows:
        cols = list(columns) if columns is not None else list(row)
        value = {c: _plain(row.get(c)) for c in cols}
        key = tuple(value[k] if k in value else _plain(row.get(k)) for k in keys)
        assert key not in out, f"{stream}: duplicate primary key {key}"
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    """Comparable form: dates as ISO strings, instants as UTC ISO strings."""
    if isinstance(value, str) and len(value) >= 19 and value[10] in "T " and value[13] == ":":
        with contextlib.suppress(ValueError):
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # a target that stores UTC instants without the offset
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def assert_rows_equal(
    stream: str, actual_rows: Iterable[Mapping[str, Any]], expected: list[dict]
) -> None:
    """`actual_rows` hold exactly the expected rows (same keys, same values)."""
    columns = list(expected[0]) if expected else None
    exp = normalise(stream, expected, columns)
    act = normalise(stream, actual_rows, columns)
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    assert not missing, f"{stream}: {len(missing)} expected rows missing, e.g. {missing[:3]}"
    assert not extra, f"{stream}: {len(extra)} unexpected rows, e.g. {extra[:3]}"
    wrong = []
    for key, want in exp.items():
        got = act[key]
        for col, value in want.items():
            other = got.get(col)
            if isinstance(value, float) or isinstance(other, float):
                same = (
                    other is not None
                    and value is not None
                    and abs(float(other) - float(value)) <= 1e-6 * max(1.0, abs(float(value)))
                )
            else:
                same = other == value
            if not same:
                wrong.append((key, col, value, other))
    assert not wrong, (
        f"{stream}: {len(wrong)} values differ from the oracle "
        f"(key, column, expected, loaded): {wrong[:5]}"
    )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Requested:
    path: str
    entity: str | None
    days: tuple[dt.date, ...]


def requested_days(sandbox: Sandbox) -> list[Requested]:
    """Day windows of the daily data-series requests the sandbox served (status 200)."""
    out = []
    for record in sandbox.request_log:
        if not record.path.endswith("data_series") or record.status != 200:
            continue
        params = record.params
        if params.get("unit", "day") != "day":
            continue
        ending_at = params["ending_at"]
        if len(ending_at) == 10:  # a date: the exclusive end
            last = dt.date.fromisoformat(ending_at) - dt.timedelta(days=1)
        else:
            end = dt.datetime.fromisoformat(ending_at).astimezone(sandbox.workspace.tz)
            last = (
                (end - dt.timedelta(microseconds=1)).date()
                if end.time() == dt.time(0)
                else end.date()
            )
        if "starting_at" in params:
            first = (
                dt.datetime.fromisoformat(params["starting_at"])
                .astimezone(sandbox.workspace.tz)
                .date()
            )
        else:
            first = last - dt.timedelta(days=int(params["length"]) - 1)
        entity = next(
            (
                params[k]
                for k in ("canvas_id", "campaign_id", "event", "segment_id", "product")
                if k in params
            ),
            None,
        )
        out.append(Requested(record.path, entity, tuple(days(first, last))))
    return out


# --------------------------------------------------------------------------- PostgreSQL


def pg_bindir() -> Path:
    """PostgreSQL's server binaries: $PG_BIN, the newest /usr/lib/postgresql/*/bin,
    initdb on PATH, else those `make setup` installed from PyPI (pgserver) when the
    machine had none (the same order as the Makefile's)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for path in reversed(candidates):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for path in sorted(
        ROOT.glob(".tools/pgserver/lib/python3*/site-packages/pgserver/pginstall/bin")
    ):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make setup` (it "
        "installs them from PyPI when the machine has none), install the OS's postgresql "
        "package or set PG_BIN",
        pytrace=False,
    )


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, trust authentication."""

    bindir: Path
    base: Path
    port: int = 0
    user: str = "postgres"
    database: str = "postgres"
    host: str = "127.0.0.1"

    @property
    def _as_postgres(self) -> list[str]:
        # initdb refuses to run as root: run the server as the `postgres` OS user.
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser:
                return [runuser, "-u", "postgres", "--"]
            return ["su", "postgres", "-s", "/bin/sh", "-c"]  # pragma: no cover
        return []

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        prefix = self._as_postgres
        cmd = list(args)
        if prefix and prefix[0] == "su":  # pragma: no cover - no runuser
            import shlex

            cmd = [*prefix, shlex.join(cmd)]
        else:
            cmd = [*prefix, *cmd]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            cwd="/",
        )

    def start(self) -> None:
        data, sock = self.base / "data", self.base / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        os.chmod(self.base, 0o755)
        res = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if res.returncode != 0:
            pytest.fail(f"initdb failed:\n{res.stdout}\n{res.stderr}", pytrace=False)
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            res = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.base / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            )
            if res.returncode == 0:
                return
            last_error = res.stdout + res.stderr
            with contextlib.suppress(OSError):
                last_error += (self.base / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"PostgreSQL did not start:\n{last_error}", pytrace=False)

    def stop(self) -> None:
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": "unused", "PGCONNECT_TIMEOUT": "10"}
        proc = subprocess.run(
            [
                str(self.bindir / "psql")
                if (self.bindir / "psql").exists()
                else (shutil.which("psql") or "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == 0, f"psql failed: {sql}\n{proc.stderr}"
        return proc.stdout

    def rows(self, schema: str, table: str) -> list[dict]:
        out = self.psql(f'select coalesce(json_agg(t), \'[]\'::json) from "{schema}"."{table}" t')
        return json.loads(out)

    def target_env(self, schema: str) -> dict[str, str]:
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": "unused",
            "TARGET_POSTGRES_DATABASE": self.database,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    base = Path(tempfile.mkdtemp(prefix="braze-e2e-pg-"))
    cluster = PostgresCluster(pg_bindir(), base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
