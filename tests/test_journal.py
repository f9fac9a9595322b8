"""Tests of the append-only journal: the hash chain, torn lines, reading the tail, errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from runner_fsm.exceptions import JournalError
from runner_fsm.journal import (
    TAIL_CHUNK_BYTES,
    Journal,
    journal_path,
    read_records,
    read_tail,
    record_hash,
)

ZERO_HASH = "0" * 64


def event(number: int) -> dict[str, Any]:
    """Build the fields of a journal event whose name carries `number`, to distinguish records."""
    return {"run_id": "run-1", "pipeline": "orders", "kind": "event", "event": f"tick_{number}"}


def append_events(path: Path, count: int) -> list[dict[str, Any]]:
    """Append `count` events to the journal at `path` and return the written records."""
    with Journal(path) as journal:
        return [journal.append(event(number)) for number in range(count)]


def file_lines(path: Path) -> list[bytes]:
    """Return the lines of the file at `path`, each with its line ending."""
    return path.read_bytes().splitlines(keepends=True)


class TestAppend:
    def test_append_sets_version(self, tmp_path: Path) -> None:
        """Every appended record carries format version 1."""
        records = append_events(tmp_path / "orders.jsonl", 3)

        assert [record["v"] for record in records] == [1, 1, 1]

    def test_append_counts_seq_from_one(self, tmp_path: Path) -> None:
        """The records of a new file are numbered 1, 2, 3."""
        records = append_events(tmp_path / "orders.jsonl", 3)

        assert [record["seq"] for record in records] == [1, 2, 3]

    def test_append_chains_hashes(self, tmp_path: Path) -> None:
        """The first record chains to 64 zeros and each later one to its predecessor's hash."""
        records = append_events(tmp_path / "orders.jsonl", 3)

        assert records[0]["prev"] == ZERO_HASH
        assert records[1]["prev"] == records[0]["hash"]
        assert records[2]["prev"] == records[1]["hash"]

    def test_append_hash_matches_record(self, tmp_path: Path) -> None:
        """Each record's hash is record_hash of the record."""
        records = append_events(tmp_path / "orders.jsonl", 3)

        for record in records:
            assert record["hash"] == record_hash(record)

    def test_append_keeps_fields(self, tmp_path: Path) -> None:
        """The caller's fields are stored unchanged next to the chain fields."""
        records = append_events(tmp_path / "orders.jsonl", 1)

        assert {key: records[0][key] for key in event(0)} == event(0)

    def test_append_writes_one_line_each(self, tmp_path: Path) -> None:
        """Each record is one JSON object on a line of its own that ends with a newline."""
        path = tmp_path / "orders.jsonl"
        records = append_events(path, 3)

        lines = file_lines(path)

        assert len(lines) == 3
        for line, record in zip(lines, records, strict=True):
            assert line.endswith(b"\n")
            assert orjson.loads(line) == record

    def test_stored_hash_verifies(self, tmp_path: Path) -> None:
        """The hash of a record read back from the file verifies, also for non-JSON values."""
        path = tmp_path / "orders.jsonl"
        fields = {
            "kind": "event",
            "at": datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc),
            "destination_file": tmp_path / "orders.duckdb",
            "rows": (1, 2),
        }
        with Journal(path) as journal:
            journal.append(fields)

        stored = orjson.loads(file_lines(path)[0])

        assert stored["hash"] == record_hash(stored)
        assert stored["destination_file"] == str(tmp_path / "orders.duckdb")

    def test_reopen_continues_chain(self, tmp_path: Path) -> None:
        """A reopened journal continues the sequence and the chain of the file."""
        path = tmp_path / "orders.jsonl"
        first = append_events(path, 2)

        second = append_events(path, 2)

        assert [record["seq"] for record in second] == [3, 4]
        assert second[0]["prev"] == first[-1]["hash"]

    def test_open_empty_file(self, tmp_path: Path) -> None:
        """An existing empty file starts at seq 1 with the zero hash."""
        path = tmp_path / "orders.jsonl"
        path.touch()

        records = append_events(path, 1)

        assert records[0]["seq"] == 1
        assert records[0]["prev"] == ZERO_HASH

    def test_open_creates_folder(self, tmp_path: Path) -> None:
        """Opening a journal creates its missing parent folders."""
        path = journal_path(tmp_path / "journal" / "nested", "orders")

        append_events(path, 1)

        assert path == tmp_path / "journal" / "nested" / "orders.jsonl"
        assert path.is_file()


def write_torn_journal(path: Path, good_records: int) -> bytes:
    """Append good records, then half of the next line without its newline, as a crash would.

    Return the torn bytes.
    """
    append_events(path, good_records)
    whole_line = orjson.dumps({**event(good_records), "v": 1, "seq": good_records + 1}) + b"\n"
    torn = whole_line[: len(whole_line) // 2]
    with open(path, "ab") as handle:
        handle.write(torn)
    return torn


class TestTornLine:
    def test_torn_line_reported_before_repair(self, tmp_path: Path) -> None:
        """read_records marks an unterminated invalid last line as torn."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)

        lines = list(read_records(path))

        assert lines[-1].number == 4
        assert lines[-1].record is None
        assert lines[-1].torn is True

    def test_open_warns_torn_line(self, tmp_path: Path) -> None:
        """Opening a journal with a torn last line calls on_warning once."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)
        warnings: list[tuple[str, dict[str, Any]]] = []

        Journal(path, on_warning=lambda name, context: warnings.append((name, context))).close()

        assert [name for name, _ in warnings] == ["journal_torn_line_skipped"]
        assert warnings[0][1]["journal"] == str(path)
        assert "invalid JSON" in warnings[0][1]["error"]

    def test_append_after_torn_line(self, tmp_path: Path) -> None:
        """The next record follows the last good one in sequence and chain."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)
        last_good = orjson.loads(file_lines(path)[2])

        with Journal(path) as journal:
            record = journal.append(event(9))

        assert record["seq"] == 4
        assert record["prev"] == last_good["hash"]

    def test_append_after_torn_starts_line(self, tmp_path: Path) -> None:
        """The next record starts on a new line after the torn bytes."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)

        with Journal(path) as journal:
            record = journal.append(event(9))

        last_line = file_lines(path)[-1]
        assert orjson.loads(last_line) == record

    def test_torn_bytes_kept(self, tmp_path: Path) -> None:
        """The file stays append-only: the bytes before the new record are unchanged."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)
        before = path.read_bytes()

        with Journal(path) as journal:
            journal.append(event(9))

        assert path.read_bytes().startswith(before)

    def test_read_records_after_repair(self, tmp_path: Path) -> None:
        """read_records returns the good records and the torn line with its number and error."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)
        with Journal(path) as journal:
            journal.append(event(9))

        lines = list(read_records(path))

        assert [line.number for line in lines] == [1, 2, 3, 4, 5]
        assert [line.record["seq"] for line in lines if line.record] == [1, 2, 3, 4]
        assert lines[3].record is None
        assert lines[3].error is not None
        assert "invalid JSON" in lines[3].error

    def test_reopen_after_repair_quiet(self, tmp_path: Path) -> None:
        """A torn line is reported once: after the repair, opening again does not warn."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)
        Journal(path).close()
        warnings: list[str] = []

        with Journal(path, on_warning=lambda name, context: warnings.append(name)) as journal:
            record = journal.append(event(9))

        assert warnings == []
        assert record["seq"] == 4

    def test_clean_file_no_warning(self, tmp_path: Path) -> None:
        """Opening an intact journal does not warn."""
        path = tmp_path / "orders.jsonl"
        append_events(path, 3)
        warnings: list[str] = []

        Journal(path, on_warning=lambda name, context: warnings.append(name)).close()

        assert warnings == []

    def test_only_torn_line(self, tmp_path: Path) -> None:
        """A file holding only a torn line restarts at seq 1 with the zero hash."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 0)

        records = append_events(path, 1)

        assert records[0]["seq"] == 1
        assert records[0]["prev"] == ZERO_HASH


def write_numbered_lines(path: Path, count: int) -> None:
    """Write `count` JSON lines with `seq` 1..count and padding of varying length.

    The varying length moves the 64 KiB chunk boundaries of read_tail into the middle of lines.
    """
    with open(path, "wb") as handle:
        for seq in range(1, count + 1):
            handle.write(orjson.dumps({"seq": seq, "pad": "x" * (20 + seq % 37)}) + b"\n")


class TestReadTail:
    @pytest.fixture
    def big_journal(self, tmp_path: Path) -> Path:
        """A journal file of 5,000 lines, several times the size of one read chunk."""
        path = tmp_path / "orders.jsonl"
        write_numbered_lines(path, 5000)
        assert path.stat().st_size > 3 * TAIL_CHUNK_BYTES
        return path

    def test_tail_last_records(self, big_journal: Path) -> None:
        """read_tail returns the last n records in file order."""
        lines = read_tail(big_journal, 10)

        assert [line.record["seq"] for line in lines] == list(range(4991, 5001))

    def test_tail_negative_numbers(self, big_journal: Path) -> None:
        """read_tail numbers the lines from the end, -1 being the last."""
        lines = read_tail(big_journal, 10)

        assert [line.number for line in lines] == list(range(-10, 0))

    @pytest.mark.parametrize("count", [1, 999, 1000, 2500, 4999, 5000])
    def test_tail_across_chunks(self, big_journal: Path, count: int) -> None:
        """read_tail returns exactly the last n records when they span several chunks."""
        lines = read_tail(big_journal, count)

        assert [line.record["seq"] for line in lines] == list(range(5001 - count, 5001))

    def test_tail_larger_than_file(self, big_journal: Path) -> None:
        """read_tail returns every record, the first one included, when n exceeds the file."""
        lines = read_tail(big_journal, 6000)

        assert len(lines) == 5000
        assert lines[0].record == orjson.loads(file_lines(big_journal)[0])
        assert lines[0].number == -5000

    def test_tail_small_file(self, tmp_path: Path) -> None:
        """read_tail of a 3-record journal with n = 100 returns the 3 records."""
        path = tmp_path / "orders.jsonl"
        records = append_events(path, 3)

        lines = read_tail(path, 100)

        assert [line.record for line in lines] == records
        assert [line.number for line in lines] == [-3, -2, -1]

    def test_tail_matches_read_records(self, tmp_path: Path) -> None:
        """read_tail returns the same records as the end of read_records."""
        path = tmp_path / "orders.jsonl"
        write_numbered_lines(path, 3000)

        tail = read_tail(path, 1234)
        every = list(read_records(path))

        assert [line.record for line in tail] == [line.record for line in every[-1234:]]

    def test_tail_skips_blank_lines(self, tmp_path: Path) -> None:
        """read_tail does not count blank lines as records."""
        path = tmp_path / "orders.jsonl"
        path.write_bytes(b'{"seq": 1}\n\n{"seq": 2}\n\n\n')

        lines = read_tail(path, 2)

        assert [line.record for line in lines] == [{"seq": 1}, {"seq": 2}]

    def test_tail_torn_last_line(self, tmp_path: Path) -> None:
        """read_tail marks a torn last line as torn."""
        path = tmp_path / "orders.jsonl"
        write_torn_journal(path, 3)

        lines = read_tail(path, 2)

        assert lines[0].record is not None
        assert lines[-1].torn is True

    def test_tail_zero_records(self, tmp_path: Path) -> None:
        """read_tail with n = 0 returns no record."""
        path = tmp_path / "orders.jsonl"
        append_events(path, 3)

        lines = read_tail(path, 0)

        assert lines == []


class TestTamperDetection:
    def test_edited_record_breaks_hash(self, tmp_path: Path) -> None:
        """Editing a field of a middle record makes its hash differ from record_hash."""
        path = tmp_path / "orders.jsonl"
        append_events(path, 5)
        lines = file_lines(path)
        edited = orjson.loads(lines[2])
        edited["event"] = "tick_99"
        lines[2] = orjson.dumps(edited) + b"\n"
        path.write_bytes(b"".join(lines))

        records = [line.record for line in read_records(path)]

        assert records[2]["hash"] != record_hash(records[2])
        for index in (0, 1, 3, 4):
            assert records[index]["hash"] == record_hash(records[index])

    def test_removed_record_breaks_chain(self, tmp_path: Path) -> None:
        """Removing a middle record leaves the next record chained to a missing hash."""
        path = tmp_path / "orders.jsonl"
        append_events(path, 5)
        lines = file_lines(path)
        del lines[2]
        path.write_bytes(b"".join(lines))

        records = [line.record for line in read_records(path)]

        assert records[2]["prev"] != records[1]["hash"]
        assert records[3]["prev"] == records[2]["hash"]


class TestJournalErrors:
    def test_folder_under_regular_file(self, tmp_path: Path) -> None:
        """A journal folder under a regular file raises JournalError naming the folder."""
        blocker = tmp_path / "not_a_folder"
        blocker.write_text("a regular file", encoding="utf-8")
        path = journal_path(blocker / "journal", "orders")

        with pytest.raises(JournalError) as caught:
            Journal(path)

        assert str(path.parent) in str(caught.value)

    def test_journal_path_is_folder(self, tmp_path: Path) -> None:
        """A folder at the journal file's path raises JournalError naming the path."""
        path = tmp_path / "orders.jsonl"
        path.mkdir()
        (path / "stray.txt").write_text("keeps the folder size above zero", encoding="utf-8")

        with pytest.raises(JournalError) as caught:
            Journal(path)

        assert str(path) in str(caught.value)

    def test_append_after_close(self, tmp_path: Path) -> None:
        """Appending to a closed journal raises instead of losing the record."""
        journal = Journal(tmp_path / "orders.jsonl")
        journal.close()

        with pytest.raises(ValueError):
            journal.append(event(0))
