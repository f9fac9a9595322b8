"""Callbacks of the pipeline's progress collector: arguments, order, and errors ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from structlog.testing import LogCapture

import runner_fsm
from runner_fsm.callbacks import RunnerCallbacks


class Recorder(RunnerCallbacks):
    """Records every callback with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def on_before(self, pipeline: Any) -> None:
        self.calls.append(("on_before", (pipeline,)))

    def on_after(self, pipeline: Any, trace: Any, success: bool, summary: Any) -> None:
        self.calls.append(("on_after", (pipeline, trace, success, summary)))

    def on_retry(
        self, pipeline: Any, trace: Any, retry_attempt: int, last_attempt: int, exception: Any
    ) -> None:
        self.calls.append(("on_retry", (pipeline, trace, retry_attempt, last_attempt, exception)))

    def on_schema_change(self, pipeline: Any, trace: Any, schema_name: str, changes: Any) -> None:
        self.calls.append(("on_schema_change", (pipeline, trace, schema_name, changes)))


@dlt.resource(table_name="numbers")
def numbers() -> Any:
    yield from ({"i": i} for i in range(5))


def flaky_once() -> Any:
    calls = {"n": 0}

    @dlt.destination(batch_size=100, name="flaky_once")
    def sink(items: Any, table: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the warehouse is busy")

    return sink


@pytest.fixture(autouse=True)
def load_step_fails_on_first_job_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")


class TestCallbacks:
    def test_order_and_arguments(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """A run with a retry and a new table calls before, retry, schema change, after."""
        recorder = Recorder()
        pipeline = dlt.pipeline(
            unique_name,
            destination=flaky_once(),
            pipelines_dir=str(tmp_path / "pipelines"),
            progress=recorder,
        )

        runner_fsm.runner(
            pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
        ).run(numbers())

        names = [name for name, _ in recorder.calls]
        retry = dict(recorder.calls)["on_retry"]
        change = dict(recorder.calls)["on_schema_change"]
        after = dict(recorder.calls)["on_after"]
        assert names == ["on_before", "on_retry", "on_schema_change", "on_after"]
        assert recorder.calls[0][1] == (pipeline,)
        assert retry[2:4] == (2, 1)
        assert isinstance(retry[4], Exception)
        assert change[2] == pipeline.default_schema_name
        assert "numbers" in change[3]
        assert after[2] is True
        assert after[3]["numbers"] == 5

    def test_raising_callback_ignored(
        self,
        tmp_path: Path,
        unique_name: str,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
    ) -> None:
        """A callback that raises is logged and the run still ends done."""

        class Broken(RunnerCallbacks):
            def on_before(self, pipeline: Any) -> None:
                raise RuntimeError("the callback is broken")

        pipeline = dlt.pipeline(
            unique_name,
            destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
            dataset_name="data",
            pipelines_dir=str(tmp_path / "pipelines"),
            progress=Broken(),
        )

        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers())

        failed = [e for e in log_events.entries if e["event"] == "callback_failed"]
        assert len(failed) == 1
        assert failed[0]["callback"] == "on_before"
        assert "the callback is broken" in failed[0]["error"]
