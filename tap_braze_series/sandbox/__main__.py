"""Command line: ``python -m tap_braze_series.sandbox`` / ``braze-sandbox``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from .config import (
    BODY_FAULTS,
    CONNECTION_KINDS,
    COUNT_ZERO_BUCKETS,
    DEFAULT_RATE_LIMITS,
    DUPLICATE_VALUES,
    FAULT_KINDS,
    POINT_ORDERS,
    STALL_KINDS,
    SandboxConfig,
)
from .rate_limits import RATE_LIMIT_HEADER_MODES
from .server import Sandbox
from .timeutil import ENDING_AT_READINGS, parse_iso


def _rate_limit(value: str) -> tuple[str, tuple[int, float]]:
    try:
        pool, rest = value.split("=", 1)
        limit, window = rest.split("/", 1)
        parsed = pool.strip(), (int(limit), float(window))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected POOL=LIMIT/WINDOW_SECONDS, got {value!r}"
        ) from None
    if parsed[0] not in DEFAULT_RATE_LIMITS:
        raise argparse.ArgumentTypeError(
            f"unknown pool {parsed[0]!r}; known: {', '.join(DEFAULT_RATE_LIMITS)}"
        )
    return parsed


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="braze-sandbox",
        description="Serve a deterministic fake of Braze's REST export API on localhost.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=8979, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    option = _config_option(p)
    option("--seed", "seed", "seed of the deterministic workspace (default: %(default)s)", type=int)
    for flag, what in (
        ("canvases", "canvases"),
        ("campaigns", "campaigns"),
        ("segments", "segments"),
        ("events", "custom events"),
        ("products", "products"),
    ):
        option(f"--{flag}", f"n_{flag}", f"number of {what} (default: %(default)s)", type=int)
    option(
        "--apps",
        "apps",
        "comma-separated app ids accepted by app_id (default: %(default)s)",
        type=_csv,
        default=",".join(_DEFAULTS.apps),
    )
    option(
        "--timezone",
        "timezone",
        "company time zone (IANA) that buckets follow (default: %(default)s)",
    )
    option(
        "--now",
        "now",
        "fixed 'now' as an ISO datetime (naive = company time zone); "
        "default: the real current time",
    )
    option(
        "--restatement-days",
        "restatement_days",
        "a bucket's values keep changing until it is this many days old (default: %(default)s)",
        type=int,
    )
    option(
        "--history-start",
        "history_start",
        "first day with data, YYYY-MM-DD (default: %(default)s)",
        type=_date,
    )
    option("--api-key", "api_key", "the only accepted Bearer key (default: %(default)s)")
    option(
        "--latency", "latency", "seconds added to every response (default: %(default)s)", type=float
    )
    option(
        "--tail-rate",
        "tail_rate",
        "fraction 0..1 of requests (the same ones every run) that take --tail-latency "
        "longer (default: %(default)s)",
        type=float,
    )
    option(
        "--tail-latency",
        "tail_latency",
        "seconds a request of the tail takes on top of --latency (default: %(default)s)",
        type=float,
    )
    option(
        "--rate-limit",
        "rate_limits",
        "override a rate-limit pool, repeatable; pools: "
        + ", ".join(f"{k} (default {v[0]}/{int(v[1])})" for k, v in DEFAULT_RATE_LIMITS.items()),
        type=_rate_limit,
        action="append",
        default=[],
        metavar="POOL=LIMIT/WINDOW_SECONDS",
    )
    option(
        "--fault-rate",
        "fault_rate",
        "probability 0..1 that a request gets an injected fault (default: %(default)s)",
        type=float,
    )
    option(
        "--fault-kinds",
        "fault_kinds",
        "comma-separated fault kinds among "
        + ",".join(FAULT_KINDS)
        + " (the default) and the stalls "
        + ",".join(STALL_KINDS)
        + " (hang: never answer; stall: headers, then nothing; trickle: one byte per "
        "--trickle-interval) and the answers out of turn " + ",".join(CONNECTION_KINDS),
        type=_csv,
        default=",".join(_DEFAULTS.fault_kinds),
    )
    option(
        "--fault-max-repeats",
        "fault_max_repeats",
        "the same request gets a fault at most this many times (default: %(default)s)",
        type=int,
    )
    option(
        "--slow-seconds",
        "slow_seconds",
        "stall of a 'slow' fault in seconds (default: %(default)s)",
        type=float,
    )
    _point_fault_options(option)
    option(
        "--ending-at-reading",
        "ending_at_reading",
        "how a datetime ending_at names the last bucket: 'instant', the bucket holding "
        "the instant just before it; 'ends-by', the last bucket that ends by it (a date is "
        "exclusive under both, as recorded) (default: %(default)s)",
        choices=[reading.replace("_", "-") for reading in ENDING_AT_READINGS],
        default=_DEFAULTS.ending_at_reading.replace("_", "-"),
    )
    option(
        "--count-zero-buckets",
        "count_zero_buckets",
        "whether event, session, KPI and purchase series leave out their zero buckets "
        "(as recorded) or answer a point with 0 for them (default: %(default)s)",
        choices=COUNT_ZERO_BUCKETS,
    )
    option(
        "--trickle-interval",
        "trickle_interval",
        "seconds between two bytes of a 'trickle' fault (default: %(default)s)",
        type=float,
    )
    option(
        "--hang-seconds",
        "hang_seconds",
        "a 'hang' or 'stall' fault closes the connection after this long, unless the "
        "client hangs up first (default: %(default)s)",
        type=float,
    )
    option(
        "--deny",
        "denied_permissions",
        "answer 403 on endpoints needing this API-key permission, "
        "e.g. segments.data_series; repeatable",
        action="append",
        default=[],
        metavar="PERMISSION",
    )
    _answer_fault_options(option)
    option(
        "--rate-limit-headers",
        "rate_limit_headers",
        "send the X-RateLimit-* headers as they should be (valid) or in an odd form: "
        "missing, empty, a reset of nan, inf, in epoch milliseconds or a week away (far), "
        "a negative remainder, or Remaining nan with Limit inf (default: %(default)s)",
        choices=RATE_LIMIT_HEADER_MODES,
    )
    p.add_argument(
        "--ready-file",
        default=None,
        metavar="PATH",
        help="write the base URL to this file once listening",
    )
    return p


_DEFAULTS = SandboxConfig()


def _config_option(p: argparse.ArgumentParser) -> Callable[..., None]:
    """An ``add_argument`` for the option that sets the SandboxConfig field ``field``.

    Its value lands under the field's name (``config_from_args`` reads them all back by
    name), its default is the field's default, its metavar the one argparse would give.
    """

    def option(flag: str, field: str, help: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", getattr(_DEFAULTS, field))
        if "choices" not in kwargs and kwargs.get("action") not in ("store_true", "store_false"):
            kwargs.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        p.add_argument(flag, dest=field, help=help, **kwargs)

    return option


def _point_fault_options(option: Callable[..., None]) -> None:
    option(
        "--point-order",
        "point_order",
        "order of the points of series responses (default: %(default)s)",
        choices=POINT_ORDERS,
    )
    option(
        "--duplicate-rate",
        "duplicate_rate",
        "share 0..1 of the buckets of series responses sent more than once (default: %(default)s)",
        type=float,
    )
    option(
        "--duplicate-copies",
        "duplicate_copies",
        "extra copies of a duplicated bucket's point (default: %(default)s)",
        type=int,
    )
    option(
        "--duplicate-values",
        "duplicate_values",
        "'different': the extra copies carry other numbers and come before the "
        "right point (default: %(default)s)",
        choices=DUPLICATE_VALUES,
    )
    option(
        "--missing-rate",
        "missing_rate",
        "share 0..1 of the inner points of series responses left out (default: %(default)s)",
        type=float,
    )
    option(
        "--missing-repeats",
        "missing_repeats",
        "leave points out only on the first N asks of each request (default: on every ask)",
        type=int,
        metavar="N",
    )


def _answer_fault_options(option: Callable[..., None]) -> None:
    option(
        "--401-without-key",
        "auth_error_echoes_key",
        "a 401 does not repeat the key sent and carries the pool's X-RateLimit-* values "
        "(by default it repeats it, with empty values, as a recorded real 401 does)",
        action="store_false",
    )
    option(
        "--echo-key-in",
        "echo_key_statuses",
        "these statuses' messages repeat the key sent too",
        type=lambda v: frozenset(int(x) for x in _csv(v)),
        metavar="400,403",
    )
    option(
        "--lists-ignore-page",
        "lists_ignore_page",
        "lists answer page 0 whatever page is asked: a list that never ends",
        action="store_true",
    )
    option(
        "--body-fault",
        "body_fault",
        "mangle 200 answers: a number out of range, text that is not UTF-8, or a "
        "gzip/deflate body inflating to --bomb-bytes",
        choices=BODY_FAULTS,
    )
    option(
        "--body-fault-match",
        "body_fault_match",
        "only requests whose 'path?k=v&...' (sorted) contains TEXT (default: all)",
        metavar="TEXT",
    )
    option(
        "--body-fault-repeats",
        "body_fault_repeats",
        "only the first N asks of each request (default: every ask)",
        type=int,
        metavar="N",
    )
    option(
        "--bomb-bytes",
        "bomb_bytes",
        "inflated size of a gzip_bomb / deflate_bomb answer (default: %(default)s)",
        type=int,
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The SandboxConfig of parsed arguments: every option carries its field's name."""
    fields = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(SandboxConfig)
        if hasattr(args, field.name)
    }
    fields["now"] = parse_iso(args.now, ZoneInfo(args.timezone))[0] if args.now else None
    fields["rate_limits"] = dict(args.rate_limits) or None
    fields["ending_at_reading"] = args.ending_at_reading.replace("-", "_")
    return SandboxConfig(**fields)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (ValueError, KeyError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sandbox = Sandbox(cfg, host=args.host, port=args.port)
    try:
        sandbox.start()
    except OSError as exc:
        print(f"braze-sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Braze sandbox listening on {sandbox.url} (api key: {cfg.api_key})", flush=True)
        if args.ready_file:
            tmp = f"{args.ready_file}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(sandbox.url + "\n")
            os.replace(tmp, args.ready_file)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("Braze sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
