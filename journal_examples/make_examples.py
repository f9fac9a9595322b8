"""Produce the example journals of this folder, one real run per scenario.

Each scenario runs a small dlt pipeline into a duckdb file in a temporary folder through
runner-fsm and copies the journal here. Usage, from the repository root:

    RUNTIME__DLTHUB_TELEMETRY=false .venv/bin/python journal_examples/make_examples.py
"""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable

import dlt
import duckdb

import runner_fsm

HERE = Path(__file__).resolve().parent


@dlt.resource(table_name="orders", write_disposition="merge", primary_key="order_id")
def orders(count: int = 100) -> Any:
    yield [{"order_id": i, "amount": i % 97} for i in range(count)]


def make_pipeline(work: Path, name: str, destination: Any = None) -> Any:
    return dlt.pipeline(
        name,
        destination=destination or dlt.destinations.duckdb(str(work / "warehouse.duckdb")),
        dataset_name="shop",
        pipelines_dir=str(work / "pipelines"),
    )


def flaky_sink(failures: int) -> Any:
    calls = {"n": 0}

    @dlt.destination(batch_size=100, name="flaky_sink")
    def sink(items: Any, table: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError(f"the warehouse refused the connection (call {calls['n']})")

    return sink


def clean_success(work: Path) -> None:
    runner_fsm.runner(make_pipeline(work, "clean_success"), journal_dir=work / "j").run(orders())


def retries_then_success(work: Path) -> None:
    os.environ["LOAD__RAISE_ON_MAX_RETRIES"] = "1"
    try:
        pipeline = make_pipeline(work, "retries_then_success", flaky_sink(2))
        policy = runner_fsm.backoff(max_attempts=5, multiplier=0.1, min=0.1, max=0.5)
        runner_fsm.runner(pipeline, retry_policy=policy, journal_dir=work / "j").run(orders())
    finally:
        del os.environ["LOAD__RAISE_ON_MAX_RETRIES"]


def terminal_failure(work: Path) -> None:
    database = work / "warehouse.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE SCHEMA shop")
        connection.execute(
            "CREATE TABLE shop.orders (order_id BIGINT CHECK (order_id < 10), amount BIGINT,"
            " _dlt_load_id VARCHAR NOT NULL, _dlt_id VARCHAR NOT NULL)"
        )
    pipeline = make_pipeline(work, "terminal_failure")
    try:
        runner_fsm.runner(pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=work / "j").run(
            orders()
        )
    except Exception:  # noqa: BLE001 - the failure is the scenario
        pass


def pending_finalized(work: Path) -> None:
    pipeline = make_pipeline(work, "pending_finalized")
    pipeline.extract(orders(50))
    pipeline.normalize()
    runner_fsm.runner(pipeline, journal_dir=work / "j").run(orders(100))


def trace_spilled_and_replayed(work: Path) -> None:
    bucket = work / "bucket"
    bucket.write_text("a file where the bucket folder should be, so the first trace spills")
    traces = dlt.pipeline(
        "example_traces",
        destination=dlt.destinations.filesystem(bucket_url=bucket.as_uri()),
        dataset_name="traces",
        pipelines_dir=str(work / "pipelines"),
    )
    runner = runner_fsm.runner(
        make_pipeline(work, "trace_spilled_and_replayed"),
        store_trace_info=traces,
        journal_dir=work / "j",
    )
    runner.run(orders())
    bucket.unlink()
    runner.run(orders())


KILLED_PROJECT = """
sources:
  orders: {type: sources.orders.orders}
destinations:
  warehouse: {type: duckdb}
pipelines:
  killed_and_resumed:
    source: orders
    destination: warehouse
    dataset_name: shop
    run_config:
      retry_policy: {type: backoff, max_attempts: 5, multiplier: 2, min: 1, max: 10}
"""
KILLED_SOURCE = """
import dlt

@dlt.resource(table_name="orders", write_disposition="merge", primary_key="order_id")
def orders():
    yield [{"order_id": i, "amount": i % 97} for i in range(100)]
"""


def killed_and_resumed(work: Path) -> None:
    (work / "sources").mkdir()
    (work / "sources" / "__init__.py").write_text("")
    (work / "sources" / "orders.py").write_text(textwrap.dedent(KILLED_SOURCE))
    (work / "dlt.yml").write_text(textwrap.dedent(KILLED_PROJECT))
    command = [sys.executable, "-m", "runner_fsm.cli"]
    project = [str(work / "dlt.yml"), "killed_and_resumed", "--journal-dir", str(work / "j")]
    env = dict(os.environ, RUNNER_FSM_FAULT="kill@step:normalize")
    killed = subprocess.run(command + ["run"] + project, env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    subprocess.run(command + ["resume"] + project, check=True, capture_output=True)
    subprocess.run(command + ["run"] + project, check=True, capture_output=True)


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "clean_success": clean_success,
    "retries_then_success": retries_then_success,
    "terminal_failure": terminal_failure,
    "pending_finalized": pending_finalized,
    "trace_spilled_and_replayed": trace_spilled_and_replayed,
    "killed_and_resumed": killed_and_resumed,
}


def main() -> None:
    for name, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            scenario(work)
            shutil.copy(work / "j" / f"{name}.jsonl", HERE / f"{name}.jsonl")
            print(f"wrote {name}.jsonl")


if __name__ == "__main__":
    main()
