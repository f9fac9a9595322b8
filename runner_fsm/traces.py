"""Trace storage: one row per attempt or finalization in `<pipeline_name>_trace` of a trace pipeline.

The row has a fixed set of columns, so the table schema does not change from one run to the
next: the nested parts of dlt's trace (steps, load packages, the whole trace) are JSON columns.
A row is keyed by the dlt transaction id of its trace and the attempt number. A row that cannot be
loaded is spilled to `traces/<transaction_id>_attempt_<n>_trace.json` in the main pipeline's
working folder and loaded by a later run, which deletes the file once the row is stored.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from runner_fsm._scrub import Scrubber

if TYPE_CHECKING:
    from dlt.pipeline.pipeline import Pipeline

__all__ = [
    "TRACE_COLUMNS",
    "TraceStore",
    "trace_row",
    "trace_table_name",
    "spill_folder",
    "known_secrets",
]

# the columns of the trace table; JSON columns keep nested data out of child tables
TRACE_COLUMNS: dict[str, dict[str, Any]] = {
    "transaction_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "attempt": {"data_type": "bigint", "nullable": False, "primary_key": True},
    "run_id": {"data_type": "text", "nullable": False},
    "pipeline_name": {"data_type": "text", "nullable": False},
    "operation": {"data_type": "text", "nullable": False},
    "started_at": {"data_type": "timestamp", "nullable": True},
    "finished_at": {"data_type": "timestamp", "nullable": True},
    "success": {"data_type": "bool", "nullable": False},
    "load_ids": {"data_type": "json", "nullable": True},
    "row_counts": {"data_type": "json", "nullable": True},
    "steps": {"data_type": "json", "nullable": True},
    "exception_type": {"data_type": "text", "nullable": True},
    "exception_message": {"data_type": "text", "nullable": True},
    "exception_step": {"data_type": "text", "nullable": True},
    "exception_terminal": {"data_type": "bool", "nullable": True},
    "trace": {"data_type": "json", "nullable": True},
}
# the columns that dlt adds to every table: the load id and the row id
DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")
# destinations whose SQL client takes a trace row by a direct insert, once the table exists
DIRECT_INSERT_DESTINATIONS = ("dlt.destinations.duckdb", "dlt.destinations.postgres")
SPILL_FOLDER = "traces"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def trace_table_name(pipeline_name: str) -> str:
    """Return the name of the trace table of `pipeline_name`."""
    return f"{pipeline_name}_trace"


def spill_folder(pipeline: "Pipeline") -> Path:
    """Return the folder of spilled traces in the working folder of `pipeline`."""
    return Path(pipeline.working_dir) / SPILL_FOLDER


def _scrub_value(value: Any, scrubber: Scrubber) -> Any:
    if isinstance(value, str):
        return scrubber.scrub(value)
    if isinstance(value, Mapping):
        return {str(k): _scrub_value(v, scrubber) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v, scrubber) for v in value]
    return value


def _step_summary(step: Any) -> dict[str, Any]:
    return {
        "step": step.step,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "exception": step.step_exception,
    }


def trace_row(
    *,
    traces: Iterable[Any],
    run_id: str,
    pipeline_name: str,
    operation: str,
    attempt: int,
    load_ids: list[str],
    row_counts: Mapping[str, int],
    exception: Optional[Mapping[str, Any]],
    scrubber: Scrubber,
) -> dict[str, Any]:
    """Build the trace row of one attempt or finalization from the dlt traces it produced."""
    trace_list = list(traces)
    steps = [_step_summary(step) for trace in trace_list for step in trace.steps]
    transaction_id = trace_list[0].transaction_id if trace_list else uuid.uuid4().hex
    exception = exception or {}
    row = {
        "transaction_id": transaction_id,
        "attempt": attempt,
        "run_id": run_id,
        "pipeline_name": pipeline_name,
        "operation": operation,
        "started_at": trace_list[0].started_at if trace_list else None,
        "finished_at": trace_list[-1].finished_at if trace_list else None,
        "success": not exception,
        "load_ids": list(load_ids),
        "row_counts": dict(row_counts),
        "steps": steps,
        "exception_type": exception.get("type"),
        "exception_message": exception.get("message"),
        "exception_step": exception.get("step"),
        "exception_terminal": exception.get("terminal"),
        "trace": [trace.asdict() for trace in trace_list],
    }
    scrubbed: dict[str, Any] = _scrub_value(_json_ready(row), scrubber)
    return scrubbed


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """Round-trip `row` through dlt's JSON module, which serializes dlt's date and info types."""
    from dlt.common import json

    ready: dict[str, Any] = json.loads(json.dumps(row))
    return ready


def known_secrets(pipeline: "Pipeline") -> list[str]:
    """Return the secret values of the resolved credentials of `pipeline`'s destination.

    Returns an empty list when the credentials cannot be resolved: then there are none to leak.
    """
    from dlt.common.configuration.specs.base_configuration import (
        BaseConfiguration,
        is_secret_hint,
    )

    try:
        credentials = pipeline.destination_client().config.credentials
    except Exception:  # noqa: BLE001 - unresolvable credentials hold no value to hide
        return []
    secrets: list[str] = []
    stack: list[Any] = [credentials]
    while stack:
        config = stack.pop()
        if not isinstance(config, BaseConfiguration):
            continue
        for name, hint in config.get_resolvable_fields().items():
            value = getattr(config, name, None)
            if isinstance(value, BaseConfiguration):
                stack.append(value)
            elif value is not None and is_secret_hint(hint):
                secrets.append(str(value))
    return secrets


class TraceStore:
    """Loads trace rows through a trace pipeline, and spills the rows it cannot load to files.

    The trace pipeline is created once per store and never syncs its state from the destination:
    it keeps no state worth restoring, and a sync would cost a round trip for every trace.
    """

    def __init__(self, pipeline: "Pipeline", target: Any, scrubber: Scrubber) -> None:
        self.pipeline = pipeline
        self.scrubber = scrubber
        self.table_name = trace_table_name(pipeline.pipeline_name)
        self._target = target
        self._trace_pipeline: Optional["Pipeline"] = None
        # None until known: whether the trace table exists with every column of TRACE_COLUMNS
        self._table_known: Optional[bool] = None
        self._job_client: Any = None

    @property
    def trace_pipeline(self) -> "Pipeline":
        """The pipeline that loads the trace rows, created on first use."""
        if self._trace_pipeline is None:
            self._trace_pipeline = self._make_trace_pipeline(self._target)
        return self._trace_pipeline

    def _make_trace_pipeline(self, target: Any) -> "Pipeline":
        import dlt

        if target is True:
            trace_pipeline = dlt.pipeline(
                pipeline_name=f"_trace_{self.pipeline.pipeline_name}",
                pipelines_dir=self.pipeline.pipelines_dir,
                destination=self.pipeline.destination,
                dataset_name=f"_trace_{self.pipeline.dataset_name}",
            )
        else:
            trace_pipeline = target
        trace_pipeline.config.restore_from_destination = False
        return trace_pipeline

    def store(self, row: Mapping[str, Any]) -> None:
        """Load `row` into the trace table; raise what dlt raised when it cannot be loaded.

        Once the trace table exists, a row goes into it by one SQL transaction on destinations
        listed in `DIRECT_INSERT_DESTINATIONS`: an insert of the row and of its load into dlt's
        `_dlt_loads` table, as dlt's loader would write them, without the cost of a pipeline run.
        Otherwise, and when the direct insert fails, the row is loaded by a run of the trace
        pipeline, which creates or updates the table. After a failed run the trace pipeline's
        pending package is removed: the caller keeps the row in a spill file, and the next trace
        must not load the old package instead of its own.
        """
        if self._table_ready():
            try:
                self._insert(row)
                return
            except Exception:  # noqa: BLE001 - the trace pipeline's run is tried next
                self._table_known = False
                if self.is_stored(row):
                    return
        try:
            self.trace_pipeline.run(
                [dict(row)],
                table_name=self.table_name,
                write_disposition="append",
                columns=TRACE_COLUMNS,
            )
        except Exception:
            self._drop_pending_packages()
            raise
        self._table_known = True

    def _table_ready(self) -> bool:
        """Return whether a row can be inserted directly into an existing trace table."""
        if self._table_known is None:
            # the local schema of a trace pipeline that loaded the table earlier lists its columns
            schema = self.trace_pipeline.default_schema if self.trace_pipeline.schema_names else None
            table = schema.tables.get(self.table_name) if schema is not None else None
            columns = table.get("columns", {}) if table is not None else {}
            self._table_known = all(name in columns for name in TRACE_COLUMNS)
        if not self._table_known:
            return False
        destination = self.trace_pipeline.destination
        return destination is not None and destination.destination_type in DIRECT_INSERT_DESTINATIONS

    def _insert(self, row: Mapping[str, Any]) -> None:
        from dlt.common import json
        from dlt.common.time import precise_time
        from dlt.common.utils import uniq_id

        if self._job_client is None:
            self._job_client = self.trace_pipeline.destination_client()
        client = self._job_client
        load_id = str(precise_time())
        values = [
            json.dumps(row[name]) if spec["data_type"] == "json" and row[name] is not None
            else row[name]
            for name, spec in TRACE_COLUMNS.items()
        ]
        with client:
            sql = client.sql_client
            table = sql.make_qualified_table_name(self.table_name)
            names = [sql.escape_column_name(name) for name in (*TRACE_COLUMNS, *DLT_COLUMNS)]
            marks = ", ".join(["%s"] * len(names))
            with sql.begin_transaction():
                sql.execute_sql(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
                    *values,
                    load_id,
                    uniq_id(),
                )
                client.complete_load(load_id)

    def _drop_pending_packages(self) -> None:
        # NOTE: the trace pipeline's working folder is reset, which also removes its local
        # schema. A trace pipeline is meant for traces only, so it loses no other state.
        trace_pipeline = self.trace_pipeline
        self._table_known = None
        self._job_client = None
        try:
            if trace_pipeline.has_pending_data:
                trace_pipeline.drop()
                trace_pipeline.config.restore_from_destination = False
        except Exception:  # noqa: BLE001 - the spill file keeps the row either way
            pass

    def is_stored(self, row: Mapping[str, Any]) -> bool:
        """Return whether the trace table already contains the row's transaction id and attempt."""
        try:
            with self.trace_pipeline.sql_client() as client:
                table = client.make_qualified_table_name(self.table_name)
                result = client.execute_sql(
                    f"SELECT count(*) FROM {table} WHERE transaction_id = %s AND attempt = %s",
                    row["transaction_id"],
                    row["attempt"],
                )
        except Exception:  # noqa: BLE001 - no table yet means nothing stored
            return False
        return result is not None and len(result) > 0 and int(result[0][0]) > 0

    def spill(self, row: Mapping[str, Any]) -> Path:
        """Write `row` to its spill file, atomically, and return the file's path."""
        from dlt.common import json

        folder = spill_folder(self.pipeline)
        folder.mkdir(parents=True, exist_ok=True)
        name = _UNSAFE_NAME.sub("_", f"{row['transaction_id']}_attempt_{row['attempt']}")
        path = folder / f"{name}_trace.json"
        temporary = path.with_suffix(".json.tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(dict(row)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    def spilled_files(self) -> list[Path]:
        """Return the spill files of the main pipeline, oldest first."""
        folder = spill_folder(self.pipeline)
        if not folder.is_dir():
            return []
        return sorted(folder.glob("*_trace.json"), key=lambda p: (p.stat().st_mtime, p.name))

    def has_files(self) -> bool:
        """Return whether spill files wait to be loaded, in the working folder or set aside."""
        return bool(self.spilled_files()) or self._aside_folder().is_dir()

    def _aside_folder(self) -> Path:
        return Path(self.pipeline.pipelines_dir) / f".{self.pipeline.pipeline_name}.traces_kept"

    def keep_files_aside(self) -> list[str]:
        """Move the spill files out of the working folder, before the folder is removed."""
        files = self.spilled_files()
        if not files:
            return []
        aside = self._aside_folder()
        aside.mkdir(parents=True, exist_ok=True)
        for path in files:
            os.replace(path, aside / path.name)
        return [path.name for path in files]

    def restore_kept_files(self) -> None:
        """Move spill files set aside by `keep_files_aside` back into the working folder.

        A run killed between setting the files aside and restoring them leaves them aside, so
        every run calls this before it reads the spill files.
        """
        aside = self._aside_folder()
        if not aside.is_dir():
            return
        folder = spill_folder(self.pipeline)
        folder.mkdir(parents=True, exist_ok=True)
        for path in aside.iterdir():
            os.replace(path, folder / path.name)
        aside.rmdir()

    def replay(self, path: Path) -> bool:
        """Load the row of spill file `path` unless it is stored already, then delete the file.

        Returns False, and keeps the file, when the row cannot be loaded.
        """
        from dlt.common import json

        row = json.loads(path.read_text(encoding="utf-8"))
        if not self.is_stored(row):
            try:
                self.store(row)
            except Exception:  # noqa: BLE001 - the file stays for the next run
                return False
        path.unlink()
        return True
