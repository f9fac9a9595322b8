"""The `progress` key of a pipeline in `dlt.yml`: the collector named by dotted path or dlt's name."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from dlt.common.runtime.collector import LogCollector, NullCollector

from runner_fsm.cli import EXIT_DONE, EXIT_USAGE, main
from runner_fsm.exceptions import ConfigError
from runner_fsm.project import load_project

PROJECT = """\
sources:
  numbers:
    type: sources.numbers.numbers
destinations:
  warehouse:
    type: duckdb
pipelines:
  {name}:
    source: numbers
    destination: warehouse
    progress: {progress}
"""

SOURCES = '''
import dlt


@dlt.resource
def numbers():
    yield from ({"n": n} for n in range(3))
'''

CALLBACKS = '''
import json
import os

from runner_fsm import RunnerCallbacks


class FileNotes(RunnerCallbacks):
    """Appends the name of every callback, and the rows of `on_after`, to NOTES_FILE."""

    def _note(self, *values):
        with open(os.environ["NOTES_FILE"], "a") as notes:
            notes.write(json.dumps(values) + "\\n")

    def on_before(self, pipeline):
        self._note("on_before", pipeline.pipeline_name)

    def on_after(self, pipeline, trace, success, summary):
        self._note("on_after", success, summary)


SHARED = FileNotes()


class NeedsArguments(RunnerCallbacks):
    def __init__(self, url):
        self.url = url


class Exploding(RunnerCallbacks):
    def __init__(self):
        raise RuntimeError("no webhook configured")


class NotACollector:
    pass
'''


pytestmark = pytest.mark.usefixtures("restore_process_state")


@pytest.fixture
def name(unique_name: str) -> str:
    return unique_name.replace("__", "_")


def write_project(root: Path, name: str, progress: str) -> Path:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "numbers.py").write_text(SOURCES)
    (root / "hooks").mkdir(exist_ok=True)
    (root / "hooks" / "__init__.py").write_text("")
    (root / "hooks" / "notes.py").write_text(CALLBACKS)
    path = root / "dlt.yml"
    path.write_text(PROJECT.format(name=name, progress=progress))
    return path


def test_dotted_path_to_class(tmp_path: Path, name: str) -> None:
    project = load_project(write_project(tmp_path, name, "hooks.notes.FileNotes"))

    pipeline = project.make_pipeline(name)

    assert type(pipeline.collector).__name__ == "FileNotes"
    assert type(project.make_collector(name)).__name__ == "FileNotes"
    assert project.make_collector(name) is not project.make_collector(name)


def test_dotted_path_to_object(tmp_path: Path, name: str) -> None:
    project = load_project(write_project(tmp_path, name, "hooks.notes.SHARED"))

    assert project.make_collector(name) is sys.modules["hooks.notes"].SHARED


def test_dlt_collector_by_name(tmp_path: Path, name: str) -> None:
    project = load_project(write_project(tmp_path, name, "log"))

    assert isinstance(project.make_pipeline(name).collector, LogCollector)


def test_no_progress_key(tmp_path: Path, name: str) -> None:
    path = write_project(tmp_path, name, "log")
    path.write_text(path.read_text().replace("    progress: log\n", ""))
    project = load_project(path)

    assert project.make_collector(name) is None
    assert isinstance(project.make_pipeline(name).collector, NullCollector)


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ("rich", "not one of dlt's collectors"),
        ("hooks.missing.Notes", "module `hooks.missing` is not found"),
        ("hooks.notes.Missing", "has no attribute `Missing`"),
        ("hooks.notes.NotACollector", "not a dlt Collector"),
        ("hooks.notes.json", "not a dlt Collector"),
        ("hooks.notes.NeedsArguments", "callable with no arguments"),
        ("hooks.notes.Exploding", "no webhook configured"),
    ],
)
def test_bad_collector_names_the_key(
    tmp_path: Path, name: str, progress: str, expected: str
) -> None:
    path = write_project(tmp_path, name, progress)
    project = load_project(path)

    with pytest.raises(ConfigError) as caught:
        project.make_pipeline(name)

    assert expected in str(caught.value)
    assert caught.value.source == str(path)
    assert caught.value.line == 11
    assert caught.value.key == f"pipelines.{name}.progress"
    assert caught.value.value == progress


@pytest.mark.parametrize("progress", ["7", "''", "[hooks.notes.FileNotes]"])
def test_progress_must_be_a_string(tmp_path: Path, name: str, progress: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project(write_project(tmp_path, name, progress))

    assert caught.value.key == f"pipelines.{name}.progress"
    assert caught.value.line == 11


def test_cli_calls_named_collector(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.jsonl"
    monkeypatch.setenv("NOTES_FILE", str(notes))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    path = write_project(tmp_path / "project", name, "hooks.notes.FileNotes")

    assert main(["run", str(path), name]) == EXIT_DONE

    calls = [json.loads(line) for line in notes.read_text().splitlines()]
    assert calls == [["on_before", name], ["on_after", True, {"_dlt_pipeline_state": 1, "numbers": 3}]]


def test_cli_bad_collector_exits_2(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_project(tmp_path / "project", name, "hooks.notes.NotACollector")

    assert main(["run", str(path), name]) == EXIT_USAGE

    err = capsys.readouterr().err
    assert f"{path}:11" in err
    assert "not a dlt Collector" in err
    assert textwrap.shorten(err, 2000).count("Traceback") == 0


def test_relative_duckdb_path_in_new_project(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative duckdb path is resolved in `_data/local`, which the first run creates."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    path = write_project(tmp_path / "project", name, "log")
    text = path.read_text().replace("    type: duckdb\n", "    type: duckdb\n    credentials: rel.duckdb\n")
    path.write_text(text.replace("    progress: log\n", ""))

    assert main(["run", str(path), name]) == EXIT_DONE

    assert (tmp_path / "project" / "_data" / "local" / "rel.duckdb").is_file()
