"""Cost of the journal and the command line: appends, the resume decision, CLI start.

- journal append: the time of `Journal.append` for a transition record like those of a run,
  which serializes, hashes, writes, flushes and fsyncs one line;
- resume decision: `find_interrupted` decides at the start of a run whether the last run of the
  journal was interrupted. It is timed on journals of 1 thousand, 100 thousand and 1 million
  records with a real hash chain, and on an empty journal;
- CLI start: `runner-fsm --help` in a new process, against `python -c pass`, and
  `runner-fsm journal list` on the journals above.

Usage:

    RUNTIME__DLTHUB_TELEMETRY=false .venv/bin/python bench/journal_cost.py [--appends N]
"""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from runner_fsm._resume import find_interrupted
from runner_fsm.journal import GENESIS_HASH, Journal, record_hash

SIZES = (1_000, 100_000, 1_000_000)
DECISIONS = 20
RUNNER_SCRIPT = Path(sys.executable).with_name("runner-fsm")


def transition(seq: int) -> dict[str, Any]:
    """Return transition record `seq`, in runs of ten records like the runs of the demo."""
    return {
        "ts": "2026-12-04T00:00:00.000000+00:00",
        "run_id": f"20261204T000000Z-{seq // 10:08x}",
        "pipeline": "bench",
        "kind": "transition",
        "from": "attempt",
        "to": "done" if seq % 10 == 0 else "store_trace",
        "trigger": "attempted",
        "operation": "attempt",
        "attempt": 1,
        "load_ids": ["1796423559.6336274"],
        "rows": {"flights": 336776, "weather": 26115, "airports": 1458},
    }


def write_journal(path: Path, records: int) -> None:
    """Write `records` transition records, chained by hash, without an fsync per line."""
    previous = GENESIS_HASH
    with open(path, "wb") as handle:
        for seq in range(1, records + 1):
            record = {"v": 1, "seq": seq, **transition(seq), "prev": previous}
            record["hash"] = previous = record_hash(record)
            handle.write(orjson.dumps(record) + b"\n")


def append_cost(folder: Path, appends: int) -> None:
    times = []
    with Journal(folder / "append.jsonl") as journal:
        for seq in range(1, appends + 1):
            record = transition(seq)
            started = time.perf_counter()
            journal.append(record)
            times.append(time.perf_counter() - started)
    times.sort()
    print(f"\njournal append with fsync, {appends} records\n")
    print("| median | 90th percentile | max |")
    print("|---|---|---|")
    p90 = times[int(len(times) * 0.9)]
    print(f"| {statistics.median(times) * 1000:.3f} ms | {p90 * 1000:.3f} ms | {times[-1] * 1000:.3f} ms |")


def decision_ms(path: Path) -> float:
    times = []
    for _ in range(DECISIONS):
        started = time.perf_counter()
        find_interrupted(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def command_s(*args: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=500, help="records appended")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        append_cost(folder, args.appends)

        empty = folder / "empty.jsonl"
        empty.write_bytes(b"")
        journals = {}
        for size in SIZES:
            journals[size] = folder / f"journal_{size}.jsonl"
            write_journal(journals[size], size)
        base = decision_ms(empty)
        print(f"\nresume decision, median of {DECISIONS} calls\n")
        print("| journal | size | time | more than on an empty journal |")
        print("|---|---|---|---|")
        print(f"| empty | 0 MB | {base:.3f} ms | |")
        for size, path in journals.items():
            took = decision_ms(path)
            megabytes = path.stat().st_size / 1e6
            print(f"| {size:,} records | {megabytes:.1f} MB | {took:.3f} ms | {took - base:.3f} ms |")

        print("\ncommand line, median of 5 processes\n")
        print("| command | time |")
        print("|---|---|")
        print(f"| `python -c pass` | {command_s(sys.executable, '-c', 'pass'):.3f} s |")
        print(f"| `runner-fsm --help` | {command_s(str(RUNNER_SCRIPT), '--help'):.3f} s |")
        for size, path in journals.items():
            runs = 5 if size < 1_000_000 else 3
            took = command_s(str(RUNNER_SCRIPT), "journal", "list", str(path), runs=runs)
            print(f"| `runner-fsm journal list` on {size:,} records | {took:.3f} s |")


if __name__ == "__main__":
    main()
