"""Command line: ``python -m tap_braze_series.sandbox`` / ``braze-sandbox``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from .config import (
    BODY_FAULTS,
    CONNECTION_KINDS,
    DEFAULT_RATE_LIMITS,
    FAULT_KINDS,
    RATE_LIMIT_HEADER_MODES,
    STALL_KINDS,
    SandboxConfig,
)
from .points import DUPLICATE_VALUES, POINT_ORDERS
from .server import Sandbox
from .timeutil import parse_iso


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
    d = SandboxConfig()
    p = argparse.ArgumentParser(
        prog="braze-sandbox",
        description="Serve a deterministic fake of Braze's REST export API on localhost.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=8979, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seed of the deterministic workspace (default: %(default)s)",
    )
    p.add_argument(
        "--canvases",
        type=int,
        default=d.n_canvases,
        help="number of canvases (default: %(default)s)",
    )
    p.add_argument(
        "--campaigns",
        type=int,
        default=d.n_campaigns,
        help="number of campaigns (default: %(default)s)",
    )
    p.add_argument(
        "--segments",
        type=int,
        default=d.n_segments,
        help="number of segments (default: %(default)s)",
    )
    p.add_argument(
        "--events",
        type=int,
        default=d.n_events,
        help="number of custom events (default: %(default)s)",
    )
    p.add_argument(
        "--products",
        type=int,
        default=d.n_products,
        help="number of products (default: %(default)s)",
    )
    p.add_argument(
        "--apps",
        type=_csv,
        default=",".join(d.apps),
        help="comma-separated app ids accepted by app_id (default: %(default)s)",
    )
    p.add_argument(
        "--timezone",
        default=d.timezone,
        help="company time zone (IANA) that buckets follow (default: %(default)s)",
    )
    p.add_argument(
        "--now",
        default=None,
        help="fixed 'now' as an ISO datetime (naive = company time zone); "
        "default: the real current time",
    )
    p.add_argument(
        "--restatement-days",
        type=int,
        default=d.restatement_days,
        help="a bucket's values keep changing until it is this many days old "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--history-start",
        type=_date,
        default=d.history_start,
        help="first day with data, YYYY-MM-DD (default: %(default)s)",
    )
    p.add_argument(
        "--api-key", default=d.api_key, help="the only accepted Bearer key (default: %(default)s)"
    )
    p.add_argument(
        "--latency",
        type=float,
        default=d.latency,
        help="seconds added to every response (default: %(default)s)",
    )
    p.add_argument(
        "--tail-rate",
        type=float,
        default=d.tail_rate,
        help="fraction 0..1 of requests (the same ones every run) that take --tail-latency "
        "longer (default: %(default)s)",
    )
    p.add_argument(
        "--tail-latency",
        type=float,
        default=d.tail_latency,
        help="seconds a request of the tail takes on top of --latency (default: %(default)s)",
    )
    p.add_argument(
        "--rate-limit",
        type=_rate_limit,
        action="append",
        default=[],
        metavar="POOL=LIMIT/WINDOW_SECONDS",
        help="override a rate-limit pool, repeatable; pools: "
        + ", ".join(f"{k} (default {v[0]}/{int(v[1])})" for k, v in DEFAULT_RATE_LIMITS.items()),
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=d.fault_rate,
        help="probability 0..1 that a request gets an injected fault (default: %(default)s)",
    )
    p.add_argument(
        "--fault-kinds",
        type=_csv,
        default=",".join(d.fault_kinds),
        help="comma-separated fault kinds among "
        + ",".join(FAULT_KINDS)
        + " (the default) and the stalls "
        + ",".join(STALL_KINDS)
        + " (hang: never answer; stall: headers, then nothing; trickle: one byte per "
        "--trickle-interval) and the answers out of turn " + ",".join(CONNECTION_KINDS),
    )
    p.add_argument(
        "--fault-max-repeats",
        type=int,
        default=d.fault_max_repeats,
        help="the same request gets a fault at most this many times (default: %(default)s)",
    )
    p.add_argument(
        "--slow-seconds",
        type=float,
        default=d.slow_seconds,
        help="stall of a 'slow' fault in seconds (default: %(default)s)",
    )
    p.add_argument(
        "--point-order",
        choices=POINT_ORDERS,
        default=d.point_order,
        help="order of the points of series responses (default: %(default)s)",
    )
    p.add_argument(
        "--duplicate-rate",
        type=float,
        default=d.duplicate_rate,
        help="share 0..1 of the buckets of series responses sent more than once "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--duplicate-copies",
        type=int,
        default=d.duplicate_copies,
        help="extra copies of a duplicated bucket's point (default: %(default)s)",
    )
    p.add_argument(
        "--duplicate-values",
        choices=DUPLICATE_VALUES,
        default=d.duplicate_values,
        help="'different': the extra copies carry other numbers and come before the "
        "right point (default: %(default)s)",
    )
    p.add_argument(
        "--missing-rate",
        type=float,
        default=d.missing_rate,
        help="share 0..1 of the inner points of series responses left out (default: %(default)s)",
    )
    p.add_argument(
        "--missing-repeats",
        type=int,
        default=d.missing_repeats,
        metavar="N",
        help="leave points out only on the first N asks of each request (default: on every ask)",
    )
    p.add_argument(
        "--ending-at-reading",
        choices=["instant", "ends-by"],
        default=d.ending_at_reading.replace("_", "-"),
        help="how a datetime ending_at names the last bucket: 'instant', the bucket holding "
        "the instant just before it; 'ends-by', the last bucket that ends by it (a date is "
        "exclusive under both, as recorded) (default: %(default)s)",
    )
    p.add_argument(
        "--count-zero-buckets",
        choices=["omitted", "filled"],
        default=d.count_zero_buckets,
        help="whether event, session, KPI and purchase series leave out their zero buckets "
        "(as recorded) or answer a point with 0 for them (default: %(default)s)",
    )
    p.add_argument(
        "--trickle-interval",
        type=float,
        default=d.trickle_interval,
        help="seconds between two bytes of a 'trickle' fault (default: %(default)s)",
    )
    p.add_argument(
        "--hang-seconds",
        type=float,
        default=d.hang_seconds,
        help="a 'hang' or 'stall' fault closes the connection after this long, unless the "
        "client hangs up first (default: %(default)s)",
    )
    p.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="PERMISSION",
        help="answer 403 on endpoints needing this API-key permission, "
        "e.g. segments.data_series; repeatable",
    )
    _answer_fault_arguments(p, d)
    p.add_argument(
        "--rate-limit-headers",
        choices=RATE_LIMIT_HEADER_MODES,
        default=d.rate_limit_headers,
        help="send the X-RateLimit-* headers as they should be (valid) or in an odd form: "
        "missing, empty, a reset of nan, inf, in epoch milliseconds or a week away (far), "
        "a negative remainder, or Remaining nan with Limit inf (default: %(default)s)",
    )
    p.add_argument(
        "--ready-file",
        default=None,
        metavar="PATH",
        help="write the base URL to this file once listening",
    )
    return p


def _answer_fault_arguments(p: argparse.ArgumentParser, d: SandboxConfig) -> None:
    p.add_argument(
        "--401-without-key",
        dest="auth_error_echoes_key",
        action="store_false",
        default=d.auth_error_echoes_key,
        help="a 401 does not repeat the key sent and carries the pool's X-RateLimit-* values "
        "(by default it repeats it, with empty values, as a recorded real 401 does)",
    )
    p.add_argument(
        "--echo-key-in",
        type=lambda v: frozenset(int(x) for x in _csv(v)),
        default=d.echo_key_statuses,
        metavar="400,403",
        help="these statuses' messages repeat the key sent too",
    )
    p.add_argument(
        "--lists-ignore-page",
        action="store_true",
        default=d.lists_ignore_page,
        help="lists answer page 0 whatever page is asked: a list that never ends",
    )
    p.add_argument(
        "--body-fault",
        choices=BODY_FAULTS,
        default=d.body_fault,
        help="mangle 200 answers: a number out of range, text that is not UTF-8, or a "
        "gzip/deflate body inflating to --bomb-bytes",
    )
    p.add_argument(
        "--body-fault-match",
        default=d.body_fault_match,
        metavar="TEXT",
        help="only requests whose 'path?k=v&...' (sorted) contains TEXT (default: all)",
    )
    p.add_argument(
        "--body-fault-repeats",
        type=int,
        default=d.body_fault_repeats,
        metavar="N",
        help="only the first N asks of each request (default: every ask)",
    )
    p.add_argument(
        "--bomb-bytes",
        type=int,
        default=d.bomb_bytes,
        help="inflated size of a gzip_bomb / deflate_bomb answer (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    now = None
    if args.now:
        now, _ = parse_iso(args.now, ZoneInfo(args.timezone))
    return SandboxConfig(
        seed=args.seed,
        n_canvases=args.canvases,
        n_campaigns=args.campaigns,
        n_segments=args.segments,
        n_events=args.events,
        n_products=args.products,
        apps=tuple(args.apps),
        timezone=args.timezone,
        now=now,
        restatement_days=args.restatement_days,
        history_start=args.history_start,
        api_key=args.api_key,
        denied_permissions=frozenset(args.deny),
        latency=args.latency,
        tail_rate=args.tail_rate,
        tail_latency=args.tail_latency,
        rate_limits=dict(args.rate_limit) or None,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(args.fault_kinds),
        fault_max_repeats=args.fault_max_repeats,
        slow_seconds=args.slow_seconds,
        point_order=args.point_order,
        duplicate_rate=args.duplicate_rate,
        duplicate_copies=args.duplicate_copies,
        duplicate_values=args.duplicate_values,
        missing_rate=args.missing_rate,
        missing_repeats=args.missing_repeats,
        trickle_interval=args.trickle_interval,
        hang_seconds=args.hang_seconds,
        ending_at_reading=args.ending_at_reading.replace("-", "_"),
        count_zero_buckets=args.count_zero_buckets,
        auth_error_echoes_key=args.auth_error_echoes_key,
        echo_key_statuses=args.echo_key_in,
        lists_ignore_page=args.lists_ignore_page,
        body_fault=args.body_fault,
        body_fault_match=args.body_fault_match,
        body_fault_repeats=args.body_fault_repeats,
        bomb_bytes=args.bomb_bytes,
        rate_limit_headers=args.rate_limit_headers,
    )


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
