"""Kill a real run with SIGKILL at every point of the machine, then resume: nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.helpers import journal_records

CHILD_ENV = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")

# each kind loads rows 0..N-1 on the first run and 0..N+4 on the second: merge and the cursor
# must leave exactly N+5 distinct rows whatever happened in between
SOURCES = {
    "merge": """
        @dlt.resource(table_name="numbers", write_disposition="merge", primary_key="i")
        def numbers(count):
            yield from rows(count)
    """,
    "append": """
        @dlt.resource(table_name="numbers", write_disposition="append")
        def numbers(count):
            yield from rows(count)
    """,
    "incremental": """
        @dlt.resource(table_name="numbers", write_disposition="append")
        def numbers(count, cursor=dlt.sources.incremental("i", initial_value=-1)):
            yield from rows(count)
    """,
}
# FAIL_ONCE_MARKER makes the first extract fail, so that a run reaches decide_retry and waiting;
# KILL_INSIDE_EXTRACT kills the process halfway through the rows
ROWS = """
import os, signal

def rows(count):
    marker = os.environ.get("FAIL_ONCE_MARKER")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the source API failed once")
    for i in range(count):
        if i == count // 2 and os.environ.get("KILL_INSIDE_EXTRACT"):
            os.kill(os.getpid(), signal.SIGKILL)
        yield {"i": i, "square": i * i}
"""
FIRST_COUNT = 40
SECOND_COUNT = 45

# points inside one run of the machine; states are killed right after they are journaled
KILL_POINTS = [
    "state:sync",
    "state:attempt",
    "inside:extract",
    "step:extract",
    "inside:normalize",
    "step:normalize",
    "inside:load",
    "jobs:1",
    "step:load",
    "state:store_trace",
    "state:done",
]


def write_project(
    root: Path,
    kind: str,
    name: str,
    count: int,
    clean_folder: bool = False,
    retry_extract: bool = True,
    trace_bucket: Path | None = None,
) -> Path:
    """Write a project whose pipeline `name` loads `count` rows of the `kind` source."""
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "numbers.py").write_text(
        "import dlt\n" + ROWS + textwrap.dedent(SOURCES[kind])
    )
    steps = "[extract, load]" if retry_extract else "[load]"
    trace_target = "traces" if trace_bucket is not None else "true"
    text = textwrap.dedent(
        f"""
        sources:
          numbers:
            type: sources.numbers.numbers
            with_args: {{count: {count}}}
        destinations:
          warehouse: {{type: duckdb}}
          bucket: {{type: filesystem, bucket_url: "{(trace_bucket or root / 'unused').as_uri()}"}}
        pipelines:
          {name}:
            source: numbers
            destination: warehouse
            dataset_name: data
            run_config:
              store_trace_info: {trace_target}
              run_from_clean_folder: {str(clean_folder).lower()}
              retry_policy: {{type: backoff, max_attempts: 3, multiplier: 0.1, min: 0, max: 0.2}}
              retry_pipeline_steps: {steps}
          traces:
            destination: bucket
            dataset_name: traces
        """
    )
    project = root / "dlt.yml"
    project.write_text(text)
    return project


def run_cli(
    command: str, project: Path, name: str, fault: str = "", **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = dict(CHILD_ENV, **extra_env)
    if fault:
        env["RUNNER_FSM_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "runner_fsm.cli", command, str(project), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def table_rows(project: Path, name: str) -> tuple[int, int]:
    database = project.parent / "_data" / "local" / f"{name}.duckdb"
    with duckdb.connect(str(database), read_only=True) as connection:
        result = connection.execute('SELECT count(*), count(DISTINCT i) FROM "data"."numbers"').fetchone()
    assert result is not None
    return int(result[0]), int(result[1])


EXACT_KINDS = ["incremental", "merge"]


def journal_loaded_rows(project: Path, name: str) -> int:
    """Return the rows of `numbers` in the packages that the journal records as loaded."""
    records = journal_records(project.parent / "_data" / "journal", name)
    rows_by_package: dict[str, int] = {}
    loaded: set[str] = set()
    for record in records:
        if record.get("event") != "step_ended":
            continue
        if record["step"] == "normalize":
            for load_id, rows in record.get("rows_by_load_id", {}).items():
                rows_by_package[load_id] = rows.get("numbers", 0)
        if record["step"] == "load" and "exception" not in record:
            loaded.update(record.get("load_ids", []))
    return sum(rows_by_package[load_id] for load_id in loaded)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_append_matches_journal(tmp_path: Path, unique_name: str, point: str) -> None:
    """For append, the table contains exactly the rows that the journal records as loaded."""
    project = write_project(tmp_path / "project", "append", unique_name, FIRST_COUNT)

    killed = run_cli("run", project, unique_name, fault=f"kill@{point}")
    again = run_cli("run", project, unique_name)

    total, _ = table_rows(project, unique_name)
    loaded = journal_loaded_rows(project, unique_name)
    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert total == loaded
    assert total >= FIRST_COUNT


@pytest.mark.parametrize("kind", EXACT_KINDS)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_then_run_again(tmp_path: Path, unique_name: str, kind: str, point: str) -> None:
    """A run killed at `point` is finished by the next run: no row lost, none doubled."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)

    killed = run_cli("run", project, unique_name, fault=f"kill@{point}")
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT)
    again = run_cli("run", project, unique_name)

    records = journal_records(project.parent / "_data" / "journal", unique_name)
    run_ids = list(dict.fromkeys(r["run_id"] for r in records))
    ends = [r for r in records if r.get("to") in ("done", "failed")]
    total, distinct = table_rows(project, unique_name)
    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert distinct == SECOND_COUNT
    assert total == SECOND_COUNT
    assert all(r["to"] == "done" for r in ends)
    assert len(ends) == len(run_ids)


def check_finished(project: Path, name: str) -> None:
    records = journal_records(project.parent / "_data" / "journal", name)
    run_ids = list(dict.fromkeys(r["run_id"] for r in records))
    ends = [r for r in records if r.get("to") in ("done", "failed")]
    assert table_rows(project, name) == (SECOND_COUNT, SECOND_COUNT)
    assert ends[-1]["to"] == "done"
    assert len(ends) == len(run_ids)


@pytest.mark.parametrize("kind", EXACT_KINDS)
@pytest.mark.parametrize("point", ["state:decide_retry", "state:waiting"])
def test_kill_during_retry(tmp_path: Path, unique_name: str, kind: str, point: str) -> None:
    """A run killed while it decides or waits to retry a failed extract is finished later."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)
    marker = str(tmp_path / "failed_once")

    killed = run_cli("run", project, unique_name, fault=f"kill@{point}", FAIL_ONCE_MARKER=marker)
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT)
    again = run_cli("run", project, unique_name)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    check_finished(project, unique_name)


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_kill_inside_extract(tmp_path: Path, unique_name: str, kind: str) -> None:
    """A run killed halfway through extracting its rows loads everything on the next run."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)

    killed = run_cli("run", project, unique_name, KILL_INSIDE_EXTRACT="1")
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT)
    again = run_cli("run", project, unique_name)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    check_finished(project, unique_name)


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_kill_while_finalizing(tmp_path: Path, unique_name: str, kind: str) -> None:
    """A run killed while it loads an earlier run's package is finished by the run after it."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)
    first = run_cli("run", project, unique_name, fault="kill@step:normalize")

    second = run_cli("run", project, unique_name, fault="kill@state:finalize_pending")
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT)
    third = run_cli("run", project, unique_name)

    assert first.returncode == -signal.SIGKILL
    assert second.returncode == -signal.SIGKILL
    assert third.returncode == 0, third.stderr
    check_finished(project, unique_name)


@pytest.mark.parametrize("kind", EXACT_KINDS)
@pytest.mark.parametrize("point", ["state:clean_folder", "state:sync"])
def test_kill_around_clean_folder(tmp_path: Path, unique_name: str, kind: str, point: str) -> None:
    """With run_from_clean_folder, a kill while the folder is removed or synced loses nothing."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)
    run_cli("run", project, unique_name)
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT, clean_folder=True)

    killed = run_cli("run", project, unique_name, fault=f"kill@{point}")
    again = run_cli("run", project, unique_name)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    check_finished(project, unique_name)


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_kill_while_replaying_traces(tmp_path: Path, unique_name: str, kind: str) -> None:
    """A run killed while it replays spilled traces loses neither rows nor traces."""
    bucket = tmp_path / "bucket"
    bucket.write_text("a file where the bucket folder should be, so traces spill")
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT, trace_bucket=bucket)
    spilled = run_cli("run", project, unique_name)
    bucket.unlink()

    killed = run_cli("run", project, unique_name, fault="kill@state:replay_traces")
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT, trace_bucket=bucket)
    again = run_cli("run", project, unique_name)

    trace_files = list((bucket / "traces" / f"{unique_name}_trace").glob("*"))
    assert spilled.returncode == 0, spilled.stderr
    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert len(trace_files) >= 1
    check_finished(project, unique_name)


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_kill_on_entering_failed(tmp_path: Path, unique_name: str, kind: str) -> None:
    """A run killed right after it recorded `failed` has ended; the next run starts afresh."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT, retry_extract=False)
    marker = str(tmp_path / "failed_once")

    killed = run_cli("run", project, unique_name, fault="kill@state:failed", FAIL_ONCE_MARKER=marker)
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT, retry_extract=False)
    again = run_cli("run", project, unique_name)

    records = journal_records(project.parent / "_data" / "journal", unique_name)
    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert [r["to"] for r in records if r.get("to") in ("done", "failed")] == ["failed", "done"]
    assert table_rows(project, unique_name) == (SECOND_COUNT, SECOND_COUNT)


@pytest.mark.parametrize("point", ["step:normalize", "jobs:1", "state:store_trace"])
def test_resume_command_keeps_run_id(tmp_path: Path, unique_name: str, point: str) -> None:
    """`runner-fsm resume` finishes the killed run under its run id and counts the crash."""
    project = write_project(tmp_path / "project", "merge", unique_name, FIRST_COUNT)
    run_cli("run", project, unique_name, fault=f"kill@{point}")
    before = journal_records(project.parent / "_data" / "journal", unique_name)

    resumed = run_cli("resume", project, unique_name)

    records = journal_records(project.parent / "_data" / "journal", unique_name)
    after = records[len(before):]
    opened = [r for r in after if r.get("trigger") == "opened"]
    assert resumed.returncode == 0, resumed.stderr
    assert before[0]["run_id"] in resumed.stdout
    assert {r["run_id"] for r in after} == {before[0]["run_id"]}
    assert opened[0]["resumed"]["tries"]["attempt"] == 1
    assert after[-1]["to"] == "done"
    assert table_rows(project, unique_name) == (FIRST_COUNT, FIRST_COUNT)


def test_resume_with_nothing_interrupted(tmp_path: Path, unique_name: str) -> None:
    """`runner-fsm resume` after a run that ended prints so and changes nothing."""
    project = write_project(tmp_path / "project", "merge", unique_name, FIRST_COUNT)
    run_cli("run", project, unique_name)
    before = journal_records(project.parent / "_data" / "journal", unique_name)

    resumed = run_cli("resume", project, unique_name)

    after = journal_records(project.parent / "_data" / "journal", unique_name)
    assert resumed.returncode == 0
    assert "no interrupted run" in resumed.stdout
    assert len(after) == len(before)
