"""Fixtures for the Braze sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tap_braze_series.sandbox import Sandbox
from tap_braze_series.sandbox.timeutil import UTC
from tests.harness.sandboxes import Client, sandbox_config

#: Fewer entities than the shared sandbox's: for private and time-zone sandboxes.
FEW = {"n_canvases": 12, "n_campaigns": 8, "n_segments": 10, "n_events": 30, "n_products": 5}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A shared, read-only sandbox (UTC, fixed now). Never mutate it in a test."""
    with Sandbox(sandbox_config("large")) as sb:
        yield sb
        assert sb.internal_errors == []


@pytest.fixture(scope="session")
def client(sandbox: Sandbox) -> Iterator[Client]:
    c = Client(sandbox)
    yield c
    c.close()


@pytest.fixture(scope="session")
def ws(sandbox: Sandbox):
    return sandbox.workspace


@pytest.fixture(scope="session")
def ny_sandbox() -> Iterator[Sandbox]:
    """A shared, read-only sandbox whose company time zone is America/New_York."""
    cfg = sandbox_config(
        "large", **FEW, timezone="America/New_York", now=datetime(2024, 11, 20, 12, tzinfo=UTC)
    )
    with Sandbox(cfg) as sb:
        yield sb
        assert sb.internal_errors == []


@pytest.fixture(scope="session")
def ny_client(ny_sandbox: Sandbox) -> Iterator[Client]:
    c = Client(ny_sandbox)
    yield c
    c.close()


@pytest.fixture
def fresh() -> Iterator[callable]:
    """Factory for private sandboxes a test may mutate: ``sb, client = fresh(**cfg)``."""
    started: list[tuple[Sandbox, Client]] = []

    def factory(**overrides: object) -> tuple[Sandbox, Client]:
        sb = Sandbox(sandbox_config("large", **{**FEW, **overrides})).start()
        c = Client(sb)
        started.append((sb, c))
        return sb, c

    yield factory
    for sb, c in started:
        c.close()
        sb.stop()
        assert sb.internal_errors == []
