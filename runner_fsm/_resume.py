"""Finding the run that a crash or a signal interrupted, from the tail of the journal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from runner_fsm.journal import read_tail

__all__ = ["Interrupted", "TAIL_RECORDS", "find_interrupted"]

# Records read from the end of the journal to decide. A run's last records are enough: the last
# transition shows whether it ended, and the attempt numbers show how far it got.
TAIL_RECORDS = 256
TERMINAL_STATES = ("done", "failed")


@dataclass(frozen=True)
class Interrupted:
    """A run that did not reach `done` or `failed`: how far it got, and what the tail showed."""

    run_id: str
    last_seq: int
    last_state: Optional[str]
    operation: Optional[str]
    tries: dict[str, int]
    unreadable_lines: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """The maximum number of tries of one operation, the crashed try included."""
        return max(self.tries.values(), default=0)


def _describe_unreadable(lines: list[Any]) -> list[str]:
    """Describe each unreadable line with its line number, counted from the sequence numbers.

    A readable record's `seq` is its line number when no earlier line was unreadable, so the
    number of an unreadable line is the last `seq` before it plus the unreadable lines since.
    """
    reports = []
    last_seq: Optional[int] = None
    unreadable_since = 0
    for line in lines:
        if line.record is not None:
            last_seq = line.record.get("seq", last_seq)
            unreadable_since = 0
            continue
        unreadable_since += 1
        if last_seq is not None:
            where = f"line {last_seq + unreadable_since}"
        else:
            where = f"line {-line.number} from the end"
        reports.append(f"{where}: {line.error}")
    return reports


def find_interrupted(path: Path, tail_records: int = TAIL_RECORDS) -> tuple[Optional[Interrupted], list[str]]:
    """Return the interrupted last run of the journal at `path`, or None, and unreadable lines.

    Reads only the last `tail_records` lines, so the cost does not grow with the journal. An
    unreadable line never stops the decision: it is skipped and reported.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None, []
    lines = read_tail(path, tail_records)
    unreadable = _describe_unreadable(lines)
    records = [line.record for line in lines if line.record is not None and "run_id" in line.record]
    if not records:
        return None, unreadable
    run_id = records[-1]["run_id"]
    own = [r for r in records if r.get("run_id") == run_id]
    transitions = [r for r in own if r.get("kind") == "transition"]
    if transitions and transitions[-1].get("to") in TERMINAL_STATES:
        return None, unreadable
    tries: Counter[str] = Counter()
    for record in own:
        operation = record.get("operation")
        if isinstance(operation, str) and isinstance(record.get("attempt"), int):
            tries[operation] = max(tries[operation], record["attempt"])
    last_transition = transitions[-1] if transitions else {}
    interrupted = Interrupted(
        run_id=run_id,
        last_seq=int(own[-1].get("seq", 0)),
        last_state=last_transition.get("to"),
        operation=own[-1].get("operation"),
        tries=dict(tries),
        unreadable_lines=unreadable,
    )
    return interrupted, unreadable
