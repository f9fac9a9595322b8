"""Print the rows per table that the demo loaded into its duckdb file."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

DATABASE = Path(__file__).resolve().parent / "_data" / "local" / "flights.duckdb"
DATASET = "nyc_flights"
TABLES = ("airlines", "airports", "flights", "planes", "weather")


def main() -> int:
    if not DATABASE.exists():
        print(f"{DATABASE} does not exist: run `make demo` first.", file=sys.stderr)
        return 1
    with duckdb.connect(str(DATABASE), read_only=True) as connection:
        print(f"rows per table in {DATABASE.name}, dataset {DATASET}:")
        for table in TABLES:
            result = connection.execute(f'SELECT count(*) FROM "{DATASET}"."{table}"').fetchone()
            count = result[0] if result else 0
            print(f"  {table:<10} {count:>9,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
