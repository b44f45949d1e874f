"""Fixtures for the Braze sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest
import requests

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tap_braze_series.sandbox.timeutil import UTC

NOW = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)


class Client:
    """A tiny authenticated client: ``client.get(path, **params) -> requests.Response``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.api_key}"

    def get(self, path: str, timeout: float = 10, **params: object) -> requests.Response:
        return self.session.get(self.sandbox.url + path, params=params, timeout=timeout)

    def ok(self, path: str, **params: object) -> dict:
        resp = self.get(path, **params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["message"] == "success"
        return body

    def close(self) -> None:
        self.session.close()


def make_config(**overrides: object) -> SandboxConfig:
    base: dict = {
        "seed": 7,
        "n_canvases": 230,
        "n_campaigns": 120,
        "n_segments": 130,
        "n_events": 600,
        "n_products": 120,
        "now": NOW,
        "history_start": date(2023, 1, 1),
        # Most sandbox tests count points per bucket; the omitted zero buckets of count
        # series (the default, as recorded) have tests of their own.
        "count_zero_buckets": "filled",
    }
    base.update(overrides)
    return SandboxConfig(**base)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A shared, read-only sandbox (UTC, fixed now). Never mutate it in a test."""
    with Sandbox(make_config()) as sb:
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
    cfg = make_config(
        timezone="America/New_York",
        n_canvases=12,
        n_campaigns=8,
        n_segments=10,
        n_events=30,
        n_products=5,
        now=datetime(2024, 11, 20, 12, tzinfo=UTC),
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
        small = {
            "n_canvases": 12,
            "n_campaigns": 8,
            "n_segments": 10,
            "n_events": 30,
            "n_products": 5,
        }
        small.update(overrides)
        sb = Sandbox(make_config(**small)).start()
        c = Client(sb)
        started.append((sb, c))
        return sb, c

    yield factory
    for sb, c in started:
        c.close()
        sb.stop()
        assert sb.internal_errors == []
