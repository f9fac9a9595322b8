"""Measure what storing traces adds to a run of the NYC flights demo.

Runs the demo pipeline into duckdb in one process, alternating runs without and with
`store_trace_info=True`, after one warm-up round that creates the datasets. Prints the median
wall time of each mode, and of the store_trace state alone: the time between the journal records
that enter and leave it. Usage:

    RUNTIME__DLTHUB_TELEMETRY=false .venv/bin/python bench/trace_cost.py [ROUNDS]
"""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

from runner_fsm import runner
from runner_fsm.project import load_project

DEMO = Path(__file__).resolve().parent.parent / "examples" / "nycflights" / "dlt.yml"


def store_trace_seconds(journal: Path, run_id: str) -> float:
    """Return the time spent in store_trace states of `run_id`, from the journal timestamps."""
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines() if line.strip()]
    transitions = [r for r in records if r["run_id"] == run_id and r["kind"] == "transition"]
    total = 0.0
    for entered, left in zip(transitions, transitions[1:], strict=False):
        if entered["to"] == "store_trace":
            total += (
                datetime.fromisoformat(left["ts"]) - datetime.fromisoformat(entered["ts"])
            ).total_seconds()
    return total


def one_run(workdir: Path, store_traces: bool) -> tuple[float, float]:
    # each mode keeps its own pipelines folder, so that later rounds measure the steady state
    # of a trace pipeline that already exists, as in production
    project = load_project(DEMO)
    pipeline = project.make_pipeline("flights", pipelines_dir=workdir / f"pipelines_{store_traces}")
    source = project.make_source("flights")
    journal_dir = workdir / f"journal_{store_traces}"
    started = time.perf_counter()
    runner(pipeline, store_trace_info=store_traces, journal_dir=journal_dir).run(source)
    elapsed = time.perf_counter() - started
    journal = journal_dir / "flights.jsonl"
    run_id = orjson.loads(journal.read_bytes().splitlines()[-1])["run_id"]
    return elapsed, store_trace_seconds(journal, run_id)


def main(rounds: int) -> None:
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for round_number in range(rounds + 1):
            for store_traces in (False, True):
                result = one_run(workdir, store_traces)
                if round_number > 0:  # the first round creates the datasets and is left out
                    results[store_traces].append(result)
    for store_traces, runs in results.items():
        total = statistics.median(r[0] for r in runs)
        trace = statistics.median(r[1] for r in runs)
        print(
            f"store_trace_info={store_traces!s:<5} median run {total:.3f} s,"
            f" median store_trace state {trace * 1000:.0f} ms ({len(runs)} runs)"
        )
    base = statistics.median(r[0] for r in results[False])
    with_traces = statistics.median(r[0] for r in results[True])
    print(f"ratio with/without traces: {with_traces / base:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
