"""Measure the resume decision on journals of 1 thousand, 100 thousand and 1 million records.

Writes each journal with the real hash chain into a temporary folder, then times
`find_interrupted` on it and on an empty journal. Usage:

    RUNTIME__DLTHUB_TELEMETRY=false .venv/bin/python bench/resume_decision.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import orjson

from runner_fsm._resume import find_interrupted
from runner_fsm.journal import GENESIS_HASH, record_hash

SIZES = (1_000, 100_000, 1_000_000)
CALLS = 20


def write_journal(path: Path, records: int) -> None:
    """Write `records` transition records of runs of ten records each, chained by hash."""
    previous = GENESIS_HASH
    with open(path, "wb") as handle:
        for seq in range(1, records + 1):
            record = {
                "v": 1,
                "seq": seq,
                "ts": "2026-12-04T00:00:00+00:00",
                "run_id": f"run_{seq // 10}",
                "pipeline": "bench",
                "kind": "transition",
                "from": "sync",
                "to": "done" if seq % 10 == 0 else "attempt",
                "trigger": "synced",
                "operation": "attempt",
                "attempt": 1,
                "prev": previous,
            }
            record["hash"] = previous = record_hash(record)
            handle.write(orjson.dumps(record) + b"\n")


def mean_ms(path: Path) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        find_interrupted(path)
    return (time.perf_counter() - started) / CALLS * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty.jsonl"
        empty.write_bytes(b"")
        print(f"empty journal: {mean_ms(empty):.3f} ms")
        for size in SIZES:
            path = Path(folder) / f"journal_{size}.jsonl"
            write_journal(path, size)
            megabytes = path.stat().st_size / 1e6
            print(f"{size:>9,} records ({megabytes:.0f} MB): {mean_ms(path):.3f} ms")


if __name__ == "__main__":
    main()
