"""Running the tap: as a process, as the installed console script, until a signal, under Meltano.

Every way of running it writes its inputs with `write_inputs` and reads its stdout
with `tests.harness.messages`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness.messages import Message, TapRun, parse_line, parse_messages

ROOT = Path(__file__).resolve().parents[2]
#: The tap as a module of the test's interpreter.
TAP = [sys.executable, "-m", "tap_braze_series.tap"]
#: The installed console script, as a user runs it.
CLI = str(Path(sys.executable).with_name("tap-braze-series"))
#: The tap's plugin name in meltano.yml.
PLUGIN = "tap-braze-series"
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


# --- inputs, discovery, catalogs ---------------------------------------------------------


def write_inputs(
    tmp: Path,
    config: Mapping[str, Any],
    *,
    streams: Iterable[str] | None = None,
    catalog: Mapping[str, Any] | None = None,
    state: Any = None,
    tag: str = "run",
    executable: Iterable[str] = TAP,
) -> list[str]:
    """The tap's command line, with its input files written under `tmp`.

    `streams` selects those streams of the discovered catalog; `catalog` is written
    as given.
    """
    config_path = tmp / f"{tag}-config.json"
    config_path.write_text(json.dumps(config))
    command = [*executable, "--config", str(config_path)]
    if streams is not None:
        catalog = catalog_for(config, streams)
    if catalog is not None:
        catalog_path = tmp / f"{tag}-catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        command += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp / f"{tag}-state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    return command


def discover(config: Mapping[str, Any]) -> dict:
    """The tap's `--discover` catalog for `config` (fails the test if discovery fails)."""
    run = run_tap(config, args=["--discover"], timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


_catalog_cache: dict[str, dict] = {}


def catalog_for(config: Mapping[str, Any], streams: Iterable[str] | None) -> dict:
    """The tap's discovered catalog with only `streams` selected (all if None)."""
    key = json.dumps(config, sort_keys=True)
    if key not in _catalog_cache:
        _catalog_cache[key] = discover(config)
    catalog = json.loads(json.dumps(_catalog_cache[key]))
    wanted = None if streams is None else set(streams)
    for entry in catalog["streams"]:
        selected = wanted is None or entry["tap_stream_id"] in wanted
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = selected
    return catalog


# --- finished runs -----------------------------------------------------------------------


def run_tap(
    config: Mapping[str, Any],
    *,
    state: Any = None,
    streams: Iterable[str] | None = None,
    catalog: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    args: Iterable[str] = (),
    executable: Iterable[str] = TAP,
) -> TapRun:
    """Run the tap to its end; its Singer messages parsed (a sync's, not `--discover`'s)."""
    args = list(args)
    with tempfile.TemporaryDirectory() as tmp:
        command = write_inputs(
            Path(tmp),
            config,
            streams=streams,
            catalog=catalog,
            state=state,
            executable=executable,
        )
        proc = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    if not args:
        parse_messages(proc.stdout, run)
    return run


def run_cli(config: Mapping[str, Any], **kwargs: Any) -> TapRun:
    """`tap-braze-series --config ... [--catalog ...] [--state ...] [args]`, parsed."""
    kwargs.setdefault("timeout", 120)
    return run_tap(config, executable=[CLI], **kwargs)


# --- streamed runs: stop at a chosen line ---------------------------------------------


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


# --- Meltano ---------------------------------------------------------------------------


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
