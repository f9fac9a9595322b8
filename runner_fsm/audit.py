"""Checks of a journal file: the sequence numbers and the hash chain, line by line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from runner_fsm._messages import headline
from runner_fsm.journal import GENESIS_HASH, read_records, record_hash

__all__ = [
    "RunSummary",
    "VerifyResult",
    "describe_record",
    "run_records",
    "summarize_runs",
    "verify_journal",
]


@dataclass
class VerifyResult:
    """The outcome of `verify_journal`: the first problem, if any, and the torn lines skipped."""

    records: int = 0
    runs: int = 0
    problem: Optional[str] = None
    problem_line: Optional[int] = None
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_journal(path: os.PathLike[str] | str) -> VerifyResult:
    """Check every record of the journal at `path` and stop at the first broken one.

    A record must have the next sequence number, its `prev` must be the `hash` of the record
    before it, and its `hash` must match its content. A torn write leaves an unreadable line
    that the chain goes on past, or a last line without a newline: such a line is skipped and
    listed. Any other problem is reported with its line number.
    """
    result = VerifyResult()
    expected_seq, expected_prev = 1, GENESIS_HASH
    run_ids: set[str] = set()
    pending_unreadable: list[str] = []
    last_unreadable = None
    for line in read_records(path):
        if line.record is None:
            pending_unreadable.append(f"line {line.number}: {line.error}")
            last_unreadable = line
            continue
        record = line.record
        problem = _check(record, expected_seq, expected_prev)
        if problem is not None:
            if pending_unreadable:
                problem += f" (after the unreadable {pending_unreadable[0]})"
            result.problem, result.problem_line = problem, line.number
            return result
        result.skipped += pending_unreadable
        pending_unreadable = []
        result.records += 1
        run_ids.add(str(record.get("run_id")))
        expected_seq, expected_prev = record["seq"] + 1, record["hash"]
    result.runs = len(run_ids)
    if last_unreadable is not None and pending_unreadable and not last_unreadable.torn:
        # a write that a crash cut short is the last line and has no newline
        result.problem = (
            f"the line is unreadable ({last_unreadable.error}) and no record follows it, but it"
            " ends with a newline, which a write that a crash cut short does not have: the line"
            " was most likely edited"
        )
        result.problem_line = last_unreadable.number
        return result
    result.skipped += pending_unreadable
    return result


def _check(record: dict[str, object], expected_seq: int, expected_prev: str) -> Optional[str]:
    seq = record.get("seq")
    if seq != expected_seq:
        return f"sequence number {seq!r} where {expected_seq} was expected: a record is missing or out of order"
    if record.get("prev") != expected_prev:
        return "`prev` does not match the hash of the record before it: a record was removed, reordered or edited"
    if record.get("hash") != record_hash(record):
        return "`hash` does not match the record's content: the record was edited"
    return None


@dataclass
class RunSummary:
    """One run of a journal: its id, start, end, final state, tries, rows loaded and duration."""

    run_id: str
    started: str
    ended: Optional[str] = None
    state: str = "interrupted"
    attempts: int = 0
    rows: int = 0
    duration_s: Optional[float] = None


def summarize_runs(path: os.PathLike[str] | str) -> list[RunSummary]:
    """Return one summary per run of the journal at `path`, in the order the runs started.

    A run without a `done` or `failed` record is `interrupted`. A resumed run keeps its id, so
    its summary covers the interrupted part and the part that finished it. Rows loaded are the
    rows of the packages whose load step ended without error in the run, counted from the
    normalize records of those packages (tables of dlt itself left out).
    """
    runs: dict[str, RunSummary] = {}
    rows_by_package: dict[str, int] = {}
    loaded_by_run: dict[str, set[str]] = {}
    for line in read_records(path):
        record = line.record
        if record is None or "run_id" not in record:
            continue
        run_id = str(record["run_id"])
        summary = runs.get(run_id)
        if summary is None:
            summary = runs[run_id] = RunSummary(run_id, str(record.get("ts", "")))
        if isinstance(record.get("attempt"), int):
            summary.attempts = max(summary.attempts, record["attempt"])
        if record.get("to") in ("done", "failed"):
            summary.state = str(record["to"])
            summary.ended = str(record.get("ts", ""))
            summary.duration_s = (record.get("summary") or {}).get("duration_s")
        elif record.get("event") == "interrupted":
            summary.state = "interrupted"
        elif record.get("event") == "step_ended":
            _count_step(record, run_id, rows_by_package, loaded_by_run)
    for run_id, summary in runs.items():
        loaded = loaded_by_run.get(run_id, set())
        summary.rows = sum(rows_by_package.get(load_id, 0) for load_id in loaded)
    return list(runs.values())


def _count_step(
    record: dict[str, Any],
    run_id: str,
    rows_by_package: dict[str, int],
    loaded_by_run: dict[str, set[str]],
) -> None:
    if record.get("step") == "normalize":
        for load_id, rows in (record.get("rows_by_load_id") or {}).items():
            rows_by_package[load_id] = sum(
                count for table, count in rows.items() if not str(table).startswith("_dlt")
            )
    if record.get("step") == "load" and not record.get("exception"):
        loaded_by_run.setdefault(run_id, set()).update(record.get("load_ids") or [])


def run_records(path: os.PathLike[str] | str, run_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Return the records of run `run_id` (default: the last run) of the journal at `path`."""
    records = [line.record for line in read_records(path) if line.record is not None]
    if run_id is None and records:
        run_id = str(records[-1].get("run_id"))
    return [r for r in records if r.get("run_id") == run_id]


def describe_record(record: dict[str, Any]) -> str:
    """Return one readable line for a journal record."""
    head = f"{record.get('seq', '?'):>5} {str(record.get('ts', ''))[:23]:<23}"
    if record.get("kind") == "transition":
        text = f"{record.get('from')} -> {record.get('to')} ({record.get('trigger')})"
        details = []
        if record.get("attempt"):
            details.append(f"{record.get('operation')} try {record['attempt']}")
        if "wait_s" in record and record.get("to") == "waiting":
            details.append(f"wait {record['wait_s']} s")
        if record.get("rows"):
            details.append(f"rows {record['rows']}")
        exception = record.get("exception")
        if exception:
            details.append(f"{exception.get('type')}: {headline(exception.get('message'), limit=10_000)}")
        if record.get("reason"):
            details.append(str(record["reason"]))
        return f"{head} {text}" + (f"  {'; '.join(details)}" if details else "")
    event = record.get("event")
    if event == "step_ended":
        rows = f" rows {record['rows']}" if record.get("rows") else ""
        failed = " FAILED" if record.get("exception") else ""
        return f"{head}   step {record.get('step')} ended{failed}{rows}"
    return f"{head}   {event}"
