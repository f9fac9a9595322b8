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
            for i in range(count):
                yield {"i": i, "square": i * i}
    """,
    "incremental": """
        @dlt.resource(table_name="numbers", write_disposition="append")
        def numbers(count, cursor=dlt.sources.incremental("i", initial_value=-1)):
            for i in range(count):
                yield {"i": i, "square": i * i}
    """,
}
FIRST_COUNT = 40
SECOND_COUNT = 45

# points inside one run of the machine; states are killed right after they are journaled
KILL_POINTS = [
    "state:sync",
    "state:attempt",
    "step:extract",
    "step:normalize",
    "jobs:1",
    "step:load",
    "state:store_trace",
    "state:done",
]


def write_project(root: Path, kind: str, name: str, count: int) -> Path:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "numbers.py").write_text(
        "import dlt\n" + textwrap.dedent(SOURCES[kind])
    )
    project = root / "dlt.yml"
    project.write_text(
        textwrap.dedent(
            f"""
            sources:
              numbers:
                type: sources.numbers.numbers
                with_args: {{count: {count}}}
            destinations:
              warehouse: {{type: duckdb}}
            pipelines:
              {name}:
                source: numbers
                destination: warehouse
                dataset_name: data
                run_config:
                  store_trace_info: true
                  retry_policy: {{type: fixed, max_attempts: 3}}
            """
        )
    )
    return project


def run_cli(command: str, project: Path, name: str, fault: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(CHILD_ENV)
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


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_then_run_again(tmp_path: Path, unique_name: str, kind: str, point: str) -> None:
    """A run killed at `point` is finished by the next run, and the rows are exact."""
    project = write_project(tmp_path / "project", kind, unique_name, FIRST_COUNT)

    killed = run_cli("run", project, unique_name, fault=f"kill@{point}")
    write_project(tmp_path / "project", kind, unique_name, SECOND_COUNT)
    again = run_cli("run", project, unique_name)

    records = journal_records(project.parent / "_data" / "journal", unique_name)
    run_ids = list(dict.fromkeys(r["run_id"] for r in records))
    ends = [r for r in records if r.get("to") in ("done", "failed")]
    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert table_rows(project, unique_name) == (SECOND_COUNT, SECOND_COUNT)
    assert [r["to"] for r in ends][-1] == "done"
    assert all(r["to"] == "done" for r in ends)
    assert len(ends) == len(run_ids)


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
    """`runner-fsm resume` after a run that ended says so and changes nothing."""
    project = write_project(tmp_path / "project", "merge", unique_name, FIRST_COUNT)
    run_cli("run", project, unique_name)
    before = journal_records(project.parent / "_data" / "journal", unique_name)

    resumed = run_cli("resume", project, unique_name)

    after = journal_records(project.parent / "_data" / "journal", unique_name)
    assert resumed.returncode == 0
    assert "no interrupted run" in resumed.stdout
    assert len(after) == len(before)
