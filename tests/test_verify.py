"""`runner-fsm journal verify`: the sequence and the hash chain of real journals."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from runner_fsm.audit import verify_journal
from runner_fsm.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "journal_examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.jsonl"))


def copy_example(tmp_path: Path) -> tuple[Path, list[bytes]]:
    path = tmp_path / "journal.jsonl"
    shutil.copy(EXAMPLES / "killed_and_resumed.jsonl", path)
    return path, path.read_bytes().splitlines(keepends=True)


def edit_field(lines: list[bytes]) -> list[bytes]:
    record = orjson.loads(lines[3])
    record["attempt"] = 7
    return lines[:3] + [orjson.dumps(record) + b"\n"] + lines[4:]


def remove_line(lines: list[bytes]) -> list[bytes]:
    return lines[:3] + lines[4:]


def swap_lines(lines: list[bytes]) -> list[bytes]:
    return lines[:3] + [lines[4], lines[3]] + lines[5:]


class TestVerifyJournal:
    @pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
    def test_examples_are_valid(self, path: Path) -> None:
        """Every committed example journal verifies."""
        result = verify_journal(path)

        assert result.ok, result.problem
        assert result.records == len(path.read_bytes().splitlines())

    @pytest.mark.parametrize(
        "change, reason",
        [
            (edit_field, "the record was edited"),
            (remove_line, "missing or out of order"),
            (swap_lines, "missing or out of order"),
        ],
    )
    def test_broken_line_named(self, tmp_path: Path, change: object, reason: str) -> None:
        """An edited, removed or reordered record is reported at line 4."""
        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(change(lines)))  # type: ignore[operator]

        result = verify_journal(path)

        assert not result.ok
        assert result.problem_line == 4
        assert reason in str(result.problem)

    def test_torn_line_skipped(self, tmp_path: Path) -> None:
        """A torn line that the chain goes on past is skipped, not a failure."""
        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(lines[:5] + [b'{"v": 1, "seq": 6, "ts\n'] + lines[5:]))

        result = verify_journal(path)

        assert result.ok, result.problem
        assert len(result.skipped) == 1
        assert result.skipped[0].startswith("line 6:")


class TestVerifyCommand:
    def test_valid_journal_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A valid journal file exits 0 and prints how many records it checked."""
        code = main(["journal", "verify", str(EXAMPLES / "nycflights_demo.jsonl")])

        assert code == 0
        assert "valid, 14 records of 2 runs" in capsys.readouterr().out

    def test_broken_journal_exits_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A broken journal exits 1 and names the file and the line."""
        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(remove_line(lines)))

        code = main(["journal", "verify", str(path)])

        assert code == 1
        assert f"{path}:4:" in capsys.readouterr().out

    def test_project_and_pipeline(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """DLT_YML PIPELINE finds the journal in _data/journal beside the project file."""
        (tmp_path / "_data" / "journal").mkdir(parents=True)
        shutil.copy(EXAMPLES / "nycflights_demo.jsonl", tmp_path / "_data" / "journal" / "flights.jsonl")
        (tmp_path / "dlt.yml").write_text("pipelines: {}\n")

        code = main(["journal", "verify", str(tmp_path / "dlt.yml"), "flights"])

        assert code == 0
        assert "valid" in capsys.readouterr().out

    def test_missing_journal_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A journal that does not exist exits 2 and names the path."""
        code = main(["journal", "verify", str(tmp_path / "none.jsonl")])

        assert code == 2
        assert "none.jsonl" in capsys.readouterr().err


class TestListAndShow:
    def test_list_counts_resumed_rows(self) -> None:
        """A killed and resumed run lists as done with the rows its package loaded."""
        from runner_fsm.audit import summarize_runs

        runs = summarize_runs(EXAMPLES / "killed_and_resumed.jsonl")

        assert [run.state for run in runs] == ["done", "done"]
        assert [run.rows for run in runs] == [100, 100]
        assert runs[0].attempts == 2

    def test_list_marks_interrupted_run(self, tmp_path: Path) -> None:
        """A run whose records stop before `done` or `failed` lists as interrupted."""
        from runner_fsm.audit import summarize_runs

        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(lines[:4]))

        runs = summarize_runs(path)

        assert [run.state for run in runs] == ["interrupted"]
        assert runs[0].ended is None

    def test_list_command_prints_each_run(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`journal list` prints a header and one line per run."""
        code = main(["journal", "list", str(EXAMPLES / "nycflights_demo.jsonl")])

        lines = capsys.readouterr().out.strip().splitlines()
        assert code == 0
        assert len(lines) == 3
        assert "367,687" in lines[1]

    def test_show_text_has_every_record(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`journal show` prints one line per record of the last run, transitions with arrows."""
        code = main(["journal", "show", str(EXAMPLES / "killed_and_resumed.jsonl")])

        lines = capsys.readouterr().out.strip().splitlines()
        assert code == 0
        assert len(lines) == 7
        assert "store_trace -> done (trace_stored)" in lines[-1]

    def test_show_json_by_run_id(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--format json --run ID` prints that run's records as JSON lines."""
        first = orjson.loads((EXAMPLES / "killed_and_resumed.jsonl").read_bytes().splitlines()[0])

        code = main(
            ["journal", "show", str(EXAMPLES / "killed_and_resumed.jsonl"), "--run", first["run_id"], "--format", "json"]
        )

        records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0
        assert {record["run_id"] for record in records} == {first["run_id"]}
        assert records[0] == first

    def test_show_unknown_run_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown run id exits 2 and names it."""
        code = main(["journal", "show", str(EXAMPLES / "nycflights_demo.jsonl"), "--run", "nope"])

        assert code == 2
        assert "nope" in capsys.readouterr().err


class TestScenarioExamples:
    @pytest.mark.parametrize(
        "name, states",
        [
            ("clean_success", ["done"]),
            ("retries_then_success", ["done"]),
            ("terminal_failure", ["failed"]),
            ("pending_finalized", ["done"]),
            ("trace_spilled_and_replayed", ["done", "done"]),
            ("killed_and_resumed", ["done", "done"]),
        ],
    )
    def test_example_runs_end_as_described(self, name: str, states: list[str]) -> None:
        """Each scenario's example journal lists its runs with the expected end states."""
        from runner_fsm.audit import summarize_runs

        runs = summarize_runs(EXAMPLES / f"{name}.jsonl")

        assert [run.state for run in runs] == states

    def test_retries_example_shows_waits(self) -> None:
        """The retries example contains two failed tries, each followed by a wait."""
        from runner_fsm.audit import run_records

        records = run_records(EXAMPLES / "retries_then_success.jsonl")

        waits = [r for r in records if r.get("to") == "waiting"]
        failures = [r for r in records if r.get("trigger") == "step_failed"]
        assert len(waits) == 2
        assert len(failures) == 2

    def test_trace_example_spills_then_replays(self) -> None:
        """The trace example spills the first run's trace and replays it in the second run."""
        records = [
            orjson.loads(line)
            for line in (EXAMPLES / "trace_spilled_and_replayed.jsonl").read_bytes().splitlines()
        ]

        spilled = [r for r in records if r.get("spilled")]
        replayed = [r for r in records if r.get("replayed")]
        assert len(spilled) == 1
        assert replayed[0]["replayed"] == [spilled[0]["spilled"]]


class TestWholeProject:
    """A project file without PIPELINE names every journal in the project's journal folder."""

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        journal_dir = tmp_path / "_data" / "journal"
        journal_dir.mkdir(parents=True)
        for name in ("clean_success", "terminal_failure"):
            shutil.copy(EXAMPLES / f"{name}.jsonl", journal_dir / f"{name}.jsonl")
        project_file = tmp_path / "dlt.yml"
        project_file.write_text("pipelines: {}\n")
        return project_file

    def test_list_every_pipeline(self, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code = main(["journal", "list", str(project)])

        lines = capsys.readouterr().out.strip().splitlines()
        assert code == 0
        assert lines[0].split()[:3] == ["pipeline", "run", "id"]
        assert [line.split()[0] for line in lines[1:]] == ["clean_success", "terminal_failure"]
        assert [line.split()[4] for line in lines[1:]] == ["done", "failed"]

    def test_verify_every_pipeline(self, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["journal", "verify", str(project)]) == 0
        assert capsys.readouterr().out.count(": valid,") == 2

        broken = project.parent / "_data" / "journal" / "terminal_failure.jsonl"
        lines = broken.read_bytes().splitlines(keepends=True)
        broken.write_bytes(b"".join(lines[:2] + lines[3:]))

        assert main(["journal", "verify", str(project)]) == 1
        out = capsys.readouterr().out
        assert ": valid," in out
        assert f"{broken}:3:" in out

    def test_show_needs_pipeline(self, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["journal", "show", str(project)]) == 2
        assert "PIPELINE" in capsys.readouterr().err

    def test_project_without_journals(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        project = tmp_path / "dlt.yml"
        project.write_text("pipelines: {}\n")

        assert main(["journal", "list", str(project)]) == 2
        assert "no journals" in capsys.readouterr().err

    def test_missing_project_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["journal", "list", str(tmp_path / "dlt.yml")]) == 2
        assert "neither a journal file" in capsys.readouterr().err


class TestShowNamesTheCause:
    """`journal show` prints the exception that a job raised, found inside dlt's message."""

    @pytest.mark.parametrize(
        "name, cause",
        [
            ("retries_then_success", "ConnectionError: the warehouse refused the connection"),
            ("terminal_failure", "DatabaseTerminalException: "),
        ],
    )
    def test_cause_on_failed_try(
        self, name: str, cause: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["journal", "show", str(EXAMPLES / f"{name}.jsonl")]) == 0

        failed = [line for line in capsys.readouterr().out.splitlines() if "(step_failed)" in line]
        assert failed
        assert all(cause in line for line in failed)


class TestUnreadableLastLine:
    def test_replaced_last_record_is_a_problem(self, tmp_path: Path) -> None:
        """A last record replaced by a broken line that ends with a newline is not a torn write."""
        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(lines[:-1]) + b'{"v":1,"seq":99,"x\n')

        result = verify_journal(path)

        assert not result.ok
        assert result.problem_line == len(lines)
        assert "most likely edited" in (result.problem or "")

    def test_torn_last_line_is_skipped(self, tmp_path: Path) -> None:
        """A last line cut short without its newline is what a crash leaves: skipped, still valid."""
        path, lines = copy_example(tmp_path)
        path.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])

        result = verify_journal(path)

        assert result.ok
        assert result.records == len(lines) - 1
        assert len(result.skipped) == 1


class TestCommandsOnEveryExample:
    """`journal verify`, `list` and `show` on every example journal, checked against the file."""

    @pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
    def test_every_command(self, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        run_ids = list(dict.fromkeys(record["run_id"] for record in records))
        last_run = [record for record in records if record["run_id"] == run_ids[-1]]

        assert main(["journal", "verify", str(path)]) == 0
        verified = capsys.readouterr().out
        assert f"valid, {len(records)} records" in verified

        assert main(["journal", "list", str(path)]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in listed[1:]] == run_ids

        assert main(["journal", "show", str(path)]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert [int(line.split()[0]) for line in printed] == [r["seq"] for r in last_run]

        assert main(["journal", "show", str(path), "--format", "json"]) == 0
        as_json = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert as_json == last_run
