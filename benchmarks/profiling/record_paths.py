"""The tap's record path and its alternatives, and a replay of a run's responses."""

from __future__ import annotations

import contextlib
from typing import Any


class Replay:
    """Records every response of a real run, then serves them from memory.

    A replayed run does the main thread's work only (shaping, SDK, writing): the
    worker threads no longer compete for the GIL, so a wall-clock profile of the
    main thread is not inflated by GIL waits.
    """

    def __init__(self) -> None:
        self.bodies: dict[tuple, Any] = {}

    @staticmethod
    def key(path: str, params: Any) -> tuple:
        return path, tuple(sorted((k, str(v)) for k, v in (params or {}).items()))

    def recording(self, get: Any) -> Any:
        def wrapped(path: str, params: Any = None) -> Any:
            response = get(path, params)
            self.bodies[self.key(path, params)] = response
            return response

        return wrapped

    def replaying(self) -> Any:
        def wrapped(path: str, params: Any = None) -> Any:
            return self.bodies[self.key(path, params)]

        return wrapped


@contextlib.contextmanager
def record_path(variant: str) -> Any:
    """Run the tap with the writer, conformance level and per-record path of `variant`."""
    from singer_sdk.contrib.msgspec import MsgSpecWriter
    from singer_sdk.helpers.conform import TypeConformanceLevel
    from singer_sdk.io_base import SingerWriter

    from tap_braze_series.streams import BrazeStream
    from tap_braze_series.tap import TapBrazeSeries

    writer, level, sdk_path = RECORD_PATHS[variant]
    saved = (
        TapBrazeSeries.message_writer_class,
        BrazeStream.TYPE_CONFORMANCE_LEVEL,
        BrazeStream.records_pass_through,
    )
    TapBrazeSeries.message_writer_class = {
        "simplejson": SingerWriter,
        "msgspec": MsgSpecWriter,
        "tap": saved[0],
    }[writer]
    BrazeStream.TYPE_CONFORMANCE_LEVEL = getattr(TypeConformanceLevel, level)
    if sdk_path:
        BrazeStream.records_pass_through = lambda self: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        (
            TapBrazeSeries.message_writer_class,
            BrazeStream.TYPE_CONFORMANCE_LEVEL,
            BrazeStream.records_pass_through,
        ) = saved


# variant: (writer, TYPE_CONFORMANCE_LEVEL, whether every record takes the SDK's full path)
RECORD_PATHS: dict[str, tuple[str, str, bool]] = {
    "SDK defaults: simplejson writer (flush per line), RECURSIVE conformance": (
        "simplejson",
        "RECURSIVE",
        True,
    ),
    "msgspec writer (flush per line), RECURSIVE conformance": ("msgspec", "RECURSIVE", True),
    "msgspec writer (flush per line), conformance NONE": ("msgspec", "NONE", True),
    "tap writer (chunks flushed at STATE), conformance NONE": ("tap", "NONE", True),
    "the tap as shipped: + records written directly when the SDK's steps change nothing": (
        "tap",
        "NONE",
        False,
    ),
}
