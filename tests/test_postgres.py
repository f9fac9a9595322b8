"""Runs against the machine's PostgreSQL server: schema update races and the CLI with credentials."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest

import runner_fsm
from tests.helpers import journal_records

pytestmark = pytest.mark.postgres


def count_rows(admin: Any, dataset: str, table: str) -> int:
    with admin.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{dataset}"."{table}"')
        return int(cursor.fetchone()[0])


def sleep_then(clock: Any, action: Any) -> None:
    """Make the injected sleep run `action` once, as another process would during the wait."""
    original = clock.sleep
    done = {"ran": False}

    def sleep(seconds: float, interrupt: Any = None) -> bool:
        if not done["ran"]:
            done["ran"] = True
            action()
        return bool(original(seconds, interrupt))

    clock.sleep = sleep


class TestSchemaUpdateRetried:
    def test_lost_lock_race(
        self, admin: Any, dataset: str, postgres_dsn: str, tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """A column add that times out on a lock held by another loader is retried and loads once."""
        dsn = f"{postgres_dsn}?options=-clock_timeout%3D300"
        pipeline = dlt.pipeline(
            dataset, destination=dlt.destinations.postgres(dsn), dataset_name=dataset,
            pipelines_dir=str(tmp_path / "pipelines"),
        )
        pipeline.run([{"i": 1}], table_name="numbers")
        other = psycopg2.connect(postgres_dsn)
        other.cursor().execute(f'LOCK TABLE "{dataset}".numbers IN ACCESS EXCLUSIVE MODE')
        sleep_then(clock, other.rollback)
        try:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
            ).run([{"i": 2, "j": "new column"}], table_name="numbers")
        finally:
            other.close()

        records = journal_records(journal_dir, dataset)
        failures = [r for r in records if r.get("trigger") == "step_failed"]
        assert count_rows(admin, dataset, "numbers") == 2
        assert len(failures) == 1
        assert failures[0]["exception"]["type"].endswith("SchemaUpdateTransientError")

    def test_terminal_schema_update_retried(
        self, admin: Any, dataset: str, postgres_dsn: str, tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """A SchemaUpdateError that dlt marks terminal is retried in the load step."""
        role = f"loader_{dataset}"[:60]
        with admin.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
            cursor.execute(f'CREATE ROLE "{role}" LOGIN')
        owner = dlt.pipeline(
            f"{dataset}_owner", destination=dlt.destinations.postgres(postgres_dsn),
            dataset_name=dataset, pipelines_dir=str(tmp_path / "pipelines"),
        )
        owner.run([{"i": 1}], table_name="numbers")
        with admin.cursor() as cursor:
            cursor.execute(f'GRANT USAGE, CREATE ON SCHEMA "{dataset}" TO "{role}"')
            cursor.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{dataset}" TO "{role}"')
        loader_dsn = postgres_dsn.replace("postgres:", f"{role}:", 1).replace("//postgres", f"//{role}")
        pipeline = dlt.pipeline(
            dataset, destination=dlt.destinations.postgres(loader_dsn), dataset_name=dataset,
            pipelines_dir=str(tmp_path / "pipelines"),
        )

        def hand_over_table() -> None:
            with admin.cursor() as cursor:
                cursor.execute(f'ALTER TABLE "{dataset}".numbers OWNER TO "{role}"')

        sleep_then(clock, hand_over_table)
        try:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
            ).run([{"i": 2, "j": "new column"}], table_name="numbers")
            rows = count_rows(admin, dataset, "numbers")
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE')
                cursor.execute(f'DROP OWNED BY "{role}"')
                cursor.execute(f'DROP ROLE IF EXISTS "{role}"')

        failures = [r for r in journal_records(journal_dir, dataset) if r.get("trigger") == "step_failed"]
        assert rows == 2
        assert len(failures) == 1
        assert failures[0]["exception"]["type"].endswith("SchemaUpdateTerminalError")
        assert failures[0]["exception"]["terminal"] is False


def write_project(root: Path, dataset: str) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "numbers.py").write_text(
        textwrap.dedent(
            """
            import dlt

            @dlt.source
            def numbers_source(count: int = 10):
                @dlt.resource(write_disposition="replace")
                def numbers():
                    yield from ({"i": i} for i in range(count))

                return numbers
            """
        )
    )
    project = root / "dlt.yml"
    project.write_text(
        textwrap.dedent(
            f"""
            sources:
              numbers:
                type: sources.numbers.numbers_source
                with_args: {{count: 25}}
            destinations:
              warehouse:
                type: postgres
            pipelines:
              {dataset}:
                source: numbers
                destination: warehouse
                dataset_name: {dataset}
                run_config:
                  retry_policy: {{type: backoff, max_attempts: 3, min: 1, max: 2}}
            """
        )
    )
    return project


def run_cli(project: Path, pipeline: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner_fsm.cli", "run", str(project), pipeline],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project.parent,
    )


class TestCliOnPostgres:
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESTINATION__")}
        env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        return env

    def test_credentials_from_environment(
        self, admin: Any, dataset: str, postgres_dsn: str, tmp_path: Path
    ) -> None:
        """The CLI loads into PostgreSQL with credentials from an environment variable."""
        project = write_project(tmp_path / "project", dataset)
        env = self.base_env()
        env["DESTINATION__WAREHOUSE__CREDENTIALS"] = postgres_dsn

        result = run_cli(project, dataset, env)

        assert result.returncode == 0, result.stderr
        assert count_rows(admin, dataset, "numbers") == 25

    def test_credentials_from_secrets_toml(
        self, admin: Any, dataset: str, postgres_dsn: str, tmp_path: Path
    ) -> None:
        """The CLI reads the credentials from `.dlt/secrets.toml` beside dlt.yml."""
        project = write_project(tmp_path / "project", dataset)
        (project.parent / ".dlt").mkdir()
        (project.parent / ".dlt" / "secrets.toml").write_text(
            f'[destination.warehouse]\ncredentials = "{postgres_dsn}"\n'
        )

        result = run_cli(project, dataset, self.base_env())

        assert result.returncode == 0, result.stderr
        assert count_rows(admin, dataset, "numbers") == 25

    def test_wrong_credentials_fail_once(self, dataset: str, tmp_path: Path) -> None:
        """A server that rejects the user fails the run with exit code 1 and a clear message."""
        project = write_project(tmp_path / "project", dataset)
        env = self.base_env()
        env["DESTINATION__WAREHOUSE__CREDENTIALS"] = (
            "postgresql://no_such_role_x:secret_pw_123@127.0.0.1:5432/test"
        )

        result = run_cli(project, dataset, env)

        records = journal_records(project.parent / "_data" / "journal", dataset)
        assert result.returncode == 1
        assert records[-1]["summary"]["tries"] == {"sync": 1}
        assert records[-1]["exception"]["terminal"] is True
        assert "no_such_role_x" in result.stderr
        assert "secret_pw_123" not in result.stderr
        assert "secret_pw_123" not in (project.parent / "_data" / "journal" / f"{dataset}.jsonl").read_text()
        assert records[-1]["to"] == "failed"
