"""Cost of runner-fsm over plain dlt: wall time of whole runs, side by side, and peak memory.

Four ways to run the same pipeline are timed in one process, in rounds. Each round runs every
way once, in an order that rotates from round to round, so that a slow moment of the machine
falls on every way alike. The first round creates the tables and is left out. Each way loads into
a duckdb file of its own, with a pipeline working folder of its own.

- `plain`: `pipeline.run(data)`;
- `tenacity`: `pipeline.run(data)` inside a `tenacity.Retrying` loop that retries the failures
  that dlt's `retry_load` helper accepts, the loop that dlt's documentation suggests;
- `runner`: `runner_fsm.runner(pipeline).run(data)`, which journals every transition;
- `runner_traces`: the same with `store_trace_info=True`.

Two workloads: `demo` is the NYC flights demo (336,776 flights and four small tables, replaced on
every run) and `small` is one table of 1,000 rows, where fixed costs dominate.

Peak memory (`--memory`) starts one fresh Python process per way, which runs the demo once into a
new folder and reports its peak resident set size.

Usage:

    RUNTIME__DLTHUB_TELEMETRY=false .venv/bin/python bench/run_cost.py [--rounds N]
        [--small-rounds N] [--memory-runs N]
"""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import argparse
import gc
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import orjson
from dlt.pipeline.helpers import retry_load
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

import runner_fsm
from runner_fsm.logs import configure_logging
from runner_fsm.project import load_project

DEMO = Path(__file__).resolve().parent.parent / "examples" / "nycflights" / "dlt.yml"
WAYS = ("plain", "tenacity", "runner", "runner_traces")
SMALL_ROWS = 1_000


def demo_data() -> Any:
    """Return the source of the demo's `flights` pipeline."""
    return load_project(DEMO).make_source("flights")


def small_data() -> Any:
    @dlt.resource(name="small", write_disposition="replace")
    def small() -> Any:
        yield [{"id": n, "name": f"row {n}", "value": n * 0.5} for n in range(SMALL_ROWS)]

    return small()


WORKLOADS: dict[str, Callable[[], Any]] = {"demo": demo_data, "small": small_data}


def make_pipeline(folder: Path, way: str, workload: str) -> Any:
    place = folder / workload / way
    place.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"bench_{workload}",
        destination=dlt.destinations.duckdb(str(place / "warehouse.duckdb")),
        dataset_name=workload,
        pipelines_dir=str(place / "pipelines"),
    )


class Way:
    """One way to run a workload, with its pipeline and (for the runner ways) its runner.

    The pipeline and the runner are made once and used in every round, as in a program that runs
    a pipeline again and again.
    """

    def __init__(self, folder: Path, name: str, workload: str) -> None:
        self.name = name
        self.workload = workload
        self.pipeline = make_pipeline(folder, name, workload)
        self.journal_dir = folder / workload / name / "journal"
        self.runner = None
        if name.startswith("runner"):
            self.runner = runner_fsm.runner(
                self.pipeline,
                store_trace_info=name == "runner_traces",
                journal_dir=self.journal_dir,
            )

    def run(self) -> float:
        """Run the workload once and return the wall time of the run."""
        data = WORKLOADS[self.workload]()
        pipeline = self.pipeline
        gc.collect()
        started = time.perf_counter()
        if self.runner is not None:
            self.runner.run(data)
        elif self.name == "plain":
            pipeline.run(data)
        else:
            for attempt in Retrying(
                stop=stop_after_attempt(5),
                wait=wait_exponential(multiplier=2, min=4, max=10),
                retry=retry_if_exception(retry_load(("load",))),
                reraise=True,
            ):
                with attempt:
                    pipeline.run(data)
        return time.perf_counter() - started


def store_trace_seconds(journal: Path) -> float:
    """Return the time the last run of `journal` spent in `store_trace`, from its timestamps."""
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines() if line.strip()]
    run_id = records[-1]["run_id"]
    transitions = [r for r in records if r["run_id"] == run_id and r["kind"] == "transition"]
    total = 0.0
    for entered, left in zip(transitions, transitions[1:], strict=False):
        if entered["to"] == "store_trace":
            total += (
                datetime.fromisoformat(left["ts"]) - datetime.fromisoformat(entered["ts"])
            ).total_seconds()
    return total


def compare(workload: str, rounds: int) -> None:
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    trace_times: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        ways = {way: Way(folder, way, workload) for way in WAYS}
        for round_number in range(rounds + 1):
            shift = round_number % len(WAYS)
            for way in WAYS[shift:] + WAYS[:shift]:
                elapsed = ways[way].run()
                if round_number == 0:
                    continue  # the first round creates the tables
                times[way].append(elapsed)
                if way == "runner_traces":
                    journal = ways[way].journal_dir / f"bench_{workload}.jsonl"
                    trace_times.append(store_trace_seconds(journal))
    base = statistics.median(times["plain"])
    print(f"\n{workload}: median of {rounds} rounds\n")
    print("| way | median run | min | max | ratio to plain |")
    print("|---|---|---|---|---|")
    for way in WAYS:
        median = statistics.median(times[way])
        print(
            f"| `{way}` | {median:.3f} s | {min(times[way]):.3f} s | {max(times[way]):.3f} s |"
            f" {median / base:.3f} |"
        )
    print(f"\nmedian time in `store_trace` ({workload}): {statistics.median(trace_times) * 1000:.1f} ms")


def memory_child(way: str) -> None:
    """Run the demo once the way `way` names, in a new folder, and print the peak RSS in MB."""
    with tempfile.TemporaryDirectory() as name:
        Way(Path(name), way, "demo").run()
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """Return the peak resident set size of this process, in MB.

    `VmHWM` of `/proc/self/status` counts this program only. `ru_maxrss` also keeps the size of
    the parent at the fork that started this process, which hides a smaller peak of its own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(runs: int) -> None:
    peaks: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(runs):
        for way in WAYS:
            output = subprocess.run(
                [sys.executable, __file__, "--memory-child", way],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            peaks[way].append(float(output.strip().splitlines()[-1]))
    base = statistics.median(peaks["plain"])
    print(f"\npeak memory of one demo run in a new process: median of {runs} processes\n")
    print("| way | peak RSS | ratio to plain |")
    print("|---|---|---|")
    for way in WAYS:
        median = statistics.median(peaks[way])
        print(f"| `{way}` | {median:.1f} MB | {median / base:.3f} |")


PLAIN_PROCESS = """
import sys
from runner_fsm.project import load_project
project = load_project(sys.argv[1])
project.make_pipeline("flights").run(project.make_source("flights"))
"""
PROCESS_WAYS = ("plain", "runner", "runner_traces")


def processes(rounds: int) -> None:
    """Time whole processes on the demo: a Python program with `pipeline.run`, `runner-fsm run`."""
    script = Path(sys.executable).with_name("runner-fsm")
    times: dict[str, list[float]] = {way: [] for way in PROCESS_WAYS}
    with tempfile.TemporaryDirectory() as name:
        projects = {}
        for way in PROCESS_WAYS:
            projects[way] = Path(name) / way / "dlt.yml"
            shutil.copytree(DEMO.parent / "sources", projects[way].parent / "sources")
            shutil.copy(DEMO, projects[way])
        for round_number in range(rounds + 1):
            shift = round_number % len(PROCESS_WAYS)
            for way in PROCESS_WAYS[shift:] + PROCESS_WAYS[:shift]:
                project = str(projects[way])
                environment = dict(os.environ)
                environment["PIPELINES__FLIGHTS__RUN_CONFIG__STORE_TRACE_INFO"] = str(
                    way == "runner_traces"
                ).lower()
                if way == "plain":
                    command = [sys.executable, "-c", PLAIN_PROCESS, project]
                else:
                    command = [str(script), "run", project, "flights"]
                started = time.perf_counter()
                subprocess.run(command, env=environment, capture_output=True, check=True)
                if round_number > 0:
                    times[way].append(time.perf_counter() - started)
    base = statistics.median(times["plain"])
    print(f"\nthe demo in a new process each time: median of {rounds} rounds\n")
    print("| way | command | median process | more than plain | ratio to plain |")
    print("|---|---|---|---|---|")
    commands = {
        "plain": "`python -c` with `pipeline.run`",
        "runner": "`runner-fsm run`, `store_trace_info: false`",
        "runner_traces": "`runner-fsm run`, `store_trace_info: true`",
    }
    for way in PROCESS_WAYS:
        median = statistics.median(times[way])
        print(
            f"| `{way}` | {commands[way]} | {median:.3f} s | {median - base:+.3f} s |"
            f" {median / base:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds of the demo")
    parser.add_argument("--small-rounds", type=int, default=21, help="measured rounds of 1,000 rows")
    parser.add_argument("--memory-runs", type=int, default=3, help="processes per way for memory")
    parser.add_argument(
        "--process-rounds", type=int, default=5, help="measured rounds of whole processes"
    )
    parser.add_argument("--memory-child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # the runner renders its log lines as on a terminal; they are written to nowhere
    configure_logging("console", stream=open(os.devnull, "w"))  # noqa: SIM115
    if args.memory_child:
        memory_child(args.memory_child)
        return
    compare("demo", args.rounds)
    compare("small", args.small_rounds)
    processes(args.process_rounds)
    memory(args.memory_runs)


if __name__ == "__main__":
    main()
