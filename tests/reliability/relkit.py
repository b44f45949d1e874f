"""Helpers of the reliability tests: streamed tap runs, a mutating proxy, the oracle.

Everything here drives the tap as a user would (a subprocess with --config,
--catalog, --state) against the bundled sandbox, and imports no tap code: the
expected values come from the sandbox's own oracle (`sb.workspace`), so a tap bug
cannot hide in a shared helper.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from tap_braze_series.sandbox import Sandbox, SandboxConfig, Workspace
from tap_braze_series.sandbox import timeutil as sandbox_time
from tests.tapkit import (
    TAP,
    TapRun,
    catalog_for,
    days,
    expected_simple,
    parse_messages,
)

# --- the streams' keys and partitions, as the tap documents them ----------------------

#: stream -> (primary key with app_ids set, partition context columns, series path)
STREAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "canvas_data_series": (("canvas_id", "time"), ("canvas_id",), "/canvas/data_series"),
    "canvas_variant_data_series": (
        ("canvas_id", "variant_id", "time"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "canvas_step_data_series": (
        ("canvas_id", "step_id", "time"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "canvas_step_message_data_series": (
        ("canvas_id", "step_id", "time", "channel", "message_index"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "campaign_data_series": (("campaign_id", "time"), ("campaign_id",), "/campaigns/data_series"),
    "campaign_message_data_series": (
        ("campaign_id", "time", "channel", "variation_api_id"),
        ("campaign_id",),
        "/campaigns/data_series",
    ),
    "event_data_series": (
        ("event_name", "app_id", "time"),
        ("event_name", "app_id"),
        "/events/data_series",
    ),
    "event_data_series_hourly": (
        ("event_name", "app_id", "time"),
        ("event_name", "app_id"),
        "/events/data_series",
    ),
    "segment_data_series": (("segment_id", "time"), ("segment_id",), "/segments/data_series"),
    "session_data_series": (("app_id", "time"), ("app_id",), "/sessions/data_series"),
    "session_data_series_hourly": (("app_id", "time"), ("app_id",), "/sessions/data_series"),
    "purchase_quantity_series": (
        ("product", "app_id", "time"),
        ("product", "app_id"),
        "/purchases/quantity_series",
    ),
}
ENTITY_KEYS = {"canvases": ("id",), "campaigns": ("id",), "segments": ("id",), "events": ("name",)}


def unit_of(stream: str) -> str:
    return "hour" if stream.endswith("_hourly") else "day"


def keys_of(stream: str) -> tuple[str, ...]:
    return STREAMS[stream][0] if stream in STREAMS else ENTITY_KEYS[stream]


def partition_of(stream: str, record: Mapping[str, Any]) -> tuple:
    return tuple(record[c] for c in STREAMS[stream][1])


def record_key(stream: str, record: Mapping[str, Any]) -> tuple:
    return tuple(record[k] for k in keys_of(stream))


def bucket_order(value: str) -> dt.date | dt.datetime:
    """A `time` or bookmark as something comparable (hours as UTC instants)."""
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)


def bookmarks(state: Mapping[str, Any] | None) -> dict[str, dict[tuple, str]]:
    """stream -> {partition context (sorted items) -> replication_key_value}."""
    out: dict[str, dict[tuple, str]] = {}
    for stream, stream_state in ((state or {}).get("bookmarks") or {}).items():
        for entry in stream_state.get("partitions", []):
            value = entry.get("replication_key_value")
            if value is not None:
                out.setdefault(stream, {})[tuple(sorted(entry["context"].items()))] = value
    return out


def context_key(stream: str, record: Mapping[str, Any]) -> tuple:
    """The state partition (sorted context items) a record belongs to."""
    return tuple(sorted((c, record[c]) for c in STREAMS[stream][1]))


# --- sandboxes and configs -------------------------------------------------------------


def sandbox(**overrides: Any) -> Sandbox:
    base: dict[str, Any] = dict(
        seed=3,
        n_canvases=3,
        n_campaigns=2,
        n_events=3,
        n_segments=3,
        n_products=1,
        apps=("app_ios",),
    )
    return Sandbox(SandboxConfig(**{**base, **overrides}))


def tap_config(url: str, api_key: str, now: dt.datetime, start: str, **extra: Any) -> dict:
    return {
        "api_key": api_key,
        "api_url": url,
        "start_date": start,
        # The tap's clock is real time; the sandbox's "now" is fixed: bound the run by it.
        "end_date": now.isoformat(),
        "retry_backoff_seconds": 0.01,
        **extra,
    }


# --- the oracle ------------------------------------------------------------------------


def _metric_rows(source: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in set(skip)}


def oracle(
    ws: Workspace,
    stream: str,
    *,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
    app_ids: Iterable[str] = (),
    bookmarked: bool = False,
) -> dict[tuple, dict[str, Any]]:
    """Expected records of a stream: key -> the fields (and metrics) they must carry.

    Metrics Braze returns are compared wherever the tap puts them: a typed column
    or `extra_metrics` (see `assert_matches`). As a run without state exports them,
    or with `bookmarked`, as a resumed run may (see tests.tapkit.expected_simple).
    Canvas and campaign days follow the sandbox's reading of `ending_at` (no partial
    day under "ends_by").
    """
    apps = ("*", *app_ids)
    out: dict[tuple, dict[str, Any]] = {}
    day_list = [d for d in days(first, last) if ws.day_start(d) < now]
    if ws.config.ending_at_reading != "instant":
        day_list = [d for d in day_list if ws.day_start(d + dt.timedelta(days=1)) <= now]
    if stream.startswith("canvas_"):
        for canvas in (c for c in ws.canvases if not c.archived):
            for day in (d for d in day_list if d >= ws.created_day(canvas)):
                stat = ws.canvas_stats(canvas.id, day, now=now)
                t = day.isoformat()
                if stream == "canvas_data_series":
                    out[(canvas.id, t)] = {"canvas_name": canvas.name, **stat["total_stats"]}
                elif stream == "canvas_variant_data_series":
                    for vid, v in stat["variant_stats"].items():
                        out[(canvas.id, vid, t)] = {
                            "canvas_name": canvas.name,
                            "variant_name": v["name"],
                            **_metric_rows(v, ["name"]),
                        }
                elif stream == "canvas_step_data_series":
                    for sid, s in stat["step_stats"].items():
                        out[(canvas.id, sid, t)] = {
                            "canvas_name": canvas.name,
                            "step_name": s["name"],
                            **_metric_rows(s, ["name", "messages"]),
                        }
                elif stream == "canvas_step_message_data_series":
                    for sid, s in stat["step_stats"].items():
                        for channel, entries in s["messages"].items():
                            for i, entry in enumerate(entries):
                                out[(canvas.id, sid, t, channel, i)] = {
                                    "step_name": s["name"],
                                    **entry,
                                }
        return out
    if stream.startswith("campaign_"):
        for campaign in (c for c in ws.campaigns if not c.archived):
            for day in (d for d in day_list if d >= ws.created_day(campaign)):
                stat = ws.campaign_stats(campaign.id, day, now=now)
                t = day.isoformat()
                if stream == "campaign_data_series":
                    out[(campaign.id, t)] = _metric_rows(stat, ["time", "messages"])
                else:
                    for channel, entries in stat["messages"].items():
                        for entry in entries:
                            out[(campaign.id, t, channel, entry["variation_api_id"])] = entry
        return out
    unit = unit_of(stream)
    path = STREAMS[stream][2]
    if stream.startswith("event_"):
        entities = [({"event_name": e}, e) for e in ws.events]
        field_name = "count"
    elif stream.startswith("segment_"):
        entities = [
            ({"segment_id": s.id}, s.id) for s in ws.segments if s.analytics_tracking_enabled
        ]
        field_name, apps = "size", ("*",)
    else:
        entities = [({}, None)]
        field_name = "sessions"
    rows = expected_simple(
        ws,
        path,
        field_name,
        unit=unit,
        first=first,
        last=last,
        now=now,
        entities=entities,
        apps=apps,
        bookmarked=bookmarked,
    )
    for row in rows:
        if stream.startswith("segment_"):
            row.pop("app_id")
        out[record_key(stream, row)] = row
    return out


def assert_matches(
    stream: str, got: Mapping[tuple, Mapping], want: Mapping[tuple, Mapping]
) -> None:
    """Same keys; every expected field equal, in its column or in `extra_metrics`."""
    missing = want.keys() - got.keys()
    extra = got.keys() - want.keys()
    assert not missing, (stream, f"{len(missing)} missing e.g. {sorted(missing)[:3]}")
    assert not extra, (stream, f"{len(extra)} unexpected e.g. {sorted(extra)[:3]}")
    for key, fields in want.items():
        row = got[key]
        for name, value in fields.items():
            if name in row:
                assert row[name] == value, (stream, key, name, row[name], value)
            else:
                assert (row.get("extra_metrics") or {}).get(name) == value, (stream, key, name)


# --- the console script, as a user runs it ---------------------------------------------

CLI = str(Path(sys.executable).with_name("tap-braze-series"))


def run_cli(
    tmp: Path,
    config: Mapping[str, Any],
    *,
    catalog: Mapping[str, Any] | None = None,
    state: Any = None,
    args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> TapRun:
    """`tap-braze-series --config ... [--catalog ...] [--state ...] [args]`, parsed."""
    config_path = tmp / "config.json"
    config_path.write_text(json.dumps(config))
    command = [CLI, "--config", str(config_path), *args]
    if catalog is not None:
        catalog_path = tmp / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        command += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    if not args:
        parse_messages(proc.stdout, run)
    return run


# --- streamed runs: kill at a chosen line -----------------------------------------------


@dataclass
class Message:
    index: int  # 0-based line number in the run's stdout
    kind: str
    stream: str | None
    record: dict | None
    value: dict | None


def parse_line(index: int, line: str) -> Message:
    message = json.loads(line)
    return Message(
        index, message["type"], message.get("stream"), message.get("record"), message.get("value")
    )


@dataclass
class StreamedRun:
    messages: list[Message]  # what the run emitted before it was killed (all if not)
    killed: bool
    returncode: int | None
    stderr: str
    kill_reason: str = ""
    signalled_at: float | None = None  # time.time() when the signal was sent
    exit_seconds: float | None = None  # from the signal to the tap's exit
    cut_line: bytes | None = None  # a last line that did not end with a newline

    def states(self) -> list[Message]:
        return [m for m in self.messages if m.kind == "STATE"]


def write_inputs(
    tmp: Path,
    config: Mapping[str, Any],
    *,
    streams: Iterable[str] | None = None,
    state: Mapping[str, Any] | None = None,
    tag: str = "run",
) -> list[str]:
    """The tap's command line, with its input files written under `tmp`."""
    config_path = tmp / f"{tag}-config.json"
    config_path.write_text(json.dumps(config))
    command = [*TAP, "--config", str(config_path)]
    if streams is not None:
        catalog_path = tmp / f"{tag}-catalog.json"
        catalog_path.write_text(json.dumps(catalog_for(config, streams)))
        command += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp / f"{tag}-state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    return command


def run_until(
    command: list[str],
    stderr_path: Path,
    kill_at: Callable[[list[Message], Message], tuple[int, str] | None] | None = None,
    *,
    signum: int | None = signal.SIGKILL,
    when: Callable[[], bool] | None = None,
    paused_reader: float | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> StreamedRun:
    """Run the tap, reading stdout line by line; send it `signum` when told to.

    `kill_at(previous, current)` sees every message as it arrives; `when()` is
    asked every few milliseconds. When either says so, the tap gets `signum`:

    - SIGKILL: `kill_at` returns `(n, reason)` and the first `n` messages are
      kept as what the run emitted (a target that died with the tap had read
      exactly those);
    - another signal (SIGTERM, SIGINT): the tap stops by itself; everything it
      wrote until it exited is read and kept. With `paused_reader`, stdout is not
      read at all from the start until that many seconds after the signal (a
      slow target: the pipe is full when the signal comes);
    - None: no signal, the reader closes stdout instead (a target that exited).
    """
    messages: list[Message] = []
    decided = threading.Event()
    decision: list[tuple[int, str]] = []
    resume_reading = threading.Event()
    stop_reading = threading.Event()
    cut: list[bytes] = []
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, env={**os.environ, **(env or {})}
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            if paused_reader is not None:
                resume_reading.wait()
            fd, rest, index = stdout.fileno(), b"", 0
            # select + os.read, not readline: a reader blocked in read() would keep the
            # pipe open in the kernel after close(), and the tap would not see it closed.
            while not stop_reading.is_set():
                if not select.select([fd], [], [], 0.02)[0]:
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                *lines, rest = (rest + chunk).split(b"\n")
                for raw in lines:
                    message = parse_line(index, raw.decode())
                    index += 1
                    if kill_at is not None and not decided.is_set():
                        verdict = kill_at(messages, message)
                        if verdict is not None:
                            decision.append(verdict)
                            decided.set()
                            if signum in (signal.SIGKILL, None):
                                messages.append(message)
                                return
                    messages.append(message)
            if rest:
                cut.append(rest)  # cut mid-line

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and not decided.is_set() and time.monotonic() < deadline:
                if when is not None and when():
                    decision.append((0, "when"))
                    decided.set()
                    break
                time.sleep(0.005)
            if not decided.is_set():
                if proc.poll() is None:  # the timeout
                    proc.kill()
                resume_reading.set()
                reader.join(timeout=30)
                proc.wait()
                return StreamedRun(
                    messages, False, proc.returncode, stderr_path.read_text(), cut_line=_one(cut)
                )
            signalled_at, sent = time.time(), time.monotonic()
            if signum is None:
                stop_reading.set()
                reader.join(timeout=30)
                stdout.close()  # nothing reads it any more
            else:
                os.kill(proc.pid, signum)
            if paused_reader is not None:
                time.sleep(paused_reader)
                resume_reading.set()
            try:
                proc.wait(timeout=30)
            finally:
                exit_seconds = time.monotonic() - sent
            reader.join(timeout=30)
        finally:
            resume_reading.set()
            stop_reading.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=30)
            stdout.close()
    keep, reason = decision[0]
    if signum == signal.SIGKILL:
        return StreamedRun(messages[:keep], True, proc.returncode, "", reason)
    return StreamedRun(
        messages,
        True,
        proc.returncode,
        stderr_path.read_text(),
        reason,
        signalled_at=signalled_at,
        exit_seconds=exit_seconds,
        cut_line=_one(cut),
    )


def _one(items: list[bytes]) -> bytes | None:
    return items[0] if items else None


# --- a proxy that forwards to the sandbox and rewrites chosen responses ----------------

Mutation = Callable[[str, dict[str, str], dict[str, Any]], Any]


@dataclass
class ProxyLog:
    path: str
    params: dict[str, str]
    status: int
    mutated: bool


@dataclass
class Proxy:
    """A threaded HTTP proxy on 127.0.0.1:0 in front of the sandbox.

    `mutate(path, params, body)` may return a new JSON body (or None to forward
    the original). `fail(path, params)` may return an HTTP status to answer
    instead of forwarding (the upstream is not called).
    """

    upstream: str
    mutate: Mutation | None = None
    fail: Callable[[str, dict[str, str]], int | None] | None = None
    log: list[ProxyLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        with self._lock:
            for session in self._sessions:
                session.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        status = self.fail(split.path, params) if self.fail else None
        mutated = False
        headers: dict[str, str] = {}
        if status is not None:
            raw = json.dumps({"message": "Service Unavailable"}).encode()
            content_type = "application/json"
        else:
            upstream = self._session().get(
                self.upstream + h.path,
                headers={"Authorization": h.headers.get("Authorization", "")},
                timeout=60,
            )
            status, raw = upstream.status_code, upstream.content
            content_type = upstream.headers.get("Content-Type", "application/json")
            headers = {k: v for k, v in upstream.headers.items() if k.startswith("X-RateLimit")}
            if self.mutate is not None and status == 200:
                changed = self.mutate(split.path, params, json.loads(raw))
                if changed is not None:
                    raw, mutated = json.dumps(changed).encode(), True
        with self._lock:
            self.log.append(ProxyLog(split.path, params, status, mutated))
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)


# --- request windows as the sandbox saw them -------------------------------------------


def window_labels(
    ws: Workspace, now: dt.datetime, params: Mapping[str, str], unit: str
) -> set[str]:
    """The bucket labels a logged series request covered."""
    ending_at, _ = sandbox_time.parse_iso(params["ending_at"], ws.tz)
    starts = ws.window(now=now, length=int(params["length"]), unit=unit, ending_at=ending_at)
    return {ws.bucket_label(s, unit) for s in starts}


def request_matches(stream: str, params: Mapping[str, str], partition: tuple) -> bool:
    """Whether a logged request's parameters are those of a stream's partition."""
    columns = STREAMS[stream][1]
    wanted = dict(zip(columns, partition, strict=True))
    if "canvas_id" in wanted:
        return params.get("canvas_id") == wanted["canvas_id"]
    if "campaign_id" in wanted:
        return params.get("campaign_id") == wanted["campaign_id"]
    if unit_of(stream) != params.get("unit", "day"):
        return False
    if "event_name" in wanted and params.get("event") != wanted["event_name"]:
        return False
    if "segment_id" in wanted and params.get("segment_id") != wanted["segment_id"]:
        return False
    if "app_id" in wanted:
        app = wanted["app_id"]
        return params.get("app_id") == (None if app == "*" else app)
    return True


__all__ = [
    "STREAMS",
    "Message",
    "Proxy",
    "StreamedRun",
    "assert_matches",
    "bookmarks",
    "bucket_order",
    "context_key",
    "keys_of",
    "oracle",
    "partition_of",
    "record_key",
    "request_matches",
    "run_cli",
    "run_until",
    "sandbox",
    "tap_config",
    "unit_of",
    "window_labels",
    "write_inputs",
]
