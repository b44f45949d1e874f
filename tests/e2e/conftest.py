"""Fixtures of the end-to-end tests (marked `e2e`): real `meltano run` subprocesses.

Set-up (Meltano in .tools/meltano, the plugins in .meltano/) is `make setup`'s job;
these fixtures only check it was done and fail with a clear message otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tap_braze_series.sandbox import Sandbox
from tests.harness.postgres import PostgresCluster, postgres_cluster
from tests.harness.running import PLUGIN_EXECUTABLES, MeltanoProject, check_installed
from tests.harness.sandboxes import READINGS, sandbox_config


@pytest.fixture(scope="session")
def meltano_bin() -> Path:
    return check_installed(PLUGIN_EXECUTABLES)


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The sandbox, as recorded; a test parametrised over READINGS gets each reading."""
    reading = getattr(request, "param", "recorded")
    with Sandbox(sandbox_config("meltano", **READINGS[reading])) as sb:
        yield sb
        assert sb.internal_errors == []


@pytest.fixture
def meltano(meltano_bin: Path, tmp_path: Path) -> MeltanoProject:
    """The repository's Meltano project with a system database (and state) of its own."""
    return MeltanoProject(meltano_bin, tmp_path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session."""
    with postgres_cluster() as cluster:
        yield cluster
