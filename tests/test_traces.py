"""Trace storage: one row per attempt, spill files and their replay, secrets kept out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import dlt
import duckdb
import orjson
import pytest
from structlog.testing import LogCapture

import runner_fsm
from runner_fsm.traces import spill_folder
from tests.helpers import journal_records


@pytest.fixture(autouse=True)
def load_step_fails_on_first_job_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make dlt's load step raise on the first transient job error instead of retrying inside."""
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")


def flaky_destination(failures: int) -> Any:
    """Return a dlt destination whose first `failures` calls raise."""
    calls = {"n": 0}

    @dlt.destination(batch_size=100, name="flaky")
    def flaky(items: Any, table: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(f"call {calls['n']} failed")

    return flaky


@dlt.resource(table_name="numbers")
def numbers(count: int = 10) -> Any:
    yield from ({"i": i} for i in range(count))


def duckdb_trace_pipeline(tmp_path: Path, name: str) -> Any:
    return dlt.pipeline(
        f"traces_{name}",
        destination=dlt.destinations.duckdb(str(tmp_path / "traces.duckdb")),
        dataset_name="run_traces",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def trace_rows(database: Path, dataset: str, table: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database)) as connection:
        return connection.execute(
            f'SELECT attempt, success, exception_type, operation FROM "{dataset}"."{table}"'
            " ORDER BY started_at"
        ).fetchall()


class TestTraceRows:
    def test_two_failures_then_success(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """Two failed attempts and a success store three rows, in order, with their exceptions."""
        pipeline = dlt.pipeline(
            unique_name, destination=flaky_destination(2), pipelines_dir=str(tmp_path / "pipelines")
        )
        traces = duckdb_trace_pipeline(tmp_path, unique_name)

        runner_fsm.runner(
            pipeline,
            store_trace_info=traces,
            retry_policy=runner_fsm.fixed(5),
            journal_dir=journal_dir,
            clock=clock,
        ).run(numbers())

        rows = trace_rows(tmp_path / "traces.duckdb", "run_traces", f"{unique_name}_trace")
        assert [row[0] for row in rows] == [1, 2, 3]
        assert [row[1] for row in rows] == [False, False, True]
        assert rows[0][2] is not None
        assert rows[1][2] is not None
        assert rows[2][2] is None
        assert {row[3] for row in rows} == {"attempt"}

    def test_default_trace_pipeline(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """`store_trace_info=True` writes to `_trace_<dataset>` on the main destination."""
        pipeline = duckdb_pipeline()

        runner_fsm.runner(
            pipeline, store_trace_info=True, journal_dir=journal_dir, clock=clock
        ).run(numbers())

        rows = trace_rows(
            tmp_path / "warehouse.duckdb",
            f"_trace_{pipeline.dataset_name}",
            f"{pipeline.pipeline_name}_trace",
        )
        assert [(row[0], row[1]) for row in rows] == [(1, True)]

    def test_schema_stable_across_runs(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """A failed and a successful run leave the same columns and no child tables."""
        pipeline = duckdb_pipeline()
        database = tmp_path / "warehouse.duckdb"
        runner = runner_fsm.runner(
            pipeline, store_trace_info=True, journal_dir=journal_dir, clock=clock
        )
        runner.run(numbers())
        dataset = f"_trace_{pipeline.dataset_name}"
        before = table_columns(database, dataset)

        with pytest.raises(Exception, match="extract failed"):
            runner.run(failing_resource())
        runner.run(numbers(20))

        assert table_columns(database, dataset) == before
        assert len(trace_rows(database, dataset, f"{pipeline.pipeline_name}_trace")) == 3


@dlt.resource(table_name="numbers")
def failing_resource() -> Any:
    yield {"i": 1, "nested": {"list": [1, 2]}}
    raise RuntimeError("extract failed")


def table_columns(database: Path, dataset: str) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(database)) as connection:
        return connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? ORDER BY table_name, column_name",
            [dataset],
        ).fetchall()


def filesystem_trace_pipeline(tmp_path: Path, bucket: Path) -> Any:
    return dlt.pipeline(
        f"fs_traces_{abs(hash(str(tmp_path))) % 10**8}",
        destination=dlt.destinations.filesystem(bucket_url=bucket.as_uri()),
        dataset_name="traces",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def filesystem_rows(bucket: Path, table: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((bucket / "traces" / table).glob("*.jsonl*")):
        import gzip

        import orjson

        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            rows += [orjson.loads(line) for line in handle.read().splitlines() if line.strip()]
    return rows


class TestSpillAndReplay:
    def test_unavailable_then_available(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """Traces spill while the bucket cannot be written and load once it can, each once."""
        bucket = tmp_path / "bucket"
        bucket.write_text("a file where the bucket folder should be")
        pipeline = duckdb_pipeline()
        traces = filesystem_trace_pipeline(tmp_path, bucket)
        runner = runner_fsm.runner(
            pipeline, store_trace_info=traces, journal_dir=journal_dir, clock=clock
        )

        runner.run(numbers())
        spilled = sorted(p.name for p in spill_folder(pipeline).glob("*_trace.json"))
        bucket.unlink()
        runner.run(numbers())

        table = f"{pipeline.pipeline_name}_trace"
        rows = filesystem_rows(bucket, table)
        keys = [(row["transaction_id"], row["attempt"]) for row in rows]
        records = journal_records(journal_dir, pipeline.pipeline_name)
        spill_records = [r for r in records if r.get("spilled")]
        assert len(spilled) == 1
        assert len(spill_records) == 1
        assert len(rows) == 2
        assert len(set(keys)) == 2
        assert list(spill_folder(pipeline).glob("*_trace.json")) == []

    def test_replay_twice_stores_once(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """A spill file replayed again after a crash before its deletion is not stored twice."""
        bucket = tmp_path / "bucket"
        bucket.write_text("not a folder")
        pipeline = duckdb_pipeline()
        traces = filesystem_trace_pipeline(tmp_path, bucket)
        runner = runner_fsm.runner(
            pipeline, store_trace_info=traces, journal_dir=journal_dir, clock=clock
        )
        runner.run(numbers())
        spill_file = next(spill_folder(pipeline).glob("*_trace.json"))
        copy = tmp_path / "copy.json"
        shutil.copy(spill_file, copy)
        bucket.unlink()
        runner.run(numbers())

        shutil.copy(copy, spill_file)
        runner.run(numbers())

        rows = filesystem_rows(bucket, f"{pipeline.pipeline_name}_trace")
        keys = [(row["transaction_id"], row["attempt"]) for row in rows]
        assert len(rows) == 3
        assert len(set(keys)) == 3

    def test_clean_folder_keeps_spill_files(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """`run_from_clean_folder` keeps spill files that could not be replayed yet."""
        bucket = tmp_path / "bucket"
        bucket.write_text("not a folder")
        pipeline = duckdb_pipeline()
        traces = filesystem_trace_pipeline(tmp_path, bucket)
        runner_fsm.runner(
            pipeline, store_trace_info=traces, journal_dir=journal_dir, clock=clock
        ).run(numbers())

        runner_fsm.runner(
            pipeline,
            store_trace_info=traces,
            run_from_clean_folder=True,
            journal_dir=journal_dir,
            clock=clock,
        ).run(numbers())

        assert len(list(spill_folder(pipeline).glob("*_trace.json"))) == 2


class TestSharedTracePipeline:
    def test_two_pipelines_one_trace_pipeline(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """Data goes to duckdb, traces of two pipelines to one filesystem trace pipeline."""
        bucket = tmp_path / "bucket"
        traces = filesystem_trace_pipeline(tmp_path, bucket)
        first = duckdb_pipeline(name=f"first_{abs(hash(str(tmp_path))) % 10**8}")
        second = duckdb_pipeline(name=f"second_{abs(hash(str(tmp_path))) % 10**8}")

        for pipeline in (first, second):
            runner_fsm.runner(
                pipeline, store_trace_info=traces, journal_dir=journal_dir, clock=clock
            ).run(numbers())

        for pipeline in (first, second):
            rows = filesystem_rows(bucket, f"{pipeline.pipeline_name}_trace")
            assert [row["pipeline_name"] for row in rows] == [pipeline.pipeline_name]


class TestSecretsKeptOut:
    @pytest.mark.postgres
    def test_password_appears_nowhere(
        self,
        postgres_dsn: str,
        tmp_path: Path,
        unique_name: str,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        """A password from the credentials, also inside an exception message, is scrubbed."""
        password = "Zq8_secret_pass_41"
        dsn = postgres_dsn.replace("trust_ignores_this", password)
        pipeline = dlt.pipeline(
            unique_name,
            destination=dlt.destinations.postgres(dsn),
            dataset_name=unique_name,
            pipelines_dir=str(tmp_path / "pipelines"),
        )

        @dlt.resource(table_name="numbers")
        def leaky() -> Any:
            yield {"i": 1}
            raise RuntimeError(f"cannot reach {dsn}, password was {password}")

        bucket = tmp_path / "bucket"
        bucket.write_text("not a folder")
        with pytest.raises(Exception, match="cannot reach"):
            runner_fsm.runner(
                pipeline,
                store_trace_info=filesystem_trace_pipeline(tmp_path, bucket),
                journal_dir=journal_dir,
                clock=clock,
            ).run(leaky())
        bucket.unlink()
        runner_fsm.runner(
            pipeline, store_trace_info=True, journal_dir=journal_dir, clock=clock
        ).run(numbers())

        journal_text = (journal_dir / f"{unique_name}.jsonl").read_text()
        spill_texts = [p.read_text() for p in spill_folder(pipeline).glob("*.json")]
        with pipeline.sql_client() as client:
            stored = client.execute_sql(
                f'SELECT * FROM "_trace_{unique_name}"."{unique_name}_trace"'
            )
            for schema in (unique_name, f"_trace_{unique_name}"):
                client.execute_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        captured = capfd.readouterr()
        assert password not in journal_text
        assert all(password not in text for text in spill_texts)
        assert password not in str(stored)
        assert password not in str(log_events.entries)
        assert password not in captured.err


class TestTracePipelineFromProject:
    def test_named_pipeline_in_dlt_yml(
        self, tmp_path: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`store_trace_info: <name>` in dlt.yml sends traces to that pipeline's filesystem."""
        import subprocess
        import sys
        import textwrap

        project = tmp_path / "project"
        (project / "sources").mkdir(parents=True)
        (project / "sources" / "__init__.py").write_text("")
        (project / "sources" / "numbers.py").write_text(
            "import dlt\n\n"
            "@dlt.resource(table_name='numbers')\n"
            "def numbers():\n"
            "    yield from ({'i': i} for i in range(7))\n"
        )
        bucket = tmp_path / "bucket"
        (project / "dlt.yml").write_text(
            textwrap.dedent(
                f"""
                sources:
                  numbers: {{type: sources.numbers.numbers}}
                destinations:
                  warehouse: {{type: duckdb}}
                  trace_bucket: {{type: filesystem, bucket_url: "{bucket.as_uri()}"}}
                pipelines:
                  {unique_name}:
                    source: numbers
                    destination: warehouse
                    dataset_name: data
                    run_config: {{store_trace_info: traces_of_runs}}
                  traces_of_runs:
                    destination: trace_bucket
                    dataset_name: traces
                """
            )
        )
        env = dict(__import__("os").environ, RUNTIME__DLTHUB_TELEMETRY="false")

        result = subprocess.run(
            [sys.executable, "-m", "runner_fsm.cli", "run", str(project / "dlt.yml"), unique_name],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

        rows = filesystem_rows(bucket, f"{unique_name}_trace")
        assert result.returncode == 0, result.stderr
        assert [row["success"] for row in rows] == [True]
        assert rows[0]["row_counts"]["numbers"] == 7


class TestCliErrorLineScrubbed:
    def test_final_error_line_has_no_secret(self, tmp_path: Path, unique_name: str) -> None:
        """The CLI's last error line hides a password and a token from the exception message."""
        import os
        import subprocess
        import sys

        project = tmp_path / "project"
        (project / "sources").mkdir(parents=True)
        (project / "sources" / "__init__.py").write_text("")
        (project / "sources" / "leaky.py").write_text(
            "import dlt\n\n"
            "@dlt.resource(table_name='numbers')\n"
            "def leaky():\n"
            "    yield {'i': 1}\n"
            "    raise RuntimeError('cannot reach postgresql://bob:Sup3rSecretPW@db.internal/x"
            "?token=abc123tok')\n"
        )
        (project / "dlt.yml").write_text(
            "sources:\n  leaky: {type: sources.leaky.leaky}\n"
            "destinations:\n  warehouse: {type: duckdb}\n"
            f"pipelines:\n  {unique_name}:\n    source: leaky\n    destination: warehouse\n"
            "    dataset_name: data\n"
        )

        result = subprocess.run(
            [sys.executable, "-m", "runner_fsm.cli", "run", str(project / "dlt.yml"), unique_name],
            env=dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false"),
            capture_output=True,
            text=True,
            timeout=300,
        )

        last_line = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1
        assert "Sup3rSecretPW" not in result.stderr
        assert "cannot reach" in last_line
        assert "Sup3rSecretPW" not in last_line
        assert "abc123tok" not in last_line


class TestFinalizationTrace:
    def test_finalization_then_attempt(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """Loading a killed run's package stores a trace row before the attempt's row."""
        from tests.test_pending import kill_during_run

        pipeline = duckdb_pipeline()
        kill_during_run(tmp_path, pipeline.pipeline_name, pipeline.dataset_name)
        pipeline = duckdb_pipeline()

        runner_fsm.runner(
            pipeline, store_trace_info=True, journal_dir=journal_dir, clock=clock
        ).run(numbers(5))

        rows = trace_rows(
            tmp_path / "warehouse.duckdb",
            f"_trace_{pipeline.dataset_name}",
            f"{pipeline.pipeline_name}_trace",
        )
        assert [row[3] for row in rows] == ["finalize_pending", "attempt"]
        assert [row[1] for row in rows] == [True, True]


class TestTraceLost:
    def test_unwritable_spill_folder_keeps_run(
        self,
        duckdb_pipeline: Callable[..., Any],
        tmp_path: Path,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
    ) -> None:
        """A trace that can be neither stored nor spilled is logged as lost; the run ends done."""
        bucket = tmp_path / "bucket"
        bucket.write_text("not a folder")
        pipeline = duckdb_pipeline()
        pipeline.sync_destination()
        spill_folder(pipeline).parent.mkdir(parents=True, exist_ok=True)
        spill_folder(pipeline).write_text("a file where the spill folder should be")

        runner_fsm.runner(
            pipeline,
            store_trace_info=filesystem_trace_pipeline(tmp_path, bucket),
            journal_dir=journal_dir,
            clock=clock,
        ).run(numbers())

        records = journal_records(journal_dir, pipeline.pipeline_name)
        lost = [e for e in log_events.entries if e["event"] == "trace_lost"]
        stores = [r for r in records if r.get("from") == "store_trace"]
        assert records[-1]["to"] == "done"
        assert len(lost) == 1
        assert stores[0]["spilled"] is None
        assert "spill_error" in stores[0]


def _json_value(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


class TestDirectInsert:
    @pytest.mark.parametrize("kind", ["duckdb", "postgres"])
    def test_later_traces_inserted_directly(
        self,
        kind: str,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        unique_name: str,
        journal_dir: Path,
        clock: Any,
    ) -> None:
        """Later traces are direct inserts, each recorded in `_dlt_loads` like a load of dlt's.

        The first trace creates the table by a pipeline run. A new runner goes on inserting. A
        runner whose trace pipeline lost its working folder loads through the pipeline again.
        """
        if kind == "postgres":
            dsn = request.getfixturevalue("postgres_dsn")
            dataset = request.getfixturevalue("dataset")
            admin = request.getfixturevalue("admin")
            request.addfinalizer(
                lambda: admin.cursor().execute(f'DROP SCHEMA IF EXISTS "_trace_{dataset}" CASCADE')
            )
            destination: Any = dlt.destinations.postgres(dsn)
        else:
            dataset = unique_name
            destination = dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb"))
        pipeline = dlt.pipeline(
            unique_name,
            destination=destination,
            dataset_name=dataset,
            pipelines_dir=str(tmp_path / "pipelines"),
        )

        def new_runner() -> Any:
            return runner_fsm.runner(
                pipeline, store_trace_info=True, journal_dir=journal_dir, clock=clock
            )

        first = new_runner()
        for count in (3, 4, 5):
            first.run(numbers(count))
        trace_pipeline = first.trace_store().trace_pipeline
        assert len(trace_pipeline.list_completed_load_packages()) == 1
        second = new_runner()
        second.run(numbers(6))
        assert len(second.trace_store().trace_pipeline.list_completed_load_packages()) == 1
        shutil.rmtree(trace_pipeline.working_dir)
        new_runner().run(numbers(7))

        with trace_pipeline.sql_client() as client:
            table = client.make_qualified_table_name(f"{unique_name}_trace")
            loads = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(
                f"SELECT t.attempt, t.success, t.row_counts, t.started_at, t._dlt_load_id,"
                f" l.status, l.schema_name FROM {table} t JOIN {loads} l"
                " ON l.load_id = t._dlt_load_id ORDER BY t.started_at"
            )
        assert [_json_value(row[2])["numbers"] for row in rows] == [3, 4, 5, 6, 7]
        assert all(row[0] == 1 and row[1] is True and row[5] == 0 for row in rows)
        assert len({row[4] for row in rows}) == 5
        assert {row[6] for row in rows} == {trace_pipeline.default_schema_name}
        started = [row[3] for row in rows]
        assert all(hasattr(value, "tzinfo") for value in started)
        assert started == sorted(started)
