"""Checks of a journal file: the sequence numbers and the hash chain, line by line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from runner_fsm.journal import GENESIS_HASH, read_records, record_hash

__all__ = ["VerifyResult", "verify_journal"]


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
    that the chain goes on past: such a line is skipped and listed. Any other problem is
    reported with its line number.
    """
    result = VerifyResult()
    expected_seq, expected_prev = 1, GENESIS_HASH
    run_ids: set[str] = set()
    pending_unreadable: list[str] = []
    for line in read_records(path):
        if line.record is None:
            pending_unreadable.append(f"line {line.number}: {line.error}")
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
    result.skipped += pending_unreadable
    result.runs = len(run_ids)
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
