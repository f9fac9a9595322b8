"""The pipeline lock, interrupts by signals, and errors raised by retry policies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import dlt
import pytest
import tenacity
from structlog.testing import LogCapture

import runner_fsm
from runner_fsm._lock import PipelineLock, lock_path
from runner_fsm.exceptions import PipelineLocked, PolicyError
from tests.helpers import duckdb_count, journal_records

CHILD_ENV = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")


@dlt.resource(table_name="numbers")
def numbers(count: int = 10) -> Any:
    yield from ({"i": i} for i in range(count))


class TestPipelineLock:
    def test_second_runner_rejected(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any
    ) -> None:
        """A runner finds the lock held by a live process and raises, naming that process."""
        pipeline = duckdb_pipeline()
        path = lock_path(journal_dir, pipeline.pipeline_name)
        code = textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from runner_fsm._lock import PipelineLock
            PipelineLock(Path({str(path)!r}), "x").acquire()
            print("locked", flush=True)
            time.sleep(120)
            """
        )
        holder = subprocess.Popen([sys.executable, "-c", code], env=CHILD_ENV, stdout=subprocess.PIPE, text=True)
        try:
            wait_for_line(holder, "locked")
            with pytest.raises(PipelineLocked) as raised:
                runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers())
        finally:
            holder.kill()
            holder.wait()

        assert raised.value.holder_pid == holder.pid
        assert str(holder.pid) in str(raised.value)
        assert not (journal_dir / f"{pipeline.pipeline_name}.jsonl").exists()

    def test_lock_reentrant_in_process(self, tmp_path: Path) -> None:
        """A process that holds the lock can take it again; the last release frees it."""
        path = tmp_path / "p.lock"
        outer = PipelineLock(path, "p")
        inner = PipelineLock(path, "p")

        outer.acquire()
        inner.acquire()
        inner.release()
        still_held = path.read_text()
        outer.release()

        assert still_held == str(os.getpid())
        assert path.read_text() == ""

    def test_dead_holder_taken_over(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any, tmp_path: Path
    ) -> None:
        """A lock whose holder was killed is taken over, and the takeover is journaled."""
        pipeline = duckdb_pipeline()
        path = lock_path(journal_dir, pipeline.pipeline_name)
        code = textwrap.dedent(
            f"""
            import os, signal
            from pathlib import Path
            from runner_fsm._lock import PipelineLock
            PipelineLock(Path({str(path)!r}), "x").acquire()
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        child = subprocess.run([sys.executable, "-c", code], env=CHILD_ENV, timeout=60)
        assert child.returncode == -signal.SIGKILL

        runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock).run(numbers())

        records = journal_records(journal_dir, pipeline.pipeline_name)
        takeovers = [r for r in records if r.get("event") == "lock_taken_over"]
        assert len(takeovers) == 1
        assert takeovers[0]["previous_pid"] != os.getpid()
        assert records[-1]["to"] == "done"
        assert path.read_text() == ""


def write_project(root: Path, name: str, rows: int, delay_s: float) -> Path:
    """Write a project whose source yields `rows` rows, sleeping `delay_s` after the first."""
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "slow.py").write_text(
        textwrap.dedent(
            f"""
            import time
            import dlt

            @dlt.resource(table_name="numbers", write_disposition="replace")
            def slow():
                for i in range({rows}):
                    yield {{"i": i}}
                    if i == 0:
                        print("extracting", flush=True)
                        time.sleep({delay_s})
            """
        )
    )
    project = root / "dlt.yml"
    project.write_text(
        textwrap.dedent(
            f"""
            sources:
              slow: {{type: sources.slow.slow}}
            destinations:
              warehouse: {{type: duckdb}}
            pipelines:
              {name}:
                source: slow
                destination: warehouse
                dataset_name: data
                run_config:
                  retry_policy: {{type: fixed, max_attempts: 3}}
                  retry_pipeline_steps: [extract, load]
            """
        )
    )
    return project


def start_cli(project: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner_fsm.cli", "run", str(project), name],
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], text: str, timeout_s: float = 60) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"the process did not print {text!r}")


class TestCliLockAndSignals:
    def test_second_cli_exits_3(self, tmp_path: Path, unique_name: str) -> None:
        """A second `runner-fsm run` of a running pipeline exits 3 and names the first's pid."""
        project = write_project(tmp_path / "project", unique_name, rows=5, delay_s=30)
        first = start_cli(project, unique_name)
        try:
            wait_for_line(first, "extracting")

            second = subprocess.run(
                [sys.executable, "-m", "runner_fsm.cli", "run", str(project), unique_name],
                env=CHILD_ENV,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            first.kill()
            first.wait()

        assert second.returncode == 3
        assert str(first.pid) in second.stderr

    def test_cli_journals_lock_takeover(self, tmp_path: Path, unique_name: str) -> None:
        """`runner-fsm run` after a holder was killed journals that it took the lock over."""
        project = write_project(tmp_path / "project", unique_name, rows=5, delay_s=0)
        path = lock_path(project.parent / "_data" / "journal", unique_name)
        code = textwrap.dedent(
            f"""
            import os, signal
            from pathlib import Path
            from runner_fsm._lock import PipelineLock
            PipelineLock(Path({str(path)!r}), "x").acquire()
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        subprocess.run([sys.executable, "-c", code], env=CHILD_ENV, timeout=60)

        result = subprocess.run(
            [sys.executable, "-m", "runner_fsm.cli", "run", str(project), unique_name],
            env=CHILD_ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )

        records = journal_records(project.parent / "_data" / "journal", unique_name)
        takeovers = [r for r in records if r.get("event") == "lock_taken_over"]
        assert result.returncode == 0, result.stderr
        assert len(takeovers) == 1
        assert path.read_text() == ""

    @pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_signal_during_extract(
        self, tmp_path: Path, unique_name: str, signum: int, code: int
    ) -> None:
        """A signal during a retried extract step stops the run with 130 or 143, not a retry."""
        project = write_project(tmp_path / "project", unique_name, rows=5, delay_s=30)
        run = start_cli(project, unique_name)
        wait_for_line(run, "extracting")

        run.send_signal(signum)
        _, stderr = run.communicate(timeout=120)

        records = journal_records(project.parent / "_data" / "journal", unique_name)
        attempts = [r for r in records if r.get("to") == "attempt"]
        assert run.returncode == code
        assert len(attempts) == 1
        assert "Traceback" not in stderr


class TestPolicyErrors:
    def test_policy_sees_wrapped_exception(
        self, duckdb_pipeline: Callable[..., Any], tmp_path: Path, journal_dir: Path, clock: Any
    ) -> None:
        """tenacity's retry_if_exception_type matches the exception the step raised."""
        calls = {"n": 0}

        @dlt.resource(table_name="numbers")
        def flaky() -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("the source API reset the connection")
            yield {"i": 1}

        policy = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_fixed(0),
            retry=tenacity.retry_if_exception_type(ConnectionError),
        )
        pipeline = duckdb_pipeline()

        runner_fsm.runner(
            pipeline,
            retry_policy=policy,
            retry_pipeline_steps=["extract", "load"],
            journal_dir=journal_dir,
            clock=clock,
        ).run(flaky())

        assert calls["n"] == 2
        assert duckdb_count(tmp_path / "warehouse.duckdb", pipeline.dataset_name, "numbers") == 1

    def test_raising_policy_ends_run_in_journal(
        self, tmp_path: Path, unique_name: str, journal_dir: Path, clock: Any
    ) -> None:
        """A policy that returns an invalid value fails the run, and the journal records it."""

        @dlt.destination(batch_size=100, name="always_failing")
        def always_failing(items: Any, table: Any) -> None:
            raise RuntimeError("the warehouse is down")

        pipeline = dlt.pipeline(
            unique_name, destination=always_failing, pipelines_dir=str(tmp_path / "pipelines")
        )

        with pytest.raises(PolicyError):
            runner_fsm.runner(
                pipeline,
                retry_policy=lambda record: "yes",
                journal_dir=journal_dir,
                clock=clock,
            ).run(numbers())

        last = journal_records(journal_dir, unique_name)[-1]
        assert last["to"] == "failed"
        assert last["exception"]["type"].endswith("PolicyError")
        assert "retry policy raised" in last["reason"]

    def test_retry_log_names_error(
        self,
        tmp_path: Path,
        unique_name: str,
        journal_dir: Path,
        clock: Any,
        log_events: LogCapture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The retry_scheduled event names the type and message of the error."""
        monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")
        calls = {"n": 0}

        @dlt.destination(batch_size=100, name="flaky_once")
        def flaky_once(items: Any, table: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the warehouse is busy")

        pipeline = dlt.pipeline(
            unique_name, destination=flaky_once, pipelines_dir=str(tmp_path / "pipelines")
        )

        runner_fsm.runner(
            pipeline, retry_policy=runner_fsm.fixed(2), journal_dir=journal_dir, clock=clock
        ).run(numbers())

        retries = [e for e in log_events.entries if e["event"] == "retry_scheduled"]
        assert len(retries) == 1
        assert retries[0]["error_type"].endswith("LoadClientJobRetry")
        assert retries[0]["error"]


SLOW_LOAD_SCRIPT = """
import os, sys, time
import dlt
import runner_fsm
from runner_fsm.exceptions import RunInterrupted

work = sys.argv[1]
mode = sys.argv[2]

@dlt.destination(batch_size=0, name="slow_sink")
def slow_sink(path, table):
    if table["name"].startswith("_dlt"):
        return
    print("loading", table["name"], flush=True)
    if mode == "slow":
        time.sleep(1.5)
    with open(os.path.join(work, "sink.txt"), "a") as out:
        out.write(table["name"] + "\\n")

@dlt.source
def tables():
    return [
        dlt.resource([{"i": i} for i in range(10)], name=f"table_{n}")
        for n in range(6)
    ]

pipeline = dlt.pipeline("slow_load", destination=slow_sink, pipelines_dir=os.path.join(work, "p"))
policy = runner_fsm.backoff(max_attempts=3, multiplier=30, min=30, max=30)
runner = runner_fsm.runner(pipeline, retry_policy=policy, journal_dir=os.path.join(work, "j"))
try:
    if mode == "resume":
        runner.resume()
    else:
        runner.run(tables())
except RunInterrupted as ex:
    sys.exit(128 + ex.signal_code)
"""


class TestSignalDuringSlowLoad:
    def test_sigterm_during_load_stops_run(self, tmp_path: Path) -> None:
        """SIGTERM during a load: dlt drains its jobs, the runner stops, and a resume finishes."""
        script = tmp_path / "slow_load.py"
        script.write_text(SLOW_LOAD_SCRIPT)
        env = dict(CHILD_ENV, LOAD__WORKERS="1")
        run = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), "slow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_line(run, "loading")

        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
        loaded_before = (tmp_path / "sink.txt").read_text().split()
        records = journal_records(tmp_path / "j", "slow_load")
        resumed = subprocess.run(
            [sys.executable, str(script), str(tmp_path), "resume"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

        loaded_all = (tmp_path / "sink.txt").read_text().split()
        interrupted = [r for r in records if r.get("event") == "interrupted"]
        assert run.returncode == 143, stderr
        assert len(interrupted) == 1
        assert interrupted[0]["signal"] == signal.SIGTERM
        assert not any(r.get("to") == "done" for r in records)
        assert len(loaded_before) < 6
        assert resumed.returncode == 0, resumed.stderr
        assert sorted(loaded_all) == sorted(f"table_{n}" for n in range(6))

    def test_sigterm_ends_wait_at_once(self, tmp_path: Path) -> None:
        """SIGTERM during a 30 s wait between tries stops the run within seconds."""
        script = tmp_path / "failing_load.py"
        script.write_text(
            SLOW_LOAD_SCRIPT.replace(
                '    print("loading", table["name"], flush=True)',
                '    print("loading", table["name"], flush=True)\n'
                '    raise RuntimeError("the sink is down")',
            )
        )
        env = dict(CHILD_ENV, LOAD__RAISE_ON_MAX_RETRIES="1")
        run = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), "fast"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        journal = tmp_path / "j" / "slow_load.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and '"to":"waiting"' in journal.read_text():
                break
            time.sleep(0.1)

        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=60)
        elapsed = time.monotonic() - started

        records = journal_records(tmp_path / "j", "slow_load")
        waits = [r for r in records if r.get("from") == "waiting"]
        assert run.returncode == 143
        assert elapsed < 10
        assert waits == []
        assert records[-1]["event"] == "interrupted"


class TestUnreadableJournal:
    def test_torn_middle_line_reported(
        self, duckdb_pipeline: Callable[..., Any], journal_dir: Path, clock: Any, log_events: LogCapture
    ) -> None:
        """An unreadable line in the tail is reported with its place, and the run goes on."""
        pipeline = duckdb_pipeline()
        runner = runner_fsm.runner(pipeline, journal_dir=journal_dir, clock=clock)
        runner.run(numbers())
        path = journal_dir / f"{pipeline.pipeline_name}.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)
        last_seq = len(lines)
        lines.insert(2, b'{"v": 1, "seq": broken\n')
        path.write_bytes(b"".join(lines))

        runner.run(numbers())

        reports = [e for e in log_events.entries if e["event"] == "journal_line_unreadable"]
        assert len(reports) == 1
        assert reports[0]["line"].startswith("line 3:")
        assert journal_records_after(path, last_seq)[-1]["to"] == "done"


def journal_records_after(path: Path, seq: int) -> list[dict[str, Any]]:
    import orjson

    records = []
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if record["seq"] > seq:
            records.append(record)
    return records
