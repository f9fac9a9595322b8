"""Exceptions raised by runner-fsm. Every one derives from `RunnerFsmError`."""

from __future__ import annotations

from typing import Any, Iterable, Optional

__all__ = [
    "RunnerFsmError",
    "ConfigError",
    "SpecError",
    "PolicyError",
    "JournalError",
    "PipelineLocked",
    "RunInterrupted",
    "RunFailed",
    "PendingPackageFailed",
    "GeneratorNotRetryable",
]


class RunnerFsmError(Exception):
    """Base class of every error raised by runner-fsm itself."""


class ConfigError(RunnerFsmError, ValueError):
    """An invalid project file, run configuration or argument.

    The message names where the value came from (file and line, or the argument), the key, the bad
    value, the allowed values and the fix, so that the user can act on it without reading code.
    """

    def __init__(
        self,
        message: str,
        *,
        source: Optional[str] = None,
        line: Optional[int] = None,
        key: Optional[str] = None,
        value: Any = None,
        allowed: Optional[Iterable[Any]] = None,
    ) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.value = value
        self.allowed = list(allowed) if allowed is not None else None
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.source:
            where = self.source if self.line is None else f"{self.source}:{self.line}"
        parts = []
        if where:
            parts.append(where)
        if self.key:
            parts.append(f"key `{self.key}`")
        head = ", ".join(parts)
        text = f"{head}: {self.reason}" if head else self.reason
        if self.allowed:
            text += f" Allowed values: {', '.join(_show(a) for a in self.allowed)}."
        return text


def _show(value: Any) -> str:
    # booleans in the spelling of YAML files, where these values come from
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class SpecError(RunnerFsmError):
    """A machine specification under `specs/` that breaks a rule of the machine."""

    def __init__(self, message: str, *, spec_path: str, state: Optional[str] = None) -> None:
        self.spec_path = spec_path
        self.state = state
        where = f"{spec_path}: state `{state}`: " if state else f"{spec_path}: "
        super().__init__(where + message)


class PolicyError(ConfigError):
    """A retry policy that cannot be built from the given configuration."""


class JournalError(RunnerFsmError):
    """A journal that cannot be written or read."""


class PipelineLocked(RunnerFsmError):
    """Another runner, a live process, holds the lock of the pipeline."""

    def __init__(self, pipeline_name: str, holder_pid: Optional[int], lock_file: str) -> None:
        self.pipeline_name = pipeline_name
        self.holder_pid = holder_pid
        self.lock_file = lock_file
        holder = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"pipeline `{pipeline_name}` is being run by {holder} (lock file {lock_file}). Wait"
            " for that run to end, or stop it, before starting another."
        )


class RunInterrupted(RunnerFsmError):
    """A run stopped by SIGINT or SIGTERM at a safe point; the next run or resume finishes it."""

    def __init__(self, signal_code: int, run_id: str, state: str) -> None:
        self.signal_code = signal_code
        self.run_id = run_id
        self.state = state
        super().__init__(
            f"run `{run_id}` was interrupted by signal {signal_code} in state `{state}`. The next"
            " `runner-fsm run` or `runner-fsm resume` finishes it."
        )


class RunFailed(RunnerFsmError):
    """A run that ended in the `failed` state.

    `__cause__` is the exception of the last failed step. `run_id` names the run in the journal.
    """

    def __init__(self, message: str, *, run_id: str, attempts: int) -> None:
        self.run_id = run_id
        self.attempts = attempts
        super().__init__(message)


class PendingPackageFailed(RunnerFsmError):
    """A pending load package contains jobs that failed terminally, so loading it again cannot work."""

    def __init__(
        self, load_id: str, failed_jobs: list[tuple[str, str]], pipeline_name: str = "<name>"
    ) -> None:
        self.load_id = load_id
        self.failed_jobs = failed_jobs
        jobs = "; ".join(f"job `{job_id}` failed with: {message}" for job_id, message in failed_jobs)
        super().__init__(
            f"Pending load package `{load_id}` holds jobs that failed terminally ({jobs}). Loading"
            " it again would fail the same way. Fix the cause, then abort the package with"
            f" `dlt pipeline {pipeline_name} abort-packages`, or set `on_terminal_pending: abort`"
            " in `run_config` to abort it and restore the pipeline state at the start of the run."
        )


class GeneratorNotRetryable(RunnerFsmError):
    """A retry of the extract step found the data exhausted: a plain generator runs only once."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "The extract step cannot be retried because the data was a plain Python generator or"
            " iterator, which can be iterated only once "
            f"({detail}). Pass a dlt resource or source (for example wrap the generator function"
            " in `@dlt.resource`) so that every attempt extracts the data again, or remove"
            " `extract` from `retry_pipeline_steps`."
        )
