"""The append-only journal: one JSON object per line, chained by hash, fsync'd on every append.

Each record carries the format version `v`, a sequence number `seq` that counts the records of the
file from 1, the UTC time `ts`, the `run_id`, the `pipeline`, its `kind` (`transition` or
`event`) and what it describes. `prev` is the `hash` of the record before it (64 zeros for the
first record) and `hash` is the SHA-256 of the record's canonical JSON without `hash`, so an
edited, removed or reordered line breaks the chain.

NOTE: one journal file belongs to one pipeline. Two writers on one file would fork the chain;
the runner takes a lock per pipeline before it appends.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import orjson

from runner_fsm.exceptions import JournalError

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "Journal",
    "JournalLine",
    "record_hash",
    "read_records",
    "read_tail",
    "journal_path",
    "check_journal_dir",
]

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
TAIL_CHUNK_BYTES = 64 * 1024


def journal_path(journal_dir: os.PathLike[str] | str, pipeline_name: str) -> Path:
    """Return the journal file of `pipeline_name` in `journal_dir`."""
    return Path(journal_dir) / f"{pipeline_name}.jsonl"


def check_journal_dir(journal_dir: os.PathLike[str] | str, pipeline_name: str) -> None:
    """Create `journal_dir` if needed and check that the journal file can be opened for appending.

    Raises `JournalError` naming the path. Writes nothing to an existing journal.
    """
    path = journal_path(journal_dir, pipeline_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as ex:
        raise JournalError(
            f"cannot use `{path}` as the journal: {ex}. Pass a writable folder as `journal_dir`"
            " (CLI: --journal-dir)."
        ) from ex


def _canonical(record: Mapping[str, Any]) -> bytes:
    body = {key: value for key, value in record.items() if key != "hash"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of `record` without its own `hash` field."""
    return hashlib.sha256(_canonical(record)).hexdigest()


@dataclass(frozen=True)
class JournalLine:
    """One line of a journal file: its 1-based number and the record, or why it is unreadable."""

    number: int
    record: Optional[dict[str, Any]]
    error: Optional[str] = None
    torn: bool = False


def _parse_line(number: int, raw: bytes) -> JournalLine:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as ex:
        # only the last line of a file can lack its newline: a write that a crash cut short
        torn = not raw.endswith(b"\n")
        return JournalLine(number, None, f"invalid JSON: {ex}", torn)
    if not isinstance(value, dict):
        return JournalLine(number, None, "the line is not a JSON object")
    return JournalLine(number, value)


def read_records(path: os.PathLike[str] | str) -> Iterator[JournalLine]:
    """Yield every line of the journal at `path`, readable or not, in file order.

    The file is read line by line, so a long journal is never held in memory whole.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield _parse_line(number, raw)


def read_tail(path: os.PathLike[str] | str, max_records: int) -> list[JournalLine]:
    """Return up to the last `max_records` non-empty lines of the journal, reading from the end.

    The cost depends on the size of the tail, not of the file. Line numbers are counted from the
    end, as negative numbers (-1 is the last line), because the lines before the tail are not read.
    """
    if max_records < 1:
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        buffer = b""
        while position > 0 and buffer.count(b"\n") <= max_records:
            step = min(TAIL_CHUNK_BYTES, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
    raw_lines = buffer.splitlines(keepends=True)
    if position > 0:
        raw_lines = raw_lines[1:]  # the first line of the buffer may be cut
    raw_lines = [raw for raw in raw_lines if raw.strip()][-max_records:]
    count = len(raw_lines)
    return [_parse_line(index - count, raw) for index, raw in enumerate(raw_lines)]


class Journal:
    """An open journal file that appends hash-chained records and fsyncs each one.

    Opening the journal reads its last readable record to continue the sequence and the chain. A
    torn last line, left by a crash during a write, is reported through `on_warning` and ended with
    a newline, so that the next record starts on a line of its own. A torn line never raises.
    """

    def __init__(
        self,
        path: os.PathLike[str] | str,
        *,
        on_warning: Optional[Callable[[str, dict[str, Any]], None]] = None,
    ) -> None:
        self.path = Path(path)
        self._on_warning = on_warning or (lambda event, context: None)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as ex:
            raise JournalError(
                f"cannot create the journal folder `{self.path.parent}`: {ex}. Pass a writable"
                " folder as `journal_dir` (CLI: --journal-dir)."
            ) from ex
        try:
            self.seq, self.last_hash = self._recover_tail()
        except OSError as ex:
            raise JournalError(
                f"cannot read the journal `{self.path}`: {ex}. Check that it is a readable file,"
                " or pass another `journal_dir` (CLI: --journal-dir)."
            ) from ex
        self._handle = self._open_for_append()

    def _open_for_append(self) -> Any:
        try:
            return open(self.path, "ab")
        except OSError as ex:
            raise JournalError(
                f"cannot open the journal `{self.path}` for appending: {ex}. Check the"
                " permissions of the file, or pass another `journal_dir` (CLI: --journal-dir)."
            ) from ex

    def _recover_tail(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS_HASH
        tail = read_tail(self.path, 16)
        if not self._ends_with_newline():
            self._terminate_torn_line()
        if tail and tail[-1].torn:
            self._on_warning(
                "journal_torn_line_skipped",
                {"journal": str(self.path), "error": tail[-1].error},
            )
            tail = tail[:-1]
        for line in reversed(tail):
            if line.record is not None and "seq" in line.record and "hash" in line.record:
                return int(line.record["seq"]), str(line.record["hash"])
        return 0, GENESIS_HASH

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _terminate_torn_line(self) -> None:
        # The file stays append-only: the torn bytes are kept and ended with a newline, so that
        # the next record starts on a line of its own and readers skip the torn one.
        with open(self.path, "ab") as handle:
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append `record` with `v`, `seq`, `prev` and `hash` set, flush and fsync it, return it."""
        reserved = {"v", "seq", "prev", "hash"} & set(record)
        if reserved:
            raise JournalError(f"a record may not set the journal's own fields {sorted(reserved)}")
        full: dict[str, Any] = {"v": FORMAT_VERSION, "seq": self.seq + 1}
        full.update(record)
        full["prev"] = self.last_hash
        try:
            full["hash"] = record_hash(full)
            line = orjson.dumps(full, default=str) + b"\n"
        except TypeError as ex:
            raise JournalError(f"cannot write a record to the journal `{self.path}`: {ex}") from ex
        try:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as ex:
            raise JournalError(f"cannot append to the journal `{self.path}`: {ex}") from ex
        self.seq = full["seq"]
        self.last_hash = full["hash"]
        return full

    def close(self) -> None:
        """Close the file. Appending afterwards raises."""
        self._handle.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
