"""Shared fixtures: telemetry off, an injected clock that never sleeps, real pipelines in tmp_path."""

from __future__ import annotations

import os

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

import socket
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import dlt
import psycopg2
import pytest
import structlog
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from structlog.testing import LogCapture

# the top-level packages of the projects that tests write, which each test imports anew
PROJECT_PACKAGES = ("sources", "hooks")

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432


class FakeClock:
    """A clock whose sleep returns at once and records the requested waits."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._monotonic = 1000.0

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float, interrupt: Optional[threading.Event] = None) -> bool:
        self.sleeps.append(seconds)
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A pipeline and dataset name of this test alone, so tests run in parallel and twice."""
    words = "".join(c if c.isalnum() else " " for c in request.node.name.lower()).split()
    base = "_".join(words)[:30].strip("_")
    return f"{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def duckdb_pipeline(tmp_path: Path, unique_name: str) -> Callable[..., Any]:
    """Return a factory of dlt pipelines that load into a duckdb file in tmp_path."""

    def make(name: Optional[str] = None, **kwargs: Any) -> Any:
        pipeline_name = name or unique_name
        database = tmp_path / "warehouse.duckdb"
        kwargs.setdefault("dataset_name", pipeline_name)
        return dlt.pipeline(
            pipeline_name=pipeline_name,
            pipelines_dir=str(tmp_path / "pipelines"),
            destination=dlt.destinations.duckdb(str(database)),
            **kwargs,
        )

    return make


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def log_events() -> Iterator[LogCapture]:
    """Capture structlog events as dicts."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    try:
        yield capture
    finally:
        structlog.configure(**old)


def _postgres_answers() -> bool:
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_dsn() -> str:
    """The DSN of the machine's PostgreSQL server. Skips when no server accepts a connection, except in CI."""
    if not _postgres_answers():
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server answers on {POSTGRES_HOST}:{POSTGRES_PORT} in CI")
        pytest.skip(f"no PostgreSQL server answers on {POSTGRES_HOST}:{POSTGRES_PORT}")
    return f"postgresql://postgres:trust_ignores_this@{POSTGRES_HOST}:{POSTGRES_PORT}/test"


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[Any]:
    """An autocommit connection of the superuser of the machine's PostgreSQL server."""
    connection = psycopg2.connect(postgres_dsn)
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def dataset(admin: Any, unique_name: str) -> Iterator[str]:
    """A dataset name of this test. Its schema and merge staging schema are dropped afterwards."""
    yield unique_name
    schemas = (unique_name, f"{unique_name}_staging")
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)"
            " AND pid <> pg_backend_pid()",
            (list(schemas),),
        )
        for schema in schemas:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def restore_process_state() -> Iterator[None]:
    """Restore dlt's run context, `sys.path`, the project modules and structlog after a test.

    Loading a project activates its run context, puts its folder on `sys.path` and imports its
    modules, and the command line configures structlog. All of them are process-wide.
    """
    plugged = Container()[PluggableRunContext]
    cookie = plugged.push_context()
    saved_path = list(sys.path)
    saved_logging = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved_logging)
        plugged.pop_context(cookie)
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n.split(".")[0] in PROJECT_PACKAGES]:
            del sys.modules[name]
