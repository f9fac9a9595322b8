"""Helpers shared by the tests: journal reading and row counting on real duckdb files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson


def journal_records(journal_dir: Path, pipeline_name: str) -> list[dict[str, Any]]:
    """Return the readable records of the journal of `pipeline_name`."""
    path = journal_dir / f"{pipeline_name}.jsonl"
    records = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            records.append(orjson.loads(line))
    return records


def transitions(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Return the (from, to, trigger) of every transition record."""
    return [(r["from"], r["to"], r["trigger"]) for r in records if r["kind"] == "transition"]


def duckdb_rows(pipeline: Any, table: str) -> list[tuple[Any, ...]]:
    """Return every row of `table` in the pipeline's duckdb dataset, sorted."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT * FROM {client.make_qualified_table_name(table)}")
    return sorted(tuple(r) for r in rows)


def duckdb_count(database: Path, dataset: str, table: str) -> int:
    """Count the rows of `dataset.table` in the duckdb file `database`."""
    with duckdb.connect(str(database)) as connection:
        result = connection.execute(f'SELECT count(*) FROM "{dataset}"."{table}"').fetchone()
    assert result is not None
    return int(result[0])
