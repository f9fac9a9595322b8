"""One run of the machine: the actions and guards that the spec names, and the journaling.

The spec in `specs/run_machine.yaml` names each action and guard; they are the methods of `Run`.
An action does the work of its state and returns the trigger to fire. A guard returns whether a
transition may fire. Every transition is journaled (and fsync'd) by `record_transition` before the
runner calls the next action.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from runner_fsm._classify import Verdict, classify, exception_chain, failed_step, root_cause
from runner_fsm._faults import counting_collector, fault_from_environment
from runner_fsm._messages import first_line, headline, last_line
from runner_fsm._resume import Interrupted
from runner_fsm._scrub import ScrubbingFilter
from runner_fsm._tracking import listen_to_steps, stop_listening
from runner_fsm._version import __version__
from runner_fsm.callbacks import call_back
from runner_fsm.exceptions import (
    GeneratorNotRetryable,
    PendingPackageFailed,
    RunInterrupted,
    RunnerFsmError,
)
from runner_fsm.journal import Journal, journal_path
from runner_fsm.logs import get_logger
from runner_fsm.machine import bind_machine
from runner_fsm.policies import AttemptRecord, RetryDecision, decide, describe_policy
from runner_fsm.traces import TraceStore, trace_row

if TYPE_CHECKING:
    from runner_fsm._runner import Runner

__all__ = ["Run"]

MAX_MESSAGE_CHARS = 4000


def _package_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Run:
    """The model of one run: per-run state, the actions and guards of the spec, and the journal."""

    state: str

    def __init__(
        self,
        runner: "Runner",
        data: Any,
        kwargs: dict[str, Any],
        *,
        run_id: str,
        resumed: Optional[Interrupted] = None,
    ) -> None:
        self.runner = runner
        self.pipeline = runner.pipeline
        self.config = runner.config
        self.clock = runner.clock
        self.data = data
        self.kwargs = kwargs
        self.run_id = run_id
        self.log = get_logger(run_id=run_id, pipeline=self.pipeline.pipeline_name)
        self.scrubber = runner.scrubber
        self.journal: Optional[Journal] = None
        self.payload: dict[str, Any] = {}
        self.operation: Optional[str] = None
        self.tries: Counter[str] = Counter()
        self.first_try_at: dict[str, float] = {}
        self.last_error: Optional[BaseException] = None
        self.failed_operation: Optional[str] = None
        self.decision: Optional[RetryDecision] = None
        self.folder_cleaned = False
        self.destination_synced = False
        self.attempt_succeeded = False
        self.load_info: Any = None
        self.finalize_info: Any = None
        self.rows_by_load_id: dict[str, dict[str, int]] = {}
        self.loaded_rows: Counter[str] = Counter()
        self.loaded_ids: list[str] = []
        self.step_error: Optional[BaseException] = None
        self.operation_traces: list[Any] = []
        self.last_load_ids: list[str] = []
        self.last_rows: dict[str, int] = {}
        self.started_at = self.clock.monotonic()
        self.resumed = resumed
        self.fault = fault_from_environment()
        self.jobs_done = 0
        if resumed is not None:
            # the interrupted run keeps its tries, and the crash counts as a failed try
            self.tries.update(resumed.tries)
            self.tries["finalize_pending"] = max(
                self.tries["finalize_pending"], resumed.attempts
            )

    # -- driving the machine -------------------------------------------------------------------

    def execute(self) -> Any:
        """Run the machine from its initial state to `done` or `failed`."""
        spec = self.runner.spec
        name = self.pipeline.pipeline_name
        self.journal = Journal(
            journal_path(self.runner.journal_dir, name), on_warning=self._journal_warning
        )
        if self.runner.lock_taken_from is not None:
            self._journal_lock_takeover(self.runner.lock_taken_from)
            self.runner.lock_taken_from = None
        bind_machine(spec, self, after_state_change="record_transition")
        listen_to_steps(self.pipeline, self._on_step_end, self.operation_traces.append)
        original_collector = self.pipeline.collector
        if self.fault is not None and self.fault.kind in ("jobs", "inside"):
            self.pipeline.collector = counting_collector(original_collector, self.fault)
        # dlt logs failed jobs with their exception text, which may hold a secret
        dlt_logger = logging.getLogger("dlt")
        log_filter = ScrubbingFilter(self.scrubber)
        dlt_logger.addFilter(log_filter)
        try:
            while not spec.states[self.state].terminal:
                self._stop_if_requested()
                action = spec.states[self.state].action
                assert action is not None
                self.payload = {}
                trigger = getattr(self, action)()
                self._stop_if_requested()
                self.trigger(trigger)  # type: ignore[attr-defined]
        finally:
            self.pipeline.collector = original_collector
            dlt_logger.removeFilter(log_filter)
            stop_listening(self.pipeline)
            self.journal.close()
        if self.state == "failed":
            assert self.last_error is not None
            raise self.last_error
        return self.load_info if self.data is not None else self.finalize_info

    def record_transition(self, event: Any) -> None:
        """Journal the transition that just happened, with what the action produced."""
        assert self.journal is not None
        record = {
            "ts": self.clock.now().isoformat(),
            "run_id": self.run_id,
            "pipeline": self.pipeline.pipeline_name,
            "kind": "transition",
            "from": event.transition.source,
            "to": event.transition.dest,
            "trigger": event.event.name,
            "operation": self.operation,
            "attempt": self.tries[self.operation] if self.operation else 0,
        }
        record.update(self.payload)
        self.journal.append(record)
        if self.fault is not None:
            self.fault.reached("state", record["to"])
        self.log.debug(
            "transition",
            source=record["from"],
            dest=record["to"],
            trigger=record["trigger"],
            attempt=record["attempt"],
        )

    def _journal_event(self, event: str, **fields: Any) -> None:
        assert self.journal is not None
        record = {
            "ts": self.clock.now().isoformat(),
            "run_id": self.run_id,
            "pipeline": self.pipeline.pipeline_name,
            "kind": "event",
            "event": event,
            "state": self.state,
        }
        record.update(fields)
        self.journal.append(record)

    def _stop_if_requested(self) -> None:
        """Journal the run as interrupted and raise `RunInterrupted` when a signal asked to stop."""
        stop = self.runner.stop
        if not stop.requested:
            return
        assert stop.signum is not None
        fields: dict[str, Any] = {"signal": stop.signum}
        if self.last_error is not None:
            fields["exception"] = self.describe_exception(self.last_error)
        self._journal_event("interrupted", **fields)
        self.log.warning("run_interrupted", signal=stop.signum, state=self.state)
        raise RunInterrupted(stop.signum, self.run_id, self.state)

    def _journal_lock_takeover(self, previous_holder: int) -> None:
        assert self.journal is not None
        self.journal.append(
            {
                "ts": self.clock.now().isoformat(),
                "run_id": self.run_id,
                "pipeline": self.pipeline.pipeline_name,
                "kind": "event",
                "event": "lock_taken_over",
                "previous_pid": previous_holder,
                "pid": os.getpid(),
            }
        )
        self.log.warning("lock_taken_over", previous_pid=previous_holder)

    def _journal_warning(self, event: str, context: dict[str, Any]) -> None:
        self.log.warning(event, **context)

    # -- bookkeeping of tries and failures -----------------------------------------------------

    def _begin_try(self, operation: str) -> None:
        self.operation = operation
        self.tries[operation] += 1
        self.first_try_at.setdefault(operation, self.clock.monotonic())
        self.last_error = None
        self.step_error = None
        self.operation_traces.clear()
        self.last_load_ids = []
        self.last_rows = {}

    def _fail(self, exc: BaseException) -> str:
        self.last_error = exc
        self.failed_operation = self.operation
        self.payload["exception"] = self.describe_exception(exc)
        if isinstance(exc, RunnerFsmError) or failed_step(exc) in ("load", None):
            replaced = self._replace_tables_at_risk(exc)
            if replaced:
                self.payload["replace_tables_may_be_empty"] = replaced
        return "step_failed"

    def describe_exception(self, exc: BaseException) -> dict[str, Any]:
        """Return the journal form of `exc`: type, scrubbed message, step and terminal flag."""
        inner = getattr(exc, "exception", None)
        shown = inner if isinstance(inner, BaseException) else exc
        verdict = classify(exc, self.config.retry_pipeline_steps)
        message = self.scrubber.scrub(str(shown))
        return {
            "type": f"{type(shown).__module__}.{type(shown).__qualname__}",
            "wrapper": type(exc).__qualname__ if shown is not exc else None,
            "message": message[:MAX_MESSAGE_CHARS],
            "step": failed_step(exc),
            "terminal": verdict.terminal,
        }

    def _replace_tables_at_risk(self, exc: BaseException) -> list[str]:
        load_id = getattr(exc, "load_id", None)
        rows = self.rows_by_load_id.get(load_id or "", {})
        try:
            schema = self.pipeline.default_schema
        except Exception:  # noqa: BLE001 - no schema yet means no table at risk
            return []
        tables = []
        for name in rows:
            table = schema.tables.get(name, {})
            if table.get("write_disposition") == "replace":
                tables.append(name)
        return sorted(tables)

    # -- the step hook -------------------------------------------------------------------------

    def _on_step_end(self, step_trace: Any, step_info: Any, pipeline: Any) -> None:
        name = getattr(step_trace, "step", None)
        if name == "run":
            return
        record: dict[str, Any] = {"step": name, "operation": self.operation}
        record["attempt"] = self.tries[self.operation] if self.operation else 0
        started, finished = step_trace.started_at, step_trace.finished_at
        if started is not None and finished is not None:
            record["duration_s"] = round((finished - started).total_seconds(), 6)
        load_ids = list(getattr(step_info, "loads_ids", None) or [])
        if load_ids:
            record["load_ids"] = load_ids
        rows = self._row_counts(name, step_info, load_ids)
        if rows:
            record["rows"] = rows
            record["rows_by_load_id"] = {
                load_id: self.rows_by_load_id.get(load_id, {}) for load_id in load_ids
            }
        if step_trace.step_exception:
            record["exception"] = {"message": self.scrubber.scrub(step_trace.step_exception)[:MAX_MESSAGE_CHARS]}
        elif name == "load":
            self._count_loaded(load_ids)
        try:
            self._journal_event("step_ended", **record)
        except Exception as ex:  # noqa: BLE001 - dlt swallows tracking errors, so keep it to raise
            self.step_error = ex
        if self.fault is not None:
            self.fault.reached("step", str(name))
        self.log.info("step_ended", **{k: v for k, v in record.items() if k != "exception"})

    def _row_counts(self, name: Any, step_info: Any, load_ids: list[str]) -> dict[str, int]:
        """Return the rows per table that a normalize step wrote, and remember them per package."""
        if name != "normalize" or step_info is None:
            return {}
        metrics = getattr(step_info, "metrics", None) or {}
        for load_id in load_ids:
            per_package: Counter[str] = Counter()
            for metric in metrics.get(load_id) or []:
                for table, table_metrics in (metric.get("table_metrics") or {}).items():
                    per_package[table] += int(table_metrics.items_count)
            self.rows_by_load_id[load_id] = dict(per_package)
        return {k: int(v) for k, v in dict(getattr(step_info, "row_counts", {}) or {}).items()}

    def _count_loaded(self, load_ids: list[str]) -> None:
        for load_id in load_ids:
            if load_id in self.loaded_ids:
                continue
            self.loaded_ids.append(load_id)
            self.loaded_rows.update(self.rows_by_load_id.get(load_id, {}))

    # -- actions ---------------------------------------------------------------------------------

    def open_run(self) -> str:
        """Journal the run's configuration as its first record."""
        import dlt

        self.payload.update(
            {
                "config": {
                    "retry_policy": describe_policy(self.runner.retry_policy),
                    "retry_pipeline_steps": list(self.config.retry_pipeline_steps),
                    "run_from_clean_folder": self.config.run_from_clean_folder,
                    "store_trace_info": _describe_trace_target(self.config.store_trace_info),
                    "on_terminal_pending": self.config.on_terminal_pending,
                },
                "config_origins": dict(self.config.origins),
                "data": None if self.data is None else type(self.data).__name__,
                "run_kwargs": sorted(self.kwargs),
                "destination": _destination_name(self.pipeline, self.kwargs),
                "dataset_name": self.kwargs.get("dataset_name") or self.pipeline.dataset_name,
                "resumed": _describe_resumed(self.resumed),
                "runner_version": __version__,
                "dlt_version": dlt.__version__,
                "pid": os.getpid(),
            }
        )
        self.log.info("run_started", destination=self.payload["destination"])
        call_back(self.pipeline, "on_before", self.log, self.pipeline)
        return "opened"

    def sync_destination(self) -> str:
        """Restore state and schemas from the destination, as `pipeline.run` would first do."""
        self._begin_try("sync")
        pipeline = self.pipeline
        destination = self.kwargs.get("destination") or pipeline.destination
        if destination is None or not pipeline.config.restore_from_destination or pipeline.dev_mode:
            self.payload["skipped"] = "no destination, dev_mode or restore_from_destination=false"
            self.destination_synced = True
            return "synced"
        # NOTE: `_state_restored` is a private flag of dlt's Pipeline. dlt syncs a pipeline object
        # once, on its first run, and so does the runner; `drop` (a clean folder) clears the flag.
        if getattr(pipeline, "_state_restored", False):
            self.payload["skipped"] = "the pipeline object already synced in this process"
            self.destination_synced = True
            return "synced"
        try:
            pipeline.sync_destination(
                destination=self.kwargs.get("destination"),
                staging=self.kwargs.get("staging"),
                dataset_name=self.kwargs.get("dataset_name"),  # type: ignore[arg-type]
            )
        except Exception as ex:  # noqa: BLE001 - every failure goes to the retry decision
            return self._fail(ex)
        # marks the state as synced in this process, so that pipeline.run does not sync again
        if hasattr(pipeline, "_state_restored"):
            pipeline._state_restored = True
        self.destination_synced = True
        return "synced"

    def clean_folder(self) -> str:
        """Remove the pipeline working folder; state and schemas then come from the destination."""
        self._begin_try("clean_folder")
        working_dir = self.pipeline.working_dir
        store = self.runner.trace_store()
        try:
            kept = store.keep_files_aside() if store is not None else []
            self.pipeline.drop()
            if store is not None:
                store.restore_kept_files()
        except Exception as ex:  # noqa: BLE001 - a folder that cannot be removed ends the run
            return self._fail(ex)
        if kept:
            self.payload["spilled_traces_kept"] = kept
        self.folder_cleaned = True
        self.payload["removed"] = str(working_dir)
        self.log.info("working_folder_removed", path=str(working_dir))
        return "cleaned"

    def pending_packages(self) -> list[dict[str, Any]]:
        """Return the pending packages of the working folder with their state and size in bytes.

        A normalized package also lists its `started_jobs`: jobs that a killed run was loading.
        Their rows may be in the destination already, so an `append` table can get them twice.
        """
        pipeline = self.pipeline
        packages = []
        for load_id in pipeline.list_extracted_load_packages():
            info = pipeline.get_load_package_info(load_id)
            size = _package_size(info.package_path)
            packages.append({"load_id": load_id, "state": "extracted", "bytes": size})
        for load_id in pipeline.list_normalized_load_packages():
            info = pipeline.get_load_package_info(load_id)
            size = _package_size(info.package_path)
            started = sorted(job.job_file_info.job_id() for job in info.jobs.get("started_jobs", []))
            package = {"load_id": load_id, "state": "normalized", "bytes": size}
            if started:
                package["started_jobs"] = started
            packages.append(package)
        return packages

    def _terminally_failed(self) -> Optional[PendingPackageFailed]:
        """Return the first pending package with a job that failed terminally, if any.

        dlt puts a terminally failed job back into `new_jobs` with its exception marked
        `terminal`, and keeps the package pending, so loading it again fails the same way.
        """
        from dlt.common.storages.load_package import ParsedLoadJobFileName

        pipeline = self.pipeline
        for load_id in pipeline.list_normalized_load_packages():
            jobs = [
                (job.job_file_info.job_id(), str(job.failed_message or ""))
                for job in pipeline.list_failed_jobs_in_package(load_id)
            ]
            # NOTE: dlt has no public call for the type of a retried job's last exception.
            packages = pipeline._get_load_storage().normalized_packages
            for job_file, folder in pipeline.list_pending_retry_jobs_in_package(load_id):
                if folder != "new_jobs":
                    continue
                parsed = ParsedLoadJobFileName.parse(job_file)
                kind, message = packages.get_last_job_exception(load_id, parsed)
                if kind == "terminal":
                    jobs.append((parsed.job_id(), str(message or "")))
            if jobs:
                scrubbed = [(job_id, self.scrubber.scrub(last_line(text))) for job_id, text in jobs]
                return PendingPackageFailed(load_id, scrubbed, pipeline.pipeline_name)
        return None

    def finalize_pending(self) -> str:
        """Normalize and load the pending packages left by an earlier run."""
        self._begin_try("finalize_pending")
        packages = self.pending_packages()
        self.payload["pending"] = packages
        if self.tries["finalize_pending"] == 1 or self.resumed is not None:
            self.log.warning(
                "pending_packages_found",
                load_ids=[p["load_id"] for p in packages],
                bytes=[p["bytes"] for p in packages],
            )
        interrupted_jobs = [job for p in packages for job in p.get("started_jobs", [])]
        if interrupted_jobs:
            self.log.warning("jobs_interrupted_mid_load", jobs=interrupted_jobs)
        try:
            failed = self._terminally_failed()
            if failed is not None and self.config.on_terminal_pending == "fail":
                raise failed
            if failed is not None:
                self._abort_pending(failed)
            if self.pipeline.has_pending_data:
                self.finalize_info = self._load_pending()
        except Exception as ex:  # noqa: BLE001 - every failure goes to the retry decision
            return self._fail(ex)
        self._raise_step_error()
        self._record_loaded(self.finalize_info)
        return "finalized"

    def _load_pending(self) -> Any:
        """Normalize and load what the working folder holds, without syncing first."""
        pipeline = self.pipeline
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        if not pipeline.list_normalized_load_packages():
            return None
        self._reload_interrupted_tables()
        return pipeline.load(
            destination=self.kwargs.get("destination"),
            dataset_name=self.kwargs.get("dataset_name"),  # type: ignore[arg-type]
            credentials=self.kwargs.get("credentials"),
        )

    def _reload_interrupted_tables(self) -> None:
        """Make a package that a killed run was loading safe to load again in `append` tables.

        A job that the killed run was loading may be committed at the destination without dlt
        having recorded it, and dlt then loads it again: an `append` table would hold its rows
        twice. For each such table, the rows of the package are deleted at the destination and all
        of the table's jobs in the package are loaded again.
        NOTE: this needs an SQL destination. Elsewhere (filesystem, a custom destination) the
        jobs are loaded again as dlt does, and `append` tables may get their rows twice.
        """
        from dlt.common.schema.typing import C_DLT_LOAD_ID
        from dlt.common.storages.load_package import ParsedLoadJobFileName

        pipeline = self.pipeline
        # NOTE: dlt has no public call to send completed jobs back to new_jobs
        packages = pipeline._get_load_storage().normalized_packages
        for load_id in pipeline.list_normalized_load_packages():
            unrecorded = [
                job_file
                for job_file, folder in pipeline.list_pending_retry_jobs_in_package(load_id)
                if folder == "started_jobs"
            ]
            if not unrecorded:
                continue
            info = pipeline.get_load_package_info(load_id)
            tables = {ParsedLoadJobFileName.parse(job).table_name for job in unrecorded}
            for table in sorted(tables):
                schema_table = info.schema.tables.get(table, {})
                if table.startswith("_dlt") or schema_table.get("write_disposition") != "append":
                    continue
                column = info.schema.naming.normalize_identifier(C_DLT_LOAD_ID)
                if not self._delete_package_rows(table, column, load_id):
                    continue
                for folder in ("completed_jobs", "started_jobs"):
                    for job in info.jobs.get(folder, []):
                        if job.job_file_info.table_name != table:
                            continue
                        name = job.job_file_info.file_name()
                        packages.clear_pending_transition(load_id, name)
                        packages._move_job(load_id, folder, "new_jobs", name)
                self.payload.setdefault("reloaded_tables", []).append(
                    {"load_id": load_id, "table": table}
                )
                self.log.warning("table_reloaded_after_kill", load_id=load_id, table=table)

    def _delete_package_rows(self, table: str, column: str, load_id: str) -> bool:
        try:
            with self.pipeline.sql_client() as client:
                if not client.has_dataset():
                    return True
                qualified = client.make_qualified_table_name(table)
                quoted = client.escape_column_name(column)
                client.execute_sql(f"DELETE FROM {qualified} WHERE {quoted} = %s", load_id)
        except Exception as ex:  # noqa: BLE001 - no SQL client or no table: nothing to delete
            message = first_line(self.scrubber.scrub(str(ex)))
            if "does not exist" in message or "not found" in message.lower():
                return True
            self.log.warning("table_not_reloaded", table=table, load_id=load_id, error=message)
            return False
        return True

    def _abort_pending(self, failed: PendingPackageFailed) -> None:
        """Abort the pending packages with dlt, which restores the state they started from."""
        plan = self.pipeline.abort_packages()
        removed = [failed.load_id]
        if plan:
            removed += list(plan["packages_to_delete"]) + list(plan["extracted_packages_to_delete"])
        removed = sorted(set(removed))
        # the abort completes the package through a load step, which did not load its rows
        self.loaded_ids = [load_id for load_id in self.loaded_ids if load_id not in removed]
        failed_jobs = [job_id for job_id, _ in failed.failed_jobs]
        self.payload["aborted"] = {
            "load_id": failed.load_id,
            "failed_jobs": failed_jobs,
            "removed_packages": removed,
        }
        self.log.warning(
            "pending_package_aborted",
            load_id=failed.load_id,
            failed_jobs=failed_jobs,
            removed_packages=removed,
        )

    def run_attempt(self) -> str:
        """Call `pipeline.run` with the data; a retry loads the package the last try left behind."""
        self._begin_try("attempt")
        pipeline = self.pipeline
        try:
            if self.tries["attempt"] > 1 and pipeline.has_pending_data:
                self.payload["resumed_package"] = True
                self.load_info = self._load_pending()
            else:
                self.load_info = pipeline.run(self.data, **self.kwargs)
        except Exception as ex:  # noqa: BLE001 - every failure goes to the retry decision
            return self._fail(self._explain(ex))
        self._raise_step_error()
        self.attempt_succeeded = True
        self._record_loaded(self.load_info)
        return "attempted"

    def _record_loaded(self, info: Any) -> None:
        for package in getattr(info, "load_packages", None) or []:
            if package.schema_update:
                call_back(
                    self.pipeline, "on_schema_change", self.log,
                    self.pipeline, self.pipeline.last_trace, package.schema.name,
                    dict(package.schema_update),
                )
        load_ids = list(getattr(info, "loads_ids", None) or [])
        rows: Counter[str] = Counter()
        for load_id in load_ids:
            rows.update(self.rows_by_load_id.get(load_id, {}))
        self.payload["load_ids"] = self.last_load_ids = load_ids
        self.payload["rows"] = self.last_rows = dict(rows)

    def _explain(self, exc: BaseException) -> BaseException:
        from dlt.extract.exceptions import SourceExhausted

        if failed_step(exc) == "extract" and self.tries["attempt"] > 1:
            for inner in exception_chain(exc):
                if isinstance(inner, SourceExhausted):
                    error = GeneratorNotRetryable(str(inner))
                    error.__cause__ = exc
                    return error
        return exc

    def _raise_step_error(self) -> None:
        if self.step_error is not None:
            raise self.step_error

    def store_trace(self) -> str:
        """Store the trace of the last attempt or finalization, or spill it to a file.

        A failure here does not fail the run: the row is kept in a spill file and loaded later.
        When even the spill file cannot be written, the trace is lost, which is logged as an
        error and journaled.
        """
        store = self.runner.trace_store()
        if store is None:
            self.payload["stored"] = False
            self.payload["reason"] = "store_trace_info is false"
            return "trace_stored"
        assert self.operation is not None
        row = trace_row(
            traces=self.operation_traces,
            run_id=self.run_id,
            pipeline_name=self.pipeline.pipeline_name,
            operation=self.operation,
            attempt=self.tries[self.operation],
            load_ids=self.last_load_ids,
            row_counts=self.last_rows,
            exception=self.describe_exception(self.last_error) if self.last_error else None,
            scrubber=self.scrubber,
        )
        self.payload["transaction_id"] = row["transaction_id"]
        try:
            store.store(row)
        except Exception as ex:  # noqa: BLE001 - a trace that cannot be stored is spilled
            self._spill_trace(store, row, ex)
            return "trace_stored"
        self.payload["stored"] = True
        self.payload["table"] = store.table_name
        return "trace_stored"

    def _spill_trace(self, store: TraceStore, row: dict[str, Any], error: BaseException) -> None:
        message = self.scrubber.scrub(last_line(str(error)))
        try:
            path = store.spill(row)
        except OSError as spill_error:
            spill_message = self.scrubber.scrub(str(spill_error))
            self.payload.update(stored=False, spilled=None, error=message, spill_error=spill_message)
            self.log.error("trace_lost", error=message, spill_error=spill_message)
            return
        self.payload.update(stored=False, spilled=path.name, error=message)
        self.log.warning("trace_spilled", file=path.name, error=message)

    def replay_traces(self) -> str:
        """Load the traces that earlier runs spilled to files, and delete each file once loaded."""
        store = self.runner.trace_store()
        assert store is not None
        store.restore_kept_files()
        replayed: list[str] = []
        kept: list[str] = []
        for path in store.spilled_files():
            (replayed if store.replay(path) else kept).append(path.name)
        self.payload.update(replayed=replayed, kept=kept)
        if kept:
            self.log.warning("spilled_traces_kept", files=kept)
        return "replayed"

    def decide_retry(self) -> str:
        """Hand the failure to the retry guard."""
        return "decided"

    def wait(self) -> str:
        """Wait before the next try, as the retry policy decided."""
        assert self.decision is not None
        waited = self.clock.sleep(self.decision.wait_s, self.runner.stop.event)
        self.payload["wait_s"] = self.decision.wait_s
        self.payload["completed"] = waited
        return "waited"

    # -- guards ----------------------------------------------------------------------------------

    def has_spilled_traces(self, event: Any) -> bool:
        store = self.runner.trace_store()
        return store is not None and store.has_files()

    def has_pending_data(self, event: Any) -> bool:
        return bool(self.pipeline.has_pending_data)

    def clean_folder_due(self, event: Any) -> bool:
        return self.config.run_from_clean_folder and not self.folder_cleaned

    def not_synced(self, event: Any) -> bool:
        return not self.destination_synced

    def data_not_yet_run(self, event: Any) -> bool:
        return self.data is not None and not self.attempt_succeeded

    def last_operation_failed(self, event: Any) -> bool:
        return self.last_error is not None

    def retrying_sync(self, event: Any) -> bool:
        return self.failed_operation == "sync"

    def retrying_finalize(self, event: Any) -> bool:
        return self.failed_operation == "finalize_pending"

    def retry_allowed(self, event: Any) -> bool:
        """Ask dlt's rule, then the retry policy, whether the failed operation runs again."""
        assert self.last_error is not None and self.failed_operation is not None
        exc = self.last_error
        verdict: Verdict = classify(exc, self.config.retry_pipeline_steps)
        if not verdict.retryable:
            self.decision = RetryDecision(False, reason=verdict.reason)
        else:
            self.decision = self._ask_policy(exc, self.failed_operation)
        self.payload.update(
            retry=self.decision.retry, wait_s=self.decision.wait_s, reason=self.decision.reason
        )
        self.operation = self.failed_operation
        if self.decision.retry:
            attempt = self.tries[self.failed_operation]
            call_back(
                self.pipeline, "on_retry", self.log,
                self.pipeline, self.pipeline.last_trace, attempt + 1, attempt, root_cause(exc),
            )
            shown = self.describe_exception(exc)
            self.log.warning(
                "retry_scheduled",
                operation=self.failed_operation,
                attempt=self.tries[self.failed_operation],
                wait_s=self.decision.wait_s,
                error_type=shown["type"],
                error=headline(shown["message"]),
            )
        return self.decision.retry

    def _ask_policy(self, exc: BaseException, operation: str) -> RetryDecision:
        """Call the retry policy; a policy that raises ends the run with its own error."""
        record = AttemptRecord(
            attempt=self.tries[operation],
            elapsed_s=self.clock.monotonic() - self.first_try_at[operation],
            exception=root_cause(exc),
            step=failed_step(exc),
            operation=operation,
            step_exception=exc,
        )
        try:
            return decide(self.runner.retry_policy, record)
        except Exception as policy_error:  # noqa: BLE001 - reported as the run's failure
            policy_error.__context__ = exc
            self.last_error = policy_error
            message = self.scrubber.scrub(str(policy_error))
            return RetryDecision(False, reason=f"the retry policy raised {message}")

    # -- terminal bookkeeping -------------------------------------------------------------------

    def on_enter_done(self, event: Any) -> None:
        self.payload["summary"] = self._summary()
        self.log.info("run_done", **self.payload["summary"])
        self._call_after(True)

    def on_enter_failed(self, event: Any) -> None:
        self.payload["summary"] = self._summary()
        if self.last_error is not None:
            self.payload["exception"] = self.describe_exception(self.last_error)
        self.log.error(
            "run_failed",
            error=headline(self.payload.get("exception", {}).get("message")),
            **self.payload["summary"],
        )
        self._call_after(False)

    def _call_after(self, success: bool) -> None:
        rows = dict(self.payload["summary"]["rows"])
        call_back(
            self.pipeline, "on_after", self.log,
            self.pipeline, self.pipeline.last_trace, success, rows,
        )

    def _summary(self) -> dict[str, Any]:
        return {
            "rows": dict(self.loaded_rows),
            "load_ids": list(self.loaded_ids),
            "tries": dict(self.tries),
            "duration_s": round(self.clock.monotonic() - self.started_at, 6),
        }


def _destination_name(pipeline: Any, kwargs: dict[str, Any]) -> Optional[str]:
    destination = kwargs.get("destination") or pipeline.destination
    if destination is None:
        return None
    return str(getattr(destination, "destination_name", None) or destination)


def _describe_resumed(resumed: Optional[Interrupted]) -> Optional[dict[str, Any]]:
    if resumed is None:
        return None
    return {
        "last_seq": resumed.last_seq,
        "last_state": resumed.last_state,
        "operation": resumed.operation,
        "tries": resumed.tries,
        "unreadable_lines": resumed.unreadable_lines,
    }


def _describe_trace_target(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    return getattr(value, "pipeline_name", repr(value))
