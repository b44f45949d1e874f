"""Where a profiled run's time goes: cProfile's functions grouped into the tap's and the
SDK's components, in µs per record (or per request, per partition) of the unprofiled run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.environment import ROOT
from benchmarks.reports import table

PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "writer: msgspec encode + stdout write/flush (SDK, tap writer.py)",
        (
            "tap_braze_series/writer",
            "singer_sdk/contrib/msgspec",
            "singer_sdk/singerlib/encoding",
            "singer_sdk/io_base",
            "msgspec",
            "BufferedWriter",
            "TextIOWrapper",
            "'write'",
            "'flush'",
        ),
    ),
    (
        "SDK messages (RecordMessage, to_dict, time_extracted)",
        (
            "singer_sdk/singerlib/messages",
            "singer_sdk/helpers/_util",
            "dataclasses",
            "singer_sdk/singerlib/_util",
        ),
    ),
    ("SDK stream maps", ("singer_sdk/mapper",)),
    (
        "SDK selection/conformance (pop_deselected, conform)",
        (
            "singer_sdk/helpers/_typing",
            "singer_sdk/helpers/_catalog",
            "singer_sdk/singerlib/catalog",
        ),
    ),
    ("SDK metrics/logging", ("singer_sdk/metrics", "logging/")),
    ("SDK state", ("singer_sdk/helpers/_state", "singer_sdk/streams/_state")),
    (
        "SDK record loop (core.py, tap)",
        ("singer_sdk/streams/core", "singer_sdk/tap_base", "singer_sdk/plugin_base"),
    ),
    ("tap shapes.py (shaping)", ("tap_braze_series/shapes",)),
    ("tap windows.py (time parsing/formatting)", ("tap_braze_series/windows",)),
    ("tap state.py (bookmarks)", ("tap_braze_series/state",)),
    ("tap feed.py (ordering, spool)", ("tap_braze_series/feed", "pickle", "tempfile")),
    ("tap streams.py / tap.py", ("tap_braze_series/streams", "tap_braze_series/tap")),
    ("tap client.py / ratelimit.py", ("tap_braze_series/client", "tap_braze_series/ratelimit")),
    (
        "HTTP: requests + urllib3 + http.client + socket",
        (
            "site-packages/requests/",
            "site-packages/urllib3/",
            "http/client",
            "socket",
            "http/cookiejar",
            "email/",
            "urllib/parse",
            "ssl",
            "select",
            "selectors",
        ),
    ),
    ("JSON decode (simplejson / json)", ("simplejson", "json/", "codecs")),
    ("benchmark harness (counting sink; not the tap's)", ("benchmarks/",)),
    ("waiting for worker threads (future.result)", ("concurrent/futures", "threading", "acquire")),
]


def _category(func: tuple[str, int, str]) -> str | None:
    filename, _, name = func
    text = f"{filename}:{name}"
    for label, needles in PROFILE_CATEGORIES:
        if any(n in text for n in needles):
            return label
    return None


def attribute(stats: Any) -> dict[str, list[float]]:
    """[self time, calls] per category; a builtin is charged to its caller's category."""
    totals: dict[str, list[float]] = {}

    def add(category: str, seconds: float, calls: float) -> None:
        entry = totals.setdefault(category, [0.0, 0.0])
        entry[0] += seconds
        entry[1] += calls

    for func, (_cc, nc, tt, _ct, callers) in stats.stats.items():
        if func[0] == "~":
            # Builtins (C functions): own category if it names one, else their callers'.
            own = _category(func)
            if own is not None and own.startswith(("writer", "waiting")):
                add(own, tt, nc)
                continue
            spent, counted = 0.0, 0
            for caller, values in callers.items():
                add(
                    _category(caller) or f"other: {Path(caller[0]).name}:{caller[2]}",
                    values[2],
                    values[1],
                )
                spent += values[2]
                counted += values[1]
            if tt - spent > 1e-6 or nc > counted:
                add(f"other: {func[2]}", max(tt - spent, 0.0), max(nc - counted, 0))
            continue
        add(_category(func) or f"other: {Path(func[0]).name}:{func[2]}", tt, nc)
    return totals


def short_path(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile_tables(
    stats: Any,
    records: int,
    unprofiled_cpu: float,
    top: int,
    unit: str = "record",
    correct: bool = True,
) -> dict[str, Any]:
    """Component and top-function tables, in µs per record of the unprofiled run.

    With `correct`, cProfile's own cost, estimated as (profiled total − unprofiled time)
    / calls, is subtracted from every function in proportion to its calls before the
    shares are taken; without it, the raw profile shares are scaled to the unprofiled
    time.
    """
    cats = attribute(stats)
    # Time blocked on futures is not CPU: left out (the unprofiled figure is CPU time).
    waiting = {k: v for k, v in cats.items() if k.startswith("waiting")}
    cats = {k: v for k, v in cats.items() if k not in waiting}
    total_tt = sum(v[0] for v in cats.values())
    total_calls = sum(v[1] for v in cats.values())
    per_call = max(total_tt - unprofiled_cpu, 0.0) / max(total_calls, 1) if correct else 0.0
    corrected = {k: max(tt - calls * per_call, 0.0) for k, (tt, calls) in cats.items()}
    scale = unprofiled_cpu / max(sum(corrected.values()), 1e-9)  # residual normalisation
    rows = []
    for name, (tt, calls) in sorted(cats.items(), key=lambda kv: -corrected[kv[0]]):
        est = corrected[name] * scale
        if est / max(unprofiled_cpu, 1e-9) < 0.005 and tt / total_tt < 0.01:
            continue
        row = [name, f"{100 * est / max(unprofiled_cpu, 1e-9):.1f}%", 1e6 * est / max(records, 1)]
        if correct:
            row.append(1e6 * tt * unprofiled_cpu / total_tt / max(records, 1))
        row += [calls / max(records, 1)]
        rows.append(row)
    headers = [
        "component (self time; builtins charged to their caller)",
        "share",
        f"µs/{unit}" + (" (overhead-corrected)" if correct else ""),
    ]
    if correct:
        headers.append(f"µs/{unit} (raw profile share)")
    headers.append(f"calls/{unit}")
    component_table = table(headers, rows)
    top_rows = []
    for func, (_cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[
        :top
    ]:
        filename, line, name = func
        est = max(tt - nc * per_call, 0.0) * scale
        top_rows.append(
            [f"`{short_path(filename)}:{line}({name})`", nc, tt, ct, 1e6 * est / max(records, 1)]
        )
    top_table = table(
        [
            "function",
            "calls",
            "tottime s (profiled)",
            "cumtime s (profiled)",
            f"µs/{unit}" + (" (overhead-corrected)" if correct else ""),
        ],
        top_rows,
    )
    return {
        "components": component_table,
        "top": top_table,
        "per_call_us": 1e6 * per_call,
        "profile_total": total_tt,
        "calls": total_calls,
        "waiting_s": sum(v[0] for v in waiting.values()),
        "categories": {
            k: {"profiled_s": v[0], "calls": v[1], "est_s": corrected[k] * scale}
            for k, v in cats.items()
        },
    }
