"""tap-braze-series: settings, the stream list, and the command-line entry point."""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path, PurePath
from typing import Any, ClassVar, NoReturn

import click
import simplejson
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from singer_sdk.logging import StructuredFormatter
from typing_extensions import override

from tap_braze_series import redact, sdk, stopping
from tap_braze_series.catalog import SERIES
from tap_braze_series.check import check_streams
from tap_braze_series.client import BrazeConnectionError, BrazeError
from tap_braze_series.config import CONFIG_SCHEMA, Settings, SettingsError, unknown_settings
from tap_braze_series.runtime import Runtime
from tap_braze_series.state import StateError, validate_state
from tap_braze_series.streams import ENTITY_STREAMS, SeriesStream, stream_reads
from tap_braze_series.writer import (
    OutputError,
    StateFlushingWriter,
    flush_pending,
    unwritable_stdout,
)

logger = logging.getLogger("tap-braze-series")


class InvalidSettings(Exception):
    """A setting the SDK's own schema refuses (stream maps, flattening, ...): one line.

    Not a ConfigValidationError, which the SDK's command handlers log as several lines.
    """


class TapBrazeSeries(Tap):
    """Singer tap for Braze's time-series analytics exports."""

    name = "tap-braze-series"
    package_name = "tap-braze-series"
    config_jsonschema = CONFIG_SCHEMA
    # Primary keys depend on the settings (app_ids), so discovery reads them.
    dynamic_catalog = True
    message_writer_class = StateFlushingWriter
    message_writer: StateFlushingWriter
    # BATCH is left out: series streams emit per-partition records and state, which
    # the SDK's batch path would bypass.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *, state: Any = None, **kwargs: Any) -> None:
        # The SDK reads a string as the path of a state file: a JSON state holding a
        # string (or a list) is not one, and must not reach the SDK as such.
        if (
            state is not None
            and not isinstance(state, dict | PurePath)
            and not (isinstance(state, str) and Path(state).is_file())
        ):
            validate_state(state)
        sdk.quiet(logging.getLogger(self.name))
        super().__init__(state=state, **kwargs)
        stop = stopping.installed()
        if stop is not None:
            stop.finisher = self.write_final_state

    @override
    def _setup_signal_handlers(self) -> None:
        # The console script owns SIGTERM and SIGINT (see stopping); the SDK's handler
        # writes a STATE from inside the handler, in the middle of whatever write was
        # under way, then exits 0.
        pass

    def write_final_state(self, seconds: float) -> bool:
        """Write what is pending and the current STATE (it covers only written records).

        A run stopped by an error before it bookmarked anything has no progress to
        hand over: a STATE without bookmarks would only say that nothing happened
        (a signalled run still ends with its STATE, as the orchestrator expects).
        """
        stop = stopping.installed()
        stopped_by_error = stop is not None and stop.exit_code == 1
        if stopped_by_error and not self.state.get("bookmarks"):
            return self.message_writer.finish(None, seconds)
        return self.message_writer.finish(copy.deepcopy(self.state), seconds)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Our own checks first: they name the setting, say how to fix it and never
        # print a value (the SDK's schema errors print values, the API key included).
        # A SettingsError passes the SDK's handlers (which log each error, then "Config
        # validation failed", as more lines) to the console script's one error line.
        try:
            settings = Settings.parse(self._config)
        except SettingsError as exc:
            if raise_errors:
                raise
            return [str(exc)]
        for warning in unknown_settings(self._config):
            self.logger.warning(warning)
        # The SDK then checks its built-in settings (stream maps, flattening, ...) on
        # a copy whose own settings carry their parsed values: numbers from
        # environment variables arrive as strings and are fine.
        original = self._config
        self._config = {**original, **settings.typed_values(original)}
        try:
            return super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            raise InvalidSettings("; ".join(exc.errors) if exc.errors else str(exc)) from None
        finally:
            self._config = original

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        command.params.append(
            click.Option(
                ["--check"],
                is_flag=True,
                help=(
                    "Check which selected streams the API key can sync (all streams "
                    "without --catalog): one small request per endpoint, one line per "
                    "stream; exit 1 if a selected stream cannot sync."
                ),
            )
        )
        return command

    @classmethod
    @override
    def invoke(cls, *, check: bool = False, **kwargs: Any) -> None:  # type: ignore[override]
        if not check:
            super().invoke(**kwargs)
            return
        config = kwargs["config"]
        catalog = kwargs.get("catalog")
        tap = cls(
            config=config.config,
            catalog=None if catalog is None else sdk.load_json(catalog.read()),
            parse_env_config=config.parse_env,
            validate_config=True,
        )
        runtime = tap.runtime
        streams = list(tap.streams.values())
        sys.exit(
            check_streams(
                runtime.settings,
                streams,
                now=runtime.now,
                out=sys.stdout,
                streams_by_path=streams_by_path(runtime.settings),
            )
        )

    @cached_property
    def runtime(self) -> Runtime:
        settings = Settings.parse(self.config)
        return Runtime(settings, streams_by_path(settings))

    @override
    def sync_all(self) -> None:
        failed, unreachable = True, False
        try:
            if self.streams:  # loads the streams, and with them the series families
                self.runtime.log_costs()
            self._sync_streams()
            failed = False
        except BrazeConnectionError:
            unreachable = True
            raise
        finally:
            self.log_summary(failed=failed, unreachable=unreachable)

    def _sync_streams(self) -> None:
        """The SDK's sync_all, with each family's later members followed by its first."""
        sdk.sync_all(self, self._follow_families())

    def _follow_families(self) -> dict[str, Iterator[dict[str, Any]]]:
        """Have each family's first selected member advance the others' syncs.

        Not when the SDK's batch messages or a record limit shape the sync: those
        run through `sync()`.
        """
        followed: dict[str, Iterator[dict[str, Any]]] = {}
        for family in self.runtime.families.values():
            names = {member.name for member in family.members}
            members = [
                stream
                for stream in self.streams.values()
                if stream.name in names and stream.selected and isinstance(stream, SeriesStream)
            ]
            if any(
                stream.ABORT_AT_RECORD_COUNT is not None or stream.get_batch_config(stream.config)
                for stream in members
            ):
                continue
            for stream in members[1:]:
                steps = stream.sync_steps()
                family.follow(stream.name, steps)
                followed[stream.name] = steps
        return followed

    def log_summary(self, *, failed: bool, unreachable: bool = False) -> None:
        """The end-of-run block: what each synced stream emitted, and the requests."""
        runtime = self.runtime
        skipped = {
            name: sum(family.stats.issues.counts.values())
            for name, family in runtime.families.items()
        }
        holes_passed = sum(family.stats.holes_passed for family in runtime.families.values())
        summary = runtime.report.summary(
            self.streams, skipped, failed=failed, unreachable=unreachable, holes_passed=holes_passed
        )
        logger.info("%s", summary)

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        validate_state(state)
        super().load_state(state)

    @override
    def load_streams(self) -> list[Stream]:
        # The SDK syncs streams by name. A family's members take the places its names
        # give them, in the family's own order (see catalog.SERIES): the first to
        # sync drives the requests and advances the others (see _follow_families).
        streams = super().load_streams()
        for family in self.runtime.families.values():
            names = {member.name for member in family.members}
            places = [i for i, stream in enumerate(streams) if stream.name in names]
            by_name = {streams[i].name: streams[i] for i in places}
            ordered = [by_name[m.name] for m in family.members if m.name in by_name]
            for place, stream in zip(places, ordered, strict=True):
                streams[place] = stream
        return streams

    @override
    def discover_streams(self) -> list[Stream]:
        series = [SeriesStream(self, spec) for spec in SERIES]
        self.runtime.add_families(series)
        return [*(cls(tap=self) for cls in ENTITY_STREAMS), *series]


def streams_by_path(settings: Settings | None = None) -> dict[str, list[str]]:
    """Which streams read each path: what to deselect when the key lacks a permission."""
    result: dict[str, list[str]] = {}
    for reads in stream_reads(settings).values():
        for path in reads.paths():
            result.setdefault(path, []).append(reads.stream)
    return result


def main() -> None:
    """Console entry point: the SDK's CLI, with user errors as one line and no traceback.

    SIGTERM, SIGINT and a closed stdout stop the run (see stopping): it ends with a
    STATE covering only written records, one line saying so, and exit status 143,
    130 or 1.
    """
    _guard_standard_streams()  # first: before anything opens a file
    stop = stopping.install()
    code: int | str | None = 0
    try:
        try:
            TapBrazeSeries.cli()
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()  # what click or the SDK printed (a catalog) must reach stdout
    except stopping.RunStopped:
        pass
    except (BrazeError, OutputError) as exc:
        _fail(str(exc), stop, where=True)
    except (StateError, SettingsError, InvalidSettings) as exc:
        _fail(str(exc), stop)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG):
            raise
        _fail(unwritable_stdout(exc), stop)
    except ConfigValidationError as exc:
        _fail("; ".join(exc.errors) if exc.errors else str(exc), stop)
    except (json.JSONDecodeError, simplejson.JSONDecodeError) as exc:
        _fail(f"an input file (--config, --state or --catalog) is not valid JSON: {exc}", stop)
    if stop.is_set():
        _stopped(stop)
    sys.exit(code)


def _guard_standard_streams() -> None:
    """A closed stdout is an error; a closed stderr is replaced by /dev/null.

    Started with `>&-` or `2>&-`, the process has no file descriptor 1 or 2: the
    next file it opened (the spool, a socket) would take that number and receive
    the Singer messages or the log lines. Everything written to stdout and stderr
    then has the API key taken out (see redact.py).
    """
    try:
        os.fstat(1)
    except OSError:
        with contextlib.suppress(OSError):
            os.write(
                2,
                b"tap-braze-series: error: stdout is closed (the tap was started with >&- or "
                b"without an output); run it with stdout going to a target, a file or a pipe.\n",
            )
        os._exit(1)
    try:
        os.fstat(2)
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        if devnull != 2:
            os.dup2(devnull, 2)
            os.close(devnull)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the process's stderr
    if not isinstance(sys.stderr, redact.RedactingStream):
        sys.stderr = redact.RedactingStream(sys.stderr)
    if not isinstance(sys.stdout, redact.RedactingStream):
        sys.stdout = redact.RedactingStream(sys.stdout)


def _where_the_next_run_starts() -> str:
    """What the run's STATE messages let the next run do: said as it is, not assumed."""
    if StateFlushingWriter.states_written:
        return (
            "The STATE messages this run emitted are valid: the next run resumes from the last one."
        )
    return "This run emitted no STATE message: the next run starts where this one did."


def _stopped(stop: stopping.Stop) -> NoReturn:
    """End a stopped run: the final STATE if the reader still reads, one line, the exit."""
    if stop.reason == stopping.READER_GONE:
        stopping.say(
            "error: the reader of stdout closed the pipe (did the target stop?); the run "
            "stopped without sending more requests. The next run resumes from the last "
            "STATE the target kept."
        )
    else:
        seconds = stop.remaining(stopping.FINAL_WRITE_SECONDS)
        if stop.finisher is None or stop.finisher(seconds):
            outcome = "its last STATE message covers every record written"
        else:
            outcome = (
                "the reader did not take the final STATE in time: the last STATE it received "
                "covers every record before it"
            )
        stopping.say(
            f"{stop.reason}: the run stopped without sending more requests; {outcome}, so "
            "the next run resumes from there."
        )
    stopping.exit_now(stop.exit_code)


def _fail(message: str, stop: stopping.Stop, *, where: bool = False) -> NoReturn:
    # Workers still retrying or waiting stop at once, and are not waited for.
    stop.request(message, 1)
    if stop.finisher is not None:
        stop.finisher(stopping.FINAL_WRITE_SECONDS)
    else:
        flush_pending()
    if where:
        message = f"{message} {_where_the_next_run_starts()}"
    line = f"tap-braze-series: error: {message}"
    if _structured_logging():
        logger.error("%s", line)  # one JSON line at level "error", for Meltano's parser
    else:
        print(line, file=sys.stderr, flush=True)
    stopping.exit_now(1)


def _structured_logging() -> bool:
    """Whether stderr carries the SDK's JSON log lines (Meltano's `log_parser: singer-sdk`).

    A plain line among them is read as an INFO message: the error line must be a
    JSON record of level error instead.
    """
    return any(
        isinstance(handler.formatter, StructuredFormatter)
        for handler in logging.getLogger().handlers
    )


if __name__ == "__main__":
    main()
