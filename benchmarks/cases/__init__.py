"""The benchmark's cases, one module each: `run(bench)` measures and returns its section."""

from __future__ import annotations

from benchmarks.cases import (
    creation,
    memory,
    memory_large,
    ratelimit,
    rerun,
    scaling,
    state,
    tail,
    throughput,
)

#: name -> module, in the order they run (memory_large only when asked for).
CASES = {
    "scaling": scaling,
    "throughput": throughput,
    "memory": memory,
    "state": state,
    "ratelimit": ratelimit,
    "tail": tail,
    "creation": creation,
    "rerun": rerun,
    "memory_large": memory_large,
}
