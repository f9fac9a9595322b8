"""Retries of real dlt pipelines: healing load failures, terminal errors, step rules, waits."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import dlt
import pytest
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

import runner_fsm
from runner_fsm.exceptions import ConfigError, GeneratorNotRetryable
from tests.helpers import duckdb_count, journal_records, transitions


def flaky_destination(failures: int, received: list[dict[str, Any]], error: type = RuntimeError) -> Any:
    """Return a dlt destination whose first `failures` calls raise `error`."""
    calls = {"n": 0}

    @dlt.destination(batch_size=100, name="flaky")
    def flaky(items: Any, table: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error(f"call {calls['n']} failed")
        if not table["name"].startswith("_dlt"):
            received.extend(dict(item) for item in items)

    return flaky


@dlt.resource(table_name="numbers")
def numbers(count: int = 10) -> Any:
    yield from ({"i": i} for i in range(count))


@pytest.fixture(autouse=True)
def load_step_fails_on_first_job_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make dlt's load step raise on the first transient job error instead of retrying inside."""
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")


def flaky_pipeline(tmp_path: Path, name: str, destination: Any) -> Any:
    return dlt.pipeline(name, destination=destination, pipelines_dir=str(tmp_path / "pipelines"))


class TestLoadFailureHeals:
    def test_rows_arrive_once(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """A load step that fails twice, then works, loads every row exactly once."""
        received: list[dict[str, Any]] = []
        pipeline = flaky_pipeline(tmp_path, unique_name, flaky_destination(2, received))
        policy = runner_fsm.backoff(max_attempts=5, multiplier=1, min=0, max=10)

        info = runner_fsm.runner(
            pipeline, retry_policy=policy, journal_dir=journal_dir, clock=clock
        ).run(numbers())

        assert sorted(item["i"] for item in received) == list(range(10))
        assert info is not None
        assert not pipeline.has_pending_data

    def test_journal_shows_attempts_and_waits(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """Each failed attempt, each wait and the final success are journaled in order."""
        pipeline = flaky_pipeline(tmp_path, unique_name, flaky_destination(2, []))
        policy = runner_fsm.backoff(max_attempts=5, multiplier=1, min=0, max=10)

        runner_fsm.runner(pipeline, retry_policy=policy, journal_dir=journal_dir, clock=clock).run(
            numbers()
        )

        records = journal_records(journal_dir, unique_name)
        waits = [r for r in records if r["kind"] == "transition" and r["to"] == "waiting"]
        failures = [r for r in records if r.get("trigger") == "step_failed"]
        assert [w["wait_s"] for w in waits] == [1.0, 2.0]
        assert [f["attempt"] for f in failures] == [1, 2]
        assert all(f["exception"]["step"] == "load" for f in failures)
        assert transitions(records)[-1] == ("store_trace", "done", "trace_stored")
        assert clock.sleeps == [1.0, 2.0]


class TestTerminalFailure:
    def test_single_attempt(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """A terminal destination error ends the run after one attempt despite the policy."""
        destination = flaky_destination(100, [], error=DestinationTerminalException)
        pipeline = flaky_pipeline(tmp_path, unique_name, destination)

        with pytest.raises(PipelineStepFailed) as raised:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(5), journal_dir=journal_dir, clock=clock
            ).run(numbers())

        records = journal_records(journal_dir, unique_name)
        last = records[-1]
        assert raised.value.step == "load"
        assert last["to"] == "failed"
        assert last["exception"]["terminal"] is True
        assert last["summary"]["tries"]["attempt"] == 1
        assert clock.sleeps == []


class TestStepRules:
    def failing_once_resource(self) -> Any:
        calls = {"n": 0}

        @dlt.resource(table_name="numbers")
        def failing_once() -> Any:
            calls["n"] += 1
            for i in range(5):
                if i == 3 and calls["n"] == 1:
                    raise RuntimeError("the source API timed out")
                yield {"i": i}

        return failing_once

    def test_extract_not_retried_by_default(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any
    ) -> None:
        """An extract failure ends the run when `extract` is not in retry_pipeline_steps."""
        pipeline = duckdb_pipeline()

        with pytest.raises(PipelineStepFailed) as raised:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
            ).run(self.failing_once_resource()())

        last = journal_records(journal_dir, pipeline.pipeline_name)[-1]
        assert raised.value.step == "extract"
        assert last["summary"]["tries"]["attempt"] == 1
        assert "not in retry_pipeline_steps" in last["reason"]

    def test_extract_retried_when_listed(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any, tmp_path: Path
    ) -> None:
        """With `extract` in retry_pipeline_steps, a resource extracts again and loads once."""
        pipeline = duckdb_pipeline()

        runner_fsm.runner(
            pipeline,
            retry_policy=runner_fsm.fixed(3),
            retry_pipeline_steps=["extract", "load"],
            journal_dir=journal_dir,
            clock=clock,
        ).run(self.failing_once_resource()())

        database = tmp_path / "warehouse.duckdb"
        last = journal_records(journal_dir, pipeline.pipeline_name)[-1]
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 5
        assert last["summary"]["tries"]["attempt"] == 2

    def test_plain_generator_message(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any
    ) -> None:
        """A plain generator retried in extract fails with advice, not a bare SourceExhausted."""
        pipeline = duckdb_pipeline()

        def rows() -> Any:
            yield {"i": 1}
            raise RuntimeError("the source API timed out")

        with pytest.raises(GeneratorNotRetryable) as raised:
            runner_fsm.runner(
                pipeline,
                retry_policy=runner_fsm.fixed(3),
                retry_pipeline_steps=["extract"],
                journal_dir=journal_dir,
                clock=clock,
            ).run(rows(), table_name="numbers")

        last = journal_records(journal_dir, pipeline.pipeline_name)[-1]
        assert "dlt resource or source" in str(raised.value)
        assert last["exception"]["type"].endswith("GeneratorNotRetryable")
        assert last["summary"]["tries"]["attempt"] == 2


class TestBackoffWaits:
    def test_waits_follow_formula_and_clamps(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """Waits are multiplier * 2**(n-1), clamped to [min, max], through the injected sleep."""
        pipeline = flaky_pipeline(tmp_path, unique_name, flaky_destination(4, []))
        policy = runner_fsm.backoff(max_attempts=5, multiplier=0.5, min=1.5, max=3)

        runner_fsm.runner(pipeline, retry_policy=policy, journal_dir=journal_dir, clock=clock).run(
            numbers()
        )

        # 0.5, 1, 2, 4 clamped to [1.5, 3]
        assert clock.sleeps == [1.5, 1.5, 2.0, 3.0]

    def test_retries_exhausted(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """A failure that outlasts max_attempts fails the run with the last error."""
        pipeline = flaky_pipeline(tmp_path, unique_name, flaky_destination(100, []))
        policy = runner_fsm.backoff(max_attempts=3, multiplier=1, min=0, max=10)

        with pytest.raises(PipelineStepFailed):
            runner_fsm.runner(
                pipeline, retry_policy=policy, journal_dir=journal_dir, clock=clock
            ).run(numbers())

        last = journal_records(journal_dir, unique_name)[-1]
        assert clock.sleeps == [1.0, 2.0]
        assert last["to"] == "failed"
        assert "max_attempts=3" in last["reason"]
        assert pipeline.has_pending_data


class TestLockedDestination:
    def test_sync_retried_until_lock_released(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, tmp_path: Path, clock: Any
    ) -> None:
        """A duckdb file locked by another process fails the sync, which is retried."""
        pipeline = duckdb_pipeline()
        database = tmp_path / "warehouse.duckdb"
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time\n"
                f"c = duckdb.connect({str(database)!r})\n"
                "print('locked', flush=True)\n"
                "time.sleep(120)\n",
            ],
            stdout=subprocess.PIPE,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        original_sleep = clock.sleep

        def release_lock(seconds: float, interrupt: Any = None) -> bool:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            return bool(original_sleep(seconds, interrupt))

        clock.sleep = release_lock
        try:
            runner_fsm.runner(
                pipeline,
                retry_policy=runner_fsm.backoff(multiplier=1, min=0, max=1),
                journal_dir=journal_dir,
                clock=clock,
            ).run(numbers())
        finally:
            holder.kill()
            holder.wait()

        records = journal_records(journal_dir, pipeline.pipeline_name)
        sync_failures = [r for r in records if r.get("from") == "sync" and r["to"] == "decide_retry"]
        assert len(sync_failures) == 1
        assert sync_failures[0]["exception"]["step"] == "sync"
        assert ("waiting", "sync", "waited") in transitions(records)
        assert duckdb_count(database, pipeline.dataset_name, "numbers") == 10


def free_loopback_port() -> int:
    """Return a loopback TCP port on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestUnreachableDestination:
    def test_sync_retried_while_unreachable(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """PostgreSQL on a loopback port where nothing listens fails the sync, which is retried."""
        port = free_loopback_port()
        destination = dlt.destinations.postgres(
            f"postgresql://loader:pw_not_used@127.0.0.1:{port}/db?connect_timeout=2"
        )
        pipeline = dlt.pipeline(
            unique_name, destination=destination, pipelines_dir=str(tmp_path / "pipelines")
        )
        policy = runner_fsm.backoff(max_attempts=3, multiplier=1, min=0, max=5)

        with pytest.raises(PipelineStepFailed) as raised:
            runner_fsm.runner(
                pipeline, retry_policy=policy, journal_dir=journal_dir, clock=clock
            ).run(numbers())

        last = journal_records(journal_dir, unique_name)[-1]
        assert raised.value.step == "sync"
        assert last["summary"]["tries"] == {"sync": 3}
        assert clock.sleeps == [1.0, 2.0]


class TestPythonArguments:
    """Arguments of `runner_fsm.runner` that dlt.yml cannot express the same way."""

    def test_steps_as_string(self, duckdb_pipeline: Callable[..., Any], journal_dir: Path) -> None:
        with pytest.raises(ConfigError) as raised:
            runner_fsm.runner(duckdb_pipeline(), retry_pipeline_steps="load", journal_dir=journal_dir)

        assert "must be a list of steps" in str(raised.value)
        assert raised.value.value == "load"

    def test_steps_as_tuple(self, duckdb_pipeline: Callable[..., Any], journal_dir: Path) -> None:
        runner = runner_fsm.runner(
            duckdb_pipeline(), retry_pipeline_steps=("extract", "load"), journal_dir=journal_dir
        )

        assert runner.config.retry_pipeline_steps == ["extract", "load"]

    def test_trace_pipeline_name_from_python(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path
    ) -> None:
        with pytest.raises(ConfigError) as raised:
            runner_fsm.runner(duckdb_pipeline(), store_trace_info="traces", journal_dir=journal_dir)

        assert "pass the dlt.Pipeline object" in str(raised.value)


class TestSyncOnce:
    """As dlt does, a pipeline object restores its state from the destination on its first run."""

    def test_second_run_skips_sync(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any
    ) -> None:
        pipeline = duckdb_pipeline()
        runner = runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock)
        runner.run([{"n": 1}], table_name="numbers")
        runner.run([{"n": 2}], table_name="numbers")
        runner_fsm.runner(duckdb_pipeline(), journal_dir=journal_dir, clock=clock).run(
            [{"n": 3}], table_name="numbers"
        )

        records = journal_records(journal_dir, pipeline.pipeline_name)
        syncs = [record for record in records if record.get("from") == "sync"]
        assert len(syncs) == 3
        assert "skipped" not in syncs[0]
        assert syncs[1]["skipped"] == "the pipeline object already synced in this process"
        assert "skipped" not in syncs[2]

    def test_clean_folder_syncs_again(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any
    ) -> None:
        pipeline = duckdb_pipeline()
        runner = runner_fsm.runner(
            pipeline, run_from_clean_folder=True, journal_dir=journal_dir, clock=clock
        )
        runner.run([{"n": 1}], table_name="numbers")
        runner.run([{"n": 2}], table_name="numbers")

        records = journal_records(journal_dir, pipeline.pipeline_name)
        syncs = [record for record in records if record.get("from") == "sync"]
        assert len(syncs) == 2
        assert all("skipped" not in record for record in syncs)
