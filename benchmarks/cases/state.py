"""100 / 1,000 / 10,000 partitions (events daily, 3 days, latency 0): STATE bytes, STATE
messages and the tap's CPU, and whether they grow linearly."""

from __future__ import annotations

from benchmarks import reports
from benchmarks.measure import Bench, CaseResult


def _run(read):
    return lambda result, _row: read(result.run)


COLUMNS = [
    reports.LABEL,
    reports.Column("partitions", reports.ENTITIES.value),
    reports.Column("in final STATE", _run(lambda run: run.last_state_partitions)),
    reports.REQUESTS,
    reports.RECORDS,
    reports.Column("STATE msgs", _run(lambda run: run.state_msgs)),
    reports.Column("STATE bytes", _run(lambda run: run.state_bytes)),
    reports.Column("last STATE bytes", _run(lambda run: run.last_state_bytes)),
    reports.Column(
        "STATE bytes/partition",
        lambda result, _row: result.run.state_bytes / max(result.entities, 1),
    ),
    reports.TAP_CPU,
    reports.Column("ms CPU/partition", lambda result, row: 1000 * row["cpu"] / result.entities),
    reports.Column(
        "marginal ms CPU/partition (vs previous row)",
        lambda result, _row: result.extra.get("marginal_ms", float("nan")),
    ),
    reports.CALIBRATION,
    reports.WALL,
    reports.RSS,
    reports.FOREIGN,
]


def marginal(a: CaseResult, b: CaseResult) -> float:
    """The tap's CPU seconds per partition from run `a` to run `b`."""
    return (b.run.cpu - a.run.cpu) / (b.entities - a.entities)


def verdict(results: list[CaseResult]) -> str:
    """Growth of STATE bytes and of the marginal CPU per partition, ÷ linear."""
    base, last = results[0], results[-1]
    scale = last.entities / base.entities
    growth = last.run.state_bytes / base.run.state_bytes
    text = (
        f"STATE bytes grew {growth:,.1f}× for {scale:,.0f}× the partitions "
        f"({growth / scale:.2f} of linear)"
    )
    if len(results) >= 3:
        first = marginal(results[0], results[1])
        final = marginal(results[-2], results[-1])
        text += (
            f"; tap CPU per extra partition {1000 * first:.2f} ms "
            f"({results[0].entities:,}→{results[1].entities:,}) vs {1000 * final:.2f} ms "
            f"({results[-2].entities:,}→{results[-1].entities:,}): "
            f"{final / first:.2f}× (1.00 = linear)"
        )
    return text


def run(bench: Bench) -> str:
    size = bench.size
    results: list[CaseResult] = []
    for n in size["state_entities"]:
        runs = [
            bench.measure(
                "state",
                f"events n={n} {size['state_days']}d #{i + 1}",
                "events",
                n=n,
                days=size["state_days"],
                latency=0.0,
            )
            for i in range(size["state_repeat"])
        ]
        # The least CPU of the repeats: the host's other tenants only ever add to it.
        best = min(runs, key=lambda x: x.run.cpu)
        if results:
            best.extra["marginal_ms"] = 1000 * marginal(results[-1], best)
        results.append(best)
    return (
        "## State cost vs partitions (events daily, latency 0; best of "
        f"{size['state_repeat']} per size)\n\n"
        + reports.case_table(results, COLUMNS)
        + "\n\n"
        + verdict(results)
    )
