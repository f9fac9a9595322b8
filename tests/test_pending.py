"""Pending packages left by failed or killed runs, terminal pending packages, a clean folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from structlog.testing import LogCapture

import runner_fsm
from runner_fsm.exceptions import PendingPackageFailed
from tests.helpers import duckdb_count, journal_records, transitions


@dlt.resource(table_name="numbers")
def numbers(start: int, count: int) -> Any:
    yield from ({"i": i} for i in range(start, start + count))


@contextlib.contextmanager
def lock_database(database: Path) -> Iterator[None]:
    """Hold the duckdb file open in another process, which locks it for every other process."""
    code = (
        "import duckdb, time\n"
        f"connection = duckdb.connect({str(database)!r})\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def kill_during_run(tmp_path: Path, pipeline_name: str, dataset_name: str) -> None:
    """Run a child process that extracts and normalizes 7 rows, then kills itself with SIGKILL."""
    script = textwrap.dedent(
        f"""
        import os, signal
        import dlt
        pipeline = dlt.pipeline(
            {pipeline_name!r},
            pipelines_dir={str(tmp_path / "pipelines")!r},
            destination=dlt.destinations.duckdb({str(tmp_path / "warehouse.duckdb")!r}),
            dataset_name={dataset_name!r},
        )
        pipeline.extract([{{"i": 100 + i}} for i in range(7)], table_name="numbers")
        pipeline.normalize()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
    child = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert child.returncode == -signal.SIGKILL


class TestPendingFromKilledRun:
    def test_pending_loaded_before_new_data(
        self,
        duckdb_pipeline: Callable[..., Any],
        tmp_path: Path,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
    ) -> None:
        """The package of a killed run loads first, then the new data, with exact counts."""
        pipeline = duckdb_pipeline()
        kill_during_run(tmp_path, pipeline.pipeline_name, pipeline.dataset_name)
        pipeline = duckdb_pipeline()
        assert pipeline.has_pending_data

        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers(0, 5))

        database = tmp_path / "warehouse.duckdb"
        records = journal_records(journal_dir, pipeline.pipeline_name)
        path = [step[1] for step in transitions(records)]
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 12
        assert path.index("finalize_pending") < path.index("attempt")
        assert not pipeline.has_pending_data

    def test_pending_announced_at_warning(
        self,
        duckdb_pipeline: Callable[..., Any],
        tmp_path: Path,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
    ) -> None:
        """Pending packages found at start are logged at WARNING with load ids and sizes."""
        pipeline = duckdb_pipeline()
        kill_during_run(tmp_path, pipeline.pipeline_name, pipeline.dataset_name)
        pipeline = duckdb_pipeline()
        pending_ids = list(pipeline.list_normalized_load_packages())

        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers(0, 5))

        found = [e for e in log_events.entries if e["event"] == "pending_packages_found"]
        assert len(found) == 1
        assert found[0]["log_level"] == "warning"
        assert found[0]["load_ids"] == pending_ids
        assert all(size > 0 for size in found[0]["bytes"])


class TestPendingFromFailedRun:
    def test_failed_load_then_new_data(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """After a load failed on a locked database, the old package and the new data load."""
        pipeline = duckdb_pipeline()
        database = tmp_path / "warehouse.duckdb"
        pipeline.extract(numbers(100, 7))
        pipeline.normalize()
        with lock_database(database):
            with pytest.raises(PipelineStepFailed):
                pipeline.load()
        assert pipeline.has_pending_data

        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers(0, 5))

        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 12

    def test_plain_dlt_contrast(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """Plain `pipeline.run(new_data)` loads only the pending package; the runner loads both."""
        database = tmp_path / "warehouse.duckdb"
        plain = duckdb_pipeline(name=f"plain_{pipeline_suffix(tmp_path)}")
        fsm = duckdb_pipeline(name=f"fsm_{pipeline_suffix(tmp_path)}")
        for pipeline in (plain, fsm):
            pipeline.run(numbers(1000, 3))
            pipeline.extract(numbers(100, 7))
            pipeline.normalize()

        plain.run(numbers(0, 5))
        runner_fsm.runner(fsm, journal_dir=journal_dir, clock=clock).run(numbers(0, 5))

        assert duckdb_count(database, plain.dataset_name, "numbers") == 3 + 7
        assert duckdb_count(database, fsm.dataset_name, "numbers") == 3 + 7 + 5


def pipeline_suffix(tmp_path: Path) -> str:
    return str(abs(hash(str(tmp_path))))[:8]


def break_numbers_table(database: Path, dataset: str) -> None:
    """Create `numbers` with a CHECK constraint that rejects i >= 5: a terminal load error."""
    with duckdb.connect(str(database)) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')
        connection.execute(
            f'CREATE TABLE "{dataset}".numbers (i BIGINT CHECK (i < 5),'
            " _dlt_load_id VARCHAR NOT NULL, _dlt_id VARCHAR NOT NULL)"
        )


def fix_numbers_table(database: Path, dataset: str) -> None:
    """Replace the constrained table by one without the CHECK constraint."""
    with duckdb.connect(str(database)) as connection:
        connection.execute(f'DROP TABLE "{dataset}".numbers')
        connection.execute(
            f'CREATE TABLE "{dataset}".numbers (i BIGINT,'
            " _dlt_load_id VARCHAR NOT NULL, _dlt_id VARCHAR NOT NULL)"
        )


@dlt.resource(table_name="numbers")
def incremental_numbers(
    count: int, cursor: Any = dlt.sources.incremental("i", initial_value=-1)  # noqa: B008
) -> Any:
    yield from ({"i": i} for i in range(count))


class TestTerminalPendingPackage:
    def make_terminal_package(self, pipeline: Any, database: Path) -> str:
        break_numbers_table(database, pipeline.dataset_name)
        with pytest.raises(PipelineStepFailed):
            pipeline.run(incremental_numbers(10))
        assert pipeline.has_pending_data
        return str(pipeline.list_normalized_load_packages()[0])

    def test_stops_at_once_naming_package_and_job(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """The next run stops before loading, naming the package and the failed job."""
        pipeline = duckdb_pipeline()
        load_id = self.make_terminal_package(pipeline, tmp_path / "warehouse.duckdb")

        with pytest.raises(PendingPackageFailed) as raised:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(5), journal_dir=journal_dir, clock=clock
            ).run(incremental_numbers(10))

        last = journal_records(journal_dir, pipeline.pipeline_name)[-1]
        assert load_id in str(raised.value)
        assert "numbers." in str(raised.value)
        assert "CHECK constraint failed" in str(raised.value)
        assert last["to"] == "failed"
        assert last["summary"]["tries"] == {"finalize_pending": 1}
        assert clock.sleeps == []
        assert pipeline.has_pending_data

    def test_abort_restores_state(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """With `on_terminal_pending="abort"` the package is aborted and the cursor restored."""
        pipeline = duckdb_pipeline()
        database = tmp_path / "warehouse.duckdb"
        load_id = self.make_terminal_package(pipeline, database)
        fix_numbers_table(database, pipeline.dataset_name)

        runner_fsm.runner(
            pipeline, on_terminal_pending="abort", journal_dir=journal_dir, clock=clock
        ).run(incremental_numbers(10))

        records = journal_records(journal_dir, pipeline.pipeline_name)
        aborted = [r for r in records if r.get("aborted")]
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 10
        assert aborted[0]["aborted"]["load_id"] == load_id
        assert not pipeline.has_pending_data


class TestCleanFolder:
    def test_cursor_restored_from_destination(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """After the folder is removed, the cursor comes back from the destination."""
        pipeline = duckdb_pipeline()
        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(incremental_numbers(10))

        runner_fsm.runner(
            pipeline, run_from_clean_folder=True, journal_dir=journal_dir, clock=clock
        ).run(incremental_numbers(15))

        database = tmp_path / "warehouse.duckdb"
        records = journal_records(journal_dir, pipeline.pipeline_name)
        second_run = [r for r in records if r["run_id"] == records[-1]["run_id"]]
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 15
        assert ("start", "clean_folder", "opened") in transitions(second_run)
        assert ("clean_folder", "sync", "cleaned") in transitions(second_run)

    def test_pending_finalized_before_cleaning(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """Pending packages are loaded before the folder is removed, never thrown away."""
        pipeline = duckdb_pipeline()
        kill_during_run(tmp_path, pipeline.pipeline_name, pipeline.dataset_name)
        pipeline = duckdb_pipeline()

        runner_fsm.runner(
            pipeline, run_from_clean_folder=True, journal_dir=journal_dir, clock=clock
        ).run(numbers(0, 5))

        database = tmp_path / "warehouse.duckdb"
        path = [step[1] for step in transitions(journal_records(journal_dir, pipeline.pipeline_name))]
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 12
        assert path.index("finalize_pending") < path.index("clean_folder") < path.index("attempt")
