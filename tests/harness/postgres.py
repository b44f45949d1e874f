"""A throwaway PostgreSQL cluster on 127.0.0.1 (the end-to-end tests' warehouse)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.running import ROOT
from tests.harness.sandboxes import free_port


def pg_bindir() -> Path:
    """PostgreSQL's server binaries: $PG_BIN, the newest /usr/lib/postgresql/*/bin,
    initdb on PATH, else those `make setup` installed from PyPI (pgserver) when the
    machine had none (the same order as the Makefile's)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for path in reversed(candidates):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for path in sorted(
        ROOT.glob(".tools/pgserver/lib/python3*/site-packages/pgserver/pginstall/bin")
    ):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make setup` (it "
        "installs them from PyPI when the machine has none), install the OS's postgresql "
        "package or set PG_BIN",
        pytrace=False,
    )


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, trust authentication."""

    bindir: Path
    base: Path
    port: int = 0
    user: str = "postgres"
    database: str = "postgres"
    host: str = "127.0.0.1"

    @property
    def _as_postgres(self) -> list[str]:
        # initdb refuses to run as root: run the server as the `postgres` OS user.
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser:
                return [runuser, "-u", "postgres", "--"]
            return ["su", "postgres", "-s", "/bin/sh", "-c"]  # pragma: no cover
        return []

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        prefix = self._as_postgres
        cmd = list(args)
        if prefix and prefix[0] == "su":  # pragma: no cover - no runuser
            import shlex

            cmd = [*prefix, shlex.join(cmd)]
        else:
            cmd = [*prefix, *cmd]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            cwd="/",
        )

    def start(self) -> None:
        data, sock = self.base / "data", self.base / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        os.chmod(self.base, 0o755)
        res = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if res.returncode != 0:
            pytest.fail(f"initdb failed:\n{res.stdout}\n{res.stderr}", pytrace=False)
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            res = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.base / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            )
            if res.returncode == 0:
                return
            last_error = res.stdout + res.stderr
            with contextlib.suppress(OSError):
                last_error += (self.base / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"PostgreSQL did not start:\n{last_error}", pytrace=False)

    def stop(self) -> None:
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": "unused", "PGCONNECT_TIMEOUT": "10"}
        proc = subprocess.run(
            [
                str(self.bindir / "psql")
                if (self.bindir / "psql").exists()
                else (shutil.which("psql") or "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == 0, f"psql failed: {sql}\n{proc.stderr}"
        return proc.stdout

    def rows(self, schema: str, table: str) -> list[dict]:
        out = self.psql(f'select coalesce(json_agg(t), \'[]\'::json) from "{schema}"."{table}" t')
        return json.loads(out)

    def target_env(self, schema: str) -> dict[str, str]:
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": "unused",
            "TARGET_POSTGRES_DATABASE": self.database,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    base = Path(tempfile.mkdtemp(prefix="braze-e2e-pg-"))
    cluster = PostgresCluster(pg_bindir(), base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
