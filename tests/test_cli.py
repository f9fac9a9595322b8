"""Tests of the `runner-fsm` command line: real projects in tmp_path, real dlt, real duckdb files.

End-to-end cases start the installed console script in a subprocess, so that the exit code and
everything on stderr are the user's. Cases that only check parsed options or row counts call
`runner_fsm.cli.main` in this process, which is faster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from runner_fsm.cli import EXIT_DONE, EXIT_FAILED, EXIT_USAGE, main
from runner_fsm.machine import default_spec_path
from tests.helpers import duckdb_count, journal_records, transitions

RUNNER_SCRIPT = Path(sys.executable).with_name("runner-fsm")

# the marker of the line that an invalid-file case expects the error to name
MARK = "# <- error"

ROWS = 5
LETTERS = "abcd"

SOURCE_MODULE = f'''
"""Sources of the command-line tests."""

import dlt


@dlt.source
def demo_source(rows: int = {ROWS}, disposition: str = "replace"):
    @dlt.resource(write_disposition=disposition, primary_key="n")
    def numbers():
        for n in range(rows):
            yield {{"n": n}}

    @dlt.resource(write_disposition=disposition, primary_key="letter")
    def letters():
        for letter in "{LETTERS}":
            yield {{"letter": letter}}

    return numbers, letters


@dlt.source
def broken_source():
    @dlt.resource
    def numbers():
        yield {{"n": 0}}
        raise RuntimeError("the numbers API is down")

    return numbers


@dlt.source
def raising_body_source():
    raise ValueError("the source cannot start")


@dlt.source
def keyless_merge_source():
    # dlt warns through Python logging that a merge without keys deletes nothing
    @dlt.resource(write_disposition="merge")
    def numbers():
        yield {{"n": 0}}

    return numbers
'''


pytestmark = pytest.mark.usefixtures("restore_process_state")


@pytest.fixture
def pipeline_name(unique_name: str) -> str:
    """`unique_name` without repeated underscores, which dlt would drop from dataset names."""
    return re.sub("_+", "_", unique_name)


def project_text(name: str, disposition: str = "replace") -> str:
    """Return a dlt.yml: pipeline `name` loads `demo_source`, and `name_<source>` the other sources."""
    return textwrap.dedent(
        f"""\
        sources:
          demo:
            type: sources.demo.demo_source
            with_args:
              disposition: {disposition}
          broken:
            type: sources.demo.broken_source
          raising_body:
            type: sources.demo.raising_body_source
          keyless_merge:
            type: sources.demo.keyless_merge_source
        destinations:
          warehouse:
            type: duckdb
        pipelines:
          {name}:
            source: demo
            destination: warehouse
            dataset_name: {name}_data
          {name}_broken:
            source: broken
            destination: warehouse
            run_config:
              retry_policy:
                type: fixed
                max_attempts: 3
          {name}_raising_body:
            source: raising_body
            destination: warehouse
          {name}_keyless_merge:
            source: keyless_merge
            destination: warehouse
        """
    )


def write_project(root: Path, text: str) -> Path:
    """Write `dlt.yml` with `text` and the `sources` package into `root` and return the file."""
    package = root / "sources"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "demo.py").write_text(SOURCE_MODULE)
    project_file = root / "dlt.yml"
    project_file.write_text(text)
    return project_file


@pytest.fixture
def project_file(tmp_path: Path, pipeline_name: str) -> Path:
    """A project in `tmp_path / "project"` whose pipelines are named after this test."""
    return write_project(tmp_path / "project", project_text(pipeline_name))


def run_cli(*args: Any, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `runner-fsm` console script with `args`, telemetry off, and capture its output."""
    environment = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    return subprocess.run(
        [str(RUNNER_SCRIPT), *(str(a) for a in args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def database_of(project_file: Path, pipeline: str) -> Path:
    """Return the duckdb file that a duckdb destination without credentials writes."""
    return project_file.parent / "_data" / "local" / f"{pipeline}.duckdb"


def table_names(database: Path, dataset: str) -> set[str]:
    """Return the names of the tables of `dataset` in the duckdb file `database`."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [dataset]
        ).fetchall()
    return {row[0] for row in rows}


def marked_line(text: str) -> int:
    """Return the 1-based number of the line of `text` that carries `MARK`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if MARK in line)


# --- successful runs -----------------------------------------------------------------------------


def test_run_loads_rows_and_journal(project_file: Path, pipeline_name: str) -> None:
    """A run exits 0, loads every row into _data/local and ends its journal in `done`."""
    database = database_of(project_file, pipeline_name)
    journal_dir = project_file.parent / "_data" / "journal"

    result = run_cli("run", project_file, pipeline_name)

    assert result.returncode == EXIT_DONE, result.stderr
    assert duckdb_count(database, f"{pipeline_name}_data", "numbers") == ROWS
    assert duckdb_count(database, f"{pipeline_name}_data", "letters") == len(LETTERS)
    records = journal_records(journal_dir, pipeline_name)
    assert records[-1]["to"] == "done"
    assert records[-1]["summary"]["rows"]["numbers"] == ROWS
    assert "Traceback" not in result.stderr


def test_journal_dir_option(project_file: Path, pipeline_name: str, tmp_path: Path) -> None:
    """`--journal-dir` writes the journal into the given folder and not into _data/journal."""
    journal_dir = tmp_path / "journals"

    result = run_cli("run", project_file, pipeline_name, "--journal-dir", journal_dir)

    assert result.returncode == EXIT_DONE, result.stderr
    assert journal_records(journal_dir, pipeline_name)[-1]["to"] == "done"
    assert not (project_file.parent / "_data" / "journal").exists()


@pytest.mark.parametrize(
    ("disposition", "factor"),
    [("replace", 1), ("merge", 1), ("append", 2)],
)
def test_second_run_counts(
    tmp_path: Path, pipeline_name: str, disposition: str, factor: int
) -> None:
    """A second run exits 0: replace and merge keep the counts, append doubles them."""
    project_file = write_project(tmp_path, project_text(pipeline_name, disposition))
    database = database_of(project_file, pipeline_name)
    dataset = f"{pipeline_name}_data"

    first = run_cli("run", project_file, pipeline_name)
    second = run_cli("run", project_file, pipeline_name)

    assert first.returncode == EXIT_DONE, first.stderr
    assert second.returncode == EXIT_DONE, second.stderr
    assert duckdb_count(database, dataset, "numbers") == ROWS * factor
    assert duckdb_count(database, dataset, "letters") == len(LETTERS) * factor
    records = journal_records(project_file.parent / "_data" / "journal", pipeline_name)
    assert len({r["run_id"] for r in records}) == 2
    assert records[-1]["to"] == "done"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(["--limit", "2"], {"numbers": 2, "letters": 2}, id="limit"),
        pytest.param(["--resources", "letters"], {"letters": len(LETTERS)}, id="resources"),
        pytest.param(
            ["--resources", " numbers , letters "],
            {"numbers": ROWS, "letters": len(LETTERS)},
            id="resources_with_spaces",
        ),
        pytest.param(["--limit", "3", "--resources", "numbers"], {"numbers": 3}, id="both"),
    ],
)
def test_limit_and_resources_rows(
    project_file: Path, pipeline_name: str, options: list[str], expected: dict[str, int]
) -> None:
    """`--limit` caps the rows of each resource and `--resources` loads only the named tables."""
    database = database_of(project_file, pipeline_name)
    dataset = f"{pipeline_name}_data"

    code = main(["run", str(project_file), pipeline_name, *options])

    assert code == EXIT_DONE
    data_tables = {t for t in table_names(database, dataset) if not t.startswith("_dlt")}
    assert data_tables == set(expected)
    for table, count in expected.items():
        assert duckdb_count(database, dataset, table) == count, table


def test_run_from_other_cwd(project_file: Path, pipeline_name: str, tmp_path: Path) -> None:
    """A relative DLT_YML from another working folder runs and writes only beside dlt.yml."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = database_of(project_file, pipeline_name)

    result = run_cli("run", Path("..") / "project" / "dlt.yml", pipeline_name, cwd=elsewhere)

    assert result.returncode == EXIT_DONE, result.stderr
    assert duckdb_count(database, f"{pipeline_name}_data", "numbers") == ROWS
    assert (project_file.parent / "_data" / "journal" / f"{pipeline_name}.jsonl").is_file()
    assert list(elsewhere.iterdir()) == []


# --- invalid command lines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        pytest.param(["--limit", "0"], ["--limit", "'0'"], id="limit_zero"),
        pytest.param(["--limit", "-3"], ["--limit", "'-3'"], id="limit_negative"),
        pytest.param(["--limit", "x"], ["--limit", "'x'"], id="limit_text"),
        pytest.param(["--limit", "2.5"], ["--limit", "'2.5'"], id="limit_float"),
        pytest.param(["--resources", ""], ["--resources", "''"], id="resources_empty"),
        pytest.param(["--resources", "a,,b"], ["--resources", "'a,,b'"], id="resources_gap"),
        pytest.param(["--resources", "numbers,"], ["--resources", "'numbers,'"], id="trailing"),
        pytest.param(
            ["--resources", "numbers,squares"],
            ["--resources", "'squares'", "'numbers'", "'letters'"],
            id="resources_unknown",
        ),
        pytest.param(["--log-format", "xml"], ["--log-format", "'xml'"], id="log_format"),
    ],
)
def test_invalid_option_exits_2(
    project_file: Path,
    pipeline_name: str,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    fragments: list[str],
) -> None:
    """An invalid option value exits 2 with a message naming the option and the value."""
    code = main(["run", str(project_file), pipeline_name, *options])

    stderr = capsys.readouterr().err
    assert code == EXIT_USAGE
    for fragment in fragments:
        assert fragment in stderr
    assert not (project_file.parent / "_data" / "journal").exists()


def test_missing_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`runner-fsm run` without DLT_YML and PIPELINE exits 2 naming the missing arguments."""
    code = main(["run"])

    stderr = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "DLT_YML" in stderr
    assert "PIPELINE" in stderr


# --- invalid project files -----------------------------------------------------------------------

VALID_FILE = """\
sources:
  demo:
    type: sources.demo.demo_source
destinations:
  warehouse:
    type: duckdb
pipelines:
  p:
    source: demo
    destination: warehouse
"""


def edited(old: str, new: str) -> str:
    """Return `VALID_FILE` with its one occurrence of `old` replaced by `new`."""
    assert VALID_FILE.count(old) == 1, old
    return VALID_FILE.replace(old, new)


def with_run_config(lines: str) -> str:
    """Return `VALID_FILE` with a `run_config` of pipeline `p` made of `lines`."""
    return VALID_FILE + "    run_config:\n" + textwrap.indent(lines, "      ")


# (id, file text, PIPELINE argument, key or None, text of the bad value in the message)
INVALID_FILES = [
    ("unknown_top_level_key", VALID_FILE + "sinks: {}  # <- error\n", "p", "sinks", "'sinks'"),
    (
        "unknown_pipeline_argument",
        edited("pipelines:\n", "pipelines:  # <- error\n"),
        "nowhere",
        "pipelines",
        "'nowhere'",
    ),
    (
        "missing_destination",
        edited(
            "  p:\n    source: demo\n    destination: warehouse\n",
            "  p:  # <- error\n    source: demo\n",
        ),
        "p",
        "pipelines.p.destination",
        "'warehouse'",
    ),
    (
        "undefined_source",
        edited("    source: demo\n", "    source: demos  # <- error\n"),
        "p",
        "pipelines.p.source",
        "'demos'",
    ),
    (
        "unknown_run_config_key",
        with_run_config("retries: 3  # <- error\n"),
        "p",
        "pipelines.p.run_config.retries",
        "'retries'",
    ),
    (
        "unknown_policy_type",
        with_run_config("retry_policy:\n  type: exponential  # <- error\n"),
        "p",
        "pipelines.p.run_config.retry_policy.type",
        "exponential",
    ),
    (
        "max_attempts_zero",
        with_run_config("retry_policy:\n  type: fixed\n  max_attempts: 0  # <- error\n"),
        "p",
        "pipelines.p.run_config.retry_policy.max_attempts",
        "0",
    ),
    (
        "retry_step_transform",
        with_run_config("retry_pipeline_steps: [load, transform]  # <- error\n"),
        "p",
        "pipelines.p.run_config.retry_pipeline_steps",
        "'transform'",
    ),
    (
        "clean_folder_yes",
        with_run_config('run_from_clean_folder: "yes"  # <- error\n'),
        "p",
        "pipelines.p.run_config.run_from_clean_folder",
        "'yes'",
    ),
    (
        "terminal_pending_ignore",
        with_run_config("on_terminal_pending: ignore  # <- error\n"),
        "p",
        "pipelines.p.run_config.on_terminal_pending",
        "'ignore'",
    ),
    (
        "source_module_missing",
        edited("sources.demo.demo_source\n", "sources.missing.demo_source  # <- error\n"),
        "p",
        "sources.demo.type",
        "sources.missing.demo_source",
    ),
    (
        "source_attribute_missing",
        edited("sources.demo.demo_source\n", "sources.demo.no_source  # <- error\n"),
        "p",
        "sources.demo.type",
        "no_source",
    ),
    (
        "with_args_unknown_argument",
        edited(
            "sources.demo.demo_source\n",
            "sources.demo.demo_source\n    with_args:\n      colour: red  # <- error\n",
        ),
        "p",
        "sources.demo.with_args.colour",
        "'colour'",
    ),
    (
        "destination_type_unknown",
        edited("    type: duckdb\n", "    type: nowhere_db  # <- error\n"),
        "p",
        "destinations.warehouse.type",
        "'nowhere_db'",
    ),
    (
        "yaml_bad_indentation",
        edited(
            "    destination: warehouse\n",
            "    destination: warehouse\n   dataset_name: d  # <- error\n",
        ),
        "p",
        None,
        "invalid YAML",
    ),
    (
        "yaml_tab_indent",
        edited("    source: demo\n", "\tsource: demo  # <- error\n"),
        "p",
        None,
        "'\\t'",
    ),
    (
        "duplicate_key",
        edited("    source: demo\n", "    source: demo\n    source: demo  # <- error\n"),
        "p",
        "pipelines.p.source",
        "'source'",
    ),
]


@pytest.mark.parametrize(
    ("text", "pipeline", "key", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID_FILES],
)
def test_invalid_file_exits_2(
    tmp_path: Path, text: str, pipeline: str, key: str | None, value: str
) -> None:
    """An invalid dlt.yml exits 2, naming the file, line, key and value, with no traceback."""
    project_file = write_project(tmp_path, text)

    result = run_cli("run", project_file, pipeline)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"{project_file}:{marked_line(text)}" in result.stderr
    if key is not None:
        assert f"key `{key}`" in result.stderr
    assert value in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("runner-fsm: error: ")


def test_unclosed_quote_names_its_line(tmp_path: Path) -> None:
    """An unclosed quote exits 2 naming the line where the quoted value starts."""
    text = edited("    source: demo\n", '    source: "demo  # <- error\n')
    project_file = write_project(tmp_path, text)

    result = run_cli("run", project_file, "p")

    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"{project_file}:{marked_line(text)}:" in result.stderr


def test_unknown_pipeline_lists_defined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown PIPELINE argument lists the pipelines that the file defines."""
    text = VALID_FILE + "  q:\n    destination: warehouse\n"
    project_file = write_project(tmp_path, text)

    code = main(["run", str(project_file), "nowhere"])

    stderr = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "'p', 'q'" in stderr


def test_missing_project_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A DLT_YML that does not exist exits 2 naming the path."""
    missing = tmp_path / "nowhere" / "dlt.yml"

    code = main(["run", str(missing), "p"])

    stderr = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert str(missing) in stderr
    assert "does not exist" in stderr


def test_journal_dir_file_exits_2(project_file: Path, pipeline_name: str, tmp_path: Path) -> None:
    """A `--journal-dir` that is a file exits 2, as an invalid command line."""
    not_a_folder = tmp_path / "journal.txt"
    not_a_folder.write_text("")

    result = run_cli("run", project_file, pipeline_name, "--journal-dir", not_a_folder)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "--journal-dir" in result.stderr
    assert "Traceback" not in result.stderr


# --- machine specs -------------------------------------------------------------------------------


def shipped_spec() -> str:
    return default_spec_path().read_text(encoding="utf-8")


def spec_with_exit_from_done() -> str:
    return shipped_spec() + "  - {trigger: again, source: done, dest: start}\n"


def spec_with_unknown_guard() -> str:
    text = shipped_spec()
    old = "{trigger: opened, source: start, dest: clean_folder, conditions: [clean_folder_due]}"
    assert text.count(old) == 1
    return text.replace(old, old.replace("clean_folder_due", "folder_is_dirty"))


@pytest.mark.parametrize(
    ("make_spec", "fragments"),
    [
        pytest.param(spec_with_exit_from_done, ["state `done`", "'start'"], id="exit_from_done"),
        pytest.param(
            spec_with_unknown_guard, ["state `start`", "`folder_is_dirty`"], id="unknown_guard"
        ),
        pytest.param(None, ["cannot read the spec"], id="missing_file"),
    ],
)
def test_broken_spec_exits_2(
    project_file: Path, pipeline_name: str, tmp_path: Path, make_spec: Any, fragments: list[str]
) -> None:
    """A `--spec` that breaks a rule of the machine, or is missing, exits 2 naming file and state."""
    spec = tmp_path / "machine.yaml"
    if make_spec is not None:
        spec.write_text(make_spec())

    result = run_cli("run", project_file, pipeline_name, "--spec", spec)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert str(spec) in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project_file.parent / "_data" / "journal").exists()


# --- failed runs ---------------------------------------------------------------------------------


def test_failed_run_exits_1(project_file: Path, pipeline_name: str) -> None:
    """A resource that raises fails the run once (extract is not retried) and exits 1."""
    broken = f"{pipeline_name}_broken"

    result = run_cli("run", project_file, broken)

    assert result.returncode == EXIT_FAILED, result.stderr
    assert f"`{broken}`" in result.stderr
    assert "the numbers API is down" in result.stderr
    assert "Traceback" not in result.stderr
    records = journal_records(project_file.parent / "_data" / "journal", broken)
    assert records[-1]["to"] == "failed"
    assert records[-1]["summary"]["tries"]["attempt"] == 1
    entered = [dest for _, dest, _ in transitions(records)]
    assert entered.count("attempt") == 1
    assert records[-1]["exception"]["step"] == "extract"


def test_source_body_error_no_traceback(project_file: Path, pipeline_name: str) -> None:
    """A source function that raises exits 1 with one error line naming the pipeline."""
    pipeline = f"{pipeline_name}_raising_body"

    result = run_cli("run", project_file, pipeline)

    assert result.returncode == EXIT_FAILED
    assert "Traceback" not in result.stderr
    assert f"`{pipeline}`" in result.stderr
    assert "the source cannot start" in result.stderr


# --- logs ----------------------------------------------------------------------------------------


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Parse the lines of `stderr` that start with `{` as JSON objects."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_json_log_events(project_file: Path, pipeline_name: str) -> None:
    """`--log-format json` logs JSON objects with event, level, run id and pipeline."""
    result = run_cli("run", project_file, pipeline_name, "--log-format", "json")

    assert result.returncode == EXIT_DONE, result.stderr
    events = json_lines(result.stderr)
    for event in events:
        assert {"event", "run_id", "pipeline"} <= set(event), event
        assert "level" in event or "log_level" in event, event
        assert event["pipeline"] == pipeline_name
    names = [event["event"] for event in events]
    assert names[0] == "run_started"
    assert names[-1] == "run_done"
    assert len({event["run_id"] for event in events}) == 1


def test_json_log_every_line_json(project_file: Path, pipeline_name: str) -> None:
    """With `--log-format json`, a dlt warning is also a JSON line on stderr."""
    result = run_cli("run", project_file, f"{pipeline_name}_keyless_merge", "--log-format", "json")

    assert result.returncode == EXIT_DONE, result.stderr
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == []


# --- help ----------------------------------------------------------------------------------------


# words that the help text of each option must contain
OPTION_HELP = {
    "--journal-dir": "folder of the journal files",
    "--log-format": "JSON lines",
    "--limit": "at most N items",
    "--resources": "only these resources",
    "--spec": "machine spec (YAML)",
}


def test_help_lists_run() -> None:
    """`runner-fsm --help` exits 0 and lists the `run` command."""
    result = run_cli("--help")

    assert result.returncode == EXIT_DONE
    assert "run one pipeline of a dlt project file" in " ".join(result.stdout.split())


def test_run_help_lists_options() -> None:
    """`runner-fsm run --help` exits 0 and describes every option of `run`."""
    result = run_cli("run", "--help")

    # argparse wraps the help at the terminal width, so lines are joined before matching
    text = " ".join(result.stdout.split())
    assert result.returncode == EXIT_DONE
    for option, words in OPTION_HELP.items():
        assert option in text
        assert words in text, option
    assert "DLT_YML" in text
    assert "PIPELINE" in text


EXAMPLE_JOURNAL = Path(__file__).resolve().parent.parent / "journal_examples" / "clean_success.jsonl"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["journal", "list", str(EXAMPLE_JOURNAL)],
        ["journal", "show", str(EXAMPLE_JOURNAL)],
        ["journal", "verify", str(EXAMPLE_JOURNAL)],
        ["spec", "--format", "mermaid"],
    ],
    ids=["help", "list", "show", "verify", "spec"],
)
def test_command_skips_dlt_import(arguments: list[str]) -> None:
    """Commands that run no pipeline start without importing dlt."""
    code = (
        "import sys\n"
        "from runner_fsm.cli import main\n"
        f"main({arguments!r})\n"
        "print('dlt' in sys.modules)\n"
    )
    environment = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("fault", ["explode@state:attempt", "kill@state:attempt#x", "kill@state:attempt#0", "kill@moon:1"])
def test_malformed_fault_point_exits_2(
    project_file: Path,
    pipeline_name: str,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A malformed RUNNER_FSM_FAULT is an error of the environment, found before any work."""
    monkeypatch.setenv("RUNNER_FSM_FAULT", fault)

    assert main(["run", str(project_file), pipeline_name]) == EXIT_USAGE

    err = capsys.readouterr().err
    assert "RUNNER_FSM_FAULT" in err
    assert repr(fault) in err
    assert not (project_file.parent / "_data" / "journal" / f"{pipeline_name}.jsonl").exists()


def test_journal_output_into_closed_pipe(tmp_path: Path) -> None:
    """`journal show | head -1` on a long run prints one line and no traceback."""
    import orjson

    from runner_fsm.journal import GENESIS_HASH, record_hash

    journal = tmp_path / "long.jsonl"
    previous = GENESIS_HASH
    with open(journal, "wb") as handle:
        for seq in range(1, 20_001):
            record = {
                "v": 1, "seq": seq, "ts": "2026-12-04T00:00:00+00:00", "run_id": "r1",
                "pipeline": "p", "kind": "transition", "from": "waiting", "to": "attempt",
                "trigger": "waited", "operation": "attempt", "attempt": seq, "prev": previous,
            }
            record["hash"] = previous = record_hash(record)
            handle.write(orjson.dumps(record) + b"\n")
    environment = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    shell = f"'{RUNNER_SCRIPT}' journal show --format json '{journal}' | head -1"

    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr
